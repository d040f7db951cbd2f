"""G: reliability of GPU serving (startup budgets, probes, drain, rollout headroom, disruption, autoscaling, spread)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fleet.quantity import whole
from policies.commands import command_lines, int_value
from policies.framework import POD_KINDS, autoscaled_workloads, containers, flag_value, pod_gpus, pod_specs, rule, shown_number, stack_rule, vllm_serve_args

MIN_STARTUP_BUDGET = 600
LWS = "kubernetes:leaderworkerset.x-k8s.io/v1:LeaderWorkerSet"
LWS_NAME_LABEL = "leaderworkerset.sigs.k8s.io/name"
# Workloads that run several identical pods (or pod groups) a node drain could take down together.
REPLICATED = ("kubernetes:apps/v1:Deployment", "kubernetes:apps/v1:StatefulSet", "kubernetes:apps/v1:ReplicaSet", LWS)
MIN_SCALE_DOWN = 300


def _servers(args: Any, props: Any) -> list[tuple[Any, str, Mapping[str, Any], list[str]]]:
    out = []
    for pod in pod_specs(args.resource_type, props):
        for path, c in containers(pod, init=False):
            vargs = vllm_serve_args(c)
            if vargs is not None:
                out.append((pod, path, c, vargs))
    return out


def _budget(probe: Mapping[str, Any]) -> int:
    """Seconds a probe lets a container start (Kubernetes defaults: period 10 s, failureThreshold 3)."""
    return whole(probe.get("periodSeconds"), 10) * whole(probe.get("failureThreshold"), 3) + whole(probe.get("initialDelaySeconds"), 0)


@rule("G1", "kubernetes-vllm-configure-startup-probe", "A startupProbe whose budget covers the model load (≥ 600 s by "
      "default), on /health or any other endpoint that answers once the model is loaded.", level="mandatory", severity="high",
      remediation="Add startupProbe {httpGet: /health, periodSeconds: 10, failureThreshold: 60+}; never rely on a fixed "
      "initialDelaySeconds.", sources=("KServe", "production-stack"), kinds=POD_KINDS)
def startup_probe(props: Any, report: Any, args: Any) -> None:
    minimum = whole((args.get_config() or {}).get("min_startup_seconds"), MIN_STARTUP_BUDGET)
    for _, path, c, _ in _servers(args, props):
        probe = c.get("startupProbe")
        if not probe:
            report(f"{path} has no startupProbe")
        elif _budget(probe) < minimum:
            report(f"{path}: startupProbe allows {_budget(probe)} s, less than {minimum} s")


@rule("G2", "kubernetes-vllm-configure-health-probes", "Readiness and liveness probes with timeouts; liveness checks only "
      "the server itself.", level="mandatory", severity="medium", remediation="Add readinessProbe and livenessProbe on "
      "/health with timeoutSeconds.", sources=("BPG",), kinds=POD_KINDS)
def health_probes(props: Any, report: Any, args: Any) -> None:
    for _, path, c, _ in _servers(args, props):
        for name in ("readinessProbe", "livenessProbe"):
            probe = c.get(name)
            if not probe:
                report(f"{path} has no {name}")
            elif "timeoutSeconds" not in probe:
                report(f"{path}.{name} has no timeoutSeconds")
        # An exec probe runs inside the container (curl localhost is the server itself); an httpGet with `host`
        # asks another machine, whose outage would restart every replica.
        live = c.get("livenessProbe") or {}
        if (live.get("httpGet") or {}).get("host"):
            report(f"{path}.livenessProbe depends on something outside the container")


def _prestop_seconds(c: Mapping[str, Any]) -> int | None:
    """The preStop sleep: `sleep: {seconds}`, or an exec hook whose first command is `sleep N` (also inside
    `sh -c 'sleep 10'`). A drain loop or any other script is not a sleep."""
    pre = (c.get("lifecycle") or {}).get("preStop") or {}
    if pre.get("sleep"):
        return whole(pre["sleep"].get("seconds"), 0)
    lines = command_lines({"command": (pre.get("exec") or {}).get("command") or []})
    first = lines[0] if lines else []
    if len(first) == 2 and first[0].rsplit("/", 1)[-1] == "sleep" and first[1].isdigit():
        return int(first[1])
    return None


@rule("G3", "kubernetes-vllm-configure-graceful-drain", "preStop sleep, and terminationGracePeriodSeconds ≥ preStop + "
      "--shutdown-timeout + 5.", level="mandatory", severity="medium", remediation="Add lifecycle.preStop sleep (~15 s), "
      "--shutdown-timeout on vLLM ≥ 0.18, and a grace period larger than both.", sources=("KServe", "vLLM ≥ 0.18"),
      kinds=POD_KINDS)
def graceful_drain(props: Any, report: Any, args: Any) -> None:
    for pod, path, c, vargs in _servers(args, props):
        pre = _prestop_seconds(c)
        if pre is None:
            report(f"{path} has no preStop sleep")
            continue
        shutdown = int_value(flag_value(vargs, "--shutdown-timeout")) or 0
        grace = whole(pod.spec.get("terminationGracePeriodSeconds"), 30)
        if grace < pre + shutdown + 5:
            report(f"{path}: terminationGracePeriodSeconds {grace} < preStop {pre} + shutdown-timeout {shutdown} + 5")


@rule("G4", "kubernetes-deployment-configure-gpu-surge", "Rollout surge × GPUs per pod fits the spare GPU headroom; "
      "otherwise maxSurge 0.", level="mandatory", severity="medium", remediation="Set maxSurge: 0, maxUnavailable: 1, or "
      "raise the stack's spare_gpus.", sources=("production-stack surge doubles GPUs",), kinds=("kubernetes:apps/v1:Deployment",))
def gpu_surge(props: Any, report: Any, args: Any) -> None:
    spare = whole((args.get_config() or {}).get("spare_gpus"), 0)
    spec = props.get("spec") or {}
    gpus = sum(pod_gpus(p) for p in pod_specs(args.resource_type, props))
    strategy = spec.get("strategy") or {}
    if not gpus or strategy.get("type") == "Recreate":
        return
    surge = (strategy.get("rollingUpdate") or {}).get("maxSurge", "25%")
    replicas = whole(spec.get("replicas"), 1)
    if isinstance(surge, str) and surge.endswith("%"):
        surge_pods = -(-replicas * whole(surge[:-1], 25) // 100)
    else:
        surge_pods = whole(surge, 1)
    if surge_pods * gpus > spare:
        report(f"maxSurge {surge} adds {surge_pods * gpus} GPU(s) during a rollout but the stack keeps {spare} spare")


@rule("G5", "kubernetes-pdb-disallow-zero-disruption", "Disruption budgets never forbid every eviction.", level="mandatory",
      severity="medium", remediation="Use maxUnavailable: 1.", sources=("GK", "Pulumi"),
      kinds=("kubernetes:policy/v1:PodDisruptionBudget",))
def zero_disruption(props: Any, report: Any, args: Any) -> None:
    spec = props.get("spec") or {}
    if str(shown_number(spec.get("maxUnavailable", ""))) in ("0", "0%"):
        report("maxUnavailable 0 blocks node drains")
    if str(spec.get("minAvailable", "")) == "100%":
        report("minAvailable 100% blocks node drains")


@stack_rule("G5", "kubernetes-workload-configure-pdb", "Workloads with two or more replicas have a PodDisruptionBudget.",
            level="mandatory", severity="medium", remediation="Add a PodDisruptionBudget (maxUnavailable: 1) selecting the pods.",
            sources=("GK", "Pulumi"))
def needs_pdb(resources: Any, report: Any, args: Any) -> None:
    pdbs: dict[Any, list[Mapping[str, Any]]] = {}
    for r in resources:
        if r.resource_type == "kubernetes:policy/v1:PodDisruptionBudget":
            md = r.props.get("metadata") or {}
            pdbs.setdefault(md.get("namespace"), []).append(((r.props.get("spec") or {}).get("selector") or {}).get("matchLabels") or {})
    scaled = autoscaled_workloads(resources)
    for r in resources:
        if r.resource_type not in REPLICATED:
            continue
        spec = r.props.get("spec") or {}
        md = r.props.get("metadata") or {}
        autoscaler = scaled.get((md.get("namespace"), r.props.get("kind"), md.get("name")))
        replicas = whole(spec["replicas"], 1) if "replicas" in spec else autoscaler.min_replicas if autoscaler else 1
        if replicas < 2:
            continue
        # every pod of the workload must be covered: a LeaderWorkerSet's leaders and workers carry its name label
        pods = [dict(p.labels) for p in pod_specs(r.resource_type, r.props)]
        if r.resource_type == LWS:
            pods = [{**labels, LWS_NAME_LABEL: md.get("name")} for labels in pods]
        covered = bool(pods) and all(any(sel and all(labels.get(k) == v for k, v in sel.items())
                                         for sel in pdbs.get(md.get("namespace"), [])) for labels in pods)
        if not covered:
            report(f"{r.props.get('kind')} {md.get('namespace')}/{md.get('name')} has {replicas} replicas and no "
                   "PodDisruptionBudget", r.urn)


@stack_rule("G8", "kubernetes-workload-disallow-replicas-under-autoscaler", "A workload an HPA or ScaledObject scales does not set "
            "spec.replicas.", level="mandatory", severity="high",
            remediation="Leave spec.replicas out of the workload: under server-side apply the next update that sets it conflicts "
            "with the autoscaler's field manager and fails (pulumi-kubernetes #2569, #3312).",
            sources=("Pulumi", "K8S server-side apply"))
def replicas_under_autoscaler(resources: Any, report: Any, args: Any) -> None:
    scaled = autoscaled_workloads(resources)
    for r in resources:
        if r.resource_type not in POD_KINDS:
            continue
        md = r.props.get("metadata") or {}
        autoscaler = scaled.get((md.get("namespace"), r.props.get("kind"), md.get("name")))
        if autoscaler is not None and "replicas" in list(r.props.get("spec") or {}):
            report(f"{r.props.get('kind')} {md.get('namespace')}/{md.get('name')} sets spec.replicas but {autoscaler.kind} "
                   f"{md.get('namespace')}/{md.get('name')} owns the count", r.urn)


@rule("G6", "kubernetes-autoscaler-configure-vllm-signal", "Autoscalers scale on vLLM queue or running metrics, with a "
      "scale-down window ≥ 300 s.", level="mandatory", severity="medium", remediation="Scale on vllm:num_requests_waiting "
      "(vllm_num_requests_waiting via prometheus-adapter) and set behavior.scaleDown.stabilizationWindowSeconds ≥ 300.",
      sources=("GKE", "K8S"), kinds=("kubernetes:autoscaling/v2:HorizontalPodAutoscaler",))
def autoscaler_signal(props: Any, report: Any, args: Any) -> None:
    spec = props.get("spec") or {}
    names = []
    for m in spec.get("metrics") or []:
        body = m.get(str(m.get("type", "")).lower() if m.get("type") != "ContainerResource" else "containerResource") or {}
        metric = (body.get("metric") or {}).get("name") or body.get("name")
        names.append(str(metric))
    if not any("num_requests_waiting" in n or "num_requests_running" in n for n in names):
        report(f"scales on {', '.join(names) or 'no metric'} instead of the vLLM queue")
    if any("DCGM" in n or n == "cpu" for n in names):
        report(f"scales on {', '.join(n for n in names if 'DCGM' in n or n == 'cpu')}, which continuous batching keeps high")
    # Unset, the HPA's scale-down stabilization window is Kubernetes's default of 300 s, which is enough.
    window = (((spec.get("behavior") or {}).get("scaleDown")) or {}).get("stabilizationWindowSeconds")
    if window is not None and whole(window, 0) < MIN_SCALE_DOWN:
        report(f"scale-down stabilization window is {shown_number(window)} s (< {MIN_SCALE_DOWN} s)")


@rule("G7", "kubernetes-workload-configure-spread", "Workloads with two or more replicas spread across nodes or zones.",
      level="advisory", severity="low", remediation="Add topologySpreadConstraints on kubernetes.io/hostname and "
      "topology.kubernetes.io/zone.", sources=("BPG",), kinds=("kubernetes:apps/v1:Deployment", "kubernetes:apps/v1:StatefulSet"))
def spread(props: Any, report: Any, args: Any) -> None:
    spec = props.get("spec") or {}
    if whole(spec.get("replicas"), 1) < 2:
        return
    for pod in pod_specs(args.resource_type, props):
        keys = {t.get("topologyKey") for t in pod.spec.get("topologySpreadConstraints") or []}
        anti = ((pod.spec.get("affinity") or {}).get("podAntiAffinity"))
        if not keys & {"kubernetes.io/hostname", "topology.kubernetes.io/zone"} and not anti:
            report(f"{shown_number(spec.get('replicas'))} replicas without topology spread or anti-affinity")
