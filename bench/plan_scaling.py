"""Plan generated fleets of 10, 100 and 1,000 model services; compare with the floor.

Each measurement runs in its own process (repeated large runs in one process slow down and keep memory),
so peak RSS is that of one plan (plus its forked checker's, fleet/checks.py). The floor registers the very resources the plan captured, directly as
custom resources under the same mocks, with no components, no policies and no schema validation.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SIZES = (10, 100, 1000)
# Plan and floor alternate this many times per size and the fastest of each counts (as timeit does): a shared
# 2-core machine varies by ±15 % between runs, more than the differences the ratios are meant to show. Every
# size gets the same number, so scale(1000/100) compares like with like.
REPEATS = {10: 3, 100: 3, 1000: 3}


def measure_plan(workdir: Path) -> dict:
    from fleet.plan import make_plan
    from fleet.report import document

    t0 = time.perf_counter()
    plan = make_plan("bench", workdir)
    t1 = time.perf_counter()
    doc = document(plan)
    json.dumps(doc)
    t2 = time.perf_counter()
    assert plan.exit_code == 0, doc["summary"]
    (workdir / "captured.json").write_text(json.dumps([[c.type, c.name, c.inputs] for c in plan.resources if c.custom]))
    out = {k: round(v, 3) for k, v in plan.timings.items()}
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # The checker process's peak is added whole (its pages shared with the plan process count twice).
    out.update(report=round(t2 - t1, 3), total=round(t2 - t0, 3), resources=len(plan.resources),
               peak_mib=round(own + (plan.checker_max_rss_mib or 0), 1))
    return out


def measure_floor(workdir: Path) -> dict:
    import pulumi

    from fleet.engine.mocks import run

    rows = json.loads((workdir / "captured.json").read_text())

    def program() -> None:
        for typ, name, inputs in rows:
            pulumi.CustomResource(typ, name, dict(inputs))

    t0 = time.perf_counter()
    captured = run(program, project="vllm-fleet", stack="bench")
    t1 = time.perf_counter()
    assert len(captured) == len(rows)
    return {"floor": round(t1 - t0, 3), "resources": len(captured),
            "peak_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def child(kind: str, models: int, workdir: str) -> None:
    path = Path(workdir)
    if kind == "plan":
        from bench.fleetgen import generate

        generate(path, models)
        print(json.dumps(measure_plan(path)))
    else:
        print(json.dumps(measure_floor(path)))


def run_child(kind: str, models: int, workdir: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", kind, str(models), str(workdir)],
                         check=True, capture_output=True, text=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    from rich.console import Console
    from rich.table import Table

    results = {}
    with tempfile.TemporaryDirectory(prefix="plan-scaling-") as tmp:
        for n in SIZES:
            work = Path(tmp) / f"fleet{n}"
            plans, floors = [], []
            for _ in range(REPEATS[n]):
                plans.append(run_child("plan", n, work))
                floors.append(run_child("floor", n, work))
            results[n] = (min(plans, key=lambda p: p["total"]), min(floors, key=lambda f: f["floor"]))
    table = Table(title="plan_scaling (seconds; every run in a fresh process; plan and floor alternate, fastest of "
                        + "/".join(str(REPEATS[n]) for n in SIZES) + " runs)")
    for col in ("models", "resources", "load", "imports", "program", "policies*", "schema*", "checks wait", "report",
                "plan total", "floor", "plan/floor", "peak MiB"):
        table.add_column(col, justify="right")
    for n, (p, f) in results.items():
        table.add_row(str(n), str(p["resources"]), f"{p['load']:.2f}", f"{p['imports']:.2f}", f"{p['program']:.2f}", f"{p['policies']:.2f}",
                      f"{p['schema']:.2f}", f"{p['checks']:.2f}", f"{p['report']:.2f}", f"{p['total']:.2f}", f"{f['floor']:.2f}",
                      f"{p['total'] / f['floor']:.2f}", f"{p['peak_mib']:.0f}")
    Console(width=180).print(table)
    print("* time spent in the checker process, which runs beside the program; the plan waits only for "
          "'checks wait' after it. Peak MiB = plan process + checker process.")
    r1 = results[100][0]["total"] / results[100][1]["floor"]
    r2 = results[1000][0]["total"] / results[100][0]["total"]
    print(f"goals: plan/floor(100) <= 1.5, scale(1000/100) <= 11, plan(100) <= 5 s "
          f"(now {results[100][0]['total']:.2f} s), peak(1000) <= 1024 MiB (now {results[1000][0]['peak_mib']:.0f} MiB)")
    print(f"plan/floor(100)={r1:.2f} scale(1000/100)={r2:.2f}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        main()
