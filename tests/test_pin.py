"""`vllm-fleet pin` against a real registry (the CNCF distribution registry, started by tests/registry_server.py):
every image the stacks render resolved to the digest of what was pushed (multi-arch indexes included), written into
the stack file in place, `plan` clean afterwards; authentication, unknown tags, timeouts and a registry that is down
end in one-line errors with nothing written."""

from __future__ import annotations

import base64
import os
import re
import time
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from fleet.cli import main
from fleet.offline.plan import make_plan
from fleet.pin import PinError, find, set_value
from fleet.registry import ECR_HOST, ImageRef, Mirror, RegistryError, Resolver, default_credentials, ecr_credentials
from fleet.spec.load import load
from tests.conftest import PLACEHOLDER_DIGEST, ROOT, copy_project
from tests.registry_server import (
    DLC,
    DOCKER_MANIFEST,
    IMAGES,
    Registry,
    TokenServer,
    closed_port,
    mirror_flags,
    redirector,
    registry,
    relay,
    silent_server,
)

VLLM, EFA = IMAGES[0][0], IMAGES[1][0]            # docker.io/vllm/vllm-openai:v<version>, the EFA image
PLUGIN, DCGM = IMAGES[2][0], IMAGES[3][0]
AUTOSCALER = IMAGES[9][0]                          # the Cluster Autoscaler of the stack's Kubernetes minor


def line_of(stack: str, text: str) -> int:
    lines = (ROOT / "stacks" / f"Pulumi.{stack}.yaml").read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if text in line)


@pytest.fixture(scope="module")
def hub(bundled_registry: tuple[Registry, dict[str, str]]) -> tuple[Registry, dict[str, str]]:
    return bundled_registry


def pin(project: Path, *args: str) -> int:
    return main(["--root", str(project), "pin", *args])


def images_in(plan_root: Path, stack: str) -> set[str]:
    plan = make_plan(stack, plan_root)
    assert plan.exit_code == 0 and plan.mandatory == [] and plan.schema_problems == []
    out = set()
    for c in plan.kubernetes_objects():
        out |= set(re.findall(r"'image': '([^']+)'", str(c.inputs)))
    return out


def test_pin_prod_turns_every_placeholder_into_the_pushed_digest_and_plan_is_clean(hub, tmp_path: Path, capsys) -> None:
    reg, digests = hub
    project = copy_project(tmp_path)
    stack = project / "stacks" / "Pulumi.prod.yaml"
    before = stack.read_text()
    assert before.count(PLACEHOLDER_DIGEST) == 10

    assert pin(project, "--stack", "prod", *mirror_flags(reg.url)) == 0
    out = capsys.readouterr().out
    after = stack.read_text()
    # exactly the ten placeholders replaced, in place, each by the digest of its own image; comments and layout kept
    expected = before
    for image, _ in IMAGES[2:]:
        expected = expected.replace(f"{image}@{PLACEHOLDER_DIGEST}", f"{image}@{digests[image]}")
    for image, _ in IMAGES[:2]:    # the vLLM image's and the EFA image's `digest:` fields, in that order
        expected = expected.replace(f"digest: {PLACEHOLDER_DIGEST}", f"digest: {digests[image]}", 1)
    for image, _ in IMAGES:
        assert digests[image] in out
    assert after == expected
    assert PLACEHOLDER_DIGEST not in after
    assert "wrote stacks/Pulumi.prod.yaml" in out

    # every image the program renders is one that was pushed, pinned to its digest: `pin` misses none
    assert images_in(project, "prod") == {f"{image}@{digests[image]}" for image, _ in IMAGES}

    # a second run finds nothing to change and leaves the file as it is
    assert pin(project, "--stack", "prod", *mirror_flags(reg.url)) == 0
    assert "nothing to write" in capsys.readouterr().out
    assert stack.read_text() == after


def test_pin_dev_adds_the_digest_fields_the_stack_left_to_their_defaults(hub, tmp_path: Path, capsys) -> None:
    reg, digests = hub
    project = copy_project(tmp_path)
    stack = project / "stacks" / "Pulumi.dev.yaml"
    before = stack.read_text()
    assert pin(project, "--stack", "dev", *mirror_flags(reg.url)) == 0
    after = stack.read_text()
    vllm, plugin, dcgm, autoscaler = digests[VLLM], digests[PLUGIN], digests[DCGM], digests[AUTOSCALER]
    assert after == before.replace("    allow_tag_only: true\n", f"    allow_tag_only: true\n    digest: {vllm}\n").replace(
        "      secure: v1:devAssistantApiKeyCiphertextPlaceholder\n",
        "      secure: v1:devAssistantApiKeyCiphertextPlaceholder\n"
        f"  vllm-fleet:device_plugin:\n    image: {PLUGIN}@{plugin}\n"
        f"    dcgm_image: {DCGM}@{dcgm}\n"
        f"  vllm-fleet:node_autoscaler:\n    image: {AUTOSCALER}@{autoscaler}\n")
    assert images_in(project, "dev") == {f"{VLLM}@{vllm}", f"{PLUGIN}@{plugin}", f"{DCGM}@{dcgm}", f"{AUTOSCALER}@{autoscaler}"}


def test_dry_run_shows_the_changes_and_writes_nothing(hub, tmp_path: Path, capsys) -> None:
    reg, digests = hub
    project = copy_project(tmp_path)
    files = {p: p.read_bytes() for p in (project / "stacks").glob("Pulumi.*.yaml")}
    assert pin(project, "--dry-run", *mirror_flags(reg.url)) == 0   # every stack
    out = capsys.readouterr().out
    assert (f"stacks/Pulumi.prod.yaml:{line_of('prod', 'digest: sha256:0')} config.vllm-fleet:vllm.digest: {VLLM} placeholder -> "
            f"{digests[VLLM]}") in out
    assert f"stacks/Pulumi.dev.yaml:{line_of('dev', 'vllm-fleet:vllm:')} config.vllm-fleet:vllm.digest: {VLLM} (tag only) -> " in out
    assert "dry run: 14 digests would change; nothing written" in out
    assert {p: p.read_bytes() for p in files} == files


def test_an_unknown_tag_names_the_field_and_nothing_is_written(hub, tmp_path: Path, capsys) -> None:
    reg, _ = hub
    project = copy_project(tmp_path)
    stack = project / "stacks" / "Pulumi.prod.yaml"
    stack.write_text(stack.read_text().replace(f"{PLUGIN}@", "nvcr.io/nvidia/k8s-device-plugin:v9.9.9@"))
    before = stack.read_bytes()
    assert pin(project, "--stack", "prod", *mirror_flags(reg.url)) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: stacks/Pulumi.prod.yaml:{line_of('prod', PLUGIN)} config.vllm-fleet:device_plugin.image: nvcr.io/nvidia/k8s-device-plugin:v9.9.9: "
                   f"{reg.host} has no tag v9.9.9 in nvcr/nvidia/k8s-device-plugin (404 manifest unknown) — check the tag and "
                   "repository, or push the image",
                   "pin: 1 image not resolved — nothing written"]
    assert stack.read_bytes() == before


def test_a_registry_that_never_answers_times_out_once_per_host(hub, tmp_path: Path, capsys) -> None:
    reg, _ = hub
    project = copy_project(tmp_path)
    before = (project / "stacks" / "Pulumi.prod.yaml").read_bytes()
    with silent_server() as hung:
        started = time.monotonic()
        assert pin(project, "--stack", "prod", "--timeout", "1", *mirror_flags(reg.url, **{"nvcr.io": hung})) == 1
        took = time.monotonic() - started
    err = capsys.readouterr().err
    host = hung.removeprefix("http://")
    assert (f"error: stacks/Pulumi.prod.yaml:{line_of('prod', PLUGIN)} config.vllm-fleet:device_plugin.image: {PLUGIN}: "
            f"{host} did not answer within 1 s — is the registry (or --registry-mirror) reachable from here? raise --timeout "
            "for a slow link") in err
    assert "config.vllm-fleet:device_plugin.dcgm_image: nvcr.io/nvidia/k8s/dcgm-exporter:4.4.1-4.6.0-ubuntu22.04: " f"{host} did not answer" in err
    assert "pin: 2 images not resolved — nothing written" in err
    assert took < 8     # one timeout for the host, not one per image
    assert (project / "stacks" / "Pulumi.prod.yaml").read_bytes() == before


def test_a_registry_that_is_down_is_one_line_and_nothing_is_written(tmp_path: Path, capsys) -> None:
    project = copy_project(tmp_path)
    files = {p: p.read_bytes() for p in (project / "stacks").glob("Pulumi.*.yaml")}
    down = closed_port()
    assert pin(project, "--stack", "dev", "--stack", "prod", *mirror_flags(down)) == 1
    err = capsys.readouterr().err.splitlines()
    host = down.removeprefix("http://")
    assert err[0] == (f"error: stacks/Pulumi.dev.yaml:{line_of('dev', 'vllm-fleet:vllm:')} config.vllm-fleet:vllm.digest: {VLLM}: cannot reach "
                      f"{host} (Connection refused) — is the registry up and reachable from here (network, proxy, --registry-mirror)?")
    assert err[-1] == "pin: 10 images not resolved — nothing written"
    assert all(line.startswith("error: stacks/Pulumi.") for line in err[:-1])
    assert {p: p.read_bytes() for p in files} == files


# --- authentication ----------------------------------------------------------------------------------------------------

def test_a_registry_with_token_auth_is_read_with_an_anonymous_bearer_token(tmp_path: Path) -> None:
    tokens = TokenServer(tmp_path)
    try:
        with registry(tmp_path / "registry", "token", tokens) as reg:
            digest = reg.push("dockerhub/vllm/vllm-openai", "v0.33.0")
            resolver = Resolver({"docker.io": Mirror.parse(f"docker.io={reg.url}/dockerhub")}, timeout=5)
            asked = len(tokens.requests)
            assert resolver.digest(ImageRef.parse("vllm/vllm-openai:v0.33.0")) == digest
            # the token was asked for by the challenge's realm, service and scope: pull on that repository
            assert tokens.requests[asked:] == [{"scope": ["repository:dockerhub/vllm/vllm-openai:pull"], "service": ["test-registry"]}]

            # a front host that redirects to the registry: the token is asked for by the host that challenges
            with redirector(reg.url) as front:
                redirected = Resolver({"registry.k8s.io": Mirror.parse(f"registry.k8s.io={front}/dockerhub")}, timeout=5)
                assert redirected.digest(ImageRef.parse("registry.k8s.io/vllm/vllm-openai:v0.33.0")) == digest

            tokens.grant = []        # a token that grants nothing: the registry refuses it
            refused = Resolver({"docker.io": Mirror.parse(f"docker.io={reg.url}/dockerhub")}, timeout=5)
            with pytest.raises(RegistryError) as exc:
                refused.digest(ImageRef.parse("vllm/vllm-openai:v0.33.0"))
            assert str(exc.value) == (f"docker.io/vllm/vllm-openai:v0.33.0: {reg.host} refused the credentials it asked for (401 "
                                      "after authenticating) — the image must be public, or resolve it through a mirror that "
                                      "can read it (--registry-mirror)")

            tokens.grant = None      # the token server turns the client away
            with pytest.raises(RegistryError) as exc:
                Resolver({"docker.io": Mirror.parse(f"docker.io={reg.url}/dockerhub")}, timeout=5).digest(
                    ImageRef.parse("vllm/vllm-openai:v0.33.0"))
            token_host = tokens.realm.removeprefix("http://").removesuffix("/token")
            assert str(exc.value) == (f"docker.io/vllm/vllm-openai:v0.33.0: the token server {token_host} refused a pull token for "
                                      "dockerhub/vllm/vllm-openai (401) — the image must be public, or resolve it through a "
                                      "mirror that can read it (--registry-mirror)")
    finally:
        tokens.close()


def ecr_client(token: str | None = None, error: str | None = None):
    client = boto3.client("ecr", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
    stub = Stubber(client)
    if error is not None:
        stub.add_client_error("get_authorization_token", service_error_code=error, service_message="not authorized to perform ecr:GetAuthorizationToken")
    else:
        stub.add_response("get_authorization_token", {"authorizationData": [{
            "authorizationToken": token, "proxyEndpoint": f"https://{DLC}", "expiresAt": "2026-12-08T00:00:00Z"}]})
    stub.activate()
    return client


def test_an_ecr_registry_is_read_with_basic_auth_from_the_ecr_authorization_token(tmp_path: Path) -> None:
    assert ECR_HOST.match(DLC) and ECR_HOST.match(DLC).group(2) == "us-east-1"  # type: ignore[union-attr]
    assert default_credentials("ghcr.io") is None
    with registry(tmp_path, "htpasswd") as reg:       # ECR answers with a Basic challenge, as htpasswd does
        assert reg.user is not None
        digest = reg.push("aws-dlc/vllm", "0.33.0-gpu-py312-ec2", DOCKER_MANIFEST)
        ref = ImageRef.parse(f"{DLC}/vllm:0.33.0-gpu-py312-ec2")
        mirrors = {DLC: Mirror.parse(f"{DLC}={reg.url}/aws-dlc")}
        token = base64.b64encode(f"{reg.user[0]}:{reg.user[1]}".encode()).decode()
        resolver = Resolver(mirrors, timeout=5, credentials=lambda host: ecr_credentials(DLC, ecr_client(token)))
        assert resolver.digest(ref) == digest

        wrong = base64.b64encode(b"AWS:expired").decode()
        with pytest.raises(RegistryError, match=r"refused the credentials it asked for \(401 after authenticating\)"):
            Resolver(mirrors, timeout=5, credentials=lambda host: ecr_credentials(DLC, ecr_client(wrong))).digest(ref)
        with pytest.raises(RegistryError) as exc:
            Resolver(mirrors, timeout=5, credentials=lambda host: ecr_credentials(DLC, ecr_client(error="AccessDeniedException"))).digest(ref)
        assert str(exc.value) == (f"{DLC}: ECR refused the authorization token (AccessDeniedException: not authorized to perform "
                                  "ecr:GetAuthorizationToken) — the AWS identity needs ecr:GetAuthorizationToken")
        with pytest.raises(RegistryError) as exc:
            Resolver(mirrors, timeout=5).digest(ref)   # no credentials for a loopback endpoint
        assert "asks for a login (Basic auth)" in str(exc.value)


def test_ecr_without_aws_credentials_says_how_to_configure_them(monkeypatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(RegistryError) as exc:
        ecr_credentials(DLC)
    assert str(exc.value) == (f"{DLC}: no AWS credentials for ECR — configure the standard chain (AWS_PROFILE, "
                              "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, `aws sso login`) with ecr:GetAuthorizationToken")


# --- references, mirrors and flags -------------------------------------------------------------------------------------

def test_references_are_read_as_a_node_reads_them() -> None:
    assert ImageRef.parse("vllm/vllm-openai:v0.33.0") == ImageRef("docker.io", "vllm/vllm-openai", "v0.33.0")
    assert ImageRef.parse("busybox") == ImageRef("docker.io", "library/busybox", None)
    assert ImageRef.parse("localhost:5000/a/b:1@sha256:" + "a" * 64) == ImageRef("localhost:5000", "a/b", "1", "sha256:" + "a" * 64)
    assert ImageRef.parse(f"{DLC}/vllm:0.33.0-gpu-py312-ec2").registry == DLC
    with pytest.raises(ValueError, match="not an image reference"):
        ImageRef.parse("Docker.io/UPPER:1")
    assert Mirror.parse("nvcr.io=https://harbor.example.com/nvcr-proxy/") == Mirror("nvcr.io", "https://harbor.example.com", "nvcr-proxy")


def test_bad_flags_and_unknown_stacks_are_config_errors(tmp_path: Path, capsys) -> None:
    project = copy_project(tmp_path)
    assert pin(project, "--registry-mirror", "docker.io") == 2
    assert capsys.readouterr().err.strip() == ("--registry-mirror 'docker.io': expected REGISTRY=URL, e.g. "
                                               "docker.io=https://mirror.example.com or nvcr.io=https://harbor.example.com/nvcr-proxy")
    assert pin(project, "--stack", "staging") == 2
    assert "staging" in capsys.readouterr().err


# --- editing the stack file in place -----------------------------------------------------------------------------------

STACK = """\
# top comment
config:
  aws:region: us-east-1   # trailing
  vllm:
    version: 0.33.0
    # a comment inside
    digest: "sha256:0000"  # quoted
  vllm-fleet:gateway: {kind: none}
  vllm-fleet:device_plugin:
    mig_strategy: none

    time_slicing:
      enabled: false
  # last comment
"""


def test_set_value_replaces_the_value_alone_and_adds_missing_keys_where_they_belong() -> None:
    text = set_value(STACK, "f.yaml", ("vllm-fleet:vllm", "digest"), "sha256:" + "1" * 64)
    assert text == STACK.replace('"sha256:0000"', '"sha256:' + "1" * 64 + '"')      # unprefixed key found, quotes kept
    text = set_value(text, "f.yaml", ("vllm-fleet:device_plugin", "image"), "nvcr.io/x:1@sha256:" + "2" * 64)
    assert text.endswith("      enabled: false\n    image: nvcr.io/x:1@sha256:" + "2" * 64 + "\n  # last comment\n")
    text = set_value(text, "f.yaml", ("vllm-fleet:vllm", "efa", "digest"), "sha256:" + "3" * 64)
    assert "    digest: \"sha256:" + "1" * 64 + "\"  # quoted\n    efa:\n      digest: sha256:" + "3" * 64 + "\n" in text
    assert find(text, "f.yaml", ("vllm-fleet:vllm", "efa", "digest")).value == "sha256:" + "3" * 64  # type: ignore[union-attr]
    with pytest.raises(PinError, match=r"f.yaml:10: cannot add `epp_image: x` to a flow mapping"):
        set_value(text, "f.yaml", ("vllm-fleet:gateway", "epp_image"), "x")


def test_the_loader_accepts_what_pin_writes(hub, tmp_path: Path) -> None:
    reg, _ = hub
    project = copy_project(tmp_path)
    assert pin(project, *mirror_flags(reg.url)) == 0
    for stack in ("dev", "prod"):
        load(stack, project)


def test_without_a_digest_header_the_digest_is_the_sha256_of_the_manifest_served(hub) -> None:
    reg, digests = hub
    ref = ImageRef.parse(VLLM)
    with relay(reg.url) as proxy:
        resolver = Resolver({"docker.io": Mirror.parse(f"docker.io={proxy}/dockerhub")}, timeout=5)
        assert resolver.digest(ref) == digests[VLLM]   # the index's digest, from its bytes
    with relay(reg.url, keep_digest=True, alter_body=True) as proxy:
        resolver = Resolver({"docker.io": Mirror.parse(f"docker.io={proxy}/dockerhub")}, timeout=5)
        with pytest.raises(RegistryError, match=r"whose sha256 \(sha256:[0-9a-f]{64}\) is not the digest it names "
                                                r"\(" + digests[VLLM] + r"\) — a proxy altered"):
            resolver.digest(ref)


def test_a_malformed_stack_file_is_a_config_error_and_untouched(hub, tmp_path: Path, capsys) -> None:
    reg, _ = hub
    project = copy_project(tmp_path)
    stack = project / "stacks" / "Pulumi.prod.yaml"
    stack.write_text(re.sub(r"\n    version: ", "\n    version: [", stack.read_text(), count=1))
    before = stack.read_bytes()
    assert pin(project, "--stack", "prod", *mirror_flags(reg.url)) == 2
    err = capsys.readouterr().err
    assert "stacks/Pulumi.prod.yaml:" in err and "Traceback" not in err
    assert stack.read_bytes() == before
