"""IAM roles for Kubernetes service accounts (IRSA): trusted through the cluster's OIDC issuer, for one account."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws


@dataclass(frozen=True)
class ClusterOidc:
    issuer: pulumi.Input[str]              # https://oidc.eks.<region>.amazonaws.com/id/<id>
    provider_arn: pulumi.Input[str]


def irsa_trust_policy(oidc_provider_arn: str, issuer: str, namespace: str, service_account: str) -> str:
    host = issuer.removeprefix("https://")
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Federated": oidc_provider_arn}, "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {f"{host}:sub": f"system:serviceaccount:{namespace}:{service_account}",
                                       f"{host}:aud": "sts.amazonaws.com"}}}]})


def service_account_role(name: str, oidc: ClusterOidc, namespace: str, service_account: str, tags: dict[str, str],
                         opts: pulumi.ResourceOptions) -> aws.iam.Role:
    """A role only `namespace/service_account` can assume."""
    trust = pulumi.Output.all(oidc.provider_arn, oidc.issuer).apply(lambda a: irsa_trust_policy(a[0], a[1], namespace, service_account))
    return aws.iam.Role(name, assume_role_policy=trust, tags=tags, opts=opts)
