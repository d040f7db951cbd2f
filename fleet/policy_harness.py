"""Run the policy pack in-process through the SDK's own analyzer servicer (the code `pulumi preview
--policy-pack` talks to over gRPC), so enforcement levels, per-policy config, disabled rules and values
unknown at preview time behave as they do with the real engine.

`pulumi_policy.policy._PolicyAnalyzerServicer` is private API: pulumi-policy is pinned exactly.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from google.protobuf import json_format, struct_pb2
from pulumi.runtime.proto import analyzer_pb2 as proto
from pulumi_policy import EnforcementLevel
from pulumi_policy.policy import _PolicyAnalyzerServicer

if TYPE_CHECKING:
    from fleet.engine.mocks import Captured
    from fleet.plan import Finding, Plan
    from fleet.spec.loader import FleetSpec

PACK_NAME = "vllm-fleet-guardrails"
PACK_VERSION = "0.1.0"
LEVELS = {"advisory": proto.ADVISORY, "mandatory": proto.MANDATORY, "disabled": proto.DISABLED}
LEVEL_NAMES = {proto.ADVISORY: "advisory", proto.MANDATORY: "mandatory", proto.DISABLED: "disabled",
               proto.REMEDIATE: "mandatory"}


def rules() -> list[Any]:
    from policies.rules import RULES

    return list(RULES)


def policy_levels(spec: FleetSpec | None) -> dict[str, str]:
    """Level per policy name: the catalogue default, lowered to advisory (or disabled) by the stack's
    enforcement, then per-rule overrides."""
    out = {}
    enforcement = spec.config.effective_enforcement if spec is not None else "mandatory"
    overrides = spec.config.policy.overrides if spec is not None else {}
    for r in rules():
        level = r.level if enforcement == "mandatory" else enforcement
        out[r.policy_name] = overrides.get(r.id, level)
    return out


def policy_config(spec: FleetSpec | None) -> dict[str, dict[str, Any]]:
    """Per-policy config from the stack (the same document `vllm-fleet policy-config` writes for the real engine)."""
    base: dict[str, Any] = {}
    exemptions: list[Any] = []
    if spec is not None:
        cfg = spec.config
        base = {
            "prod": cfg.tier == "prod", "allow_spot": cfg.policy.allow_spot_in_prod, "spare_gpus": cfg.spare_gpus,
            "allowed_instance_types": list(cfg.allowed_instance_types), "allowed_registries": list(cfg.allowed_registries),
            "allow_tag_only": cfg.vllm.allow_tag_only, "version_floor": cfg.policy.vllm_version_floor,
        }
        exemptions = list(cfg.policy.exemptions)
    out = {}
    for r in rules():
        conf = dict(base)
        conf["exempt_namespaces"] = [e.namespace for e in exemptions if e.rule == r.id and e.namespace]
        conf["exempt_resources"] = [e.resource for e in exemptions if e.rule == r.id and e.resource]
        out[r.policy_name] = conf
    return out


def make_servicer(levels: dict[str, str], config: dict[str, dict[str, Any]]) -> _PolicyAnalyzerServicer:
    servicer = _PolicyAnalyzerServicer(PACK_NAME, PACK_VERSION, [r.policy for r in rules()], EnforcementLevel.ADVISORY)
    request = proto.ConfigureAnalyzerRequest()
    for name, level in levels.items():
        props = struct_pb2.Struct()
        props.update(config.get(name, {}))
        request.policyConfig[name].CopyFrom(proto.PolicyConfig(enforcementLevel=LEVELS[level], properties=props))
    servicer.Configure(request, None)
    return servicer


@contextlib.contextmanager
def _engine_env_hidden() -> Iterator[None]:
    """With PULUMI_PROJECT/STACK/DRY_RUN set the SDK reconfigures Pulumi's runtime on every check."""
    saved = {k: os.environ.pop(k) for k in ("PULUMI_PROJECT", "PULUMI_STACK", "PULUMI_DRY_RUN") if k in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def _struct(props: dict[str, Any]) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    json_format.ParseDict(props, s)
    return s


def analyze(resources: list[Captured], levels: dict[str, str], config: dict[str, dict[str, Any]]) -> list[Finding]:
    from fleet.plan import Finding

    by_policy = {r.policy_name: r for r in rules()}
    servicer = make_servicer(levels, config)
    findings: list[Finding] = []

    def collect(response: Any, default_urn: str, default_name: str) -> None:
        for d in response.diagnostics:
            r = by_policy.get(d.policyName)
            message = d.message
            if message.startswith(d.description):
                message = message[len(d.description):].lstrip("\n")
            findings.append(Finding(rule_id=r.id if r else d.policyName, level=LEVEL_NAMES.get(d.enforcementLevel, "advisory"),
                                    urn=d.urn or default_urn, message=message or d.description,
                                    name=default_name if not d.urn else d.urn.rsplit("::", 1)[-1]))

    custom = [c for c in resources if c.custom and not c.type.startswith("pulumi:providers:")]
    with _engine_env_hidden():
        for c in custom:
            request = proto.AnalyzeRequest(type=c.type, properties=_struct(c.inputs), urn=c.urn, name=c.name,
                                           options=proto.AnalyzerResourceOptions(protect=c.protect, parent=c.parent or ""))
            collect(servicer.Analyze(request, None), c.urn, c.name)
        stack = proto.AnalyzeStackRequest(resources=[
            proto.AnalyzerResource(type=c.type, properties=_struct(c.inputs), urn=c.urn, name=c.name,
                                   options=proto.AnalyzerResourceOptions(protect=c.protect), parent=c.parent or "",
                                   dependencies=list(c.dependencies))
            for c in custom])
        collect(servicer.AnalyzeStack(stack, None), "", "")
    return findings


def run_policies(plan: Plan) -> list[Finding]:
    return analyze(plan.resources, policy_levels(plan.spec), policy_config(plan.spec))
