"""D: pod security (Pod Security Standards baseline and restricted, CIS EKS 4.x), on every pod template."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from fleet.errors import CREDENTIAL
from policies.commands import all_words
from policies.env import EnvVar, resolved_env, stack_env_rule
from policies.framework import POD_KINDS, containers, pod_specs, rule, shown_number, stack_rule

PSS_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"}
ALLOWED_REGISTRIES_DEFAULT = ("docker.io/vllm/", "nvcr.io/nvidia/", "public.ecr.aws/eks/")
SECRET_NAMES = ("KEY", "TOKEN", "SECRET", "PASSWORD")


def _sc(c: Mapping[str, Any]) -> Mapping[str, Any]:
    return c.get("securityContext") or {}


@rule("D1", "kubernetes-pod-disallow-host-namespaces", "Pods do not share the node's network, PID or IPC namespace.",
      level="mandatory", severity="critical", remediation="Remove hostNetwork, hostPID and hostIPC.",
      sources=("PSS-B", "CIS 4.2.2-4"), kinds=POD_KINDS)
def host_namespaces(props: Any, report: Any, args: Any) -> None:
    for pod in pod_specs(args.resource_type, props):
        for key in ("hostNetwork", "hostPID", "hostIPC"):
            if pod.spec.get(key):
                report(f"{pod.path}.{key} is true")


@rule("D2", "kubernetes-container-disallow-privileged", "Containers are not privileged.", level="mandatory",
      severity="critical", remediation="Remove securityContext.privileged.", sources=("PSS-B", "CIS 4.2.1"),
      kinds=POD_KINDS)
def privileged(props: Any, report: Any, args: Any) -> None:
    for pod in pod_specs(args.resource_type, props):
        for path, c in containers(pod):
            if _sc(c).get("privileged"):
                report(f"{path}.securityContext.privileged is true")


@rule("D3", "kubernetes-pod-disallow-host-path", "Pods mount no hostPath volumes.", level="mandatory", severity="high",
      remediation="Use a PVC, emptyDir or CSI volume instead of hostPath.", sources=("PSS-B",), kinds=POD_KINDS)
def host_path(props: Any, report: Any, args: Any) -> None:
    for pod in pod_specs(args.resource_type, props):
        for i, v in enumerate(pod.spec.get("volumes") or []):
            if v.get("hostPath") is not None:
                report(f"{pod.path}.volumes[{i}] ({v.get('name')}) is a hostPath volume")


@rule("D4", "kubernetes-container-disallow-host-port", "Containers bind no host ports.", level="mandatory",
      severity="high", remediation="Remove hostPort; expose the container through a Service.", sources=("PSS-B",),
      kinds=POD_KINDS)
def host_port(props: Any, report: Any, args: Any) -> None:
    for pod in pod_specs(args.resource_type, props):
        for path, c in containers(pod):
            for j, p in enumerate(c.get("ports") or []):
                if p.get("hostPort"):
                    report(f"{path}.ports[{j}].hostPort is {shown_number(p.get('hostPort'))}")


@rule("D5", "kubernetes-container-configure-capabilities", "Containers drop ALL capabilities and add at most NET_BIND_SERVICE.",
      level="mandatory", severity="high", remediation="Set securityContext.capabilities.drop: [ALL].", sources=("PSS-R",),
      kinds=POD_KINDS)
def capabilities(props: Any, report: Any, args: Any) -> None:
    for pod in pod_specs(args.resource_type, props):
        for path, c in containers(pod):
            caps = _sc(c).get("capabilities") or {}
            if "ALL" not in list(caps.get("drop") or []):
                report(f"{path}.securityContext.capabilities.drop does not contain ALL")
            extra = [a for a in caps.get("add") or [] if a != "NET_BIND_SERVICE"]
            if extra:
                report(f"{path}.securityContext.capabilities.add has {', '.join(extra)}")


@rule("D6", "kubernetes-container-disallow-privilege-escalation", "Containers set allowPrivilegeEscalation: false.",
      level="mandatory", severity="high", remediation="Set securityContext.allowPrivilegeEscalation: false.",
      sources=("PSS-R", "CIS 4.2.5"), kinds=POD_KINDS)
def privilege_escalation(props: Any, report: Any, args: Any) -> None:
    for pod in pod_specs(args.resource_type, props):
        for path, c in containers(pod):
            if _sc(c).get("allowPrivilegeEscalation") is not False:
                report(f"{path}.securityContext.allowPrivilegeEscalation is not false")


@rule("D7", "kubernetes-pod-configure-run-as-non-root", "Pods run as a non-root user.", level="mandatory",
      severity="high", remediation="Set runAsNonRoot: true and a non-zero runAsUser in the pod securityContext.",
      sources=("PSS-R",), kinds=POD_KINDS)
def non_root(props: Any, report: Any, args: Any) -> None:
    for pod in pod_specs(args.resource_type, props):
        pod_sc = pod.spec.get("securityContext") or {}
        for path, c in containers(pod):
            sc = _sc(c)
            non_root_set = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
            user = sc.get("runAsUser", pod_sc.get("runAsUser"))
            if non_root_set is not True:
                report(f"{path}: runAsNonRoot is not true (container or pod securityContext)")
            if user == 0:
                report(f"{path}: runAsUser is 0")


@rule("D8", "kubernetes-pod-configure-seccomp", "Pods use the RuntimeDefault or a Localhost seccomp profile.",
      level="mandatory", severity="medium", remediation="Set securityContext.seccompProfile.type: RuntimeDefault on the pod.",
      sources=("PSS-R",), kinds=POD_KINDS)
def seccomp(props: Any, report: Any, args: Any) -> None:
    for pod in pod_specs(args.resource_type, props):
        pod_type = ((pod.spec.get("securityContext") or {}).get("seccompProfile") or {}).get("type")
        for path, c in containers(pod):
            kind = (_sc(c).get("seccompProfile") or {}).get("type", pod_type)
            if kind not in ("RuntimeDefault", "Localhost"):
                report(f"{path}: seccompProfile.type is {kind or 'unset'}")


@rule("D9", "kubernetes-pod-disallow-volume-types", "Pods use only the volume types the restricted standard allows.",
      level="mandatory", severity="medium", remediation="Use configMap, csi, downwardAPI, emptyDir, ephemeral, "
      "persistentVolumeClaim, projected or secret volumes.", sources=("PSS-R",), kinds=POD_KINDS)
def volume_types(props: Any, report: Any, args: Any) -> None:
    for pod in pod_specs(args.resource_type, props):
        for i, v in enumerate(pod.spec.get("volumes") or []):
            kinds = [k for k in v if k != "name"]
            bad = [k for k in kinds if k not in PSS_VOLUMES]
            if bad:
                report(f"{pod.path}.volumes[{i}] ({v.get('name')}) uses {', '.join(bad)}")


@rule("D10", "kubernetes-pod-disallow-baseline-escapes", "No unsafe procMount, sysctls, SELinux types, AppArmor or probe hosts.",
      level="mandatory", severity="medium", remediation="Remove procMount: Unmasked, unsafe sysctls, custom SELinux types, "
      "AppArmor Unconfined and probe/hook `host` fields.", sources=("PSS-B",), kinds=POD_KINDS)
def baseline_escapes(props: Any, report: Any, args: Any) -> None:
    safe_sysctls = {"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
                    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
                    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
                    "net.ipv4.tcp_keepalive_probes"}
    for pod in pod_specs(args.resource_type, props):
        pod_sc = pod.spec.get("securityContext") or {}
        for s in pod_sc.get("sysctls") or []:
            if s.get("name") not in safe_sysctls:
                report(f"{pod.path}.securityContext.sysctls sets {s.get('name')}")
        selinux_type = (pod_sc.get("seLinuxOptions") or {}).get("type")
        if selinux_type not in (None, "", "container_t", "container_init_t", "container_kvm_t"):
            report(f"{pod.path}.securityContext.seLinuxOptions.type is {selinux_type}")
        for path, c in containers(pod):
            sc = _sc(c)
            if sc.get("procMount") not in (None, "Default"):
                report(f"{path}.securityContext.procMount is {sc.get('procMount')}")
            if (sc.get("appArmorProfile") or {}).get("type") == "Unconfined":
                report(f"{path}.securityContext.appArmorProfile.type is Unconfined")
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                handler = (c.get(probe) or {}).get("httpGet") or (c.get(probe) or {}).get("tcpSocket") or {}
                if handler.get("host"):
                    report(f"{path}.{probe} sets host {handler.get('host')}")


@rule("D11", "kubernetes-container-enable-read-only-root", "Containers use a read-only root file system where they can.",
      level="advisory", severity="low", remediation="Set readOnlyRootFilesystem: true (GPU containers need a writable "
      "root for the NVIDIA runtime hook; exempt them with the annotation and that reason).", sources=("NSA", "CKV_K8S_22"),
      kinds=POD_KINDS)
def read_only_root(props: Any, report: Any, args: Any) -> None:
    for pod in pod_specs(args.resource_type, props):
        for path, c in containers(pod):
            if _sc(c).get("readOnlyRootFilesystem") is not True:
                report(f"{path}.securityContext.readOnlyRootFilesystem is not true")


@rule("D12", "kubernetes-pod-disallow-automount-token", "Pods run under a dedicated service account without an automounted token.",
      level="mandatory", severity="medium", remediation="Set serviceAccountName to the workload's own account and "
      "automountServiceAccountToken: false.", sources=("CIS 4.1.5-6",), kinds=POD_KINDS)
def automount(props: Any, report: Any, args: Any) -> None:
    for pod in pod_specs(args.resource_type, props):
        if pod.spec.get("serviceAccountName") in (None, "", "default"):
            report(f"{pod.path}.serviceAccountName is the namespace's default account")
        if pod.spec.get("automountServiceAccountToken") is not False:
            report(f"{pod.path}.automountServiceAccountToken is not false")


@rule("D13", "kubernetes-workload-disallow-default-namespace", "Workloads are not in the default or kube-system namespace.",
      level="mandatory", severity="medium", remediation="Put the workload in its team namespace.", sources=("CIS 4.5.2",),
      kinds=POD_KINDS)
def default_namespace(props: Any, report: Any, args: Any) -> None:
    ns = (props.get("metadata") or {}).get("namespace")
    if ns in (None, "", "default", "kube-system"):
        report(f"namespace is {ns or 'unset (default)'}")


@rule("D14", "kubernetes-container-configure-resources", "Containers set CPU and memory requests and limits.",
      level="mandatory", severity="medium", remediation="Set resources.requests and resources.limits for cpu and memory.",
      sources=("BPG",), kinds=POD_KINDS)
def resources(props: Any, report: Any, args: Any) -> None:
    for pod in pod_specs(args.resource_type, props):
        for path, c in containers(pod, init=False):
            res = c.get("resources") or {}
            for kind in ("requests", "limits"):
                missing = [r for r in ("cpu", "memory") if r not in (res.get(kind) or {})]
                if missing:
                    report(f"{path}.resources.{kind} has no {' or '.join(missing)}")


def placeholder_digest(digest: str) -> bool:
    """A digest that cannot be real: not sha256 and 64 hex digits, or one digit repeated (sha256:000…)."""
    algorithm, _, value = digest.partition(":")
    return algorithm != "sha256" or not re.fullmatch(r"[0-9a-f]{64}", value) or len(set(value)) == 1


@rule("D15", "kubernetes-container-configure-image-pinning", "Images come from an allowed registry, pinned by digest.",
      level="mandatory", severity="high", remediation="Use an allowed registry and pin the image with @sha256:…; never "
      "`latest` or an untagged image.", sources=("CIS 5.1.4", "CKV_K8S_14/43"), kinds=POD_KINDS)
def image_pinning(props: Any, report: Any, args: Any) -> None:
    config = args.get_config() or {}
    registries = tuple(r.rstrip("/") for r in config.get("allowed_registries", ALLOWED_REGISTRIES_DEFAULT))
    allow_tags = bool(config.get("allow_tag_only", False))
    for pod in pod_specs(args.resource_type, props):
        for path, c in containers(pod):
            image = str(c.get("image") or "")
            name, _, digest = image.partition("@")
            repo, _, tag = name.rpartition(":") if ":" in name.rsplit("/", 1)[-1] else (name, "", "")
            normalized = repo if "." in repo.split("/", 1)[0] else f"docker.io/{repo}"
            if not any(normalized == r or normalized.startswith(r + "/") for r in registries):
                report(f"{path}.image {image} is not from an allowed registry ({', '.join(registries)})")
            if tag in ("", "latest") and not digest:
                report(f"{path}.image {image} is {'untagged' if not tag else 'latest'}")
            elif not digest and not allow_tags:
                report(f"{path}.image {image} is not pinned by digest")
            elif digest and placeholder_digest(digest):
                report(f"{path}.image is pinned to the placeholder digest {digest[:15]}…, which no registry serves — "
                       f"`vllm-fleet pin` writes the real one into the stack (`crane digest {name}` prints it)")


@rule("D16", "kubernetes-container-disallow-literal-secrets", "No literal secret values in env or args.",
      level="mandatory", severity="critical", remediation="Reference a Secret (secretKeyRef or a mounted file).",
      sources=("CIS 4.4.1",), kinds=POD_KINDS)
def literal_secrets(props: Any, report: Any, args: Any) -> None:
    for pod in pod_specs(args.resource_type, props):
        for path, c in containers(pod):
            for message in literal_secret_env(path, c, resolved_env(c)):
                report(message)
            words = all_words(c)
            for i, w in enumerate(words):
                if w.partition("=")[0] in ("--api-key", "--hf-token", "--token") and (("=" in w) or i + 1 < len(words)):
                    report(f"{path} passes {w.partition('=')[0]} on the command line")


def literal_secret_env(path: str, c: Mapping[str, Any], env: dict[str, EnvVar]) -> Iterator[str]:
    """Secret-named variables with a literal value (in the pod spec or a ConfigMap), and values shaped like a
    credential whatever the variable's name (the value is never shown)."""
    for name, var in env.items():
        if not var.literal or not var.value:
            continue
        if any(s in name.upper() for s in SECRET_NAMES) and not name.upper().endswith("_PATH"):
            yield f"{path}.{var.where} {name} holds a literal value"
        elif CREDENTIAL.search(var.value):
            yield f"{path}.{var.where} {name} holds a credential-shaped literal value"


stack_env_rule("D16", "No literal secret values in env", level="mandatory", severity="critical",
               remediation="Keep secrets in Secrets (secretKeyRef, a Secret in envFrom, or a mounted file), never in a ConfigMap.",
               sources=("CIS 4.4.1",), check=literal_secret_env, vllm_only=False)


@stack_rule("D17", "kubernetes-namespace-configure-default-deny", "Every team namespace has a default-deny NetworkPolicy.",
            level="mandatory", severity="high", remediation="Add a NetworkPolicy with podSelector {} and policyTypes "
            "[Ingress, Egress] to the namespace, then explicit allows.", sources=("CIS 4.3.2",))
def default_deny(resources: Any, report: Any, args: Any) -> None:
    namespaces = {}
    denied = set()
    for r in resources:
        props = r.props
        if r.resource_type == "kubernetes:core/v1:Namespace":
            labels = (props.get("metadata") or {}).get("labels") or {}
            if "vllm-fleet.io/team" in labels:
                namespaces[(props.get("metadata") or {}).get("name")] = r.urn
        elif r.resource_type == "kubernetes:networking.k8s.io/v1:NetworkPolicy":
            spec = props.get("spec") or {}
            if not (spec.get("podSelector") or {}) and {"Ingress", "Egress"} <= set(spec.get("policyTypes") or []) \
                    and not spec.get("ingress") and not spec.get("egress"):
                denied.add((props.get("metadata") or {}).get("namespace"))
    for ns, urn in sorted(namespaces.items()):
        if ns not in denied:
            report(f"namespace {ns} has no default-deny NetworkPolicy", urn)


@rule("D18", "kubernetes-namespace-configure-pod-security", "Serving namespaces enforce the restricted Pod Security Standard.",
      level="mandatory", severity="high", remediation="Label the namespace pod-security.kubernetes.io/enforce: restricted.",
      sources=("BPG",), kinds=("kubernetes:core/v1:Namespace",))
def pod_security_labels(props: Any, report: Any, args: Any) -> None:
    md = props.get("metadata") or {}
    labels = md.get("labels") or {}
    if md.get("name") in ("kube-system", "kube-public", "kube-node-lease"):
        return  # Kubernetes' own; the stack's GPU system namespace is exempted by the pack's config, with its reason
    if labels.get("pod-security.kubernetes.io/enforce") != "restricted":
        report(f"namespace {md.get('name')} enforces {labels.get('pod-security.kubernetes.io/enforce', 'no')} Pod Security level")


@stack_rule("D19", "kubernetes-networkpolicy-enable-enforcement", "NetworkPolicies the stack renders are enforced by the cluster.",
            level="mandatory", severity="high", remediation="Let the stack manage the vpc-cni add-on with its network policy agent "
            "(cluster.network_policy_enforcement: vpc-cni-addon), or run a CNI that enforces NetworkPolicies and say so "
            "(external): the VPC CNI ignores them otherwise.", sources=("BPG", "CIS 4.3.2"))
def network_policy_enforcement(resources: Any, report: Any, args: Any) -> None:
    enforcement = (args.get_config() or {}).get("network_policy_enforcement")
    policies = [r for r in resources if r.resource_type == "kubernetes:networking.k8s.io/v1:NetworkPolicy"]
    if enforcement is None or enforcement == "external" or not policies:
        return  # outside a stack the cluster's CNI is unknown; `external` is the platform's word for it
    agent_on = any(r.resource_type == "aws:eks/addon:Addon" and r.props.get("addonName") == "vpc-cni"
                   and str((json.loads(str(r.props.get("configurationValues") or "{}")) or {}).get("enableNetworkPolicy")).lower() == "true"
                   for r in resources)
    if not agent_on:
        how = "the stack says nothing enforces them" if enforcement == "none" else "the vpc-cni add-on does not turn its network policy agent on"
        report(f"{len(policies)} NetworkPolicies are rendered but {how}: the VPC CNI ignores them, every pod can reach every other",
               policies[0].urn)
