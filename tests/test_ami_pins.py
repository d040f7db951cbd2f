"""GPU pools pin their EKS AMI release (`ami_version`), prod warns when one does not, and `vllm-fleet upgrade
ami-al2023|ami-bottlerocket VERSION` bumps it in place after checking the stack with it."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.cli import main
from fleet.errors import ConfigError
from fleet.offline.plan import capture
from fleet.render.karpenter import ami_alias
from fleet.spec.load import load
from fleet.spec.stack import GpuPool
from tests.conftest import ROOT, edit, karpenter_l40s

# amazon-eks-ami's release notes, AMI Release v20260714: Kubernetes 1.33 → release version 1.33.13-20260714.
AL2023 = "1.33.13-20260714"
POOL = {"name": "p", "instance_types": ["g6e.xlarge"], "max_size": 1, "subnet_ids": ["subnet-0123456789abcdef0"]}


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def test_the_karpenter_alias_is_the_pinned_release_or_latest() -> None:
    assert ami_alias(GpuPool.model_validate(POOL)) == "al2023@latest"
    assert ami_alias(GpuPool.model_validate({**POOL, "ami_version": AL2023})) == "al2023@v20260714"
    bottlerocket = {**POOL, "ami_family": "bottlerocket", "ami_version": "1.46.0-431fe75a"}
    assert ami_alias(GpuPool.model_validate(bottlerocket)) == "bottlerocket@v1.46.0"
    with pytest.raises(ValueError, match="not an AL2023 release"):
        GpuPool.model_validate({**POOL, "ami_version": "1.46.0-431fe75a"})


def test_managed_node_groups_get_the_release_and_karpenter_pools_the_alias(project: Path) -> None:
    prod = {c.name: c for c in capture(load("prod", ROOT))}
    assert prod["pool-h100-ng"].inputs["releaseVersion"] == AL2023 and prod["pool-l40s-ng"].inputs["releaseVersion"] == AL2023
    assert prod["pool-l4-ng"].inputs["releaseVersion"] == AL2023
    karpenter_l40s(project)
    edit(project / "stacks" / "Pulumi.dev.yaml", "    - name: l40s\n", f"    - name: l40s\n      ami_version: {AL2023}\n")
    dev = {c.name: c for c in capture(load("dev", project))}
    assert dev["ec2nodeclass-l40s"].inputs["spec"]["amiSelectorTerms"] == [{"alias": "al2023@v20260714"}]


def bottlerocket_l4(project: Path) -> None:
    """The prod stack's L4 pool on Bottlerocket, unpinned (the bundled stack pins every pool to AL2023)."""
    edit(project / "stacks" / "Pulumi.prod.yaml", f"    - name: l4\n      ami_version: {AL2023}\n", "    - name: l4\n      ami_family: bottlerocket\n")


def test_every_bundled_prod_pool_pins_its_ami(capsys) -> None:
    code, _, err = run(["--root", str(ROOT), "validate", "--stack", "prod"], capsys)
    assert code == 0 and "does not pin its AMI" not in err
    assert all(p.ami_version for p in load("prod", ROOT).config.gpu_pools)


def test_prod_warns_about_an_unpinned_pool_and_an_al2023_release_must_match_kubernetes(project: Path, capsys) -> None:
    bottlerocket_l4(project)
    code, _, err = run(["--root", str(project), "validate", "--stack", "prod"], capsys)
    assert code == 0
    assert "config.vllm-fleet:gpu_pools[2]: prod pool 'l4' does not pin its AMI" in err and "`vllm-fleet upgrade ami-bottlerocket VERSION" in err
    assert "pool 'l40s' does not pin" not in err
    edit(project / "stacks" / "Pulumi.prod.yaml", f"      ami_version: {AL2023}\n", "      ami_version: 1.32.9-20260714\n")
    with pytest.raises(ConfigError) as exc:
        load("prod", project)
    assert "config.vllm-fleet:gpu_pools[0].ami_version: AL2023 release 1.32.9-20260714 is built for Kubernetes 1.32, the stack runs 1.33" in str(exc.value)


def test_upgrade_pins_every_pool_of_the_family_in_place(project: Path, capsys) -> None:
    bottlerocket_l4(project)
    path = project / "stacks" / "Pulumi.prod.yaml"
    before = path.read_text()
    code, out, _ = run(["--root", str(project), "upgrade", "ami-bottlerocket", "1.46.0-431fe75a", "--stack", "prod"], capsys)
    assert code == 0, out
    assert "stack prod pool l4 (stacks/Pulumi.prod.yaml:" in out and "unpinned → 1.46.0-431fe75a" in out
    assert "rolls every node of the pool: EKS replaces the node group's nodes" in out and "wrote stacks/Pulumi.prod.yaml" in out
    assert path.read_text() == before.replace("    - name: l4\n", "    - name: l4\n      ami_version: 1.46.0-431fe75a\n", 1)
    assert next(p for p in load("prod", project).config.gpu_pools if p.name == "l4").ami_version == "1.46.0-431fe75a"
    code, out, _ = run(["--root", str(project), "upgrade", "ami-al2023", "1.33.14-20260801", "--stack", "prod", "--dry-run"], capsys)
    assert code == 0 and "pool h100 (stacks/Pulumi.prod.yaml:" in out and f"{AL2023} → 1.33.14-20260801" in out and "wrote" not in out
    assert "ami_version: 1.46.0-431fe75a" in path.read_text() and "1.33.14" not in path.read_text()
    l4 = {c.name: c for c in capture(load("prod", project))}["pool-l4-ng"].inputs
    assert l4["amiType"] == "BOTTLEROCKET_x86_64_NVIDIA" and l4["releaseVersion"] == "1.46.0-431fe75a"


@pytest.mark.parametrize("argv, problem", [
    (["upgrade", "ami-al2023", "v20260714"], "vllm-fleet upgrade ami-al2023 v20260714: not a al2023 release as EKS names it (e.g. 1.33.13-20260714)"),
    (["upgrade", "ami-bottlerocket", "latest"], "not a bottlerocket release as EKS names it"),
])
def test_a_release_that_is_not_one_is_a_one_line_error(project: Path, capsys, argv: list[str], problem: str) -> None:
    before = (project / "stacks" / "Pulumi.prod.yaml").read_text()
    code, out, err = run(["--root", str(project), *argv], capsys)
    assert code == 2 and out == "" and problem in err and len(err.strip().splitlines()) == 1
    assert (project / "stacks" / "Pulumi.prod.yaml").read_text() == before


def test_a_release_for_another_kubernetes_fails_the_check_and_writes_nothing(project: Path, capsys) -> None:
    before = (project / "stacks" / "Pulumi.prod.yaml").read_text()
    code, out, _ = run(["--root", str(project), "upgrade", "ami-al2023", "1.34.4-20260714", "--stack", "prod"], capsys)
    assert code == 1 and "is built for Kubernetes 1.34, the stack runs 1.33" in out and "stack prod not written" in out
    assert (project / "stacks" / "Pulumi.prod.yaml").read_text() == before
