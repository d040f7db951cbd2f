"""E: GPU scheduling and sizing rules."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import yaml

from fleet.capacity.memory import Settings, model_catalog, size
from fleet.catalog import InstanceType, gpu_instance_types
from fleet.labels import GPU_MEMORY_LABEL, GPU_TAINT_KEY, GPUS_PER_NODE_LABEL
from fleet.quantity import quantity, whole
from policies.commands import float_value, int_value, model_of, runtime_value
from policies.env import EnvVar, resolved_env, stack_env_rule
from policies.framework import (
    POD_KINDS,
    autoscaled_workloads,
    containers,
    flag_value,
    gpu_limit,
    has_flag,
    is_gpu_resource,
    pod_gpus,
    pod_specs,
    rule,
    shown_number,
    stack_rule,
    vllm_serve_args,
)

INSTANCE_LABEL = "node.kubernetes.io/instance-type"
LWS = "kubernetes:leaderworkerset.x-k8s.io/v1:LeaderWorkerSet"


def _group_size(resource_type: str, props: Any) -> int:
    """Pods per replica: a LeaderWorkerSet's group size, 1 for other workloads."""
    if resource_type != LWS:
        return 1
    return max(1, whole(((props.get("spec") or {}).get("leaderWorkerTemplate") or {}).get("size"), 1))


def parallel_sizes(vargs: list[str]) -> tuple[int | None, int | None]:
    """Tensor and pipeline parallel sizes of a server (1 when not given; None when filled in at run time)."""
    tp = flag_value(vargs, "--tensor-parallel-size", "-tp")
    pp = flag_value(vargs, "--pipeline-parallel-size", "-pp")
    return (int_value(tp) if tp else 1), (int_value(pp) if pp else 1)


def _gpu_taint_key(key: Any) -> bool:
    """nvidia.com/gpu, amd.com/gpu and the like: the taints GPU node pools carry."""
    return isinstance(key, str) and (key == GPU_TAINT_KEY or is_gpu_resource(key) or "gpu" in key.lower())


def _tolerates_gpu(spec: Mapping[str, Any]) -> bool:
    return any((_gpu_taint_key(t.get("key")) and t.get("effect") in (None, "", "NoSchedule")) or
               (t.get("operator") == "Exists" and not t.get("key")) for t in spec.get("tolerations") or [])


def _node_labels(spec: Mapping[str, Any]) -> dict[str, list[str]]:
    """Label keys the pod requires on its node, with the values it accepts."""
    out: dict[str, list[str]] = {k: [str(v)] for k, v in (spec.get("nodeSelector") or {}).items()}
    terms = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
             .get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms") or []
    for term in terms:
        for e in term.get("matchExpressions") or []:
            if e.get("operator") == "In":
                out.setdefault(str(e.get("key")), []).extend(str(v) for v in e.get("values") or [])
            elif e.get("operator") in ("Exists", "Gt"):
                out.setdefault(str(e.get("key")), [])
    return out


def _node_instance_types(labels: Mapping[str, list[str]]) -> list[InstanceType]:
    """Catalog instance types the pod's instance-type selection allows."""
    catalog = gpu_instance_types()
    return [catalog[t] for t in labels.get(INSTANCE_LABEL, []) if t in catalog]


def _node_gpu_facts(spec: Mapping[str, Any]) -> tuple[int | None, float | None]:
    """GPUs per node and usable GPU memory (GiB) the pod's node selection guarantees, when it says."""
    labels = _node_labels(spec)
    catalog = gpu_instance_types()
    types = _node_instance_types(labels)
    if types:
        return min(t.gpus for t in types), min(t.gpu_usable_memory_gib for t in types)
    gpus = [int(g) for g in map(quantity, labels.get(GPUS_PER_NODE_LABEL, [])) if g]
    memory = [m for m in map(quantity, labels.get(GPU_MEMORY_LABEL, [])) if m]
    usable = None
    if memory:
        marketed = min(memory)
        matches = [i.gpu_usable_memory_gib for i in catalog.values() if i.gpu_memory_gib == marketed]
        usable = min(matches) if matches else marketed * 0.97
    return (min(gpus) if gpus else None), usable


def _node_gpu_model(spec: Mapping[str, Any]) -> str | None:
    """The GPU model when every instance type the pod may land on has the same one (vLLM's batch defaults
    depend on it)."""
    models = {t.gpu_model for t in _node_instance_types(_node_labels(spec))}
    return models.pop() if len(models) == 1 else None


# Node labels that pick a node pool (whose nodes are GPU nodes when the pod asks for GPUs): instance types, managed
# node groups, Karpenter and GKE node pools, this stack's pools.
POOL_KEYS = frozenset({INSTANCE_LABEL, "beta.kubernetes.io/instance-type", "vllm-fleet.io/pool", "eks.amazonaws.com/nodegroup",
                       "karpenter.sh/nodepool", "cloud.google.com/gke-nodepool", "agentpool", "kubernetes.azure.com/agentpool"})


def _selects_gpu_nodes(spec: Mapping[str, Any]) -> bool:
    """Whether the pod's required node labels pick GPU nodes: a pool or instance type, or any label about the GPU or
    accelerator (GPU feature discovery's nvidia.com/gpu.product, GKE's cloud.google.com/gke-accelerator, Karpenter's
    karpenter.k8s.aws/instance-gpu-*, vendor labels such as …/gpu-name)."""
    return any(key in POOL_KEYS or "gpu" in key.lower() or "accelerator" in key.lower() for key in _node_labels(spec))


@rule("E1", "kubernetes-container-configure-gpu-limits", "GPUs are requested in limits, and requests equal limits.",
      level="mandatory", severity="high", remediation="Put nvidia.com/gpu in resources.limits (requests, if set, equal).",
      sources=("K8S",), kinds=POD_KINDS)
def gpu_limits(props: Any, report: Any, args: Any) -> None:
    for pod in pod_specs(args.resource_type, props):
        for path, c in containers(pod):
            res = c.get("resources") or {}
            requests, limits = res.get("requests") or {}, res.get("limits") or {}
            for name in sorted(k for k in requests if is_gpu_resource(str(k))):
                req, lim = requests[name], limits.get(name)
                if lim is None:
                    report(f"{path} requests {name} without a limit")
                elif quantity(req) != quantity(lim):
                    report(f"{path} requests {shown_number(req)} {name} but limits {shown_number(lim)}")


@rule("E2", "kubernetes-pod-configure-gpu-placement", "GPU pods tolerate the GPU taint and select GPU nodes by label.",
      level="mandatory", severity="high", remediation="Tolerate nvidia.com/gpu:NoSchedule and select the GPU pool "
      "(nodeSelector vllm-fleet.io/pool or an instance-type affinity).", sources=("BPG",), kinds=POD_KINDS)
def gpu_placement(props: Any, report: Any, args: Any) -> None:
    for pod in pod_specs(args.resource_type, props):
        if pod_gpus(pod) == 0:
            continue
        if not _tolerates_gpu(pod.spec):
            report(f"{pod.path} requests GPUs but does not tolerate the {GPU_TAINT_KEY} taint")
        if not _selects_gpu_nodes(pod.spec):
            report(f"{pod.path} requests GPUs but selects no GPU nodes by label")


@rule("E3", "kubernetes-pod-disallow-gpu-toleration-without-gpus", "Pods without GPUs do not tolerate the GPU taint.",
      level="mandatory", severity="medium", remediation="Remove the nvidia.com/gpu toleration or request a GPU.",
      sources=("BPG",), kinds=POD_KINDS)
def gpu_toleration(props: Any, report: Any, args: Any) -> None:
    for pod in pod_specs(args.resource_type, props):
        if pod_gpus(pod) == 0 and _tolerates_gpu(pod.spec):
            report(f"{pod.path} tolerates the {GPU_TAINT_KEY} taint but requests no GPU")


@rule("E4", "kubernetes-pod-configure-gpu-count", "GPUs per pod fit the node, and TP × PP on one node equals the GPU limit.",
      level="mandatory", severity="high", remediation="Request at most the node's GPUs; set nvidia.com/gpu to "
      "tensor × pipeline parallel size for a single-node server.", sources=("vLLM", "AWS"), kinds=POD_KINDS)
def gpu_count(props: Any, report: Any, args: Any) -> None:
    group = _group_size(args.resource_type, props)
    for pod in pod_specs(args.resource_type, props):
        gpus = pod_gpus(pod)
        node_gpus, _ = _node_gpu_facts(pod.spec)
        if gpus and node_gpus is not None and gpus > node_gpus:
            report(f"{pod.path} requests {gpus} GPUs but its nodes have {node_gpus}")
        for path, c in containers(pod, init=False):
            vargs = vllm_serve_args(c)
            if vargs is None or (group == 1 and flag_value(vargs, "--distributed-executor-backend") == "ray"):
                continue  # a Ray cluster of separate pods spreads TP × PP over them: not judged from one pod
            tp, pp = parallel_sizes(vargs)
            dp_flag = flag_value(vargs, "--data-parallel-size-local", "-dpl") or flag_value(vargs, "--data-parallel-size", "-dp")
            dp = int_value(dp_flag) if dp_flag else 1
            if tp is None or pp is None or dp is None:
                continue  # filled in when the container starts ($(TP)): unknown here
            # A LeaderWorkerSet's group runs one server over every pod of the group; data-parallel ranks each take TP × PP.
            available = gpu_limit(c) * group
            if tp * pp * dp != available:
                what = f"tensor × pipeline parallel {tp * pp}" + (f" × data parallel {dp}" if dp != 1 else "")
                report(f"{path} runs {what} on {available} GPU(s)" + (f" ({group} pods × {gpu_limit(c)})" if group > 1 else ""))


@rule("E5", "kubernetes-pod-configure-shared-memory", "Pods with more than one GPU mount /dev/shm from a sized Memory emptyDir.",
      level="mandatory", severity="high", remediation="Add an emptyDir {medium: Memory, sizeLimit} mounted at /dev/shm, "
      "within the memory limit.", sources=("vLLM", "production-stack#276"), kinds=POD_KINDS)
def shared_memory(props: Any, report: Any, args: Any) -> None:
    for pod in pod_specs(args.resource_type, props):
        if pod_gpus(pod) <= 1 and not any(vllm_serve_args(c) is not None and
                                          flag_value(vllm_serve_args(c) or [], "--distributed-executor-backend") == "ray"
                                          for _, c in containers(pod, init=False)):
            continue
        volumes = {v.get("name"): v for v in pod.spec.get("volumes") or []}
        for path, c in containers(pod, init=False):
            if not (gpu_limit(c) or vllm_serve_args(c) is not None):
                continue
            mount = next((m for m in c.get("volumeMounts") or [] if m.get("mountPath") == "/dev/shm"), None)
            vol = volumes.get(mount.get("name")) if mount else None
            empty = (vol or {}).get("emptyDir") or {}
            if mount is None or empty.get("medium") != "Memory":
                report(f"{path} has no Memory emptyDir at /dev/shm")
                continue
            if not empty.get("sizeLimit"):
                report(f"{path}: the /dev/shm emptyDir has no sizeLimit")
                continue
            limit = ((c.get("resources") or {}).get("limits") or {}).get("memory")
            shm, memory = quantity(empty["sizeLimit"]), quantity(limit)
            if shm is not None and memory is not None and shm > memory:
                report(f"{path}: /dev/shm sizeLimit {empty['sizeLimit']} exceeds the memory limit {limit}")


@stack_rule("E6", "kubernetes-namespace-configure-gpu-quota", "Every namespace with GPU pods has a quota on requests.nvidia.com/gpu.",
            level="mandatory", severity="high", remediation="Add a ResourceQuota with hard requests.nvidia.com/gpu "
            "(the limits. form is invalid for extended resources).", sources=("K8S",))
def gpu_quota(resources: Any, report: Any, args: Any) -> None:
    quotas: dict[Any, set[str]] = {}
    gpu_namespaces: dict[Any, str] = {}
    for r in resources:
        props = r.props
        ns = (props.get("metadata") or {}).get("namespace")
        if r.resource_type == "kubernetes:core/v1:ResourceQuota":
            hard = (props.get("spec") or {}).get("hard") or {}
            quotas.setdefault(ns, set()).update(hard)
            if "limits.nvidia.com/gpu" in hard:
                report(f"ResourceQuota {ns}/{(props.get('metadata') or {}).get('name')} uses limits.nvidia.com/gpu, "
                       "which Kubernetes rejects for extended resources — use requests.nvidia.com/gpu", r.urn)
        elif r.resource_type in POD_KINDS and any(pod_gpus(p) for p in pod_specs(r.resource_type, props)):
            gpu_namespaces.setdefault(ns, r.urn)
    for ns, urn in sorted(gpu_namespaces.items(), key=lambda kv: str(kv[0])):
        if "requests.nvidia.com/gpu" not in quotas.get(ns, set()):
            report(f"namespace {ns or 'default'} runs GPU pods without a requests.nvidia.com/gpu quota", urn)


@stack_rule("E7", "kubernetes-autoscaler-configure-gpu-quota-fit", "Autoscaler max replicas × GPUs per pod fit the namespace GPU quota.",
            level="mandatory", severity="medium", remediation="Lower maxReplicas or raise the namespace's GPU quota.",
            sources=("K8S",))
def autoscaler_quota(resources: Any, report: Any, args: Any) -> None:
    quota: dict[Any, float] = {}
    gpus_per_pod: dict[tuple[Any, Any, Any], int] = {}
    for r in resources:
        props = r.props
        md = props.get("metadata") or {}
        if r.resource_type == "kubernetes:core/v1:ResourceQuota":
            value = ((props.get("spec") or {}).get("hard") or {}).get("requests.nvidia.com/gpu")
            if quantity(value) is not None:
                quota[md.get("namespace")] = quantity(value) or 0.0
        elif r.resource_type in POD_KINDS:
            pods = list(pod_specs(r.resource_type, props))
            gpus_per_pod[(md.get("namespace"), props.get("kind"), md.get("name"))] = \
                sum(pod_gpus(p) for p in pods[:1]) * _group_size(r.resource_type, props)
    for r in resources:
        if r.resource_type not in ("kubernetes:autoscaling/v2:HorizontalPodAutoscaler", "kubernetes:keda.sh/v1alpha1:ScaledObject"):
            continue
        props = r.props
        md = props.get("metadata") or {}
        spec = props.get("spec") or {}
        target = spec.get("scaleTargetRef") or {}
        max_replicas = spec.get("maxReplicas", spec.get("maxReplicaCount"))
        gpus = gpus_per_pod.get((md.get("namespace"), target.get("kind", "Deployment"), target.get("name")))
        granted = quota.get(md.get("namespace"))
        if max_replicas is None or not gpus or granted is None:
            continue
        top = whole(max_replicas, 0)
        if top * gpus > granted:
            report(f"{props.get('kind')} {md.get('namespace')}/{md.get('name')} can scale to {top * gpus} GPUs "
                   f"({top} × {gpus}) but the namespace quota is {granted:g}", r.urn)


@rule("E8", "kubernetes-container-disallow-nvidia-env", "Containers do not set NVIDIA_VISIBLE_DEVICES or NVIDIA_DRIVER_CAPABILITIES.",
      level="mandatory", severity="high", remediation="Request GPUs with nvidia.com/gpu; the device plugin sets the devices.",
      sources=("NV",), kinds=POD_KINDS)
def nvidia_env(props: Any, report: Any, args: Any) -> None:
    for pod in pod_specs(args.resource_type, props):
        for path, c in containers(pod):
            for message in nvidia_env_vars(path, c, resolved_env(c)):
                report(message)


def nvidia_env_vars(path: str, c: Mapping[str, Any], env: dict[str, EnvVar]) -> Iterator[str]:
    for name in ("NVIDIA_VISIBLE_DEVICES", "NVIDIA_DRIVER_CAPABILITIES"):
        if name in env:
            yield f"{path}.{env[name].where} sets {name}"


stack_env_rule("E8", "Containers do not set NVIDIA_VISIBLE_DEVICES or NVIDIA_DRIVER_CAPABILITIES", level="mandatory",
               severity="high", remediation="Request GPUs with nvidia.com/gpu; the device plugin sets the devices (not a ConfigMap).",
               sources=("NV",), check=nvidia_env_vars, vllm_only=False)


@rule("E9", "kubernetes-configmap-configure-time-slicing", "GPU time-slicing, if on, fails multi-GPU requests and renames shared GPUs; "
      "vLLM never runs on shared GPUs.", level="advisory", severity="medium", remediation="Set failRequestsGreaterThanOne "
      "and renameByDefault in the device plugin config; request whole nvidia.com/gpu for vLLM.", sources=("NV",),
      kinds=("kubernetes:core/v1:ConfigMap", *POD_KINDS))
def time_slicing(props: Any, report: Any, args: Any) -> None:
    if args.resource_type == "kubernetes:core/v1:ConfigMap":
        for key, text in (props.get("data") or {}).items():
            if "timeSlicing" not in str(text):
                continue
            try:
                cfg = json.loads(str(text))
            except ValueError:
                cfg = yaml.safe_load(str(text))
            ts = ((cfg or {}).get("sharing") or {}).get("timeSlicing") or {}
            for flag in ("failRequestsGreaterThanOne", "renameByDefault"):
                if ts.get(flag) is not True:
                    report(f"data.{key}: timeSlicing.{flag} is not true")
        return
    for pod in pod_specs(args.resource_type, props):
        for path, c in containers(pod, init=False):
            limits = (c.get("resources") or {}).get("limits") or {}
            if vllm_serve_args(c) is not None and "nvidia.com/gpu.shared" in limits:
                report(f"{path} runs vLLM on time-sliced nvidia.com/gpu.shared")


@rule("E11", "kubernetes-vllm-configure-model-fit", "The model fits: weights and one max-model-len sequence of KV cache fit in "
      "gpu-memory-utilization × GPU memory × GPUs.", level="mandatory", severity="high",
      remediation="Apply one of the listed fixes (more tensor parallelism, shorter max-model-len, fp8 KV cache, a larger GPU, "
      "quantization).", sources=("vLLM",), kinds=POD_KINDS)
def model_fit(props: Any, report: Any, args: Any) -> None:
    catalog = model_catalog()
    for pod in pod_specs(args.resource_type, props):
        for path, c in containers(pod, init=False):
            vargs = vllm_serve_args(c)
            if not vargs:
                continue
            model = model_of(vargs)
            arch = catalog.get(model or "")
            _, memory = _node_gpu_facts(pod.spec)
            if arch is None or memory is None:
                continue  # unknown model or GPU: the rule cannot judge (the plan's sizing table says so)
            tp, pp = parallel_sizes(vargs)
            numbers = {flag: flag_value(vargs, flag) for flag in ("--max-model-len", "--max-num-batched-tokens", "--max-num-seqs",
                                                                  "--gpu-memory-utilization")}
            if tp is None or pp is None or any(v is not None and runtime_value(v) for v in numbers.values()):
                continue  # a value filled in when the container starts: the rule cannot judge
            utilization = float_value(numbers["--gpu-memory-utilization"])
            try:
                result = size(arch, Settings(
                    gpu_memory_gib=memory, tensor_parallel_size=tp, pipeline_parallel_size=pp,
                    max_model_len=int_value(numbers["--max-model-len"]),
                    gpu_memory_utilization=utilization if utilization is not None else 0.9,
                    dtype=flag_value(vargs, "--dtype") or "auto", quantization=flag_value(vargs, "--quantization", "-q"),
                    kv_cache_dtype=flag_value(vargs, "--kv-cache-dtype") or "auto",
                    max_num_batched_tokens=int_value(numbers["--max-num-batched-tokens"]),
                    max_num_seqs=int_value(numbers["--max-num-seqs"]),
                    enforce_eager=has_flag(vargs, "--enforce-eager"), gpu_model=_node_gpu_model(pod.spec)), explain=False)
            except ValueError:
                continue  # settings the fit check does not know (a quantization it has no bytes for): cannot judge
            if not result.fits:
                report(f"{path}: {model} does not fit on {tp * pp} GPU(s) of {memory:g} GiB: {result.reason}")


POOL_LABEL = "vllm-fleet.io/pool"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"
DAEMONSET = "kubernetes:apps/v1:DaemonSet"
# Device plugins the stack renders, by image, and the extended resources each advertises.
PLUGIN_IMAGES = {"k8s-device-plugin": "nvidia.com/gpu", "aws-efa-k8s-device-plugin": "vpc.amazonaws.com/efa"}
EFA_RESOURCE = "vpc.amazonaws.com/efa"


def _pool_of(spec: Mapping[str, Any]) -> str | None:
    values = _node_labels(spec).get(POOL_LABEL)
    return values[0] if values and len(set(values)) == 1 else None


def _node_pools(resources: Any) -> dict[str, tuple[Any, int, int]]:
    """pool → (resource, GPUs per node, the most GPUs it can hold) for the managed node groups and Karpenter NodePools."""
    catalog = gpu_instance_types()
    out = {}
    for r in resources:
        if r.resource_type == NODE_GROUP:
            labels = r.props.get("labels") or {}
            pool = labels.get(POOL_LABEL)
            per_node = whole(labels.get(GPUS_PER_NODE_LABEL), 0) or max((catalog[t].gpus for t in _gpu_types(r.props)), default=0)
            max_size = whole((r.props.get("scalingConfig") or {}).get("maxSize"), 0)
            if pool:
                out[str(pool)] = (r, per_node, per_node * max_size)
        elif r.resource_type == NODE_POOL:
            template = (r.props.get("spec") or {}).get("template") or {}
            pool = ((template.get("metadata") or {}).get("labels") or {}).get(POOL_LABEL)
            limit = ((r.props.get("spec") or {}).get("limits") or {}).get("nvidia.com/gpu")
            per_node = whole(((template.get("metadata") or {}).get("labels") or {}).get(GPUS_PER_NODE_LABEL), 0)
            if pool and quantity(limit) is not None:
                out[str(pool)] = (r, per_node, int(quantity(limit) or 0))
    return out


def _gpu_types(props: Any) -> list[str]:
    catalog = gpu_instance_types()
    return [t for t in props.get("instanceTypes") or [] if t in catalog]


def _gpus_at_max(r: Any, scaled: Mapping[Any, Any]) -> tuple[str | None, int]:
    """The pool a workload runs on and the GPUs it holds at its largest (autoscaler max, or its replicas)."""
    props = r.props
    spec = props.get("spec") or {}
    md = props.get("metadata") or {}
    pods = list(pod_specs(r.resource_type, props))
    if not pods:
        return None, 0
    autoscaler = scaled.get((md.get("namespace"), props.get("kind"), md.get("name")))
    replicas = (autoscaler.max_replicas if autoscaler is not None and autoscaler.max_replicas is not None
                else whole(spec.get("replicas"), 1) if r.resource_type != DAEMONSET else 0)
    if r.resource_type == LWS:
        size = _group_size(r.resource_type, props)
        gpus = pod_gpus(pods[0]) + (size - 1) * pod_gpus(pods[-1])
    else:
        gpus = pod_gpus(pods[0])
    return _pool_of(pods[0].spec), replicas * gpus


@stack_rule("E12", "aws-gpu-pool-configure-capacity", "A GPU pool holds its models at max replicas plus the stack's spare GPUs.",
            level="mandatory", severity="high", remediation="Raise the pool's max_size (or its Karpenter GPU limit), lower the "
            "models' max replicas, or move a model to another pool.", sources=("K8S", "cost control"))
def pool_capacity(resources: Any, report: Any, args: Any) -> None:
    pools = _node_pools(resources)
    if not pools:
        return  # the stack does not manage its GPU nodes: their capacity is unknown here
    spare = whole((args.get_config() or {}).get("spare_gpus"), 0)
    scaled = autoscaled_workloads(resources)
    need: dict[str, int] = {}
    for r in resources:
        if r.resource_type in POD_KINDS and r.resource_type != DAEMONSET:
            pool, gpus = _gpus_at_max(r, scaled)
            if pool is not None and gpus:
                need[pool] = need.get(pool, 0) + gpus
    for pool, (node_pool, per_node, capacity) in sorted(pools.items()):
        wanted = need.get(pool, 0)
        if wanted and wanted + spare > capacity:
            report(f"pool {pool}: its models need up to {wanted} GPUs at max replicas plus {spare} spare for rollouts, but it holds "
                   f"at most {capacity}" + (f" ({capacity // per_node} nodes × {per_node})" if per_node else ""), node_pool.urn)


def _plugin_resources(props: Any) -> set[str]:
    images = [str(c.get("image", "")) for pod in pod_specs(DAEMONSET, props) for _, c in containers(pod)]
    return {res for image in images for name, res in PLUGIN_IMAGES.items() if f"/{name}:" in image or f"/{name}@" in image}


def _extended(container: Mapping[str, Any]) -> list[str]:
    limits = (container.get("resources") or {}).get("limits") or {}
    return [k for k in limits if "/" in k and not k.startswith(("kubernetes.io/", "requests.", "limits.")) and not k.startswith("hugepages-")]


@stack_rule("E13", "kubernetes-pod-configure-provided-devices", "Pods request only extended resources a device plugin the stack "
            "runs (or the node image ships) advertises on their pool.", level="mandatory", severity="high",
            remediation="Run the device plugin on the pool (the NVIDIA plugin on AL2023 pools, the EFA plugin on EFA pools) or "
            "stop requesting the resource: a pod asking for what no node advertises stays Pending.", sources=("NV", "AWS EFA"))
def provided_devices(resources: Any, report: Any, args: Any) -> None:
    pools = _node_pools(resources)
    if not pools:
        return  # the cluster's own device plugins are unknown here
    provided: dict[str | None, set[str]] = {pool: set() for pool in pools}
    for r in resources:
        if r.resource_type == NODE_GROUP and str(r.props.get("amiType", "")).startswith("BOTTLEROCKET_") and \
                str(r.props.get("amiType", "")).endswith("_NVIDIA"):
            provided.setdefault(str((r.props.get("labels") or {}).get(POOL_LABEL)), set()).add("nvidia.com/gpu")
        elif r.resource_type == DAEMONSET:
            advertised = _plugin_resources(r.props)
            for pod in pod_specs(DAEMONSET, r.props):
                for target in _node_labels(pod.spec).get(POOL_LABEL) or list(pools):
                    provided.setdefault(target, set()).update(advertised)
    anywhere = set().union(*provided.values()) if provided else set()
    for r in resources:
        if r.resource_type not in POD_KINDS:
            continue
        md = r.props.get("metadata") or {}
        for pod in pod_specs(r.resource_type, r.props):
            pool = _pool_of(pod.spec)
            available = provided.get(pool, set()) if pool is not None else anywhere
            for path, c in containers(pod, init=False):
                for resource in _extended(c):
                    if resource not in available:
                        where = f"pool {pool}" if pool is not None else "any pool"
                        report(f"{r.props.get('kind')} {md.get('namespace')}/{md.get('name')} {path} requests {resource}, which no "
                               f"device plugin advertises on {where}", r.urn)


@rule("E14", "kubernetes-pod-configure-efa-image", "Pods that request EFA devices run an image the stack declares EFA-capable "
      "(libfabric and the aws-ofi-nccl plugin).", level="mandatory", severity="high",
      remediation="Use the stack's EFA image (vllm-fleet:vllm.efa): with the stock vLLM image FI_PROVIDER=efa does nothing and "
      "NCCL falls back to TCP.", sources=("AWS EFA", "vLLM"), kinds=POD_KINDS)
def efa_image(props: Any, report: Any, args: Any) -> None:
    config = args.get_config() or {}
    if "efa_images" not in config:
        return  # outside a stack nothing says which images carry aws-ofi-nccl
    capable = tuple(str(i).rstrip("/") for i in config["efa_images"])
    for pod in pod_specs(args.resource_type, props):
        for path, c in containers(pod, init=False):
            if EFA_RESOURCE in ((c.get("resources") or {}).get("limits") or {}):
                repo = str(c.get("image", "")).partition("@")[0].rsplit(":", 1)[0]
                if repo not in capable:
                    report(f"{path} requests {EFA_RESOURCE} but runs {repo}, which the stack does not declare EFA-capable"
                           + (f" ({', '.join(capable)})" if capable else ""))


CLUSTER_AUTOSCALER_IMAGE = "/cluster-autoscaler"
DISCOVERY_ARG = "--node-group-auto-discovery=asg:tag="
EKS_DISCOVERY_TAGS = ("k8s.io/cluster-autoscaler/enabled", "k8s.io/cluster-autoscaler/{cluster}")


def _cluster_autoscaler_discovery(resources: Any) -> list[set[str]]:
    """The ASG tag keys each Cluster Autoscaler Deployment of the stack discovers node groups by (AWS provider)."""
    out = []
    for r in resources:
        if r.resource_type != "kubernetes:apps/v1:Deployment":
            continue
        for pod in pod_specs(r.resource_type, r.props):
            for _, c in containers(pod, init=False):
                name = str(c.get("image") or "").split("@", 1)[0].rsplit(":", 1)[0]
                words = [str(a) for a in [*(c.get("command") or []), *(c.get("args") or [])]]
                if not name.endswith(CLUSTER_AUTOSCALER_IMAGE) or "--cloud-provider=aws" not in words:
                    continue
                for w in words:
                    if w.startswith(DISCOVERY_ARG):
                        out.append({t.split("=", 1)[0] for t in w.removeprefix(DISCOVERY_ARG).split(",") if t})
    return out


def _nodes_at_up(r: Any, discovery: list[set[str]]) -> tuple[int, str]:
    """The nodes a managed node group has while `pulumi up` waits for pods, and why: a Capacity Block's group its desired
    size (the block's schedule sizes it), a group the stack's Cluster Autoscaler discovers its maximum, any other its
    desired size. EKS tags every managed node group's Auto Scaling group with both auto-discovery tags."""
    scaling = r.props.get("scalingConfig") or {}
    desired = whole(scaling.get("desiredSize", scaling.get("minSize")), 0)
    if r.props.get("capacityType") == "CAPACITY_BLOCK":
        return desired, "its Capacity Block's nodes at `up` time (0 before the block starts)"
    tags = {t.format(cluster=r.props.get("clusterName")) for t in EKS_DISCOVERY_TAGS}
    if any(keys and keys <= tags for keys in discovery):
        return whole(scaling.get("maxSize"), 0), "max_size: the stack's Cluster Autoscaler adds nodes on demand"
    return desired, "desired_size: no node autoscaler of the stack discovers this group"


def _pods_at_min(r: Any, scaled: Mapping[Any, Any]) -> tuple[str | None, list[int], int]:
    """(pool, GPUs of each pod of one replica, replicas) at the workload's minimum (autoscaler min, or its replicas)."""
    props = r.props
    md = props.get("metadata") or {}
    pods = list(pod_specs(r.resource_type, props))
    if not pods:
        return None, [], 0
    autoscaler = scaled.get((md.get("namespace"), props.get("kind"), md.get("name")))
    replicas = autoscaler.min_replicas if autoscaler is not None else whole((props.get("spec") or {}).get("replicas"), 1)
    if r.resource_type == LWS:
        size = _group_size(r.resource_type, props)
        gpus = [pod_gpus(pods[0]), *[pod_gpus(pods[-1])] * (size - 1)]
    else:
        gpus = [pod_gpus(pods[0])]
    return _pool_of(pods[0].spec), [g for g in gpus if g], replicas


def nodes_needed(pod_gpus_list: list[int], per_node: int) -> int:
    """Nodes of `per_node` GPUs that hold these pods, packed first-fit by size (the scheduler cannot split a pod)."""
    free: list[int] = []
    for g in sorted(pod_gpus_list, reverse=True):
        for i, room in enumerate(free):
            if room >= g:
                free[i] -= g
                break
        else:
            free.append(per_node - g)
    return len(free)


@stack_rule("E15", "aws-gpu-pool-configure-capacity-at-up", "Every model's minimum replicas fit the GPU nodes a pool has, or its "
            "node autoscaler can add, while `pulumi up` waits for their pods.", level="mandatory", severity="high",
            remediation="Install a node autoscaler (node_autoscaler.kind: cluster-autoscaler) so managed pools grow to max_size, "
            "raise the pool's desired_size (and min_size), lower the models' minimum replicas, or run `pulumi up` while the "
            "Capacity Block runs. pulumi-kubernetes awaits each Deployment: a pod without a node fails the update at its timeout.",
            sources=("K8S", "pulumi-kubernetes await", "kubernetes/autoscaler AWS README"))
def capacity_at_up(resources: Any, report: Any, args: Any) -> None:
    discovery = _cluster_autoscaler_discovery(resources)
    scaled = autoscaled_workloads(resources)
    pods: dict[str, list[int]] = {}
    for r in resources:
        if r.resource_type in POD_KINDS and r.resource_type not in (DAEMONSET, "kubernetes:batch/v1:Job", "kubernetes:batch/v1:CronJob"):
            pool, group, replicas = _pods_at_min(r, scaled)
            if pool is not None and group:
                pods.setdefault(pool, []).extend(group * replicas)
    for r in resources:
        if r.resource_type != NODE_GROUP:
            continue
        labels = r.props.get("labels") or {}
        pool = labels.get(POOL_LABEL)
        per_node = whole(labels.get(GPUS_PER_NODE_LABEL), 0) or max((gpu_instance_types()[t].gpus for t in _gpu_types(r.props)), default=0)
        wanted = pods.get(str(pool), [])
        if not pool or not per_node or not wanted:
            continue
        have, why = _nodes_at_up(r, discovery)
        need = nodes_needed(wanted, per_node)
        if need > have:
            report(f"pool {pool}: the models' minimum replicas need {sum(wanted)} GPUs on {need} node(s) of {per_node} when `pulumi up` "
                   f"waits for them, but the pool has {have} ({why}) — their pods stay Pending and the update times out", r.urn)
