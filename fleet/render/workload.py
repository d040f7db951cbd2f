"""The serving workload of one model: ServiceAccount, Deployment or LeaderWorkerSet, Service, PDB, HPA."""

from __future__ import annotations

import shlex
from typing import Any

from fleet.deploy_time import STARTUP_PROBE_PERIOD, deploy_time, pod_read_gib
from fleet.labels import (
    GPU_RESOURCE,
    GPU_TAINT_KEY,
    MANAGED_BY,
    MODEL_LABEL,
    NONROOT_UID,
    POOL_LABEL,
    TEAM_LABEL,
    VLLM_PORT,
)
from fleet.pods import PRESTOP_SECONDS, SCALE_UP_WINDOW, SHUTDOWN_TIMEOUT_SECONDS, pod_resources, rollout, scale_down_window, termination_grace_seconds
from fleet.render import Manifest, meta
from fleet.render.cache import CACHE_CLAIM, CACHE_MOUNT, HF_HOME_ON_CACHE, adapter_root, has_cache, prefetch_job, prefetches
from fleet.render.gateway import DECODE_VLLM_PORT, SIDECAR_RESOURCES, gateway_target, pool_manifests, pool_pod_labels
from fleet.render.gpu_system import EFA_RESOURCE
from fleet.render.observability import ingress, prometheus_rule, service_monitor
from fleet.render.smoke import smoke_job
from fleet.spec.resolved import ResolvedModel
from fleet.spec.stack import StackConfig
from fleet.spec.team import SecretRef
from fleet.versions import parse_version
from fleet.vllm.compiler import compile_args
from fleet.vllm.flags import metric as vllm_metric

QUEUE_METRIC = "vllm:num_requests_waiting"
HF_TOKEN_DIR = "/var/run/secrets/huggingface"
SCRATCH = "/scratch"
# Shipped in the vLLM image for Ray-based multi-node serving (vLLM docs, LeaderWorkerSet example).
MULTI_NODE_SCRIPT = "/vllm-workspace/examples/online_serving/multi-node-serving.sh"
RAY_PORT = 6379
NIXL_SIDE_CHANNEL_PORT = 5600


def uses_efa(model: ResolvedModel) -> bool:
    """A replica spanning nodes of an EFA pool: NCCL between its pods goes over EFA."""
    return model.multi_node and model.pool.efa and model.instance.efa


def image(cfg: StackConfig, model: ResolvedModel | None = None) -> str:
    """The vLLM image; the stack's EFA-capable one (libfabric + aws-ofi-nccl) for pods that use EFA."""
    v = cfg.vllm
    if model is not None and uses_efa(model) and v.efa is not None:
        ref = f"{v.efa.repository}:{v.efa.tag or f'v{v.version}'}"
        return f"{ref}@{v.efa.digest}" if v.efa.digest else ref
    return f"{v.repository}:v{v.version}@{v.digest}" if v.digest else f"{v.repository}:v{v.version}"




def labels(model: ResolvedModel) -> dict[str, str]:
    return {"app.kubernetes.io/name": "vllm", "app.kubernetes.io/instance": model.name,
            "app.kubernetes.io/component": "server", **MANAGED_BY, TEAM_LABEL: model.team, MODEL_LABEL: model.name}


def pod_labels(model: ResolvedModel) -> dict[str, str]:
    """The serving pods' labels: the model's, and the InferencePool's (and P/D role) for a gateway-routed model."""
    return {**labels(model), **pool_pod_labels(model)}


def behind_sidecar(model: ResolvedModel) -> bool:
    """A decode pod: the routing sidecar takes the pod's HTTP port and vLLM listens behind it."""
    return model.pd_role == "decode"


def selector(model: ResolvedModel) -> dict[str, str]:
    return {TEAM_LABEL: model.team, MODEL_LABEL: model.name}


def secret_name(ref: SecretRef) -> tuple[str, str]:
    return (ref.secret or ref.existing_secret or "", ref.key)


def supports_shutdown_timeout(version: str) -> bool:
    return parse_version(version) >= (0, 18, 0)


def vllm_args(cfg: StackConfig, model: ResolvedModel) -> list[str]:
    timeout = SHUTDOWN_TIMEOUT_SECONDS if supports_shutdown_timeout(cfg.vllm.version) else None
    args = compile_args(model.spec, cfg.vllm.version, shutdown_timeout=timeout, adapter_root=adapter_root(model), pd_role=model.pd_role)
    if model.multi_node:
        args += ["--distributed-executor-backend", "ray"]
    if behind_sidecar(model):
        args += ["--port", str(DECODE_VLLM_PORT)]
    return [literal(a) for a in args]


def literal(arg: str) -> str:
    """An argument as written: Kubernetes expands `$(VAR)` in command and args from the container's environment (an
    extra_args value `$(VLLM_API_KEY)` would put the key on the command line); `$$(` is its escape for a literal `$(`."""
    return arg.replace("$(", "$$(")


def _env(cfg: StackConfig, model: ResolvedModel) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        # Writable homes for a non-root user: without them vLLM dies with PermissionError: '/.cache'.
        {"name": "HOME", "value": f"{SCRATCH}/home"},
        {"name": "XDG_CACHE_HOME", "value": f"{SCRATCH}/cache"},
        {"name": "TRITON_CACHE_DIR", "value": f"{SCRATCH}/triton"},
        {"name": "VLLM_CACHE_ROOT", "value": f"{SCRATCH}/vllm"},
    ]
    if has_cache(cfg):
        # Weights come from the shared cache, filled by the prefetch Job (or staged into S3): never the Hub.
        env += [{"name": "HF_HOME", "value": HF_HOME_ON_CACHE}, {"name": "HF_HUB_OFFLINE", "value": "1"}]
    else:
        env.append({"name": "HF_HOME", "value": f"{SCRATCH}/hf"})
        if model.spec.hf_token is not None:
            _, key = secret_name(model.spec.hf_token)
            env.append({"name": "HF_TOKEN_PATH", "value": f"{HF_TOKEN_DIR}/{key}"})
    if model.spec.api_key is not None:
        name, key = secret_name(model.spec.api_key)
        env.append({"name": "VLLM_API_KEY", "valueFrom": {"secretKeyRef": {"name": name, "key": key}}})
    if model.spec.lora is not None and model.spec.lora.runtime_updating:
        # /v1/load_lora_adapter and /v1/unload_lora_adapter behind the API key, and vLLM's filesystem resolver: a
        # request naming an adapter that is not loaded loads it from the adapters directory on the cache (docs/lora.md).
        env += [{"name": "VLLM_ALLOW_RUNTIME_LORA_UPDATING", "value": "True"},
                {"name": "VLLM_PLUGINS", "value": "lora_filesystem_resolver"},
                {"name": "VLLM_LORA_RESOLVER_CACHE_DIR", "value": adapter_root(model)}]
    offload = model.spec.kv_offload
    if offload is not None and offload.backend == "lmcache":
        # LMCache in the server's process (LMCacheConnectorV1): a CPU buffer per GPU worker, the pod's size split evenly.
        env += [{"name": "LMCACHE_LOCAL_CPU", "value": "True"},
                {"name": "LMCACHE_MAX_LOCAL_CPU_SIZE", "value": f"{offload.cpu_gib / model.gpus_per_pod:g}"},
                {"name": "LMCACHE_CHUNK_SIZE", "value": "256"}]
    if model.pd_role is not None:
        # NIXL's side channel: the decode pod asks the prefill pod (at its pod IP) where its KV blocks are, then reads them.
        env += [{"name": "VLLM_NIXL_SIDE_CHANNEL_HOST", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "VLLM_NIXL_SIDE_CHANNEL_PORT", "value": str(NIXL_SIDE_CHANNEL_PORT)}]
    if uses_efa(model):
        env += [
            # NCCL's collectives over EFA through the image's aws-ofi-nccl plugin; bootstrap over the pod's eth0.
            {"name": "FI_PROVIDER", "value": "efa"},
            {"name": "FI_EFA_USE_DEVICE_RDMA", "value": "1"},   # GPUDirect RDMA (p4d, p5)
            {"name": "FI_EFA_FORK_SAFE", "value": "1"},          # vLLM's workers fork after libfabric is loaded
            {"name": "NCCL_SOCKET_IFNAME", "value": "eth0"},
        ]
    return env


def _volumes(cfg: StackConfig, model: ResolvedModel, scratch_gib: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    res = pod_resources(model)
    volumes: list[dict[str, Any]] = [{"name": "scratch", "emptyDir": {"sizeLimit": f"{scratch_gib}Gi"}}]
    mounts: list[dict[str, Any]] = [{"name": "scratch", "mountPath": SCRATCH}]
    if res.shm_gib:
        volumes.append({"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": f"{res.shm_gib}Gi"}})
        mounts.append({"name": "dshm", "mountPath": "/dev/shm"})
    if has_cache(cfg):
        # Read-only for serving pods: only the prefetch Job writes the cache (the server runs offline from it), so a
        # compromised server cannot change the weights or adapters its team's other models load.
        volumes.append({"name": "model-cache", "persistentVolumeClaim": {"claimName": CACHE_CLAIM, "readOnly": True}})
        mounts.append({"name": "model-cache", "mountPath": CACHE_MOUNT, "readOnly": True})
    elif model.spec.hf_token is not None:
        name, key = secret_name(model.spec.hf_token)
        volumes.append({"name": "hf-token", "secret": {"secretName": name, "items": [{"key": key, "path": key}],
                                                       "defaultMode": 0o440}})
        mounts.append({"name": "hf-token", "mountPath": HF_TOKEN_DIR, "readOnly": True})
    return volumes, mounts


def _resources(model: ResolvedModel) -> dict[str, Any]:
    res = pod_resources(model)
    cpu, memory = res.cpu, res.memory_gib
    if behind_sidecar(model):   # the routing sidecar's share (500m, 512Mi) comes out of the pod's
        cpu, memory = max(1, cpu - 1), memory - 1
    amounts = {"cpu": str(cpu), "memory": f"{memory}Gi", GPU_RESOURCE: str(res.gpus)}
    if uses_efa(model):
        amounts[EFA_RESOURCE] = str(model.instance.efa_interfaces)
    return {"requests": dict(amounts), "limits": dict(amounts)}


def _probes(cfg: StackConfig, model: ResolvedModel) -> dict[str, Any]:
    budget = deploy_time(cfg, model).startup_probe_budget
    http = {"path": "/health", "port": DECODE_VLLM_PORT if behind_sidecar(model) else "http"}
    return {
        # Covers the whole load: weights, torch.compile, CUDA graphs. Readiness/liveness start after it.
        "startupProbe": {"httpGet": http, "periodSeconds": STARTUP_PROBE_PERIOD, "timeoutSeconds": 5,
                         "failureThreshold": budget // STARTUP_PROBE_PERIOD},
        "readinessProbe": {"httpGet": http, "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 3},
        "livenessProbe": {"httpGet": http, "periodSeconds": 15, "timeoutSeconds": 10, "failureThreshold": 6},
    }


CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "runAsUser": NONROOT_UID,
    # readOnlyRootFilesystem stays false: the NVIDIA container runtime hook writes into the container's
    # root file system (ldconfig of the injected driver libraries) when the GPU is attached.
    "readOnlyRootFilesystem": False,
}


def _pod_spec(cfg: StackConfig, model: ResolvedModel, container: dict[str, Any], scratch_gib: int) -> dict[str, Any]:
    volumes, mounts = _volumes(cfg, model, scratch_gib)
    container = {**container, "volumeMounts": mounts, "resources": _resources(model),
                 "securityContext": dict(CONTAINER_SECURITY)}
    pod: dict[str, Any] = {
        "serviceAccountName": model.name,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": termination_grace_seconds(),
        "securityContext": {"runAsNonRoot": True, "runAsUser": NONROOT_UID, "runAsGroup": NONROOT_UID,
                            "fsGroup": NONROOT_UID, "seccompProfile": {"type": "RuntimeDefault"}},
        "nodeSelector": {POOL_LABEL: model.pool.name},
        "tolerations": [{"key": GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}],
        "containers": [container, *([_routing_sidecar(cfg)] if behind_sidecar(model) else [])],
        "volumes": volumes,
    }
    if model.max_replicas >= 2 or model.multi_node:
        pod["topologySpreadConstraints"] = [
            {"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule",
             "labelSelector": {"matchLabels": selector(model)}},
            {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway",
             "labelSelector": {"matchLabels": selector(model)}},
        ]
    return pod


def _routing_sidecar(cfg: StackConfig) -> dict[str, Any]:
    """llm-d's routing sidecar in a decode pod: a request the picker paired with a prefill pod (its address in a header)
    is first sent there to compute the KV cache, then decoded by the local vLLM, which pulls the blocks over NIXL."""
    return {"name": "routing-sidecar", "image": cfg.gateway.routing_sidecar_image, "imagePullPolicy": "IfNotPresent",
            "args": [f"--port={VLLM_PORT}", f"--vllm-port={DECODE_VLLM_PORT}", "--connector=nixlv2", "--secure-proxy=false"],
            "ports": [{"name": "http", "containerPort": VLLM_PORT, "protocol": "TCP"}],
            "readinessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 10, "timeoutSeconds": 5},
            "resources": {"requests": dict(SIDECAR_RESOURCES), "limits": dict(SIDECAR_RESOURCES)},
            "securityContext": {**CONTAINER_SECURITY, "readOnlyRootFilesystem": True}}


def _server_container(cfg: StackConfig, model: ResolvedModel) -> dict[str, Any]:
    args = vllm_args(cfg, model)
    container: dict[str, Any] = {
        "name": "vllm",
        "image": image(cfg, model),
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "vllm", "containerPort": DECODE_VLLM_PORT, "protocol": "TCP"} if behind_sidecar(model)
                  else {"name": "http", "containerPort": VLLM_PORT, "protocol": "TCP"}],
        "env": _env(cfg, model),
        **_probes(cfg, model),
        # Routers stop sending before vLLM drains in-flight requests (--shutdown-timeout).
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(PRESTOP_SECONDS)]}}},
    }
    if model.multi_node:
        # Leader: start the Ray head, wait for the workers, then exec vLLM so it runs as PID 1's successor.
        serve = shlex.join(["vllm", "serve", *args])
        container["command"] = ["/bin/sh", "-c"]
        container["args"] = [f"bash {MULTI_NODE_SCRIPT} leader --ray_cluster_size=$(LWS_GROUP_SIZE) && exec {serve}"]
        container["ports"].append({"name": "ray", "containerPort": RAY_PORT, "protocol": "TCP"})
    else:
        container["command"] = ["vllm", "serve"]
        container["args"] = args
    return container


def _worker_container(cfg: StackConfig, model: ResolvedModel) -> dict[str, Any]:
    return {
        "name": "vllm-worker",
        "image": image(cfg, model),
        "imagePullPolicy": "IfNotPresent",
        "command": ["/bin/sh", "-c"],
        "args": [f"exec bash {MULTI_NODE_SCRIPT} worker --ray_address=$(LWS_LEADER_ADDRESS)"],
        "env": _env(cfg, model),
    }


def _scratch_gib(cfg: StackConfig, model: ResolvedModel) -> int:
    """Compile caches always; without a shared cache the weights land in scratch too."""
    if has_cache(cfg):
        return 20
    return int(min(max(50, pod_read_gib(model) * 1.2 + 20), model.pool.disk_gib * 0.8))


def autoscaler_owns_replicas(cfg: StackConfig, model: ResolvedModel) -> bool:
    return model.autoscaled and cfg.autoscaling.backend != "none"


def replicas(cfg: StackConfig, model: ResolvedModel) -> dict[str, int]:
    """`spec.replicas`, unless an autoscaler owns the count: pulumi-kubernetes applies server-side, and once the
    HPA or KEDA has scaled the workload, an update that sets `spec.replicas` conflicts with the autoscaler's field
    manager (pulumi-kubernetes #2569, #3312). Left out, the API server starts the workload at 1 and the autoscaler
    takes it to its minimum."""
    return {} if autoscaler_owns_replicas(cfg, model) else {"replicas": model.min_replicas}


# A model's pods are never moved by a voluntary disruption, while loading weights or serving: Karpenter neither
# consolidates nor drains for drift a node they run on (kubernetes-sigs/karpenter@v1.0.0:pkg/utils/pod/scheduling.go
# IsDisruptable, IsEvictable), and the cluster autoscaler does not scale such a node down. They leave a node through a
# rollout, a scale-down or an involuntary event (spot interruption, node failure); a managed node group's update still
# drains them, one node at a time within the PodDisruptionBudget.
GPU_POD_ANNOTATIONS = {"karpenter.sh/do-not-disrupt": "true", "cluster-autoscaler.kubernetes.io/safe-to-evict": "false"}


def _pod_metadata(labels: dict[str, str]) -> dict[str, Any]:
    return {"labels": labels, "annotations": dict(GPU_POD_ANNOTATIONS)}


def workload(cfg: StackConfig, model: ResolvedModel) -> Manifest:
    """A Deployment when one replica fits on one node, otherwise a LeaderWorkerSet."""
    lbl = labels(model)
    scratch = _scratch_gib(cfg, model)
    if not model.multi_node:
        r = rollout(cfg, model)
        strategy: dict[str, Any] = {"type": r.type}
        if r.type == "RollingUpdate":
            strategy["rollingUpdate"] = {"maxSurge": r.max_surge, "maxUnavailable": r.max_unavailable}
        return {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": meta(model.name, model.namespace, lbl),
            "spec": {
                **replicas(cfg, model),
                "revisionHistoryLimit": 3,
                "selector": {"matchLabels": selector(model)},
                "strategy": strategy,
                "template": {"metadata": _pod_metadata(pod_labels(model)),
                             "spec": _pod_spec(cfg, model, _server_container(cfg, model), scratch)},
            },
        }
    return {
        "apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet",
        "metadata": meta(model.name, model.namespace, lbl),
        "spec": {
            **replicas(cfg, model),
            "startupPolicy": "LeaderCreated",
            "rolloutStrategy": {"type": "RollingUpdate",
                                "rollingUpdateConfiguration": {"maxUnavailable": 1, "maxSurge": 0}},
            "leaderWorkerTemplate": {
                "size": model.nodes_per_replica,
                "restartPolicy": "RecreateGroupOnPodRestart",
                "leaderTemplate": {"metadata": _pod_metadata({**pod_labels(model), "vllm-fleet.io/role": "leader"}),
                                   "spec": _pod_spec(cfg, model, _server_container(cfg, model), scratch)},
                "workerTemplate": {"metadata": _pod_metadata({**lbl, "vllm-fleet.io/role": "worker"}),
                                   "spec": _pod_spec(cfg, model, _worker_container(cfg, model), scratch)},
            },
        },
    }


def service_account(model: ResolvedModel, role_arn: Any = None) -> Manifest:
    """`role_arn`: the IAM role the model's pods assume (IRSA), when they read adapters from S3."""
    annotations = {"eks.amazonaws.com/role-arn": role_arn} if role_arn is not None else None
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(model.name, model.namespace, labels(model), annotations),
            "automountServiceAccountToken": False}


# pulumi-kubernetes waits for a Service until none of its endpoints is "not ready": while a large model loads
# that outlasts any sensible timeout, and a model scaled to zero has no endpoints to wait for. The workload's own
# await (the Deployment's rollout, with a timeout sized for the model) already proves the pods are ready.
SKIP_AWAIT = {"pulumi.com/skipAwait": "true"}


def service(model: ResolvedModel) -> Manifest:
    sel = selector(model)
    if model.multi_node:
        sel = {**sel, "vllm-fleet.io/role": "leader"}
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta(model.name, model.namespace, labels(model), SKIP_AWAIT),
            "spec": {"type": "ClusterIP", "selector": sel,
                     "ports": [{"name": "http", "port": VLLM_PORT, "targetPort": "http", "protocol": "TCP"}]}}


def disruption_budget(model: ResolvedModel) -> Manifest | None:
    if model.min_replicas < 2:
        return None
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": meta(model.name, model.namespace, labels(model)),
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector(model)}}}


def _behavior(cfg: StackConfig, model: ResolvedModel) -> dict[str, Any]:
    return {
        "scaleUp": {"stabilizationWindowSeconds": SCALE_UP_WINDOW, "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]},
        "scaleDown": {"stabilizationWindowSeconds": scale_down_window(deploy_time(cfg, model).startup_probe_budget),
                      "policies": [{"type": "Pods", "value": 1, "periodSeconds": 120}]},
    }


def wake_trigger(cfg: StackConfig, model: ResolvedModel) -> dict[str, Any]:
    """What wakes a model scaled to zero. Its pods' own `vllm:` series do not exist at zero replicas, so the queue
    trigger alone would never scale it up again; the ingress controller counts the model's requests whether or not
    a replica answers them (ingress-nginx answers 503 until one is ready). Scraped through a ServiceMonitor, the
    controller's `namespace` label is the Ingress's unless Prometheus renamed it `exported_namespace`: either matches."""
    selector = f'ingress="{model.name}"'
    rate = " or ".join(f'sum(rate(nginx_ingress_controller_requests{{{label}="{model.namespace}",{selector}}}[2m]))'
                       for label in ("namespace", "exported_namespace"))
    return {"type": "prometheus", "metricType": "AverageValue", "metadata": {
        "serverAddress": cfg.autoscaling.prometheus_url, "query": rate,
        # Never drives the replica count above the queue's (a huge threshold); any request activates from zero.
        "threshold": "1000000", "activationThreshold": "0"}}


def target_queue(model: ResolvedModel) -> float:
    """`target_queue_per_pod` as the team file sets it; left unset on a model with an slo, the queue a replica holds at
    the highest rate at which it still meets its targets (fleet.capacity.slo.queue_target), instead of the default."""
    auto = model.spec.autoscaling
    assert auto is not None
    if "target_queue_per_pod" in auto.model_fields_set or model.spec.slo is None:
        return auto.target_queue_per_pod
    from fleet.capacity.slo import queue_target

    derived = queue_target(model)
    return derived if derived is not None else auto.target_queue_per_pod


def autoscaler(cfg: StackConfig, model: ResolvedModel) -> Manifest | None:
    auto = model.spec.autoscaling
    if auto is None or cfg.autoscaling.backend == "none":
        return None
    target = workload(cfg, model)
    queue = vllm_metric(QUEUE_METRIC, cfg.vllm.version)
    if cfg.autoscaling.backend == "keda":
        # KEDA queries Prometheus directly (':' is fine there); AverageValue divides by the replicas.
        return {
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": meta(model.name, model.namespace, labels(model)),
            "spec": {
                "scaleTargetRef": {"apiVersion": target["apiVersion"], "kind": target["kind"], "name": model.name},
                "minReplicaCount": auto.min_replicas, "maxReplicaCount": auto.max_replicas,
                "pollingInterval": 15, "cooldownPeriod": scale_down_window(deploy_time(cfg, model).startup_probe_budget),
                "advanced": {"horizontalPodAutoscalerConfig": {"behavior": _behavior(cfg, model)}},
                "triggers": [{"type": "prometheus", "metricType": "AverageValue", "metadata": {
                    "serverAddress": cfg.autoscaling.prometheus_url,
                    "query": f'sum({queue}{{namespace="{model.namespace}",service="{model.name}"}})',
                    "threshold": _quantity(target_queue(model))}},
                    *([wake_trigger(cfg, model)] if auto.min_replicas == 0 else [])],
            },
        }
    # The custom metrics API cannot carry ':' — prometheus-adapter exposes the renamed series.
    metric = queue.replace(":", "_")
    return {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": meta(model.name, model.namespace, labels(model)),
        "spec": {
            "scaleTargetRef": {"apiVersion": target["apiVersion"], "kind": target["kind"], "name": model.name},
            "minReplicas": auto.min_replicas, "maxReplicas": auto.max_replicas,
            "metrics": [{"type": "Pods", "pods": {"metric": {"name": metric},
                                                  "target": {"type": "AverageValue",
                                                             "averageValue": _quantity(target_queue(model))}}}],
            "behavior": _behavior(cfg, model),
        },
    }


def _quantity(value: float) -> str:
    """A Kubernetes quantity, to the milli-unit; never 0 for a positive target (the config keeps targets ≥ 0.1)."""
    milli = round(value * 1000)
    if milli <= 0:
        raise ValueError(f"{value} rounds to 0 as a Kubernetes quantity")
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"


def prefetch(cfg: StackConfig, model: ResolvedModel) -> Manifest | None:
    if not prefetches(cfg):
        return None
    token = secret_name(model.spec.hf_token) if model.spec.hf_token is not None else None
    timeout = deploy_time(cfg, model).prefetch_timeout
    assert timeout is not None  # set whenever the cache is prefetched
    return prefetch_job(cfg, model, image(cfg), token, timeout)


def smoke(cfg: StackConfig, model: ResolvedModel) -> Manifest | None:
    """None when the stack turns smoke tests off, or for a model that may sit at zero replicas: its Service has no
    endpoint then, and only a request through the ingress wakes it (docs/first-deploy.md)."""
    if not cfg.smoke_tests or model.min_replicas == 0:
        return None
    key = secret_name(model.spec.api_key) if model.spec.api_key is not None else None
    # A Deployment is awaited before the test runs; a LeaderWorkerSet is not, so the test waits for it.
    wait = SMOKE_WAIT_AFTER_ROLLOUT if not model.multi_node else deploy_time(cfg, model).rollout_create_timeout
    return smoke_job(model, image(cfg, model), vllm_args(cfg, model), key, wait, gateway_target(cfg, model))


SMOKE_WAIT_AFTER_ROLLOUT = 600   # Service endpoints follow a finished rollout within seconds; ten minutes is plenty


def model_manifests(cfg: StackConfig, model: ResolvedModel, role_arn: Any = None) -> list[Manifest]:
    """In creation order: the workload after the prefetch Job, the smoke test after the workload (components add the
    dependencies)."""
    out = [service_account(model, role_arn)]
    job = prefetch(cfg, model)
    if job is not None:
        out.append(job)
    out += [workload(cfg, model), service(model)]
    test = smoke(cfg, model)
    if test is not None:
        out.append(test)
    for extra in (disruption_budget(model), autoscaler(cfg, model), ingress(cfg, model)):
        if extra is not None:
            out.append(extra)
    out += pool_manifests(cfg, model)
    if cfg.observability.prometheus_operator:
        out += [service_monitor(cfg, model, selector(model)), prometheus_rule(cfg, model)]
    return out
