"""Run the policy pack in-process through the SDK's own analyzer servicer (the code `pulumi preview
--policy-pack` talks to over gRPC), so enforcement levels, per-policy config, disabled rules and values
unknown at preview time behave as they do with the real engine.

`pulumi_policy.policy._PolicyAnalyzerServicer` is private API: pulumi-policy is pinned exactly.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator
from inspect import isawaitable
from typing import TYPE_CHECKING, Any, NamedTuple

from google.protobuf import json_format, struct_pb2
from pulumi.runtime.proto import analyzer_pb2 as proto
from pulumi_policy import EnforcementLevel, ResourceValidationArgs, ResourceValidationPolicy, StackValidationPolicy
from pulumi_policy.deserialize import deserialize_properties
from pulumi_policy.policy import (
    PolicyResource,
    StackValidationArgs,
    _NotApplicableError,
    _PolicyAnalyzerServicer,
)
from pulumi_policy.proxy import UnknownValueError, unknown_checking_proxy

from fleet.gcpause import paused

if TYPE_CHECKING:
    from fleet.engine.mocks import Captured
    from fleet.plan import Finding
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


class SharedViewServicer(_PolicyAnalyzerServicer):
    """The SDK's servicer, except that a request's properties are deserialised once and the read-only view is
    shared by every policy (the SDK rebuilds it per policy: 69 times per resource). Levels, config, unknown
    values, not-applicable and diagnostics are the SDK's own code paths, copied from pulumi-policy 1.21.0."""

    def _unknown_diagnostic(self, policy: Any, e: UnknownValueError) -> Any:
        name, version = self._private("policy_pack_name"), self._private("policy_pack_version")
        return proto.AnalyzeDiagnostic(
            policyName=policy.name, policyPackName=name, policyPackVersion=version,
            message=f"can't run policy '{policy.name}' from policy pack '{name}@v{version}' during preview: {e.message}",
            urn="", description=policy.description, enforcementLevel=self._map_enforcement_level(EnforcementLevel.ADVISORY))

    def _judge(self, response: Any, policy: Any, kind: type[Any], call: Any) -> None:
        """One policy on one request, as the SDK does it: level, report, unknown values, not applicable."""
        level = self._get_enforcement_level(policy)
        if level == EnforcementLevel.DISABLED or not isinstance(policy, kind):
            return
        if level == EnforcementLevel.REMEDIATE:
            level = EnforcementLevel.MANDATORY
        report = self._create_report_violation(response, policy.name, policy.description, level, policy.severity)
        try:
            result = call(report)
            if isawaitable(result):
                loop = asyncio.new_event_loop()
                loop.run_until_complete(asyncio.ensure_future(result, loop=loop))
                loop.close()
        except UnknownValueError as e:
            response.diagnostics.append(self._unknown_diagnostic(policy, e))
        except _NotApplicableError as e:
            response.not_applicable.append(proto.PolicyNotApplicable(policy_name=policy.name, reason=e.reason or ""))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._views: dict[str, Any] = {}   # urn → view, reused by AnalyzeStack within one harness run

    def _private(self, name: str) -> Any:
        """The SDK servicer's name-mangled state (pulumi-policy is pinned exactly for this)."""
        return getattr(self, f"_PolicyAnalyzerServicer__{name}")

    def _view(self, urn: str, properties: Any, fresh: bool = False) -> Any:
        """The read-only view of a request's properties; Analyze makes it (fresh: a URN seen again, as in
        test fixtures, gets its own properties), AnalyzeStack reuses it."""
        view = None if fresh else self._views.get(urn)
        if view is None:
            view = self._views[urn] = unknown_checking_proxy(deserialize_properties(json_format.MessageToDict(properties)))
        return view

    def Analyze(self, request: Any, _context: Any) -> Any:
        self._configure_runtime_settings()
        response = proto.AnalyzeResponse()
        props = self._view(request.urn, request.properties, fresh=True)
        opts = self._get_resource_options(request)
        provider = self._get_provider_resource(request)
        stack_tags = self._private("stack_tags")
        for policy in self._private("policies"):
            judged = getattr(policy, "judged_types", None)
            if judged and request.type not in judged:
                continue  # the rule returns at once for other types: same outcome, without the per-policy setup
            self._judge(response, policy, ResourceValidationPolicy, lambda report, p=policy: p.validate(
                ResourceValidationArgs(request.type, props, request.urn, request.name, opts, provider,
                                       self._get_policy_config(p.name), stack_tags), report))
        return response

    def AnalyzeStack(self, request: Any, _context: Any) -> Any:
        self._configure_runtime_settings()
        response = proto.AnalyzeResponse()
        resources = [PolicyResource(r.type, self._view(r.urn, r.properties), r.urn, r.name, self._get_resource_options(r),
                                    self._get_provider_resource(r), None, [], {})
                     for r in request.resources]
        by_urn = {res.urn: res for res in resources}
        for res, r in zip(resources, request.resources, strict=True):
            res.parent = by_urn.get(r.parent) if r.parent else None
            res.dependencies.extend(by_urn[d] for d in r.dependencies if d in by_urn)
        stack_tags = self._private("stack_tags")
        for policy in self._private("policies"):
            self._judge(response, policy, StackValidationPolicy, lambda report, p=policy: p.validate(
                StackValidationArgs(resources, self._get_policy_config(p.name), stack_tags), report))
        return response


def make_servicer(levels: dict[str, str], config: dict[str, dict[str, Any]], shared_view: bool = True) -> _PolicyAnalyzerServicer:
    cls = SharedViewServicer if shared_view else _PolicyAnalyzerServicer
    servicer = cls(PACK_NAME, PACK_VERSION, [r.policy for r in rules()], EnforcementLevel.ADVISORY)
    request = proto.ConfigureAnalyzerRequest()
    for name, level in levels.items():
        props = struct_pb2.Struct()
        props.update(config.get(name, {}))
        request.policyConfig[name].CopyFrom(proto.PolicyConfig(enforcementLevel=LEVELS[level], properties=props))
    servicer.Configure(request, None)
    return servicer


ENGINE_ENV = ("PULUMI_PROJECT", "PULUMI_STACK", "PULUMI_DRY_RUN")


@contextlib.contextmanager
def _engine_env_hidden() -> Iterator[None]:
    """With PULUMI_PROJECT/STACK/DRY_RUN set the SDK reconfigures Pulumi's runtime on every check."""
    saved = {k: os.environ.pop(k) for k in ENGINE_ENV if k in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def _struct(props: dict[str, Any]) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    json_format.ParseDict(props, s)
    return s


class Judged(NamedTuple):
    urn: str
    type: str
    name: str
    protect: bool
    parent: str
    dependencies: tuple[str, ...]


class Analysis:
    """The pack over a stream of resources, as the engine drives an analyzer plugin: `resource()` (Analyze)
    for each resource as it is registered, `finish()` (AnalyzeStack) once all are. Findings come out in URN
    order whatever order the resources arrived in. Callers wrap the calls in `checking()`."""

    def __init__(self, levels: dict[str, str], config: dict[str, dict[str, Any]], shared_view: bool = True) -> None:
        self.by_policy = {r.policy_name: r for r in rules()}
        self.servicer = make_servicer(levels, config, shared_view)
        # Per resource: what AnalyzeStack needs, its properties, its findings (not the inputs: the Struct has them).
        self.judged: list[tuple[Judged, struct_pb2.Struct | None, list[Finding]]] = []

    def _findings(self, response: Any, default_urn: str, default_name: str) -> list[Finding]:
        from fleet.plan import Finding

        out = []
        for d in response.diagnostics:
            r = self.by_policy.get(d.policyName)
            message = d.message
            if message.startswith(d.description):
                message = message[len(d.description):].lstrip("\n")
            out.append(Finding(rule_id=r.id if r else d.policyName, level=LEVEL_NAMES.get(d.enforcementLevel, "advisory"),
                               urn=d.urn or default_urn, message=message or d.description,
                               name=default_name if not d.urn else d.urn.rsplit("::", 1)[-1]))
        return out

    def resource(self, c: Captured) -> None:
        if not c.analyzed:
            return
        struct = _struct(c.inputs)
        request = proto.AnalyzeRequest(type=c.type, properties=struct, urn=c.urn, name=c.name,
                                       options=proto.AnalyzerResourceOptions(protect=c.protect, parent=c.parent or ""))
        judged = Judged(c.urn, c.type, c.name, c.protect, c.parent or "", tuple(c.dependencies))
        self.judged.append((judged, struct, self._findings(self.servicer.Analyze(request, None), c.urn, c.name)))

    def finish(self) -> list[Finding]:
        """AnalyzeStack over every resource seen, then all findings: per resource in URN order, then the stack's.
        Each Struct is released once copied into the request, so the properties are not held twice."""
        self.judged.sort(key=lambda j: j[0].urn)
        stack = proto.AnalyzeStackRequest()
        for i, (j, struct, found) in enumerate(self.judged):
            r = stack.resources.add(type=j.type, urn=j.urn, name=j.name, parent=j.parent, dependencies=j.dependencies,
                                    options=proto.AnalyzerResourceOptions(protect=j.protect))
            r.properties.CopyFrom(struct)
            self.judged[i] = (j, None, found)
        stack_findings = self._findings(self.servicer.AnalyzeStack(stack, None), "", "")
        return [f for _, _, found in self.judged for f in found] + stack_findings


@contextlib.contextmanager
def checking() -> Iterator[None]:
    """What policy checks run under: the engine's env hidden, the cyclic GC paused."""
    with _engine_env_hidden(), paused():
        yield


def analyze(resources: list[Captured], levels: dict[str, str], config: dict[str, dict[str, Any]],
            shared_view: bool = True) -> list[Finding]:
    """Findings of the pack over `resources`; `shared_view=False` uses the SDK's servicer unchanged."""
    analysis = Analysis(levels, config, shared_view)
    with checking():
        for c in resources:
            analysis.resource(c)
        return analysis.finish()

