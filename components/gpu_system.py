"""GpuSystem: the GPU system namespace, the NVIDIA device plugin (on pools whose AMI lacks it), the AWS EFA device
plugin (on pools with EFA) and the DCGM exporter (every GPU pool), from fleet.render.gpu_system."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.kubernetes import register
from fleet.render import gpu_system
from fleet.spec.stack import DevicePlugin, GpuPool


@dataclass(frozen=True)
class GpuSystemArgs:
    settings: DevicePlugin
    pools: tuple[GpuPool, ...]
    monitor_labels: dict[str, str] | None  # the Prometheus operator's CRDs are there: a ServiceMonitor with these labels
    protect_namespace: bool = False  # prod, when the namespace holds a model-cache claim (its deletion would delete the claim)


class GpuSystem(pulumi.ComponentResource):
    def __init__(self, name: str, args: GpuSystemArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("vllm-fleet:platform:GpuSystem", name, None, opts)
        needs_plugin = gpu_system.plugin_pools(list(args.pools))
        self.namespace = register(gpu_system.namespace(), pulumi.ResourceOptions(parent=self, protect=args.protect_namespace,
                                                                                 retain_on_delete=args.protect_namespace))
        after = pulumi.ResourceOptions(parent=self, depends_on=[self.namespace])
        self.device_plugin = [register(m, after) for m in gpu_system.device_plugin(args.settings, needs_plugin)] if needs_plugin else []
        self.dcgm_exporter = ([register(m, after) for m in gpu_system.dcgm_exporter(args.settings, list(args.pools), args.monitor_labels)]
                              if args.settings.dcgm_exporter else [])
        efa_pools = gpu_system.efa_pools(list(args.pools))
        self.efa_device_plugin = [register(m, after) for m in gpu_system.efa_device_plugin(args.settings, efa_pools)] if efa_pools else []
        self.register_outputs({"namespace": gpu_system.namespace()["metadata"]["name"]})
