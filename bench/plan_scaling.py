"""Plan generated fleets of 10, 100 and 1,000 model services and compare each plan with its floor.

Each size runs in its own process (repeated large runs in one process slow down and keep memory). In that
process the SDK modules the program uses are imported first (timed as "imports"), then the plan runs, then
the floor: the very resources the plan captured, registered again through the same typed classes (Kubernetes
objects through components.kubernetes.register, AWS resources through their pulumi_aws class) under the same
mocks, without components, schema validation or policies. plan/floor compares the two warm.
"""

from __future__ import annotations

import importlib
import json
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SIZES = (10, 100, 1000)
# Each size is measured this many times and the fastest run counts (as timeit does): a shared 2-core machine
# varies by ±15 % between runs, more than the differences the ratios are meant to show.
REPEATS = 3


def typed_class(type_token: str) -> Any:
    """`aws:eks/nodeGroup:NodeGroup` → pulumi_aws.eks.NodeGroup."""
    package, module, name = type_token.split(":")
    return getattr(importlib.import_module(f"pulumi_{package}.{module.split('/')[0]}"), name)


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def floor_program(rows: list[Any]) -> Any:
    import pulumi

    from components.kubernetes import register

    def program() -> None:
        for typ, name, inputs in rows:
            if typ.startswith("kubernetes:"):
                register(inputs, pulumi.ResourceOptions(), name=name)
            elif typ.startswith("aws:"):
                typed_class(typ)(name, **{snake(k): v for k, v in inputs.items()})
            else:  # the Kubernetes provider
                pulumi.CustomResource(typ, name, dict(inputs))
    return program


def measure(models: int, workdir: Path) -> dict[str, Any]:
    from bench.fleetgen import generate

    generate(workdir, models)
    t0 = time.perf_counter()
    import components.program  # noqa: F401  (the SDK modules every plan and the floor use)
    from fleet.offline.engine import run
    from fleet.offline.plan import make_plan

    t1 = time.perf_counter()
    plan = make_plan("bench", workdir)
    t2 = time.perf_counter()
    json.dumps(plan.document().to_json())
    t3 = time.perf_counter()
    assert plan.exit_code == 0, plan.mandatory[:3]
    rows = [(c.type, c.name, c.inputs) for c in plan.resources if c.custom]
    t4 = time.perf_counter()
    floor = run(floor_program(rows), project="vllm-fleet", stack="bench")
    t5 = time.perf_counter()
    assert len(floor) == len(rows)
    return {"models": models, "resources": len(plan.resources), "imports": t1 - t0, **plan.timings, "report": t3 - t2,
            "plan": t3 - t1, "floor": t5 - t4, "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_child(models: int, workdir: Path) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--child", str(models), str(workdir)], check=True, capture_output=True,
                         text=True, cwd=ROOT)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    from rich.console import Console
    from rich.table import Table

    results = {}
    with tempfile.TemporaryDirectory(prefix="plan-scaling-") as tmp:
        for n in SIZES:
            runs = [run_child(n, Path(tmp) / f"fleet{n}") for _ in range(REPEATS)]
            results[n] = min(runs, key=lambda r: r["plan"])
    table = Table(title=f"plan_scaling (seconds; each run a fresh process, fastest of {REPEATS})")
    for col in ("models", "resources", "imports", "load", "program", "schema", "policies", "report", "plan", "floor",
                "plan/floor", "peak MiB"):
        table.add_column(col, justify="right")
    for n, r in results.items():
        table.add_row(str(n), f"{r['resources']:,}", *(f"{r[k]:.2f}" for k in ("imports", "load", "program", "schema", "policies",
                                                                                  "report", "plan", "floor")),
                      f"{r['plan'] / r['floor']:.2f}", f"{r['peak_mib']:.0f}")
    Console(width=160).print(table)
    print("plan = load + program + schema + policies + report, after the imports; floor = the same resources through the same "
          "typed classes under the same mocks, in the same process. Peak MiB: the process after both.")
    r1 = results[100]["plan"] / results[100]["floor"]
    r2 = results[1000]["plan"] / results[100]["plan"]
    print(f"goals: plan/floor(100) <= 2.5, scale(1000/100) <= 11, peak(1000) <= 1536 MiB (now {results[1000]['peak_mib']:.0f} MiB)")
    print(f"plan/floor(100)={r1:.2f} scale(1000/100)={r2:.2f}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(measure(int(sys.argv[2]), Path(sys.argv[3]))))
    else:
        main()
