"""Errors of fleet.sizing against the recorded vLLM startup logs (fleet/catalog/calibration.yaml)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    from rich.console import Console
    from rich.table import Table

    from fleet.calibration import checks, summary

    items = checks()
    table = Table(title="sizing_accuracy: prediction vs recorded vLLM startup logs")
    for col in ("record", "engine", "family", "quantity", "predicted", "observed", "error %"):
        table.add_column(col, justify="right" if col in ("predicted", "observed", "error %") else "left")
    for c in items:
        fmt = "{:,.2f}" if c.quantity == "weights" else "{:,.0f}"
        table.add_row(c.record, c.engine, c.family, c.quantity, fmt.format(c.predicted), fmt.format(c.observed),
                      f"{c.error_pct:.1f}")
    Console(width=170).print(table)
    s = summary(items)
    v1_dense = [c.error_pct for c in items if c.quantity == "kv_tokens" and c.engine == "v1" and c.family == "dense"]
    v1_median = f"{sorted(v1_dense)[len(v1_dense) // 2]:.1f}%" if v1_dense else "n/a (no V1 dense record with GPU settings yet)"
    print(f"records={s['records']} (goal >= 20)")
    print("goals: KV tokens median <= 10% on V1 dense, weights median <= 5%, every verdict right")
    w, k = s["weights"], s["kv_tokens"]
    print(f"weights median={w['median_pct']:.1f}% worst={w['worst_pct']:.1f}% (n={w['n']}); "
          f"kv_tokens median={k['median_pct']:.1f}% worst={k['worst_pct']:.1f}% (n={k['n']}); "
          f"kv_tokens V1 dense median={v1_median}; verdicts {s['verdicts']['right']}/{s['verdicts']['n']} right")


if __name__ == "__main__":
    main()
