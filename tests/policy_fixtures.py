"""Fixtures for the policy pack: a compliant baseline and one violating case per path to violation."""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from fleet.offline.engine import Captured
from fleet.offline.policy_pack import policy_config
from fleet.render.exemptions import WRITABLE_ROOT
from fleet.render.workload import workload
from fleet.spec.load import load
from tests.conftest import RESOLVED_DIGEST, copy_project, resolve_prod_digest

KINDS = ("Pod", "Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "LeaderWorkerSet")
API = {"Pod": "v1", "Deployment": "apps/v1", "StatefulSet": "apps/v1", "DaemonSet": "apps/v1", "Job": "batch/v1",
       "CronJob": "batch/v1", "LeaderWorkerSet": "leaderworkerset.x-k8s.io/v1"}
POD_PATH = {"Pod": "spec", "Deployment": "spec.template.spec", "StatefulSet": "spec.template.spec",
            "DaemonSet": "spec.template.spec", "Job": "spec.template.spec", "CronJob": "spec.jobTemplate.spec.template.spec",
            "LeaderWorkerSet": "spec.leaderWorkerTemplate.workerTemplate.spec"}


@dataclass
class Case:
    name: str
    resources: list[Captured]
    expected: set[tuple[str, str]]          # (rule id, exact message) that must be reported
    collateral: set[str] = field(default_factory=set)   # other rule ids the mutation legitimately trips
    exercises: set[str] = field(default_factory=set)    # rule ids a compliant case is meant to show passing


def cap(typ: str, props: dict[str, Any], name: str | None = None, protect: bool = False) -> Captured:
    name = name or str((props.get("metadata") or {}).get("name", "x"))
    return Captured(urn=f"urn:pulumi:test::fixtures::{typ}::{name}", type=typ, name=name, custom=True, parent=None,
                    inputs=props, protect=protect)


@lru_cache(maxsize=1)
def prod_spec() -> Any:
    """The prod spec with its image digests resolved (the bundled stack holds placeholders that D15 refuses)."""
    return load("prod", resolve_prod_digest(copy_project(Path(tempfile.mkdtemp(prefix="vllm-fleet-prod-")))))


def base_pod() -> dict[str, Any]:
    """The pod spec vllm-fleet renders for prod search/qwen-3b: compliant with every rule."""
    spec = prod_spec()
    model = next(m for m in spec.models if m.name == "qwen-3b")
    return copy.deepcopy(workload(spec.config, model)["spec"]["template"]["spec"])


def fixture_config() -> dict[str, dict[str, Any]]:
    """The prod stack's policy config, with the fixtures' vLLM workloads (`<Kind>/team-search/m`) exempt from D11 for the
    reason the platform's own are (fleet.render.exemptions)."""
    config = policy_config(prod_spec())
    d11 = next(name for name in config if name.startswith("d11-"))
    config[d11]["exempt_resources"].update({f"{kind}/{ns}/m": WRITABLE_ROOT for kind in KINDS for ns in ("team-search", "default")})
    return config


def wrap(kind: str, pod: dict[str, Any], name: str = "m", annotations: dict[str, str] | None = None) -> Captured:
    md = {"name": name, "namespace": "team-search", "annotations": dict(annotations or {})}
    labels = {"vllm-fleet.io/team": "search", "vllm-fleet.io/model": name}
    template = {"metadata": {"labels": labels}, "spec": pod}
    if kind == "Pod":
        props: dict[str, Any] = {"metadata": {**md, "labels": labels}, "spec": pod}
    elif kind == "CronJob":
        props = {"metadata": md, "spec": {"schedule": "0 * * * *", "jobTemplate": {"spec": {"template": template}}}}
    elif kind == "LeaderWorkerSet":
        props = {"metadata": md, "spec": {"replicas": 1, "leaderWorkerTemplate": {"size": 1, "workerTemplate": template}}}
    elif kind == "Job":
        props = {"metadata": md, "spec": {"template": template}}
    else:
        props = {"metadata": md, "spec": {"selector": {"matchLabels": labels}, "template": template}}
        if kind == "Deployment":
            props["spec"].update(replicas=1, strategy={"type": "Recreate"})
        if kind == "StatefulSet":
            props["spec"].update(replicas=1, serviceName=name)
    typ = f"kubernetes:{'core/v1' if API[kind] == 'v1' else API[kind]}:{kind}"
    return cap(typ, {"apiVersion": API[kind], "kind": kind, **props}, name=f"{kind.lower()}-{name}")


def container(pod: dict[str, Any]) -> dict[str, Any]:
    return pod["containers"][0]


def set_arg(pod: dict[str, Any], flag: str, value: str | None = None) -> None:
    args = container(pod)["args"]
    if flag in args:
        i = args.index(flag)
        del args[i:i + (2 if value is not None or (i + 1 < len(args) and not args[i + 1].startswith("--")) else 1)]
    args.extend([flag] if value is None else [flag, value])


def drop_arg(pod: dict[str, Any], flag: str) -> None:
    args = container(pod)["args"]
    i = args.index(flag)
    del args[i:i + 2]


def env(pod: dict[str, Any], name: str, value: str | None = None, drop: bool = False) -> None:
    c = container(pod)
    c["env"] = [e for e in c["env"] if e["name"] != name]
    if not drop:
        c["env"].append({"name": name, "value": value or "x"})


Mutation = Callable[[dict[str, Any]], None]
# rule id → [(mutation of the pod spec, message after the pod path, collateral rule ids)]
POD_CASES: dict[str, list[tuple[Mutation, str, set[str]]]] = {
    "D1": [(lambda p: p.update(hostNetwork=True), "{p}.hostNetwork is true", set()),
           (lambda p: p.update(hostIPC=True), "{p}.hostIPC is true", set())],
    "D2": [(lambda p: container(p)["securityContext"].update(privileged=True),
            "{p}.containers[0].securityContext.privileged is true", set())],
    "D3": [(lambda p: p["volumes"].append({"name": "host", "hostPath": {"path": "/var/run"}}),
            "{p}.volumes[2] (host) is a hostPath volume", {"D9"})],
    "D4": [(lambda p: container(p)["ports"][0].update(hostPort=8000), "{p}.containers[0].ports[0].hostPort is 8000", set())],
    "D5": [(lambda p: container(p)["securityContext"]["capabilities"].update(drop=[]),
            "{p}.containers[0].securityContext.capabilities.drop does not contain ALL", set()),
           (lambda p: container(p)["securityContext"]["capabilities"].update(add=["SYS_ADMIN"]),
            "{p}.containers[0].securityContext.capabilities.add has SYS_ADMIN", set())],
    "D6": [(lambda p: container(p)["securityContext"].update(allowPrivilegeEscalation=True),
            "{p}.containers[0].securityContext.allowPrivilegeEscalation is not false", set())],
    "D7": [(lambda p: container(p)["securityContext"].update(runAsUser=0), "{p}.containers[0]: runAsUser is 0", set()),
           (lambda p: (container(p)["securityContext"].pop("runAsNonRoot"), p["securityContext"].pop("runAsNonRoot")),
            "{p}.containers[0]: runAsNonRoot is not true (container or pod securityContext)", set())],
    "D8": [(lambda p: p["securityContext"].update(seccompProfile={"type": "Unconfined"}),
            "{p}.containers[0]: seccompProfile.type is Unconfined", set())],
    "D9": [(lambda p: p["volumes"].append({"name": "nfs", "nfs": {"server": "10.0.0.1", "path": "/"}}),
            "{p}.volumes[2] (nfs) uses nfs", set())],
    "D10": [(lambda p: container(p)["securityContext"].update(procMount="Unmasked"),
             "{p}.containers[0].securityContext.procMount is Unmasked", set()),
            (lambda p: p["securityContext"].update(sysctls=[{"name": "kernel.msgmax", "value": "1"}]),
             "{p}.securityContext.sysctls sets kernel.msgmax", set())],
    "D12": [(lambda p: p.update(automountServiceAccountToken=True), "{p}.automountServiceAccountToken is not false", set()),
            (lambda p: p.update(serviceAccountName="default"), "{p}.serviceAccountName is the namespace's default account", set())],
    "D14": [(lambda p: container(p)["resources"]["limits"].pop("cpu"), "{p}.containers[0].resources.limits has no cpu", set())],
    "D15": [(lambda p: container(p).update(image="docker.io/vllm/vllm-openai:latest"),
             "{p}.containers[0].image docker.io/vllm/vllm-openai:latest is latest", {"F2"}),
            (lambda p: container(p).update(image="quay.io/someone/vllm:v0.33.0@" + RESOLVED_DIGEST),
             "{p}.containers[0].image quay.io/someone/vllm:v0.33.0@" + RESOLVED_DIGEST + " is not from an allowed registry "
             "(docker.io/vllm, nvcr.io/nvidia, public.ecr.aws/eks, 763104351884.dkr.ecr.us-east-1.amazonaws.com/vllm, "
             "registry.k8s.io/gateway-api-inference-extension, ghcr.io/llm-d, registry.k8s.io/autoscaling)", set()),
            (lambda p: container(p).update(image="docker.io/vllm/vllm-openai:v0.33.0@sha256:" + "0" * 64),
             "{p}.containers[0].image is pinned to the placeholder digest sha256:00000000…, which no registry serves — "
             "`vllm-fleet pin` writes the real one into the stack (`crane digest docker.io/vllm/vllm-openai:v0.33.0` prints it)", set())],
    "E14": [(lambda p: [container(p)["resources"][k].update({"vpc.amazonaws.com/efa": "4"}) for k in ("requests", "limits")],
             "{p}.containers[0] requests vpc.amazonaws.com/efa but runs docker.io/vllm/vllm-openai, which the stack does not declare "
             "EFA-capable (763104351884.dkr.ecr.us-east-1.amazonaws.com/vllm)", set())],
    "D16": [(lambda p: env(p, "OPENAI_API_KEY", "sk-live"), "{p}.containers[0].env OPENAI_API_KEY holds a literal value", set())],
    "E1": [(lambda p: container(p)["resources"]["requests"].update({"nvidia.com/gpu": "2"}),
            "{p}.containers[0] requests 2 nvidia.com/gpu but limits 1", set())],
    "E2": [(lambda p: p.pop("tolerations"), "{p} requests GPUs but does not tolerate the nvidia.com/gpu taint", set()),
           (lambda p: p.pop("nodeSelector"), "{p} requests GPUs but selects no GPU nodes by label", set())],
    "E3": [(lambda p: (container(p).update(command=["sleep", "3600"], args=[]),
                       [container(p)["resources"][k].pop("nvidia.com/gpu") for k in ("requests", "limits")]),
            "{p} tolerates the nvidia.com/gpu taint but requests no GPU", set())],
    "E4": [(lambda p: set_arg(p, "--tensor-parallel-size", "2"), "{p}.containers[0] runs tensor × pipeline parallel 2 on 1 GPU(s)", set()),
           (lambda p: set_arg(p, "-dp", "4"), "{p}.containers[0] runs tensor × pipeline parallel 1 × data parallel 4 on 1 GPU(s)", set())],
    "E5": [(lambda p: ([container(p)["resources"][k].update({"nvidia.com/gpu": "2"}) for k in ("requests", "limits")],
                       set_arg(p, "--tensor-parallel-size", "2")),
            "{p}.containers[0] has no Memory emptyDir at /dev/shm", set())],
    "E8": [(lambda p: env(p, "NVIDIA_VISIBLE_DEVICES", "all"), "{p}.containers[0].env sets NVIDIA_VISIBLE_DEVICES", set())],
    "E9": [(lambda p: [container(p)["resources"][k].update({"nvidia.com/gpu.shared": container(p)["resources"][k].pop("nvidia.com/gpu")})
                       for k in ("requests", "limits")],
            "{p}.containers[0] runs vLLM on time-sliced nvidia.com/gpu.shared", set())],
    "E11": [(lambda p: (container(p)["args"].__setitem__(0, "meta-llama/Llama-3.1-70B-Instruct"),
                        p["nodeSelector"].update({"vllm-fleet.io/gpu-memory-gib": "24"})),
             "{p}.containers[0]: meta-llama/Llama-3.1-70B-Instruct does not fit on 1 GPU(s) of 22.05 GiB: weights need 131.4 GiB "
             "per GPU but the budget is 19.8 GiB (0.9 × 22.05 GiB)", set())],
    "F1": [(lambda p: set_arg(p, "--trust-remote-code"),
            "{p}.containers[0]: --trust-remote-code for Qwen/Qwen2.5-3B-Instruct, which is not allow-listed", set())],
    "F2": [(lambda p: container(p).update(image="docker.io/vllm/vllm-openai:v0.31.0@" + RESOLVED_DIGEST),
            "{p}.containers[0]: vLLM 0.31.0 is below the floor 0.32.0", set())],
    "F3": [(lambda p: set_arg(p, "--api-key", "abc"), "{p}.containers[0]: --api-key on the command line", {"D16"}),
           (lambda p: env(p, "VLLM_API_KEY", "abc"), "{p}.containers[0]: VLLM_API_KEY is not from a secretKeyRef", {"D16"})],
    "F4": [(lambda p: env(p, "VLLM_SERVER_DEV_MODE", "1"), "{p}.containers[0].env sets VLLM_SERVER_DEV_MODE", set())],
    "F6": [(lambda p: env(p, "HF_HUB_OFFLINE", drop=True),
            "{p}.containers[0]: HF_HOME is on the shared cache but HF_HUB_OFFLINE is not 1", set()),
           (lambda p: env(p, "HF_TOKEN", "hf_abc"), "{p}.containers[0].env HF_TOKEN is not from a Secret", {"D16"})],
    "F7": [(lambda p: set_arg(p, "--limit-mm-per-prompt", '{"image":2}'),
            "{p}.containers[0]: multimodal inputs without --allowed-media-domains", set())],
    "F8": [(lambda p: set_arg(p, "--speculative-model", "org/draft"),
            "{p}.containers[0]: --speculative-model is not a flag of vLLM 0.34.0 — use --speculative-config "
            "'{\"method\": \"draft_model\", \"model\": ..., \"num_speculative_tokens\": N}' (team file: `speculative:`)", set())],
    "F9": [(lambda p: drop_arg(p, "--revision"), "{p}.containers[0]: model revision unset is not a commit", set())],
    "F10": [(lambda p: (env(p, "VLLM_ALLOW_RUNTIME_LORA_UPDATING", "True"), env(p, "VLLM_API_KEY", drop=True)),
             "{p}.containers[0]: runtime LoRA loading is on without an API key from a Secret: anyone who reaches the server "
             "can make it load adapters", set())],
    "F11": [(lambda p: set_arg(p, "--allowed-local-media-path", "/"),
             "{p}.containers[0]: --allowed-local-media-path / lets API clients read every file of the server's file system", set()),
            (lambda p: set_arg(p, "--allowed-local-media-path", "/etc/../root/x"),
             "{p}.containers[0]: --allowed-local-media-path /etc/../root/x lets API clients read /root/x of the server's file system",
             set()),
            (lambda p: set_arg(p, "--config", "/models/serve.yaml"),
             "{p}.containers[0]: --config /models/serve.yaml sets flags from a file this check cannot see (the reserved ones included)",
             set())],
    "G1": [(lambda p: container(p).pop("startupProbe"), "{p}.containers[0] has no startupProbe", set()),
           (lambda p: container(p)["startupProbe"].update(failureThreshold=10),
            "{p}.containers[0]: startupProbe allows 100 s, less than 600 s", set())],
    "G2": [(lambda p: container(p).pop("readinessProbe"), "{p}.containers[0] has no readinessProbe", set()),
           (lambda p: container(p)["livenessProbe"].pop("timeoutSeconds"),
            "{p}.containers[0].livenessProbe has no timeoutSeconds", set())],
    "G3": [(lambda p: container(p).pop("lifecycle"), "{p}.containers[0] has no preStop sleep", set()),
           (lambda p: p.update(terminationGracePeriodSeconds=30),
            "{p}.containers[0]: terminationGracePeriodSeconds 30 < preStop 15 + shutdown-timeout 30 + 5", set())],
}

QUOTA = cap("kubernetes:core/v1:ResourceQuota", {
    "apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "team-quota", "namespace": "team-search"},
    "spec": {"hard": {"requests.nvidia.com/gpu": "100", "requests.cpu": "1000", "limits.cpu": "1000",
                      "requests.memory": "4000Gi", "limits.memory": "4000Gi"}}})


def pod_cases() -> list[Case]:
    cases = [Case("baseline pods", [wrap(k, base_pod()) for k in KINDS] + [QUOTA], set(),
                  exercises={rid for rid in POD_CASES} | {"D11", "D13"})]
    for rule_id, variants in POD_CASES.items():
        for n, (mutate, message, collateral) in enumerate(variants):
            for kind in KINDS:
                pod = base_pod()
                mutate(pod)
                cases.append(Case(f"{rule_id}#{n} on {kind}", [wrap(kind, pod), QUOTA],
                                  {(rule_id, message.replace("{p}", POD_PATH[kind]))}, collateral))
    for kind in KINDS:
        cases.append(Case(f"D11 without exemption on {kind}", [wrap(kind, base_pod(), name="unexempt"), QUOTA],
                          {("D11", f"{POD_PATH[kind]}.containers[0].securityContext.readOnlyRootFilesystem is not true")}))
        # an object cannot exempt itself: annotations are not exemptions
        privileged = base_pod()
        container(privileged)["securityContext"]["privileged"] = True
        cases.append(Case(f"self-exemption by annotation on {kind}",
                          [wrap(kind, privileged, annotations={"vllm-fleet.io/exempt-d2": "the vendor image needs it, trust me"}), QUOTA],
                          {("D2", f"{POD_PATH[kind]}.containers[0].securityContext.privileged is true")}))
        moved = wrap(kind, base_pod())
        moved.inputs["metadata"]["namespace"] = "default"
        cases.append(Case(f"D13 on {kind}", [moved, QUOTA], {("D13", "namespace is default")}, {"E6"}))
    return cases


def r(typ: str, props: dict[str, Any], name: str = "x", protect: bool = False) -> Captured:
    kind = typ.rsplit(":", 1)[-1]
    if typ.startswith("kubernetes:"):
        group = typ.split(":")[1]
        props = {"apiVersion": "v1" if group == "core/v1" else group, "kind": kind, **props}
    return cap(typ, props, name=name, protect=protect)


CLUSTER_OK = {"vpcConfig": {"endpointPublicAccess": False, "endpointPrivateAccess": True},
              "encryptionConfig": {"resources": ["secrets"], "provider": {"keyArn": "arn:aws:kms:us-east-1:1:key/k"}},
              "enabledClusterLogTypes": ["api", "audit", "authenticator", "controllerManager", "scheduler"],
              "version": "1.33", "accessConfig": {"authenticationMode": "API", "bootstrapClusterCreatorAdminPermissions": False}}
CLUSTER = "aws:eks/cluster:Cluster"


def mutated(base: dict[str, Any], change: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    change(out)
    return out


def karpenter_objects() -> tuple[dict[str, Any], dict[str, Any]]:
    from fleet.render.karpenter import node_class, node_pool
    from fleet.render.platform_labels import pool_labels

    pool = next(p for p in prod_spec().config.gpu_pools if p.name == "l40s")
    return (node_pool(pool, pool_labels(pool)),
            node_class(pool, "pool-l40s-node-role", "sg-0cluster", {"vllm-fleet/pool": "l40s"}))


def other_cases(prod: dict[str, Captured]) -> list[Case]:
    np_, nc = karpenter_objects()
    NP, NC = "kubernetes:karpenter.sh/v1:NodePool", "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"
    lt = prod["pool-h100-lt"].inputs
    ng = prod["pool-h100-ng"].inputs
    # the prod L4 pool as a Bottlerocket NVIDIA group: its AMI advertises the GPUs itself (no device plugin needed)
    l4_bottlerocket = mutated(prod["pool-l4-ng"].inputs, lambda p: p.update(amiType="BOTTLEROCKET_x86_64_NVIDIA"))
    ns_labels = {"vllm-fleet.io/team": "t", "pod-security.kubernetes.io/enforce": "restricted"}
    deny = r("kubernetes:networking.k8s.io/v1:NetworkPolicy", {"metadata": {"name": "default-deny", "namespace": "t"},
             "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}}, "deny")
    hpa = {"metadata": {"name": "m", "namespace": "team-search"}, "spec": {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "m"}, "minReplicas": 1, "maxReplicas": 3,
        "metrics": [{"type": "Pods", "pods": {"metric": {"name": "vllm_num_requests_waiting"},
                                              "target": {"type": "AverageValue", "averageValue": "5"}}}],
        "behavior": {"scaleDown": {"stabilizationWindowSeconds": 600}}}}
    deployment = wrap("Deployment", base_pod())
    on_l40s = wrap("Deployment", mutated(base_pod(), lambda p: p["nodeSelector"].update({"vllm-fleet.io/pool": "l40s"})))
    vpc_cni = r("aws:eks/addon:Addon", {"clusterName": "fleet-prod", "addonName": "vpc-cni",
                                        "configurationValues": '{"enableNetworkPolicy": "true"}'}, "vpc-cni")
    autoscaled = r("kubernetes:apps/v1:Deployment", mutated(deployment.inputs, lambda p: p["spec"].pop("replicas")), deployment.name)
    return [
        Case("compliant Karpenter pool", [cap(NP, np_), cap(NC, nc)], set(), exercises={"B1", "B2", "B3", "B5", "B7", "B9"}),
        Case("B1/B2/B3/B5 on an EC2NodeClass", [cap(NC, mutated(nc, lambda p: (
            p["spec"]["metadataOptions"].update(httpTokens="optional", httpPutResponseHopLimit=2),
            p["spec"].pop("associatePublicIPAddress"), p["spec"]["blockDeviceMappings"][0]["ebs"].update(encrypted=False))))],
             {("B1", "metadataOptions.httpTokens is not required"), ("B2", "metadataOptions.httpPutResponseHopLimit is 2"),
              ("B3", "spec.associatePublicIPAddress is not false (the subnet's default decides)"),
              ("B5", "blockDeviceMappings[0] (/dev/xvda) is not encrypted")}),
        Case("B7/B9 on a NodePool", [cap(NP, mutated(np_, lambda p: (
            p["spec"]["template"]["spec"].update(taints=[]),
            p["spec"]["template"]["spec"]["requirements"][1].update(values=["spot"]))))],
             {("B7", "GPU NodePool without the nvidia.com/gpu NoSchedule taint"), ("B9", "spot GPU capacity in a prod stack")}),
        Case("B9 NodePool without instance types", [cap(NP, mutated(np_, lambda p: p["spec"]["template"]["spec"]["requirements"].pop(0)))],
             {("B9", "no node.kubernetes.io/instance-type requirement: Karpenter may launch any instance type")}),
        Case("compliant cluster", [r(CLUSTER, CLUSTER_OK)], set(), exercises={"A1", "A2", "A3", "A4", "A5"}),
        Case("A1 public endpoint", [r(CLUSTER, mutated(CLUSTER_OK, lambda p: p["vpcConfig"].update(endpointPublicAccess=True)))],
             {("A1", "the API endpoint is public to 0.0.0.0/0")}),
        Case("A2 no encryption", [r(CLUSTER, mutated(CLUSTER_OK, lambda p: p.pop("encryptionConfig")))],
             {("A2", "Secrets are not envelope-encrypted with a KMS key")}),
        Case("A3 logs", [r(CLUSTER, mutated(CLUSTER_OK, lambda p: p.update(enabledClusterLogTypes=["api"])))],
             {("A3", "control-plane logs missing: audit, authenticator, controllerManager, scheduler")}),
        Case("A4 version", [r(CLUSTER, mutated(CLUSTER_OK, lambda p: p.update(version="1.27")))],
             {("A4", "Kubernetes 1.27 is not in 1.31, 1.32, 1.33, 1.34, 1.35")}),
        Case("A5 access", [r(CLUSTER, mutated(CLUSTER_OK, lambda p: p.pop("accessConfig")))],
             {("A5", "authenticationMode is CONFIG_MAP (default)"), ("A5", "the cluster creator gets implicit admin")}),
        Case("A6 wildcard role", [r("kubernetes:rbac.authorization.k8s.io/v1:Role", {"metadata": {"name": "x", "namespace": "t"},
             "rules": [{"apiGroups": [""], "resources": ["*"], "verbs": ["*"]}]})],
             {("A6", "rules[0].verbs contains *"), ("A6", "rules[0].resources contains *")}),
        Case("A6 cluster-admin", [r("kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding", {"metadata": {"name": "x"},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
             "subjects": [{"kind": "Group", "name": "devs"}]})], {("A6", "binds cluster-admin to devs")}),
        Case("B1 IMDSv1", [r("aws:ec2/launchTemplate:LaunchTemplate", mutated(lt, lambda p: p["metadataOptions"].update(httpTokens="optional")))],
             {("B1", "metadataOptions.httpTokens is not required")}),
        Case("B2 hop limit", [r("aws:ec2/launchTemplate:LaunchTemplate", mutated(lt, lambda p: p["metadataOptions"].update(httpPutResponseHopLimit=2)))],
             {("B2", "metadataOptions.httpPutResponseHopLimit is 2")}),
        Case("B3 public IP", [r("aws:ec2/launchTemplate:LaunchTemplate", mutated(lt, lambda p: p["networkInterfaces"][0].update(associatePublicIpAddress="true")))],
             {("B3", "networkInterfaces[0].associatePublicIpAddress is true")}),
        Case("B4 open SSH", [r("aws:eks/nodeGroup:NodeGroup", mutated(ng, lambda p: p.update(remoteAccess={"ec2SshKey": "k"})))],
             {("B4", "remoteAccess allows SSH from 0.0.0.0/0 (no sourceSecurityGroupIds)")}, {"B6"}),
        Case("B5 unencrypted", [r("aws:ec2/launchTemplate:LaunchTemplate", mutated(lt, lambda p: p["blockDeviceMappings"][0]["ebs"].update(encrypted="false")))],
             {("B5", "blockDeviceMappings[0] (/dev/xvda) is not encrypted")}),
        Case("B6 AMI", [r("aws:eks/nodeGroup:NodeGroup", mutated(ng, lambda p: p.update(amiType="AL2023_x86_64_STANDARD")))],
             {("B6", "GPU instance types with amiType AL2023_x86_64_STANDARD")}),
        Case("B6 no device plugin", [r("aws:eks/nodeGroup:NodeGroup", ng)],
             {("B6", "AL2023 NVIDIA node group without an NVIDIA device plugin DaemonSet")}),
        Case("B7 taint", [r("aws:eks/nodeGroup:NodeGroup", mutated(ng, lambda p: p.update(taints=[])))],
             {("B7", "GPU node group without the nvidia.com/gpu NO_SCHEDULE taint")}, {"B6"}),
        Case("B8 wildcard policy", [r("aws:iam/rolePolicy:RolePolicy", {"role": "x", "policy": '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}'}),
                                    r("aws:iam/rolePolicyAttachment:RolePolicyAttachment", {"role": "x", "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}, "att")],
             {("B8", "allows s3:*"), ("B8", "attaches AdministratorAccess")}),
        Case("B9 capacity-block launch template outside the allow-list", [r("aws:ec2/launchTemplate:LaunchTemplate", mutated(lt, lambda p: p.update(
            instanceType="p4d.24xlarge")))], {("B9", "instance type p4d.24xlarge is outside the allow-list")}),
        Case("B9 outside allow-list and spot", [r("aws:eks/nodeGroup:NodeGroup", mutated(ng, lambda p: p.update(instanceTypes=["p4d.24xlarge"], capacityType="SPOT")))],
             {("B9", "instance types outside the allow-list: p4d.24xlarge"), ("B9", "spot GPU capacity in a prod stack")}, {"B6"}),
        Case("C1 EFS", [r("aws:efs/fileSystem:FileSystem", {"encrypted": False}, protect=True),
                        r("kubernetes:core/v1:PersistentVolume", {"metadata": {"name": "model-cache-x"}, "spec": {
                            "persistentVolumeReclaimPolicy": "Retain", "csi": {"driver": "efs.csi.aws.com", "volumeHandle": "fs-1"}}}, "pv", protect=True)],
             {("C1", "the file system is not encrypted"), ("C1", "the EFS volume mounts without tls")}),
        Case("C2 FSx", [r("aws:fsx/lustreFileSystem:LustreFileSystem", {"deploymentType": "SCRATCH_2", "storageCapacity": 1200}, protect=True)],
             {("C2", "no kmsKeyId"), ("C2", "deployment type SCRATCH_2 loses data on failure")}),
        # today's bug: ingress only (pulumi-aws drops the default egress), so file servers and clients never talk
        Case("C8 Lustre security group without egress", [r("aws:ec2/securityGroup:SecurityGroup", mutated(
            prod["model-cache-fsx-sg"].inputs, lambda p: p.pop("egress")), "sg")],
             {("C8", f"Lustre security group: no egress rule for {ports} to {who} — the file system's servers and clients cannot "
                     "reach each other (https://docs.aws.amazon.com/fsx/latest/LustreGuide/limit-access-security-groups.html)")
              for ports in ("TCP 988", "TCP 1018-1023") for who in ("the file servers (self)", "the clients' security group")}),
        Case("C8/C9 compliant", [r("aws:ec2/securityGroup:SecurityGroup", prod["model-cache-fsx-sg"].inputs, "sg"),
                                 r("aws:fsx/lustreFileSystem:LustreFileSystem", prod["model-cache-fsx"].inputs, "fsx", protect=True)],
             set(), exercises={"C8", "C9", "C2"}),
        # what the loader accepted before: any multiple of 1200
        Case("C9 PERSISTENT_2 of 3600 GiB", [r("aws:fsx/lustreFileSystem:LustreFileSystem", mutated(
            prod["model-cache-fsx"].inputs, lambda p: p.update(storageCapacity=3600)), "fsx", protect=True)],
             {("C9", "storageCapacity 3600: PERSISTENT_2 takes 1200 GiB, 2400 GiB or a multiple of 2400 GiB, not 3600 — "
                     "CreateFileSystem refuses it (https://docs.aws.amazon.com/fsx/latest/APIReference/API_CreateFileSystem.html)")}),
        Case("C3 storage class", [r("kubernetes:storage.k8s.io/v1:StorageClass", {"metadata": {"name": "gp3"}, "provisioner": "ebs.csi.aws.com",
                                                                                 "reclaimPolicy": "Delete", "parameters": {"type": "gp3"}})],
             {("C3", 'EBS StorageClass without encrypted: "true"')}),
        Case("C3 compliant", [r("kubernetes:storage.k8s.io/v1:StorageClass", {"metadata": {"name": "gp3"}, "provisioner": "ebs.csi.aws.com",
                                                                             "reclaimPolicy": "Retain", "parameters": {"encrypted": "true"}})],
             set(), exercises={"C3", "C5"}),
        Case("C4 bare bucket", [r("aws:s3/bucket:Bucket", {"bucket": "weights"}, "bucket", protect=True)],
             {("C4", "bucket weights has no a public access block with all four switches"), ("C4", "bucket weights has no SSE-KMS"),
              ("C4", "bucket weights has no versioning")}),
        Case("C5 recycle", [r("kubernetes:core/v1:PersistentVolume", {"metadata": {"name": "model-cache-x"}, "spec": {
            "persistentVolumeReclaimPolicy": "Recycle", "csi": {"driver": "fsx.csi.aws.com", "volumeHandle": "fs-1"}}}, "pv", protect=True)],
             {("C5", "reclaim policy Recycle")}),
        Case("C6 unprotected", [r("kubernetes:core/v1:PersistentVolumeClaim", {"metadata": {"name": "model-cache", "namespace": "t"},
             "spec": {"storageClassName": "model-cache", "accessModes": ["ReadWriteMany"]}}, "pvc")],
             {("C6", "stateful resource without protect in a production stack")}),
        Case("C7 no class", [r("kubernetes:core/v1:PersistentVolumeClaim", {"metadata": {"name": "data", "namespace": "t"},
             "spec": {"accessModes": ["ReadWriteOnce"]}}, "pvc", protect=True)],
             {("C7", "no storageClassName: the cluster default decides")}),
        Case("D17 no default deny", [r("kubernetes:core/v1:Namespace", {"metadata": {"name": "t", "labels": ns_labels}}, "ns")],
             {("D17", "namespace t has no default-deny NetworkPolicy")}),
        Case("D17 compliant", [r("kubernetes:core/v1:Namespace", {"metadata": {"name": "t", "labels": ns_labels}}, "ns"), deny, vpc_cni],
             set(), exercises={"D17", "D18"}),
        Case("D18 baseline only", [r("kubernetes:core/v1:Namespace", {"metadata": {"name": "t", "labels": {
            **ns_labels, "pod-security.kubernetes.io/enforce": "baseline"}}}, "ns"), deny, vpc_cni],
             {("D18", "namespace t enforces baseline Pod Security level")}),
        Case("D19 NetworkPolicies nobody enforces", [deny], {("D19", "1 NetworkPolicies are rendered but the vpc-cni add-on does not "
             "turn its network policy agent on: the VPC CNI ignores them, every pod can reach every other")}),
        Case("D19 compliant", [deny, vpc_cni], set(), exercises={"D19"}),
        Case("E12 pool too small", [r("aws:eks/nodeGroup:NodeGroup", l4_bottlerocket, "ng"), QUOTA,
                                    r("kubernetes:apps/v1:Deployment", mutated(deployment.inputs, lambda p: p["spec"].update(replicas=20)), "d")],
             {("E12", "pool l4: its models need up to 20 GPUs at max replicas plus 8 spare for rollouts, but it holds at most 16 "
                      "(16 nodes × 1)")}, {"G5", "E15"}),
        Case("E12 compliant", [r("aws:eks/nodeGroup:NodeGroup", l4_bottlerocket, "ng"), QUOTA, deployment], set(),
             exercises={"E12", "E13"}),
        # today's bundled prod l4 pool: min replicas need 4 one-GPU nodes, nothing grows the group past desired_size 2
        Case("E15 min replicas beyond desired_size without an autoscaler", [
            r("aws:eks/nodeGroup:NodeGroup", l4_bottlerocket, "ng"), QUOTA,
            r("kubernetes:apps/v1:Deployment", mutated(deployment.inputs, lambda p: p["spec"].update(replicas=4)), "d")],
             {("E15", "pool l4: the models' minimum replicas need 4 GPUs on 4 node(s) of 1 when `pulumi up` waits for them, but the "
                      "pool has 2 (desired_size: no node autoscaler of the stack discovers this group) — their pods stay Pending and "
                      "the update times out")}, {"G5", "G7"}),
        Case("E15 compliant: the stack's Cluster Autoscaler discovers the group", [
            r("aws:eks/nodeGroup:NodeGroup", l4_bottlerocket, "ng"), QUOTA,
            r("kubernetes:apps/v1:Deployment", mutated(deployment.inputs, lambda p: p["spec"].update(replicas=4)), "d"),
            r("kubernetes:apps/v1:Deployment", prod["deployment-cluster-autoscaler-cluster-autoscaler"].inputs, "ca")],
             set(), {"G5", "G7"}, exercises={"E15"}),
        # the bundled prod stack's fixed start time, applied after the block began
        Case("B10 scheduled action in the past", [r("aws:autoscaling/schedule:Schedule", mutated(
            prod["pool-h100-block-drain"].inputs, lambda p: p.update(startTime="2026-12-07T11:30:00Z",
                                                                     scheduledActionName="h100-capacity-block-start")), "s")],
             {("B10", "scheduled action h100-capacity-block-start: startTime 2026-12-07T11:30:00Z is in the past (2026-12-07T12:00:00Z): "
                      "EC2 Auto Scaling refuses it — the first `pulumi up` (or any re-create) fails "
                      "(https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_PutScheduledUpdateGroupAction.html)")}),
        Case("B10 compliant", [r("aws:autoscaling/schedule:Schedule", prod["pool-h100-block-drain"].inputs, "s")], set(),
             exercises={"B10"}),
        Case("E13 no device plugin", [r("aws:eks/nodeGroup:NodeGroup", prod["pool-l40s-ng"].inputs, "ng"), QUOTA, on_l40s],
             {("E13", "Deployment team-search/m spec.template.spec.containers[0] requests nvidia.com/gpu, which no device plugin "
                      "advertises on pool l40s")}, {"B6"}),
        Case("E13 compliant", [r("aws:eks/nodeGroup:NodeGroup", prod["pool-l40s-ng"].inputs, "ng"), QUOTA, on_l40s,
                               r("kubernetes:apps/v1:DaemonSet", prod["daemonset-gpu-system-nvidia-device-plugin"].inputs, "plugin")],
             set(), exercises={"E13", "B6"}),
        Case("E6 no quota", [deployment], {("E6", "namespace team-search runs GPU pods without a requests.nvidia.com/gpu quota")}),
        Case("E6 limits form", [deployment, QUOTA, r("kubernetes:core/v1:ResourceQuota", {"metadata": {"name": "bad", "namespace": "team-search"},
             "spec": {"hard": {"limits.nvidia.com/gpu": "4"}}}, "bad")],
             {("E6", "ResourceQuota team-search/bad uses limits.nvidia.com/gpu, which Kubernetes rejects for extended resources — "
                     "use requests.nvidia.com/gpu")}),
        Case("E7 autoscaler beyond quota", [deployment, r("kubernetes:core/v1:ResourceQuota", {"metadata": {"name": "q", "namespace": "team-search"},
             "spec": {"hard": {"requests.nvidia.com/gpu": "2"}}}, "q"), r("kubernetes:autoscaling/v2:HorizontalPodAutoscaler", hpa, "hpa")],
             {("E7", "HorizontalPodAutoscaler team-search/m can scale to 3 GPUs (3 × 1) but the namespace quota is 2")}, {"G8"}),
        Case("E7 compliant", [autoscaled, QUOTA, r("kubernetes:autoscaling/v2:HorizontalPodAutoscaler", hpa, "hpa")], set(),
             exercises={"E7", "G6", "F8", "E6", "G8"}),
        Case("G8 replicas under an HPA", [deployment, QUOTA, r("kubernetes:autoscaling/v2:HorizontalPodAutoscaler", hpa, "hpa")],
             {("G8", "Deployment team-search/m sets spec.replicas but HorizontalPodAutoscaler team-search/m owns the count")}),
        Case("E9 time-slicing unsafe", [r("kubernetes:core/v1:ConfigMap", {"metadata": {"name": "dp", "namespace": "gpu-system"},
             "data": {"config.yaml": '{"sharing": {"timeSlicing": {"renameByDefault": false, "resources": []}}}'}}, "cm")],
             {("E9", "data.config.yaml: timeSlicing.failRequestsGreaterThanOne is not true"),
              ("E9", "data.config.yaml: timeSlicing.renameByDefault is not true")}),
        Case("E10 spot single replica", [r("aws:eks/nodeGroup:NodeGroup", mutated(ng, lambda p: p.update(capacityType="SPOT", instanceTypes=["g6e.12xlarge"],
                                                                                                          labels={"vllm-fleet.io/pool": "l4"})), "ng"),
                                         deployment, QUOTA],
             {("E10", "Deployment team-search/m runs one replica on spot GPUs")}, {"B6", "B9", "E13"}),
        # the Service is found by its selector matching the vLLM pods, whatever their labels say
        Case("F5 public service", [deployment, QUOTA, r("kubernetes:core/v1:Service", {"metadata": {"name": "m", "namespace": "team-search"},
             "spec": {"type": "LoadBalancer", "selector": {"vllm-fleet.io/team": "search"}, "ports": [{"port": 8000}]}}, "svc")],
             {("F5", "Service team-search/m of type LoadBalancer exposes vLLM (Deployment/team-search/m) directly")}),
        Case("F5 public service of other pods", [deployment, QUOTA, r("kubernetes:core/v1:Service", {
             "metadata": {"name": "web", "namespace": "team-search"},
             "spec": {"type": "LoadBalancer", "selector": {"app": "vllm-dashboard"}, "ports": [{"port": 80}]}}, "svc")], set()),
        Case("F5 ingress without TLS", [r("kubernetes:networking.k8s.io/v1:Ingress", {"metadata": {"name": "m", "namespace": "t"},
                                                                                     "spec": {"rules": [{"host": "m.example.com"}]}}, "ing")],
             {("F5", "Ingress has no tls section")}),
        Case("F5 compliant ingress", [r("kubernetes:networking.k8s.io/v1:Ingress", {"metadata": {"name": "m", "namespace": "t"},
                                                                                   "spec": {"tls": [{"hosts": ["m.example.com"]}]}}, "ing")],
             set(), exercises={"F5"}),
        Case("F8 removed metric", [r("kubernetes:autoscaling/v2:HorizontalPodAutoscaler", mutated(hpa, lambda p: p["spec"]["metrics"].append(
            {"type": "Pods", "pods": {"metric": {"name": "vllm_gpu_cache_usage_perc"}, "target": {"type": "AverageValue", "averageValue": "1"}}})), "hpa")],
             {("F8", "uses the removed metric vllm_gpu_cache_usage_perc (use vllm:kv_cache_usage_perc or vllm:num_requests_waiting)")}),
        Case("G4 surge without headroom", [r("kubernetes:apps/v1:Deployment", mutated(deployment.inputs, lambda p: p["spec"].update(
            replicas=20, strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "100%", "maxUnavailable": 0}})), "d"), QUOTA],
             {("G4", "maxSurge 100% adds 20 GPU(s) during a rollout but the stack keeps 8 spare")}, {"G5", "G7"}),
        Case("G5 zero-disruption PDB", [r("kubernetes:policy/v1:PodDisruptionBudget", {"metadata": {"name": "m", "namespace": "t"},
                                                                                       "spec": {"maxUnavailable": 0}}, "pdb")],
             {("G5", "maxUnavailable 0 blocks node drains")}),
        Case("G5 no PDB, G7 no spread", [r("kubernetes:apps/v1:Deployment", mutated(deployment.inputs, lambda p: (
            p["spec"].update(replicas=2), p["spec"]["template"]["spec"].pop("topologySpreadConstraints"))), "d"), QUOTA],
             {("G5", "Deployment team-search/m has 2 replicas and no PodDisruptionBudget"),
              ("G7", "2 replicas without topology spread or anti-affinity")}),
        Case("G6 GPU utilisation", [r("kubernetes:autoscaling/v2:HorizontalPodAutoscaler", mutated(hpa, lambda p: p["spec"].update(
            metrics=[{"type": "Pods", "pods": {"metric": {"name": "DCGM_FI_DEV_GPU_UTIL"}, "target": {"type": "AverageValue", "averageValue": "80"}}}],
            behavior={"scaleDown": {"stabilizationWindowSeconds": 60}})), "hpa")],
             {("G6", "scales on DCGM_FI_DEV_GPU_UTIL instead of the vLLM queue"),
              ("G6", "scales on DCGM_FI_DEV_GPU_UTIL, which continuous batching keeps high"),
              ("G6", "scale-down stabilization window is 60 s (< 300 s)")}),
    ]


def routing_cases(prod: dict[str, Captured]) -> list[Case]:
    """H1-H4 on the prod stack's own qwen-3b pool: its pool, pods, picker and the team's route, then one break each."""
    POOL, ROUTE = "kubernetes:inference.networking.k8s.io/v1:InferencePool", "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"
    DEP, SVC = "kubernetes:apps/v1:Deployment", "kubernetes:core/v1:Service"
    pool = prod["inferencepool-team-search-qwen-3b"].inputs
    server = prod["deployment-team-search-qwen-3b"].inputs
    picker = prod["deployment-team-search-qwen-3b-epp"].inputs
    base = [r(POOL, pool, "pool"), r(DEP, server, "server"), r(DEP, picker, "epp"),
            r(SVC, prod["service-team-search-qwen-3b-epp"].inputs, "epp-svc"), r(ROUTE, prod["httproute-team-search-openai"].inputs, "route"),
            r("kubernetes:autoscaling/v2:HorizontalPodAutoscaler", prod["horizontalpodautoscaler-team-search-qwen-3b"].inputs, "hpa"),
            r("kubernetes:policy/v1:PodDisruptionBudget", prod["poddisruptionbudget-team-search-qwen-3b"].inputs, "pdb"), QUOTA,
            *picker_rbac(prod)]

    def but(name: str, props: dict[str, Any]) -> list[Captured]:
        return [x if x.name != name else r(x.type, props, name) for x in base]

    cross = mutated(prod["httproute-team-search-openai"].inputs,
                    lambda p: p["spec"]["rules"][0]["backendRefs"][0].update(namespace="team-assistant"))
    grant = r("kubernetes:gateway.networking.k8s.io/v1beta1:ReferenceGrant", {
        "metadata": {"name": "search-routes", "namespace": "team-assistant"},
        "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": "team-search"}],
                 "to": [{"group": "inference.networking.k8s.io", "kind": "InferencePool"}]}}, "grant")
    cluster_binding = r("kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding", {
        "metadata": {"name": "epp-everywhere"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "ServiceAccount", "name": "qwen-3b-epp", "namespace": "team-search"}]}, "crb")
    other_model = mutated(server, lambda p: (p["metadata"].update(name="qwen-7b"),
                                            p["spec"]["template"]["spec"]["containers"][0]["args"].__setitem__(0, "Qwen/Qwen2.5-7B-Instruct")))
    other_image = mutated(server, lambda p: (p["metadata"].update(name="qwen-3b-next"),
                                            p["spec"]["template"]["spec"]["containers"][0].update(
                                                image="docker.io/vllm/vllm-openai:v0.32.0@" + RESOLVED_DIGEST)))
    route_ref = "HTTPRoute/team-search/openai rules[0].backendRefs[0]"
    return [
        Case("H1-H4 compliant: the prod pool, its pods, picker and route", base, set(), exercises={"H1", "H2", "H3", "H4"}),
        Case("H1 pool selecting nothing", but("pool", mutated(pool, lambda p: p["spec"]["selector"]["matchLabels"].update(
            {"vllm-fleet.io/inference-pool": "qwen-3"}))),
             {("H1", "InferencePool/team-search/qwen-3b selects no vLLM pods (selector {'vllm-fleet.io/inference-pool': 'qwen-3'})")}),
        Case("H1 pool on a port the pods do not expose", but("pool", mutated(pool, lambda p: p["spec"].update(targetPorts=[{"number": 8080}]))),
             {("H1", "InferencePool/team-search/qwen-3b targets port 8080, which the pods of Deployment/team-search/qwen-3b do not expose")}),
        Case("H2 route to another namespace's pool", but("route", cross),
             {("H2", f"{route_ref} points at InferencePool team-assistant/qwen-3b without a ReferenceGrant in team-assistant")}),
        Case("H2 compliant with a ReferenceGrant", [*but("route", cross), grant], set(), exercises={"H2"}),
        Case("H3 picker without limits", but("epp", mutated(picker, lambda p: p["spec"]["template"]["spec"]["containers"][0]["resources"].pop("limits"))),
             {("H3", "Deployment/team-search/qwen-3b-epp spec.template.spec.containers[0] (endpoint picker) has no cpu or memory limit")},
             {"D14"}),
        Case("H3 picker bound cluster-wide", [*base, cluster_binding],
             {("H3", "Deployment/team-search/qwen-3b-epp (endpoint picker) runs as team-search/qwen-3b-epp, which "
                     "ClusterRoleBinding/epp-everywhere binds to ClusterRole view cluster-wide")}),
        Case("H4 pool over two models", [*base, r(DEP, other_model, "other")],
             {("H4", "InferencePool/team-search/qwen-3b selects pods serving different models: Deployment/team-search/qwen-3b "
                     "(Qwen/Qwen2.5-3B-Instruct), Deployment/team-search/qwen-7b (Qwen/Qwen2.5-7B-Instruct)")}, {"G5", "E12", "G8", "D11"}),
        Case("H4 pool over two vLLM releases", [*base, r(DEP, other_image, "other")],
             {("H4", "InferencePool/team-search/qwen-3b selects pods running different vLLM images: Deployment/team-search/qwen-3b "
                     f"(docker.io/vllm/vllm-openai:v0.34.0@{RESOLVED_DIGEST}), Deployment/team-search/qwen-3b-next "
                     f"(docker.io/vllm/vllm-openai:v0.32.0@{RESOLVED_DIGEST})")}, {"G5", "E12", "G8", "D11"}),
    ]


def picker_rbac(prod: dict[str, Captured]) -> list[Captured]:
    """The prod qwen-3b picker's ServiceAccount, Role and RoleBinding."""
    rbac = "kubernetes:rbac.authorization.k8s.io/v1"
    return [r("kubernetes:core/v1:ServiceAccount", prod["serviceaccount-team-search-qwen-3b-epp"].inputs, "epp-sa"),
            r(f"{rbac}:Role", prod["role-team-search-qwen-3b-epp"].inputs, "epp-role"),
            r(f"{rbac}:RoleBinding", prod["rolebinding-team-search-qwen-3b-epp"].inputs, "epp-rb")]


def component_cases(prod: dict[str, Captured]) -> list[Case]:
    """I1-I3 on the prod stack's own gateway: the qwen-3b pool, its pods and picker, the body-based router with its
    EnvoyFilter and DestinationRules, and the EFA device plugin; then each deploy-breaking defect of issue 25 put back."""
    DEP, SVC, DS = "kubernetes:apps/v1:Deployment", "kubernetes:core/v1:Service", "kubernetes:apps/v1:DaemonSet"
    RBAC, DR = "kubernetes:rbac.authorization.k8s.io/v1", "kubernetes:networking.istio.io/v1:DestinationRule"
    EF = "kubernetes:networking.istio.io/v1alpha3:EnvoyFilter"
    picker = prod["deployment-team-search-qwen-3b-epp"].inputs
    bbr = prod["deployment-gateway-body-based-router"].inputs
    efa = prod["daemonset-gpu-system-aws-efa-k8s-device-plugin"].inputs
    envoy = prod["envoyfilter-gateway-body-based-router"].inputs
    prefetch = next(c.inputs for name, c in prod.items() if name.startswith("job-team-search-qwen-3b-prefetch-"))
    base = [r("kubernetes:inference.networking.k8s.io/v1:InferencePool", prod["inferencepool-team-search-qwen-3b"].inputs, "pool"),
            r(DEP, prod["deployment-team-search-qwen-3b"].inputs, "server"), r(DEP, picker, "epp"),
            r(SVC, prod["service-team-search-qwen-3b-epp"].inputs, "epp-svc"), *picker_rbac(prod),
            r(DR, prod["destinationrule-team-search-qwen-3b-epp"].inputs, "epp-dr"), QUOTA,
            r("kubernetes:autoscaling/v2:HorizontalPodAutoscaler", prod["horizontalpodautoscaler-team-search-qwen-3b"].inputs, "hpa"),
            r("kubernetes:policy/v1:PodDisruptionBudget", prod["poddisruptionbudget-team-search-qwen-3b"].inputs, "pdb"),
            r(DEP, bbr, "bbr"), r("kubernetes:core/v1:ServiceAccount", prod["serviceaccount-gateway-body-based-router"].inputs, "bbr-sa"),
            r(f"{RBAC}:Role", prod["role-gateway-body-based-router"].inputs, "bbr-role"),
            r(f"{RBAC}:RoleBinding", prod["rolebinding-gateway-body-based-router"].inputs, "bbr-rb"),
            r(SVC, prod["service-gateway-body-based-router"].inputs, "bbr-svc"), r(EF, envoy, "bbr-ef"),
            r(DR, prod["destinationrule-gateway-body-based-router"].inputs, "bbr-dr"),
            r("kubernetes:policy/v1:PodDisruptionBudget", prod["poddisruptionbudget-gateway-body-based-router"].inputs, "bbr-pdb"),
            r(DS, efa, "efa"), r("kubernetes:batch/v1:Job", prefetch, "prefetch")]

    def but(name: str, props: dict[str, Any] | None) -> list[Captured]:
        return [x if x.name != name else r(x.type, props, name) for x in base if x.name != name or props is not None]

    def pod(p: dict[str, Any]) -> dict[str, Any]:
        return p["spec"]["template"]["spec"]

    old_picker = mutated(picker, lambda p: pod(p)["containers"][0].update(
        image="registry.k8s.io/gateway-api-inference-extension/epp:v1.0.1@" + RESOLVED_DIGEST))
    no_token = mutated(bbr, lambda p: (pod(p).pop("volumes"), pod(p)["containers"][0].pop("volumeMounts")))
    no_infiniband = mutated(efa, lambda p: (pod(p)["volumes"].pop(1), pod(p)["containers"][0]["volumeMounts"].pop(1)))
    buffered = mutated(envoy, lambda p: p["spec"]["configPatches"][0]["patch"]["value"]["typed_config"]["processing_mode"].update(
        request_body_mode="BUFFERED"))
    old_metric = mutated(picker, lambda p: pod(p)["containers"][0]["args"].extend(
        ["--kv-cache-usage-percentage-metric", "vllm:gpu_cache_usage_perc"]))
    typo = mutated(prefetch, lambda p: pod(p)["containers"][0]["args"].__setitem__(
        0, pod(p)["containers"][0]["args"][0].replace("--exclude", "--excludes")))
    epp = "Deployment/team-search/qwen-3b-epp spec.template.spec.containers[0]"
    gie = "kubernetes-sigs/gateway-api-inference-extension"
    return [
        Case("I1-I3 compliant: the prod gateway, picker, router and EFA plugin", base, set(), exercises={"I1", "I2", "I3"}),
        Case("I1 picker flags its release does not define (issue 25 item 1)", but("epp", old_picker),
             {("I1", f'{epp}.args: endpoint-picker v1.0.1 exits with "flag provided but not defined: -metrics-endpoint-auth" '
                     f"({gie}@v1.0.1:cmd/epp/runner/runner.go)"),
              ("I1", f'{epp}.args: endpoint-picker v1.0.1 exits with "flag provided but not defined: -tracing" '
                     f"({gie}@v1.0.1:cmd/epp/runner/runner.go)")}, {"I2", "I3"}),
        Case("I2 body-based router without the API token (issue 25 item 2)", but("bbr", no_token),
             {("I2", "Deployment/gateway/body-based-router spec.template.spec.containers[0]: body-based-router v1.3.1 needs the API "
                     "token — ctrl.GetConfig() reads the in-cluster config and the manager watches ConfigMaps labelled "
                     "inference-gateway.k8s.io/managed; the pod mounts none, so it exits at start "
                     f"({gie}@v1.3.1:cmd/bbr/runner/runner.go)")}),
        Case("I2 body-based router without TLS origination (issue 25 item 3)", but("bbr-dr", None),
             {("I2", "Service/gateway/body-based-router: body-based-router v1.3.1 serves TLS on 9004 but no DestinationRule for "
                     "body-based-router.gateway.svc.cluster.local originates TLS, so the gateway's ext_proc calls fail "
                     f"({gie}@v1.3.1:cmd/bbr/runner/runner.go)")}),
        Case("I2 router fed a buffered body", but("bbr-ef", buffered),
             {("I2", "EnvoyFilter/gateway/body-based-router spec.configPatches[0]...processing_mode.request_body_mode: BUFFERED for "
                     "body-based-router v1.3.1, whose chart uses FULL_DUPLEX_STREAMED — BUFFERED holds the whole request in Envoy's "
                     "buffer (a large prompt answers 413); the release streams it only with --streaming "
                     f"({gie}@v1.3.1:config/charts/body-based-routing/templates/istio.yaml)")}),
        Case("I1 EFA device plugin without /dev/infiniband (issue 25 item 5)", but("efa", no_infiniband),
             {("I1", "DaemonSet/gpu-system/aws-efa-k8s-device-plugin spec.template.spec.containers[0].volumeMounts: efa-device-plugin "
                     "v0.5.6 needs the host path /dev/infiniband — the EFA devices it advertises as vpc.amazonaws.com/efa; without "
                     "them it finds none (aws/eks-charts@2a91e36:stable/aws-efa-k8s-device-plugin/templates/daemonset.yaml)")}),
        Case("I1 prefetch Job with an option the Hugging Face CLI does not define", but("prefetch", typo),
             {("I1", f"Job/team-search/{prefetch['metadata']['name']} spec.template.spec.containers[0].args: `hf download` — No such "
                     "option: --excludes: huggingface_hub 2.0.0 would refuse it "
                     "(huggingface/huggingface_hub@v2.0.0:src/huggingface_hub/cli/download.py)")}),
        Case("I3 picker reading a metric vLLM 0.34 does not expose", but("epp", old_metric),
             {("I3", f"{epp}: endpoint-picker v1.3.1 reads vllm:gpu_cache_usage_perc (--kv-cache-usage-percentage-metric) but "
                     "vLLM 0.34.0 (Deployment/team-search/qwen-3b) does not expose it, so that scorer reads nothing "
                     f"({gie}@v1.3.1:pkg/epp/server/options.go)")}),
    ]
