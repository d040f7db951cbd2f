"""What a model's pods get, derived from the resolved spec: resources, /dev/shm, probe budgets, grace period, rollout strategy."""

from __future__ import annotations

import math
from dataclasses import dataclass

from fleet.spec.resolved import ResolvedModel
from fleet.spec.stack import StackConfig

# Per node: what kubelet, the OS, the CNI and DaemonSets keep (EKS reserves ~6-11% of memory and
# ~0.1-0.2 vCPU); rounded up so pods fit on every instance type of the catalog.
NODE_RESERVED_VCPU = 2
NODE_RESERVED_MEMORY_FRACTION = 0.12
NODE_RESERVED_MEMORY_GIB = 4

PRESTOP_SECONDS = 15
SHUTDOWN_TIMEOUT_SECONDS = 30
SCALE_UP_WINDOW = 60
MIN_SCALE_DOWN_WINDOW = 300


@dataclass(frozen=True)
class PodResources:
    gpus: int
    cpu: int            # whole cores, request = limit (Guaranteed QoS)
    memory_gib: int     # request = limit, includes /dev/shm
    shm_gib: int        # 0 when the pod holds one GPU


def pod_resources(model: ResolvedModel) -> PodResources:
    """A pod's share of its node, proportional to the GPUs it holds."""
    inst = model.instance
    share = model.gpus_per_pod / inst.gpus
    cpu = max(1, math.floor((inst.vcpus - NODE_RESERVED_VCPU) * share))
    usable = inst.memory_gib * (1 - NODE_RESERVED_MEMORY_FRACTION) - NODE_RESERVED_MEMORY_GIB
    memory = max(4, math.floor(usable * share))
    # NCCL and vLLM's workers exchange tensors through /dev/shm; the 64 MiB container default breaks
    # tensor parallelism. Memory-backed, so it counts against the memory limit: cap it at a quarter.
    shm = 0 if model.gpus_per_pod <= 1 else min(2 * model.gpus_per_pod + 2, memory // 4)
    return PodResources(gpus=model.gpus_per_pod, cpu=cpu, memory_gib=memory, shm_gib=shm)


def termination_grace_seconds() -> int:
    return PRESTOP_SECONDS + SHUTDOWN_TIMEOUT_SECONDS + 15


@dataclass(frozen=True)
class Rollout:
    type: str                 # RollingUpdate | Recreate
    max_surge: int = 0
    max_unavailable: int = 1


def rollout(cfg: StackConfig, model: ResolvedModel) -> Rollout:
    """Surge one pod only when its GPUs fit in the stack's spare headroom; otherwise replace in place."""
    if cfg.tier == "dev" and model.max_replicas == 1:
        return Rollout("Recreate")
    if model.gpus_per_pod * model.nodes_per_replica <= cfg.spare_gpus:
        return Rollout("RollingUpdate", max_surge=1, max_unavailable=0)
    return Rollout("RollingUpdate", max_surge=0, max_unavailable=1)


def scale_down_window(startup_budget: int) -> int:
    return max(MIN_SCALE_DOWN_WINDOW, startup_budget)
