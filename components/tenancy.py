"""TeamTenancy: one namespace per team with quota, limits, RBAC, network policies, its dashboard and Secrets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

from components.kubernetes import register
from fleet.labels import MANAGED_BY, TEAM_LABEL
from fleet.render.names import secret_resource_name
from fleet.render.observability import dashboard
from fleet.render.tenancy import team_manifests
from fleet.spec.resolved import ResolvedTeam
from fleet.spec.stack import StackConfig


@dataclass(frozen=True)
class TeamTenancyArgs:
    team: ResolvedTeam
    platform: StackConfig
    secret_values: pulumi.Output[Any]     # the engine's `vllm-fleet:secrets` (a secret Output of name → value)


def referenced_secrets(team: ResolvedTeam) -> list[str]:
    names = {ref.secret for m in team.models for ref in (m.spec.api_key, m.spec.hf_token) if ref is not None and ref.secret is not None}
    return sorted(names)


class TeamTenancy(pulumi.ComponentResource):

    def __init__(self, name: str, args: TeamTenancyArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("vllm-fleet:tenancy:TeamTenancy", name, None, opts)
        team, cfg = args.team, args.platform
        manifests = team_manifests(cfg, team)
        # The namespace holds the model-cache claim: deleting it would delete the claim, so prod protects it.
        holds_claim = cfg.tier == "prod" and cfg.model_cache.backend != "none" and bool(team.models)
        self.namespace = register(manifests[0], pulumi.ResourceOptions(parent=self, protect=holds_claim, retain_on_delete=holds_claim))
        after_ns = pulumi.ResourceOptions(parent=self, depends_on=[self.namespace])
        self.objects = [register(m, after_ns) for m in manifests[1:]]
        if cfg.observability.dashboards and team.models:
            self.objects.append(register(dashboard(cfg, team), after_ns))
        self.secrets = [self._secret(team, name, args.secret_values, after_ns) for name in referenced_secrets(team)]
        self.register_outputs({"namespace": team.namespace})

    @staticmethod
    def _secret(team: ResolvedTeam, name: str, values: pulumi.Output[Any], opts: pulumi.ResourceOptions) -> pulumi.CustomResource:
        """A stack secret (`vllm-fleet:secrets.<name>`, decrypted by the engine) as a Secret with key `value`."""
        labels: dict[str, str] = {**MANAGED_BY, TEAM_LABEL: team.name}
        value = pulumi.Output.secret(values.apply(lambda v: (v or {}).get(name)))
        return register({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": team.namespace, "labels": labels},
                         "type": "Opaque", "stringData": {"value": value}}, opts, name=secret_resource_name(team.namespace, name))
