"""ClusterAutoscaler: the Cluster Autoscaler for the stack's managed GPU node groups — its IAM role (IRSA or EKS Pod
Identity) with the upstream README's auto-discovery policy, its scaling calls limited to this cluster's Auto Scaling
groups, and the Kubernetes objects of fleet.render.cluster_autoscaler. Each pool's node-template tags live with its node
group (components.node_pools)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.iam import ClusterOidc, service_account_role
from components.kubernetes import register
from fleet.render import cluster_autoscaler as ca
from fleet.spec.stack import StackConfig


@dataclass(frozen=True)
class ClusterAutoscalerArgs:
    cfg: StackConfig
    oidc: ClusterOidc
    account_id: pulumi.Input[str]
    tags: dict[str, str]


def pod_identity_trust() -> str:
    """EKS Pod Identity: the pods.eks.amazonaws.com service assumes the role and tags the session
    (https://docs.aws.amazon.com/eks/latest/userguide/pod-id-role.html)."""
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "pods.eks.amazonaws.com"}, "Action": ["sts:AssumeRole", "sts:TagSession"]}]})


class ClusterAutoscaler(pulumi.ComponentResource):
    def __init__(self, name: str, args: ClusterAutoscalerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("vllm-fleet:platform:ClusterAutoscaler", name, None, opts)
        cfg = args.cfg
        settings = cfg.node_autoscaler
        child = pulumi.ResourceOptions(parent=self)
        if settings.identity == "irsa":
            self.role = service_account_role(f"{name}-role", args.oidc, settings.namespace, ca.SERVICE_ACCOUNT, args.tags, child)
        else:
            self.role = aws.iam.Role(f"{name}-role", assume_role_policy=pod_identity_trust(), tags=args.tags, opts=child)
        policy = aws.iam.RolePolicy(f"{name}-policy", role=self.role.id, policy=pulumi.Output.from_input(args.account_id).apply(
            lambda account: ca.iam_policy(cfg.region, account, cfg.cluster.name)), opts=child)
        after: list[pulumi.Resource] = [policy]
        if settings.identity == "pod-identity":
            after.append(aws.eks.PodIdentityAssociation(f"{name}-pod-identity", cluster_name=cfg.cluster.name, namespace=settings.namespace,
                                                        service_account=ca.SERVICE_ACCOUNT, role_arn=self.role.arn, tags=args.tags,
                                                        opts=child))
        objects = ca.manifests(cfg, self.role.arn if settings.identity == "irsa" else None)
        namespace = register(objects[0], child)
        self.objects = [namespace]
        for manifest in objects[1:]:
            depends = [namespace, *after] if manifest["kind"] == "Deployment" else [namespace]
            self.objects.append(register(manifest, pulumi.ResourceOptions(parent=self, depends_on=depends)))
        self.deployment = self.objects[-1]
        self.register_outputs({"role_arn": self.role.arn})
