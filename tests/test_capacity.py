"""Capacity at `pulumi up` time (docs/capacity.md): the Cluster Autoscaler the stack installs (release, flags, RBAC, IAM,
node-template tags), the nodes each pool has while pulumi-kubernetes awaits the models' pods (policy E15), and Capacity
Block schedules that never start in the past (policy B10)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from fleet.catalog import cluster_autoscaler
from fleet.errors import ConfigError
from fleet.offline.engine import Captured
from fleet.offline.plan import capture, make_plan
from fleet.spec.load import load
from policies.rules.gpu import nodes_needed
from tests.conftest import ROOT, edit, karpenter_l40s

DEV, PROD = Path("stacks/Pulumi.dev.yaml"), Path("stacks/Pulumi.prod.yaml")
CA = "deployment-cluster-autoscaler-cluster-autoscaler"


@pytest.fixture(scope="module")
def dev() -> dict[str, Captured]:
    return {c.name: c for c in capture(load("dev", ROOT))}


def e15(plan) -> list[str]:
    return [f.message for f in plan.findings if f.rule_id == "E15"]


def test_cluster_autoscaler_release_and_flags_come_from_the_catalogue(dev) -> None:
    """Image of the stack's Kubernetes minor; every flag defined in that release (the catalogue lists each with the file
    of kubernetes/autoscaler it was read from); auto-discovery by the tags EKS puts on managed node groups' ASGs."""
    data = cluster_autoscaler()
    assert all(str(f["source"]).startswith("kubernetes/autoscaler@cluster-autoscaler-") for f in data["flags"].values())
    (container,) = dev[CA].inputs["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "registry.k8s.io/autoscaling/cluster-autoscaler:v1.33.6"   # kubernetes_version "1.33"
    assert container["command"] == ["/cluster-autoscaler"]
    assert "--node-group-auto-discovery=asg:tag=k8s.io/cluster-autoscaler/enabled,k8s.io/cluster-autoscaler/fleet-dev" in container["args"]
    assert "--cloud-provider=aws" in container["args"] and "--namespace=cluster-autoscaler" in container["args"]
    assert {a.removeprefix("--").split("=", 1)[0] for a in container["args"]} <= set(data["flags"])
    assert container["livenessProbe"]["httpGet"] == {"path": "/health-check", "port": 8085}
    pod = dev[CA].inputs["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False and any(v["name"] == "api-token" for v in pod["volumes"])
    assert dev[CA].inputs["metadata"]["namespace"] == "cluster-autoscaler"


def test_cluster_autoscaler_rbac_and_least_privilege_iam(dev) -> None:
    role = dev["clusterrole-cluster-autoscaler"].inputs
    assert role["rules"] == cluster_autoscaler()["cluster_rules"]
    assert not any("*" in r["verbs"] or "*" in r["resources"] for r in role["rules"])
    assert dev["role-cluster-autoscaler-cluster-autoscaler"].inputs["rules"] == cluster_autoscaler()["namespace_rules"]
    trust = json.loads(dev["cluster-autoscaler-role"].inputs["assumeRolePolicy"])["Statement"][0]
    assert trust["Condition"]["StringEquals"]["oidc.eks.us-west-2.amazonaws.com/id/EXAMPLE:sub"] == \
        "system:serviceaccount:cluster-autoscaler:cluster-autoscaler"
    describe, scale = json.loads(dev["cluster-autoscaler-policy"].inputs["policy"])["Statement"]
    assert describe["Resource"] == ["*"] and all(a.split(":")[1].startswith(("Describe", "Get")) for a in describe["Action"])
    assert scale["Action"] == ["autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"]
    assert scale["Condition"] == {"StringEquals": {"aws:ResourceTag/k8s.io/cluster-autoscaler/fleet-dev": "owned",
                                                   "aws:ResourceTag/k8s.io/cluster-autoscaler/enabled": "true"}}
    sa = dev["serviceaccount-cluster-autoscaler-cluster-autoscaler"].inputs["metadata"]
    assert "eks.amazonaws.com/role-arn" in sa["annotations"]


def test_pod_identity_instead_of_irsa(project: Path) -> None:
    edit(project / DEV, "  vllm-fleet:spare_gpus: 1\n", "  vllm-fleet:spare_gpus: 1\n  vllm-fleet:node_autoscaler: {identity: pod-identity}\n")
    caps = {c.name: c for c in capture(load("dev", project))}
    assert json.loads(caps["cluster-autoscaler-role"].inputs["assumeRolePolicy"])["Statement"][0]["Principal"] == {
        "Service": "pods.eks.amazonaws.com"}
    assoc = caps["cluster-autoscaler-pod-identity"].inputs
    assert (assoc["namespace"], assoc["serviceAccount"]) == ("cluster-autoscaler", "cluster-autoscaler")
    assert "annotations" not in caps["serviceaccount-cluster-autoscaler-cluster-autoscaler"].inputs["metadata"]


def test_gpu_groups_carry_node_template_tags_for_scale_from_zero(dev) -> None:
    tags = {c.inputs["tag"]["key"]: c.inputs["tag"]["value"] for c in dev.values() if c.type == "aws:autoscaling/tag:Tag"}
    prefix = "k8s.io/cluster-autoscaler/node-template/"
    assert tags[prefix + "label/vllm-fleet.io/pool"] == "l40s"
    assert tags[prefix + "taint/nvidia.com/gpu"] == "true:NoSchedule"
    assert tags[prefix + "resources/nvidia.com/gpu"] == "1"
    assert all(not c.inputs["tag"]["propagateAtLaunch"] for c in dev.values() if c.type == "aws:autoscaling/tag:Tag")


def test_bundled_stacks_fit_at_up_time_and_the_headroom_from_max_size_is_not_enough(project: Path) -> None:
    """Both bundled stacks need more nodes than desired_size gives (dev: 3 one-GPU pods on 2 nodes; prod l4: 4 GPUs on 2
    nodes). With the Cluster Autoscaler they plan clean; with nothing to add nodes — what the stack rendered before —
    E15 names the pool, the GPUs and the nodes."""
    for stack in ("dev", "prod"):
        assert e15(make_plan(stack, ROOT)) == []
    edit(project / DEV, "  vllm-fleet:spare_gpus: 1\n", "  vllm-fleet:spare_gpus: 1\n  vllm-fleet:node_autoscaler: {kind: none}\n")
    edit(project / PROD, "    kind: cluster-autoscaler\n", "    kind: none\n")
    assert e15(make_plan("dev", project)) == [
        "pool l40s: the models' minimum replicas need 3 GPUs on 3 node(s) of 1 when `pulumi up` waits for them, but the pool has 2 "
        "(desired_size: no node autoscaler of the stack discovers this group) — their pods stay Pending and the update times out"]
    prod = make_plan("prod", project)
    assert [f.level for f in prod.findings if f.rule_id == "E15"] == ["mandatory"] and prod.exit_code == 1
    assert e15(prod)[0].startswith("pool l4: the models' minimum replicas need 4 GPUs on 4 node(s) of 1")
    assert not any("cluster-autoscaler" in c.name for c in prod.resources)


def test_without_an_autoscaler_desired_size_must_cover_min_replicas(project: Path) -> None:
    edit(project / DEV, "  vllm-fleet:spare_gpus: 1\n", "  vllm-fleet:spare_gpus: 1\n  vllm-fleet:node_autoscaler: {kind: none}\n")
    edit(project / DEV, "      desired_size: 2\n", "      desired_size: 3\n")
    assert e15(make_plan("dev", project)) == []


def test_pods_pack_whole_onto_nodes() -> None:
    assert nodes_needed([1, 1, 1], 1) == 3
    assert nodes_needed([2, 2, 2], 4) == 2       # 8 GPUs of room, but no pod splits across nodes
    assert nodes_needed([3, 1, 2, 2], 4) == 2


def test_node_autoscaler_settings_are_checked(project: Path) -> None:
    edit(project / PROD, "cluster-autoscaler:v1.33.6@", "cluster-autoscaler:v1.32.7@")
    with pytest.raises(ConfigError) as err:
        load("prod", project)
    (issue,) = err.value.issues
    assert issue.path == "config.vllm-fleet:node_autoscaler.image" and issue.line > 0
    assert issue.message == "tag v1.32.7 — the Cluster Autoscaler must be the release of the cluster's Kubernetes 1.33: use tag v1.33.6"
    edit(project / PROD, "cluster-autoscaler:v1.32.7@", "cluster-autoscaler:v1.33.6@")
    edit(project / PROD, 'vllm-fleet:kubernetes_version: "1.33"', 'vllm-fleet:kubernetes_version: "1.37"')
    with pytest.raises(ConfigError, match=r"kubernetes_version: 1.37 — no Cluster Autoscaler release of this minor"):
        load("prod", project)


def test_karpenter_pools_need_karpenter_alone(project: Path) -> None:
    karpenter_l40s(project)
    caps = capture(load("dev", project))       # every pool a Karpenter pool: the stack relies on Karpenter
    assert not any("cluster-autoscaler" in c.name for c in caps)
    edit(project / DEV, "  vllm-fleet:spare_gpus: 1\n", "  vllm-fleet:spare_gpus: 1\n  vllm-fleet:node_autoscaler: {kind: cluster-autoscaler}\n")
    with pytest.raises(ConfigError, match=re.escape("gpu_pools[0].provisioner: karpenter — a Karpenter pool needs node_autoscaler.kind: "
                                                    "karpenter (the Cluster Autoscaler and Karpenter would both answer")):
        load("dev", project)


@pytest.mark.parametrize(("now", "steps", "desired"), [
    ("2026-12-01T00:00:00Z", {"start", "drain"}, 0),    # before the block: both steps ahead, the group at 0
    ("2026-12-07T12:00:00Z", {"drain"}, 6),             # during: no start in the past; created at the block's size
])
def test_capacity_block_steps_are_only_those_still_ahead(monkeypatch: pytest.MonkeyPatch, now: str, steps: set[str], desired: int) -> None:
    """The stack file's fixed start time (2026-12-07T11:30Z) time-bombed it: once the block began, the first `up` (or any
    re-create of the action) failed, since EC2 Auto Scaling refuses a start time in the past."""
    monkeypatch.setenv("VLLM_FLEET_NOW", now)
    caps = {c.name: c for c in capture(load("prod", ROOT))}
    assert {n.removeprefix("pool-h100-block-") for n in caps if n.startswith("pool-h100-block-")} == steps
    assert caps["pool-h100-ng"].inputs["scalingConfig"]["desiredSize"] == desired
    # a step that has run is gone from AWS: dropping it from the program must not call DeleteScheduledAction
    assert all(caps[f"pool-h100-block-{step}"].retain_on_delete for step in steps)
    plan = make_plan("prod", ROOT)
    assert not [f for f in plan.findings if f.rule_id == "B10"]


def test_up_before_the_block_starts_is_a_finding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before the block the h100 pool has no nodes: the Deployments on it could not become ready."""
    monkeypatch.setenv("VLLM_FLEET_NOW", "2026-12-01T00:00:00Z")
    (message,) = e15(make_plan("prod", ROOT))
    assert message.startswith("pool h100: the models' minimum replicas need 28 GPUs on 4 node(s) of 8") and "pool has 0" in message


def test_a_block_that_has_ended_is_refused_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLLM_FLEET_NOW", "2027-01-04T11:00:00Z")
    with pytest.raises(ConfigError) as err:
        load("prod", ROOT)
    (issue,) = err.value.issues
    assert issue.path == "config.vllm-fleet:gpu_pools[0].capacity_block_ends_at"
    assert "drained at 2027-01-04T10:45:00Z" in issue.message and "set the next block's capacity_reservation_id" in issue.message


def test_a_bad_clock_override_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLLM_FLEET_NOW", "tomorrow")
    with pytest.raises(ConfigError, match="VLLM_FLEET_NOW: 'tomorrow' is not an ISO 8601 time with a zone"):
        load("prod", ROOT)
