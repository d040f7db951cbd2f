"""The guardrail pack offline: levels and settings from the stack, and the pack run over captured resources
as the engine drives its analyzer plugin (Analyze per resource, AnalyzeStack once), through the SDK's own
servicer (fleet.offline.analyzer)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import json_format, struct_pb2
from pulumi.runtime.proto import analyzer_pb2 as proto
from pulumi_policy import EnforcementLevel
from pulumi_policy.policy import _PolicyAnalyzerServicer

import policies
from fleet.offline.analyzer import SharedViewServicer
from fleet.offline.engine import Captured
from fleet.render.exemptions import platform_exemptions
from fleet.spec.resolved import FleetSpec
from fleet.yamlsrc import safe_load
from policies.commands import start_cold
from policies.framework import Rule
from policies.rules import RULES

PACK_NAME = "vllm-fleet-guardrails"
PACK_DIR = Path(policies.__file__).resolve().parent
PACK_VERSION = str(safe_load((PACK_DIR / "PulumiPolicy.yaml").read_text())["version"])
LEVELS = {"advisory": proto.ADVISORY, "mandatory": proto.MANDATORY, "disabled": proto.DISABLED}
LEVEL_NAMES = {proto.ADVISORY: "advisory", proto.MANDATORY: "mandatory", proto.DISABLED: "disabled",
               proto.REMEDIATE: "mandatory"}
BY_POLICY: dict[str, Rule] = {r.policy_name: r for r in RULES}


@dataclass(frozen=True)
class Finding:
    rule_id: str
    level: str            # mandatory | advisory
    urn: str
    message: str
    name: str = ""
    remediation: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"rule_id": self.rule_id, "level": self.level, "urn": self.urn, "resource": self.name or self.urn,
                "message": self.message, "remediation": self.remediation}


def policy_levels(spec: FleetSpec | None) -> dict[str, str]:
    """Level per policy name: the catalogue default, lowered to advisory (or disabled) by the stack's
    enforcement, then per-rule overrides."""
    out = {}
    enforcement = spec.config.effective_enforcement if spec is not None else "mandatory"
    overrides = spec.config.policy.overrides if spec is not None else {}
    for r in RULES:
        level = r.level if enforcement == "mandatory" else enforcement
        override = overrides.get(r.id)
        out[r.policy_name] = override.level if override is not None else level
    return out


def policy_config(spec: FleetSpec | None) -> dict[str, dict[str, Any]]:
    """Per-policy config from the stack (the same document `vllm-fleet policy-config` writes for the real engine)."""
    base: dict[str, Any] = {}
    if spec is not None:
        cfg = spec.config
        base = {
            "prod": cfg.tier == "prod", "allow_spot": cfg.policy.allow_spot_in_prod, "spare_gpus": cfg.spare_gpus,
            "allowed_instance_types": list(cfg.allowed_instance_types), "allowed_registries": list(cfg.allowed_registries),
            "allow_tag_only": cfg.vllm.allow_tag_only, "version_floor": cfg.policy.vllm_version_floor,
            "efa_images": [cfg.vllm.efa.repository] if cfg.vllm.efa is not None else [],
            "network_policy_enforcement": cfg.cluster.network_policy_enforcement,
        }
    exempt = platform_exemptions(spec) if spec is not None else {}
    for e in spec.config.policy.exemptions if spec is not None else []:
        exempt.setdefault(e.rule, {})[e.resource] = e.reason.strip()
    out = {}
    for r in RULES:
        # object ref (Kind/namespace/name) → reason: what the rule does not judge, and why
        out[r.policy_name] = {**base, "exempt_resources": dict(sorted(exempt.get(r.id, {}).items()))}
    return out


def configure_request(levels: dict[str, str], config: dict[str, dict[str, Any]]) -> proto.ConfigureAnalyzerRequest:
    """The Configure request the engine sends from `--policy-pack-config` (levels and properties per policy)."""
    request = proto.ConfigureAnalyzerRequest()
    for name, level in levels.items():
        props = struct_pb2.Struct()
        props.update(config.get(name, {}))
        request.policyConfig[name].CopyFrom(proto.PolicyConfig(enforcementLevel=LEVELS[level], properties=props))
    return request


def make_servicer(levels: dict[str, str], config: dict[str, dict[str, Any]], shared_view: bool = True) -> _PolicyAnalyzerServicer:
    start_cold()
    policies = [r.policy for r in RULES]
    servicer: _PolicyAnalyzerServicer
    if shared_view:
        judged = {r.policy_name: frozenset(r.kinds) for r in RULES if r.kinds}
        servicer = SharedViewServicer(PACK_NAME, PACK_VERSION, policies, EnforcementLevel.ADVISORY, judged_types=judged)
    else:
        servicer = _PolicyAnalyzerServicer(PACK_NAME, PACK_VERSION, policies, EnforcementLevel.ADVISORY)
    servicer.Configure(configure_request(levels, config), None)
    return servicer


ENGINE_ENV = ("PULUMI_PROJECT", "PULUMI_STACK", "PULUMI_DRY_RUN")


@contextlib.contextmanager
def engine_env_hidden() -> Iterator[None]:
    """With PULUMI_PROJECT/STACK/DRY_RUN set, the policy SDK reconfigures Pulumi's runtime on every check (and
    would wipe a mock monitor); a pack started by the engine never has them."""
    saved = {k: os.environ.pop(k) for k in ENGINE_ENV if k in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def findings_of(response: Any, default_urn: str = "", default_name: str = "") -> list[Finding]:
    """An AnalyzeResponse's diagnostics as findings."""
    out = []
    for d in response.diagnostics:
        r = BY_POLICY.get(d.policyName)
        message = d.message
        if message.startswith(d.description):
            message = message[len(d.description):].lstrip("\n")
        out.append(Finding(rule_id=r.id if r else d.policyName, level=LEVEL_NAMES.get(d.enforcementLevel, "advisory"),
                           urn=d.urn or default_urn, message=message or d.description,
                           name=default_name if not d.urn else d.urn.rsplit("::", 1)[-1],
                           remediation=r.remediation if r else ""))
    return out


def analyze_request(c: Captured) -> proto.AnalyzeRequest:
    """What the engine sends for one resource: its type, inputs (camelCase), URN, name and options."""
    props = struct_pb2.Struct()
    json_format.ParseDict(c.inputs, props)
    return proto.AnalyzeRequest(type=c.type, properties=props, urn=c.urn, name=c.name,
                                options=proto.AnalyzerResourceOptions(protect=c.protect, parent=c.parent or ""))


def analyze_stack_request(resources: list[Captured]) -> proto.AnalyzeStackRequest:
    request = proto.AnalyzeStackRequest()
    for c in resources:
        r = request.resources.add(type=c.type, urn=c.urn, name=c.name, parent=c.parent or "", dependencies=c.dependencies,
                                  options=proto.AnalyzerResourceOptions(protect=c.protect))
        json_format.ParseDict(c.inputs, r.properties)
    return request


def analyze(resources: list[Captured], levels: dict[str, str], config: dict[str, dict[str, Any]],
            shared_view: bool = True) -> list[Finding]:
    """Findings of the pack over `resources`, per resource in URN order, then the stack's; `shared_view=False`
    uses the SDK's servicer unchanged."""
    return judge(engine_requests(resources), levels, config, shared_view)


@dataclass(frozen=True)
class EngineRequests:
    """What the engine sends the pack for a preview: one AnalyzeRequest per resource (URN order), then the stack."""
    analyze: list[proto.AnalyzeRequest]
    analyze_stack: proto.AnalyzeStackRequest


def engine_requests(resources: list[Captured]) -> EngineRequests:
    judged = sorted((c for c in resources if c.analyzed), key=lambda c: c.urn)
    return EngineRequests([analyze_request(c) for c in judged], analyze_stack_request(judged))


def judge(requests: EngineRequests, levels: dict[str, str], config: dict[str, dict[str, Any]],
          shared_view: bool = True) -> list[Finding]:
    """The pack's answers to the engine's requests, as findings."""
    servicer = make_servicer(levels, config, shared_view)
    findings: list[Finding] = []
    with engine_env_hidden():
        for request in requests.analyze:
            findings += findings_of(servicer.Analyze(request, None), request.urn, request.name)
        findings += findings_of(servicer.AnalyzeStack(requests.analyze_stack, None))
    return list(dict.fromkeys(findings))  # one problem, one finding (a LeaderWorkerSet's twin templates report once)
