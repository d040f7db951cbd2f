"""The offline plan: the real program under mocks → captured resources → policies → schema validation.

`vllm-fleet plan` is this module plus a report; tests and benchmarks call `make_plan` directly.
"""

from __future__ import annotations

import json
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fleet.checks import ForkedChecks, SerialChecks
from fleet.checks import start as start_checks
from fleet.engine.k8s_schema import SchemaProblem
from fleet.engine.mocks import Captured, run
from fleet.labels import TEAM_LABEL
from fleet.spec.loader import FleetSpec, load

PROJECT = "vllm-fleet"


@dataclass(frozen=True)
class Finding:
    rule_id: str
    level: str            # mandatory | advisory
    urn: str
    message: str
    name: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"rule_id": self.rule_id, "level": self.level, "urn": self.urn, "resource": self.name or self.urn,
                "message": self.message}


@dataclass
class Plan:
    spec: FleetSpec
    resources: list[Captured]
    teams_by_urn: dict[str, str]
    findings: list[Finding] = field(default_factory=list)
    schema_problems: list[tuple[str, SchemaProblem]] = field(default_factory=list)
    unknown_fields: dict[str, list[str]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    peak_memory_mib: float | None = None
    checker_max_rss_mib: float | None = None

    @property
    def mandatory(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "mandatory"]

    @property
    def exit_code(self) -> int:
        return 1 if self.mandatory or self.schema_problems else 0

    def kubernetes_objects(self) -> list[Captured]:
        return [c for c in self.resources if c.is_kubernetes]


def secret_config(spec: FleetSpec) -> tuple[dict[str, str], list[str]]:
    """Mock values for the stack's secret config: the engine would decrypt them; here they are masked."""
    return ({"vllm-fleet:secrets": json.dumps({name: "[secret]" for name in spec.config.secrets})},
            ["vllm-fleet:secrets"])


def program_for(spec: FleetSpec) -> Callable[[], Any]:
    def program() -> None:
        from components import Fleet

        Fleet("fleet", spec)
    return program


def capture(spec: FleetSpec, preview: bool = True, on_capture: Callable[[Captured], None] | None = None) -> list[Captured]:
    config, secret_keys = secret_config(spec)
    return run(program_for(spec), project=PROJECT, stack=spec.stack, preview=preview, config=config,
               secret_keys=secret_keys, region=spec.config.region, on_capture=on_capture)


def team_attribution(spec: FleetSpec, resources: list[Captured]) -> dict[str, str]:
    """URN → team, from the component that (transitively) owns the resource."""
    owners = {f"team-{t.name}": t.name for t in spec.teams}
    owners.update({f"{m.team}-{m.name}": m.team for m in spec.models})
    by_urn = {c.urn: c for c in resources}
    out: dict[str, str] = {}
    team_names = {t.name for t in spec.teams}
    for c in resources:
        labels = ((c.inputs.get("metadata") or {}).get("labels") or {}) if c.is_kubernetes else {}
        if labels.get(TEAM_LABEL) in team_names:  # e.g. a team's cache PV, created by the platform's cache
            out[c.urn] = labels[TEAM_LABEL]
            continue
        node: Captured | None = c
        while node is not None:
            team = owners.get(node.name) if not node.custom else None
            if team:
                out[c.urn] = team
                break
            node = by_urn.get(node.parent) if node.parent else None
    return out


def make_plan(stack: str, root: str | Path = ".", *, preview: bool = True, policies: bool = True,
              measure_memory: bool = False, spec: FleetSpec | None = None) -> Plan:
    """Plan one stack; raises ConfigError for bad config."""
    if measure_memory:
        tracemalloc.start()
    t0 = time.perf_counter()
    spec = spec or load(stack, root)
    t1 = time.perf_counter()
    import components  # noqa: F401  (provider SDK imports: a one-off cost, reported on its own)

    t_import = time.perf_counter()
    # Policies and schema validation run beside the program in a forked checker (fleet.checks), except when
    # memory is traced (tracemalloc sees one process only).
    checks = SerialChecks(spec, policies) if measure_memory else start_checks(spec, policies)
    forked = isinstance(checks, ForkedChecks)
    try:
        resources = capture(spec, preview=preview, on_capture=checks.add if forked else None)
    except BaseException:
        checks.abort()
        raise
    t2 = time.perf_counter()
    if not forked:
        from fleet.policy_harness import checking

        with checking():
            for c in resources:
                checks.add(c)
    result = checks.finish()
    t3 = time.perf_counter()
    plan = Plan(spec=spec, resources=resources, teams_by_urn=team_attribution(spec, resources),
                findings=result.findings, schema_problems=result.schema_problems, unknown_fields=result.unknown_fields,
                checker_max_rss_mib=result.checker_max_rss_mib)
    # policies/schema: time spent in each (in the checker, alongside the program, when forked);
    # checks: what the plan waited for them after the program.
    plan.timings = {"load": t1 - t0, "imports": t_import - t1, "program": t2 - t_import, **result.seconds,
                    "checks": t3 - t2}
    if measure_memory:
        plan.peak_memory_mib = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    return plan


def manifest_filename(c: Captured) -> str:
    md = c.inputs.get("metadata") or {}
    ns = md.get("namespace") or "_cluster"
    name = md.get("name") or c.name
    return f"{ns}/{c.inputs.get('kind', 'Object').lower()}-{name}.yaml"


def write_outputs(plan: Plan, out_dir: Path, document: dict[str, Any]) -> None:
    """One YAML file per Kubernetes object plus plan.json (the JSON report)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    manifests = out_dir / "manifests"
    for c in plan.kubernetes_objects():
        path = manifests / manifest_filename(c)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(c.inputs, sort_keys=False), encoding="utf-8")
    (out_dir / "plan.json").write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")
