"""Policies and schema validation of the captured resources, fed one resource at a time as it is registered.

The engine runs a policy pack as its own analyzer process: it sends each resource as it is registered
(Analyze) and the whole stack at the end (AnalyzeStack). The plan does the same. On POSIX, before the program
starts, it forks a checker process and streams every captured custom resource to it over a pipe; the checker
runs the pack and validates each Kubernetes object while the program goes on registering, and answers with
the findings, schema problems and preview-time unknown fields once the stack is complete. On a 2-core machine
that takes policies and schema validation off the program's critical path (they used to follow it, ~25 % of
a 100-model plan).

`SerialChecks` is the same work in-process; it runs where fork is unavailable, when
VLLM_FLEET_SERIAL_CHECKS=1, and in the checker process itself. Both give identical results (tested).
"""

from __future__ import annotations

import contextlib
import gc
import os
import pickle
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from fleet.engine.k8s_schema import SchemaProblem
from fleet.engine.k8s_schema import validate as validate_manifest
from fleet.engine.mocks import UNKNOWN, Captured, run_core

if TYPE_CHECKING:
    from fleet.plan import Finding
    from fleet.spec.loader import FleetSpec

SERIAL_ENV = "VLLM_FLEET_SERIAL_CHECKS"


@dataclass
class CheckResult:
    findings: list[Finding]
    schema_problems: list[tuple[str, SchemaProblem]]
    unknown_fields: dict[str, list[str]]
    seconds: dict[str, float]                  # time spent on "policies" and on "schema"
    checker_max_rss_mib: float | None = None   # the checker process's peak resident memory, when forked


def strip_unknowns(value: Any, path: str, found: list[str]) -> Any:
    """Drop values unknown at preview time (recording where) so the rest still validates."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if v == UNKNOWN:
                found.append(f"{path}.{k}" if path else k)
                continue
            out[k] = strip_unknowns(v, f"{path}.{k}" if path else k, found)
        return out
    if isinstance(value, list):
        return [strip_unknowns(v, f"{path}[{i}]", found) for i, v in enumerate(value) if v != UNKNOWN]
    return value


class SerialChecks:
    """Policies (fleet.policy_harness.Analysis) and strict schema validation, resource by resource."""

    def __init__(self, spec: FleetSpec, policies: bool) -> None:
        from fleet.policy_harness import Analysis, policy_config, policy_levels

        self.version = spec.config.kubernetes_version
        self.analysis = Analysis(policy_levels(spec), policy_config(spec)) if policies else None
        self.problems: dict[str, list[SchemaProblem]] = {}
        self.unknown: dict[str, list[str]] = {}
        self.seconds = {"policies": 0.0, "schema": 0.0}

    def add(self, c: Captured) -> None:
        if not c.analyzed:  # components carry no properties; providers are not judged
            return
        t0 = time.perf_counter()
        if self.analysis is not None:
            self.analysis.resource(c)
        t1 = time.perf_counter()
        if c.is_kubernetes:
            unknown: list[str] = []
            manifest = strip_unknowns(c.inputs, "", unknown)
            if unknown:
                self.unknown[c.urn] = unknown
            problems = validate_manifest(manifest, self.version, frozenset(unknown))
            if problems:
                self.problems[c.urn] = problems
        self.seconds["policies"] += t1 - t0
        self.seconds["schema"] += time.perf_counter() - t1

    def finish(self) -> CheckResult:
        t0 = time.perf_counter()
        findings = self.analysis.finish() if self.analysis is not None else []
        self.seconds["policies"] += time.perf_counter() - t0
        return CheckResult(findings=findings,
                           schema_problems=[(urn, p) for urn in sorted(self.problems) for p in self.problems[urn]],
                           unknown_fields={urn: self.unknown[urn] for urn in sorted(self.unknown)},
                           seconds=dict(self.seconds))

    def abort(self) -> None:
        pass


END = (0).to_bytes(4, "little")


def checker_cores() -> None:
    """Keep the checker off the core the program's run keeps to (fleet.engine.mocks.one_core)."""
    if hasattr(os, "sched_getaffinity"):
        allowed = os.sched_getaffinity(0)
        others = allowed - {run_core(allowed)}
        if others:
            os.sched_setaffinity(0, others)


@dataclass
class ForkedChecks:
    """SerialChecks in a forked checker process, fed over a pipe. `add` is called from the SDK's executor
    threads, so writes are serialised; the pipe's buffer lets the program run ahead of the checker."""

    spec: FleetSpec
    policies: bool
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        feed_r, feed_w = os.pipe()
        answer_r, answer_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the checker
            checker_cores()
            os.close(feed_w)
            os.close(answer_r)
            _checker(self.spec, self.policies, os.fdopen(feed_r, "rb"), os.fdopen(answer_w, "wb"))
        os.close(feed_r)
        os.close(answer_w)
        self._pid = pid
        self._gone = False
        self._feed: IO[bytes] = os.fdopen(feed_w, "wb", buffering=1 << 16)
        self._answer: IO[bytes] = os.fdopen(answer_r, "rb")

    def add(self, c: Captured) -> None:
        if not c.analyzed:  # components carry no properties; providers are not judged
            return
        data = pickle.dumps(c, pickle.HIGHEST_PROTOCOL)
        with self._lock:
            if self._gone:
                return
            try:
                self._feed.write(len(data).to_bytes(4, "little"))
                self._feed.write(data)
                self._feed.flush()  # the checker keeps up with the program instead of getting the last 64 KiB at the end
            except BrokenPipeError:  # the checker failed; finish() reports why
                self._gone = True

    def finish(self) -> CheckResult:
        with self._lock, contextlib.suppress(BrokenPipeError):
            if not self._gone:
                self._feed.write(END)
            self._feed.close()
        answer = self._answer.read()
        self._answer.close()
        _, status, usage = os.wait4(self._pid, 0)
        if not answer:
            raise RuntimeError(f"the plan's checker process ended without an answer (wait status {status})")
        kind, payload = pickle.loads(answer)
        if kind == "error":
            raise RuntimeError(f"the plan's checker process failed:\n{payload}")
        result: CheckResult = payload
        result.checker_max_rss_mib = usage.ru_maxrss / 1024
        return result

    def abort(self) -> None:
        """The program failed: close the feed (the checker sees EOF and exits) and reap the process."""
        for f in (self._feed, self._answer):
            with contextlib.suppress(OSError):
                f.close()
        os.waitpid(self._pid, 0)


def _checker(spec: FleetSpec, policies: bool, feed: IO[bytes], answer: IO[bytes]) -> None:
    """The checker process: read resources until END, answer once, exit without running the parent's
    atexit handlers or flushing its inherited buffers."""
    from fleet.policy_harness import ENGINE_ENV

    # What fleet.policy_harness.checking() does for a while, for the rest of this short-lived process: no
    # engine variables, no cyclic collector (it would only rescan what the checker holds until it exits).
    for name in ENGINE_ENV:
        os.environ.pop(name, None)
    gc.disable()
    code = 0
    try:
        checks = SerialChecks(spec, policies)
        while True:
            header = feed.read(4)
            if len(header) < 4:  # the parent gave up (its program failed)
                os._exit(0)
            if header == END:
                break
            checks.add(pickle.loads(feed.read(int.from_bytes(header, "little"))))
        answer.write(pickle.dumps(("ok", checks.finish()), pickle.HIGHEST_PROTOCOL))
    except BaseException:
        code = 1
        answer.write(pickle.dumps(("error", traceback.format_exc())))
    answer.close()
    os._exit(code)


def start(spec: FleetSpec, policies: bool) -> SerialChecks | ForkedChecks:
    """A checker for one plan: forked where the platform can, serial otherwise or when asked."""
    if hasattr(os, "fork") and os.environ.get(SERIAL_ENV) != "1":
        return ForkedChecks(spec, policies)
    return SerialChecks(spec, policies)
