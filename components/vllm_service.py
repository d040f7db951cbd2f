"""VllmService: the serving workload of one model (see fleet.render.workload for every field and why)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.iam import ClusterOidc, service_account_role
from components.kubernetes import register
from fleet.deploy_time import DeployTime, deploy_time
from fleet.labels import ROLE_LABEL
from fleet.render import Manifest
from fleet.render.cache import PREFETCH_ROLE
from fleet.render.smoke import SMOKE_ROLE
from fleet.render.workload import model_manifests
from fleet.spec.resolved import ResolvedModel
from fleet.spec.s3 import parse_s3_prefix
from fleet.spec.stack import StackConfig

# pulumi-kubernetes's grace before it gives up on a Job past its own activeDeadlineSeconds (Kubernetes fails the
# Job at the deadline and the provider reports that at once; this only covers a stuck API).
JOB_TIMEOUT_GRACE_SECONDS = 300
WORKLOADS = ("Deployment", "LeaderWorkerSet")


@dataclass(frozen=True)
class VllmServiceArgs:
    model: ResolvedModel
    platform: StackConfig
    oidc: ClusterOidc | None = None      # for the IAM role of a model that reads adapters from S3


def role_of(manifest: Manifest) -> str | None:
    return (manifest["metadata"].get("labels") or {}).get(ROLE_LABEL)


def serves(manifest: Manifest, model: ResolvedModel) -> bool:
    """The model's own serving workload (not its endpoint picker's Deployment)."""
    return manifest["kind"] in WORKLOADS and manifest["metadata"]["name"] == model.name


def custom_timeouts(manifest: Manifest, model: ResolvedModel, times: DeployTime) -> pulumi.CustomTimeouts | None:
    """Timeouts for the objects pulumi-kubernetes awaits longer than its 10-minute default could allow. A
    LeaderWorkerSet is a custom resource: the provider does not await it (its smoke test does; docs/first-deploy.md)."""
    if manifest["kind"] == "Job":
        seconds = int(manifest["spec"]["activeDeadlineSeconds"]) + JOB_TIMEOUT_GRACE_SECONDS
        return pulumi.CustomTimeouts(create=f"{seconds}s", update=f"{seconds}s")
    if manifest["kind"] == "Deployment" and serves(manifest, model):
        return pulumi.CustomTimeouts(create=f"{times.rollout_create_timeout}s", update=f"{times.rollout_update_timeout}s")
    return None


def s3_adapters(model: ResolvedModel) -> list[str]:
    return [m.path for m in (model.spec.lora.modules if model.spec.lora is not None else []) if m.path.startswith("s3://")]


class VllmService(pulumi.ComponentResource):
    def __init__(self, name: str, args: VllmServiceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("vllm-fleet:workload:VllmService", name, None, opts)
        model = args.model
        times = deploy_time(args.platform, model)
        role_arn = self._adapter_reader(name, args).arn if s3_adapters(model) and args.oidc is not None else None
        self.objects: list[pulumi.CustomResource] = []
        after: dict[str, list[pulumi.Resource]] = {"prefetch": [], "workload": []}
        for manifest in model_manifests(args.platform, model, role_arn):
            # The workload starts once the prefetch Job (awaited by the provider) has filled the cache; the smoke
            # test runs once the workload is ready.
            role, workload = role_of(manifest), serves(manifest, model)
            depends = after["prefetch"] if workload else after["workload"] if role == SMOKE_ROLE else []
            resource = register(manifest, pulumi.ResourceOptions(parent=self, depends_on=depends or None,
                                                                 custom_timeouts=custom_timeouts(manifest, model, times)))
            if role == PREFETCH_ROLE:
                after["prefetch"] = [resource]
            elif workload:
                after["workload"] = [resource]
            self.objects.append(resource)
        self.register_outputs({"model": model.name, "namespace": model.namespace})

    def _adapter_reader(self, name: str, args: VllmServiceArgs) -> aws.iam.Role:
        """The role the model's service account assumes to copy its adapters from S3: read-only, those prefixes only."""
        assert args.oidc is not None
        model = args.model
        tags = {"vllm-fleet/team": model.team, "vllm-fleet/model": model.name}
        role = service_account_role(f"{name}-adapters", args.oidc, model.namespace, model.name, tags, pulumi.ResourceOptions(parent=self))
        statements = []
        for uri in s3_adapters(model):
            # The adapter's own prefix, ending with '/' (within what stacks/tenancy.yaml grants the team, checked by the
            # loader): `bucket/prefix/*`, never the bucket nor a sibling prefix that merely starts the same.
            prefix = parse_s3_prefix(uri)
            statements.append({"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": [prefix.bucket_arn],
                               "Condition": {"StringLike": {"s3:prefix": [prefix.key, f"{prefix.key}*"]}}})
            statements.append({"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": [prefix.object_arn]})
        aws.iam.RolePolicy(f"{name}-adapters-read", role=role.id, policy=json.dumps({"Version": "2012-10-17", "Statement": statements}),
                           opts=pulumi.ResourceOptions(parent=self))
        return role
