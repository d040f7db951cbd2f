"""Fleet: the whole stack — platform (node groups, device plugin), then per team tenancy and models."""

from __future__ import annotations

import pulumi

from components.platform import GpuNodeGroup, NvidiaDevicePlugin, kube_provider
from components.tenancy import TeamTenancy
from components.vllm_service import VllmService
from fleet.labels import SHIPS_DEVICE_PLUGIN
from fleet.spec.loader import FleetSpec


class Fleet(pulumi.ComponentResource):
    def __init__(self, name: str, spec: FleetSpec, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("vllm-fleet:index:Fleet", name, None, opts)
        cfg = spec.config
        self.provider = kube_provider("eks", cfg, pulumi.ResourceOptions(parent=self))
        k8s_opts = pulumi.ResourceOptions(parent=self, providers={"kubernetes": self.provider})

        self.node_groups = [GpuNodeGroup(f"pool-{pool.name}", cfg, pool, pulumi.ResourceOptions(parent=self))
                            for pool in cfg.gpu_pools]
        needs_plugin = [p for p in cfg.gpu_pools if p.ami_family not in SHIPS_DEVICE_PLUGIN]
        self.device_plugin = (NvidiaDevicePlugin("nvidia-device-plugin", cfg.device_plugin, needs_plugin, k8s_opts)
                              if needs_plugin else None)

        secrets = pulumi.Config("vllm-fleet").get_secret_object("secrets") or pulumi.Output.secret({})
        self.teams = []
        self.services = []
        for team in spec.teams:
            tenancy = TeamTenancy(f"team-{team.name}", spec, team, pulumi.Output.from_input(secrets), k8s_opts)
            self.teams.append(tenancy)
            deps = [tenancy, *self.node_groups] + ([self.device_plugin] if self.device_plugin else [])
            for model in team.models:
                self.services.append(VllmService(
                    f"{team.name}-{model.name}", spec, model,
                    pulumi.ResourceOptions(parent=self, providers={"kubernetes": self.provider}, depends_on=deps)))
        self.register_outputs({"teams": [t.name for t in spec.teams],
                               "models": [f"{m.team}/{m.name}" for m in spec.models]})
