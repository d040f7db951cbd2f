"""A Karpenter alternative for a GPU pool: NodePool + EC2NodeClass (just-in-time GPU nodes, scale to zero)."""

from __future__ import annotations

from typing import Any

from fleet.catalog import gpu_instance
from fleet.labels import GPU_TAINT_KEY, MANAGED_BY
from fleet.render import Manifest, meta
from fleet.spec.stack import GpuPool


def ami_alias(pool: GpuPool) -> str:
    """Karpenter's alias of the pool's AMI: the pinned release (`al2023@v20260714`, `bottlerocket@v1.46.0`, from the EKS
    release version `1.33.13-20260714` / `1.46.0-<commit>`), else `@latest`."""
    if pool.ami_version is None:
        return f"{pool.ami_family}@latest"
    version, suffix = pool.ami_version.split("-", 1)
    return f"al2023@v{suffix}" if pool.ami_family == "al2023" else f"bottlerocket@v{version}"


CAPACITY = {"on-demand": "on-demand", "spot": "spot"}     # capacity blocks run on managed node groups (AWS's procedure)
ARCH = {"x86_64": "amd64", "arm64": "arm64"}
# GPU nodes are slow and costly to start: keep an empty node ten minutes before giving it back.
CONSOLIDATE_AFTER = "10m"
# Karpenter v1 expires a node by deleting it, outside every disruption budget (kubernetes-sigs/karpenter@v1.0.0:
# pkg/controllers/nodeclaim/expiration/controller.go), so nodes started together would all expire together, model
# loads included. GPU nodes do not expire: they are replaced through drift (an AMI version bump), which the budget
# below paces.
EXPIRE_AFTER = "Never"
# One node at a time for every reason a NodePool's budgets can name (Empty, Drifted; Underutilized never happens
# under WhenEmpty and gets no node at all should the policy change). Budgets without `reasons` apply to all of them;
# naming them keeps each reason's allowance explicit. Nodes being deleted for any reason count against each budget.
DISRUPTION_BUDGETS = [{"nodes": "1", "reasons": ["Empty", "Drifted"]}, {"nodes": "0", "reasons": ["Underutilized"]}]


def node_pool(pool: GpuPool, labels: dict[str, str]) -> Manifest:
    inst = gpu_instance(pool.instance_types[0])
    assert inst is not None
    return {
        "apiVersion": "karpenter.sh/v1", "kind": "NodePool",
        "metadata": meta(pool.name, labels=dict(MANAGED_BY)),
        "spec": {
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": pool.name},
                    "taints": [{"key": GPU_TAINT_KEY, "value": "true", "effect": "NoSchedule"}],
                    "requirements": [
                        {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": list(pool.instance_types)},
                        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": [CAPACITY[pool.capacity_type]]},
                        {"key": "kubernetes.io/arch", "operator": "In", "values": [ARCH[inst.architecture]]},
                    ],
                    "expireAfter": EXPIRE_AFTER,
                },
            },
            # Only empty nodes are consolidated: a GPU node running a model is never removed under it (its pods
            # also carry karpenter.sh/do-not-disrupt, fleet.render.workload.GPU_POD_ANNOTATIONS).
            "disruption": {"consolidationPolicy": "WhenEmpty", "consolidateAfter": CONSOLIDATE_AFTER,
                           "budgets": [dict(b) for b in DISRUPTION_BUDGETS]},
            "limits": {"nvidia.com/gpu": str(pool.max_size * inst.gpus)},
        },
    }


def node_class(pool: GpuPool, role: Any, security_groups: list[Any], tags: dict[str, str]) -> Manifest:
    """`security_groups`: the cluster's, plus the pool's self-referencing EFA group on EFA pools."""
    inst = gpu_instance(pool.instance_types[0])
    assert inst is not None
    device = "/dev/xvdb" if pool.ami_family == "bottlerocket" else "/dev/xvda"
    spec: dict[str, Any] = {
        "amiSelectorTerms": [{"alias": ami_alias(pool)}],
        "role": role,
        "subnetSelectorTerms": [{"id": s} for s in pool.subnet_ids],
        "securityGroupSelectorTerms": [{"id": sg} for sg in security_groups],
        "associatePublicIPAddress": False,
        "metadataOptions": {"httpEndpoint": "enabled", "httpTokens": "required", "httpPutResponseHopLimit": 1},
        "blockDeviceMappings": [{"deviceName": device, "rootVolume": pool.ami_family != "bottlerocket", "ebs": {
            "volumeSize": f"{pool.disk_gib}Gi", "volumeType": "gp3", "encrypted": True, "deleteOnTermination": True}}],
        "tags": tags,
    }
    if pool.efa and inst.efa:
        spec["networkInterfaces"] = [{"networkCardIndex": card, "deviceIndex": 0 if card == 0 else 1, "interfaceType": "efa"}
                                     for card in range(inst.efa_interfaces)]
    return {"apiVersion": "karpenter.k8s.aws/v1", "kind": "EC2NodeClass", "metadata": meta(pool.name, labels=dict(MANAGED_BY)),
            "spec": spec}
