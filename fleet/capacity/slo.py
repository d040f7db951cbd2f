"""From traffic and latency targets to GPU shapes: replicas that meet an SLO at peak, cheapest first.

Every instance type × tensor-parallel size of the catalog that can serve the model is screened with a steady-state
estimate (a fixed point of batch size, step time and latency by Little's law: cheap enough for the whole catalog);
the cheapest candidates are then checked with the scheduler simulation (fleet/capacity/simulate.py) at the rate each
replica gets, adding replicas until the simulated percentiles meet the targets. Request lengths are the means, or
drawn per request (log-normal with the mean and 95th percentile given) in the simulation; the screen uses the means. The probability of meeting the
targets comes from the model's error on held-out runs (a log-normal error per metric: `held_out_sigma` in
fleet/catalog/perf_calibration.yaml, the RMS log error of the held-out points; DEFAULT_SIGMA where a metric has none).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from fleet.capacity.calibration_data import held_out_sigma
from fleet.capacity.lengths import check_lengths, longest
from fleet.capacity.memory import Arch
from fleet.capacity.predict import engine, parallelism_problem
from fleet.capacity.simulate import Engine, Load, typical
from fleet.catalog import InstanceType, gpu_instance_types, prices

TENSOR_PARALLEL_SIZES = (1, 2, 4, 8)
VERIFIED = 6                 # candidates checked with the simulation
SIM_PROMPTS = 400            # requests per simulated check
SIM_SAMPLES = 3              # arrival draws per check, each metric their median (predict takes 7: recommend would take 2x)
# Relative error (one sigma of log error) for a metric the held-out runs do not measure (ITL p95).
DEFAULT_SIGMA = 0.25


@dataclass(frozen=True)
class Targets:
    request_rate: float                   # peak requests per second, all replicas together
    input_tokens: int
    output_tokens: int
    ttft_p50_ms: float | None = None
    ttft_p95_ms: float | None = None
    itl_p50_ms: float | None = None
    itl_p95_ms: float | None = None
    tpot_p50_ms: float | None = None
    input_tokens_p95: int | None = None   # lengths vary: log-normal with the mean above and this 95th percentile
    output_tokens_p95: int | None = None
    max_model_len: int = 0                # the engine's, for the drawn lengths (0: none given)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.request_rate) and self.request_rate > 0):
            raise ValueError(f"request rate must be a positive number of requests per second, got {self.request_rate!r}")
        for name in ("input_tokens", "output_tokens", "input_tokens_p95", "output_tokens_p95"):
            v = getattr(self, name)
            if v is None and name.endswith("_p95"):
                continue
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"{name.replace('_', ' ')} must be a positive whole number, got {v!r}")
        check_lengths(self.input_tokens, self.input_tokens_p95, self.output_tokens, self.output_tokens_p95)
        for name, v in self.limits().items():
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name} target must be a positive number of milliseconds, got {v!r}")

    def longest(self) -> tuple[int, int]:
        """The 95th-percentile request (the mean one when lengths are fixed): what must fit max_model_len."""
        return longest(self.input_tokens, self.input_tokens_p95, self.output_tokens, self.output_tokens_p95)

    def lengths_text(self) -> str:
        def one(mean: int, p95: int | None) -> str:
            return f"{mean}" if p95 is None else f"{mean} (p95 {p95})"
        return f"{one(self.input_tokens, self.input_tokens_p95)} in / {one(self.output_tokens, self.output_tokens_p95)} out"

    def limits(self) -> dict[str, float]:
        names = ("ttft_p50_ms", "ttft_p95_ms", "itl_p50_ms", "itl_p95_ms", "tpot_p50_ms")
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}


@dataclass
class SloOption:
    instance_type: str
    gpu: str
    tp: int
    replicas: int | None
    nodes: int | None
    max_num_seqs: int | None
    max_num_batched_tokens: int | None
    predicted: dict[str, float] = field(default_factory=dict)
    output_tokens_per_s: float = 0.0
    utilization: float = 0.0
    p_meet: float = 0.0
    usd_per_hour: float | None = None
    usd_per_million_output_tokens: float | None = None
    meets_slo: bool = False
    verified: bool = False
    fits: bool = False
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        out = dict(vars(self))
        for k in ("usd_per_hour", "usd_per_million_output_tokens"):
            if out[k] is not None:
                out[k] = round(out[k], 3)
        out["utilization"] = round(self.utilization, 3)
        out["p_meet"] = round(self.p_meet, 3)
        out["output_tokens_per_s"] = round(self.output_tokens_per_s, 1)
        return out


def steady_state(eng: Engine, rate: float, t: Targets) -> dict[str, float] | None:
    """Per-replica latencies at `rate` requests/s, from a fixed point of batch and step time; None when saturated."""
    cost, inp, out = eng.cost, t.input_tokens, t.output_tokens
    budget = eng.max_num_batched_tokens
    ctx = inp + out / 2
    prefill_one = cost.step_seconds(0, 0.0, min(inp, budget), min(inp, budget) * (min(inp, budget) / 2), min(inp, budget), 1)
    chunks = math.ceil(inp / budget)
    n = max(rate * out * 0.01, 1.0)
    step = cost.step_seconds(math.ceil(n), n * ctx)
    for _ in range(40):
        prefill_tokens = rate * inp * step
        step_mixed = cost.step_seconds(math.ceil(n), n * ctx, int(prefill_tokens), prefill_tokens * inp / 2, prefill_tokens)
        e2e = chunks * prefill_one + out * step_mixed
        n_new = rate * e2e
        if n_new > eng.max_num_seqs or n_new * (inp + out) > eng.kv_tokens:
            return None
        if abs(n_new - n) < 0.01 * max(n, 1):
            n, step = n_new, step_mixed
            break
        n, step = 0.5 * (n + n_new), step_mixed
    # The prompts' share of the GPU's time decides how long a new request waits for its prefill (M/D/1-like); the
    # decode batch, capped by max-num-seqs and the KV cache, decides the throughput: utilization is the batch the
    # rate needs over the largest the engine holds.
    rho = rate * chunks * prefill_one
    if rho >= 1.0:
        return None
    n_max = min(eng.max_num_seqs, eng.kv_tokens / (inp + out))
    busy = n / n_max
    wait = step / 2 + prefill_one * rho / (1 - rho)
    http = cost.constants.http_s
    ttft50 = http + wait + chunks * prefill_one
    return {"ttft_p50_ms": ttft50 * 1000, "ttft_p95_ms": (http + 3 * wait + chunks * prefill_one) * 1000,
            "itl_p50_ms": step * 1000, "itl_p95_ms": (step + prefill_one * min(1.0, busy * 4)) * 1000,
            "tpot_p50_ms": step * 1000, "utilization": busy, "batch": n}


def _meets(pred: dict[str, float], t: Targets) -> bool:
    return all(pred.get(k, math.inf) <= v for k, v in t.limits().items())


def sigmas(sigma: float | None = None) -> dict[str, float]:
    """One sigma of log error per target metric: the given one for all, else the held-out runs'."""
    names = ("ttft_p50_ms", "ttft_p95_ms", "itl_p50_ms", "itl_p95_ms", "tpot_p50_ms")
    if sigma is not None:
        return dict.fromkeys(names, sigma)
    measured = held_out_sigma()
    return {n: measured.get(n) or DEFAULT_SIGMA for n in names}


def _p_meet(pred: dict[str, float], t: Targets, sigma: float | None) -> float:
    spread = sigmas(sigma)
    p = 1.0
    for k, limit in t.limits().items():
        if pred.get(k, 0) <= 0:
            continue
        z = math.log(limit / pred[k]) / spread[k]
        p *= 0.5 * (1 + math.erf(z / math.sqrt(2)))
    return p


def simulated(eng: Engine, rate: float, t: Targets) -> dict[str, float]:
    m = typical(eng, Load(t.input_tokens, t.output_tokens, request_rate=rate, num_prompts=SIM_PROMPTS, seed=7,
                          input_p95=t.input_tokens_p95, output_p95=t.output_tokens_p95, max_model_len=t.max_model_len), SIM_SAMPLES)
    return {k: m[k] for k in ("mean_waiting", "ttft_p50_ms", "ttft_p95_ms", "itl_p50_ms", "itl_p95_ms", "tpot_p50_ms",
                              "output_tokens_per_s")}


def _nodes(inst: InstanceType, tp: int, replicas: int) -> int:
    return math.ceil(replicas / (inst.gpus // tp))


def recommend_slo(arch: Arch, targets: Targets, region: str, *, max_model_len: int | None = None,
                  quantization: str | None = None, vllm_version: str | None = None,
                  sigma: float | None = None, max_replicas: int = 64) -> list[SloOption]:
    max_len = max_model_len or max(sum(targets.longest()), 4096)
    if not targets.max_model_len:
        targets = replace(targets, max_model_len=max_len)
    options: list[SloOption] = []
    candidates: list[tuple[SloOption, Engine, InstanceType]] = []
    for inst in gpu_instance_types().values():
        for tp in TENSOR_PARALLEL_SIZES:
            if tp > inst.gpus:
                continue
            opt = SloOption(instance_type=inst.instance_type, gpu=inst.gpu_model, tp=tp, replicas=None, nodes=None,
                            max_num_seqs=None, max_num_batched_tokens=None)
            options.append(opt)
            problem = parallelism_problem(arch, inst, tp)
            if problem:
                opt.reason = problem
                continue
            try:
                eng, reason = engine(arch, inst, tp=tp, max_model_len=max_len, quantization=quantization, vllm_version=vllm_version)
            except (KeyError, ValueError) as exc:   # a board without performance facts
                opt.reason = str(exc)
                continue
            if eng is None:
                opt.reason = f"does not fit: {reason}"
                continue
            opt.fits = True
            opt.max_num_seqs, opt.max_num_batched_tokens = eng.max_num_seqs, eng.max_num_batched_tokens
            replicas = None
            for r in range(1, max_replicas + 1):
                state = steady_state(eng, targets.request_rate / r, targets)
                if state is not None and _meets(state, targets):
                    replicas = r
                    break
            if replicas is None:
                best = steady_state(eng, targets.request_rate / max_replicas, targets)
                opt.reason = ("cannot meet the targets at any replica count: one request alone takes "
                              f"{_describe(best)}" if best else f"saturated even at {max_replicas} replicas")
                opt.predicted = {k: round(v, 2) for k, v in (best or {}).items() if k.endswith("_ms")}
                continue
            _fill(opt, inst, tp, replicas, eng, steady_state(eng, targets.request_rate / replicas, targets) or {}, targets,
                  region, sigma)
            candidates.append((opt, eng, inst))
    # check the cheapest candidates with the simulation, adding replicas until it meets the targets
    candidates.sort(key=lambda c: (c[0].usd_per_hour is None, c[0].usd_per_hour or 0.0))
    for opt, eng, inst in candidates[:VERIFIED]:
        r = opt.replicas or 1
        for _ in range(8):
            pred = simulated(eng, targets.request_rate / r, targets)
            if _meets(pred, targets):
                break
            r += 1
        _fill(opt, inst, opt.tp, r, eng, pred, targets, region, sigma)
        opt.verified = True
    for opt, _, _ in candidates[VERIFIED:]:
        opt.reason += " (screened by the steady-state estimate; not simulated)"
    return sorted(options, key=lambda o: (not o.meets_slo, o.usd_per_hour is None, o.usd_per_hour or 0.0, o.tp, o.instance_type))


def _describe(pred: dict[str, float] | None) -> str:
    if not pred:
        return "-"
    return ", ".join(f"{k.removesuffix('_ms').replace('_', ' ')} {v:,.1f} ms" for k, v in pred.items() if k.endswith("_ms"))


def _fill(opt: SloOption, inst: InstanceType, tp: int, replicas: int, eng: Engine, pred: dict[str, float], t: Targets,
          region: str, sigma: float | None) -> None:
    opt.replicas, opt.nodes = replicas, _nodes(inst, tp, replicas)
    opt.predicted = {k: round(v, 2) for k, v in pred.items() if k.endswith("_ms")}
    opt.meets_slo = _meets(pred, t)
    opt.p_meet = _p_meet(pred, t, sigma)
    state = steady_state(eng, t.request_rate / replicas, t)
    opt.utilization = state["utilization"] if state else 1.0
    opt.output_tokens_per_s = t.request_rate * t.output_tokens
    price = prices().get((inst.instance_type, region))
    opt.usd_per_hour = opt.nodes * price.on_demand if price is not None else None
    if opt.usd_per_hour is not None:
        opt.usd_per_million_output_tokens = opt.usd_per_hour / (opt.output_tokens_per_s * 3600) * 1e6
    where = "" if price is not None else f"; unpriced in {region}"
    opt.reason = (f"{replicas} replica(s) of {tp} GPU(s) on {opt.nodes} node(s) at {t.request_rate / replicas:,.2f} req/s each"
                  + where)


def planned_engine(m: Any) -> tuple[Engine, Targets] | None:
    """A planned model's (fleet.spec.resolved.ResolvedModel) simulated replica on its pool with its engine settings,
    and its team file's targets; None without an slo, for a replica spanning nodes, or where no engine can be modelled."""
    slo = m.spec.slo
    if slo is None or m.arch is None or m.nodes_per_replica > 1:
        return None
    t = Targets(slo.request_rate, slo.input_tokens, slo.output_tokens, ttft_p50_ms=slo.ttft_p50_ms, ttft_p95_ms=slo.ttft_p95_ms,
                itl_p50_ms=slo.itl_p50_ms, itl_p95_ms=slo.itl_p95_ms, tpot_p50_ms=slo.tpot_p50_ms,
                input_tokens_p95=slo.input_tokens_p95, output_tokens_p95=slo.output_tokens_p95,
                max_model_len=m.spec.max_model_len or m.arch.max_context or 0)
    try:
        eng, _ = engine(m.arch, m.instance, tp=m.spec.tensor_parallel_size or m.gpus_per_replica,
                        max_model_len=m.spec.max_model_len, max_num_seqs=m.spec.max_num_seqs,
                        max_num_batched_tokens=m.spec.max_num_batched_tokens, quantization=m.spec.quantization)
    except (KeyError, ValueError):
        return None
    return None if eng is None else (eng, t)


def model_slo_problem(m: Any) -> str | None:
    """For a planned model (fleet.spec.resolved.ResolvedModel) with an `slo`: why its replicas at max cannot meet it
    at peak, with the replicas that would, or None when they can (or the model's performance cannot be predicted)."""
    planned = planned_engine(m)
    if planned is None:
        return None
    eng, t = planned
    at_max = simulated(eng, t.request_rate / m.max_replicas, t)
    if _meets(at_max, t):
        return None
    missed = ", ".join(f"{k.removesuffix('_ms').replace('_', ' ')} {at_max[k]:,.1f} ms > {v:g}"
                       for k, v in t.limits().items() if at_max.get(k, math.inf) > v)
    need = None
    for r in range(m.max_replicas + 1, 4 * m.max_replicas + 65):
        state = steady_state(eng, t.request_rate / r, t)
        if state is not None and _meets(state, t) and _meets(simulated(eng, t.request_rate / r, t), t):
            need = r
            break
    fix = (f"{need} replicas would meet it — raise autoscaling.max_replicas (and the team's GPU quota) to {need}"
           if need else "no replica count on this pool meets it — see `vllm-fleet recommend --request-rate` for shapes that do")
    return (f"at {t.request_rate:g} req/s of {t.lengths_text()}, {m.max_replicas} replica(s) of "
            f"{m.instance.instance_type} predict {missed}; {fix}")


CURVE_FRACTIONS = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5)


def model_slo_curve(m: Any) -> dict[str, Any] | None:
    """A planned model's targets and its predicted TTFT p95 / ITL p50 at fractions of the peak rate, spread over its
    replicas at max (for the PR chart); None without an slo or a predictable engine."""
    planned = planned_engine(m)
    if planned is None:
        return None
    eng, t = planned
    points = []
    for f in CURVE_FRACTIONS:
        rate = t.request_rate * f
        pred = simulated(eng, rate / m.max_replicas, t)
        points.append({"request_rate": round(rate, 3), "ttft_p95_ms": round(pred["ttft_p95_ms"], 1),
                       "itl_p50_ms": round(pred["itl_p50_ms"], 2)})
    lengths = {k: v for k, v in (("input_tokens_p95", t.input_tokens_p95), ("output_tokens_p95", t.output_tokens_p95)) if v}
    return {"targets": {"request_rate": t.request_rate, "input_tokens": t.input_tokens, "output_tokens": t.output_tokens,
                        **lengths, **t.limits()}, "replicas": m.max_replicas, "curve": points}


def mermaid_chart(name: str, slo: dict[str, Any]) -> list[str]:
    """A Mermaid xychart-beta (GitHub renders it in PR comments): predicted TTFT p95 against the request rate at the
    model's max replicas, with the target drawn as a second, flat line."""
    curve = slo["curve"]
    xs = ", ".join(f"{p['request_rate']:g}" for p in curve)
    metric, key = ("TTFT p95 ms", "ttft_p95_ms") if "ttft_p95_ms" in slo["targets"] or "itl_p50_ms" not in slo["targets"] \
        else ("ITL p50 ms", "itl_p50_ms")
    values = [p[key] for p in curve]
    target = slo["targets"].get(key)
    top = max(values + ([target] if target else [])) * 1.1
    lines = ["```mermaid", "xychart-beta", f'    title "{name}: predicted {metric} at {slo["replicas"]} replica(s)"',
             f'    x-axis "requests per second" [{xs}]', f'    y-axis "{metric}" 0 --> {top:.0f}',
             f"    line [{', '.join(f'{v:g}' for v in values)}]"]
    if target:
        lines.append(f"    line [{', '.join(f'{target:g}' for _ in curve)}]")
    return [*lines, "```", ""]


def queue_target(m: Any) -> float | None:
    """The autoscaler's target of `vllm:num_requests_waiting` per pod for a model with an slo: the queue a replica
    holds, on average, at the highest rate at which it still meets the targets (found by bisection on the
    simulation). Above it the replica is past what its SLO allows, so the autoscaler adds one. None without an slo or
    a predictable engine."""
    planned = planned_engine(m)
    if planned is None:
        return None
    eng, t = planned
    lo, hi = 0.0, t.request_rate
    while _meets(simulated(eng, hi, t), t) and hi < 1e4:
        lo, hi = hi, hi * 2
    best: dict[str, float] | None = None
    for _ in range(7):
        mid = (lo + hi) / 2
        pred = simulated(eng, mid, t)
        if _meets(pred, t):
            lo, best = mid, pred
        else:
            hi = mid
    if best is None:
        return 0.1   # not even a trickle meets the targets: scale out on any queue (S1 says why)
    return max(0.1, round(best["mean_waiting"], 1))
