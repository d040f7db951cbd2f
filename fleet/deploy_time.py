"""How long a model takes to come up, from the bytes each of its pods really reads, and the timeouts
pulumi-kubernetes must be given so `pulumi up` waits long enough and no longer.

pulumi-kubernetes waits for a Job to complete and a Deployment to roll out, 10 minutes by default, then fails
the update. A cold first deploy of a large model takes far longer: the prefetch Job downloads the checkpoint
into the cache, then every pod pulls the ~10 GB vLLM image, reads its share of the weights from the cache,
compiles and captures CUDA graphs. Each step is estimated here from the model's size and the cache backend,
and each timeout is the estimate with a margin (docs/first-deploy.md walks through it).

What a pod reads: the checkpoint (the bytes on disk, before any on-the-fly quantization) divided by the GPUs of
one replica, times the GPUs of the pod. Tensor parallelism inside a pod does not shrink it (the pod's workers
together read every shard of their stage); pipeline stages on other pods do (each pod reads only its layers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fleet.capacity.memory import GIB, Settings, engine_start_seconds, weights_gib_per_gpu
from fleet.pods import rollout
from fleet.render.cache import prefetches
from fleet.spec.resolved import ResolvedModel
from fleet.spec.stack import StackConfig

# Sustained `hf download` from the Hugging Face Hub to one Job, through a NAT gateway: conservative; single
# streams measure 50–200 MiB/s, parallel Xet transfers more.
HUB_DOWNLOAD_MIBPS = 100
# FSx for Lustre: a client reads at most about this much whatever the file system's aggregate throughput
# (one ENA interface; EFA is not used for Lustre here).
LUSTRE_CLIENT_MIBPS = 1500
IMAGE_PULL_SECONDS = 300          # the vLLM image (~10 GB compressed) on a node that has never pulled it
# The engine's own start (fleet.capacity.memory.engine_start_seconds, measured on H200) is doubled in every budget: other
# GPUs are slower, and a first start compiles with a cold cache.
ENGINE_START_MARGIN = 2
NODE_READY_SECONDS = 600          # a GPU node launched by the node group or Karpenter until the device plugin advertises GPUs
UNKNOWN_CHECKPOINT_GIB = 200      # a model whose architecture is unknown is sized as a 100B BF16 checkpoint
MARGIN = 1.5                      # timeouts: the estimate × 1.5, plus a fixed allowance
ALLOWANCE_SECONDS = 600
STARTUP_PROBE_PERIOD = 10
MIN_STARTUP_BUDGET = 600          # never below the common default for large models (production-stack, KServe)


def checkpoint_gib(model: ResolvedModel) -> float:
    """The checkpoint as downloaded: every parameter at the dtype it is stored in."""
    if model.arch is None:
        return UNKNOWN_CHECKPOINT_GIB
    return weights_gib_per_gpu(model.arch, Settings(gpu_memory_gib=1.0))  # one GPU; the weights do not depend on its memory


def pod_read_gib(model: ResolvedModel) -> float:
    return checkpoint_gib(model) * model.gpus_per_pod / model.gpus_per_replica


def pod_read_mibps(cfg: StackConfig, model: ResolvedModel) -> float:
    """How fast one pod of the model reads its weights when a replica's pods start together."""
    cache = cfg.model_cache
    pods = model.nodes_per_replica
    if cache.backend == "fsx-lustre":  # per-TiB throughput × TiB, shared by the pods that start together
        return min(LUSTRE_CLIENT_MIBPS, cache.throughput_mibps * cache.size_gib / 1024 / pods)
    if cache.backend == "none":        # each pod downloads its own copy
        return HUB_DOWNLOAD_MIBPS
    return float(cache.throughput_mibps)   # EFS, S3 (Mountpoint): the stack's expected per-pod read throughput


def _round_up(seconds: float, step: int = 60) -> int:
    return int(math.ceil(seconds / step) * step)


@dataclass(frozen=True)
class DeployTime:
    """Seconds; timeouts are what `customTimeouts` is set to (None where nothing is awaited)."""

    download: int                  # the prefetch Job's download (0 without a prefetching cache)
    pod_read_gib: float
    load: int                      # one pod reading its weights
    pod_start: int                 # image pull + load + compile
    first_deploy: int              # prefetch, a GPU node, the pods
    startup_probe_budget: int
    prefetch_timeout: int | None   # the Job's create/update timeout (its activeDeadlineSeconds is the same)
    rollout_create_timeout: int
    rollout_update_timeout: int

    def as_dict(self) -> dict[str, float | int | None]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def deploy_time(cfg: StackConfig, model: ResolvedModel) -> DeployTime:
    download = _round_up(checkpoint_gib(model) * GIB / 2**20 / HUB_DOWNLOAD_MIBPS + 60) if prefetches(cfg) else 0
    read = pod_read_gib(model)
    load = _round_up(read * 1024 / pod_read_mibps(cfg, model), 10)
    compile_seconds = ENGINE_START_MARGIN * engine_start_seconds(model.arch, bool(model.spec.enforce_eager))
    pod_start = IMAGE_PULL_SECONDS + load + compile_seconds
    # The probe covers load and compile (the image is pulled before the container starts), with room for a slow read.
    probe = max(MIN_STARTUP_BUDGET, _round_up(2 * load + compile_seconds + 60, STARTUP_PROBE_PERIOD))
    # An update replaces pods in batches of maxUnavailable (or adds maxSurge): each batch waits for one pod start.
    step = rollout(cfg, model)
    batches = math.ceil(model.max_replicas / max(1, step.max_unavailable or step.max_surge)) if step.type == "RollingUpdate" else 1
    return DeployTime(
        download=download, pod_read_gib=round(read, 1), load=load, pod_start=pod_start,
        first_deploy=download + NODE_READY_SECONDS + pod_start, startup_probe_budget=probe,
        prefetch_timeout=_round_up(download * MARGIN + ALLOWANCE_SECONDS) if download else None,
        rollout_create_timeout=_round_up((NODE_READY_SECONDS + pod_start) * MARGIN + ALLOWANCE_SECONDS),
        rollout_update_timeout=_round_up((NODE_READY_SECONDS + batches * pod_start) * MARGIN + ALLOWANCE_SECONDS),
    )
