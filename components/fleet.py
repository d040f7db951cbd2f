"""Fleet: the whole stack — platform (node groups, device plugin), then per team tenancy and models."""

from __future__ import annotations

import pulumi

from components import aws
from components.cache import ModelCache
from components.kube import apply
from components.platform import GpuNodeGroup, GpuSystem, KarpenterGpuPool, kube_provider
from components.tenancy import TeamTenancy
from components.vllm_service import VllmService
from fleet.render.observability import adapter_rules
from fleet.spec.loader import FleetSpec


class Fleet(pulumi.ComponentResource):
    def __init__(self, name: str, spec: FleetSpec, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("vllm-fleet:index:Fleet", name, None, opts)
        cfg = spec.config
        self.cluster = aws.invoke("aws:eks/getCluster:getCluster", {"name": cfg.cluster.name}, pulumi.InvokeOptions(parent=self))
        self.provider = kube_provider("eks", cfg, self.cluster, pulumi.ResourceOptions(parent=self))
        k8s_opts = pulumi.ResourceOptions(parent=self, providers={"kubernetes": self.provider})

        self.node_groups: list[pulumi.Resource] = [
            KarpenterGpuPool(f"pool-{pool.name}", cfg, pool, self.cluster, k8s_opts, pulumi.ResourceOptions(parent=self))
            if pool.provisioner == "karpenter" else GpuNodeGroup(f"pool-{pool.name}", cfg, pool, pulumi.ResourceOptions(parent=self))
            for pool in cfg.gpu_pools]
        self.gpu_system = GpuSystem("gpu-system", cfg, k8s_opts)
        # prometheus-adapter reads its vLLM rule from this ConfigMap (chart value rules.existing).
        self.adapter_rules = (apply(adapter_rules(spec), k8s_opts)
                              if cfg.autoscaling.backend == "hpa" and any(m.spec.autoscaling for m in spec.models) else None)

        secrets = pulumi.Config("vllm-fleet").get_secret_object("secrets") or pulumi.Output.secret({})
        self.teams = {team.name: TeamTenancy(f"team-{team.name}", spec, team, pulumi.Output.from_input(secrets), k8s_opts)
                      for team in spec.teams}
        self.cache = ModelCache("model-cache", spec, self.cluster,
                                {name: t.namespace for name, t in self.teams.items()}, k8s_opts)
        platform: list[pulumi.Resource] = [*self.node_groups, self.gpu_system]
        self.services = []
        for team in spec.teams:
            deps: list[pulumi.Resource] = [self.teams[team.name], *platform]
            if team.name in self.cache.claims:
                deps.append(self.cache.claims[team.name])
            for model in team.models:
                self.services.append(VllmService(
                    f"{team.name}-{model.name}", spec, model,
                    pulumi.ResourceOptions(parent=self, providers={"kubernetes": self.provider}, depends_on=deps)))
        self.register_outputs({"teams": [t.name for t in spec.teams],
                               "models": [f"{m.team}/{m.name}" for m in spec.models]})
