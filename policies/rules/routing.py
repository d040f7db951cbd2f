"""H. Inference routing: the Gateway API Inference Extension's pools, pickers and routes (docs/gateway.md). Stack rules:
each judges relations between resources (a pool and the pods it selects, a route and the grants it needs, a picker and
the bindings of its account)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from policies.framework import POD_KINDS, VllmServer, containers, object_ref, pod_specs, shown_number, stack_rule, vllm_servers

POOL = "kubernetes:inference.networking.k8s.io/v1:InferencePool"
ROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"
GRANTS = ("kubernetes:gateway.networking.k8s.io/v1beta1:ReferenceGrant", "kubernetes:gateway.networking.k8s.io/v1:ReferenceGrant")
SERVICE = "kubernetes:core/v1:Service"
CLUSTER_BINDING = "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding"
# Images of endpoint pickers, recognised whether or not a pool references them.
PICKER_IMAGES = ("gateway-api-inference-extension/epp", "llm-d-inference-scheduler")


def _pool_selector(props: Any) -> dict[str, Any]:
    return dict(((props.get("spec") or {}).get("selector") or {}).get("matchLabels") or {})


def _pools(resources: Sequence[Any]) -> list[tuple[Any, list[VllmServer]]]:
    """Every InferencePool with the vLLM pod templates its selector matches in its namespace."""
    pools = [r for r in resources if r.resource_type == POOL]
    servers = vllm_servers(resources) if pools else []
    out = []
    for pool in pools:
        ns = (pool.props.get("metadata") or {}).get("namespace")
        selector = _pool_selector(pool.props)
        out.append((pool, sorted((s for s in servers if s.namespace == ns and selector
                                  and all(s.labels.get(k) == v for k, v in selector.items())), key=lambda s: s.ref)))
    return out


@stack_rule("H1", "kubernetes-inferencepool-require-vllm-pods", "An InferencePool selects vLLM pods that listen on its target port.",
            level="mandatory", severity="high",
            remediation="Make spec.selector.matchLabels match the labels of the model's serving pods (in the pool's namespace) "
            "and spec.targetPorts the port vLLM listens on; an empty pool answers every request with an error.",
            sources=("GIE",))
def pool_selects_servers(resources: Any, report: Any, args: Any) -> None:
    for r, selected in _pools(resources):
        if not selected:
            report(f"{object_ref(r.props)} selects no vLLM pods (selector {_pool_selector(r.props) or '{}'})", r.urn)
            continue
        ports = {int(shown_number(p.get("number"))) for p in (r.props.get("spec") or {}).get("targetPorts") or []}
        for s in selected:
            missing = sorted(ports - s.ports)
            if missing:
                report(f"{object_ref(r.props)} targets port {', '.join(map(str, missing))}, which the pods of {s.ref} do not expose", r.urn)


def _granted(grants: list[Any], route_ns: Any, target_ns: Any, group: str, kind: str, name: Any) -> bool:
    for g in grants:
        md = g.props.get("metadata") or {}
        if md.get("namespace") != target_ns:
            continue
        spec = g.props.get("spec") or {}
        from_ok = any(f.get("group") == "gateway.networking.k8s.io" and f.get("kind") == "HTTPRoute" and f.get("namespace") == route_ns
                      for f in spec.get("from") or [])
        to_ok = any((t.get("group") or "") == group and t.get("kind") == kind and t.get("name") in (None, "", name)
                    for t in spec.get("to") or [])
        if from_ok and to_ok:
            return True
    return False


@stack_rule("H2", "gateway-httproute-require-referencegrant", "An HTTPRoute reaches a backend in another namespace only with a "
            "ReferenceGrant from that namespace.", level="mandatory", severity="high",
            remediation="Route to pools in the route's own namespace (one route per team), or have the owner of the target "
            "namespace grant it with a ReferenceGrant (from HTTPRoute in the route's namespace, to the backend's kind); without "
            "one the gateway refuses the reference and the route serves nothing.",
            sources=("Gateway API",))
def cross_namespace_backends(resources: Any, report: Any, args: Any) -> None:
    grants = [r for r in resources if r.resource_type in GRANTS]
    for r in resources:
        if r.resource_type != ROUTE:
            continue
        ns = (r.props.get("metadata") or {}).get("namespace")
        for i, rule in enumerate((r.props.get("spec") or {}).get("rules") or []):
            for j, ref in enumerate(rule.get("backendRefs") or []):
                target = ref.get("namespace")
                if target in (None, "", ns):
                    continue
                group, kind = ref.get("group") or "", ref.get("kind") or "Service"
                if not _granted(grants, ns, target, group, kind, ref.get("name")):
                    report(f"{object_ref(r.props)} rules[{i}].backendRefs[{j}] points at {kind} {target}/{ref.get('name')} "
                           f"without a ReferenceGrant in {target}", r.urn)


def _pickers(resources: Sequence[Any]) -> dict[tuple[Any, Any], Any]:
    """(namespace, name) → Deployment of every endpoint picker: the workloads behind a pool's endpointPickerRef
    Service, and any workload running a picker image."""
    services = {((r.props.get("metadata") or {}).get("namespace"), (r.props.get("metadata") or {}).get("name")): r
                for r in resources if r.resource_type == SERVICE}
    selectors = []
    for r in resources:
        if r.resource_type == POOL:
            ns = (r.props.get("metadata") or {}).get("namespace")
            svc = services.get((ns, ((r.props.get("spec") or {}).get("endpointPickerRef") or {}).get("name")))
            if svc is not None:
                selectors.append((ns, dict((svc.props.get("spec") or {}).get("selector") or {})))
    out = {}
    for r in resources:
        if r.resource_type not in POD_KINDS:
            continue
        md = r.props.get("metadata") or {}
        for pod in pod_specs(r.resource_type, r.props):
            by_ref = any(ns == md.get("namespace") and sel and all(pod.labels.get(k) == v for k, v in sel.items())
                         for ns, sel in selectors)
            by_image = any(any(i in str(c.get("image") or "") for i in PICKER_IMAGES) for _, c in containers(pod, init=False))
            if by_ref or by_image:
                out[(md.get("namespace"), md.get("name"))] = (r, pod)
    return out


@stack_rule("H3", "kubernetes-endpoint-picker-configure-limits-and-rbac", "An endpoint picker has CPU and memory limits and no "
            "cluster-wide RBAC.", level="mandatory", severity="high",
            remediation="Set resources.limits (cpu, memory) on every picker container — it sits on every request's path; grant "
            "its ServiceAccount a Role in the pool's namespace (get/list/watch pods, inferencepools, inferenceobjectives), never a "
            "ClusterRoleBinding (run it with --metrics-endpoint-auth=false so it needs no TokenReview rights).",
            sources=("GIE", "CIS 5.1"))
def picker_limits_and_rbac(resources: Any, report: Any, args: Any) -> None:
    bindings = [r for r in resources if r.resource_type == CLUSTER_BINDING]
    for (ns, _name), (r, pod) in sorted(_pickers(resources).items(), key=lambda kv: str(kv[0])):
        for path, c in containers(pod, init=False):
            limits = (c.get("resources") or {}).get("limits") or {}
            missing = [k for k in ("cpu", "memory") if k not in limits]
            if missing:
                report(f"{object_ref(r.props)} {path} (endpoint picker) has no {' or '.join(missing)} limit", r.urn)
        account = pod.spec.get("serviceAccountName") or "default"
        for b in bindings:
            if any(s.get("kind") == "ServiceAccount" and s.get("name") == account and s.get("namespace") == ns
                   for s in b.props.get("subjects") or []):
                role = (b.props.get("roleRef") or {}).get("name")
                report(f"{object_ref(r.props)} (endpoint picker) runs as {ns}/{account}, which {object_ref(b.props)} binds to "
                       f"ClusterRole {role} cluster-wide", r.urn)


@stack_rule("H4", "kubernetes-inferencepool-require-uniform-pods", "The pods of an InferencePool serve one model with one vLLM "
            "release.", level="mandatory", severity="high",
            remediation="Give each model (and each vLLM release during a migration) its own pool and route: the picker scores "
            "the pool's pods as interchangeable, so a request for one model would land on a pod serving another.",
            sources=("GIE",))
def pool_pods_agree(resources: Any, report: Any, args: Any) -> None:
    for r, selected in _pools(resources):
        served = {(s.served or s.model) for s in selected}
        if len(served) > 1:
            report(f"{object_ref(r.props)} selects pods serving different models: "
                   f"{', '.join(f'{s.ref} ({s.served or s.model})' for s in selected)}", r.urn)
        images = {s.image.split("@")[0] for s in selected}
        if len(images) > 1:
            report(f"{object_ref(r.props)} selects pods running different vLLM images: "
                   f"{', '.join(f'{s.ref} ({s.image})' for s in selected)}", r.urn)
