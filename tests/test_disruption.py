"""Node disruption safety: model pods are protected from voluntary disruption, Karpenter GPU nodes neither expire
all at once nor go more than one at a time, and `plan --base` says when a change replaces every node of a GPU pool."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from fleet.kinds import POD_TYPES
from fleet.offline import diff
from fleet.offline.node_rolls import LAUNCH_TEMPLATE, NODE_CLASS, NODE_GROUP, NODE_POOL, rolling_fields
from fleet.offline.plan import capture, make_plan
from fleet.spec.load import load
from tests.conftest import ROOT, edit, karpenter_l40s

PROTECTED = {"karpenter.sh/do-not-disrupt": "true", "cluster-autoscaler.kubernetes.io/safe-to-evict": "false"}


def pod_templates(inputs: dict) -> list[dict]:
    spec = inputs["spec"]
    if "leaderWorkerTemplate" in spec:
        return [spec["leaderWorkerTemplate"]["leaderTemplate"], spec["leaderWorkerTemplate"]["workerTemplate"]]
    return [spec["template"]] if "template" in spec else []


def test_every_gpu_pod_is_protected_from_voluntary_disruption_while_it_starts_and_serves(prod_root: Path) -> None:
    gpu_templates = []
    for c in capture(load("prod", prod_root)):
        if c.type not in POD_TYPES:
            continue
        for t in pod_templates(c.inputs):
            containers = t["spec"].get("containers", [])
            if any("nvidia.com/gpu" in (k.get("resources", {}).get("limits") or {}) for k in containers):
                gpu_templates.append((c.name, t))
    # Deployments, and the leader and worker templates of llama-405b's LeaderWorkerSet
    assert len(gpu_templates) >= 8 and any(name.startswith("leaderworkerset-") for name, _ in gpu_templates)
    for name, t in gpu_templates:
        assert PROTECTED.items() <= (t["metadata"].get("annotations") or {}).items(), name


def test_karpenter_gpu_nodes_do_not_expire_and_are_disrupted_one_at_a_time(project: Path) -> None:
    karpenter_l40s(project)
    plan = make_plan("dev", project)
    pool = next(c for c in plan.resources if c.type == NODE_POOL).inputs["spec"]
    assert pool["template"]["spec"]["expireAfter"] == "Never"
    assert pool["disruption"] == {"consolidationPolicy": "WhenEmpty", "consolidateAfter": "10m",
                                  "budgets": [{"nodes": "1", "reasons": ["Empty", "Drifted"]},
                                              {"nodes": "0", "reasons": ["Underutilized"]}]}
    assert plan.schema_problems == []          # the vendored Karpenter v1 NodePool schema takes these fields


def test_which_fields_roll_every_node_of_a_pool() -> None:
    assert rolling_fields(NODE_POOL, ["spec.template.spec.expireAfter", "spec.disruption.budgets[0].nodes",
                                      "spec.template.spec.requirements[0].values[1]", "spec.limits.nvidia.com/gpu"]) \
        == ["spec.template.spec.expireAfter"]
    assert rolling_fields(NODE_CLASS, ["spec.amiSelectorTerms[0].alias", "metadata.labels.x"]) == ["spec.amiSelectorTerms[0].alias"]
    assert rolling_fields(LAUNCH_TEMPLATE, ["tags.team", "blockDeviceMappings[0].ebs.volumeSize"]) == ["blockDeviceMappings[0].ebs.volumeSize"]
    assert rolling_fields(NODE_GROUP, ["scalingConfig.maxSize", "labels.x"]) == []
    assert rolling_fields(NODE_GROUP, ["releaseVersion"]) == ["releaseVersion"]


def commit(project: Path) -> Path:
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    for part in ("pyproject.toml", "fleet", "components", "policies"):
        subprocess.run(["cp", "-r", str(ROOT / part), str(project / part)], check=True)
    subprocess.run(["git", "-C", str(project), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(project), "-c", "user.email=ci@example.com", "-c", "user.name=ci", "commit", "-qm", "base"],
                   check=True)
    return project


@pytest.fixture
def karpenter_repo(project: Path) -> Path:
    karpenter_l40s(project)
    return commit(project)


def test_a_node_class_change_shows_that_every_gpu_node_of_the_pool_drifts(karpenter_repo: Path, capsys) -> None:
    edit(karpenter_repo / "stacks" / "Pulumi.dev.yaml", "      max_size: 4\n", "      max_size: 4\n      disk_gib: 300\n")
    assert diff.run(karpenter_repo, "dev", "HEAD", "json") == 0
    doc = json.loads(capsys.readouterr().out)
    (roll,) = doc["gpu_node_rolls"]
    assert roll["type"] == NODE_CLASS and roll["fields"] == ["spec.blockDeviceMappings[0].ebs.volumeSize"]
    assert roll["message"].startswith("every node of GPU pool l40s drifts (EC2NodeClass spec.blockDeviceMappings[0].ebs.volumeSize "
                                      "changed): Karpenter replaces them as drifted, one node at a time")
    diff.run(karpenter_repo, "dev", "HEAD", "markdown")
    md = capsys.readouterr().out
    assert "**This change replaces every GPU node of a pool:**" in md and "- every node of GPU pool l40s drifts" in md


def test_a_launch_template_change_rolls_the_node_group_and_a_scaling_change_rolls_nothing(project: Path, capsys) -> None:
    repo = commit(project)
    stack = repo / "stacks" / "Pulumi.dev.yaml"
    edit(stack, "      max_size: 4\n", "      max_size: 5\n")
    diff.run(repo, "dev", "HEAD", "json")
    assert json.loads(capsys.readouterr().out)["gpu_node_rolls"] == []
    edit(stack, "      max_size: 5\n", "      max_size: 5\n      disk_gib: 300\n")
    diff.run(repo, "dev", "HEAD", "json")
    (roll,) = json.loads(capsys.readouterr().out)["gpu_node_rolls"]
    assert roll["type"] == LAUNCH_TEMPLATE and roll["message"].startswith(
        "every node of GPU pool l40s is replaced (LaunchTemplate blockDeviceMappings[0].ebs.volumeSize changed): EKS rolls the group "
        "one node at a time")


def test_the_prod_plan_stays_clean_with_the_protection(prod_root: Path) -> None:
    plan = make_plan("prod", prod_root)
    assert plan.schema_problems == [] and plan.mandatory == []
