"""Rule metadata, registration, and the views rules use: pod templates of every workload kind, containers,
vLLM servers and their arguments. Rules judge resources (what reaches the engine), never the stack config."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

from fleet.kinds import AUTOSCALER_TYPES, POD_TYPES
from fleet.quantity import quantity, whole
from policies.commands import flag_value, has_flag, model_of, server_args

__all__ = ["flag_value", "has_flag"]   # re-exported for the rules

SEVERITY = {"low": Severity.LOW, "medium": Severity.MEDIUM, "high": Severity.HIGH, "critical": Severity.CRITICAL}


@dataclass
class Rule:
    id: str                      # catalogue id (GUARDRAILS.md), e.g. "D2"
    name: str                    # <provider>-<resource>-<verb>-<thing>
    description: str
    level: str                   # default: "mandatory" | "advisory"
    severity: str
    remediation: str
    sources: tuple[str, ...]
    kinds: tuple[str, ...]       # resource types judged (for docs and fixtures); () for stack rules
    validate: Callable[..., Any]
    stack: bool = False
    policy: Any = field(default=None, repr=False)

    @property
    def policy_name(self) -> str:
        return f"{self.id.lower()}-{self.name}"


RULES: list[Rule] = []

POD_KINDS = POD_TYPES


def namespace_of(props: Any) -> str | None:
    md = props.get("metadata") if isinstance(props, Mapping) else None
    return md.get("namespace") if isinstance(md, Mapping) else None


def judge(fn: Callable[..., Any], props: Any, report: ReportViolation, args: Any) -> None:
    """Run one rule; a resource it cannot read (a field of the wrong type, a number that is not one) fails closed: a
    finding that says so, never a crash that would take every other rule down with it."""
    try:
        fn(props, report, args)
    except UnknownValueError:
        raise  # the engine's preview unknowns: pulumi_policy skips the rule for this resource
    except (ValueError, TypeError, AttributeError, KeyError, IndexError) as exc:
        report(f"cannot judge this resource: a field has an unexpected shape ({type(exc).__name__}: {exc}) — fix the "
               "manifest so that it matches the Kubernetes schema", None)


def rule(rule_id: str, name: str, description: str, *, level: str, severity: str, remediation: str,
         sources: tuple[str, ...], kinds: tuple[str, ...] = ()) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a resource rule. The function gets (props, report, args) and calls report(message)."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
            if kinds and args.resource_type not in kinds:
                return
            props = args.props
            # Exemptions come only from the pack's config: exact objects, each with its reason
            # (fleet.render.exemptions for the platform's own, the stack's `policy.exemptions`).
            if object_ref(props) in ((args.get_config() or {}).get("exempt_resources") or {}):
                return
            judge(fn, props, report_violation, args)

        r = Rule(rule_id, name, description, level, severity, remediation, sources, kinds, validate)
        r.policy = ResourceValidationPolicy(
            name=r.policy_name, description=description, validate=validate,
            enforcement_level=EnforcementLevel.MANDATORY if level == "mandatory" else EnforcementLevel.ADVISORY,
            severity=SEVERITY[severity], remediation_steps=remediation, tags=[rule_id, *sources])
        RULES.append(r)
        return fn

    return wrap


def stack_rule(rule_id: str, name: str, description: str, *, level: str, severity: str, remediation: str,
               sources: tuple[str, ...]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a rule over the whole stack (relations between resources)."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
            judge(fn, args.resources, report_violation, args)

        r = Rule(rule_id, name, description, level, severity, remediation, sources, (), validate, stack=True)
        r.policy = StackValidationPolicy(
            name=r.policy_name, description=description, validate=validate,
            enforcement_level=EnforcementLevel.MANDATORY if level == "mandatory" else EnforcementLevel.ADVISORY,
            severity=SEVERITY[severity], remediation_steps=remediation, tags=[rule_id, *sources])
        RULES.append(r)
        return fn

    return wrap


# ------------------------------------------------------------------------------------------ pod views

@dataclass
class PodView:
    path: str                     # where the pod spec lives, e.g. "spec.template.spec"
    spec: Mapping[str, Any]
    labels: Mapping[str, Any]


def pod_specs(resource_type: str, props: Any) -> Iterator[PodView]:
    spec = props.get("spec") or {}
    if resource_type == "kubernetes:core/v1:Pod":
        yield PodView("spec", spec, (props.get("metadata") or {}).get("labels") or {})
    elif resource_type in ("kubernetes:apps/v1:Deployment", "kubernetes:apps/v1:StatefulSet",
                           "kubernetes:apps/v1:DaemonSet", "kubernetes:apps/v1:ReplicaSet", "kubernetes:batch/v1:Job"):
        template = spec.get("template") or {}
        yield PodView("spec.template.spec", template.get("spec") or {}, (template.get("metadata") or {}).get("labels") or {})
    elif resource_type == "kubernetes:batch/v1:CronJob":
        template = ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}
        yield PodView("spec.jobTemplate.spec.template.spec", template.get("spec") or {},
                      (template.get("metadata") or {}).get("labels") or {})
    elif resource_type == "kubernetes:leaderworkerset.x-k8s.io/v1:LeaderWorkerSet":
        lwt = spec.get("leaderWorkerTemplate") or {}
        for key in ("leaderTemplate", "workerTemplate"):
            template = lwt.get(key)
            if template:
                yield PodView(f"spec.leaderWorkerTemplate.{key}.spec", template.get("spec") or {},
                              (template.get("metadata") or {}).get("labels") or {})


def containers(pod: PodView, init: bool = True) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for key in ("containers", *(("initContainers", "ephemeralContainers") if init else ())):
        for i, c in enumerate(pod.spec.get(key) or []):
            yield f"{pod.path}.{key}[{i}]", c


# Extended resources that put an accelerator in the pod (MIG slices and time-sliced GPUs included).
GPU_RESOURCES = frozenset({"nvidia.com/gpu", "nvidia.com/gpu.shared", "amd.com/gpu", "gpu.intel.com/i915", "gpu.intel.com/xe",
                           "habana.ai/gaudi"})


def is_gpu_resource(name: str) -> bool:
    return name in GPU_RESOURCES or name.startswith("nvidia.com/mig-")


def gpu_limit(container: Mapping[str, Any]) -> int:
    """GPUs of any vendor the container gets (its limits; its requests when it sets only those)."""
    res = container.get("resources") or {}
    amounts = res.get("limits") or res.get("requests") or {}
    return sum(int(quantity(v) or 0) for k, v in amounts.items() if is_gpu_resource(str(k)))


def pod_gpus(pod: PodView) -> int:
    return sum(gpu_limit(c) for _, c in containers(pod, init=False))


def vllm_serve_args(container: Mapping[str, Any]) -> list[str] | None:
    """Arguments of vLLM's OpenAI server however the container starts it (policies.commands), or None."""
    return server_args(container)


LWS_TYPE = "kubernetes:leaderworkerset.x-k8s.io/v1:LeaderWorkerSet"


@dataclass(frozen=True)
class VllmServer:
    ref: str                      # Kind/namespace/name of the workload
    namespace: Any
    labels: Mapping[str, Any]     # its pods' (a LeaderWorkerSet's with the name label LWS adds)
    ports: frozenset[int]         # container ports of the pod
    model: str | None
    served: str | None
    image: str


def vllm_servers(resources: Sequence[Any]) -> list[VllmServer]:
    """Every pod template that runs vLLM's server (one entry per server container), with its labels, ports, model
    and image: what Services (F5) and InferencePools (H1, H4) select."""
    out = []
    for r in resources:
        if r.resource_type not in POD_KINDS:
            continue
        md = r.props.get("metadata") or {}
        for pod in pod_specs(r.resource_type, r.props):
            ports = frozenset(int(shown_number(p.get("containerPort"))) for _, c in containers(pod, init=False)
                              for p in c.get("ports") or [] if p.get("containerPort") is not None)
            for _, c in containers(pod, init=False):
                args = vllm_serve_args(c)
                if args is None:
                    continue
                labels = dict(pod.labels)
                if r.resource_type == LWS_TYPE:
                    labels["leaderworkerset.sigs.k8s.io/name"] = md.get("name")
                out.append(VllmServer(object_ref(r.props), md.get("namespace"), labels, ports, model_of(args),
                                      flag_value(args, "--served-model-name"), str(c.get("image") or "")))
    return out


@dataclass(frozen=True)
class ScaleTarget:
    urn: str                      # the autoscaler's
    kind: str                     # HorizontalPodAutoscaler | ScaledObject
    min_replicas: int
    max_replicas: int | None


def autoscaled_workloads(resources: Sequence[Any]) -> dict[tuple[Any, Any, Any], ScaleTarget]:
    """(namespace, kind, name) of every workload an HPA or a KEDA ScaledObject scales, with its bounds."""
    out = {}
    for r in resources:
        if r.resource_type not in AUTOSCALER_TYPES:
            continue
        spec = r.props.get("spec") or {}
        target = spec.get("scaleTargetRef") or {}
        md = r.props.get("metadata") or {}
        low = whole(spec.get("minReplicas", spec.get("minReplicaCount")), 1)
        high = spec.get("maxReplicas", spec.get("maxReplicaCount"))
        out[(md.get("namespace"), target.get("kind", "Deployment"), target.get("name"))] = ScaleTarget(
            r.urn, str(r.props.get("kind")), low, whole(high, 0) if high is not None else None)
    return out


def to_plain_data(value: Any) -> Any:
    """Policy props (read-only proxies that raise on unknown values) as plain data; unknowns become None."""
    if isinstance(value, Mapping):
        out = {}
        for k in list(value):
            try:
                out[k] = to_plain_data(value[k])
            except UnknownValueError:
                out[k] = None
        return out
    if isinstance(value, Sequence) and not isinstance(value, str):
        items = []
        for i in range(len(value)):
            try:
                items.append(to_plain_data(value[i]))
            except UnknownValueError:
                items.append(None)
        return items
    return value


def has_key(props: Any, key: str) -> bool:
    """Whether an input is set, without reading it (its value may be unknown at preview)."""
    return key in list(props)


def shown_number(value: Any) -> Any:
    """Numbers reach policies as protobuf doubles (8000.0): show whole numbers as ints."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def object_ref(props: Any) -> str:
    md = props.get("metadata") or {}
    ns = md.get("namespace")
    return f"{props.get('kind', '?')}/{ns + '/' if ns else ''}{md.get('name', '?')}"
