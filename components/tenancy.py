"""TeamTenancy: one namespace per team with quota, limits, RBAC, network policies and its Secrets."""

from __future__ import annotations

import pulumi

from components.kube import apply
from fleet.labels import MANAGED_BY, TEAM_LABEL
from fleet.render.observability import dashboard
from fleet.render.tenancy import team_manifests
from fleet.spec.loader import FleetSpec, ResolvedTeam


def referenced_secrets(team: ResolvedTeam) -> list[str]:
    names = {ref.secret for m in team.models for ref in (m.spec.api_key, m.spec.hf_token)
             if ref is not None and ref.secret is not None}
    return sorted(names)


class TeamTenancy(pulumi.ComponentResource):
    def __init__(self, name: str, spec: FleetSpec, team: ResolvedTeam, secrets: pulumi.Output,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("vllm-fleet:tenancy:TeamTenancy", name, None, opts)
        manifests = team_manifests(spec, team)
        # The namespace holds the model-cache claim: deleting it would delete the claim, so prod protects it.
        holds_claim = spec.config.tier == "prod" and spec.config.model_cache.backend != "none" and bool(team.models)
        self.namespace = apply(manifests[0], pulumi.ResourceOptions(parent=self, protect=holds_claim,
                                                                     retain_on_delete=holds_claim))
        after_ns = pulumi.ResourceOptions(parent=self, depends_on=[self.namespace])
        self.objects = [apply(m, after_ns) for m in manifests[1:]]
        if spec.config.observability.dashboards and team.models:
            self.objects.append(apply(dashboard(spec, team), after_ns))
        # Stack secrets (`vllm-fleet:secrets.<name>`, decrypted by the engine) become Secrets with key `value`.
        self.secrets = [self._secret(team, name, secrets, after_ns) for name in referenced_secrets(team)]
        self.register_outputs({"namespace": team.namespace})

    @staticmethod
    def _secret(team: ResolvedTeam, name: str, secrets: pulumi.Output, opts: pulumi.ResourceOptions) -> pulumi.CustomResource:
        """A stack secret (`vllm-fleet:secrets.<name>`, decrypted by the engine) as a Secret with key `value`."""

        def pick(values: dict[str, str]) -> str:
            return values[name]

        labels: dict[str, str] = {**MANAGED_BY, TEAM_LABEL: team.name}
        return apply({"apiVersion": "v1", "kind": "Secret",
                      "metadata": {"name": name, "namespace": team.namespace, "labels": labels}, "type": "Opaque",
                      "stringData": {"value": pulumi.Output.secret(secrets.apply(pick))}},
                     opts, name=f"secret-{team.namespace}-{name}")
