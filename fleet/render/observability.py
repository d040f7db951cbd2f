"""Metrics, alerts, dashboards and autoscaler plumbing for the vLLM workloads (names from the pinned vLLM's table)."""

from __future__ import annotations

import json
from typing import Any

import yaml

from fleet.labels import MANAGED_BY, TEAM_LABEL
from fleet.render import Manifest, meta
from fleet.spec.resolved import ResolvedModel, ResolvedTeam
from fleet.spec.stack import StackConfig
from fleet.vllm.flags import metric

QUEUE_ALERT_DEPTH = 50
KV_SATURATION = 0.95


def metric_name(cfg: StackConfig, name: str) -> str:
    return metric(name, cfg.vllm.version)


def _selector(model: ResolvedModel) -> str:
    return f'namespace="{model.namespace}",service="{model.name}"'


def monitor_labels(cfg: StackConfig) -> dict[str, str]:
    """What the cluster's Prometheus selects ServiceMonitors, PodMonitors and PrometheusRules by (observability.monitor_labels)."""
    return dict(cfg.observability.monitor_labels)


def service_monitor(cfg: StackConfig, model: ResolvedModel, selector: dict[str, str]) -> Manifest:
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
            "metadata": meta(model.name, model.namespace, {**monitor_labels(cfg), **MANAGED_BY, TEAM_LABEL: model.team}),
            "spec": {"selector": {"matchLabels": selector},
                     "endpoints": [{"port": "http", "path": "/metrics", "interval": "15s"}]}}


def prometheus_rule(cfg: StackConfig, model: ResolvedModel) -> Manifest:
    sel = _selector(model)
    labels = {"team": model.team, "model": model.name}
    rules = [
        {"alert": "VllmQueueGrowing", "for": "10m", "labels": {**labels, "severity": "warning"},
         "expr": f"sum({metric_name(cfg, 'vllm:num_requests_waiting')}{{{sel}}}) > {QUEUE_ALERT_DEPTH}",
         "annotations": {"summary": f"{model.team}/{model.name}: more than {QUEUE_ALERT_DEPTH} requests waiting for 10 minutes"}},
        {"alert": "VllmKvCacheSaturated", "for": "10m", "labels": {**labels, "severity": "warning"},
         "expr": f"max({metric_name(cfg, 'vllm:kv_cache_usage_perc')}{{{sel}}}) > {KV_SATURATION}",
         "annotations": {"summary": f"{model.team}/{model.name}: KV cache above {KV_SATURATION:.0%} for 10 minutes"}},
        # Counters are exported with the `_total` suffix.
        {"alert": "VllmPreempting", "for": "15m", "labels": {**labels, "severity": "warning"},
         "expr": f"sum(rate({metric_name(cfg, 'vllm:num_preemptions')}_total{{{sel}}}[5m])) > 0",
         "annotations": {"summary": f"{model.team}/{model.name}: requests are being preempted (KV cache too small)"}},
        {"alert": "VllmNoReadyReplicas", "for": "5m", "labels": {**labels, "severity": "critical"},
         "expr": f"(sum(up{{{sel}}}) or vector(0)) == 0",
         "annotations": {"summary": f"{model.team}/{model.name}: no replica is serving"}},
    ]
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
            "metadata": meta(f"{model.name}-alerts", model.namespace, {**monitor_labels(cfg), **MANAGED_BY, TEAM_LABEL: model.team}),
            "spec": {"groups": [{"name": f"vllm-{model.team}-{model.name}", "rules": rules}]}}


def dashboard(cfg: StackConfig, team: ResolvedTeam) -> Manifest:
    """A Grafana dashboard per team (picked up by the Grafana sidecar through the grafana_dashboard label)."""
    ns = f'namespace="{team.namespace}"'

    def panel(i: int, title: str, expr: str, unit: str = "short") -> dict[str, Any]:
        return {"id": i, "type": "timeseries", "title": title, "gridPos": {"h": 8, "w": 12, "x": (i % 2) * 12, "y": (i // 2) * 8},
                "fieldConfig": {"defaults": {"unit": unit}}, "targets": [{"expr": expr, "legendFormat": "{{service}}"}]}

    ttft = metric_name(cfg, "vllm:time_to_first_token_seconds")
    itl = metric_name(cfg, "vllm:inter_token_latency_seconds")
    hits, queries = metric_name(cfg, "vllm:prefix_cache_hits"), metric_name(cfg, "vllm:prefix_cache_queries")
    panels = [
        panel(0, "Requests waiting", f"sum by (service) ({metric_name(cfg, 'vllm:num_requests_waiting')}{{{ns}}})"),
        panel(1, "Requests running", f"sum by (service) ({metric_name(cfg, 'vllm:num_requests_running')}{{{ns}}})"),
        panel(2, "KV cache usage", f"max by (service) ({metric_name(cfg, 'vllm:kv_cache_usage_perc')}{{{ns}}})", "percentunit"),
        panel(3, "Time to first token p95", f"histogram_quantile(0.95, sum by (service, le) (rate({ttft}_bucket{{{ns}}}[5m])))", "s"),
        panel(4, "Inter-token latency p95", f"histogram_quantile(0.95, sum by (service, le) (rate({itl}_bucket{{{ns}}}[5m])))", "s"),
        panel(5, "Prefix cache hit rate",
              f"sum by (service) (rate({hits}_total{{{ns}}}[5m])) / sum by (service) (rate({queries}_total{{{ns}}}[5m]))",
              "percentunit"),
        panel(6, "Preemptions", f"sum by (service) (rate({metric_name(cfg, 'vllm:num_preemptions')}_total{{{ns}}}[5m]))"),
    ]
    board = {"title": f"vLLM — {team.name}", "uid": f"vllm-fleet-{team.name}"[:40], "schemaVersion": 39,
             "tags": ["vllm", "vllm-fleet"], "time": {"from": "now-6h", "to": "now"}, "panels": panels}
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": meta(f"vllm-dashboard-{team.name}", team.namespace,
                             {**MANAGED_BY, TEAM_LABEL: team.name, "grafana_dashboard": "1"}),
            "data": {f"vllm-{team.name}.json": json.dumps(board, indent=2, sort_keys=True)}}


def adapter_rules(cfg: StackConfig) -> Manifest:
    """prometheus-adapter rule exposing the queue per pod to the custom metrics API. Kubernetes metric names
    cannot contain ':', so `vllm:num_requests_waiting` is served as `vllm_num_requests_waiting`."""
    name = metric_name(cfg, "vllm:num_requests_waiting")
    rules = {"rules": [{
        "seriesQuery": f'{name}{{namespace!="",pod!=""}}',
        "resources": {"overrides": {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}},
        "name": {"matches": f"^{name}$", "as": name.replace(":", "_")},
        "metricsQuery": "sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)",
    }]}
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": meta("vllm-fleet-adapter-rules", cfg.autoscaling.adapter_namespace, dict(MANAGED_BY)),
            "data": {"config.yaml": yaml.safe_dump(rules, sort_keys=False)}}


def ingress(cfg: StackConfig, model: ResolvedModel) -> Manifest | None:
    gw = cfg.gateway
    if gw.kind != "ingress":
        return None
    host = f"{model.name}.{model.team}.{gw.hostname_suffix}"
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": meta(model.name, model.namespace, {**MANAGED_BY, TEAM_LABEL: model.team}),
            "spec": {"ingressClassName": gw.ingress_class,
                     "tls": [{"hosts": [host], "secretName": gw.tls_secret_name}],
                     # Only the OpenAI API: /metrics, /health and the admin endpoints stay inside the cluster.
                     "rules": [{"host": host, "http": {"paths": [{"path": "/v1", "pathType": "Prefix", "backend": {
                         "service": {"name": model.name, "port": {"name": "http"}}}}]}}]}}
