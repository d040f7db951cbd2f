"""Image digests from a registry, through the OCI distribution API.

`HEAD /v2/<name>/manifests/<tag>` with an Accept header for the four manifest types a multi-arch or single image is
served as (OCI index, OCI manifest, Docker manifest list, Docker manifest v2), the digest taken from
`Docker-Content-Digest`, or from the sha256 of the body of a GET where a registry leaves the header out. For a
multi-arch image that is the digest of the index, which is what a node resolves `name@sha256:…` against.

Authentication follows the distribution token spec: a 401 carries `WWW-Authenticate: Bearer realm=…,service=…,
scope=…`; the client asks the realm for a token (anonymously for public registries) and repeats the request with it.
A `Basic` challenge is answered with the endpoint's credentials: for Amazon ECR, `ecr:GetAuthorizationToken` through
the standard AWS credential chain (boto3), which returns `AWS:<password>` for Basic auth.

Every request has a timeout, an image gets at most MAX_REQUESTS requests (anonymous try, token, authenticated try,
GET fallback) and the whole run a deadline; a failure is a RegistryError with a one-line message that names the image,
the host and the fix.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from requests.utils import parse_dict_header

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MANIFEST_TYPES = (OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST)

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"   # where docker.io's distribution API answers (Docker's own client maps it)
MAX_MANIFEST_BYTES = 4 << 20              # the distribution registry's own limit on a manifest it accepts
MAX_TOKEN_BYTES = 1 << 20
MAX_REQUESTS = 10                         # per image: anonymous, token, authenticated (per host redirected to), a GET
MAX_REDIRECTS = 5                         # registry.k8s.io redirects to a regional backend
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")
ECR_HOST = re.compile(r"^(\d{12})\.dkr\.ecr(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$")

Credentials = Callable[[str], "tuple[str, str] | None"]


class RegistryError(Exception):
    """An image that could not be resolved; the message is one line with the cause and the fix."""


@dataclass(frozen=True)
class ImageRef:
    """`registry/repository:tag@digest` as a Kubernetes node reads it (no registry: Docker Hub, `library/` for one
    path component)."""

    registry: str
    repository: str
    tag: str | None
    digest: str | None = None

    @classmethod
    def parse(cls, text: str) -> ImageRef:
        name, _, digest = text.partition("@")
        slash = name.find("/")
        first = name[:slash] if slash >= 0 else ""
        if slash >= 0 and ("." in first or ":" in first or first == "localhost"):
            registry, rest = first, name[slash + 1:]
        else:
            registry, rest = DOCKER_HUB, name
        colon = rest.rfind(":")
        repository, tag = (rest[:colon], rest[colon + 1:]) if colon > rest.rfind("/") else (rest, None)
        if registry == DOCKER_HUB and "/" not in repository:
            repository = f"library/{repository}"
        if not repository or not re.fullmatch(r"[a-z0-9]+(?:[._\-/]+[a-z0-9]+)*", repository):
            raise ValueError(f"{text!r} is not an image reference (registry/repository:tag)")
        if tag is not None and not TAG.match(tag):
            raise ValueError(f"{text!r}: the tag {tag!r} is not a valid tag")
        return cls(registry, repository, tag, digest or None)

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.repository}"

    def with_digest(self, digest: str) -> str:
        return f"{self.name}:{self.tag}@{digest}" if self.tag else f"{self.name}@{digest}"

    def __str__(self) -> str:
        text = self.name + (f":{self.tag}" if self.tag else "")
        return f"{text}@{self.digest}" if self.digest else text


@dataclass(frozen=True)
class Mirror:
    """`--registry-mirror REGISTRY=URL`: the images of REGISTRY are resolved through URL (a pull-through cache or a
    copy of the registry; a path in URL is put before every repository name, as Harbor's proxy projects and ECR's
    pull-through rules need). The stack keeps the images' own names: a digest is the same wherever it is served."""

    registry: str
    base_url: str
    prefix: str

    @classmethod
    def parse(cls, text: str) -> Mirror:
        registry, sep, url = text.partition("=")
        parts = urlsplit(url)
        if not sep or not registry or parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            raise ValueError(f"--registry-mirror {text!r}: expected REGISTRY=URL, e.g. docker.io=https://mirror.example.com "
                             "or nvcr.io=https://harbor.example.com/nvcr-proxy")
        return cls(registry.strip().lower(), f"{parts.scheme}://{parts.netloc}", parts.path.strip("/"))


def endpoint(ref: ImageRef, mirrors: dict[str, Mirror]) -> tuple[str, str]:
    """The base URL that serves `ref`'s registry and the repository name to ask it for."""
    mirror = mirrors.get(ref.registry)
    if mirror is not None:
        return mirror.base_url, f"{mirror.prefix}/{ref.repository}" if mirror.prefix else ref.repository
    host = DOCKER_HUB_API if ref.registry == DOCKER_HUB else ref.registry
    return f"https://{host}", ref.repository


def ecr_credentials(host: str, client: Any = None) -> tuple[str, str]:
    """Basic-auth credentials for an Amazon ECR registry host, from `ecr:GetAuthorizationToken` with the standard AWS
    credential chain (environment, profile, SSO, instance or pod role). The token is valid for every registry the
    caller may pull from, for 12 hours."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    match = ECR_HOST.match(host)
    if match is None:
        raise RegistryError(f"{host} is not an Amazon ECR registry host")
    region = match.group(2)
    try:
        if client is None:
            client = boto3.client("ecr", region_name=region, config=Config(connect_timeout=10, read_timeout=20,
                                                                          retries={"max_attempts": 2, "mode": "standard"}))
        data = client.get_authorization_token()["authorizationData"][0]
        user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    except NoCredentialsError:
        raise RegistryError(f"{host}: no AWS credentials for ECR — configure the standard chain (AWS_PROFILE, "
                            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, `aws sso login`) with ecr:GetAuthorizationToken") from None
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise RegistryError(f"{host}: ECR refused the authorization token ({error.get('Code', '?')}: {error.get('Message', '')}) "
                            "— the AWS identity needs ecr:GetAuthorizationToken") from None
    except BotoCoreError as exc:
        raise RegistryError(f"{host}: cannot get an ECR authorization token in {region} ({exc}) — check the network "
                            "and the AWS configuration") from None
    except (KeyError, IndexError, ValueError):
        raise RegistryError(f"{host}: ECR's authorization token is not `user:password` in base64") from None
    return user, password


def default_credentials(host: str) -> tuple[str, str] | None:
    """The endpoint's own credentials: ECR hosts through AWS; every other registry anonymously (public images)."""
    return ecr_credentials(host) if ECR_HOST.match(host) else None


class Resolver:
    """Resolves tags to digests, one session; bearer tokens are kept per host and repository."""

    def __init__(self, mirrors: dict[str, Mirror] | None = None, timeout: float = 20.0, deadline: float = 300.0,
                 credentials: Credentials = default_credentials) -> None:
        self.mirrors = mirrors or {}
        self.timeout = timeout
        self.ends = time.monotonic() + deadline
        self.deadline = deadline
        self.credentials = credentials
        self.session = requests.Session()
        self.session.max_redirects = MAX_REDIRECTS
        self.session.trust_env = True          # HTTPS_PROXY / NO_PROXY as every other client
        self._auth: dict[tuple[str, str], str] = {}
        self._creds: dict[str, tuple[str, str] | None] = {}
        self._down: dict[str, str] = {}        # a host that did not answer is not asked again for the next image

    def close(self) -> None:
        self.session.close()

    def digest(self, ref: ImageRef) -> str:
        """The digest the registry serves for `ref`'s tag."""
        if ref.tag is None:
            raise RegistryError(f"{ref}: no tag to resolve — name the tag (name:tag)")
        ref = ImageRef(ref.registry, ref.repository, ref.tag)
        base, repository = endpoint(ref, self.mirrors)
        host = urlsplit(base).netloc
        url = f"{base}/v2/{repository}/manifests/{ref.tag}"
        budget = [MAX_REQUESTS]
        response = self._request("HEAD", url, host, repository, ref, budget)
        response.close()
        digest = response.headers.get("Docker-Content-Digest")
        self._media_type(response, ref, host)
        if response.status_code == 200 and digest:
            return self._checked(digest, ref, host)
        # No digest header (or no HEAD): the body's sha256 is the digest.
        response = self._request("GET", url, host, repository, ref, budget)
        media_type = self._media_type(response, ref, host)
        body = self._body(response, ref, host)
        computed = "sha256:" + hashlib.sha256(body).hexdigest()
        header = response.headers.get("Docker-Content-Digest")
        if header and header != computed and header.startswith("sha256:"):
            raise RegistryError(f"{ref}: {host} sent a {media_type} whose sha256 ({computed}) is not the digest it names "
                                f"({header}) — a proxy altered the manifest; resolve without it")
        return computed

    # --- one request, with the authentication the registry asks for ---------------------------------------------

    def _request(self, method: str, url: str, host: str, repository: str, ref: ImageRef, budget: list[int]) -> requests.Response:
        answered: set[str] = set()
        redirects = 0
        while True:
            # Redirects are followed here, not by requests, so that each host is authenticated on its own challenge
            # (registry.k8s.io sends clients to a regional backend that asks for its own token) and no credential
            # goes to a host it was not issued for.
            headers = {"Accept": ", ".join(MANIFEST_TYPES)}
            key = (host, repository)
            if key in self._auth:
                headers["Authorization"] = self._auth[key]
            response = self._send(method, url, headers, host, ref, budget)
            if response.is_redirect and response.headers.get("Location"):
                response.close()
                redirects += 1
                if redirects > MAX_REDIRECTS:
                    raise RegistryError(f"{ref}: {host} redirected more than {MAX_REDIRECTS} times — check the registry URL")
                url = urljoin(url, response.headers["Location"])
                host = urlsplit(url).netloc
                continue
            if response.status_code != 401:
                break
            response.close()
            if host in answered:
                raise RegistryError(f"{ref}: {host} refused the credentials it asked for (401 after authenticating) — "
                                    f"{self._login_hint(host)}")
            self._auth[key] = self._answer(response.headers.get("WWW-Authenticate", ""), host, repository, ref, budget)
            answered.add(host)
        if response.status_code == 405 and method == "HEAD":
            return response                    # no HEAD on this registry: the GET follows
        if response.status_code == 404:
            raise RegistryError(f"{ref}: {host} has no tag {ref.tag} in {repository} (404 manifest unknown) — check the "
                                "tag and repository, or push the image")
        if response.status_code == 403:
            raise RegistryError(f"{ref}: {host} denied access to {repository} (403) — {self._login_hint(host)}")
        if response.status_code == 429:
            raise RegistryError(f"{ref}: {host} rate-limited the request (429) — try again later or resolve through a "
                                "mirror (--registry-mirror)")
        if response.status_code != 200:
            raise RegistryError(f"{ref}: {host} answered {response.status_code} {response.reason or ''}".rstrip()
                                + " for the manifest — try again, or check the registry's status")
        return response

    def _answer(self, challenge: str, host: str, repository: str, ref: ImageRef, budget: list[int]) -> str:
        scheme, _, params_text = challenge.strip().partition(" ")
        params = {str(k).lower(): str(v) for k, v in parse_dict_header(params_text).items() if v is not None}
        creds = self._credentials(host)
        if scheme.lower() == "basic":
            if creds is None:
                raise RegistryError(f"{ref}: {host} asks for a login (Basic auth) — {self._login_hint(host)}")
            return "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
        if scheme.lower() != "bearer" or not params.get("realm"):
            raise RegistryError(f"{ref}: {host} answered 401 without a usable challenge ({challenge[:80]!r}) — it is not "
                                "an OCI distribution registry, or a proxy is in the way")
        realm = params["realm"]
        if urlsplit(realm).scheme not in ("http", "https"):
            raise RegistryError(f"{ref}: {host}'s token realm {realm!r} is not an http(s) URL")
        query = {"scope": params.get("scope") or f"repository:{repository}:pull"}
        if params.get("service"):
            query["service"] = params["service"]
        auth = (creds[0], creds[1]) if creds is not None else None
        token_host = urlsplit(realm).netloc
        # A token server may redirect (requests drops the credentials when it leaves the host); manifests do not.
        response = self._send("GET", realm, {"Accept": "application/json"}, token_host, ref, budget, params=query, auth=auth,
                              follow=True)
        if response.status_code in (401, 403):
            raise RegistryError(f"{ref}: the token server {token_host} refused a pull token for {repository} "
                                f"({response.status_code}) — {self._login_hint(host)}")
        if response.status_code != 200:
            raise RegistryError(f"{ref}: the token server {token_host} answered {response.status_code} — try again, or "
                                "check the registry's status")
        try:
            doc = json.loads(self._body(response, ref, token_host, MAX_TOKEN_BYTES))
            token = doc.get("token") or doc.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise RegistryError(f"{ref}: the token server {token_host} sent no token (neither `token` nor `access_token`)")
        return f"Bearer {token}"

    def _send(self, method: str, url: str, headers: dict[str, str], host: str, ref: ImageRef, budget: list[int],
              params: dict[str, str] | None = None, auth: tuple[str, str] | None = None, follow: bool = False) -> requests.Response:
        if budget[0] <= 0:
            raise RegistryError(f"{ref}: {host} needed more than {MAX_REQUESTS} requests for one manifest — it keeps "
                                "asking for authentication; check the registry or mirror")
        budget[0] -= 1
        if host in self._down:
            raise RegistryError(f"{ref}: {self._down[host]}")
        left = self.ends - time.monotonic()
        if left <= 0:
            raise RegistryError(f"{ref}: gave up after {self.deadline:g} s resolving images — raise --timeout or resolve "
                                "fewer stacks at once")
        timeout = min(self.timeout, left)
        try:
            return self.session.request(method, url, headers=headers, params=params, auth=auth, timeout=timeout,
                                        allow_redirects=follow, stream=True)
        except requests.exceptions.Timeout:
            self._down[host] = (f"{host} did not answer within {timeout:g} s — is the registry (or --registry-mirror) "
                                "reachable from here? raise --timeout for a slow link")
            raise RegistryError(f"{ref}: {self._down[host]}") from None
        except requests.exceptions.TooManyRedirects:
            raise RegistryError(f"{ref}: {host} redirected more than {MAX_REDIRECTS} times — check the registry URL") from None
        except requests.exceptions.SSLError as exc:
            raise RegistryError(f"{ref}: TLS to {host} failed ({_reason(exc)}) — a proxy with its own certificate needs "
                                "REQUESTS_CA_BUNDLE") from None
        except requests.exceptions.ConnectionError as exc:
            self._down[host] = (f"cannot reach {host} ({_reason(exc)}) — is the registry up and reachable from here "
                                "(network, proxy, --registry-mirror)?")
            raise RegistryError(f"{ref}: {self._down[host]}") from None
        except requests.exceptions.RequestException as exc:
            raise RegistryError(f"{ref}: request to {host} failed ({_reason(exc)})") from None

    def _body(self, response: requests.Response, ref: ImageRef, host: str, limit: int = MAX_MANIFEST_BYTES) -> bytes:
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in response.iter_content(65536):
                size += len(chunk)
                if size > limit:
                    raise RegistryError(f"{ref}: {host} sent over {limit:,} bytes where a manifest or token was expected")
                if time.monotonic() > self.ends:
                    raise RegistryError(f"{ref}: gave up after {self.deadline:g} s reading from {host} — raise --timeout")
                chunks.append(chunk)
        except requests.exceptions.RequestException as exc:
            raise RegistryError(f"{ref}: reading from {host} failed ({_reason(exc)}) — try again") from None
        finally:
            response.close()
        return b"".join(chunks)

    def _media_type(self, response: requests.Response, ref: ImageRef, host: str) -> str:
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        if response.status_code == 200 and media_type and media_type not in MANIFEST_TYPES:
            response.close()
            raise RegistryError(f"{ref}: {host} serves the tag as {media_type}, not an OCI or Docker v2 manifest or index "
                                "— re-push the image with a current client")
        return media_type

    def _checked(self, digest: str, ref: ImageRef, host: str) -> str:
        if not DIGEST.match(digest):
            raise RegistryError(f"{ref}: {host} names the digest {digest!r}, not sha256:<64 hex digits> — the stack pins sha256")
        return digest

    def _credentials(self, host: str) -> tuple[str, str] | None:
        if host not in self._creds:
            self._creds[host] = self.credentials(host)
        return self._creds[host]

    @staticmethod
    def _login_hint(host: str) -> str:
        if ECR_HOST.match(host):
            return "the AWS identity needs ecr:BatchGetImage on the repository (and ecr:GetAuthorizationToken)"
        return "the image must be public, or resolve it through a mirror that can read it (--registry-mirror)"


def _reason(exc: Exception) -> str:
    """The innermost cause of a requests error, short: `Connection refused`, `Name or service not known`."""
    text = str(exc)
    match = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if match:
        return match.group(1).strip()
    return text.splitlines()[0][:120] if text else type(exc).__name__
