"""Compare fleet.sizing's predictions with the recorded vLLM startup logs (fleet/catalog/calibration.yaml)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

import yaml

from fleet.catalog import CATALOG_DIR
from fleet.sizing import BLOCK, GIB, Settings, kv_bytes_per_token, model_catalog, size, weights_gib_per_gpu


@dataclass
class Check:
    record: str
    engine: str
    family: str
    quantity: str        # weights | kv_tokens | kv_tokens_from_memory | verdict
    predicted: float
    observed: float

    @property
    def error_pct(self) -> float:
        return abs(self.predicted - self.observed) / self.observed * 100 if self.observed else 0.0


def records() -> list[dict[str, Any]]:
    with open(CATALOG_DIR / "calibration.yaml", encoding="utf-8") as fh:
        return list(yaml.safe_load(fh)["records"])


def checks() -> list[Check]:
    catalog = model_catalog()
    out: list[Check] = []
    for r in records():
        arch = catalog[r["model"]]
        st = r["settings"]
        obs = r["observed"]
        s = Settings(gpu_memory_gib=st.get("gpu_memory_gib", 80.0), tensor_parallel_size=st.get("tensor_parallel_size", 1),
                     pipeline_parallel_size=st.get("pipeline_parallel_size", 1), max_model_len=st.get("max_model_len"),
                     gpu_memory_utilization=st.get("gpu_memory_utilization", 0.9), quantization=st.get("quantization"),
                     kv_cache_dtype=st.get("kv_cache_dtype", "auto"), max_num_batched_tokens=st.get("max_num_batched_tokens"))
        if r["engine"] == "v0":
            s = Settings(**{**s.__dict__, "enforce_eager": True})  # V0 captured CUDA graphs after sizing the cache
        base = {"record": r["id"], "engine": r["engine"], "family": arch.family}
        if "weights_gib" in obs:
            out.append(Check(**base, quantity="weights", predicted=weights_gib_per_gpu(arch, s), observed=obs["weights_gib"]))
        if "kv_cache_gib" in obs and "kv_cache_tokens" in obs:
            per_token = kv_bytes_per_token(arch, s)
            from_memory = int(obs["kv_cache_gib"] * GIB // per_token) // BLOCK * BLOCK
            out.append(Check(**base, quantity="kv_tokens_from_memory", predicted=from_memory, observed=obs["kv_cache_tokens"]))
        if "gpu_memory_gib" in st:
            sized = size(arch, s)
            if "kv_cache_tokens" in obs:
                out.append(Check(**base, quantity="kv_tokens", predicted=sized.kv_cache_tokens, observed=obs["kv_cache_tokens"]))
            if "fits" in obs:
                out.append(Check(**base, quantity="verdict", predicted=float(sized.fits), observed=float(obs["fits"])))
    return out


def summary(items: list[Check]) -> dict[str, Any]:
    def errs(q: str) -> list[float]:
        return [c.error_pct for c in items if c.quantity == q]

    verdicts = [c for c in items if c.quantity == "verdict"]
    out: dict[str, Any] = {"records": len(records())}
    for q in ("weights", "kv_tokens", "kv_tokens_from_memory"):
        e = errs(q)
        out[q] = {"n": len(e), "median_pct": statistics.median(e) if e else None, "worst_pct": max(e) if e else None}
    out["verdicts"] = {"n": len(verdicts), "right": sum(1 for c in verdicts if c.predicted == c.observed)}
    return out
