"""Per-team tenancy: namespace with Pod Security Admission, GPU quota, limits, RBAC, network policies."""

from __future__ import annotations

from typing import Any

from fleet.labels import GPU_RESOURCE, MANAGED_BY, MODEL_LABEL, ROLE_LABEL, TEAM_LABEL, VLLM_PORT
from fleet.pods import pod_resources
from fleet.render import Manifest, meta
from fleet.render.cache import PREFETCH_ROLE, has_cache, prefetches
from fleet.render.gateway import network_policies as gateway_policies
from fleet.render.gateway import picker_quota, team_routes
from fleet.render.smoke import SMOKE_ROLE
from fleet.spec.resolved import ResolvedTeam
from fleet.spec.stack import StackConfig

# Edit rights inside the team namespace, listed verb by verb (no `*`, policy A6).
TEAM_ROLE_RULES = [
    {"apiGroups": [""], "resources": ["pods", "pods/log", "services", "endpoints", "configmaps", "events",
                                      "persistentvolumeclaims"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["delete"]},
    {"apiGroups": ["apps"], "resources": ["deployments", "replicasets", "statefulsets"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["apps"], "resources": ["deployments/scale", "deployments"], "verbs": ["patch"]},
    {"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "list", "watch", "create", "delete"]},
    {"apiGroups": ["leaderworkerset.x-k8s.io"], "resources": ["leaderworkersets"], "verbs": ["get", "list", "watch"]},
]

TEAM_LIMIT_DEFAULTS = {"cpu": "500m", "memory": "512Mi"}
TEAM_LIMIT_MAX_DEFAULTS = {"cpu": "1", "memory": "1Gi"}
# Headroom in the quota beyond the models at max replicas: prefetch Jobs and debugging pods.
QUOTA_EXTRA_CPU = 4
QUOTA_EXTRA_MEMORY_GIB = 16


def namespace(team: ResolvedTeam) -> Manifest:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta(team.namespace, labels={
        **MANAGED_BY, TEAM_LABEL: team.name,
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
        "pod-security.kubernetes.io/warn": "restricted",
        "pod-security.kubernetes.io/audit": "restricted"})}


def resource_quota(team: ResolvedTeam) -> Manifest:
    cpu, memory = picker_quota(team)
    cpu += QUOTA_EXTRA_CPU
    memory += QUOTA_EXTRA_MEMORY_GIB
    for model in team.models:
        res = pod_resources(model)
        pods = model.max_replicas * model.nodes_per_replica
        cpu += res.cpu * pods
        memory += res.memory_gib * pods
    hard = {
        # Extended resources can only be quota'd by their `requests.` name; `limits.nvidia.com/gpu` is invalid.
        f"requests.{GPU_RESOURCE}": str(team.gpu_quota),
        "requests.cpu": str(cpu), "limits.cpu": str(cpu),
        "requests.memory": f"{memory}Gi", "limits.memory": f"{memory}Gi",
    }
    return {"apiVersion": "v1", "kind": "ResourceQuota",
            "metadata": meta("team-quota", team.namespace, {**MANAGED_BY, TEAM_LABEL: team.name}),
            "spec": {"hard": hard}}


def limit_range(team: ResolvedTeam) -> Manifest:
    return {"apiVersion": "v1", "kind": "LimitRange",
            "metadata": meta("team-defaults", team.namespace, {**MANAGED_BY, TEAM_LABEL: team.name}),
            "spec": {"limits": [{"type": "Container", "defaultRequest": dict(TEAM_LIMIT_DEFAULTS),
                                 "default": dict(TEAM_LIMIT_MAX_DEFAULTS)}]}}


def rbac(team: ResolvedTeam) -> list[Manifest]:
    labels = {**MANAGED_BY, TEAM_LABEL: team.name}
    return [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": meta("team-edit", team.namespace, labels), "rules": TEAM_ROLE_RULES},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": meta("team-edit", team.namespace, labels),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "team-edit"},
         "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": team.rbac_group}]},
    ]


def network_policies(cfg: StackConfig, team: ResolvedTeam) -> list[Manifest]:
    labels = {**MANAGED_BY, TEAM_LABEL: team.name}
    ns = team.namespace

    def policy(name: str, body: dict) -> Manifest:
        return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": meta(name, ns, labels), "spec": body}

    out = [
        policy("default-deny", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
        policy("allow-dns", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{
            "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
            "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]}),
        policy("allow-gateway", {"podSelector": {"matchExpressions": [{"key": MODEL_LABEL, "operator": "Exists"}]},
                                 "policyTypes": ["Ingress"], "ingress": [{
            "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": cfg.gateway.namespace}}}],
            "ports": [{"protocol": "TCP", "port": VLLM_PORT}]}]}),
    ]
    if cfg.observability.prometheus_operator:
        out.append(policy("allow-metrics-scrape", {
            "podSelector": {"matchExpressions": [{"key": MODEL_LABEL, "operator": "Exists"}]},
            "policyTypes": ["Ingress"], "ingress": [{
                "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
                "ports": [{"protocol": "TCP", "port": VLLM_PORT}]}]}))
    # HTTPS to the Hugging Face Hub: only the prefetch Jobs when a cache exists (serving pods run offline
    # from it); the serving pods themselves when there is no cache; nobody for an S3 cache staged outside.
    # Cache mounts need no rule here: the CSI node plugin mounts EFS/FSx/S3 from the node, outside the
    # pod's network namespace, so pod NetworkPolicies never see that traffic.
    hub_selector: dict[str, Any] | None
    if prefetches(cfg):
        hub_selector = {"matchLabels": {ROLE_LABEL: PREFETCH_ROLE}}
    elif not has_cache(cfg):
        hub_selector = {"matchExpressions": [{"key": MODEL_LABEL, "operator": "Exists"}]}
    else:
        hub_selector = None
    if hub_selector is not None:
        out.append(policy("allow-hf-egress", {
            "podSelector": hub_selector, "policyTypes": ["Egress"],
            "egress": [{"ports": [{"protocol": "TCP", "port": 443}]}]}))
    if cfg.smoke_tests and team.models:
        # The smoke-test Jobs (fleet.render.smoke) call the team's models through their Services.
        smoke = {"matchLabels": {ROLE_LABEL: SMOKE_ROLE}}
        serving = {"matchExpressions": [{"key": MODEL_LABEL, "operator": "Exists"}]}
        out.append(policy("allow-smoke-tests", {"podSelector": serving, "policyTypes": ["Ingress"], "ingress": [{
            "from": [{"podSelector": smoke}], "ports": [{"protocol": "TCP", "port": VLLM_PORT}]}]}))
        egress: list[dict[str, Any]] = [{"to": [{"podSelector": serving}], "ports": [{"protocol": "TCP", "port": VLLM_PORT}]}]
        if cfg.gateway.kind == "inference":   # and the team's endpoint, through the Gateway
            egress.append({"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": cfg.gateway.namespace}}}],
                           "ports": [{"protocol": "TCP", "port": 443}]})
        out.append(policy("smoke-tests-egress", {"podSelector": smoke, "policyTypes": ["Egress"], "egress": egress}))
    out += [policy(p["name"], p["spec"]) for p in gateway_policies(cfg, team)]
    for model in team.models:
        if model.multi_node:
            # Ray, NCCL and Gloo between the pods of one multi-node replica (ports are dynamic).
            sel = {"matchLabels": {MODEL_LABEL: model.name}}
            out.append(policy(f"{model.name}-group", {
                "podSelector": sel, "policyTypes": ["Ingress", "Egress"],
                "ingress": [{"from": [{"podSelector": sel}]}], "egress": [{"to": [{"podSelector": sel}]}]}))
    return out


def team_manifests(cfg: StackConfig, team: ResolvedTeam) -> list[Manifest]:
    return [namespace(team), resource_quota(team), limit_range(team), *rbac(team), *network_policies(cfg, team),
            *team_routes(cfg, team)]


__all__ = ["team_manifests"]
