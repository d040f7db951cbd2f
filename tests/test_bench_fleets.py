"""The benchmarks' generated fleets stay valid: a bench that cannot plan its fleet measures nothing."""

from __future__ import annotations

from pathlib import Path

from bench.fleetgen import generate
from fleet.offline.plan import make_plan


def test_a_generated_fleet_plans_clean(tmp_path: Path) -> None:
    root = generate(tmp_path / "fleet", 12)
    plan = make_plan("bench", root)
    assert plan.exit_code == 0, plan.mandatory[:3]
    workloads = [r for r in plan.resources if r.type.endswith((":Deployment", "LeaderWorkerSet"))
                 and str(r.inputs["metadata"].get("namespace", "")).startswith("team-")]   # not the platform's (Cluster Autoscaler)
    assert len(workloads) == 12
