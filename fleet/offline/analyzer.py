"""The SDK's policy analyzer servicer with one change: a resource's properties are deserialised once and the
read-only view is shared by every policy (the SDK rebuilds it for each of the 69 policies, and runs every
policy on every resource). Enforcement levels, per-policy config, not-applicable, values unknown at preview
and diagnostics are the SDK's own code paths; the two request handlers below follow pulumi-policy 1.21.0's
`_PolicyAnalyzerServicer.Analyze`/`AnalyzeStack` line by line.

`_PolicyAnalyzerServicer` is private API, so pulumi-policy is pinned exactly (pyproject.toml) and
tests/test_policies.py requires this servicer and the SDK's to give the same verdicts on every fixture. It is
the only speed-up the offline path keeps: ~20× on the policy pass.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from inspect import isawaitable
from typing import Any

from google.protobuf import json_format
from pulumi.runtime.proto import analyzer_pb2 as proto
from pulumi_policy import EnforcementLevel, ResourceValidationArgs, ResourceValidationPolicy, StackValidationPolicy
from pulumi_policy.deserialize import deserialize_properties
from pulumi_policy.policy import PolicyResource, StackValidationArgs, _NotApplicableError, _PolicyAnalyzerServicer
from pulumi_policy.proxy import UnknownValueError, unknown_checking_proxy

PINNED_PULUMI_POLICY = "1.21.0"


class SharedViewServicer(_PolicyAnalyzerServicer):
    """`judged_types` maps a policy name to the resource types it judges (a policy absent from it judges every
    type): the other types are skipped, which is what the policy itself would do first."""

    def __init__(self, *args: Any, judged_types: Mapping[str, frozenset[str]] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._judged_types = dict(judged_types or {})
        self._views: dict[str, Any] = {}   # urn → view, reused by AnalyzeStack

    def _private(self, name: str) -> Any:
        """The SDK servicer's name-mangled state (pulumi-policy is pinned exactly for this)."""
        return getattr(self, f"_PolicyAnalyzerServicer__{name}")

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

    def _view(self, urn: str, properties: Any, fresh: bool = False) -> Any:
        """The read-only view of a request's properties; Analyze makes it (a URN seen again gets its own),
        AnalyzeStack reuses it."""
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
            judged = self._judged_types.get(policy.name)
            if judged and request.type not in judged:
                continue
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
