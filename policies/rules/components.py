"""I. Component contracts: every container of a catalogued component (fleet/catalog/components/) is judged against what
its pinned release accepts and needs, read from the release's source at the tag — flags, ports, probes, env, host
mounts, capabilities, the API token, RBAC, TLS pairing, the ext_proc body mode — and the versions the stack pairs
(inference extension ↔ scheduler ↔ vLLM metric names ↔ CRD versions) must form a combination of the matrix.
Each finding names the object, the field and the release that would reject it, with the source to re-check."""

from __future__ import annotations

import shlex
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fleet.catalog.contracts import (
    ParsedArgs,
    Release,
    components,
    effective,
    flag_on,
    lookup,
    matrix,
    parse_args,
    port_number,
)
from fleet.vllm.flags import available_versions
from fleet.vllm.flags import table as vllm_table
from policies.env import resolved_env
from policies.framework import (
    POD_KINDS,
    PodView,
    containers,
    object_ref,
    pod_specs,
    rule,
    shown_number,
    stack_rule,
    vllm_servers,
)
from policies.rules.vllm import image_version

SA_TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
POOL = "kubernetes:inference.networking.k8s.io/v1:InferencePool"
ENVOY_FILTER = "kubernetes:networking.istio.io/v1alpha3:EnvoyFilter"
DESTINATION_RULES = ("kubernetes:networking.istio.io/v1:DestinationRule", "kubernetes:networking.istio.io/v1beta1:DestinationRule")
SERVICE = "kubernetes:core/v1:Service"
SERVICE_MONITOR = "kubernetes:monitoring.coreos.com/v1:ServiceMonitor"
SERVICE_ACCOUNT = "kubernetes:core/v1:ServiceAccount"
ROLE_TYPES = {"Role": "kubernetes:rbac.authorization.k8s.io/v1:Role", "ClusterRole": "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole"}
ROLE_BINDING = "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding"
CLUSTER_BINDING = "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding"
HF_CLI = "hf-cli"
HF_FALLBACK = "1.31.0"     # the oldest huggingface_hub catalogued: for a vLLM image the catalogue has no release of


@dataclass
class Judged:
    """One container of a catalogued release, with its command line read as the release reads it."""
    path: str
    container: Mapping[str, Any]
    release: Release
    parsed: ParsedArgs | None
    values: dict[str, Any]          # every flag's effective value

    def where(self, props: Any) -> str:
        return f"{object_ref(props)} {self.path}"

    def cite(self, source: str | None = None) -> str:
        return f"({source or self.release.source()})"


def _env_values(c: Mapping[str, Any]) -> dict[str, str]:
    return {k: v.value or "" for k, v in resolved_env(c).items() if v.source == "value"}


def judged(props: Any, pod: PodView) -> Iterator[tuple[Judged | None, str, Mapping[str, Any], str]]:
    """(judged container or None, path, container, image) for each container whose repository is catalogued."""
    for path, c in containers(pod):
        image = str(c.get("image") or "")
        comp, release = lookup(image)
        if comp is None:
            continue
        if release is None or comp.name == "vllm":
            yield None, path, c, image
            continue
        table = release.flags
        parsed = None
        if table is not None and not c.get("command"):
            parsed = parse_args(table, [str(a) for a in c.get("args") or []])
        yield Judged(path, c, release, parsed, effective(table, parsed, _env_values(c))), path, c, image


def _releases_of(image: str) -> str:
    comp, _ = lookup(image)
    return ", ".join(comp.releases) if comp else ""


def _container_ports(c: Mapping[str, Any]) -> dict[str, int]:
    return {str(p.get("name")): int(shown_number(p.get("containerPort"))) for p in c.get("ports") or [] if p.get("containerPort") is not None}


def listening(j: Judged) -> dict[int, dict[str, Any]]:
    """Port → contract entry of every port the release listens on with its effective flags."""
    out = {}
    for p in j.release.get("ports") or []:
        number = port_number(j.values.get(p["flag"])) if "flag" in p else p.get("port")
        if number:
            out[number] = p
    return out


def tls_on(j: Judged, port: Mapping[str, Any]) -> bool:
    return port.get("tls") == "always" or flag_on(j.values, port.get("tls_flag"))


def _probe_port(probe: Mapping[str, Any], named: dict[str, int]) -> tuple[str, int | None]:
    for kind in ("grpc", "httpGet", "tcpSocket"):
        if kind in probe:
            port = (probe.get(kind) or {}).get("port")
            if isinstance(port, str) and not port.isdigit():
                return kind, named.get(port)
            return kind, int(shown_number(port)) if port is not None else None
    return "", None


def _host_paths(pod: PodView, c: Mapping[str, Any]) -> set[str]:
    volumes = {v.get("name"): v for v in pod.spec.get("volumes") or []}
    out = set()
    for m in c.get("volumeMounts") or []:
        host = (volumes.get(m.get("name")) or {}).get("hostPath")
        if host:
            out.add(str(host.get("path") or "").rstrip("/"))
    return out


def _hf_commands(script: str) -> Iterator[list[str]]:
    """The argument lists of each `hf download` in a shell script (commands joined with && or ;)."""
    try:
        words = shlex.split(script)
    except ValueError:
        return
    cur: list[str] = []
    for w in [*words, "&&"]:
        if w in ("&&", ";", "||", "|"):
            if cur[:2] == ["hf", "download"]:
                yield cur[2:]
            cur = []
        else:
            cur.append(w)


def hf_release(vllm: Release | None) -> Release:
    """The Hugging Face CLI a vLLM image runs: the huggingface_hub its release requires (vllm.yaml `ships`)."""
    version = str(((vllm.get("ships") if vllm is not None else None) or {}).get(HF_CLI) or HF_FALLBACK)
    return components()[HF_CLI].releases[version]


def _check_hf(props: Any, path: str, c: Mapping[str, Any], vllm: Release | None, report: Any) -> None:
    hf = hf_release(vllm)
    table = hf.flags
    assert table is not None
    for script in [*(c.get("command") or []), *(c.get("args") or [])]:
        for argv in _hf_commands(str(script)):
            for err in parse_args(table, argv).errors:
                report(f"{object_ref(props)} {path}.args: `hf download` — {err}: huggingface_hub {hf.version} would refuse it "
                       f"({hf.source()})")


@rule("I1", "kubernetes-container-match-component-contract", "Every container of a catalogued component runs with arguments, "
      "ports, probes, env, host mounts and capabilities its pinned release accepts and needs.",
      level="mandatory", severity="high",
      remediation="Change the field the finding names to what the release accepts (its flag table and contract in "
      "fleet/catalog/components/, each fact with its source), or move the image to a release that has it and add that "
      "release's entry (docs/components.md): a flag the binary does not define makes it exit at start.",
      sources=("component releases", "fleet/catalog/components"), kinds=POD_KINDS)
def container_contract(props: Any, report: Any, args: Any) -> None:
    for pod in pod_specs(args.resource_type, props):
        for j, path, c, image in judged(props, pod):
            if j is None:
                comp, _ = lookup(image)
                if comp is not None and comp.name != "vllm":
                    report(f"{object_ref(props)} {path}.image: {image} is {comp.title} at a release the catalogue has no "
                           f"contract for (catalogued: {_releases_of(image)}); add its entry (docs/components.md) or pin a catalogued one")
                elif comp is not None:
                    _check_hf(props, path, c, lookup(image)[1], report)
                continue
            _judge(props, pod, j, report)


def _judge(props: Any, pod: PodView, j: Judged, report: Any) -> None:
    rel, c, where = j.release, j.container, j.where(props)
    label = rel.label
    if j.parsed is not None:
        for err in j.parsed.errors:
            report(f"{where}.args: {label} exits with \"{err}\" {j.cite()}")
    if rel.get("args") == "none" and (c.get("args") or c.get("command")):
        report(f"{where}.args: {label} takes no arguments {j.cite(rel.get('args_source'))}")
    ports = listening(j)
    named = _container_ports(c)
    if rel.get("ports") is not None:
        for name, number in sorted(named.items()):
            if number not in ports:
                report(f"{where}.ports[{name}]: {label} does not listen on {number} (it listens on "
                       f"{', '.join(map(str, sorted(ports))) or 'no port'}) {j.cite()}")
        for key in ("readinessProbe", "livenessProbe", "startupProbe"):
            probe = c.get(key)
            if not probe:
                continue
            kind, probed = _probe_port(probe, named)
            entry = ports.get(probed) if probed is not None else None
            if kind and entry is None:
                report(f"{where}.{key}: probes port {probed}, where {label} does not listen {j.cite()}")
            elif kind == "grpc" and entry is not None and entry.get("probe") != "grpc":
                report(f"{where}.{key}: gRPC health probe on port {probed} ({entry['name']}), which {label} does not serve "
                       f"gRPC health on {j.cite(entry['source'])}")
            elif kind == "httpGet" and entry is not None and entry.get("protocol") != "http":
                report(f"{where}.{key}: HTTP probe on port {probed}, a {entry['protocol']} port of {label} {j.cite(entry['source'])}")
    env = resolved_env(c)
    for need in rel.get("env") or []:
        if need["name"] not in env:
            report(f"{where}.env: {label} needs {need['name']} — {need['why']} ({need['source']})")
    paths = _host_paths(pod, c)
    for mount in rel.get("host_mounts") or []:
        cond = mount.get("when_flag")
        if cond and j.values.get(cond["flag"]) != cond["value"] and not (cond["value"] is True and _env_true(c, rel, cond["flag"])):
            continue
        if mount["path"].rstrip("/") not in paths:
            report(f"{where}.volumeMounts: {label} needs the host path {mount['path']} — {mount['why']} ({mount['source']})")
    if (rel.get("host_network") or {}).get("required") and not pod.spec.get("hostNetwork"):
        report(f"{object_ref(props)} {pod.path}.hostNetwork: {label} runs in the node's network namespace "
               f"({rel.get('host_network')['source']})")
    added = set(((c.get("securityContext") or {}).get("capabilities") or {}).get("add") or [])
    for cap in rel.get("capabilities") or []:
        if cap["add"] not in added:
            report(f"{where}.securityContext.capabilities.add: {label} needs {cap['add']} — {cap['why']} ({cap['source']})")


def _env_true(c: Mapping[str, Any], rel: Release, flag: str) -> bool:
    table = rel.flags
    f = table.find(flag) if table else None
    values = _env_values(c)
    return f is not None and any(values.get(var, "").lower() == "true" for var in f.env)


# ------------------------------------------------------------------------------------------ relations (I2)

def _index(resources: Sequence[Any], typ: str) -> dict[tuple[Any, Any], Any]:
    return {((r.props.get("metadata") or {}).get("namespace"), (r.props.get("metadata") or {}).get("name")): r
            for r in resources if r.resource_type == typ}


def _pods(resources: Sequence[Any]) -> Iterator[tuple[Any, PodView, Judged]]:
    for r in resources:
        if r.resource_type not in POD_KINDS:
            continue
        for pod in pod_specs(r.resource_type, r.props):
            for j, _path, _c, _image in judged(r.props, pod):
                if j is not None:
                    yield r, pod, j


def _has_token(resources: Sequence[Any], ns: Any, pod: PodView, c: Mapping[str, Any]) -> bool:
    volumes = {v.get("name"): v for v in pod.spec.get("volumes") or []}
    for m in c.get("volumeMounts") or []:
        if str(m.get("mountPath") or "").rstrip("/") == SA_TOKEN_DIR:
            sources = ((volumes.get(m.get("name")) or {}).get("projected") or {}).get("sources") or []
            if any("serviceAccountToken" in s for s in sources):
                return True
    auto = pod.spec.get("automountServiceAccountToken")
    if auto is not None:
        return bool(auto)
    sa = _index(resources, SERVICE_ACCOUNT).get((ns, pod.spec.get("serviceAccountName") or "default"))
    return sa is None or sa.props.get("automountServiceAccountToken") is not False


def _granted_rules(resources: Sequence[Any], ns: Any, account: str, cluster_only: bool) -> list[Mapping[str, Any]]:
    roles = {t: _index(resources, typ) for t, typ in ROLE_TYPES.items()}
    out: list[Mapping[str, Any]] = []
    bindings = [b for b in resources if b.resource_type == CLUSTER_BINDING or (not cluster_only and b.resource_type == ROLE_BINDING)]
    for b in bindings:
        b_ns = (b.props.get("metadata") or {}).get("namespace")
        if b.resource_type == ROLE_BINDING and b_ns != ns:
            continue
        if not any(s.get("kind") == "ServiceAccount" and s.get("name") == account and (s.get("namespace") or b_ns) == ns
                   for s in b.props.get("subjects") or []):
            continue
        ref = b.props.get("roleRef") or {}
        kind = ref.get("kind")
        role = roles.get(str(kind), {}).get((b_ns if kind == "Role" else None, ref.get("name")))
        if role is not None:
            out += list(role.props.get("rules") or [])
    return out


def _covers(granted: list[Mapping[str, Any]], need: Mapping[str, Any], group: str, resource: str) -> bool:
    return all(any((group in (g.get("apiGroups") or []) or "*" in (g.get("apiGroups") or []))
                   and (resource in (g.get("resources") or []) or "*" in (g.get("resources") or []))
                   and (verb in (g.get("verbs") or []) or "*" in (g.get("verbs") or [])) for g in granted)
               for verb in need.get("verbs") or [])


def _missing(granted: list[Mapping[str, Any]], needs: list[Mapping[str, Any]], values: dict[str, Any]) -> list[str]:
    out = []
    for need in needs:
        for group in need.get("apiGroups") or []:
            group = str(values.get("pool-group") or "") if group == "{pool-group}" else group
            for resource in need.get("resources") or []:
                if not _covers(granted, need, group, resource):
                    out.append(f"{'/'.join(filter(None, [group, resource]))} ({', '.join(need['verbs'])})")
    return out


def _services_for(resources: Sequence[Any], ns: Any, labels: Mapping[str, Any], port: int, named: dict[str, int]) -> list[Any]:
    out = []
    for r in resources:
        if r.resource_type != SERVICE or (r.props.get("metadata") or {}).get("namespace") != ns:
            continue
        spec = r.props.get("spec") or {}
        selector = spec.get("selector") or {}
        if not selector or not all(labels.get(k) == v for k, v in selector.items()):
            continue
        for p in spec.get("ports") or []:
            target = p.get("targetPort", p.get("port"))
            number = named.get(target) if isinstance(target, str) else int(shown_number(target))
            if number == port:
                out.append((r, p))
    return out


def _host(svc: Any) -> str:
    md = svc.props.get("metadata") or {}
    return f"{md.get('name')}.{md.get('namespace')}.svc.cluster.local"


def _destination_tls(resources: Sequence[Any], host: str) -> str | None:
    for r in resources:
        if r.resource_type in DESTINATION_RULES and (r.props.get("spec") or {}).get("host") == host:
            return str((((r.props.get("spec") or {}).get("trafficPolicy") or {}).get("tls") or {}).get("mode") or "DISABLE")
    return None


def _uses_istio(resources: Sequence[Any]) -> bool:
    return any(r.resource_type.startswith("kubernetes:networking.istio.io/") for r in resources)


def _monitored(resources: Sequence[Any], svc: Any, port_name: Any) -> bool:
    md = svc.props.get("metadata") or {}
    for m in resources:
        if m.resource_type != SERVICE_MONITOR:
            continue
        mmd, spec = m.props.get("metadata") or {}, m.props.get("spec") or {}
        names = ((spec.get("namespaceSelector") or {}).get("matchNames")) or [mmd.get("namespace")]
        if md.get("namespace") not in names:
            continue
        sel = (spec.get("selector") or {}).get("matchLabels") or {}
        labels = md.get("labels") or {}
        if sel and all(labels.get(k) == v for k, v in sel.items()) and any(e.get("port") == port_name for e in spec.get("endpoints") or []):
            return True
    return False


@stack_rule("I2", "kubernetes-component-require-token-rbac-tls-and-scrape", "A catalogued component gets the API token and "
            "RBAC its release needs, a TLS origination exactly where it serves TLS, the ext_proc body mode it handles, and a "
            "scrape of the metrics it exposes when the stack runs the Prometheus operator.",
            level="mandatory", severity="high",
            remediation="Give the pod a token (a projected serviceAccountToken at the in-cluster path) and bind its "
            "ServiceAccount to a Role with the rules the finding lists; add a DestinationRule with tls.mode SIMPLE for a "
            "component that serves TLS (and none for one that does not); set the EnvoyFilter's processing_mode and the "
            "component's flags as its release's chart does; expose the metrics port on its Service with a ServiceMonitor.",
            sources=("component releases", "fleet/catalog/components"))
def component_relations(resources: Any, report: Any, args: Any) -> None:
    istio = _uses_istio(resources)
    monitoring = any(r.resource_type == SERVICE_MONITOR for r in resources)
    filters = [r for r in resources if r.resource_type == ENVOY_FILTER]
    for r, pod, j in _pods(resources):
        md = r.props.get("metadata") or {}
        ns, rel, c = md.get("namespace"), j.release, j.container
        where = f"{object_ref(r.props)} {j.path}"
        token = rel.get("api_token") or {}
        needs_token = token.get("required") or (token.get("when_flag") and j.values.get(token["when_flag"]["flag"]) == token["when_flag"]["value"])
        if needs_token and not _has_token(resources, ns, pod, c):
            report(f"{where}: {rel.label} needs the API token — {token.get('why') or token['when_flag']['why']}; the pod mounts "
                   f"none, so it exits at start ({token['source']})", r.urn)
        account = pod.spec.get("serviceAccountName") or "default"
        rbac = rel.get("rbac") or {}
        if rbac.get("namespaced"):
            missing = _missing(_granted_rules(resources, ns, account, False), rbac["namespaced"], j.values)
            if missing:
                report(f"{where}: {rel.label} runs as {ns}/{account}, which no Role grants {', '.join(missing)} "
                       f"({rbac['source']})", r.urn)
        cluster_needs = list(rbac.get("always_cluster") or [])
        why, source = rbac.get("always_cluster_why"), rbac.get("always_cluster_source")
        for cond in rbac.get("when_flag") or []:
            if j.values.get(cond["flag"]) == cond["value"]:
                cluster_needs += cond["cluster"]
                why, source = f"--{cond['flag']}={str(cond['value']).lower()}: {cond['why']}", cond["source"]
        if cluster_needs:
            missing = _missing(_granted_rules(resources, ns, account, True), cluster_needs, j.values)
            if missing:
                report(f"{where}: {rel.label} runs as {ns}/{account}, which no ClusterRole grants {', '.join(missing)} — "
                       f"{why}; Prometheus gets 401/403 from /metrics ({source})", r.urn)
        named = _container_ports(c)
        for number, port in sorted(listening(j).items()):
            services = _services_for(resources, ns, pod.labels, number, named)
            if istio and port.get("role") == "ext_proc":
                for svc, _p in services:
                    mode = _destination_tls(resources, _host(svc))
                    if tls_on(j, port) and mode not in ("SIMPLE", "MUTUAL"):
                        report(f"{object_ref(svc.props)}: {rel.label} serves TLS on {number} but no DestinationRule for "
                               f"{_host(svc)} originates TLS, so the gateway's ext_proc calls fail ({port['source']})", svc.urn)
                    elif not tls_on(j, port) and mode in ("SIMPLE", "MUTUAL"):
                        report(f"{object_ref(svc.props)}: DestinationRule for {_host(svc)} originates TLS but {rel.label} "
                               f"serves plaintext on {number} ({port['source']})", svc.urn)
            if monitoring and port.get("name") == "metrics" and rel.get("metrics_exposed"):
                if not services:
                    report(f"{where}.ports: {rel.label} exposes metrics on {number} but no Service publishes that port, so "
                           f"nothing scrapes it ({port['source']})", r.urn)
                for svc, p in services:
                    if not _monitored(resources, svc, p.get("name")):
                        report(f"{object_ref(svc.props)}: no ServiceMonitor scrapes port {p.get('name')} ({rel.label} metrics)", svc.urn)
        ext = rel.get("ext_proc")
        if ext:
            hosts = {f"|{n}||{_host(s)}" for n in listening(j) for s, _p in _services_for(resources, ns, pod.labels, n, named)}
            for f in filters:
                for i, patch in enumerate((f.props.get("spec") or {}).get("configPatches") or []):
                    cfg = (((patch.get("patch") or {}).get("value") or {}).get("typed_config") or {})
                    cluster = str(((cfg.get("grpc_service") or {}).get("envoy_grpc") or {}).get("cluster_name") or "")
                    if not any(cluster.endswith(h) for h in hosts):
                        continue
                    processing = cfg.get("processing_mode") or {}
                    at = f"{object_ref(f.props)} spec.configPatches[{i}]...processing_mode"
                    if processing.get("request_body_mode") != ext["request_body_mode"]:
                        report(f"{at}.request_body_mode: {processing.get('request_body_mode')} for {rel.label}, whose chart uses "
                               f"{ext['request_body_mode']} — {ext['why']} ({ext['source']})", f.urn)
                    elif processing.get("request_trailer_mode") != ext["request_trailer_mode"]:
                        report(f"{at}.request_trailer_mode: {processing.get('request_trailer_mode')} for {rel.label}, whose chart "
                               f"sends trailers with the streamed body ({ext['request_trailer_mode']}) ({ext['source']})", f.urn)
                    if processing.get("request_body_mode") == "FULL_DUPLEX_STREAMED" and not flag_on(j.values, ext["needs_flag"]):
                        report(f"{where}.args: {rel.label} needs --{ext['needs_flag']} for the FULL_DUPLEX_STREAMED body the "
                               f"EnvoyFilter sends ({ext['source']})", r.urn)


# ------------------------------------------------------------------------------------------ the matrix (I3)

def _pool_of(resources: Sequence[Any], j: Judged, ns: Any) -> Any:
    name = j.values.get("pool-name")
    pool_ns = j.values.get("pool-namespace") or ns
    return next((r for r in resources if r.resource_type.endswith(":InferencePool")
                 and (r.props.get("metadata") or {}).get("name") == name and (r.props.get("metadata") or {}).get("namespace") == pool_ns), None)


def _crd(rel: Release, kind: str, values: dict[str, Any]) -> tuple[str, str] | None:
    for c in rel.get("crds") or []:
        if c["kind"] == kind:
            return c["apiVersion"].replace("{pool-group}", str(values.get("pool-group") or "")), c["source"]
    return None


@stack_rule("I3", "kubernetes-component-require-compatible-versions", "The endpoint pickers, body-based router, routing "
            "sidecars and vLLM pods of the stack form a combination of the compatibility matrix: the picker reads metric "
            "names its pool's vLLM release exposes and watches the CRD versions the stack renders.",
            level="mandatory", severity="high",
            remediation="Pin the gateway images to one combination of fleet/catalog/components/matrix.yaml (docs/components.md "
            "lists them): move the picker to a release whose default metric names are the ones the vLLM release exposes, "
            "rather than overriding the names by flag.",
            sources=("component releases", "fleet/catalog/components/matrix.yaml"))
def compatible_versions(resources: Any, report: Any, args: Any) -> None:
    rendered: dict[str, set[str]] = {}
    servers = {s.ref: s for s in vllm_servers(resources)}
    known = set(available_versions())
    for r, _pod, j in _pods(resources):
        rendered.setdefault(j.release.component, set()).add(j.release.version)
        if j.release.component not in ("endpoint-picker", "inference-scheduler"):
            continue
        ns = (r.props.get("metadata") or {}).get("namespace")
        pool = _pool_of(resources, j, ns)
        if pool is None:
            continue
        crd = _crd(j.release, "InferencePool", j.values)
        if crd and pool.props.get("apiVersion") != crd[0]:
            report(f"{object_ref(pool.props)} apiVersion {pool.props.get('apiVersion')}: {j.release.label} watches {crd[0]} ({crd[1]})", pool.urn)
        selector = ((pool.props.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        for s in servers.values():
            if s.namespace != ns or not selector or not all(s.labels.get(k) == v for k, v in selector.items()):
                continue
            version = image_version(s.image)
            if version not in known:
                continue
            rendered.setdefault("vllm", set()).add(version)
            exposed = vllm_table(version).metrics
            for m in j.release.get("metrics_read") or []:
                name = j.values.get(m["flag"])
                if isinstance(name, str) and name.split("{")[0] not in exposed:
                    report(f"{object_ref(r.props)} {j.path}: {j.release.label} reads {name} (--{m['flag']}) but vLLM {version} "
                           f"({s.ref}) does not expose it, so that scorer reads nothing ({m['source']})", r.urn)
    gateway = {k: v for k, v in rendered.items() if k in ("endpoint-picker", "body-based-router", "inference-scheduler", "routing-sidecar")}
    if not gateway:
        return
    rows = matrix()
    for row in rows:
        if all(versions <= {str(row.get(k))} for k, versions in gateway.items()) and \
                all(v in [str(x) for x in row.get("vllm") or []] for v in rendered.get("vllm", set())):
            return
    shown = ", ".join(f"{k} {'/'.join(sorted(v))}" for k, v in sorted(rendered.items()) if k in (*gateway, "vllm"))
    works = "; ".join(f"{row['name']}: " + ", ".join(f"{k} {row[k]}" for k in ("endpoint-picker", "body-based-router",
                                                                                 "inference-scheduler", "routing-sidecar"))
                      for row in rows)
    report(f"the stack pairs {shown}, which no combination of the compatibility matrix holds (combinations that work: {works}; "
           "fleet/catalog/components/matrix.yaml)", None)
