"""VllmService: the serving workload of one model (see fleet.render.workload for every field and why)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.kubernetes import register
from fleet.deploy_time import DeployTime, deploy_time
from fleet.render import Manifest
from fleet.render.workload import model_manifests
from fleet.spec.resolved import ResolvedModel
from fleet.spec.stack import StackConfig

# pulumi-kubernetes's grace before it gives up on a Job past its own activeDeadlineSeconds (Kubernetes fails the
# Job at the deadline and the provider reports that at once; this only covers a stuck API).
JOB_TIMEOUT_GRACE_SECONDS = 300


@dataclass(frozen=True)
class VllmServiceArgs:
    model: ResolvedModel
    platform: StackConfig


def custom_timeouts(manifest: Manifest, times: DeployTime) -> pulumi.CustomTimeouts | None:
    """Timeouts for the objects pulumi-kubernetes awaits longer than its 10-minute default could allow. A
    LeaderWorkerSet is a custom resource: the provider does not await it (docs/first-deploy.md)."""
    kind = manifest["kind"]
    if kind == "Job" and times.prefetch_timeout is not None:
        seconds = times.prefetch_timeout + JOB_TIMEOUT_GRACE_SECONDS
        return pulumi.CustomTimeouts(create=f"{seconds}s", update=f"{seconds}s")
    if kind == "Deployment":
        return pulumi.CustomTimeouts(create=f"{times.rollout_create_timeout}s", update=f"{times.rollout_update_timeout}s")
    return None


class VllmService(pulumi.ComponentResource):
    def __init__(self, name: str, args: VllmServiceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("vllm-fleet:workload:VllmService", name, None, opts)
        model = args.model
        times = deploy_time(args.platform, model)
        self.objects: list[pulumi.CustomResource] = []
        prefetch: list[pulumi.Resource] = []
        for manifest in model_manifests(args.platform, model):
            # The workload starts once the prefetch Job (awaited by the provider) has filled the cache.
            waits = manifest["kind"] in ("Deployment", "LeaderWorkerSet") and prefetch
            resource = register(manifest, pulumi.ResourceOptions(parent=self, depends_on=prefetch if waits else None,
                                                                 custom_timeouts=custom_timeouts(manifest, times)))
            if manifest["kind"] == "Job":
                prefetch = [resource]
            self.objects.append(resource)
        self.register_outputs({"model": model.name, "namespace": model.namespace})
