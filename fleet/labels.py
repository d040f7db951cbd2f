"""Label keys, names and constants shared by components and policies (one place for each)."""

from __future__ import annotations

GPU_RESOURCE = "nvidia.com/gpu"
GPU_TAINT_KEY = "nvidia.com/gpu"
POOL_LABEL = "vllm-fleet.io/pool"
GPU_MODEL_LABEL = "vllm-fleet.io/gpu-model"
GPU_MEMORY_LABEL = "vllm-fleet.io/gpu-memory-gib"
GPUS_PER_NODE_LABEL = "vllm-fleet.io/gpus-per-node"
TEAM_LABEL = "vllm-fleet.io/team"
MODEL_LABEL = "vllm-fleet.io/model"          # serving pods only: Services, disruption budgets and spread select on it
ROLE_LABEL = "vllm-fleet.io/role"            # leader | worker (multi-node), prefetch, smoke
FOR_MODEL_LABEL = "vllm-fleet.io/for-model"  # a model's helper pods (prefetch, smoke test), which no selector of its serving pods matches
MANAGED_BY = {"app.kubernetes.io/managed-by": "vllm-fleet"}
# GPU system DaemonSets (device plugin, DCGM exporter): the policy pack exempts this namespace by name.
GPU_SYSTEM_NAMESPACE = "gpu-system"
VLLM_PORT = 8000
NONROOT_UID = 1000

# AMI type from (OS family, CPU architecture) for GPU instances; data, not an if-ladder.
AMI_TYPES = {
    ("al2023", "x86_64"): "AL2023_x86_64_NVIDIA",
    ("al2023", "arm64"): "AL2023_ARM_64_NVIDIA",
    ("bottlerocket", "x86_64"): "BOTTLEROCKET_x86_64_NVIDIA",
    ("bottlerocket", "arm64"): "BOTTLEROCKET_ARM_64_NVIDIA",
}
# AMI families whose image already runs the NVIDIA device plugin.
SHIPS_DEVICE_PLUGIN = {"bottlerocket"}

CAPACITY_TYPES = {"on-demand": "ON_DEMAND", "spot": "SPOT", "capacity-block": "CAPACITY_BLOCK"}

# Exactly what an EKS worker needs; nothing with `*` actions of our own.
NODE_MANAGED_POLICIES = (
    "AmazonEKSWorkerNodePolicy",
    "AmazonEKS_CNI_Policy",
    "AmazonEC2ContainerRegistryReadOnly",
)
