"""`vllm-fleet recommend` with a load and latency targets: options ranked by $/hour that meet them (SLO mode)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from fleet.argtypes import positive_float, positive_int
from fleet.capacity.lengths import LengthError
from fleet.capacity.memory import Arch
from fleet.capacity.slo import SloOption, Targets, recommend_slo

TARGETS = ("ttft_p50_ms", "ttft_p95_ms", "itl_p50_ms", "itl_p95_ms", "tpot_p50_ms")


def add_slo_arguments(rec: argparse.ArgumentParser) -> None:
    g = rec.add_argument_group("SLO mode", "a peak load and latency targets instead of --concurrency: the replicas each shape "
                                           "needs to meet them at peak, from the calibrated performance model")
    g.add_argument("--request-rate", type=positive_float, help="peak requests per second, all replicas together")
    g.add_argument("--input-tokens", type=positive_int, help="prompt tokens per request (mean)")
    g.add_argument("--output-tokens", type=positive_int, help="output tokens per request (mean)")
    g.add_argument("--input-tokens-p95", type=positive_int, default=None,
                   help="95th percentile of the prompt tokens: lengths vary (log-normal with the mean); default: every prompt the mean")
    g.add_argument("--output-tokens-p95", type=positive_int, default=None, help="95th percentile of the output tokens, likewise")
    for name in TARGETS:
        g.add_argument(f"--{name.replace('_', '-')}", type=positive_float, default=None,
                       help=f"target: {name.removesuffix('_ms').replace('_', ' ').upper()} in milliseconds")
    g.add_argument("--plot", metavar="FILE.png", default=None, help="draw latency against request rate per candidate, the SLO line drawn")


def run_slo(args: argparse.Namespace, arch: Arch) -> int:
    missing = [f"--{n}" for n in ("input-tokens", "output-tokens") if getattr(args, n.replace("-", "_")) is None]
    if missing:
        print(f"recommend: --request-rate needs {' and '.join(missing)}", file=sys.stderr)
        return 2
    if args.concurrency is not None:
        print("recommend: --concurrency and --request-rate are two different modes — give one", file=sys.stderr)
        return 2
    limits = {n: getattr(args, n) for n in TARGETS if getattr(args, n) is not None}
    if not limits:
        print("recommend: --request-rate needs at least one target (--ttft-p95-ms, --itl-p50-ms, ...)", file=sys.stderr)
        return 2
    if "ttft_p50_ms" in limits and "ttft_p95_ms" in limits and limits["ttft_p95_ms"] < limits["ttft_p50_ms"]:
        print("recommend: --ttft-p95-ms below --ttft-p50-ms can never hold — a 95th percentile is at least the median", file=sys.stderr)
        return 2
    if "itl_p50_ms" in limits and "itl_p95_ms" in limits and limits["itl_p95_ms"] < limits["itl_p50_ms"]:
        print("recommend: --itl-p95-ms below --itl-p50-ms can never hold", file=sys.stderr)
        return 2
    try:
        targets = Targets(args.request_rate, args.input_tokens, args.output_tokens, **limits,
                          input_tokens_p95=args.input_tokens_p95, output_tokens_p95=args.output_tokens_p95)
    except LengthError as exc:
        print(f"recommend: --{exc.field.replace('_', '-')}: {exc.message}", file=sys.stderr)
        return 2
    longest = sum(targets.longest())
    what = "--input-tokens + --output-tokens" if targets.longest() == (args.input_tokens, args.output_tokens) else \
        "the 95th-percentile request (--input-tokens-p95 + --output-tokens-p95, or the mean where none is given)"
    max_len = args.max_model_len
    if max_len is not None and longest > max_len:
        print(f"recommend: {what} ({longest}) exceed --max-model-len {max_len}: vLLM rejects such requests", file=sys.stderr)
        return 2
    if arch.max_context and longest > arch.max_context:
        print(f"recommend: {what} ({longest}) exceed {arch.id}'s context of {arch.max_context:,}", file=sys.stderr)
        return 2
    options = recommend_slo(arch, targets, args.region, max_model_len=max_len, quantization=args.quantization,
                            vllm_version=args.vllm_version)
    feasible = [o for o in options if o.meets_slo]
    if args.plot:
        from fleet.capacity.plot import plot_candidates

        try:
            plot_candidates(arch, targets, _distinct(feasible or [o for o in options if o.fits and o.replicas])[:4], args.plot,
                            max_model_len=max_len, quantization=args.quantization)
        except OSError as exc:
            print(f"recommend: --plot {args.plot}: {exc.strerror or exc}", file=sys.stderr)
            return 2
    if args.json:
        lengths = {k: v for k, v in (("input_tokens_p95", args.input_tokens_p95), ("output_tokens_p95", args.output_tokens_p95)) if v}
        out: dict[str, Any] = {"targets": {"request_rate": args.request_rate, "input_tokens": args.input_tokens,
                                           "output_tokens": args.output_tokens, **lengths, **limits},
                               "options": [o.as_dict() for o in options]}
        if not feasible:
            closest = _closest(options)
            out["closest"] = closest.as_dict() if closest else None
        print(json.dumps(out, indent=2))
    else:
        _table(args, targets, options, limits)
    if not feasible:
        c = _closest(options)
        print(f"recommend: no shape meets the targets at {args.request_rate} req/s"
              + (f"; closest: {c.instance_type} TP {c.tp} ({c.reason})" if c else ""), file=sys.stderr)
        return 1
    return 0


def _distinct(options: list[SloOption]) -> list[SloOption]:
    """The cheapest option of each GPU × TP × replicas (instance sizes of one GPU draw the same curve)."""
    seen: set[tuple[str, int, int | None]] = set()
    out = []
    for o in options:
        if (o.gpu, o.tp, o.replicas) not in seen:
            seen.add((o.gpu, o.tp, o.replicas))
            out.append(o)
    return out


def _closest(options: list[SloOption]) -> SloOption | None:
    fits = [o for o in options if o.fits and o.predicted]
    return max(fits, key=lambda o: o.p_meet) if fits else None


def _table(args: argparse.Namespace, targets: Targets, options: list[SloOption], limits: dict[str, float]) -> None:
    want = ", ".join(f"{k.removesuffix('_ms').replace('_', ' ')} ≤ {v:g} ms" for k, v in limits.items())
    print(f"{args.model}: {args.request_rate} req/s of {targets.lengths_text()}, {want}, {args.region}")
    print(f"{'instance type':<16} {'GPU':<10} {'TP':>2} {'repl':>4} {'nodes':>5} {'TTFT p50/p95 ms':>17} {'ITL p50/p95 ms':>15} "
          f"{'util':>5} {'P(meet)':>7} {'$/hour':>9} {'$/1M out':>8}  note")
    for o in options:
        if not o.fits:
            continue
        p = o.predicted
        cost = f"{o.usd_per_hour:,.2f}" if o.usd_per_hour is not None else "unpriced"
        per_m = f"{o.usd_per_million_output_tokens:,.2f}" if o.usd_per_million_output_tokens is not None else "-"
        ttft = f"{p.get('ttft_p50_ms', 0):,.0f}/{p.get('ttft_p95_ms', 0):,.0f}"
        itl = f"{p.get('itl_p50_ms', 0):,.1f}/{p.get('itl_p95_ms', 0):,.1f}"
        print(f"{o.instance_type:<16} {o.gpu:<10} {o.tp:>2} {o.replicas or '-':>4} {o.nodes or '-':>5} {ttft:>17} {itl:>15} "
              f"{o.utilization:>5.2f} {o.p_meet:>7.2f} {cost:>9} {per_m:>8}  {'meets' if o.meets_slo else 'misses'}: {o.reason}")
    rejected = [o for o in options if not o.fits]
    if rejected:
        print(f"not offered ({len(rejected)}): " + "; ".join(f"{o.instance_type} TP {o.tp}: {o.reason}" for o in rejected[:12])
              + (" ..." if len(rejected) > 12 else ""))
