"""A discrete-event simulation of one vLLM engine serving a load, measured the way `vllm bench serve` measures it.

The scheduler is vLLM V1's (vllm/v1/core/sched/scheduler.py at 0.26): every step has a token budget of
`max_num_batched_tokens`; running requests go first (a decoding request takes one token, a request still in its
prompt takes the rest of its prompt or what is left of the budget: chunked prefill), then waiting requests in
arrival order while fewer than `max_num_seqs` run and the budget lasts. A request holds KV blocks of 16 tokens for
everything computed; when a running request cannot get its next block the newest running request is preempted
(its blocks freed, its prompt and output so far recomputed later). A step's duration is the step model's
(fleet/capacity/perf.py); scheduling is asynchronous, as vLLM's default is: the next step is planned while one
runs, so a request that arrives during a step waits for the one after. The API server runs in a process of its own in front of the engine: it tokenizes each
prompt before the scheduler sees the request and detokenizes and streams every step's tokens, one job after the
other, so under many streams its work — not the GPU's — can set the pace the client sees.

Loads are those of the benchmark: closed loop (`--max-concurrency C`: C requests in flight, the next sent when one
ends) or open loop (`--request-rate R`: gamma inter-arrival times of shape `burstiness`, 1 = Poisson), fixed prompt
and output lengths, `--ignore-eos` — or lengths drawn per request from a log-normal with a given mean and 95th
percentile (a team's `slo`), cut to `max_model_len`. Metrics: TTFT and end-to-end latency per request (plus the server's own time
for a request, `http_s`), ITL pooled over every gap between two tokens of a request, TPOT per request, throughput
over the whole run — percentiles by linear interpolation, as numpy's (which the benchmark uses).
"""

from __future__ import annotations

import heapq
import math
import random
import statistics
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

from fleet.capacity.lengths import lognormal_sigma
from fleet.capacity.perf import ModelCost

BLOCK = 16


@dataclass(frozen=True)
class Load:
    input_tokens: int                     # per request: the mean when input_p95 is given, else every request's
    output_tokens: int
    concurrency: int | None = None        # closed loop
    request_rate: float | None = None     # open loop, requests per second (per engine)
    num_prompts: int = 0                  # 0: enough for a steady state (default_prompts)
    burstiness: float = 1.0
    seed: int = 0
    input_p95: int | None = None          # lengths drawn log-normal with the mean and this 95th percentile
    output_p95: int | None = None
    max_model_len: int = 0                # a drawn request is cut to fit it (vLLM would refuse a longer one)

    def lengths(self, n: int) -> tuple[list[int], list[int]]:
        """Each request's prompt and output tokens, in the order the requests are sent."""
        rng = random.Random(self.seed * 7919 + 17)   # apart from the arrival times' stream
        def draw(mean: int, p95: int | None) -> list[int]:
            if p95 is None or p95 == mean:
                return [mean] * n
            sigma = lognormal_sigma(mean, p95)
            mu = math.log(mean) - sigma * sigma / 2
            return [max(1, round(math.exp(rng.gauss(mu, sigma)))) for _ in range(n)]
        ins, outs = draw(self.input_tokens, self.input_p95), draw(self.output_tokens, self.output_p95)
        if self.max_model_len:
            ins = [min(i, self.max_model_len - 1) for i in ins]
            outs = [min(o, self.max_model_len - i) for i, o in zip(ins, outs, strict=True)]
        return ins, outs

    def prompts(self) -> int:
        if self.num_prompts:
            return self.num_prompts
        if self.concurrency is not None:
            return max(8, min(4 * self.concurrency, 512)) if self.concurrency > 1 else 6
        return int(max(48, min((self.request_rate or 1) * 25, 800)))


@dataclass(frozen=True)
class Engine:
    cost: ModelCost
    max_num_seqs: int
    max_num_batched_tokens: int
    kv_tokens: int


@dataclass
class Outcome:
    ttft_s: list[float] = field(default_factory=list)
    e2e_s: list[float] = field(default_factory=list)
    tpot_s: list[float] = field(default_factory=list)
    itl_s: list[float] = field(default_factory=list)
    duration_s: float = 0.0
    output_tokens: int = 0
    requests: int = 0
    steps: int = 0
    preemptions: int = 0
    mean_batch: float = 0.0
    mean_waiting: float = 0.0    # requests in the scheduler's waiting queue, time-averaged (vllm:num_requests_waiting)

    @property
    def output_tokens_per_s(self) -> float:
        return self.output_tokens / self.duration_s if self.duration_s else 0.0

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0


def percentile(values: list[float], q: float) -> float:
    """numpy.percentile's default (linear) interpolation."""
    if not values:
        return 0.0
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


class _Req:
    __slots__ = ("arrival", "base", "blocks", "computed", "first", "generated", "inp", "last", "out", "prompt")

    def __init__(self, arrival: float, prompt: int, out: int) -> None:
        self.arrival = arrival
        self.inp = prompt
        self.out = out
        self.prompt = prompt        # tokens to compute before the next sample (grows by the output when preempted)
        self.computed = 0
        self.generated = 0
        self.base = 0               # output tokens already inside `prompt` (recomputed after a preemption)
        self.first: float | None = None
        self.last = 0.0
        self.blocks = 0


def simulate(engine: Engine, load: Load, *, max_steps: int = 2_000_000) -> Outcome:
    cost = engine.cost
    c = cost.constants
    http = c.http_s
    fe_free = 0.0                       # when the API server's process is next idle
    ready: list[tuple[float, float, int]] = []   # (time it reaches the scheduler, its arrival, its index): after tokenizing
    n = load.prompts()
    ins, outs = load.lengths(n)
    sent = 0
    total_blocks = max(engine.kv_tokens // BLOCK, 1)
    rng = random.Random(load.seed)
    arrivals: list[float] = []          # heap of pending arrival times
    if load.concurrency is not None:
        first_wave = min(load.concurrency, n)
        arrivals = [0.0] * first_wave
        to_send = n - first_wave
    else:
        rate = load.request_rate or 0.0
        if rate <= 0:
            raise ValueError("a request rate must be positive")
        t_arr = 0.0
        for _ in range(n):
            arrivals.append(t_arr)
            shape = load.burstiness
            t_arr += rng.gammavariate(shape, 1.0 / (rate * shape))
        to_send = 0
    heapq.heapify(arrivals)
    waiting: deque[_Req] = deque()
    running: list[_Req] = []
    used_blocks = 0
    t = 0.0
    step_start = 0.0
    res = Outcome(requests=n)
    batch_sum = 0
    waiting_time = 0.0
    finished = 0
    budget_tokens = engine.max_num_batched_tokens
    while finished < n and res.steps < max_steps:
        while arrivals and arrivals[0] <= t + 1e-12:
            a = heapq.heappop(arrivals)
            fe_free = max(fe_free, a) + c.frontend_request_s + c.frontend_input_token_s * ins[sent]
            heapq.heappush(ready, (fe_free, a, sent))
            sent += 1
        # asynchronous scheduling (vLLM's default: "Asynchronous scheduling is enabled" in every measured run's log):
        # while a step runs the scheduler already plans the next one, so a request that reaches it during step k
        # first runs in step k + 2 — unless nothing was running, when the next step is planned on its arrival
        cutoff = step_start if running else t
        while ready and ready[0][0] <= cutoff + 1e-12:
            _, arrived, i = heapq.heappop(ready)
            waiting.append(_Req(arrived, ins[i], outs[i]))
        if not running and not waiting:
            upcoming = [x for x in (arrivals[0] if arrivals else None, ready[0][0] if ready else None) if x is not None]
            if not upcoming:
                break
            t = max(t, min(upcoming))
            continue
        budget = budget_tokens
        scheduled: list[tuple[_Req, int]] = []
        # running requests first, in the order they were admitted
        i = 0
        while i < len(running) and budget > 0:
            r = running[i]
            need = min(r.prompt - r.computed, budget) if r.computed < r.prompt else 1
            # a request's context: its prompt (recomputed output included) computed so far, plus its new output
            want = -(-(r.computed + (r.generated - r.base) * (r.computed >= r.prompt) + need) // BLOCK)
            grow = max(want - r.blocks, 0)
            while used_blocks + grow > total_blocks and len(running) - 1 > i:
                victim = running.pop()          # the newest running request gives its blocks back
                used_blocks -= victim.blocks
                victim.blocks = 0
                victim.prompt = victim.inp + victim.generated
                victim.base = victim.generated
                victim.computed = 0
                waiting.appendleft(victim)
                res.preemptions += 1
            if used_blocks + grow > total_blocks:
                break
            r.blocks += grow
            used_blocks += grow
            scheduled.append((r, need))
            budget -= need
            i += 1
        # then waiting requests, first come first served
        while waiting and len(running) < engine.max_num_seqs and budget > 0:
            r = waiting[0]
            need = min(r.prompt - r.computed, budget)
            want = -(-(r.computed + need) // BLOCK)
            if used_blocks + want - r.blocks > total_blocks:
                break
            waiting.popleft()
            used_blocks += want - r.blocks
            r.blocks = want
            running.append(r)
            scheduled.append((r, need))
            budget -= need
        if not scheduled:
            # nothing fits: wait for an arrival (cannot happen while something runs)
            upcoming = [x for x in (arrivals[0] if arrivals else None, ready[0][0] if ready else None) if x is not None]
            if upcoming:
                t = max(t, min(upcoming))
                continue
            break
        decode = 0
        decode_ctx = 0.0
        pre_tokens = 0
        pre_attn = 0.0
        pre_kv = 0.0
        sampled = 0
        for r, k in scheduled:
            if r.computed >= r.prompt:
                decode += 1
                decode_ctx += r.computed + r.generated - r.base
                sampled += 1
            else:
                pre_tokens += k
                pre_attn += k * (r.computed + k / 2)
                pre_kv += r.computed + k
                if r.computed + k >= r.prompt:
                    sampled += 1
        dt = cost.step_seconds(decode, decode_ctx, pre_tokens, pre_attn, pre_kv, sampled)
        waiting_time += len(waiting) * dt
        step_start = t
        t += dt
        res.steps += 1
        batch_sum += len(scheduled)
        done: list[_Req] = []
        # the API server streams this step's tokens once it has detokenized them (its process, not the engine's)
        emitted = sum(1 for r, k in scheduled if r.computed >= r.prompt or r.computed + k >= r.prompt)
        fe_free = max(fe_free, t) + c.frontend_output_token_s * emitted
        deliver = fe_free
        for r, k in scheduled:
            if r.computed < r.prompt:
                r.computed += k
                if r.computed < r.prompt:
                    continue
                # the prompt's last chunk samples a token
            r.generated += 1
            if r.first is None:
                r.first = deliver
            else:
                res.itl_s.append(deliver - r.last)
            r.last = deliver
            if r.generated >= r.out:
                done.append(r)
        for r in done:
            running.remove(r)
            used_blocks -= r.blocks
            finished += 1
            first = r.first if r.first is not None else deliver
            res.ttft_s.append(first - r.arrival + http)
            res.e2e_s.append(deliver - r.arrival + http)
            if r.out > 1:
                res.tpot_s.append((deliver - first) / (r.out - 1))
            res.output_tokens += r.out
            if to_send > 0:
                heapq.heappush(arrivals, deliver)
                to_send -= 1
    res.duration_s = max(t, fe_free) + http
    res.mean_batch = batch_sum / res.steps if res.steps else 0.0
    res.mean_waiting = waiting_time / t if t > 0 else 0.0
    return res


SAMPLES = 7     # arrival draws behind each metric of a load that has any randomness in it


def typical(engine: Engine, load: Load, samples: int = SAMPLES) -> dict[str, float]:
    """Each metric as one run of this load typically shows it: the median over `samples` draws of the arrival times
    (and of the lengths, where they vary). A closed loop of fixed lengths has nothing to draw, so one run is exact.
    Near a replica's capacity one draw is not enough: at 0.9 of it, 800 Poisson requests give a TTFT p95 anywhere
    between 0.6x and 2x its median over draws (seeds 0-11 of the held-out Gemma 2B point), and a single measured
    `vllm bench serve` run is one such draw too."""
    varied = load.request_rate is not None or load.input_p95 not in (None, load.input_tokens) \
        or load.output_p95 not in (None, load.output_tokens)
    draws = [_metrics(simulate(engine, replace(load, seed=load.seed + i))) for i in range(samples if varied else 1)]
    return {key: statistics.median(d[key] for d in draws) for key in draws[0]}


def _metrics(o: Outcome) -> dict[str, float]:
    ms = 1000.0
    return {"ttft_mean_ms": (sum(o.ttft_s) / len(o.ttft_s) if o.ttft_s else 0.0) * ms,
            "ttft_p50_ms": percentile(o.ttft_s, 50) * ms, "ttft_p95_ms": percentile(o.ttft_s, 95) * ms,
            "ttft_p99_ms": percentile(o.ttft_s, 99) * ms, "itl_p50_ms": percentile(o.itl_s, 50) * ms,
            "itl_p95_ms": percentile(o.itl_s, 95) * ms, "tpot_p50_ms": percentile(o.tpot_s, 50) * ms,
            "e2e_p50_ms": percentile(o.e2e_s, 50) * ms, "output_tokens_per_s": o.output_tokens_per_s,
            "requests_per_s": o.requests_per_s, "mean_batch": o.mean_batch, "mean_waiting": o.mean_waiting,
            "preemptions": float(o.preemptions)}


def summary(m: dict[str, float]) -> dict[str, Any]:
    """The JSON of `vllm-fleet predict` from typical()'s metrics: milliseconds, as `vllm bench serve` prints them."""
    return {
        "ttft_ms": {f"p{q}": round(m[f"ttft_p{q}_ms"], 2) for q in (50, 95, 99)},
        "itl_ms": {f"p{q}": round(m[f"itl_p{q}_ms"], 3) for q in (50, 95)},
        "tpot_ms": {"p50": round(m["tpot_p50_ms"], 3)},
        "e2e_ms": {"p50": round(m["e2e_p50_ms"], 1)},
        "output_tokens_per_s": round(m["output_tokens_per_s"], 1),
        "requests_per_s": round(m["requests_per_s"], 3),
        "mean_batch": round(m["mean_batch"], 1),
        "preemptions": round(m["preemptions"]),
    }
