"""Compare fleet.capacity.memory's predictions with the recorded vLLM startup logs (fleet/catalog/calibration.yaml)."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, replace
from typing import Any

from fleet.capacity.memory import (
    GIB,
    PROFILES,
    Arch,
    EngineProfile,
    Settings,
    activation_gib,
    cuda_graph_sizes,
    default_batched_tokens,
    encoder_gib,
    engine_profile_for,
    engine_start_seconds,
    kv_capacity,
    model_catalog,
    serving_room_gib,
    size,
    weights_gib_per_gpu,
    with_checkpoint_quantization,
)
from fleet.catalog import CATALOG_DIR
from fleet.yamlsrc import safe_load


@dataclass
class Check:
    record: str
    engine: str
    family: str
    quantity: str        # weights | kv_tokens | kv_tokens_from_memory | verdict | overhead_gib | cuda_graph_gib | startup_s
    #                      | encoder_pass_gib (serving a step of images) | serving_room_gib (room once started)
    predicted: float
    observed: float
    fitted: bool = True  # False: no constant of fleet/capacity/memory.py was fitted on this record (a held-out check)
    measured: bool = False  # a run of scripts/h200_measure.py rather than a log from a public source

    @property
    def error_pct(self) -> float:
        return abs(self.predicted - self.observed) / self.observed * 100 if self.observed else 0.0

    @property
    def error_abs(self) -> float:
        return abs(self.predicted - self.observed)


def records() -> list[dict[str, Any]]:
    with open(CATALOG_DIR / "calibration.yaml", encoding="utf-8") as fh:
        return list(safe_load(fh)["records"])


def engine_profile(record: dict[str, Any]) -> str:
    """How the logged vLLM budgeted memory (fleet.capacity.memory.PROFILES). A V1 record without a version is taken to
    predate 0.26 (every such source is older)."""
    return engine_profile_for(str(record.get("vllm") or "0.11"), record["engine"])


def record_arch(record: dict[str, Any]) -> Arch:
    """The catalog's architecture of the record's model, as its checkpoint's quantization recipe stores it."""
    base = model_catalog()[record["model"]]
    recipe = record["settings"].get("checkpoint_quantization")
    return base if recipe is None else with_checkpoint_quantization(base, recipe)


def settings(record: dict[str, Any]) -> Settings:
    st = record["settings"]
    return Settings(gpu_memory_gib=st.get("gpu_memory_gib", 80.0), tensor_parallel_size=st.get("tensor_parallel_size", 1),
                    pipeline_parallel_size=st.get("pipeline_parallel_size", 1), max_model_len=st.get("max_model_len"),
                    gpu_memory_utilization=st.get("gpu_memory_utilization", 0.9), quantization=st.get("quantization"),
                    kv_cache_dtype=st.get("kv_cache_dtype", "auto"), max_num_batched_tokens=st.get("max_num_batched_tokens"),
                    max_num_seqs=st.get("max_num_seqs"), enforce_eager=bool(st.get("enforce_eager", False)),
                    gpu_model=record.get("gpu"), engine_profile=engine_profile(record),
                    mm_items_per_prompt=(st.get("limit_mm_per_prompt") or {}).get("image"),
                    flashinfer_sampler=st.get("flashinfer_sampler"))


def started_room_gib(observed: dict[str, Any]) -> float | None:
    """What a started server leaves for allocations it has not made before: the device's free memory and the blocks
    torch's allocator keeps cached in its default pool (a new allocation reuses them, and a failed cudaMalloc releases
    them and retries). Runs read it after start-up (`started`: `cached_gib`, or for eager runs, which have no CUDA-graph
    pools, reserved − allocated); None where a run read only the free memory."""
    started = observed.get("started") or {}
    if "free_gib" not in started:
        return None
    if "cached_gib" in started:
        return float(started["free_gib"] + started["cached_gib"])
    if "reserved_gib" in started and observed.get("cuda_graph_gib", 0) == 0:
        return float(started["free_gib"] + started["reserved_gib"] - started["held_gib"])
    return None


def checks(recs: list[dict[str, Any]] | None = None, profiles: dict[str, EngineProfile] | None = None) -> list[Check]:
    """One check per observed number: weights; KV tokens from the logged KV memory (bytes per token);
    and, where the GPU total is known, the KV cache (tokens where printed, else GiB) and the verdict.
    `profiles`: constants to predict with instead of fleet.capacity.memory.PROFILES (the leave-one-source-out refits)."""
    out: list[Check] = []
    for r in records() if recs is None else recs:
        arch = record_arch(r)
        obs = r["observed"]
        s = settings(r)
        if profiles is not None:
            s = replace(s, profile_override=profiles[s.engine_profile])
        base = {"record": r["id"], "engine": r["engine"], "family": arch.family, "fitted": bool(r.get("fitted", True)),
                "measured": r["id"].startswith("h200-")}
        if "weights_gib" in obs:
            out.append(Check(**base, quantity="weights", predicted=weights_gib_per_gpu(arch, s), observed=obs["weights_gib"]))
        if "kv_cache_gib" in obs and "kv_cache_tokens" in obs:
            from_memory = kv_capacity(arch, s, obs["kv_cache_gib"] * GIB, s.max_model_len or arch.max_context or 4096)[0]
            out.append(Check(**base, quantity="kv_tokens_from_memory", predicted=from_memory, observed=obs["kv_cache_tokens"]))
        if "gpu_memory_gib" in r["settings"]:
            sized = size(arch, s, explain=False)
            if "kv_cache_tokens" in obs:
                out.append(Check(**base, quantity="kv_tokens", predicted=sized.kv_cache_tokens, observed=obs["kv_cache_tokens"]))
            elif obs.get("kv_cache_gib", 0) > 0:
                out.append(Check(**base, quantity="kv_cache_gib", predicted=sized.kv_cache_gib, observed=obs["kv_cache_gib"]))
            if "fits" in obs:
                out.append(Check(**base, quantity="verdict", predicted=float(sized.fits), observed=float(obs["fits"])))
            if "activation_gib" in obs and "non_torch_gib" in obs and obs.get("fits", True):
                # What the budget loses before the KV cache: peak activation + non-torch (CUDA graphs sit outside it
                # from vLLM 0.26 and are checked on their own).
                out.append(Check(**base, quantity="overhead_gib", predicted=sized.activation_gib + sized.non_torch_gib,
                                 observed=obs["activation_gib"] + obs["non_torch_gib"]))
            if "cuda_graph_gib" in obs:
                out.append(Check(**base, quantity="cuda_graph_gib", predicted=sized.cuda_graph_gib, observed=obs["cuda_graph_gib"]))
            room = started_room_gib(obs)
            if room is not None:
                # the memory a started server leaves for what it has not allocated before (an unprofiled encoder pass)
                out.append(Check(**base, quantity="serving_room_gib", observed=room, predicted=serving_room_gib(
                    arch, s, sized.activation_gib, sized.non_torch_gib, sized.cuda_graph_gib)))
            if obs.get("serve", {}).get("transient_gib"):
                # a step of the largest images through the encoder (the worst step of the profile's budget)
                out.append(Check(**base, quantity="encoder_pass_gib", predicted=encoder_gib(arch, s),
                                 observed=obs["serve"]["transient_gib"]))
        if "startup_s" in obs:
            out.append(Check(**base, quantity="startup_s", predicted=engine_start_seconds(arch, s.enforce_eager),
                             observed=obs["startup_s"]))
    return out


def source_of(record: dict[str, Any]) -> str:
    """What a record's numbers share with others: its public source, or for the H200 runs the model measured."""
    return f"H200 runs of {record['model']}" if record["id"].startswith("h200-") else str(record["source"])


def fit_profiles(recs: list[dict[str, Any]]) -> dict[str, EngineProfile]:
    """The constants of fleet.capacity.memory.PROFILES refitted on `recs` alone (where they hold the numbers to fit):
    the sampler's bytes per logit before 0.26, non-torch memory at one GPU and at several, and from 0.26 the CUDA-graph
    memory per captured size and per size and layer (least squares), the fused-MoE factor and the serving reserve
    (from the room started servers left: free memory and the allocator's cached blocks, started_room_gib)."""
    fitted = dict(PROFILES)
    per_logit: list[float] = []
    non_torch: dict[str, list[float]] = {}
    non_torch_tp: dict[str, list[float]] = {}
    graphs: list[tuple[float, float, float]] = []      # (sizes, sizes × layers, GiB)
    moe: list[float] = []
    reserve: list[tuple[float, float]] = []          # (GiB-logits, GiB held)
    for r in recs:
        arch, obs, s = record_arch(r), r["observed"], settings(r)
        tokens, seqs = default_batched_tokens(s)
        if "non_torch_gib" in obs:
            several = s.tensor_parallel_size * s.pipeline_parallel_size > 1
            (non_torch_tp if several else non_torch).setdefault(s.engine_profile, []).append(obs["non_torch_gib"])
        if "activation_gib" in obs and "gpu_memory_gib" in r["settings"]:
            forward = activation_gib(arch, replace(s, profile_override=replace(s.profile, sampler_bytes_per_logit=0.0)))
            if s.engine_profile == "v1-native-sampler" and arch.vocab_size and obs["activation_gib"] > forward * 1.2:
                per_logit.append(obs["activation_gib"] * GIB / (seqs * arch.vocab_size))
            if s.engine_profile == "v0.26" and arch.family == "moe" and arch.moe_intermediate_size and arch.experts_per_token:
                routed = arch.experts_per_token * (3 * arch.moe_intermediate_size / s.tensor_parallel_size + (arch.hidden_size or 0))
                moe.append((obs["activation_gib"] * GIB / tokens / 2 - routed) / (arch.hidden_size or 1))
        started_room = started_room_gib(obs)
        if started_room is not None:
            # what the started server held beyond the room a reserve-free profile gives (the logged activations,
            # non-torch and graphs), against its dummy requests × vocabulary entries
            unreserved = replace(s, profile_override=replace(s.profile, serving_reserve_gib=0.0, serving_reserve_bytes_per_logit=0.0))
            room = serving_room_gib(arch, unreserved, obs["activation_gib"], obs["non_torch_gib"], obs["cuda_graph_gib"])
            reserve.append((seqs * (arch.vocab_size or 32000) / GIB, room - started_room))
        if s.engine_profile == "v0.26" and obs.get("cuda_graph_gib", 0) > 0:
            n = len(cuda_graph_sizes(seqs))
            graphs.append((n, n * math.ceil(arch.layers / s.pipeline_parallel_size), obs["cuda_graph_gib"]))
    if per_logit:
        fitted["v1-native-sampler"] = replace(fitted["v1-native-sampler"], sampler_bytes_per_logit=statistics.median(per_logit))
    for name, values in non_torch.items():
        if name in ("v1-native-sampler", "v0.26"):
            fitted[name] = replace(fitted[name], non_torch_gib=statistics.median(values))
    for name, values in non_torch_tp.items():
        if name in ("v1-native-sampler", "v0.26"):
            fitted[name] = replace(fitted[name], non_torch_tp_gib=statistics.median(values))
    latest = fitted["v0.26"]
    if moe:
        latest = replace(latest, moe_hidden_factor=statistics.median(moe))
    if len({x for x, _ in reserve}) > 1:                  # least squares over distinct request × vocabulary sizes
        mx, my = statistics.fmean(x for x, _ in reserve), statistics.fmean(y for _, y in reserve)
        slope = sum((x - mx) * (y - my) for x, y in reserve) / sum((x - mx) ** 2 for x, _ in reserve)
        latest = replace(latest, serving_reserve_gib=my - slope * mx, serving_reserve_bytes_per_logit=slope)
    elif reserve:
        per = latest.serving_reserve_bytes_per_logit
        latest = replace(latest, serving_reserve_gib=statistics.median(y - per * x for x, y in reserve))
    if graphs:
        sxx = sum(a * a for a, _, _ in graphs)
        sxy = sum(a * b for a, b, _ in graphs)
        syy = sum(b * b for _, b, _ in graphs)
        sxg = sum(a * g for a, _, g in graphs)
        syg = sum(b * g for _, b, g in graphs)
        det = sxx * syy - sxy * sxy
        if abs(det) > 1e-9 * sxx * syy:       # two unknowns need layers that differ
            latest = replace(latest, graph_gib_per_size=(sxg * syy - syg * sxy) / det,
                             graph_gib_per_size_and_layer=(syg * sxx - sxg * sxy) / det)
        else:                                  # one layer count: keep the per-layer part, fit the fixed one
            beta = latest.graph_gib_per_size_and_layer
            latest = replace(latest, graph_gib_per_size=sum(g - beta * b for _, b, g in graphs) / sum(a for a, _, _ in graphs))
    fitted["v0.26"] = latest
    return fitted


def leave_one_source_out() -> list[Check]:
    """Each source's records predicted with the constants refitted without it."""
    recs = records()
    out: list[Check] = []
    for source in dict.fromkeys(source_of(r) for r in recs):
        held = [r for r in recs if source_of(r) == source]
        out += checks(held, fit_profiles([r for r in recs if source_of(r) != source]))
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


def measured_summary(items: list[Check], *, held_out_only: bool = False) -> dict[str, Any]:
    """The H200 runs (vLLM 0.26): non-KV overhead and CUDA graphs in GiB (median |error|, and a fixed 1.5 GiB
    guess for comparison; CUDA graphs over the runs that captured them), KV tokens and start-up time in %;
    `held_out_only`: records no constant was fitted on."""
    runs = [c for c in items if c.measured and (c.fitted is False or not held_out_only)]

    def median(values: list[float]) -> float | None:
        return statistics.median(values) if values else None

    overhead = [c for c in runs if c.quantity == "overhead_gib"]
    verdicts = [c for c in runs if c.quantity == "verdict"]
    return {
        "n": len({c.record for c in runs}),
        "overhead_gib": median([c.error_abs for c in overhead]),
        "overhead_fixed_1_5_gib": median([abs(1.5 - c.observed) for c in overhead]),
        "cuda_graph_gib": median([c.error_abs for c in runs if c.quantity == "cuda_graph_gib" and c.observed > 0]),
        "kv_tokens_pct": median([c.error_pct for c in runs if c.quantity == "kv_tokens"]),
        "weights_pct": median([c.error_pct for c in runs if c.quantity == "weights"]),
        "startup_pct": median([c.error_pct for c in runs if c.quantity == "startup_s"]),
        "encoder_pass_gib": median([c.error_abs for c in runs if c.quantity == "encoder_pass_gib"]),
        "serving_room_gib": median([c.error_abs for c in runs if c.quantity == "serving_room_gib"]),
        "verdicts": f"{sum(1 for c in verdicts if c.predicted == c.observed)}/{len(verdicts)}",
    }
