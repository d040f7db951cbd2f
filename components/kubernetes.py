"""Kubernetes objects as pulumi-kubernetes resources: each rendered manifest (fleet.render, the wire form the API
server and the policy pack see) is registered through its typed class, chosen by (apiVersion, kind); custom
resources (LeaderWorkerSet, ScaledObject, ServiceMonitor, NodePool…) through apiextensions.CustomResource."""

from __future__ import annotations

import json
import re
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from fleet.render import Manifest
from fleet.render.names import resource_name

KINDS: dict[tuple[str, str], Any] = {
    ("v1", "Namespace"): k8s.core.v1.Namespace,
    ("v1", "ResourceQuota"): k8s.core.v1.ResourceQuota,
    ("v1", "LimitRange"): k8s.core.v1.LimitRange,
    ("v1", "ServiceAccount"): k8s.core.v1.ServiceAccount,
    ("v1", "Service"): k8s.core.v1.Service,
    ("v1", "ConfigMap"): k8s.core.v1.ConfigMap,
    ("v1", "Secret"): k8s.core.v1.Secret,
    ("v1", "PersistentVolume"): k8s.core.v1.PersistentVolume,
    ("v1", "PersistentVolumeClaim"): k8s.core.v1.PersistentVolumeClaim,
    ("apps/v1", "Deployment"): k8s.apps.v1.Deployment,
    ("apps/v1", "DaemonSet"): k8s.apps.v1.DaemonSet,
    ("batch/v1", "Job"): k8s.batch.v1.Job,
    ("policy/v1", "PodDisruptionBudget"): k8s.policy.v1.PodDisruptionBudget,
    ("autoscaling/v2", "HorizontalPodAutoscaler"): k8s.autoscaling.v2.HorizontalPodAutoscaler,
    ("networking.k8s.io/v1", "NetworkPolicy"): k8s.networking.v1.NetworkPolicy,
    ("networking.k8s.io/v1", "Ingress"): k8s.networking.v1.Ingress,
    ("rbac.authorization.k8s.io/v1", "Role"): k8s.rbac.v1.Role,
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): k8s.rbac.v1.RoleBinding,
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): k8s.rbac.v1.ClusterRole,
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): k8s.rbac.v1.ClusterRoleBinding,
    ("storage.k8s.io/v1", "StorageClass"): k8s.storage.v1.StorageClass,
}


def _keyword(field: str) -> str:
    """A top-level manifest field as the typed class's keyword (`stringData` → `string_data`); nested fields keep
    their wire names."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", field).lower()


def register(manifest: Manifest, opts: pulumi.ResourceOptions, name: str | None = None) -> pulumi.CustomResource:
    """The manifest as its pulumi-kubernetes resource (the engine then applies it server-side)."""
    api_version, kind = manifest["apiVersion"], manifest["kind"]
    name = name or resource_name(manifest)
    cls = KINDS.get((api_version, kind))
    if cls is None:
        extra = set(manifest) - {"apiVersion", "kind", "metadata", "spec"}
        if extra:
            raise ValueError(f"{kind}: a custom resource carries only metadata and spec, not {', '.join(sorted(extra))}")
        return k8s.apiextensions.CustomResource(name, api_version=api_version, kind=kind, metadata=manifest["metadata"],
                                                spec=manifest.get("spec"), opts=opts)
    fields = {_keyword(k): v for k, v in manifest.items() if k not in ("apiVersion", "kind")}
    return cls(name, **fields, opts=opts)  # type: ignore[no-any-return]


def provider(name: str, cluster_name: str, region: str, endpoint: pulumi.Input[str], certificate_authority: pulumi.Input[str],
             opts: pulumi.ResourceOptions) -> k8s.Provider:
    """A Kubernetes provider for an EKS cluster (token from `aws eks get-token`), applying server-side."""
    def kubeconfig(args: list[str]) -> str:
        server, ca = args
        return json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "eks",
            "clusters": [{"name": "eks", "cluster": {"server": server, "certificate-authority-data": ca}}],
            "contexts": [{"name": "eks", "context": {"cluster": "eks", "user": "eks"}}],
            "users": [{"name": "eks", "user": {"exec": {
                "apiVersion": "client.authentication.k8s.io/v1beta1", "command": "aws",
                "args": ["eks", "get-token", "--cluster-name", cluster_name, "--region", region]}}}],
        })

    config = pulumi.Output.all(endpoint, certificate_authority).apply(kubeconfig)
    return k8s.Provider(name, kubeconfig=config, enable_server_side_apply=True, opts=opts)
