"""A real OCI registry for the tests of `pin`: the CNCF distribution registry (Debian's `docker-registry`, started on a
free loopback port with its storage in a temporary directory), optionally behind htpasswd or token authentication (a
small token server here that signs JWTs the registry verifies against its certificate), images pushed with the `oras`
client, and servers that misbehave (one that accepts and never answers).

Every wait is bounded; nothing listens beyond 127.0.0.1.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import bcrypt
import jwt
import oras.oci
import oras.provider
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

REGISTRY_BIN = shutil.which("docker-registry") or "/usr/bin/docker-registry"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_TYPE = {OCI_MANIFEST: "application/vnd.oci.image.config.v1+json", DOCKER_MANIFEST: "application/vnd.docker.container.image.v1+json"}
LAYER_TYPE = {OCI_MANIFEST: "application/vnd.oci.image.layer.v1.tar+gzip", DOCKER_MANIFEST: "application/vnd.docker.image.rootfs.diff.tar.gzip"}
SERVICE, ISSUER = "test-registry", "test-token-issuer"

DLC = "763104351884.dkr.ecr.us-east-1.amazonaws.com"      # AWS's Deep Learning Containers registry (the EFA image)
# Where each upstream registry's images live in the test registry: the path of its --registry-mirror.
PREFIX = {"docker.io": "dockerhub", "nvcr.io": "nvcr", "public.ecr.aws": "ecr-public", DLC: "aws-dlc",
          "registry.k8s.io": "k8s", "ghcr.io": "ghcr"}


def bundled_images() -> list[tuple[str, str]]:
    """Every image the bundled stacks render, read from the prod stack's settings (dev's are the same images by tag),
    each with the manifest type the test registry serves it as: the vLLM image a multi-arch OCI index, the others
    every kind of OCI and Docker manifest and index."""
    from fleet.render import cluster_autoscaler
    from fleet.spec.load import load
    from tests.conftest import ROOT

    cfg = load("prod", ROOT).config
    v, dp, gw = cfg.vllm, cfg.device_plugin, cfg.gateway
    assert v.efa is not None
    images = [f"{v.repository}:v{v.version}", f"{v.efa.repository}:{v.efa.tag or f'v{v.version}'}", dp.image.split("@")[0],
              dp.dcgm_image.split("@")[0], dp.efa_image.split("@")[0], gw.epp_image.split("@")[0], gw.bbr_image.split("@")[0],
              gw.pd_scheduler_image.split("@")[0], gw.routing_sidecar_image.split("@")[0], cluster_autoscaler.image(cfg).split("@")[0]]
    kinds = [OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST, OCI_INDEX, OCI_MANIFEST, OCI_INDEX, OCI_INDEX, OCI_MANIFEST, DOCKER_LIST,
             OCI_INDEX]
    return list(zip(images, kinds, strict=True))


IMAGES = bundled_images()


def mirror_flags(url: str, **override: str) -> list[str]:
    """`--registry-mirror` for every upstream of IMAGES, into the test registry at `url` (or `override[registry]`)."""
    return [a for reg, prefix in PREFIX.items() for a in ("--registry-mirror", f"{reg}={override.get(reg, url + '/' + prefix)}")]


def push_bundled(reg: Registry) -> dict[str, str]:
    """Push every image of IMAGES under its mirror path; image -> the digest of what was pushed."""
    out = {}
    for image, kind in IMAGES:
        name, tag = image.rsplit(":", 1)
        registry_host, repository = name.split("/", 1)
        out[image] = reg.push(f"{PREFIX[registry_host]}/{repository}", tag, media_type=kind)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the token server ----------------------------------------------------------------------------------------------

@dataclass
class TokenServer:
    """Issues registry tokens by the distribution token spec (RS256 JWTs with the signing certificate in `x5c`).
    `grant`: the actions granted on every repository asked for ([] refuses nothing but grants nothing; None answers 401)."""

    directory: Path
    grant: list[str] | None = field(default_factory=lambda: ["pull", "push"])
    requests: list[dict[str, list[str]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ISSUER)])
        now = dt.datetime.now(dt.UTC)
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(self.key.public_key())
                     .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
                     .not_valid_after(now + dt.timedelta(hours=1)).sign(self.key, hashes.SHA256()))
        self.cert_file = self.directory / "token-cert.pem"
        self.cert_file.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                server.requests.append(query)
                if server.grant is None:
                    self.send_response(401)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = json.dumps({"token": server.token(query.get("scope", [""])[0])}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.realm = f"http://127.0.0.1:{self.httpd.server_port}/token"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def token(self, scope: str) -> str:
        _, name, _ = [*scope.split(":"), "", ""][:3]
        now = int(time.time())
        claims = {"iss": ISSUER, "sub": "test", "aud": SERVICE, "iat": now, "nbf": now - 10, "exp": now + 300,
                  "jti": uuid.uuid4().hex, "access": [{"type": "repository", "name": name, "actions": self.grant}] if name else []}
        x5c = [base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()]
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"x5c": x5c})

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# --- the registry ----------------------------------------------------------------------------------------------------

@dataclass
class Registry:
    url: str                                   # http://127.0.0.1:<port>
    auth: str                                  # "none", "htpasswd" or "token"
    user: tuple[str, str] | None = None        # htpasswd's user
    pushed: dict[str, str] = field(default_factory=dict)   # "repository:tag" -> digest

    @property
    def host(self) -> str:
        return self.url.removeprefix("http://")

    def client(self) -> oras.provider.Registry:
        reg = oras.provider.Registry(hostname=self.host, insecure=True, auth_backend="basic" if self.auth == "htpasswd" else "token")
        if self.user is not None:
            reg.auth.set_basic_auth(*self.user)
        return reg

    def push(self, repository: str, tag: str, media_type: str = OCI_INDEX, platforms: tuple[str, ...] = ("linux/amd64", "linux/arm64")) -> str:
        """Push an image (one manifest, or an index or manifest list of one manifest per platform) and return the
        digest of what the tag names: the sha256 of the bytes sent."""
        reg = self.client()
        if media_type in (OCI_INDEX, DOCKER_LIST):
            child = OCI_MANIFEST if media_type == OCI_INDEX else DOCKER_MANIFEST
            entries = []
            for platform in platforms:
                body, digest = self._manifest(reg, repository, child, platform)
                os_, arch = platform.split("/")
                entries.append({"mediaType": child, "digest": digest, "size": len(body), "platform": {"architecture": arch, "os": os_}})
            data = json.dumps({"schemaVersion": 2, "mediaType": media_type, "manifests": entries}, indent=3).encode()
        else:
            data, _ = self._build_manifest(reg, repository, media_type, platforms[0])
        digest = self._put_manifest(reg, repository, tag, media_type, data)
        self.pushed[f"{repository}:{tag}"] = digest
        return digest

    def _build_manifest(self, reg: oras.provider.Registry, repository: str, media_type: str, platform: str) -> tuple[bytes, str]:
        os_, arch = platform.split("/")
        with self._tmp() as tmp:
            config = tmp / "config.json"
            config.write_text(json.dumps({"architecture": arch, "os": os_, "rootfs": {"type": "layers", "diff_ids": []}}))
            layer = tmp / "layer.tar.gz"
            layer.write_bytes(os.urandom(256))
            container = f"{self.host}/{repository}"
            blobs = []
            for path, kind in ((config, CONFIG_TYPE[media_type]), (layer, LAYER_TYPE[media_type])):
                desc = oras.oci.NewLayer(str(path), media_type=kind)
                desc.pop("annotations", None)
                response = reg.upload_blob(str(path), container, desc)
                assert response.status_code in (200, 201, 202), response.text
                blobs.append(desc)
        data = json.dumps({"schemaVersion": 2, "mediaType": media_type, "config": blobs[0], "layers": [blobs[1]]}).encode()
        return data, "sha256:" + hashlib.sha256(data).hexdigest()

    def _manifest(self, reg: oras.provider.Registry, repository: str, media_type: str, platform: str) -> tuple[bytes, str]:
        data, digest = self._build_manifest(reg, repository, media_type, platform)
        self._put_manifest(reg, repository, digest, media_type, data)
        return data, digest

    def _put_manifest(self, reg: oras.provider.Registry, repository: str, reference: str, media_type: str, data: bytes) -> str:
        response = reg.do_request(f"{self.url}/v2/{repository}/manifests/{reference}", "PUT", data=data,
                                  headers={"Content-Type": media_type})
        assert response.status_code == 201, (response.status_code, response.text)
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        assert response.headers["Docker-Content-Digest"] == digest
        return digest

    @contextmanager
    def _tmp(self) -> Iterator[Path]:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="oci-") as d:
            yield Path(d)


@contextmanager
def registry(directory: Path, auth: str = "none", tokens: TokenServer | None = None) -> Iterator[Registry]:
    """A docker-registry process on a free loopback port, stopped (and waited for) on exit."""
    assert Path(REGISTRY_BIN).exists(), "docker-registry is not installed: apt-get install -y docker-registry"
    port = free_port()
    directory.mkdir(parents=True, exist_ok=True)
    storage = directory / "storage"
    lines = ["version: 0.1", "log:", "  level: error", "  accesslog:", "    disabled: true", "storage:",
             f"  filesystem:\n    rootdirectory: {storage}", "  delete:\n    enabled: true", "http:", f"  addr: 127.0.0.1:{port}"]
    user = None
    if auth == "htpasswd":
        user = ("AWS", "ecr-password-" + uuid.uuid4().hex[:8])
        htpasswd = directory / "htpasswd"
        htpasswd.write_text(f"{user[0]}:{bcrypt.hashpw(user[1].encode(), bcrypt.gensalt(rounds=4)).decode()}\n")
        lines += ["auth:", "  htpasswd:", "    realm: test-basic-realm", f"    path: {htpasswd}"]
    elif auth == "token":
        assert tokens is not None
        lines += ["auth:", "  token:", f"    realm: {tokens.realm}", f"    service: {SERVICE}", f"    issuer: {ISSUER}",
                  f"    rootcertbundle: {tokens.cert_file}"]
    config = directory / "config.yml"
    config.write_text("\n".join(lines) + "\n")
    log = (directory / "registry.log").open("wb")
    proc = subprocess.Popen([REGISTRY_BIN, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                if requests.get(f"{url}/v2/", timeout=1).status_code in (200, 401):
                    break
            except requests.ConnectionError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"docker-registry did not start: {(directory / 'registry.log').read_text()[-2000:]}")
            time.sleep(0.05)
        yield Registry(url, auth, user)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


@contextmanager
def silent_server() -> Iterator[str]:
    """A TCP server on loopback that accepts connections and never answers (a hung registry or proxy)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
                held.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in held:
            conn.close()
        sock.close()


def closed_port() -> str:
    """A loopback URL where nothing listens (a registry that is down)."""
    return f"http://127.0.0.1:{free_port()}"


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """`handler` served on a free local port in a thread, for as long as the block runs: its base URL."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@contextmanager
def relay(upstream: str, keep_digest: bool = False, alter_body: bool = False) -> Iterator[str]:
    """A proxy in front of `upstream` like some registries and caches: no HEAD (405), and GET answers without
    `Docker-Content-Digest` (or, `keep_digest` with `alter_body`, with the header but a body it changed)."""

    class Handler(BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:
            self.send_response(405)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:
            headers = {k: v for k, v in self.headers.items() if k.lower() in ("accept", "authorization")}
            response = requests.get(upstream + self.path, headers=headers, timeout=5)
            body = response.content + (b"\n" if alter_body else b"")
            self.send_response(response.status_code)
            for key, value in response.headers.items():
                if key.lower() in ("content-type", "www-authenticate") or (key.lower() == "docker-content-digest" and keep_digest):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    with serving(Handler) as url:
        yield url


@contextmanager
def redirector(upstream: str) -> Iterator[str]:
    """A front host that sends every request on to `upstream` with a 307, as registry.k8s.io sends clients to a
    regional backend."""

    class Handler(BaseHTTPRequestHandler):
        def _redirect(self) -> None:
            self.send_response(307)
            self.send_header("Location", upstream + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_HEAD = _redirect

        def log_message(self, *args: object) -> None:
            pass

    with serving(Handler) as url:
        yield url
