"""The inference gateway (stack gateway kind `inference`): the Gateway API Gateway of the stack, one OpenAI endpoint per
team routed on the request's `model` field, and per gateway-routed model an InferencePool with its endpoint picker (EPP).

The request path (docs/gateway.md): client → Gateway (TLS, `<team>.<suffix>`) → body-based router (copies the body's
`model` into X-Gateway-Model-Name) → the team's HTTPRoute matches that header → InferencePool → the gateway asks the
pool's EPP (ext_proc, gRPC) which pod to use, scored on prefix-cache affinity, queue depth and KV-cache use → the vLLM
pod, which checks the API key. Models with `routing: service` get a rule to their Service instead (round-robin).
"""

from __future__ import annotations

import hashlib
from typing import Any

import yaml

from fleet.labels import MANAGED_BY, TEAM_LABEL, VLLM_PORT
from fleet.render import Manifest, meta, restricted_container, restricted_pod
from fleet.render.observability import metric_name, monitor_labels
from fleet.spec.resolved import ResolvedModel, ResolvedTeam
from fleet.spec.stack import StackConfig

INFERENCE_POOL_LABEL = "vllm-fleet.io/inference-pool"   # every serving pod of a gateway-routed model (both P/D roles)
PD_ROLE_LABEL = "llm-d.ai/role"                         # prefill | decode: the P/D picker's filters select on it
MODEL_HEADER = "X-Gateway-Model-Name"                   # set by the body-based router (Inference Extension v1.0)
EPP_GRPC_PORT = 9002
EPP_HEALTH_PORT = 9003
EPP_METRICS_PORT = 9090
BBR_GRPC_PORT = 9004
BBR_HEALTH_PORT = 9005
BBR_NAME = "body-based-router"
EPP_COMPONENT = "endpoint-picker"
EPP_CPU, EPP_MEMORY_GIB = 2, 2
EPP_RESOURCES = {"cpu": str(EPP_CPU), "memory": f"{EPP_MEMORY_GIB}Gi"}
SIDECAR_RESOURCES = {"cpu": "500m", "memory": "512Mi"}
DECODE_VLLM_PORT = 8200                                 # vLLM behind the routing sidecar in decode pods
REQUEST_TIMEOUT = "600s"                                # long generations; the client's own timeout usually ends first
ROUTE_RULES_MAX = 16                                    # Gateway API: at most 16 rules per HTTPRoute

# The picker watches the API server: instead of the automounted token (policy D12), its container alone mounts an
# hour-long projected token where client-go's in-cluster config looks, with the cluster CA and its namespace.
SA_TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
API_TOKEN_VOLUME = {"name": "api-token", "projected": {"defaultMode": 0o444, "sources": [
    {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}},
    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
    {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}}]}}

# What the endpoint picker may read, in its own namespace only: the pool, its objectives and the pods it scores.
EPP_ROLE_RULES = [
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["inference.networking.k8s.io"], "resources": ["inferencepools"], "verbs": ["get", "list", "watch"]},
    # v1.3 watches InferenceModelRewrites too when the cluster serves their CRD (the release's CRD bundle does)
    {"apiGroups": ["inference.networking.x-k8s.io"], "resources": ["inferenceobjectives", "inferencemodelrewrites"],
     "verbs": ["get", "list", "watch"]},
]
# What the body-based router reads: the ConfigMaps labelled inference-gateway.k8s.io/managed in its own namespace
# (NAMESPACE narrows its cache to it; without it the cache lists every namespace, which a Role does not grant).
BBR_ROLE_RULES = [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]}]


def gateway_routed(model: ResolvedModel) -> bool:
    return model.routing == "gateway"


def owns_pool(model: ResolvedModel) -> bool:
    """The one workload of a pool that renders its pool, picker and objective (the decode role of a P/D model)."""
    return gateway_routed(model) and model.pd_role in (None, "decode")


def pool_pod_labels(model: ResolvedModel) -> dict[str, str]:
    if not gateway_routed(model):
        return {}
    labels = {INFERENCE_POOL_LABEL: model.pool_name}
    if model.pd_role is not None:
        labels[PD_ROLE_LABEL] = model.pd_role
    return labels


def epp_name(model: ResolvedModel) -> str:
    return f"{model.pool_name}-epp"


def _labels(model: ResolvedModel, component: str) -> dict[str, str]:
    return {**MANAGED_BY, TEAM_LABEL: model.team, "app.kubernetes.io/component": component,
            "app.kubernetes.io/instance": model.pool_name}


def inference_pool(model: ResolvedModel) -> Manifest:
    # FailOpen: while the picker restarts the gateway still reaches a pod of the pool (unscored) instead of failing.
    return {"apiVersion": "inference.networking.k8s.io/v1", "kind": "InferencePool",
            "metadata": meta(model.pool_name, model.namespace, _labels(model, "inference-pool")),
            "spec": {"selector": {"matchLabels": {INFERENCE_POOL_LABEL: model.pool_name}},
                     "targetPorts": [{"number": VLLM_PORT}],
                     "endpointPickerRef": {"kind": "Service", "name": epp_name(model), "port": {"number": EPP_GRPC_PORT},
                                           "failureMode": "FailOpen"}}}


def objective(model: ResolvedModel) -> Manifest | None:
    if model.spec.priority is None:
        return None
    return {"apiVersion": "inference.networking.x-k8s.io/v1alpha2", "kind": "InferenceObjective",
            "metadata": meta(model.pool_name, model.namespace, _labels(model, "inference-objective")),
            "spec": {"priority": model.spec.priority,
                     "poolRef": {"group": "inference.networking.k8s.io", "kind": "InferencePool", "name": model.pool_name}}}


def scheduling_config(model: ResolvedModel) -> dict[str, Any]:
    """The picker's plugins: prefix-cache affinity (keeps a conversation on the pod that holds its KV blocks), balanced
    against queue depth and KV-cache use. A P/D model gets llm-d's profile handler: a prefill pod and a decode pod per
    request, each chosen by the same scorers among its role."""
    scorers = [("prefix-cache-scorer", 3), ("queue-scorer", 2), ("kv-cache-utilization-scorer", 2)]
    plugins: list[dict[str, Any]] = [{"type": name} for name, _ in scorers] + [{"type": "max-score-picker"}]

    def weighted() -> list[dict[str, Any]]:
        return [{"pluginRef": name, "weight": weight} for name, weight in scorers] + [{"pluginRef": "max-score-picker"}]

    if model.pd_role is None:
        return {"apiVersion": "inference.networking.x-k8s.io/v1alpha1", "kind": "EndpointPickerConfig", "plugins": plugins,
                "schedulingProfiles": [{"name": "default", "plugins": weighted()}]}
    plugins = [{"type": "prefill-header-handler"}, {"type": "prefill-filter"}, {"type": "decode-filter"}, *plugins,
               {"type": "pd-profile-handler", "parameters": {"threshold": 0, "hashBlockSize": 64}}]
    return {"apiVersion": "inference.networking.x-k8s.io/v1alpha1", "kind": "EndpointPickerConfig", "plugins": plugins,
            "schedulingProfiles": [{"name": "prefill", "plugins": [{"pluginRef": "prefill-filter"}, *weighted()]},
                                   {"name": "decode", "plugins": [{"pluginRef": "decode-filter"}, *weighted()]}]}


def endpoint_picker(cfg: StackConfig, model: ResolvedModel) -> list[Manifest]:
    """The pool's EPP: ServiceAccount, a Role in the pool's namespace (never cluster-wide), its scheduling config,
    Deployment (limits, restricted security) and Service; for Istio a DestinationRule (the EPP serves TLS)."""
    name, ns, labels = epp_name(model), model.namespace, _labels(model, EPP_COMPONENT)
    select = {"app.kubernetes.io/component": EPP_COMPONENT, "app.kubernetes.io/instance": model.pool_name}
    config = yaml.safe_dump(scheduling_config(model), sort_keys=False)
    image = cfg.gateway.pd_scheduler_image if model.pd_role is not None else cfg.gateway.epp_image
    args = ["--pool-name", model.pool_name, "--pool-namespace", ns, "--pool-group", "inference.networking.k8s.io",
            "--config-file", "/config/epp.yaml", "--grpc-port", str(EPP_GRPC_PORT), "--grpc-health-port", str(EPP_HEALTH_PORT),
            "--metrics-port", str(EPP_METRICS_PORT),
            # The picker reads these from its pods' /metrics. Its v1.0.x defaults (gateway-api-inference-extension
            # pkg/epp/server/runserver.go, the runner llm-d's scheduler v0.3.0 embeds) include vllm:gpu_cache_usage_perc, which
            # vLLM no longer exports; the names come from the pinned vLLM release's table, whatever the picker's defaults.
            "--total-queued-requests-metric", metric_name(cfg, "vllm:num_requests_waiting"),
            "--kv-cache-usage-percentage-metric", metric_name(cfg, "vllm:kv_cache_usage_perc"),
            "--lora-info-metric", metric_name(cfg, "vllm:lora_requests_info"),
            # /metrics authenticated by TokenReview would need a ClusterRole (policy H3 forbids one); the network policy
            # admits only Prometheus's namespace to the metrics port. Both flags exist from v1.1.0 (docs/components.md).
            "--metrics-endpoint-auth=false", "--tracing=false", "--zap-encoder", "json", "--v", "1"]
    probe = {"grpc": {"port": EPP_HEALTH_PORT, "service": "inference-extension"}, "periodSeconds": 10, "timeoutSeconds": 5}
    container = {
        "name": "epp", "image": image, "imagePullPolicy": "IfNotPresent", "args": args,
        "ports": [{"name": "grpc", "containerPort": EPP_GRPC_PORT, "protocol": "TCP"},
                  {"name": "grpc-health", "containerPort": EPP_HEALTH_PORT, "protocol": "TCP"},
                  {"name": "metrics", "containerPort": EPP_METRICS_PORT, "protocol": "TCP"}],
        "readinessProbe": {**probe, "initialDelaySeconds": 5}, "livenessProbe": {**probe, "initialDelaySeconds": 15, "failureThreshold": 6},
        "resources": {"requests": dict(EPP_RESOURCES), "limits": dict(EPP_RESOURCES)},
        "securityContext": restricted_container(),
        "volumeMounts": [{"name": "config", "mountPath": "/config", "readOnly": True},
                         {"name": "api-token", "mountPath": SA_TOKEN_DIR, "readOnly": True}],
    }
    rbac = "rbac.authorization.k8s.io/v1"
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(name, ns, labels)},
        {"apiVersion": rbac, "kind": "Role", "metadata": meta(name, ns, labels), "rules": EPP_ROLE_RULES},
        {"apiVersion": rbac, "kind": "RoleBinding", "metadata": meta(name, ns, labels),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
         "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}]},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(name, ns, labels), "data": {"epp.yaml": config}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta(name, ns, labels),
         "spec": {"replicas": 1, "revisionHistoryLimit": 3, "selector": {"matchLabels": select},
                  "template": {"metadata": {"labels": {**labels, **select},
                                            # a changed scheduling config rolls the picker
                                            "annotations": {"vllm-fleet.io/config-sha256": hashlib.sha256(config.encode()).hexdigest()}},
                               "spec": {"serviceAccountName": name, "automountServiceAccountToken": False, "enableServiceLinks": False,
                                        "terminationGracePeriodSeconds": 30, "securityContext": restricted_pod(),
                                        "containers": [container],
                                        "volumes": [{"name": "config", "configMap": {"name": name}}, API_TOKEN_VOLUME]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": meta(name, ns, labels),
         "spec": {"type": "ClusterIP", "selector": select,
                  "ports": [{"name": "grpc", "port": EPP_GRPC_PORT, "targetPort": "grpc", "protocol": "TCP", "appProtocol": "http2"},
                            {"name": "metrics", "port": EPP_METRICS_PORT, "targetPort": "metrics", "protocol": "TCP"}]}},
        # Istio's gateway reaches the picker over TLS (the EPP's self-signed certificate, --secure-serving default).
        destination_rule(name, ns, labels),
        *([picker_service_monitor(name, ns, labels, monitor_labels(cfg))] if cfg.observability.prometheus_operator else []),
    ]


def destination_rule(name: str, ns: str, labels: dict[str, str]) -> Manifest:
    """TLS origination to a component that serves its self-signed certificate (the picker, the body-based router):
    Istio's Envoy otherwise speaks plaintext gRPC to a TLS port and every ext_proc call fails."""
    return {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule", "metadata": meta(name, ns, labels),
            "spec": {"host": f"{name}.{ns}.svc.cluster.local", "trafficPolicy": {"tls": {"mode": "SIMPLE", "insecureSkipVerify": True}}}}


def picker_service_monitor(name: str, ns: str, labels: dict[str, str], monitor: dict[str, str]) -> Manifest:
    """The picker's own metrics (pool KV-cache and queue averages, scheduler latency), as the release's chart scrapes
    them (config/charts/inferencepool/templates/epp-servicemonitor.yaml); `monitor`: the labels the cluster's Prometheus
    selects ServiceMonitors by (observability.monitor_labels)."""
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor", "metadata": meta(name, ns, {**monitor, **labels}),
            "spec": {"selector": {"matchLabels": labels}, "namespaceSelector": {"matchNames": [ns]},
                     "endpoints": [{"port": "metrics", "path": "/metrics", "interval": "15s"}]}}


def pool_manifests(cfg: StackConfig, model: ResolvedModel) -> list[Manifest]:
    """What a gateway-routed model adds to its workload (rendered once per pool)."""
    if not owns_pool(model):
        return []
    out = [inference_pool(model), *endpoint_picker(cfg, model)]
    obj = objective(model)
    return out + ([obj] if obj is not None else [])


def routed(model: ResolvedModel) -> bool:
    """The model has a rule on its team's route: its pool's (both roles of a P/D model share one), or its Service."""
    return owns_pool(model) or (model.routing == "service" and model.pd_role is None)


def gateway_service(cfg: StackConfig) -> str:
    """The in-cluster address of the Gateway's HTTPS listener: Istio's deployment of it serves it as `<name>-istio` in
    its namespace."""
    gw = cfg.gateway
    return f"{gw.gateway_name}-{gw.implementation}.{gw.namespace}.svc.cluster.local:443"


def gateway_target(cfg: StackConfig, model: ResolvedModel) -> tuple[str, str] | None:
    """(Gateway address, team host name) for a model the team's endpoint routes, so its smoke test goes through it."""
    if cfg.gateway.kind != "inference" or not routed(model):
        return None
    return gateway_service(cfg), f"{model.team}.{cfg.gateway.hostname_suffix}"


def _rule(model: ResolvedModel) -> dict[str, Any]:
    matches = [{"path": {"type": "PathPrefix", "value": "/v1"},
                "headers": [{"type": "Exact", "name": MODEL_HEADER, "value": served}]} for served in model.served_names]
    backend: dict[str, Any]
    if gateway_routed(model):
        backend = {"group": "inference.networking.k8s.io", "kind": "InferencePool", "name": model.pool_name}
    else:
        backend = {"kind": "Service", "name": model.name, "port": VLLM_PORT}
    return {"name": model.pool_name, "matches": matches, "backendRefs": [backend], "timeouts": {"request": REQUEST_TIMEOUT}}


def team_routes(cfg: StackConfig, team: ResolvedTeam) -> list[Manifest]:
    """The team's OpenAI endpoint `<team>.<suffix>`: one rule per model (only `/v1`, only its served names), in HTTPRoutes
    of at most 16 rules attached to the stack's Gateway."""
    gw = cfg.gateway
    if gw.kind != "inference":
        return []
    rules = [_rule(m) for m in team.models if routed(m)]
    chunks = [rules[i:i + ROUTE_RULES_MAX] for i in range(0, len(rules), ROUTE_RULES_MAX)]
    labels = {**MANAGED_BY, TEAM_LABEL: team.name}
    return [{"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
             "metadata": meta("openai" if i == 0 else f"openai-{i + 1}", team.namespace, labels),
             "spec": {"parentRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": gw.gateway_name,
                                      "namespace": gw.namespace, "sectionName": "https"}],
                      "hostnames": [f"{team.name}.{gw.hostname_suffix}"], "rules": chunk}}
            for i, chunk in enumerate(chunks)]


def gateway_manifests(cfg: StackConfig) -> list[Manifest]:
    """The stack's Gateway (TLS for `*.<suffix>`, routes only from team namespaces) and the body-based router the
    gateway calls before it picks a route."""
    gw = cfg.gateway
    if gw.kind != "inference":
        return []
    labels = {**MANAGED_BY, "app.kubernetes.io/component": "inference-gateway"}
    bbr_select = {"app.kubernetes.io/name": BBR_NAME}
    bbr_labels = {**MANAGED_BY, **bbr_select}
    probe = {"grpc": {"port": BBR_HEALTH_PORT}, "periodSeconds": 10, "timeoutSeconds": 5}
    # --streaming: the router handles the FULL_DUPLEX_STREAMED body the EnvoyFilter sends (as the release's chart runs it)
    bbr = {"name": "bbr", "image": gw.bbr_image, "imagePullPolicy": "IfNotPresent",
           "args": ["--grpc-port", str(BBR_GRPC_PORT), "--grpc-health-port", str(BBR_HEALTH_PORT), "--streaming"],
           "env": [{"name": "NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}],
           "ports": [{"name": "grpc", "containerPort": BBR_GRPC_PORT, "protocol": "TCP"},
                     {"name": "grpc-health", "containerPort": BBR_HEALTH_PORT, "protocol": "TCP"}],
           "readinessProbe": probe, "livenessProbe": {**probe, "failureThreshold": 6},
           "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
           "securityContext": restricted_container(),
           # the router's manager reads the in-cluster config at start: the token it needs, mounted in its container only
           "volumeMounts": [{"name": "api-token", "mountPath": SA_TOKEN_DIR, "readOnly": True}]}
    rbac = "rbac.authorization.k8s.io/v1"
    return [
        {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "metadata": meta(gw.gateway_name, gw.namespace, labels),
         "spec": {"gatewayClassName": gw.implementation, "listeners": [{
             "name": "https", "protocol": "HTTPS", "port": 443, "hostname": f"*.{gw.hostname_suffix}",
             "tls": {"mode": "Terminate", "certificateRefs": [{"kind": "Secret", "name": gw.tls_secret_name}]},
             "allowedRoutes": {"kinds": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"}],
                               "namespaces": {"from": "Selector", "selector": {
                                   "matchExpressions": [{"key": TEAM_LABEL, "operator": "Exists"}]}}}}]}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(BBR_NAME, gw.namespace, bbr_labels),
         "automountServiceAccountToken": False},
        {"apiVersion": rbac, "kind": "Role", "metadata": meta(BBR_NAME, gw.namespace, bbr_labels), "rules": BBR_ROLE_RULES},
        {"apiVersion": rbac, "kind": "RoleBinding", "metadata": meta(BBR_NAME, gw.namespace, bbr_labels),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": BBR_NAME},
         "subjects": [{"kind": "ServiceAccount", "name": BBR_NAME, "namespace": gw.namespace}]},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta(BBR_NAME, gw.namespace, bbr_labels),
         "spec": {"replicas": 2, "revisionHistoryLimit": 3, "selector": {"matchLabels": bbr_select},
                  "template": {"metadata": {"labels": bbr_labels},
                               "spec": {"serviceAccountName": BBR_NAME, "automountServiceAccountToken": False, "enableServiceLinks": False,
                                        "securityContext": restricted_pod(), "containers": [bbr], "volumes": [API_TOKEN_VOLUME],
                                        "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                                                                       "whenUnsatisfiable": "ScheduleAnyway",
                                                                       "labelSelector": {"matchLabels": bbr_select}}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": meta(BBR_NAME, gw.namespace, bbr_labels),
         "spec": {"type": "ClusterIP", "selector": bbr_select,
                  "ports": [{"name": "grpc", "port": BBR_GRPC_PORT, "targetPort": "grpc", "protocol": "TCP", "appProtocol": "http2"}]}},
        {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": meta(BBR_NAME, gw.namespace, bbr_labels),
         "spec": {"maxUnavailable": 1, "selector": {"matchLabels": bbr_select}}},
        # Istio: the router runs as an ext_proc filter of the Gateway's Envoy before the route is chosen (it clears the
        # route cache after setting the header). The body streams to it (FULL_DUPLEX_STREAMED with trailers, as the
        # release's chart sets it): BUFFERED would hold the whole prompt in Envoy's buffer and answer 413 above it.
        {"apiVersion": "networking.istio.io/v1alpha3", "kind": "EnvoyFilter", "metadata": meta(BBR_NAME, gw.namespace, bbr_labels),
         "spec": {"workloadSelector": {"labels": {"gateway.networking.k8s.io/gateway-name": gw.gateway_name}},
                  "configPatches": [{"applyTo": "HTTP_FILTER", "match": {"context": "GATEWAY", "listener": {"filterChain": {"filter": {
                      "name": "envoy.filters.network.http_connection_manager", "subFilter": {"name": "envoy.filters.http.router"}}}}},
                      "patch": {"operation": "INSERT_FIRST", "value": {"name": "envoy.filters.http.ext_proc", "typed_config": {
                          "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor",
                          "failure_mode_allow": False, "allow_mode_override": True,
                          "processing_mode": {"request_header_mode": "SEND", "response_header_mode": "SKIP", "request_body_mode": "FULL_DUPLEX_STREAMED",
                                              "response_body_mode": "NONE", "request_trailer_mode": "SEND", "response_trailer_mode": "SKIP"},
                          "grpc_service": {"envoy_grpc": {
                              "cluster_name": f"outbound|{BBR_GRPC_PORT}||{BBR_NAME}.{gw.namespace}.svc.cluster.local"}}}}}}]}},
        # the router always serves TLS (its self-signed certificate; no flag turns it off)
        destination_rule(BBR_NAME, gw.namespace, bbr_labels),
    ]


def network_policies(cfg: StackConfig, team: ResolvedTeam) -> list[dict[str, Any]]:
    """(name, spec) of the team's policies for its pickers and P/D pairs, on top of default-deny: the gateway reaches
    the pickers; a picker reads its pods' /metrics and talks to the API server; a P/D model's roles exchange KV blocks."""
    pooled = [m for m in team.models if owns_pool(m)]
    out: list[dict[str, Any]] = []
    if pooled:
        epp = {"matchLabels": {"app.kubernetes.io/component": EPP_COMPONENT}}
        serving = {"matchExpressions": [{"key": INFERENCE_POOL_LABEL, "operator": "Exists"}]}
        gateway_ns = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": cfg.gateway.namespace}}}
        out += [
            {"name": "allow-gateway-to-pickers", "spec": {"podSelector": epp, "policyTypes": ["Ingress"], "ingress": [
                {"from": [gateway_ns], "ports": [{"protocol": "TCP", "port": EPP_GRPC_PORT}]}]}},
            {"name": "allow-pickers-to-pods", "spec": {"podSelector": serving, "policyTypes": ["Ingress"], "ingress": [
                {"from": [{"podSelector": epp}], "ports": [{"protocol": "TCP", "port": VLLM_PORT}]}]}},
            # the API server's addresses are the cluster's, unknown here: HTTPS anywhere, nothing else
            {"name": "pickers-egress", "spec": {"podSelector": epp, "policyTypes": ["Egress"], "egress": [
                {"to": [{"podSelector": serving}], "ports": [{"protocol": "TCP", "port": VLLM_PORT}]},
                {"ports": [{"protocol": "TCP", "port": 443}]}]}},
        ]
        if cfg.observability.prometheus_operator:
            out.append({"name": "allow-metrics-scrape-pickers", "spec": {"podSelector": epp, "policyTypes": ["Ingress"], "ingress": [
                {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
                 "ports": [{"protocol": "TCP", "port": EPP_METRICS_PORT}]}]}})
    for model in pooled:
        if model.pd_role is not None:
            # NIXL's side channel and transfers, and the decode pod's sidecar calling the prefill pod, between the roles
            sel = {"matchLabels": {INFERENCE_POOL_LABEL: model.pool_name}}
            out.append({"name": f"{model.pool_name}-pd", "spec": {"podSelector": sel, "policyTypes": ["Ingress", "Egress"],
                                                                   "ingress": [{"from": [{"podSelector": sel}]}],
                                                                   "egress": [{"to": [{"podSelector": sel}]}]}})
    return out


def picker_quota(team: ResolvedTeam) -> tuple[int, int]:
    """CPU cores and GiB of memory the team's pickers take (its quota grows by them)."""
    pickers = sum(1 for m in team.models if owns_pool(m))
    return pickers * EPP_CPU, pickers * EPP_MEMORY_GIB
