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
        self.objects: list[pulumi.Resource] = []
        job: pulumi.Resource | None = None
        for manifest in model_manifests(spec, model):
            # pulumi-kubernetes waits for a Job to complete: the workload starts once the weights are cached.
            waits = manifest["kind"] in ("Deployment", "LeaderWorkerSet")
            resource = apply(manifest, pulumi.ResourceOptions(parent=self, depends_on=[job] if job is not None and waits else None))
            if manifest["kind"] == "Job":
                job = resource
            self.objects.append(resource)
        self.register_outputs({"model": model.name, "namespace": model.namespace})
