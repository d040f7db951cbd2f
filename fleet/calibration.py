"""Compare fleet.sizing's predictions with the recorded vLLM startup logs (fleet/catalog/calibration.yaml)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from fleet.catalog import CATALOG_DIR
from fleet.sizing import BLOCK, GIB, Settings, kv_bytes_per_token, model_catalog, size, weights_gib_per_gpu
from fleet.yamlsrc import safe_load


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
        return list(safe_load(fh)["records"])


def engine_profile(record: dict[str, Any]) -> str:
    """How the logged vLLM budgeted memory: V0; V1 before 0.21 (CUDA graphs captured after sizing the KV
    cache); V1 from 0.21 (graphs estimated in the budget). A V1 record without a version predates 0.21."""
    if record["engine"] == "v0":
        return "v0"
    version = str(record.get("vllm") or "0.0")
    major, minor = (int(p) for p in version.split(".")[:2])
    return "current" if (major, minor) >= (0, 21) else "v1-early"


def settings(record: dict[str, Any]) -> Settings:
    st = record["settings"]
    return Settings(gpu_memory_gib=st.get("gpu_memory_gib", 80.0), tensor_parallel_size=st.get("tensor_parallel_size", 1),
                    pipeline_parallel_size=st.get("pipeline_parallel_size", 1), max_model_len=st.get("max_model_len"),
                    gpu_memory_utilization=st.get("gpu_memory_utilization", 0.9), quantization=st.get("quantization"),
                    kv_cache_dtype=st.get("kv_cache_dtype", "auto"), max_num_batched_tokens=st.get("max_num_batched_tokens"),
                    max_num_seqs=st.get("max_num_seqs"), enforce_eager=bool(st.get("enforce_eager", False)),
                    gpu_model=record.get("gpu"), engine_profile=engine_profile(record))


def checks() -> list[Check]:
    """One check per observed number: weights; KV tokens from the logged KV memory (bytes per token);
    and, where the GPU total is known, the KV cache (tokens where printed, else GiB) and the verdict."""
    catalog = model_catalog()
    out: list[Check] = []
    for r in records():
        arch = catalog[r["model"]]
        obs = r["observed"]
        s = settings(r)
        base = {"record": r["id"], "engine": r["engine"], "family": arch.family}
        if "weights_gib" in obs:
            out.append(Check(**base, quantity="weights", predicted=weights_gib_per_gpu(arch, s), observed=obs["weights_gib"]))
        if "kv_cache_gib" in obs and "kv_cache_tokens" in obs:
            per_token = kv_bytes_per_token(arch, s)
            from_memory = int(obs["kv_cache_gib"] * GIB // per_token) // BLOCK * BLOCK
            out.append(Check(**base, quantity="kv_tokens_from_memory", predicted=from_memory, observed=obs["kv_cache_tokens"]))
        if "gpu_memory_gib" in r["settings"]:
            sized = size(arch, s, explain=False)
            if "kv_cache_tokens" in obs:
                out.append(Check(**base, quantity="kv_tokens", predicted=sized.kv_cache_tokens, observed=obs["kv_cache_tokens"]))
            elif obs.get("kv_cache_gib", 0) > 0:
                out.append(Check(**base, quantity="kv_cache_gib", predicted=sized.kv_cache_gib, observed=obs["kv_cache_gib"]))
            if "fits" in obs:
                out.append(Check(**base, quantity="verdict", predicted=float(sized.fits), observed=float(obs["fits"])))
    return out


def summary(items: list[Check]) -> dict[str, Any]:
    """Median and worst error per quantity; `kv_tokens` pools printed tokens with KV GiB (the same ratio)."""
    def stats(errors: list[float]) -> dict[str, Any]:
        return {"n": len(errors), "median_pct": statistics.median(errors) if errors else None,
                "worst_pct": max(errors) if errors else None}

    kv = ("kv_tokens", "kv_cache_gib")
    verdicts = [c for c in items if c.quantity == "verdict"]
    out: dict[str, Any] = {"records": len(records())}
    out["weights"] = stats([c.error_pct for c in items if c.quantity == "weights"])
    out["kv_tokens"] = stats([c.error_pct for c in items if c.quantity in kv])
    out["kv_v1_dense"] = stats([c.error_pct for c in items if c.quantity in kv and c.engine == "v1" and c.family == "dense"])
    out["kv_tokens_from_memory"] = stats([c.error_pct for c in items if c.quantity == "kv_tokens_from_memory"])
    out["verdicts"] = {"n": len(verdicts), "right": sum(1 for c in verdicts if c.predicted == c.observed)}
    return out
