"""A container's environment as the kubelet builds it, for every rule about environment values: `envFrom` sources in
order (ConfigMaps and Secrets, each key under the source's `prefix`; a later source wins), then `env` in order (a later
entry wins, and `env` overrides `envFrom`); `valueFrom` names where a value comes from (a Secret, a ConfigMap's key, a
field of the pod). A literal API key in a ConfigMap loaded with `envFrom` is a literal API key.

A resource rule sees one object, so the keys of a ConfigMap it loads are unknown there: each env rule is also
registered as a stack rule (`stack_env_rule`) that resolves the ConfigMaps and Secrets of the stack (the rendered
objects, or the manifests `check` reads) and reports what only they reveal."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from policies.framework import POD_KINDS, containers, namespace_of, object_ref, pod_specs, stack_rule, to_plain_data, vllm_serve_args

Key = tuple[str, str]   # (namespace, name)


@dataclass(frozen=True)
class EnvVar:
    name: str
    source: str           # value | configmap | secret | field
    value: str | None     # the text the container sees, where known (a literal, or a ConfigMap's data)
    where: str            # for messages, after the container's path: `env`, `envFrom[0] (ConfigMap team-a/cfg)`

    @property
    def from_secret(self) -> bool:
        return self.source == "secret"

    @property
    def literal(self) -> bool:
        """Plain text anyone who reads the pod spec or the ConfigMap sees (not a Secret, not a field of the pod)."""
        return self.source in ("value", "configmap")


@dataclass(frozen=True)
class EnvSources:
    configmaps: Mapping[Key, Mapping[str, str]]
    secrets: Mapping[Key, frozenset[str]]      # keys only: values stay secret


NO_SOURCES = EnvSources({}, {})


def env_sources(resources: Sequence[Any]) -> EnvSources:
    """The ConfigMaps (data) and Secrets (keys) among `resources`."""
    configmaps: dict[Key, Mapping[str, str]] = {}
    secrets: dict[Key, frozenset[str]] = {}
    for r in resources:
        if r.resource_type not in ("kubernetes:core/v1:ConfigMap", "kubernetes:core/v1:Secret"):
            continue
        props = to_plain_data(r.props)
        key = (namespace_of(props) or "default", str((props.get("metadata") or {}).get("name")))
        if r.resource_type == "kubernetes:core/v1:ConfigMap":
            configmaps[key] = {str(k): "" if v is None else str(v) for k, v in (props.get("data") or {}).items()}
        else:
            secrets[key] = frozenset(str(k) for part in ("data", "stringData") for k in (props.get(part) or {}))
    return EnvSources(configmaps, secrets)


def resolved_env(container: Mapping[str, Any], namespace: str | None = None, sources: EnvSources = NO_SOURCES) -> dict[str, EnvVar]:
    """Name → variable, as the kubelet resolves them. Keys of a ConfigMap or Secret not in `sources` are unknown and
    left out; a configMapKeyRef to one is kept with an unknown value."""
    ns = namespace or "default"
    out: dict[str, EnvVar] = {}
    for i, src in enumerate(container.get("envFrom") or []):
        if not isinstance(src, Mapping):
            continue
        prefix = str(src.get("prefix") or "")
        cm, secret = src.get("configMapRef"), src.get("secretRef")
        if isinstance(cm, Mapping):
            name = str(cm.get("name"))
            for k, v in (sources.configmaps.get((ns, name)) or {}).items():
                out[prefix + k] = EnvVar(prefix + k, "configmap", v, f"envFrom[{i}] (ConfigMap {ns}/{name})")
        elif isinstance(secret, Mapping):
            name = str(secret.get("name"))
            for k in sorted(sources.secrets.get((ns, name)) or ()):
                out[prefix + k] = EnvVar(prefix + k, "secret", None, f"envFrom[{i}] (Secret {ns}/{name})")
    for e in container.get("env") or []:
        if not isinstance(e, Mapping):
            continue
        name = str(e.get("name"))
        value_from = e.get("valueFrom")
        if isinstance(value_from, Mapping) and value_from:
            ref = value_from.get("configMapKeyRef")
            if value_from.get("secretKeyRef"):
                out[name] = EnvVar(name, "secret", None, "env")
            elif isinstance(ref, Mapping):
                data = sources.configmaps.get((ns, str(ref.get("name"))))
                value = data.get(str(ref.get("key"))) if data is not None else None
                out[name] = EnvVar(name, "configmap", value, "env")
            else:
                out[name] = EnvVar(name, "field", None, "env")
        else:
            out[name] = EnvVar(name, "value", "" if e.get("value") is None else str(e.get("value")), "env")
    return out


def draws_from_sources(container: Mapping[str, Any]) -> bool:
    """Whether part of the environment comes from a ConfigMap or a Secret loaded as a whole (envFrom) or a ConfigMap key."""
    return bool(container.get("envFrom")) or any(
        isinstance(e, Mapping) and isinstance(e.get("valueFrom"), Mapping) and e["valueFrom"].get("configMapKeyRef")
        for e in container.get("env") or [])


EnvCheck = Callable[[str, Mapping[str, Any], dict[str, EnvVar]], Iterator[str]]


def env_containers(resource_type: str, props: Any, vllm_only: bool) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for pod in pod_specs(resource_type, props):
        for path, c in containers(pod, init=not vllm_only):
            if not vllm_only or vllm_serve_args(c) is not None:
                yield path, c


def stack_env_rule(rule_id: str, description: str, *, level: str, severity: str, remediation: str, sources: tuple[str, ...],
                   check: EnvCheck, vllm_only: bool) -> None:
    """Register rule `rule_id` again over the whole stack: `check` on each container's environment resolved with the
    stack's ConfigMaps and Secrets, reporting what the resource rule (which cannot see them) could not."""

    def through_sources(resources: Any, report: Any, args: Any) -> None:
        exempt = (args.get_config() or {}).get("exempt_resources") or {}
        known = env_sources(resources)
        for r in resources:
            if r.resource_type not in POD_KINDS or object_ref(r.props) in exempt:
                continue
            ns = namespace_of(r.props)
            for path, c in env_containers(r.resource_type, r.props, vllm_only):
                if not draws_from_sources(c):
                    continue
                seen = set(check(path, c, resolved_env(c, ns)))
                for message in check(path, c, resolved_env(c, ns, known)):
                    if message not in seen:
                        report(f"{object_ref(r.props)} {message}", r.urn)

    stack_rule(rule_id, "kubernetes-container-resolve-env-sources",
               f"{description} (environment from ConfigMaps and Secrets resolved as the kubelet does: envFrom with prefixes, "
               "valueFrom, env over envFrom)", level=level, severity=severity, remediation=remediation,
               sources=sources)(through_sources)
