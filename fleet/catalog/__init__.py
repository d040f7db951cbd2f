"""Data catalogs (GPU instance types; later model architectures and vLLM versions), loaded once."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from fleet.yamlsrc import safe_load

CATALOG_DIR = Path(__file__).parent


@dataclass(frozen=True)
class InstanceType:
    instance_type: str
    family: str
    gpu_model: str
    gpu_usable_memory_gib: float
    gpus: int
    gpu_memory_gib: float
    vcpus: int
    memory_gib: float
    local_nvme_gb: int
    efa: bool
    efa_interfaces: int
    nvlink: bool
    architecture: str
    source: str
    as_of: str

    @property
    def memory_per_gpu_gib(self) -> float:
        return self.memory_gib / self.gpus


@lru_cache(maxsize=1)
def gpu_instance_types() -> dict[str, InstanceType]:
    with open(CATALOG_DIR / "gpus.yaml", encoding="utf-8") as fh:
        rows = safe_load(fh)["instance_types"]
    return {row["instance_type"]: InstanceType(**row) for row in rows}


def gpu_instance(name: str) -> InstanceType | None:
    return gpu_instance_types().get(name)


@dataclass(frozen=True)
class Price:
    """Hourly USD price of one instance type in one region (fleet/catalog/prices.yaml)."""

    instance_type: str
    region: str
    on_demand: float
    spot: float | None
    source: str
    as_of: str


@lru_cache(maxsize=1)
def prices() -> dict[tuple[str, str], Price]:
    with open(CATALOG_DIR / "prices.yaml", encoding="utf-8") as fh:
        rows = safe_load(fh)["prices"]
    table: dict[tuple[str, str], Price] = {}
    for row in rows:
        price = Price(**row)
        key = (price.instance_type, price.region)
        if key in table:
            raise ValueError(f"fleet/catalog/prices.yaml: {key[0]} in {key[1]} is listed twice — keep one row")
        table[key] = price
    return table


@lru_cache(maxsize=1)
def cluster_autoscaler() -> dict[str, Any]:
    """The Cluster Autoscaler releases, flags, IAM actions and RBAC the stack renders (fleet/catalog/cluster_autoscaler.yaml)."""
    with open(CATALOG_DIR / "cluster_autoscaler.yaml", encoding="utf-8") as fh:
        data: dict[str, Any] = safe_load(fh)
    return data
