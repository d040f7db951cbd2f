"""Which changes replace every node of a GPU pool: what `plan --base` shows before a PR rolls the fleet's GPUs.

Karpenter (kubernetes-sigs/karpenter@v1.0.0:pkg/apis/v1/nodepool.go): a node drifts when the hash of its NodePool's
`spec.template` changes (`requirements` are left out of the hash, `hash:"ignore"`; `disruption`, `limits` and `weight`
sit outside the template), or when its EC2NodeClass resolves to another AMI, subnet or security group — so any change
of the EC2NodeClass's `spec` (an AMI alias or version above all) drifts the pool's nodes. Drifted nodes are replaced
within the NodePool's disruption budget (one node at a time here, fleet.render.karpenter), and a node whose model
pods carry `karpenter.sh/do-not-disrupt` only once they have left it.

EKS managed node groups: a new launch template version, AMI type, release or Kubernetes version is a rolling update
of every node of the group, `updateConfig.maxUnavailable` (1) at a time, evicting pods within their
PodDisruptionBudgets. A launch template's own `tags` are not part of its versions and roll nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"
NODE_CLASS = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
# The components that own GPU nodes (components/node_pools.py): a resource under one of them belongs to a GPU pool.
GPU_POOL_COMPONENTS = ("vllm-fleet:platform:GpuNodeGroup$", "vllm-fleet:platform:KarpenterGpuPool$")

KARPENTER_HOW = ("Karpenter replaces them as drifted, one node at a time (disruption budget nodes: \"1\"); a node "
                 "running a model only once its pods have left it (karpenter.sh/do-not-disrupt)")
NODE_GROUP_HOW = "EKS rolls the group one node at a time (maxUnavailable 1), evicting pods within their PodDisruptionBudgets"


@dataclass(frozen=True)
class NodeRoll:
    urn: str
    type: str
    fields: list[str]          # the changed fields that roll the nodes
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"urn": self.urn, "type": self.type, "fields": self.fields, "message": self.message}


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root + ".") or path.startswith(root + "[")


def rolling_fields(typ: str, fields: list[str], replaced: bool = False) -> list[str]:
    """The fields among `fields` (changed inputs of a resource of type `typ`) that replace every node of its pool."""
    if typ == NODE_POOL:
        return [f for f in fields if _under(f, "spec.template") and not _under(f, "spec.template.spec.requirements")]
    if typ == NODE_CLASS:
        return [f for f in fields if _under(f, "spec")]
    if typ == LAUNCH_TEMPLATE:
        return [f for f in fields if not (_under(f, "tags") or _under(f, "tagsAll"))]
    if typ == NODE_GROUP:
        rolling = [f for f in fields if any(_under(f, r) for r in ("launchTemplate", "amiType", "releaseVersion", "version"))]
        return rolling or (list(fields) if replaced else [])
    return []


def pool_name(typ: str, inputs: dict[str, Any], urn: str) -> str:
    """The GPU pool a node resource belongs to, read from its inputs (the pool's name is each one's name or prefix)."""
    if typ in (NODE_POOL, NODE_CLASS):
        return str((inputs.get("metadata") or {}).get("name") or urn.rsplit("::", 1)[-1])
    if typ == NODE_GROUP and isinstance(inputs.get("nodeGroupNamePrefix"), str):
        return str(inputs["nodeGroupNamePrefix"]).removesuffix("-")
    tags = inputs.get("tags") or {}
    return str(tags.get("vllm-fleet/pool") or urn.rsplit("::", 1)[-1])


def node_rolls(changed: list[tuple[str, str, list[str], bool, dict[str, Any]]]) -> list[NodeRoll]:
    """`changed`: (urn, type, changed field paths, replaced, inputs) of each changed resource; those that roll a
    GPU pool's nodes."""
    out = []
    for urn, typ, fields, replaced, inputs in changed:
        if not any(c in urn for c in GPU_POOL_COMPONENTS):
            continue
        rolling = rolling_fields(typ, fields, replaced)
        if not rolling:
            continue
        shown = ", ".join(rolling[:4]) + (f" and {len(rolling) - 4} more" if len(rolling) > 4 else "")
        if typ in (NODE_POOL, NODE_CLASS):
            what = f"every node of GPU pool {pool_name(typ, inputs, urn)} drifts ({typ.rsplit(':', 1)[-1]} {shown} changed): {KARPENTER_HOW}"
        else:
            what = f"every node of GPU pool {pool_name(typ, inputs, urn)} is replaced ({typ.rsplit(':', 1)[-1]} {shown} changed): {NODE_GROUP_HOW}"
        out.append(NodeRoll(urn, typ, rolling, what))
    return out
