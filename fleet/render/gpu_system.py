"""GPU system objects: the namespace, the NVIDIA device plugin, the AWS EFA device plugin and the DCGM exporter.

The DaemonSets mirror the vendors' published static manifests (k8s-device-plugin `nvidia-device-plugin.yml`,
dcgm-exporter `dcgm-exporter.yaml`, aws-efa-k8s-device-plugin), hardened where they allow it (own service account
without a token, RuntimeDefault seccomp, every capability dropped but what they need). What they still need that the
pod-security rules forbid (kubelet sockets on host paths, root, DCGM's SYS_ADMIN) is listed next to each, with the
reason: the policy pack exempts exactly these objects from exactly these rules (fleet.render.exemptions), never a
namespace by its name. Their images come from the stack and are judged like every other image (D15).
"""

from __future__ import annotations

import json

from fleet.labels import GPU_SYSTEM_NAMESPACE, GPU_TAINT_KEY, MANAGED_BY, POOL_LABEL, SHIPS_DEVICE_PLUGIN
from fleet.render import Manifest, meta
from fleet.spec.stack import DevicePlugin, GpuPool

DEVICE_PLUGIN_CONFIG_KEY = "config.yaml"
DCGM_PORT = 9400
SOCKETS = "/var/lib/kubelet/device-plugins"

# rule id → why the object needs what the rule forbids
_PLUGIN_NEEDS = {
    "D3": f"a device plugin registers with the kubelet through its socket directory {SOCKETS}, a host path by design",
    "D9": f"a device plugin registers with the kubelet through its socket directory {SOCKETS}, a host path by design",
    "D7": f"the kubelet's socket directory {SOCKETS} belongs to root; the plugin creates its socket there",
    "D11": "the vendor runs it with a writable root file system; a read-only one is not verified (advisory rule)",
    "E3": "a device plugin runs on the GPU nodes whose devices it advertises, without requesting a GPU itself",
}
DEVICE_PLUGIN_NEEDS = dict(_PLUGIN_NEEDS)
EFA_PLUGIN_NEEDS = {**_PLUGIN_NEEDS,
                    "D3": f"{_PLUGIN_NEEDS['D3']}; the EFA devices it advertises are the node's /dev/infiniband",
                    "D9": f"{_PLUGIN_NEEDS['D9']}; the EFA devices it advertises are the node's /dev/infiniband",
                    "D1": "the EFA devices are found in the node's network namespace (hostNetwork, as AWS's "
                                           "manifest runs it)"}
DCGM_NEEDS = {
    "D3": "DCGM maps GPU metrics to pods through the kubelet's pod-resources socket (/var/lib/kubelet/pod-resources), a host path",
    "D9": "DCGM maps GPU metrics to pods through the kubelet's pod-resources socket (/var/lib/kubelet/pod-resources), a host path",
    "D5": "DCGM's profiling counters (SM activity, tensor-core use) need CAP_SYS_ADMIN, as NVIDIA's manifest grants",
    "D6": "the API server refuses allowPrivilegeEscalation: false together with CAP_SYS_ADMIN",
    "D7": "DCGM reads the kubelet's root-owned pod-resources socket and the GPU devices as root",
    "D11": "DCGM writes its host engine state into the root file system (advisory rule)",
    "E3": "the exporter runs on every GPU node to read its GPUs, without requesting one (that would take it from vLLM)",
}


def plugin_pools(pools: list[GpuPool]) -> list[GpuPool]:
    """The pools whose node image does not ship the NVIDIA device plugin: the stack runs it there."""
    return [p for p in pools if p.ami_family not in SHIPS_DEVICE_PLUGIN]


def efa_pools(pools: list[GpuPool]) -> list[GpuPool]:
    return [p for p in pools if p.efa]


def service_account(name: str) -> Manifest:
    """A DaemonSet's own account, without an API token: none of these talks to the API server."""
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(name, GPU_SYSTEM_NAMESPACE, dict(MANAGED_BY)),
            "automountServiceAccountToken": False}


def _pod_identity(name: str) -> dict:
    return {"serviceAccountName": name, "automountServiceAccountToken": False,
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}}}


def namespace() -> Manifest:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta(GPU_SYSTEM_NAMESPACE, labels={
        **MANAGED_BY, "pod-security.kubernetes.io/enforce": "privileged",
        "pod-security.kubernetes.io/warn": "baseline"})}


def _on_pools(pools: list[GpuPool]) -> dict:
    return {
        "tolerations": [{"key": GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": POOL_LABEL, "operator": "In", "values": sorted(p.name for p in pools)}]}]}}},
    }


def device_plugin_config(settings: DevicePlugin) -> str:
    """The device plugin's config file (MIG strategy, optional time-slicing)."""
    cfg: dict = {"version": "v1", "flags": {"migStrategy": settings.mig_strategy, "failOnInitError": True}}
    ts = settings.time_slicing
    if ts.enabled:
        cfg["sharing"] = {"timeSlicing": {
            "renameByDefault": ts.rename_by_default,
            "failRequestsGreaterThanOne": ts.fail_requests_greater_than_one,
            "resources": [{"name": "nvidia.com/gpu", "replicas": ts.replicas}]}}
    return json.dumps(cfg, indent=2, sort_keys=True)


def device_plugin(settings: DevicePlugin, pools: list[GpuPool]) -> list[Manifest]:
    labels = {"app.kubernetes.io/name": "nvidia-device-plugin", **MANAGED_BY}
    config = {"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": meta("nvidia-device-plugin-config", GPU_SYSTEM_NAMESPACE, labels),
              "data": {DEVICE_PLUGIN_CONFIG_KEY: device_plugin_config(settings)}}
    ds = {
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": meta("nvidia-device-plugin", GPU_SYSTEM_NAMESPACE, labels),
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/name": "nvidia-device-plugin"}},
            "updateStrategy": {"type": "RollingUpdate"},
            "template": {"metadata": {"labels": labels}, "spec": {
                "priorityClassName": "system-node-critical",
                **_pod_identity("nvidia-device-plugin"),
                **_on_pools(pools),
                "containers": [{
                    "name": "nvidia-device-plugin-ctr",
                    "image": settings.image,
                    "args": ["--config-file", f"/etc/nvidia-device-plugin/{DEVICE_PLUGIN_CONFIG_KEY}"],
                    "env": [{"name": "FAIL_ON_INIT_ERROR", "value": "true"}],
                    "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                    "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "200m", "memory": "256Mi"}},
                    "volumeMounts": [
                        {"name": "device-plugin", "mountPath": "/var/lib/kubelet/device-plugins"},
                        {"name": "config", "mountPath": "/etc/nvidia-device-plugin", "readOnly": True}],
                }],
                "volumes": [
                    {"name": "device-plugin", "hostPath": {"path": "/var/lib/kubelet/device-plugins", "type": "Directory"}},
                    {"name": "config", "configMap": {"name": "nvidia-device-plugin-config"}}],
            }},
        },
    }
    return [service_account("nvidia-device-plugin"), config, ds]


def dcgm_exporter(settings: DevicePlugin, pools: list[GpuPool], monitor_labels: dict[str, str] | None) -> list[Manifest]:
    """`monitor_labels`: the labels the cluster's Prometheus selects ServiceMonitors by; None renders no ServiceMonitor."""
    labels = {"app.kubernetes.io/name": "dcgm-exporter", **MANAGED_BY}
    selector = {"app.kubernetes.io/name": "dcgm-exporter"}
    ds = {
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": meta("dcgm-exporter", GPU_SYSTEM_NAMESPACE, labels),
        "spec": {
            "selector": {"matchLabels": selector},
            "updateStrategy": {"type": "RollingUpdate"},
            "template": {"metadata": {"labels": labels}, "spec": {
                **_pod_identity("dcgm-exporter"),
                **_on_pools(pools),
                "containers": [{
                    "name": "dcgm-exporter",
                    "image": settings.dcgm_image,
                    "env": [{"name": "DCGM_EXPORTER_LISTEN", "value": f":{DCGM_PORT}"},
                            {"name": "DCGM_EXPORTER_KUBERNETES", "value": "true"}],
                    "ports": [{"name": "metrics", "containerPort": DCGM_PORT, "protocol": "TCP"}],
                    # SYS_ADMIN: DCGM profiling counters (as in NVIDIA's manifest).
                    "securityContext": {"capabilities": {"drop": ["ALL"], "add": ["SYS_ADMIN"]}, "runAsNonRoot": False, "runAsUser": 0},
                    "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}},
                    "readinessProbe": {"httpGet": {"path": "/health", "port": DCGM_PORT}, "periodSeconds": 10, "timeoutSeconds": 5},
                    "livenessProbe": {"httpGet": {"path": "/health", "port": DCGM_PORT}, "periodSeconds": 30, "timeoutSeconds": 5,
                                      "initialDelaySeconds": 45},
                    "volumeMounts": [{"name": "pod-gpu-resources", "mountPath": "/var/lib/kubelet/pod-resources", "readOnly": True}],
                }],
                "volumes": [{"name": "pod-gpu-resources", "hostPath": {"path": "/var/lib/kubelet/pod-resources"}}],
            }},
        },
    }
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": meta("dcgm-exporter", GPU_SYSTEM_NAMESPACE, labels),
           "spec": {"type": "ClusterIP", "selector": selector,
                    "ports": [{"name": "metrics", "port": DCGM_PORT, "targetPort": "metrics", "protocol": "TCP"}]}}
    out = [service_account("dcgm-exporter"), ds, svc]
    if monitor_labels is not None:
        out.append({"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
                    "metadata": meta("dcgm-exporter", GPU_SYSTEM_NAMESPACE, {**monitor_labels, **labels}),
                    "spec": {"selector": {"matchLabels": selector},
                             "endpoints": [{"port": "metrics", "interval": "15s", "path": "/metrics"}]}})
    return out


EFA_RESOURCE = "vpc.amazonaws.com/efa"
INFINIBAND = "/dev/infiniband"


def efa_device_plugin(settings: DevicePlugin, pools: list[GpuPool]) -> list[Manifest]:
    """AWS's EFA device plugin (aws-efa-k8s-device-plugin, as its published manifest runs it), only on the pools with
    EFA: it advertises `vpc.amazonaws.com/efa`, which multi-node replicas request; without it they never schedule."""
    labels = {"app.kubernetes.io/name": "aws-efa-k8s-device-plugin", **MANAGED_BY}
    return [service_account("aws-efa-k8s-device-plugin"), {
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": meta("aws-efa-k8s-device-plugin", GPU_SYSTEM_NAMESPACE, labels),
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/name": "aws-efa-k8s-device-plugin"}},
            "updateStrategy": {"type": "RollingUpdate"},
            "template": {"metadata": {"labels": labels}, "spec": {
                "priorityClassName": "system-node-critical",
                # The plugin finds the EFA devices of the node's network namespace.
                "hostNetwork": True,
                **_pod_identity("aws-efa-k8s-device-plugin"),
                **_on_pools(pools),
                "containers": [{
                    "name": "aws-efa-k8s-device-plugin",
                    "image": settings.efa_image,
                    "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                    "resources": {"requests": {"cpu": "10m", "memory": "20Mi"}, "limits": {"cpu": "100m", "memory": "64Mi"}},
                    # The EFA devices it advertises live under /dev/infiniband (mounted as the chart of the pinned
                    # release does: aws/eks-charts stable/aws-efa-k8s-device-plugin); without them it finds none.
                    "volumeMounts": [{"name": "device-plugin", "mountPath": "/var/lib/kubelet/device-plugins"},
                                     {"name": "infiniband", "mountPath": INFINIBAND}],
                }],
                "volumes": [{"name": "device-plugin", "hostPath": {"path": "/var/lib/kubelet/device-plugins", "type": "Directory"}},
                            {"name": "infiniband", "hostPath": {"path": INFINIBAND}}],
            }},
        },
    }]
