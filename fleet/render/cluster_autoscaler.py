"""The Cluster Autoscaler (stack `node_autoscaler.kind: cluster-autoscaler`): its namespace, ServiceAccount, RBAC and
Deployment, the AWS auto-discovery flags, and the node-template tags a GPU group needs to scale from zero. Every fact —
release per Kubernetes minor, flags, RBAC, IAM actions, tag formats — comes from fleet/catalog/cluster_autoscaler.yaml,
which names where in kubernetes/autoscaler it was read."""

from __future__ import annotations

import json
from typing import Any

from fleet.catalog import InstanceType, cluster_autoscaler
from fleet.labels import GPU_RESOURCE, GPU_TAINT_KEY, MANAGED_BY, NONROOT_UID
from fleet.render import Manifest, meta
from fleet.render.platform_labels import pool_labels
from fleet.spec.stack import GpuPool, StackConfig

NAME = "cluster-autoscaler"
SERVICE_ACCOUNT = NAME
ROLE_ARN_ANNOTATION = "eks.amazonaws.com/role-arn"
RESOURCES = {"cpu": "100m", "memory": "600Mi"}   # the upstream example's requests and limits
# GPU nodes take longer than the 15-minute default to join and advertise their GPUs (an AL2023 NVIDIA node boots, the
# device plugin starts): CA would otherwise give up on the node and try again elsewhere.
MAX_NODE_PROVISION_TIME = "25m"
SA_TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
API_TOKEN_VOLUME = {"name": "api-token", "projected": {"defaultMode": 0o444, "sources": [
    {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}},
    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
    {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}}]}}


def installs(cfg: StackConfig) -> bool:
    return cfg.node_autoscaler.resolved_kind(list(cfg.gpu_pools)) == "cluster-autoscaler"


def discovers(pool: GpuPool) -> bool:
    """The managed node groups CA sizes: not a Capacity Block's (its size follows the block's schedule) nor Karpenter's."""
    return pool.provisioner == "managed" and pool.capacity_type != "capacity-block"


def release(kubernetes_version: str) -> str | None:
    releases: dict[str, str] = cluster_autoscaler()["releases"]
    return releases.get(kubernetes_version)


def image(cfg: StackConfig) -> str:
    if cfg.node_autoscaler.image:
        return cfg.node_autoscaler.image
    tag = release(cfg.kubernetes_version)
    assert tag is not None  # the loader refuses a minor without a release (fleet.spec.stack_rules)
    return f"{cluster_autoscaler()['repository']}:{tag}"


def image_tag(image_ref: str) -> str:
    name = image_ref.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.rsplit(":", 1)[1] if ":" in last else ""


def discovery_tags(cluster: str) -> list[str]:
    return [t.format(cluster=cluster) for t in cluster_autoscaler()["discovery_tags"]]


def args(cfg: StackConfig) -> list[str]:
    """Flags of the pinned release only (fleet/catalog/cluster_autoscaler.yaml lists each with its source)."""
    known = cluster_autoscaler()["flags"]
    out = ["--cloud-provider=aws", f"--namespace={cfg.node_autoscaler.namespace}",
           f"--node-group-auto-discovery=asg:tag={','.join(discovery_tags(cfg.cluster.name))}",
           # the pools' instance types differ in size, not in GPUs: balancing keeps a pool's zones even
           "--balance-similar-node-groups", "--expander=least-waste",
           # vLLM pods keep /dev/shm and caches in emptyDirs; nodes holding them may still be scaled down
           "--skip-nodes-with-local-storage=false", f"--max-node-provision-time={MAX_NODE_PROVISION_TIME}",
           "--address=:8085"]
    undefined = [a for a in out if a.removeprefix("--").split("=", 1)[0] not in known]
    assert not undefined, f"flags missing from fleet/catalog/cluster_autoscaler.yaml: {undefined}"
    return out


def node_template_tags(pool: GpuPool, instance: InstanceType) -> dict[str, str]:
    """ASG tags that tell CA what a node of an empty group would look like (labels its pods select, the GPU taint they
    tolerate, its GPUs), so it scales the group up from zero."""
    data = cluster_autoscaler()
    tags = {data["node_template_label_tag"].format(key=k): v for k, v in pool_labels(pool).items()}
    tags[data["node_template_taint_tag"].format(key=GPU_TAINT_KEY)] = "true:NoSchedule"
    tags[data["node_template_resource_tag"].format(name=GPU_RESOURCE)] = str(instance.gpus)
    return tags


def iam_policy(region: str, account: str, cluster: str) -> str:
    """The README's recommended policy for auto-discovery, with the two calls that change capacity limited to Auto
    Scaling groups tagged for this cluster."""
    iam = cluster_autoscaler()["iam"]
    tag_key = discovery_tags(cluster)[1]
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "Describe", "Effect": "Allow", "Action": list(iam["describe"]), "Resource": ["*"]},
        {"Sid": "ScaleThisClustersGroups", "Effect": "Allow", "Action": list(iam["scale"]),
         "Resource": [f"arn:aws:autoscaling:{region}:{account}:autoScalingGroup:*:autoScalingGroupName/*"],
         "Condition": {"StringEquals": {f"aws:ResourceTag/{tag_key}": "owned",
                                        "aws:ResourceTag/k8s.io/cluster-autoscaler/enabled": "true"}}}]})


def _labels() -> dict[str, str]:
    return {**MANAGED_BY, "app.kubernetes.io/name": NAME}


def manifests(cfg: StackConfig, role_arn: Any | None = None) -> list[Manifest]:
    """Namespace, ServiceAccount (annotated with its IRSA role), ClusterRole/Role and bindings, Deployment."""
    ns, labels = cfg.node_autoscaler.namespace, _labels()
    data = cluster_autoscaler()
    rbac = "rbac.authorization.k8s.io/v1"
    annotations = {ROLE_ARN_ANNOTATION: role_arn} if role_arn is not None else None
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(SERVICE_ACCOUNT, ns, labels, annotations)}
    health = data["health"]
    probe = {"httpGet": {"path": health["path"], "port": health["port"]}, "periodSeconds": 10, "timeoutSeconds": 5}
    container = {
        "name": NAME, "image": image(cfg), "imagePullPolicy": "IfNotPresent", "command": [data["command"]], "args": args(cfg),
        "env": [{"name": "AWS_REGION", "value": cfg.region}],
        "ports": [{"name": "http", "containerPort": health["port"], "protocol": "TCP"}],
        "readinessProbe": probe, "livenessProbe": {**probe, "initialDelaySeconds": 30, "failureThreshold": 6},
        "resources": {"requests": dict(RESOURCES), "limits": dict(RESOURCES)},
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "readOnlyRootFilesystem": True,
                            "runAsNonRoot": True, "runAsUser": NONROOT_UID},
        "volumeMounts": [{"name": "api-token", "mountPath": SA_TOKEN_DIR, "readOnly": True}],
    }
    select = {"app.kubernetes.io/name": NAME}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": meta(ns, labels={
            **labels, "pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "latest",
            "pod-security.kubernetes.io/warn": "restricted", "pod-security.kubernetes.io/audit": "restricted"})},
        account,
        {"apiVersion": rbac, "kind": "ClusterRole", "metadata": meta(NAME, labels=labels), "rules": data["cluster_rules"]},
        {"apiVersion": rbac, "kind": "ClusterRoleBinding", "metadata": meta(NAME, labels=labels),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": NAME},
         "subjects": [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": ns}]},
        {"apiVersion": rbac, "kind": "Role", "metadata": meta(NAME, ns, labels), "rules": data["namespace_rules"]},
        {"apiVersion": rbac, "kind": "RoleBinding", "metadata": meta(NAME, ns, labels),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": NAME},
         "subjects": [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": ns}]},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta(NAME, ns, labels),
         "spec": {"replicas": 1, "revisionHistoryLimit": 3, "selector": {"matchLabels": select},
                  "template": {"metadata": {"labels": {**labels, **select}},
                               "spec": {"serviceAccountName": SERVICE_ACCOUNT, "automountServiceAccountToken": False,
                                        "enableServiceLinks": False,
                                        "terminationGracePeriodSeconds": 30,
                                        "securityContext": {"runAsNonRoot": True, "runAsUser": NONROOT_UID, "runAsGroup": NONROOT_UID,
                                                            "fsGroup": NONROOT_UID, "seccompProfile": {"type": "RuntimeDefault"}},
                                        "containers": [container], "volumes": [API_TOKEN_VOLUME]}}}},
    ]
