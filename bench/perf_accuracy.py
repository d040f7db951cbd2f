"""Errors of the performance model against measured vLLM serving runs (fleet/catalog/perf_runs.yaml).

The step constants (fleet/catalog/perf_calibration.yaml) are fitted on the step grids of the runs not held out and
the API server's costs on those runs' `vllm bench serve` points; the held-out runs are never fitted, so their points
are predictions for a model and configuration the fit never saw. Goals, on the held-out points (issue: SLO-aware
capacity planning): median |error| <= 10% for TTFT p50, ITL p50 and output throughput, <= 25% for TTFT p95, the
verdict right on >= 90%.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    from rich.console import Console
    from rich.table import Table

    from fleet.capacity.calibrate import accuracy, runs
    from fleet.capacity.calibration_data import fitted_constants

    t0 = time.monotonic()
    result = accuracy(fitted_constants())
    table = Table(title="perf_accuracy: predicted vs measured (vllm bench serve, random dataset, ignore-eos)")
    for col in ("run", "held out", "load", "TTFT p50 ms", "TTFT p95 ms", "ITL p50 ms", "tok/s"):
        table.add_column(col, justify="left" if col in ("run", "held out", "load") else "right")

    def cell(row: dict, key: str) -> str:
        if key not in row:
            return "-"
        m, p = row[key]
        return f"{m:,.1f} → {p:,.1f} ({(p / m - 1) * 100:+.0f}%)" if m else "-"

    for r in result["rows"]:
        table.add_row(r["run"], "yes" if r["held_out"] else "", r["load"], cell(r, "ttft_p50"), cell(r, "ttft_p95"),
                      cell(r, "itl_p50"), cell(r, "throughput"))
    Console(width=190).print(table)

    def f(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.1f}%"

    m, h = result["median_pct"], result["held_out_median_pct"]
    print(f"runs={len(runs())} points={result['points']} (held out {result['held_out_points']}); "
          f"took {time.monotonic() - t0:.1f} s")
    print(f"fitted runs' points (the API server's costs fitted on them): TTFT p50 {f(m['ttft_p50'])}, TTFT p95 {f(m['ttft_p95'])}, ITL p50 {f(m['itl_p50'])}, "
          f"TPOT p50 {f(m['tpot_p50'])}, throughput {f(m['throughput'])}")
    print(f"held-out runs: TTFT p50 {f(h['ttft_p50'])}, TTFT p95 {f(h['ttft_p95'])}, ITL p50 {f(h['itl_p50'])}, "
          f"throughput {f(h['throughput'])}; their step grids {f(result['held_out_grid_median_pct'])}")
    from fleet.capacity.calibrate import median_error_pct
    from fleet.capacity.memory import model_catalog

    def medians(rows: list[dict]) -> str:
        labels = (("ttft_p50", "TTFT p50"), ("ttft_p95", "TTFT p95"), ("itl_p50", "ITL p50"), ("throughput", "throughput"))
        return ", ".join(f"{label} {f(median_error_pct(rows, key))}" for key, label in labels)

    # where it is worse: the two kinds of load, and the MoE runs (fitted: there is one MoE measured)
    held_rows = [r for r in result["rows"] if r["held_out"]]
    print(f"held out, closed loop (--max-concurrency): {medians([r for r in held_rows if r['load'].startswith('c=')])}")
    print(f"held out, Poisson (--request-rate): {medians([r for r in held_rows if r['load'].startswith('r=')])}")
    # a closed loop of equal prompts splits them over prefill steps: its TTFTs are bimodal and the p50 sits on the
    # split, so the mean TTFT (not a goal) shows whether the clusters or only the split point are off
    c16 = [r for r in result["rows"] if r["load"] == "c=16" and "ttft_mean" in r]
    if c16:
        def both(r: dict) -> str:
            (m50, p50), (mm, pm) = r["ttft_p50"], r["ttft_mean"]
            return f"{r['run']} p50 {(p50 / m50 - 1) * 100:+.0f}% mean {(pm / mm - 1) * 100:+.0f}%"
        print("c=16 TTFT, p50 and mean (where prompts split over two prefill steps a p50 on the split jumps, the mean does not): "
              + "; ".join(both(r) for r in c16))
    moe = {r.name for r in runs() if model_catalog()[r.model].experts}
    if moe:
        print(f"MoE runs ({', '.join(sorted(moe))}, fitted): {medians([r for r in result['rows'] if r['run'] in moe])}")
    print(f"verdicts (TTFT p95 x ITL p50 targets): held out {f(result['held_out_verdicts_right_pct'])} right of "
          f"{result['held_out_verdicts']}; all points {f(result['verdicts_right_pct'])} of {result['verdicts']}")
    goals = {"TTFT p50": (h["ttft_p50"], 10), "ITL p50": (h["itl_p50"], 10), "throughput": (h["throughput"], 10),
             "TTFT p95": (h["ttft_p95"], 25)}
    missed = [k for k, (v, goal) in goals.items() if v is None or v > goal]
    verdict_ok = (result["held_out_verdicts_right_pct"] or 0) >= 90
    if not verdict_ok:
        missed.append("verdicts")
    print("perf_accuracy: goals met on the held-out runs" if not missed else
          f"perf_accuracy: goals missed on the held-out runs: {', '.join(missed)}")
    return 0 if not missed else 1


if __name__ == "__main__":
    sys.exit(main())
