"""The policy exemptions of the platform's own objects: rule by rule, the exact objects (`Kind/namespace/name`) that
need what the rule forbids, each with its reason. They reach the policy pack as its config (`vllm-fleet policy-config`,
the same document `pulumi preview --policy-pack-config` gets), together with the stack's own reasoned exemptions.
Nothing is exempt by its namespace or an annotation it carries: a workload a team or anyone else puts into
`gpu-system` is judged like any other."""

from __future__ import annotations

from fleet.labels import GPU_SYSTEM_NAMESPACE
from fleet.render import gpu_system
from fleet.render.cache import DIRECTORIES_NEEDS, directories_job_name
from fleet.spec.resolved import FleetSpec

# vLLM's serving containers keep a writable root file system (the prefetch and smoke-test Jobs do not).
WRITABLE_ROOT = ("the NVIDIA container runtime hook writes the injected driver libraries into the root file system when "
                 "the GPU is attached")


def workload_ref(kind: str, namespace: str, name: str) -> str:
    return f"{kind}/{namespace}/{name}"


def platform_exemptions(spec: FleetSpec) -> dict[str, dict[str, str]]:
    """rule id → {object ref: reason}, for the objects this stack renders."""
    out: dict[str, dict[str, str]] = {}

    def add(ref: str, needs: dict[str, str]) -> None:
        for rule_id, reason in needs.items():
            out.setdefault(rule_id, {})[ref] = reason

    cfg = spec.config
    ns = GPU_SYSTEM_NAMESPACE
    pools = list(cfg.gpu_pools)
    add(f"Namespace/{ns}", {"D18": "the device plugins and the DCGM exporter need host paths and root, which the restricted "
                                   "standard forbids; the namespace holds only the platform's objects (privileged enforce, "
                                   "baseline warn)"})
    if gpu_system.plugin_pools(pools):
        add(workload_ref("DaemonSet", ns, "nvidia-device-plugin"), gpu_system.DEVICE_PLUGIN_NEEDS)
    if cfg.device_plugin.dcgm_exporter:
        add(workload_ref("DaemonSet", ns, "dcgm-exporter"), gpu_system.DCGM_NEEDS)
    if gpu_system.efa_pools(pools):
        add(workload_ref("DaemonSet", ns, "aws-efa-k8s-device-plugin"), gpu_system.EFA_PLUGIN_NEEDS)
    fsx_teams = [t.name for t in spec.teams if t.models]
    if cfg.model_cache.backend == "fsx-lustre" and fsx_teams:
        add(workload_ref("Job", ns, directories_job_name(fsx_teams)), DIRECTORIES_NEEDS)
    for model in spec.models:
        add(workload_ref("LeaderWorkerSet" if model.multi_node else "Deployment", model.namespace, model.name), {"D11": WRITABLE_ROOT})
    return out
