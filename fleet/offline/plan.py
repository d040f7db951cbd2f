"""The offline plan, in one process and one pass: the stack's config read as the CLI reads it → the real program
under mocks, fed that config through the engine's channel → captured resources → strict schema validation →
the policy pack → a typed plan document (fleet.offline.plan_document) that the reports serialise."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from components.program import build
from fleet.cost import estimate
from fleet.deploy_time import deploy_time
from fleet.errors import ConfigError
from fleet.labels import TEAM_LABEL
from fleet.offline.engine import UNKNOWN, Captured, run
from fleet.offline.manifest_schema import SchemaProblem, strip_unknowns, validate
from fleet.offline.plan_document import (
    PLAN_SCHEMA_VERSION,
    FindingEntry,
    ModelEntry,
    PlanDocument,
    PoolEntry,
    ResourceEntry,
    SchemaProblemEntry,
    Summary,
    TeamEntry,
    WeakenedEntry,
)
from fleet.offline.policy_pack import Finding, analyze, policy_config, policy_levels
from fleet.render.names import name_collisions
from fleet.spec.engine_config import SECRETS_KEY, EngineConfig
from fleet.spec.load import load
from fleet.spec.resolved import FleetSpec, ResolvedModel
from fleet.spec.stack import StackConfig
from fleet.spec.stack_file import SECRET_MASK, read_stack_file

PROJECT = "vllm-fleet"


def offload_tokens(m: ResolvedModel) -> int | None:
    """Tokens the KV offload buffer holds: its bytes over the replica's KV bytes per token (each GPU keeps its shard)."""
    if m.spec.kv_offload is None or m.sizing is None or m.sizing.kv_bytes_per_token == 0:
        return None
    return int(m.spec.kv_offload.cpu_gib * 2**30 // (m.sizing.kv_bytes_per_token * (m.spec.tensor_parallel_size or 1)))


@dataclass
class Plan:
    spec: FleetSpec
    resources: list[Captured]
    findings: list[Finding] = field(default_factory=list)
    schema_problems: list[tuple[str, SchemaProblem]] = field(default_factory=list)
    unknown_fields: dict[str, list[str]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def mandatory(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "mandatory"]

    @property
    def exit_code(self) -> int:
        return 1 if self.mandatory or self.schema_problems else 0

    def kubernetes_objects(self) -> list[Captured]:
        return [c for c in self.resources if c.is_kubernetes]

    def document(self) -> PlanDocument:
        return plan_document(self)


def engine_config_offline(engine: EngineConfig, spec: FleetSpec) -> tuple[dict[str, str], list[str]]:
    """The config the engine would hand the program. Secrets stay masked; a secret the team files reference that
    only an imported ESC environment provides is there too, masked (its value is unknown offline)."""
    values = dict(engine.values)
    secret_keys = set(engine.secret_keys)
    referenced = {ref.secret for m in spec.models for ref in (m.spec.api_key, m.spec.hf_token) if ref is not None and ref.secret}
    if referenced - set(spec.config.secrets):
        names = json.loads(values.get(SECRETS_KEY, "{}"))
        values[SECRETS_KEY] = json.dumps({**names, **{n: SECRET_MASK for n in sorted(referenced - set(names))}})
        secret_keys.add(SECRETS_KEY)
    return values, sorted(secret_keys)


def capture(spec: FleetSpec, preview: bool = True, engine: EngineConfig | None = None) -> list[Captured]:
    """The real program (components.program.build, what `__main__.py` runs) under the mocks, with the stack's config
    (read from the stack file unless given) handed through the engine's config channel."""
    root = Path(spec.root)
    if engine is None:
        engine, issues, _ = read_stack_file(root, spec.stack)
        if engine is None or issues:
            raise ConfigError(issues)
    values, secret_keys = engine_config_offline(engine, spec)
    return run(lambda: build(root), project=PROJECT, stack=spec.stack, preview=preview, config=values, secret_keys=secret_keys,
               region=spec.config.region)


def make_plan(stack: str, root: str | Path = ".", *, preview: bool = True, policies: bool = True) -> Plan:
    """Plan one stack; raises ConfigError for bad config (exit 2)."""
    root = Path(root).resolve()
    t0 = time.perf_counter()
    engine, issues, _ = read_stack_file(root, stack)
    spec = load(stack, root)  # every config problem, before the program runs (as `vllm-fleet validate`)
    issues += name_collisions(spec)
    if engine is None or issues:
        raise ConfigError(issues)
    t1 = time.perf_counter()
    resources = capture(spec, preview, engine)
    t2 = time.perf_counter()
    plan = Plan(spec=spec, resources=resources)
    for c in plan.kubernetes_objects():
        unknown: list[str] = []
        manifest = strip_unknowns(c.inputs, "", unknown, UNKNOWN)
        if unknown:
            plan.unknown_fields[c.urn] = unknown
        plan.schema_problems += [(c.urn, p) for p in validate(manifest, spec.config.kubernetes_version, frozenset(unknown))]
    t3 = time.perf_counter()
    if policies:
        plan.findings = analyze(resources, policy_levels(spec), policy_config(spec))
        plan.findings += slo_findings(spec, resources)
    t4 = time.perf_counter()
    plan.timings = {"load": t1 - t0, "program": t2 - t1, "schema": t3 - t2, "policies": t4 - t3}
    return plan


SLO_RULE = "S1"


def slo_findings(spec: FleetSpec, resources: list[Captured]) -> list[Finding]:
    """S1: a model whose replicas at max cannot meet its team file's `slo` at peak (the performance model's
    prediction, fleet/capacity). It judges the config with a model of vLLM, not the rendered objects, so it runs in
    the plan like the fit check rather than in the policy pack; the stack's enforcement sets its level."""
    from fleet.capacity.slo import model_slo_problem

    level = spec.config.effective_enforcement
    if level == "disabled":
        return []
    out = []
    for m in spec.models:
        problem = model_slo_problem(m)
        if problem is None:
            continue
        workload = next((c for c in resources if c.name == f"{m.namespace}/{m.name}" or
                         (c.type.startswith("kubernetes:") and c.urn.endswith(f"::{m.namespace}-{m.name}"))), None)
        out.append(Finding(rule_id=SLO_RULE, level=level, urn=workload.urn if workload else "",
                           message=f"{m.source}:{m.line} {m.path}.slo: {problem}", name=f"{m.team}/{m.name}",
                           remediation="raise the replicas, pick a faster pool, or relax the targets"))
    return out


def slo_curve(m: ResolvedModel) -> dict[str, Any] | None:
    from fleet.capacity.slo import model_slo_curve

    return model_slo_curve(m)


def team_attribution(spec: FleetSpec, resources: list[Captured]) -> dict[str, str]:
    """URN → team: the team label of a Kubernetes object, else the component that (transitively) owns the resource."""
    owners = {f"team-{t.name}": t.name for t in spec.teams}
    owners.update({f"{m.team}-{m.name}": m.team for m in spec.models})
    by_urn = {c.urn: c for c in resources}
    team_names = {t.name for t in spec.teams}
    out: dict[str, str] = {}
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


def kind_of(c: Captured) -> str:
    if c.type.startswith("pulumi:providers:"):
        return f"Provider ({c.type.rsplit(':', 1)[-1]})"
    if c.is_kubernetes:
        return str(c.inputs.get("kind"))
    if not c.custom:
        return c.type.split(":")[-1] + " (component)"
    package, module, name = c.type.split(":")
    return f"{package}:{module.split('/')[0]}:{name}"  # aws:iam/role:Role → aws:iam:Role


def weakened_guardrails(cfg: StackConfig) -> list[WeakenedEntry]:
    """What the stack's `vllm-fleet:policy` weakens: the pack below mandatory outside dev, every rule set below
    mandatory, every exemption — with the reason and owner recorded for each."""
    out = []
    pack = cfg.policy.enforcement
    if pack is not None and pack.level != "mandatory" and cfg.tier != "dev":
        out.append(WeakenedEntry(scope="pack", level=pack.level, reason=pack.reason, owner=pack.owner))
    out += [WeakenedEntry(scope="rule", rule=rule_id, level=o.level, reason=o.reason, owner=o.owner)
            for rule_id, o in sorted(cfg.policy.overrides.items()) if o.level != "mandatory"]
    out += [WeakenedEntry(scope="exemption", rule=e.rule, resource=e.resource, level="exempt", reason=e.reason.strip(), owner=e.owner)
            for e in cfg.policy.exemptions]
    return out


def plan_document(plan: Plan) -> PlanDocument:
    spec, cfg = plan.spec, plan.spec.config
    teams_by_urn = team_attribution(spec, plan.resources)
    resources = [ResourceEntry(
        urn=c.urn, type=c.type, name=c.name, team=teams_by_urn.get(c.urn), kind=kind_of(c),
        namespace=(c.inputs.get("metadata") or {}).get("namespace") if c.is_kubernetes else None, protect=c.protect,
        retain_on_delete=c.retain_on_delete, custom_timeouts=c.custom_timeouts, secret_paths=c.secret_paths, inputs=c.inputs)
        for c in plan.resources]
    cost = estimate(spec)
    models = [ModelEntry(team=m.team, model=m.name, hf_id=m.spec.model, pool=m.pool.name, instance_type=m.instance.instance_type,
                         gpu=m.instance.gpu_model, tensor_parallel_size=m.spec.tensor_parallel_size or 1,
                         pipeline_parallel_size=m.spec.pipeline_parallel_size or 1, gpus_per_replica=m.gpus_per_replica,
                         nodes_per_replica=m.nodes_per_replica, min_replicas=m.min_replicas, max_replicas=m.max_replicas,
                         workload="LeaderWorkerSet" if m.multi_node else "Deployment",
                         routing=m.routing, pd_role=m.pd_role, kv_offload_gib=m.spec.kv_offload.cpu_gib if m.spec.kv_offload else None,
                         kv_offload_tokens=offload_tokens(m),
                         sizing=m.sizing.as_dict() if m.sizing is not None else None,
                         deploy_time=deploy_time(cfg, m).as_dict(), slo=slo_curve(m)) for m in spec.models]
    findings = sorted(plan.findings, key=lambda f: (f.level != "mandatory", f.rule_id, f.urn))
    mandatory = len(plan.mandatory)
    return PlanDocument(
        schema_version=PLAN_SCHEMA_VERSION, stack=spec.stack, region=cfg.region, cluster=cfg.cluster.name, tier=cfg.tier,
        enforcement=cfg.effective_enforcement, vllm_version=cfg.vllm.version, kubernetes_version=cfg.kubernetes_version,
        resources=resources, findings=[FindingEntry(**f.as_dict()) for f in findings],
        schema_problems=[SchemaProblemEntry(urn=urn, kind=p.kind, name=p.name, path=p.path, message=p.message)
                         for urn, p in plan.schema_problems],
        unknown_at_preview=plan.unknown_fields,
        teams=[TeamEntry(team=t.team, gpu_quota=t.gpu_quota, models=t.models, gpus_min=t.gpus_min, gpus_max=t.gpus_max,
                         nodes_min=t.nodes_min, nodes_max=t.nodes_max,
                         usd_per_hour_min=t.usd_per_hour_min if t.priced else None,
                         usd_per_hour_max=t.usd_per_hour_max if t.priced else None, unpriced_models=t.unpriced_models,
                         quota_left_at_max=t.quota_left_at_max) for t in cost.teams],
        models=models,
        pools=[PoolEntry(pool=p.pool, capacity_type=p.capacity_type, gpu_capacity=p.gpu_capacity, gpus_at_max=p.gpus_at_max,
                         headroom=p.headroom, gpus_at_up=p.gpus_at_up, gpus_at_min=p.gpus_at_min) for p in cost.pools],
        spare_gpus=cost.spare_gpus, cost_warnings=cost.warnings, config_notes=list(spec.notes),
        weakened_guardrails=weakened_guardrails(cfg),
        summary=Summary(
            resources=len(plan.resources), kubernetes_objects=len(plan.kubernetes_objects()), teams=len(spec.teams),
            models=len(spec.models), gpus_min=int(cost.total("gpus_min")), gpus_max=int(cost.total("gpus_max")),
            gpu_quota=int(cost.total("gpu_quota")),
            usd_per_hour_min=None if cost.all_unpriced else cost.total("usd_per_hour_min"),
            usd_per_hour_max=None if cost.all_unpriced else cost.total("usd_per_hour_max"),
            unpriced_models=cost.unpriced_models, mandatory_findings=mandatory,
            advisory_findings=len(plan.findings) - mandatory, invalid_manifests=len({urn for urn, _ in plan.schema_problems}),
            exit_code=plan.exit_code))


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
