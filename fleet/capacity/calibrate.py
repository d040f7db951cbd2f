"""Fit the step model's constants on measured step grids, and score the model on runs kept out of the fit.

Records (fleet/catalog/perf_runs.yaml, made by scripts/perf_records.py from scripts/gpu_perf_measure.py's output)
hold, per run, the server's settings, the KV cache vLLM reported, a step grid and `vllm bench serve` points. The fit
uses only the step grids of the runs not held out: decode points give a step's duration directly; a prefill point
(B prompts of P tokens sent at once, one output token) is replayed through the scheduler simulation, since its
duration is several chunked steps. It minimises the squared log error with Nelder-Mead (pure Python; seven
constants). The benchmark points are never fitted: every one of them is a prediction of the simulation, and so is
every point of a held-out run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, cast

from fleet.capacity.memory import Settings, model_catalog
from fleet.capacity.perf import GpuModel, ModelCost, StepConstants, gpu_models, model_cost
from fleet.capacity.simulate import SAMPLES, Engine, Load, percentile, simulate, typical
from fleet.catalog import CATALOG_DIR
from fleet.yamlsrc import safe_load

PERF_RUNS = CATALOG_DIR / "perf_runs.yaml"
FITTED = ("e_compute", "e_weights", "e_kv", "fixed_s", "per_layer_s", "per_token_layer_s", "http_s", "piecewise_layer_s",
          "eager_layer_s")
MOE_FITTED = ("e_expert", "moe_launch_factor")     # only where a MoE was measured
SCALE = {"e_compute": 1.0, "e_weights": 1.0, "e_kv": 1.0, "e_expert": 1.0, "fixed_s": 1e-3, "per_layer_s": 1e-5, "per_token_layer_s": 1e-8,
         "http_s": 1e-3, "piecewise_layer_s": 1e-4, "eager_layer_s": 1e-4, "moe_launch_factor": 1.0}


@dataclass(frozen=True)
class Run:
    name: str
    model: str
    gpu_model: str
    server: dict[str, Any]
    kv_cache_tokens: int
    grid: dict[str, Any]
    bench: list[dict[str, Any]]
    held_out: bool
    source: str


@lru_cache(maxsize=1)
def runs() -> tuple[Run, ...]:
    if not PERF_RUNS.exists():
        return ()
    with open(PERF_RUNS, encoding="utf-8") as fh:
        doc = safe_load(fh) or {}
    return tuple(Run(**{k: r[k] for k in Run.__dataclass_fields__}) for r in doc.get("runs") or ())


def settings_for(run: Run) -> Settings:
    s = run.server
    return Settings(gpu_memory_gib=80.0, gpus_per_node=1, tensor_parallel_size=int(s.get("tensor_parallel_size", 1)),
                    max_model_len=int(s["max_model_len"]), max_num_seqs=int(s["max_num_seqs"]),
                    max_num_batched_tokens=int(s["max_num_batched_tokens"]), quantization=s.get("quantization"),
                    gpu_memory_utilization=float(s.get("gpu_memory_utilization", 0.9)), gpu_model=run.gpu_model)


def engine_for(run: Run, constants: StepConstants) -> Engine:
    arch = model_catalog()[run.model]
    gpu: GpuModel = gpu_models()[run.gpu_model]
    s = settings_for(run)
    cost: ModelCost = model_cost(arch, s, gpu, constants)
    return Engine(cost=cost, max_num_seqs=s.max_num_seqs or 256, max_num_batched_tokens=s.max_num_batched_tokens or 8192,
                  kv_tokens=run.kv_cache_tokens)


def grid_points(run: Run, constants: StepConstants) -> list[tuple[str, float, float]]:
    """(what, measured seconds, predicted seconds) for every point of the run's step grid."""
    eng = engine_for(run, constants)
    out: list[tuple[str, float, float]] = []
    for p in run.grid.get("decode", ()):
        b, ctx, tokens = p["batch"], p["context_tokens"], p["tokens"]
        if p.get("steady_gaps", 1):
            # the median gap while all B decode: one decode step at batch B
            pred = eng.cost.step_seconds(b, b * (ctx + tokens / 2))
            out.append((f"decode b={b} ctx={ctx}", p["step_ms"] / 1000, pred))
        else:
            # the B streams never all decoded at once (their prompts took several chunked steps): the median of every
            # gap, as the simulation of the same requests gives it
            o = simulate(eng, Load(ctx, tokens, concurrency=b, num_prompts=b))
            out.append((f"decode b={b} ctx={ctx} (mixed)", p["itl_p50_ms"] / 1000, percentile(o.itl_s, 50)))
    for p in run.grid.get("prefill", ()):
        b, plen = p["batch"], p["prompt_tokens"]
        o = simulate(eng, Load(plen, 1, concurrency=b, num_prompts=b))
        out.append((f"prefill b={b} len={plen}", p["median_ms"] / 1000, max(o.e2e_s)))
    return out


def fitted_names(runs_: list[Run]) -> tuple[str, ...]:
    """The constants a set of runs can fix: the routed experts' efficiency and launch factor only where a MoE was
    measured."""
    catalog = model_catalog()
    moe = any(catalog[r.model].experts for r in runs_)
    return (*FITTED, *MOE_FITTED) if moe else FITTED


def _objective(runs_: list[Run], base: StepConstants):
    names = fitted_names(runs_)

    def f(x: list[float]) -> float:
        values = {name: x[i] * SCALE[name] for i, name in enumerate(names)}
        if any(v <= 0 for v in values.values()) or any(values[k] > 1.0 for k in ("e_compute", "e_weights", "e_kv", "e_expert")
                                                        if k in values):
            return 1e9
        c = replace(base, **cast(dict[str, Any], values))
        err = 0.0
        for run in runs_:
            for _, measured, pred in grid_points(run, c):
                err += math.log(pred / measured) ** 2
        return err
    return f


def nelder_mead(f, x0: list[float], step: float = 0.3, iters: int = 600, tol: float = 1e-9) -> list[float]:
    n = len(x0)
    pts = [list(x0)] + [[x0[j] * (1 + step) if j == i else x0[j] for j in range(n)] for i in range(n)]
    vals = [f(p) for p in pts]
    for _ in range(iters):
        order = sorted(range(n + 1), key=lambda i: vals[i])
        pts, vals = [pts[i] for i in order], [vals[i] for i in order]
        if abs(vals[-1] - vals[0]) < tol:
            break
        centroid = [sum(p[j] for p in pts[:-1]) / n for j in range(n)]
        worst = pts[-1]
        refl = [centroid[j] + (centroid[j] - worst[j]) for j in range(n)]
        fr = f(refl)
        if fr < vals[0]:
            exp = [centroid[j] + 2 * (centroid[j] - worst[j]) for j in range(n)]
            fe = f(exp)
            pts[-1], vals[-1] = (exp, fe) if fe < fr else (refl, fr)
        elif fr < vals[-2]:
            pts[-1], vals[-1] = refl, fr
        else:
            con = [centroid[j] + 0.5 * (worst[j] - centroid[j]) for j in range(n)]
            fc = f(con)
            if fc < vals[-1]:
                pts[-1], vals[-1] = con, fc
            else:
                best = pts[0]
                pts = [best] + [[best[j] + 0.5 * (p[j] - best[j]) for j in range(n)] for p in pts[1:]]
                vals = [vals[0]] + [f(p) for p in pts[1:]]
    return pts[min(range(n + 1), key=lambda i: vals[i])]


def fit(gpu_model: str, runs_: list[Run] | None = None) -> StepConstants:
    """Constants for one board, from the step grids of its runs that are not held out."""
    chosen = [r for r in (runs_ if runs_ is not None else runs()) if r.gpu_model == gpu_model and not r.held_out]
    if not chosen:
        raise ValueError(f"no runs on {gpu_model} to fit")
    base = StepConstants(e_expert=StepConstants().e_compute, moe_launch_factor=1.5)
    names = fitted_names(chosen)
    x0 = [getattr(base, name) / SCALE[name] for name in names]
    best = nelder_mead(_objective(chosen, base), x0)
    best = nelder_mead(_objective(chosen, base), best, step=0.1)
    values = {name: best[i] * SCALE[name] for i, name in enumerate(names)}
    if "e_expert" not in names:
        values.update(e_expert=0.0, moe_launch_factor=0.0)     # no MoE measured: experts run as dense layers do
    return replace(base, **cast(dict[str, Any], values), source=f"fitted on the step grids of {', '.join(r.name for r in chosen)}")


# ttft_mean is a diagnostic, not a goal: where a closed loop's prompts split over two prefill steps the TTFTs are
# bimodal, and a p50 on the split jumps between the two clusters while the mean does not
BENCH_METRICS = {"ttft_mean": "mean_ttft_ms", "ttft_p50": "median_ttft_ms", "ttft_p95": "p95_ttft_ms", "itl_p50": "median_itl_ms", "itl_p95": "p95_itl_ms",
                 "tpot_p50": "median_tpot_ms"}


def bench_errors(run: Run, constants: StepConstants, samples: int = SAMPLES) -> list[dict[str, Any]]:
    """Each benchmark point of a run, measured and predicted (relative errors), as the simulation replays it: each
    metric the median over `samples` arrival draws (simulate.typical)."""
    eng = engine_for(run, constants)
    rows = []
    for p in run.bench:
        load = Load(p["input_len"], p["output_len"], concurrency=p.get("concurrency"), request_rate=p.get("request_rate"),
                    num_prompts=p["num_prompts"])
        m = typical(eng, load, samples)
        row: dict[str, Any] = {"run": run.name, "load": f"c={p['concurrency']}" if p.get("concurrency") else f"r={p['request_rate']}"}
        for key, measured_key in BENCH_METRICS.items():
            if measured_key in p:
                row[key] = (p[measured_key], m[f"{key}_ms"])
        if "output_throughput" in p:
            row["throughput"] = (p["output_throughput"], m["output_tokens_per_s"])
        rows.append(row)
    return rows


SLO_MENU = {"ttft_p95": (200.0, 500.0, 1000.0, 2000.0, 5000.0), "itl_p50": (15.0, 25.0, 50.0, 100.0)}


def _pct(n: int, right: int) -> float | None:
    return 100.0 * right / n if n else None


def median_error_pct(rows: list[dict[str, Any]], key: str) -> float | None:
    """The median |predicted / measured − 1| of one metric over benchmark rows (bench_errors'), in percent."""
    errs = [abs(r[key][1] / r[key][0] - 1) for r in rows if key in r and r[key][0] > 0]
    return percentile(errs, 50) * 100 if errs else None


def accuracy(constants_by_gpu: dict[str, StepConstants], runs_: list[Run] | None = None) -> dict[str, Any]:
    """Relative errors of every benchmark point and of the held-out runs' step grids, and how often the
    meets/doesn't-meet verdict is right for a menu of typical targets (TTFT p95 × ITL p50). Only the held-out runs'
    points are predictions of a model that never saw them: the API server's costs are fitted on the others'."""
    chosen = list(runs_ if runs_ is not None else runs())
    rows: list[dict[str, Any]] = []
    grid_errors: list[float] = []
    for run in chosen:
        c = constants_by_gpu.get(run.gpu_model)
        if c is None:
            continue
        for row in bench_errors(run, c):
            row["held_out"] = run.held_out
            rows.append(row)
        if run.held_out:
            grid_errors += [abs(pred / measured - 1) for _, measured, pred in grid_points(run, c)]

    def verdicts(which: list[dict[str, Any]]) -> tuple[int, int]:
        n = right = 0
        for r in which:
            if "ttft_p95" not in r or "itl_p50" not in r:
                continue
            for ttft in SLO_MENU["ttft_p95"]:
                for itl in SLO_MENU["itl_p50"]:
                    measured = r["ttft_p95"][0] <= ttft and r["itl_p50"][0] <= itl
                    predicted = r["ttft_p95"][1] <= ttft and r["itl_p50"][1] <= itl
                    n += 1
                    right += measured == predicted
        return n, right

    held = [r for r in rows if r["held_out"]]
    return {
        "points": len(rows), "held_out_points": len(held),
        "median_pct": {k: median_error_pct(rows, k) for k in ("ttft_p50", "ttft_p95", "itl_p50", "tpot_p50", "throughput")},
        "held_out_median_pct": {k: median_error_pct(held, k) for k in ("ttft_p50", "ttft_p95", "itl_p50", "tpot_p50", "throughput")},
        "held_out_grid_median_pct": percentile(grid_errors, 50) * 100 if grid_errors else None,
        "verdicts": verdicts(rows)[0], "verdicts_right_pct": _pct(*verdicts(rows)),
        "held_out_verdicts": verdicts(held)[0], "held_out_verdicts_right_pct": _pct(*verdicts(held)),
        "rows": rows,
    }


def held_out_sigma(result: dict[str, Any]) -> dict[str, float]:
    """Per metric, the root-mean-square log error of the held-out points (bias included): the spread `recommend`'s
    P(meet) assumes around a prediction. Keys as the targets name them."""
    out: dict[str, float] = {}
    for key in ("ttft_p50", "ttft_p95", "itl_p50", "itl_p95", "tpot_p50"):
        logs = [math.log(r[key][1] / r[key][0]) for r in result["rows"]
                if r["held_out"] and key in r and r[key][0] > 0 and r[key][1] > 0]
        if logs:
            out[f"{key}_ms"] = round(math.sqrt(sum(x * x for x in logs) / len(logs)), 3)
    return out


FRONTEND = ("frontend_request_s", "frontend_input_token_s", "frontend_output_token_s")
FRONTEND_SCALE = {"frontend_request_s": 1e-3, "frontend_input_token_s": 1e-5, "frontend_output_token_s": 1e-4}


def fit_frontend(gpu_model: str, step: StepConstants, runs_: list[Run] | None = None, iters: int = 60) -> StepConstants:
    """The API server's serial costs, from the benchmark points of the runs not held out (the step grid sends token
    ids and reads one output, so it cannot show them): TTFT p50, ITL p50 and throughput in log error."""
    chosen = [r for r in (runs_ if runs_ is not None else runs()) if r.gpu_model == gpu_model and not r.held_out]

    def f(x: list[float]) -> float:
        if any(v < 0 for v in x):
            return 1e9
        c = replace(step, **cast(dict[str, Any], {name: x[i] * FRONTEND_SCALE[name] for i, name in enumerate(FRONTEND)}))
        err = 0.0
        for run in chosen:
            # one arrival draw a point: the fit's terms are medians and throughput, which one draw gives within a few
            # percent (the tails are what the draws spread), and seven would make the fit four times as long
            for row in bench_errors(run, c, samples=1):
                for key in ("ttft_p50", "itl_p50", "throughput"):
                    if key in row and row[key][0] > 0 and row[key][1] > 0:
                        err += math.log(row[key][1] / row[key][0]) ** 2
        return err

    best = nelder_mead(f, [1.0, 1.0, 0.7], step=0.5, iters=iters)
    values = {name: best[i] * FRONTEND_SCALE[name] for i, name in enumerate(FRONTEND)}
    return replace(step, **cast(dict[str, Any], values),
                   source=step.source + f"; API-server costs fitted on the vllm bench serve points of {', '.join(r.name for r in chosen)}")
