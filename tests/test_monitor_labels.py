"""ServiceMonitors and PrometheusRules carry the labels the cluster's Prometheus selects them by (kube-prometheus-stack:
`release: <its Helm release>`); without them nothing is scraped and the HPAs on vLLM's queue never scale."""

from __future__ import annotations

from pathlib import Path

from fleet.offline.plan import capture
from fleet.spec.load import load
from tests.conftest import ROOT, edit

MONITORING = ("kubernetes:monitoring.coreos.com/v1:ServiceMonitor", "kubernetes:monitoring.coreos.com/v1:PrometheusRule")


def labels_of(stack: str, root: Path) -> dict[str, dict[str, str]]:
    return {c.name: c.inputs["metadata"].get("labels") or {} for c in capture(load(stack, root)) if c.type in MONITORING}


def test_every_monitor_carries_kube_prometheus_stacks_release_label_by_default() -> None:
    monitors = labels_of("prod", ROOT)
    assert "servicemonitor-gpu-system-dcgm-exporter" in monitors and len(monitors) > 4
    assert all(labels.get("release") == "kube-prometheus-stack" for labels in monitors.values()), monitors


def test_monitor_labels_follow_the_stack(project: Path) -> None:
    edit(project / "stacks" / "Pulumi.prod.yaml", "  vllm-fleet:autoscaling:\n",
         "  vllm-fleet:observability:\n    monitor_labels: {release: monitoring, prometheus: main}\n  vllm-fleet:autoscaling:\n")
    monitors = labels_of("prod", project)
    assert all(labels.get("release") == "monitoring" and labels.get("prometheus") == "main" for labels in monitors.values())
    assert all(labels.get("app.kubernetes.io/managed-by") == "vllm-fleet" for labels in monitors.values())   # never overridden
