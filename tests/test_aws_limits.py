"""AWS API constraints as rules (fleet.aws_limits): FSx for Lustre sizes and security groups, EFS's NFS port, and the
model cache's directories Job awaited longer than its own deadline."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.aws_limits import LUSTRE_PORTS, lustre_security_group_problems, lustre_storage_problem
from fleet.errors import ConfigError
from fleet.offline.engine import Captured
from fleet.offline.plan import capture
from fleet.spec.load import load
from tests.conftest import ROOT, edit

PROD_CACHE = "    backend: fsx-lustre\n    size_gib: 4800\n"


@pytest.fixture(scope="module")
def prod() -> dict[str, Captured]:
    return {c.name: c for c in capture(load("prod", ROOT))}


@pytest.mark.parametrize(("deployment", "size", "ok"), [
    ("PERSISTENT_2", 1200, True), ("PERSISTENT_2", 2400, True), ("PERSISTENT_2", 4800, True), ("PERSISTENT_2", 3600, False),
    ("PERSISTENT_2", 6000, False), ("SCRATCH_2", 3600, False), ("PERSISTENT_1", 7200, True),
    ("SCRATCH_1", 3600, True), ("SCRATCH_1", 4800, False), ("SCRATCH_1", 7200, True)])
def test_lustre_sizes_follow_the_fsx_api(deployment: str, size: int, ok: bool) -> None:
    assert (lustre_storage_problem(deployment, size) is None) is ok


def test_lustre_throughput_and_hdd_steps() -> None:
    assert lustre_storage_problem("PERSISTENT_2", 2400, 200) is not None      # a PERSISTENT_1 value
    assert lustre_storage_problem("PERSISTENT_1", 2400, 200) is None
    assert lustre_storage_problem("PERSISTENT_1", 6000, 12, "HDD") is None
    assert lustre_storage_problem("PERSISTENT_1", 3600, 40, "HDD") is None
    assert lustre_storage_problem("PERSISTENT_1", 3600, 12, "HDD") is not None


@pytest.mark.parametrize(("size", "fix"), [(3600, "use 2400 or 4800"), (6000, "use 4800 or 7200")])
def test_loader_refuses_a_lustre_size_the_api_rejects(project: Path, size: int, fix: str) -> None:
    """Before: any multiple of 1200 passed the loader (3600 GiB on PERSISTENT_2 failed at `pulumi up`)."""
    edit(project / "stacks" / "Pulumi.prod.yaml", PROD_CACHE, PROD_CACHE.replace("4800", str(size)))
    with pytest.raises(ConfigError) as err:
        load("prod", project)
    (issue,) = err.value.issues
    assert issue.file.endswith("Pulumi.prod.yaml") and issue.line > 0
    assert issue.path == "config.vllm-fleet:model_cache.size_gib"
    assert f"{size} — FSx for Lustre PERSISTENT_2 takes 1200, 2400 or a multiple of 2400 GiB" in issue.message and fix in issue.message


def test_loader_refuses_a_throughput_persistent_2_lacks(project: Path) -> None:
    edit(project / "stacks" / "Pulumi.prod.yaml", "    throughput_mibps: 500\n", "    throughput_mibps: 200\n")
    with pytest.raises(ConfigError, match=r"model_cache.throughput_mibps: 200 — PERSISTENT_2 takes per_unit_storage_throughput"):
        load("prod", project)


def test_lustre_security_group_has_inbound_and_outbound_rules_with_servers_and_clients(prod) -> None:
    """The FSx for Lustre guide's rules in both directions; pulumi-aws drops the default egress, so without written egress
    rules the file servers cannot reach each other or the nodes."""
    sg = prod["model-cache-fsx-sg"].inputs
    for direction in ("ingress", "egress"):
        ports = sorted((r["fromPort"], r["toPort"]) for r in sg[direction])
        assert ports == sorted(LUSTRE_PORTS), direction
        assert all(r["protocol"] == "tcp" and r["self"] is True and r["securityGroups"] == ["sg-0cluster"] for r in sg[direction])
    assert lustre_security_group_problems(sg) == []
    # the clients' side: the nodes' cluster security group admits Lustre from the file servers
    rules = [prod[f"model-cache-fsx-to-nodes-{lo}"].inputs for lo, _ in LUSTRE_PORTS]
    assert [(r["fromPort"], r["toPort"], r["securityGroupId"], r["ipProtocol"]) for r in rules] == [
        (lo, hi, "sg-0cluster", "tcp") for lo, hi in LUSTRE_PORTS]
    assert all("referencedSecurityGroupId" in r for r in rules)


def test_ingress_only_lustre_group_is_a_finding() -> None:
    """Today's rendering had ingress only: every outbound rule is missing."""
    ingress = [{"protocol": "tcp", "fromPort": lo, "toPort": hi, "self": True, "securityGroups": ["sg-1"]} for lo, hi in LUSTRE_PORTS]
    problems = lustre_security_group_problems({"ingress": ingress})
    assert len(problems) == 4 and all(p.startswith("no egress rule for TCP") for p in problems)


def test_directories_job_is_awaited_longer_than_its_deadline(prod) -> None:
    """pulumi-kubernetes awaits a Job 10 minutes by default — exactly its activeDeadlineSeconds (600), so a slow but
    healthy Job lost the race; its own timeout now outlasts the deadline, as the prefetch Jobs' do."""
    job = next(c for c in prod.values() if c.name.startswith("job-gpu-system-model-cache-directories-"))
    deadline = job.inputs["spec"]["activeDeadlineSeconds"]
    assert deadline == 600
    assert job.custom_timeouts == {"create": deadline + 300, "update": deadline + 300}
