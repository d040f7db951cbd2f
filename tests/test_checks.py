"""The forked checker (policies and schema validation beside the program) answers exactly what the same
checks give in-process, and a failure on either side ends the plan cleanly."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

import fleet.plan
from fleet import checks
from fleet.engine.mocks import Captured
from fleet.plan import make_plan
from tests.conftest import ROOT


def outcome(plan: fleet.plan.Plan) -> tuple[Any, ...]:
    return ([f.as_dict() for f in plan.findings], [(urn, str(p)) for urn, p in plan.schema_problems], plan.unknown_fields)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_forked_and_serial_checks_agree(stack: str, monkeypatch: pytest.MonkeyPatch) -> None:
    forked = make_plan(stack, ROOT)
    assert forked.checker_max_rss_mib is not None  # it did run in a checker process
    monkeypatch.setenv(checks.SERIAL_ENV, "1")
    serial = make_plan(stack, ROOT)
    assert serial.checker_max_rss_mib is None
    assert outcome(forked) == outcome(serial)
    assert forked.findings and forked.unknown_fields  # not vacuous: findings and preview unknowns exist


def test_schema_problems_come_back_from_the_checker() -> None:
    plan = make_plan("dev", ROOT)
    assert not plan.schema_problems
    bad = Captured(urn="urn:pulumi:dev::vllm-fleet::kubernetes:v1:ConfigMap::cm", type="kubernetes:core/v1:ConfigMap",
                   name="cm", custom=True, parent=None,
                   inputs={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "dataa": {}})
    worker = checks.ForkedChecks(plan.spec, policies=True)
    worker.add(bad)
    result = worker.finish()
    assert [(urn, p.path) for urn, p in result.schema_problems] == [(bad.urn, "")]
    assert "'dataa' was unexpected" in result.schema_problems[0][1].message


def _no_children() -> bool:
    try:
        os.waitpid(-1, os.WNOHANG)  # (0, 0) for a running child, or reaps a zombie
    except ChildProcessError:
        return True
    return False


def test_a_failing_program_ends_the_checker(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(spec: Any, preview: bool = True, on_capture: Any = None) -> list[Captured]:
        raise RuntimeError("program failed")

    monkeypatch.setattr(fleet.plan, "capture", broken)
    with pytest.raises(RuntimeError, match="program failed"):
        make_plan("dev", ROOT)
    assert _no_children()  # the checker was told and reaped


def test_a_failing_checker_fails_the_plan_with_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: Any, c: Captured) -> None:
        raise ValueError(f"cannot check {c.name}")

    monkeypatch.setattr(checks.SerialChecks, "add", broken)  # inherited by the forked checker
    with pytest.raises(RuntimeError, match=r"checker process failed:\n(.|\n)*ValueError: cannot check"):
        make_plan("dev", ROOT)
    assert _no_children()


def test_the_checker_runs_beside_the_programs_core() -> None:
    from fleet.engine.mocks import run_core
    from fleet.spec.loader import load

    allowed = os.sched_getaffinity(0)
    expected = allowed - {run_core(allowed)} if len(allowed) > 1 else allowed
    worker = checks.ForkedChecks(load("dev", ROOT), policies=True)
    try:
        deadline = time.monotonic() + 5
        while (cores := os.sched_getaffinity(worker._pid)) != expected and time.monotonic() < deadline:
            time.sleep(0.01)  # the checker sets its cores first thing after the fork
    finally:
        worker.finish()
    assert cores == expected


def test_a_plan_leaves_no_threads_behind_for_the_next_fork() -> None:
    import threading

    before = set(threading.enumerate())
    make_plan("dev", ROOT)
    make_plan("dev", ROOT)  # plan --base plans twice in one process: its second checker forks after the first run
    assert set(threading.enumerate()) <= before
