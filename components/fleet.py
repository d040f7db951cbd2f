"""Fleet: the whole stack — platform (node pools, GPU system, model cache), then per team tenancy and models."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components import kubernetes
from components.cluster_autoscaler import ClusterAutoscaler, ClusterAutoscalerArgs
from components.gpu_system import GpuSystem, GpuSystemArgs
from components.iam import ClusterOidc
from components.model_cache import ModelCacheArgs, model_cache
from components.node_pools import GpuNodeGroup, GpuNodeGroupArgs, KarpenterGpuPool, KarpenterGpuPoolArgs
from components.tenancy import TeamTenancy, TeamTenancyArgs
from components.vllm_service import VllmService, VllmServiceArgs
from fleet import clock
from fleet.catalog import gpu_instance
from fleet.render import cluster_autoscaler
from fleet.render.gateway import gateway_manifests
from fleet.render.observability import adapter_rules, monitor_labels
from fleet.render.workload import image
from fleet.spec.resolved import FleetSpec


@dataclass(frozen=True)
class FleetArgs:
    spec: FleetSpec
    secret_values: pulumi.Output[Any]     # the engine's `vllm-fleet:secrets`


def cache_subnets(spec: FleetSpec) -> tuple[str, ...]:
    cache = spec.config.model_cache
    if cache.subnet_ids:
        return tuple(cache.subnet_ids)
    return tuple(sorted({s for pool in spec.config.gpu_pools for s in pool.subnet_ids}))


class Fleet(pulumi.ComponentResource):
    def __init__(self, name: str, args: FleetArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("vllm-fleet:index:Fleet", name, None, opts)
        spec, cfg = args.spec, args.spec.config
        child = pulumi.ResourceOptions(parent=self)
        self.cluster = aws.eks.get_cluster_output(name=cfg.cluster.name, opts=pulumi.InvokeOutputOptions(parent=self))
        self.provider = kubernetes.provider("eks", cfg.cluster.name, cfg.region, self.cluster.endpoint,
                                            self.cluster.certificate_authorities[0].data, child)
        on_cluster = pulumi.ResourceOptions(parent=self, providers={"kubernetes": self.provider})
        cluster_sg = self.cluster.vpc_config.cluster_security_group_id
        vpc_id = self.cluster.vpc_config.vpc_id

        now = clock.now()
        autoscaled = cluster_autoscaler.installs(cfg)
        self.node_pools: list[pulumi.Resource] = []
        for pool in cfg.gpu_pools:
            tags = {"vllm-fleet/pool": pool.name, "vllm-fleet/cluster": cfg.cluster.name}
            instance = gpu_instance(pool.instance_types[0])
            assert instance is not None  # the loader refuses instance types missing from the catalog
            if pool.provisioner == "karpenter":
                self.node_pools.append(KarpenterGpuPool(f"pool-{pool.name}", KarpenterGpuPoolArgs(
                    cfg.cluster.name, pool, instance, cluster_sg, vpc_id, tags), on_cluster))
            else:
                self.node_pools.append(GpuNodeGroup(f"pool-{pool.name}", GpuNodeGroupArgs(
                    cfg.cluster.name, pool, instance, cluster_sg, vpc_id, tags, now,
                    autoscaled=autoscaled and cluster_autoscaler.discovers(pool)), child))
        if cfg.cluster.network_policy_enforcement == "vpc-cni-addon":
            # The VPC CNI enforces NetworkPolicies only with its network policy agent on. Existing settings of the
            # add-on are kept on update; a self-managed CNI is taken over on create.
            self.vpc_cni = aws.eks.Addon("vpc-cni", cluster_name=cfg.cluster.name, addon_name="vpc-cni",
                                         configuration_values=json.dumps({"enableNetworkPolicy": "true"}),
                                         resolve_conflicts_on_create="OVERWRITE", resolve_conflicts_on_update="PRESERVE",
                                         tags={"vllm-fleet/cluster": cfg.cluster.name}, opts=child)
        # On FSx the platform namespace holds the claim of the whole file system (fleet.render.cache.root_claim).
        holds_claim = cfg.tier == "prod" and cfg.model_cache.backend == "fsx-lustre"
        self.gpu_system = GpuSystem("gpu-system", GpuSystemArgs(cfg.device_plugin, tuple(cfg.gpu_pools),
                                                                monitor_labels(cfg) if cfg.observability.prometheus_operator else None,
                                                                holds_claim), on_cluster)
        # prometheus-adapter reads its vLLM rule from this ConfigMap (chart value rules.existing).
        if cfg.autoscaling.backend == "hpa" and any(m.autoscaled for m in spec.models):
            self.adapter_rules = kubernetes.register(adapter_rules(cfg), on_cluster)
        # The inference gateway: the stack's Gateway and body-based router, in the gateway controller's namespace.
        self.gateway = [kubernetes.register(m, on_cluster) for m in gateway_manifests(cfg)]

        self.teams = {team.name: TeamTenancy(f"team-{team.name}", TeamTenancyArgs(team, cfg, args.secret_values), on_cluster)
                      for team in spec.teams}
        issuer = self.cluster.identities[0].oidcs[0].issuer
        account = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self)).account_id
        oidc_arn = cfg.cluster.oidc_provider_arn or pulumi.Output.all(account, issuer).apply(
            lambda a: f"arn:aws:iam::{a[0]}:oidc-provider/{a[1].removeprefix('https://')}")
        oidc = ClusterOidc(issuer=issuer, provider_arn=oidc_arn)
        # What adds GPU nodes while `pulumi up` waits for the models' pods (docs/capacity.md).
        self.cluster_autoscaler = ClusterAutoscaler("cluster-autoscaler", ClusterAutoscalerArgs(
            cfg, oidc, account, {"vllm-fleet/cluster": cfg.cluster.name}), on_cluster) if autoscaled else None
        self.cache = model_cache("model-cache", ModelCacheArgs(
            stack=spec.stack, cluster_name=cfg.cluster.name, region=cfg.region, settings=cfg.model_cache, protect=cfg.tier == "prod",
            subnet_ids=cache_subnets(spec), vpc_id=vpc_id, cluster_security_group_id=cluster_sg,
            oidc=oidc, teams=spec.teams,
            namespaces={name: t.namespace for name, t in self.teams.items()}, platform_namespace=self.gpu_system.namespace,
            image=image(cfg)), on_cluster)

        platform: list[pulumi.Resource] = [*self.node_pools, self.gpu_system]
        if self.cluster_autoscaler is not None:
            platform.append(self.cluster_autoscaler)
        self.services: list[VllmService] = []
        for team in spec.teams:
            deps: list[pulumi.Resource] = [self.teams[team.name], *platform]
            if self.cache is not None and team.name in self.cache.claims:
                deps.append(self.cache.claims[team.name])
            for model in team.models:
                self.services.append(VllmService(f"{team.name}-{model.name}", VllmServiceArgs(model, cfg, oidc),
                                                 pulumi.ResourceOptions(parent=self, providers={"kubernetes": self.provider}, depends_on=deps)))
        self.register_outputs({"teams": [t.name for t in spec.teams], "models": [f"{m.team}/{m.name}" for m in spec.models]})
