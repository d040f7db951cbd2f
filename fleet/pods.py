"""What a model's pods get, derived from the resolved spec: resources, /dev/shm, probe budgets, grace period, rollout strategy."""

from __future__ import annotations

import math
from dataclasses import dataclass

from fleet.catalog import InstanceType
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


# Host memory of the vLLM server besides /dev/shm and KV offload: the API process, tokenizer and one worker per GPU
# (CUDA context, pinned staging buffers). Measured on H200 with vLLM 0.26 (calibration.yaml, host_rss_gib): 2.7 GiB
# serving at one GPU, 5.2–6.6 GiB at two; 6 GiB + 3 per GPU keeps headroom for real tokenizers and request buffers.
# With `kv_offloading_size 16` the same server held 18.7 GiB: the buffer is resident, GiB for GiB.
SERVER_BASE_MEMORY_GIB = 6
SERVER_MEMORY_PER_GPU_GIB = 3


def memory_share_gib(inst: InstanceType, gpus_per_pod: int) -> int:
    usable = inst.memory_gib * (1 - NODE_RESERVED_MEMORY_FRACTION) - NODE_RESERVED_MEMORY_GIB
    return max(4, math.floor(usable * gpus_per_pod / inst.gpus))


def shm_gib(gpus_per_pod: int, memory_gib: int) -> int:
    """NCCL and vLLM's workers exchange tensors through /dev/shm; the 64 MiB container default breaks tensor
    parallelism. Memory-backed, so it counts against the memory limit: capped at a quarter."""
    return 0 if gpus_per_pod <= 1 else min(2 * gpus_per_pod + 2, memory_gib // 4)


def offload_room_gib(inst: InstanceType, gpus_per_pod: int) -> int:
    """Host memory a pod can give to KV offload: its share of the node less /dev/shm and the server itself."""
    memory = memory_share_gib(inst, gpus_per_pod)
    return memory - shm_gib(gpus_per_pod, memory) - SERVER_BASE_MEMORY_GIB - SERVER_MEMORY_PER_GPU_GIB * gpus_per_pod


def pod_resources(model: ResolvedModel) -> PodResources:
    """A pod's share of its node, proportional to the GPUs it holds (Guaranteed QoS: request = limit). KV offload lives
    inside this share; the loader refuses an offload that does not fit (fleet.spec.model_rules)."""
    inst = model.instance
    cpu = max(1, math.floor((inst.vcpus - NODE_RESERVED_VCPU) * model.gpus_per_pod / inst.gpus))
    memory = memory_share_gib(inst, model.gpus_per_pod)
    return PodResources(gpus=model.gpus_per_pod, cpu=cpu, memory_gib=memory, shm_gib=shm_gib(model.gpus_per_pod, memory))


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
