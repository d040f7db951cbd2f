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

from fleet.engine.k8s_schema import SchemaProblem
from fleet.engine.k8s_schema import validate as validate_manifest
from fleet.engine.mocks import UNKNOWN, Captured, run
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


def capture(spec: FleetSpec, preview: bool = True) -> list[Captured]:
    config, secret_keys = secret_config(spec)
    return run(program_for(spec), project=PROJECT, stack=spec.stack, preview=preview, config=config,
               secret_keys=secret_keys, region=spec.config.region)


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
    resources = capture(spec, preview=preview)
    t2 = time.perf_counter()
    plan = Plan(spec=spec, resources=resources, teams_by_urn=team_attribution(spec, resources))
    if policies:
        from fleet.policy_harness import run_policies

        plan.findings = run_policies(plan)
    t3 = time.perf_counter()
    version = spec.config.kubernetes_version
    for c in plan.kubernetes_objects():
        unknown: list[str] = []
        manifest = strip_unknowns(c.inputs, "", unknown)
        if unknown:
            plan.unknown_fields[c.urn] = unknown
        for problem in validate_manifest(manifest, version, frozenset(unknown)):
            plan.schema_problems.append((c.urn, problem))
    t4 = time.perf_counter()
    plan.timings = {"load": t1 - t0, "imports": t_import - t1, "program": t2 - t_import, "policies": t3 - t2,
                    "schema": t4 - t3}
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
