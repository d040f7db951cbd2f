from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def copy_project(dest: Path) -> Path:
    """The project's Pulumi.yaml and stacks copied to `dest`, for tests that edit config files."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "Pulumi.yaml", dest / "Pulumi.yaml")
    shutil.copytree(ROOT / "stacks", dest / "stacks")
    return dest


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the project's stacks in a temporary directory, for tests that edit config files."""
    return copy_project(tmp_path)


# The bundled prod stack pins its images to placeholder digests until `vllm-fleet pin` resolves the real ones (D15
# refuses them). `prod_root` is the project after a real `pin` against the tests' registry; tests that only need some
# real-looking digest in the prod stack use resolve_prod_digest, a fast stand-in (one digest for every image).
PLACEHOLDER_DIGEST = "sha256:" + "0" * 64
RESOLVED_DIGEST = "sha256:f37a065c3054b79499c744271d8b22e5e19482b4042eb8dde641ac738ae5c985"


def resolve_prod_digest(project: Path) -> Path:
    edit(project / "stacks" / "Pulumi.prod.yaml", PLACEHOLDER_DIGEST, RESOLVED_DIGEST)
    return project


@pytest.fixture(scope="session")
def bundled_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, dict[str, str]]]:
    """A real registry (docker-registry on loopback) holding every image of the bundled stacks; image -> digest."""
    from tests.registry_server import push_bundled, registry

    with registry(tmp_path_factory.mktemp("registry")) as reg:
        yield reg, push_bundled(reg)


@pytest.fixture(scope="session")
def prod_root(tmp_path_factory: pytest.TempPathFactory, bundled_registry: tuple[Any, dict[str, str]]) -> Path:
    """The project after `vllm-fleet pin --stack prod` against the tests' registry, as before a first deploy
    (read-only: shared by the session)."""
    from fleet.cli import main
    from tests.registry_server import mirror_flags

    project = copy_project(tmp_path_factory.mktemp("prod-resolved"))
    assert main(["--root", str(project), "pin", "--stack", "prod", *mirror_flags(bundled_registry[0].url)]) == 0
    assert PLACEHOLDER_DIGEST not in (project / "stacks" / "Pulumi.prod.yaml").read_text()
    return project


def edit(path: Path, old: str, new: str) -> None:
    """Replace `old`, which must be in the file, by `new`."""
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new), encoding="utf-8")


# Edits of the dev stack that several tests make.
ASSISTANT_LORA = """    lora:
      modules:
        - name: support-tone
          path: acme-ml/llama-3.1-8b-support-tone-lora
          revision: 5b2c8e1f0a9d4c7e8b3a6f1d2e9c0b7a4d8f5e21
      max_rank: 32
"""


def drop_lora(project: Path) -> None:
    """Assistant's llama-8b without its LoRA adapter (adapters are prefetched, so a stack whose cache the stack does
    not fill cannot serve them)."""
    edit(project / "stacks" / "teams" / "assistant.yaml", ASSISTANT_LORA, "")


def no_cache(project: Path) -> None:
    drop_lora(project)
    edit(project / "stacks" / "Pulumi.dev.yaml", "    backend: efs", "    backend: none")


def s3_cache(project: Path) -> None:
    drop_lora(project)
    edit(project / "stacks" / "Pulumi.dev.yaml", "    backend: efs", "    backend: s3")


def karpenter_l40s(project: Path) -> None:
    edit(project / "stacks" / "Pulumi.dev.yaml",
         "      capacity_type: on-demand\n      min_size: 1\n      max_size: 4\n      desired_size: 2\n",
         "      capacity_type: on-demand\n      provisioner: karpenter\n      max_size: 4\n")


def keda_scale_to_zero(project: Path) -> None:
    """KEDA autoscaling with scale to zero behind the nginx ingress (whose request count wakes a model at zero), and
    search's qwen-3b autoscaled from 0 to 2 replicas."""
    stack = project / "stacks" / "Pulumi.dev.yaml"
    edit(stack, "    backend: hpa", "    backend: keda\n    allow_scale_to_zero: true")
    edit(stack, "    namespace: gateway\n", "    namespace: gateway\n    kind: ingress\n    hostname_suffix: llm.dev.example.com\n"
                                          "    tls_secret_name: llm-dev-tls\n")
    team = project / "stacks" / "teams" / "search.yaml"
    edit(team, "    profile: throughput\n", "    profile: throughput\n    autoscaling: {min_replicas: 0, max_replicas: 2}\n")
    grant(project, "search", gpu_quota={"dev": 4, "prod": 16})


ALL_SECRETS = ["assistant-api-key", "hf-token", "research-api-key", "search-api-key"]


def grant(project: Path, team: str, gpu_quota: dict[str, int] | None = None, secrets: list[str] | None = None,
          rbac_group: str | None = None, only: bool = False) -> None:
    """Set what stacks/tenancy.yaml grants `team` (`only`: drop every other team's entry)."""
    path = project / "stacks" / "tenancy.yaml"
    data = {"teams": {}} if only else yaml.safe_load(path.read_text(encoding="utf-8"))
    entry = data["teams"].setdefault(team, {"gpu_quota": {}, "secrets": list(ALL_SECRETS)})
    if gpu_quota is not None:
        entry["gpu_quota"] = gpu_quota
    if secrets is not None:
        entry["secrets"] = secrets
    if rbac_group is not None:
        entry["rbac_group"] = rbac_group
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# The program renders a Capacity Block's schedule from the time `pulumi up` runs (fleet.clock): the suite pins that time
# inside the bundled prod block's window, so its outcome does not depend on the day it runs.
os.environ["VLLM_FLEET_NOW"] = "2026-12-07T12:00:00Z"
