"""Turn a rendered manifest into the matching pulumi-kubernetes resource (typed class per kind)."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from fleet.render import Manifest

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
    ("storage.k8s.io/v1", "StorageClass"): k8s.storage.v1.StorageClass,
}

# Top-level manifest fields → constructor keyword (nested fields keep their camelCase wire names).
TOP_LEVEL = {
    "metadata": "metadata", "spec": "spec", "data": "data", "stringData": "string_data", "type": "type",
    "rules": "rules", "roleRef": "role_ref", "subjects": "subjects",
    "automountServiceAccountToken": "automount_service_account_token", "provisioner": "provisioner",
    "parameters": "parameters", "reclaimPolicy": "reclaim_policy", "volumeBindingMode": "volume_binding_mode",
    "mountOptions": "mount_options", "allowVolumeExpansion": "allow_volume_expansion",
}


def resource_name(manifest: Manifest) -> str:
    """Pulumi name: kind, namespace and name, unique in the stack and stable across runs."""
    md = manifest["metadata"]
    ns = md.get("namespace")
    return f"{manifest['kind'].lower()}-{ns + '-' if ns else ''}{md['name']}"


def apply(manifest: Manifest, opts: pulumi.ResourceOptions, name: str | None = None) -> pulumi.CustomResource:
    key = (manifest["apiVersion"], manifest["kind"])
    name = name or resource_name(manifest)
    cls = KINDS.get(key)
    if cls is None:
        return k8s.apiextensions.CustomResource(
            name, api_version=manifest["apiVersion"], kind=manifest["kind"], metadata=manifest["metadata"],
            spec=manifest.get("spec"), opts=opts)
    kwargs = {}
    for field, value in manifest.items():
        if field in ("apiVersion", "kind"):
            continue
        kwargs[TOP_LEVEL[field]] = value
    return cls(name, **kwargs, opts=opts)  # type: ignore[no-any-return]
