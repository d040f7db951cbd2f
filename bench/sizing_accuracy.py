"""Errors of fleet.capacity.memory against the recorded vLLM startup logs (fleet/catalog/calibration.yaml)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    from rich.console import Console
    from rich.table import Table

    from fleet.capacity.memory_calibration import checks, leave_one_source_out, measured_summary, summary

    items = checks()
    table = Table(title="sizing_accuracy: prediction vs recorded vLLM startup logs")
    for col in ("record", "engine", "family", "quantity", "predicted", "observed", "error %"):
        table.add_column(col, justify="right" if col in ("predicted", "observed", "error %") else "left")
    for c in items:
        fmt = "{:,.2f}" if c.quantity in ("weights", "kv_cache_gib", "overhead_gib", "cuda_graph_gib", "encoder_pass_gib", "serving_room_gib") else "{:,.0f}"
        table.add_row(c.record, c.engine, c.family, c.quantity, fmt.format(c.predicted), fmt.format(c.observed),
                      f"{c.error_pct:.1f}")
    Console(width=170).print(table)
    s = summary(items)
    v1 = s["kv_v1_dense"]
    print(f"records={s['records']} (goal >= 20)")
    print("goals: KV tokens median <= 10% on V1 dense, weights median <= 5%, every verdict right")
    print("(KV cache GiB stands in for tokens where a log printed only memory: tokens = GiB / bytes per token, "
          "and kv_tokens_from_memory checks those bytes)")
    for label, m in (("H200 runs, vLLM 0.26 (all)", measured_summary(items)),
                     ("H200 runs, vLLM 0.26 (held out: no constant fitted on them)", measured_summary(items, held_out_only=True))):
        def f(v: float | None, unit: str) -> str:
            return "n/a" if v is None else f"{v:.2f}{unit}"
        print(f"{label}: n={m['n']}; non-KV overhead median |error| {f(m['overhead_gib'], ' GiB')} (goal <= 0.3; a fixed "
              f"1.5 GiB guess: {f(m['overhead_fixed_1_5_gib'], ' GiB')}); CUDA graphs {f(m['cuda_graph_gib'], ' GiB')}; "
              f"KV tokens {f(m['kv_tokens_pct'], '%')} (goal <= 1%); weights {f(m['weights_pct'], '%')}; "
              f"start-up {f(m['startup_pct'], '%')} (goal <= 30%); a step of images through the encoder "
              f"{f(m['encoder_pass_gib'], ' GiB')}, room once started {f(m['serving_room_gib'], ' GiB')}; "
              f"verdicts {m['verdicts']} right")
    loso = leave_one_source_out()
    ls, lm = summary(loso), measured_summary(loso)
    print(f"leave-one-source-out (each source predicted with constants refitted without it): KV tokens median "
          f"{ls['kv_tokens']['median_pct']:.1f}% (V1 dense {ls['kv_v1_dense']['median_pct']:.1f}%), weights "
          f"{ls['weights']['median_pct']:.1f}%, verdicts {ls['verdicts']['right']}/{ls['verdicts']['n']} right; H200 non-KV "
          f"overhead {lm['overhead_gib']:.2f} GiB, CUDA graphs {lm['cuda_graph_gib']:.2f} GiB, KV tokens {lm['kv_tokens_pct']:.2f}%")
    w, k = s["weights"], s["kv_tokens"]
    print(f"weights median={w['median_pct']:.1f}% worst={w['worst_pct']:.1f}% (n={w['n']}); "
          f"kv all median={k['median_pct']:.1f}% worst={k['worst_pct']:.1f}% (n={k['n']}); "
          f"kv V1 dense median={v1['median_pct']:.1f}% worst={v1['worst_pct']:.1f}% (n={v1['n']}); "
          f"verdicts {s['verdicts']['right']}/{s['verdicts']['n']} right")


if __name__ == "__main__":
    main()
