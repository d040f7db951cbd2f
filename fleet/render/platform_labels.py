"""Node labels of a GPU pool: what pods select and what the catalog says about the GPUs."""

from __future__ import annotations

from fleet.catalog import gpu_instance
from fleet.labels import GPU_MEMORY_LABEL, GPU_MODEL_LABEL, GPUS_PER_NODE_LABEL, POOL_LABEL
from fleet.spec.stack import GpuPool


def pool_labels(pool: GpuPool) -> dict[str, str]:
    inst = gpu_instance(pool.instance_types[0])
    assert inst is not None  # the loader checked every instance type
    return {**pool.labels, POOL_LABEL: pool.name, GPU_MODEL_LABEL: inst.gpu_model,
            GPU_MEMORY_LABEL: str(int(inst.gpu_memory_gib)), GPUS_PER_NODE_LABEL: str(inst.gpus)}
