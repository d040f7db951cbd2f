"""VllmService: the serving workload of one model (see fleet.render.workload for every field and why)."""

from __future__ import annotations

import pulumi

from components.kube import apply
from fleet.render.workload import model_manifests
from fleet.spec.loader import FleetSpec, ResolvedModel


class VllmService(pulumi.ComponentResource):
    def __init__(self, name: str, spec: FleetSpec, model: ResolvedModel,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("vllm-fleet:workload:VllmService", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.objects = [apply(m, child) for m in model_manifests(spec, model)]
        self.register_outputs({"model": model.name, "namespace": model.namespace})
