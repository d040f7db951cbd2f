"""VllmService: the serving workload of one model (see fleet.render.workload for every field and why)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.kubernetes import register
from fleet.render.workload import model_manifests
from fleet.spec.resolved import ResolvedModel
from fleet.spec.stack import StackConfig


@dataclass(frozen=True)
class VllmServiceArgs:
    model: ResolvedModel
    platform: StackConfig


class VllmService(pulumi.ComponentResource):

    def __init__(self, name: str, args: VllmServiceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("vllm-fleet:workload:VllmService", name, None, opts)
        model = args.model
        self.objects = []
        prefetch: list[pulumi.Resource] = []
        for manifest in model_manifests(args.platform, model):
            # The workload starts once the prefetch Job (awaited by the provider) has filled the cache.
            waits = manifest["kind"] in ("Deployment", "LeaderWorkerSet")
            resource = register(manifest, pulumi.ResourceOptions(parent=self, depends_on=prefetch if waits and prefetch else None))
            if manifest["kind"] == "Job":
                prefetch = [resource]
            self.objects.append(resource)
        self.register_outputs({"model": model.name, "namespace": model.namespace})
