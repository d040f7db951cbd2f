"""F: vLLM-specific rules (security advisories, flags of the pinned version, exposure, secrets)."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterator, Mapping
from typing import Any

from fleet.versions import parse_version
from fleet.vllm.compiler import check_args
from fleet.vllm.flags import available_versions
from policies.commands import model_of, runtime_value
from policies.env import EnvVar, resolved_env, stack_env_rule
from policies.framework import (
    POD_KINDS,
    VllmServer,
    containers,
    flag_value,
    has_flag,
    pod_specs,
    rule,
    stack_rule,
    to_plain_data,
    vllm_serve_args,
    vllm_servers,
)

FLOOR_DEFAULT = "0.32.0"
COMMIT = re.compile(r"^[0-9a-f]{40}$")
REMOVED_METRICS = ("vllm:gpu_cache_usage_perc", "vllm:cpu_cache_usage_perc", "vllm:num_requests_swapped",
                   "vllm_gpu_cache_usage_perc", "vllm_cpu_cache_usage_perc", "vllm_num_requests_swapped")
FORBIDDEN_ENV = ("VLLM_SERVER_DEV_MODE", "VLLM_TORCH_PROFILER_DIR", "VLLM_TORCH_CUDA_PROFILE", "PYTHONOPTIMIZE")


def image_version(image: str) -> str | None:
    """The vLLM version an image tag names: vllm/vllm-openai:v0.33.0[@sha256:…] → 0.33.0, and tags that carry it after
    other parts, e.g. rocm/vllm:rocm6.2_mi300_ubuntu20.04_py3.9_vllm_0.6.4 → 0.6.4."""
    name = image.partition("@")[0]
    tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else ""
    m = re.match(r"^v?(\d+\.\d+\.\d+)", tag) or re.search(r"vllm[_-]v?(\d+\.\d+\.\d+)", tag)
    return m.group(1) if m else None


def _vllm_containers(args: Any, props: Any) -> list[tuple[str, Mapping[str, Any], list[str]]]:
    out = []
    for pod in pod_specs(args.resource_type, props):
        for path, c in containers(pod, init=False):
            vargs = vllm_serve_args(c)
            if vargs is not None:
                out.append((path, c, vargs))
    return out


@rule("F1", "kubernetes-vllm-disallow-trust-remote-code", "No --trust-remote-code unless the model is allow-listed and its "
      "revision is a 40-hex commit.", level="mandatory", severity="critical", remediation="Drop --trust-remote-code, or "
      "pin --revision to a commit and add the model to the allow-list.", sources=("VL", "CVE-2025-66448", "CVE-2026-22807",
      "CVE-2026-27893"), kinds=POD_KINDS)
def trust_remote_code(props: Any, report: Any, args: Any) -> None:
    allowed = set((args.get_config() or {}).get("trust_remote_code_models", []))
    for path, _, vargs in _vllm_containers(args, props):
        if not has_flag(vargs, "--trust-remote-code"):
            continue
        model = model_of(vargs)
        revision = flag_value(vargs, "--revision") or ""
        if not COMMIT.match(revision):
            report(f"{path}: --trust-remote-code with revision {revision or 'unset'} (needs a 40-hex commit)")
        if model not in allowed:
            report(f"{path}: --trust-remote-code for {model}, which is not allow-listed")


@rule("F2", "kubernetes-vllm-configure-version-floor", "The vLLM image is at least the security floor.", level="mandatory",
      severity="critical", remediation="Upgrade the image to the floor (0.32.0 fixes the advisories known in Oct 2026).",
      sources=("VL",), kinds=POD_KINDS)
def version_floor(props: Any, report: Any, args: Any) -> None:
    floor = (args.get_config() or {}).get("version_floor", FLOOR_DEFAULT)
    for path, c, _ in _vllm_containers(args, props):
        version = image_version(str(c.get("image", "")))
        if version is None:
            report(f"{path}: image {c.get('image')} carries no vLLM version tag")
        elif parse_version(version) < parse_version(floor):
            report(f"{path}: vLLM {version} is below the floor {floor}")


@rule("F3", "kubernetes-vllm-configure-api-key-secret", "The API key comes from a Secret (secretKeyRef), never a literal.",
      level="mandatory", severity="critical", remediation="Set VLLM_API_KEY with valueFrom.secretKeyRef; drop --api-key.",
      sources=("VL",), kinds=POD_KINDS)
def api_key(props: Any, report: Any, args: Any) -> None:
    for path, c, vargs in _vllm_containers(args, props):
        if has_flag(vargs, "--api-key"):
            report(f"{path}: --api-key on the command line")
        for message in api_key_env(path, c, resolved_env(c)):
            report(message)


def _from(var: EnvVar) -> str:
    return "" if var.where == "env" else f" ({var.where})"


def api_key_env(path: str, c: Mapping[str, Any], env: dict[str, EnvVar]) -> Iterator[str]:
    var = env.get("VLLM_API_KEY")
    if var is not None and not var.from_secret:
        yield f"{path}: VLLM_API_KEY is not from a secretKeyRef{_from(var)}"


@rule("F4", "kubernetes-vllm-disallow-dangerous-env", "No development or profiling switches in a serving container.",
      level="mandatory", severity="critical", remediation="Remove VLLM_SERVER_DEV_MODE, profiler directories and PYTHONOPTIMIZE.",
      sources=("VL", "CVE-2026-41523"), kinds=POD_KINDS)
def dangerous_env(props: Any, report: Any, args: Any) -> None:
    for path, c, _ in _vllm_containers(args, props):
        for message in dangerous_env_vars(path, c, resolved_env(c)):
            report(message)


def dangerous_env_vars(path: str, c: Mapping[str, Any], env: dict[str, EnvVar]) -> Iterator[str]:
    for name, var in env.items():
        if name in FORBIDDEN_ENV:
            yield f"{path}.{var.where} sets {name}"


F5_DESCRIPTION = "vLLM Services are ClusterIP; exposure only through a gateway or an Ingress with TLS."
F5_REMEDIATION = "Use type ClusterIP and route through the gateway; give Ingresses a tls section."


@rule("F5", "kubernetes-ingress-configure-tls", F5_DESCRIPTION, level="mandatory", severity="high", remediation=F5_REMEDIATION,
      sources=("VL",), kinds=("kubernetes:networking.k8s.io/v1:Ingress",))
def ingress_tls(props: Any, report: Any, args: Any) -> None:
    if not (props.get("spec") or {}).get("tls"):
        report("Ingress has no tls section")


@stack_rule("F5", "kubernetes-service-disallow-public-vllm", F5_DESCRIPTION, level="mandatory", severity="high",
            remediation=F5_REMEDIATION, sources=("VL",))
def public_service(resources: Any, report: Any, args: Any) -> None:
    """A Service exposes vLLM when its selector matches the pods of a workload that runs vLLM's server (whatever the
    labels are called)."""
    servers: dict[Any, list[VllmServer]] = {}
    for server in vllm_servers(resources):
        servers.setdefault(server.namespace, []).append(server)
    for r in resources:
        if r.resource_type != "kubernetes:core/v1:Service":
            continue
        spec = r.props.get("spec") or {}
        kind = spec.get("type") or "ClusterIP"
        selector = spec.get("selector") or {}
        if kind in ("ClusterIP", "ExternalName") or not selector:
            continue
        md = r.props.get("metadata") or {}
        matched = sorted({s.ref for s in servers.get(md.get("namespace"), [])
                          if all(s.labels.get(k) == v for k, v in selector.items())})
        if matched:
            report(f"Service {md.get('namespace') or 'default'}/{md.get('name')} of type {kind} exposes vLLM ({', '.join(matched)}) "
                   "directly", r.urn)


@rule("F6", "kubernetes-vllm-configure-hf-token", "The Hugging Face token comes from a Secret; a prefetched cache runs with "
      "HF_HUB_OFFLINE=1.", level="mandatory", severity="high", remediation="Mount the token from a Secret (HF_TOKEN_PATH) or "
      "use secretKeyRef; set HF_HUB_OFFLINE=1 when HF_HOME is a prefetched cache.", sources=("HF docs",), kinds=POD_KINDS)
def hf_token(props: Any, report: Any, args: Any) -> None:
    for path, c, _ in _vllm_containers(args, props):
        for message in hf_token_env(path, c, resolved_env(c)):
            report(message)


def _value(env: dict[str, EnvVar], name: str) -> str:
    var = env.get(name)
    return var.value or "" if var is not None else ""


def hf_token_env(path: str, c: Mapping[str, Any], env: dict[str, EnvVar]) -> Iterator[str]:
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        if name in env and not env[name].from_secret:
            yield f"{path}.{env[name].where} {name} is not from a Secret"
    cache_mounted = any(str(m.get("mountPath", "")) == "/models" for m in c.get("volumeMounts") or [])
    if cache_mounted and _value(env, "HF_HOME").startswith("/models") and _value(env, "HF_HUB_OFFLINE") != "1":
        yield f"{path}: HF_HOME is on the shared cache but HF_HUB_OFFLINE is not 1"


@rule("F7", "kubernetes-vllm-configure-media-domains", "Multimodal servers restrict the domains they fetch media from.",
      level="advisory", severity="medium", remediation="Set --allowed-media-domains.", sources=("VL SSRF advisories",),
      kinds=POD_KINDS)
def media_domains(props: Any, report: Any, args: Any) -> None:
    for path, _, vargs in _vllm_containers(args, props):
        if has_flag(vargs, "--limit-mm-per-prompt") and not has_flag(vargs, "--allowed-media-domains"):
            report(f"{path}: multimodal inputs without --allowed-media-domains")


@rule("F8", "kubernetes-vllm-disallow-removed-flags", "No flag that the pinned vLLM removed or never had; no removed metric in "
      "autoscaler queries.", level="mandatory", severity="high", remediation="Use the replacement the message names.",
      sources=("vLLM release notes",),
      kinds=(*POD_KINDS, "kubernetes:autoscaling/v2:HorizontalPodAutoscaler", "kubernetes:keda.sh/v1alpha1:ScaledObject"))
def removed_flags(props: Any, report: Any, args: Any) -> None:
    if args.resource_type in ("kubernetes:autoscaling/v2:HorizontalPodAutoscaler", "kubernetes:keda.sh/v1alpha1:ScaledObject"):
        text = str(to_plain_data(props.get("spec")))
        for name in REMOVED_METRICS:
            if name in text:
                report(f"uses the removed metric {name} (use vllm:kv_cache_usage_perc or vllm:num_requests_waiting)")
        return
    versions = available_versions()
    for path, c, vargs in _vllm_containers(args, props):
        version = image_version(str(c.get("image", "")))
        if version not in versions:
            continue
        flags = vargs[1:] if vargs and not vargs[0].startswith("-") else list(vargs)
        for problem in check_args(flags, version):
            report(f"{path}: {problem}")


@rule("F9", "kubernetes-vllm-configure-model-revision", "The model revision is pinned to a commit.", level="advisory",
      severity="low", remediation="Set --revision to the model's 40-hex commit.", sources=("production-stack modelRevision",),
      kinds=POD_KINDS)
def revision(props: Any, report: Any, args: Any) -> None:
    for path, _, vargs in _vllm_containers(args, props):
        rev = flag_value(vargs, "--revision")
        if not rev or not COMMIT.match(rev):
            report(f"{path}: model revision {rev or 'unset'} is not a commit")


TRUE_WORDS = ("1", "true")


@rule("F10", "kubernetes-vllm-runtime-lora-behind-api-key", "Runtime LoRA loading (VLLM_ALLOW_RUNTIME_LORA_UPDATING) only "
      "behind an API key from a Secret.", level="mandatory", severity="high",
      remediation="Set `api_key: {secret: <name>}` on the model, or drop `lora.runtime_updating`.",
      sources=("vLLM LoRA docs: runtime adapter loading",), kinds=POD_KINDS)
def runtime_lora(props: Any, report: Any, args: Any) -> None:
    for path, c, _ in _vllm_containers(args, props):
        for message in runtime_lora_env(path, c, resolved_env(c)):
            report(message)


def runtime_lora_env(path: str, c: Mapping[str, Any], env: dict[str, EnvVar]) -> Iterator[str]:
    updating = _value(env, "VLLM_ALLOW_RUNTIME_LORA_UPDATING").strip().lower() in TRUE_WORDS
    key = env.get("VLLM_API_KEY")
    if updating and not (key is not None and key.from_secret):
        yield (f"{path}: runtime LoRA loading is on without an API key from a Secret: anyone who reaches the server "
               "can make it load adapters")


SYSTEM_DIRS = ("/etc", "/proc", "/sys", "/root", "/dev", "/run", "/var", "/home", "/usr", "/bin", "/sbin", "/lib", "/boot", "/tmp")


@rule("F11", "kubernetes-vllm-disallow-broad-server-access", "The server lets clients read no system directory as local media, "
      "and takes no config file that could set any flag unseen.", level="mandatory", severity="high",
      remediation="Point --allowed-local-media-path at a dedicated media directory (never / or a system directory); pass "
      "flags on the command line instead of --config.", sources=("VL", "vLLM --allowed-local-media-path"), kinds=POD_KINDS)
def broad_access(props: Any, report: Any, args: Any) -> None:
    for path, _, vargs in _vllm_containers(args, props):
        media = flag_value(vargs, "--allowed-local-media-path")
        if media is not None and not runtime_value(media):
            where = posixpath.normpath(media) if media.startswith("/") else media or "(empty)"
            if where == "/" or not where.startswith("/") or any(where == d or where.startswith(d + "/") for d in SYSTEM_DIRS):
                report(f"{path}: --allowed-local-media-path {media} lets API clients read {where if where != '/' else 'every file'} "
                       "of the server's file system")
        config = flag_value(vargs, "--config")
        if config is not None:
            report(f"{path}: --config {config} sets flags from a file this check cannot see (the reserved ones included)")


# The env rules again over the whole stack, where the ConfigMaps and Secrets a container loads are visible.
stack_env_rule("F3", "The API key comes from a Secret, never a literal", level="mandatory", severity="critical",
               remediation="Set VLLM_API_KEY with valueFrom.secretKeyRef, never from a ConfigMap.", sources=("VL",),
               check=api_key_env, vllm_only=True)
stack_env_rule("F4", "No development or profiling switches in a serving container", level="mandatory", severity="critical",
               remediation="Remove VLLM_SERVER_DEV_MODE, profiler directories and PYTHONOPTIMIZE, from the ConfigMaps too.",
               sources=("VL", "CVE-2026-41523"), check=dangerous_env_vars, vllm_only=True)
stack_env_rule("F6", "The Hugging Face token comes from a Secret; a prefetched cache runs with HF_HUB_OFFLINE=1", level="mandatory",
               severity="high", remediation="Mount the token from a Secret (HF_TOKEN_PATH) or use secretKeyRef, never a ConfigMap; "
               "set HF_HUB_OFFLINE=1 when HF_HOME is a prefetched cache.", sources=("HF docs",), check=hf_token_env, vllm_only=True)
stack_env_rule("F10", "Runtime LoRA loading only behind an API key from a Secret", level="mandatory", severity="high",
               remediation="Set `api_key: {secret: <name>}` on the model, or drop `lora.runtime_updating`.",
               sources=("vLLM LoRA docs: runtime adapter loading",), check=runtime_lora_env, vllm_only=True)
