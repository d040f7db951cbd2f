"""`stacks/Pulumi.<stack>.yaml`: the platform of one environment.

The file is a regular Pulumi stack config file: everything lives under `config:` with the provider key
`aws:region` and this project's keys in the `vllm-fleet:` namespace, so `pulumi config get` and ESC work
as usual. Secret values live under `vllm-fleet:secrets` as Pulumi-encrypted `secure:` entries.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, Field, StringConstraints, model_validator

from fleet.k8s_names import (
    DNS1035_LABEL_FMT,
    DNS1035_LABEL_MAX,
    DNS1123_SUBDOMAIN_FMT,
    DNS1123_SUBDOMAIN_MAX,
    LabelKey,
    LabelValue,
    Namespace,
    ObjectName,
    SecretObjectName,
    StackSecretName,
    dns1035_label,
    dns1123_subdomain,
    rule,
    schema,
)
from fleet.spec.base import NAME_MAX, CliBool, CliInt, Name, Owner, Strict

# ISO 8601 timestamps with a zone (`2026-12-07T11:30:00Z`); the engine hands them over as strings.
Timestamp = Annotated[AwareDatetime, Field(strict=False)]
SubnetId = Annotated[str, StringConstraints(pattern=r"^subnet-([0-9a-f]{8}|[0-9a-f]{17})$")]
RuleId = Annotated[str, StringConstraints(pattern=r"^[A-G][0-9]{1,2}$")]
Level = Literal["advisory", "mandatory", "disabled"]


class CreateCluster(Strict):
    """A minimal private EKS cluster created by this stack (omit to adopt an existing cluster)."""

    subnet_ids: list[SubnetId] = Field(min_length=2, description="Private subnet ids for the control plane ENIs (at least two AZs).")
    endpoint_public_access: CliBool = Field(False, description="Expose the API endpoint publicly. Default false. Requires `public_access_cidrs` without "
                                                            "0.0.0.0/0 (policy A1).")
    public_access_cidrs: list[str] = Field(default_factory=list, description="CIDRs allowed to reach a public endpoint. Only with `endpoint_public_access: "
                                                                             "true`.")
    secrets_kms_key_arn: str | None = Field(None, description="KMS key for envelope encryption of Secrets. Default: a key created by the stack (policy A2).")

    @model_validator(mode="after")
    def _cidrs(self) -> CreateCluster:
        if self.public_access_cidrs and not self.endpoint_public_access:
            raise ValueError("public_access_cidrs is set but endpoint_public_access is false — remove the CIDRs or enable public access")
        if self.endpoint_public_access and (not self.public_access_cidrs or "0.0.0.0/0" in self.public_access_cidrs):
            raise ValueError("a public endpoint needs public_access_cidrs that exclude 0.0.0.0/0 — list your office/VPN CIDRs")
        return self


class Cluster(Strict):
    """The EKS cluster the fleet runs on."""

    name: Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z][A-Za-z0-9\-_]{0,99}$")] = Field(
        description="EKS cluster name. Adopted as-is when `create` is omitted (looked up with aws.eks.getCluster).")
    create: CreateCluster | None = Field(None, description="Reserved: creating a minimal private cluster is not supported yet and is "
                                                           "refused; adopt an existing cluster by `name`.")
    oidc_provider_arn: str | None = Field(None, description="IAM OIDC provider of the cluster for IRSA roles (EFS CSI driver). Default: derived from the "
                                                            "cluster.")
    network_policy_enforcement: Literal["vpc-cni-addon", "external", "none"] = Field(
        "vpc-cni-addon", description="Who enforces the teams' NetworkPolicies. `vpc-cni-addon`: the stack manages the `vpc-cni` "
        "EKS add-on with its network policy agent on (the VPC CNI ignores NetworkPolicies otherwise; an existing vpc-cni "
        "EKS add-on is imported first, see docs/first-deploy.md). `external`: the cluster enforces them another way "
        "(Calico, Cilium, a self-managed CNI configuration). `none`: nothing does — a finding (policy D19).")


class GpuPool(Strict):
    """One GPU node pool."""

    name: Name = Field(description="Pool name; models select it with `pool:` and nodes carry the label `vllm-fleet.io/pool=<name>`.")
    instance_types: list[str] = Field(min_length=1, description="GPU instance types from the catalog (fleet/catalog/gpus.yaml). All must have the same GPU "
                                                                "count and GPU memory, so sizing is exact.")
    capacity_type: Literal["on-demand", "spot", "capacity-block"] = Field("on-demand", description="EC2 capacity type. `spot` is allowed in prod only with "
                                                                                                   "`policy.allow_spot_in_prod` (policy B9).")
    provisioner: Literal["managed", "karpenter"] = Field("managed", description="`managed`: an EKS managed node group with its own launch template. "
                                                                                "`karpenter`: NodePool + EC2NodeClass (just-in-time, scale to zero).")
    min_size: CliInt = Field(0, ge=0, description="Minimum nodes. Default 0.")
    max_size: CliInt = Field(ge=1, description="Maximum nodes. Must be ≥ min_size.")
    desired_size: CliInt | None = Field(None, ge=0, description="Initial desired nodes for managed node groups. Default: min_size. Must lie within [min_size, "
                                                             "max_size].")
    ami_family: Literal["al2023", "bottlerocket"] = Field("al2023", description="`al2023` (AL2023 NVIDIA AMI; the stack installs the NVIDIA device plugin) "
                                                                                "or `bottlerocket` (Bottlerocket NVIDIA, which ships the device plugin).")
    ami_version: Annotated[str, StringConstraints(pattern=r"^\d+\.\d+\.\d+-[0-9a-f]{8}$")] | None = Field(
        None, description="The EKS-optimized AMI release the nodes boot, as EKS names it (`aws eks describe-nodegroup` "
                          "releaseVersion): AL2023 `<kubernetes>-<date>` (`1.33.13-20260714`, the amazon-eks-ami release "
                          "notes), Bottlerocket `<version>-<commit>` (SSM `/aws/service/bottlerocket/aws-k8s-<k8s>-nvidia/"
                          "x86_64/latest/image_version`). Managed node groups get it as their release version, Karpenter "
                          "pools the alias `al2023@v<date>` / `bottlerocket@v<version>`. Default: unpinned (the latest "
                          "at creation; Karpenter drifts every node to each new release) — a warning in prod. Bump it "
                          "with `vllm-fleet upgrade ami-al2023|ami-bottlerocket VERSION`.")
    disk_gib: CliInt = Field(200, ge=100, le=16384, description="Encrypted gp3 root volume in GiB. Default 200: a ~25 GB vLLM image unpacked twice during "
                                                             "updates plus logs. Minimum 100.")
    labels: dict[LabelKey, LabelValue] = Field(
        default_factory=dict, description="Extra node labels. The pool, GPU model, GPU memory and GPUs per node labels are "
                                          "added by the stack and cannot be overridden.")
    subnet_ids: list[SubnetId] = Field(min_length=1, description="Private subnet ids for the nodes (no public IPs are assigned).")
    efa: CliBool = Field(False, description="Attach EFA interfaces (multi-node tensor/pipeline parallel). Only on instance types that support EFA.")
    capacity_reservation_id: Annotated[str, StringConstraints(pattern=r"^cr-[0-9a-f]{8,17}$")] | None = Field(
        None, description="EC2 Capacity Block reservation the pool launches into. Required with `capacity_type: capacity-block`, "
                          "refused otherwise. The block's instance count is the pool's `max_size`.")
    capacity_block_starts_at: Timestamp | None = Field(
        None, description="When the Capacity Block begins (ISO 8601, UTC). Scheduled scaling brings the node group to `max_size` then.")
    capacity_block_ends_at: Timestamp | None = Field(
        None, description="When the Capacity Block ends (ISO 8601, UTC). Scheduled scaling takes the node group to 0 "
                          "45 minutes before, so pods drain before EC2 reclaims the instances.")

    @model_validator(mode="after")
    def _sizes(self) -> GpuPool:
        block = (self.capacity_reservation_id, self.capacity_block_starts_at, self.capacity_block_ends_at)
        if (self.capacity_type == "capacity-block") != any(v is not None for v in block) or (
                self.capacity_type == "capacity-block" and None in block):
            raise ValueError("capacity_type capacity-block goes with capacity_reservation_id, capacity_block_starts_at and "
                             "capacity_block_ends_at — set all four or none")
        if self.capacity_type == "capacity-block":
            assert self.capacity_block_starts_at is not None and self.capacity_block_ends_at is not None
            if self.capacity_block_ends_at <= self.capacity_block_starts_at + dt.timedelta(hours=1):
                raise ValueError("capacity_block_ends_at must come more than an hour after capacity_block_starts_at")
            if self.min_size or self.desired_size:
                raise ValueError("a capacity-block pool starts at 0 nodes (AWS: the desired size is 0 before the block starts); "
                                 "scheduled scaling brings it to max_size when the block begins — remove min_size and desired_size")
            if len(self.instance_types) != 1 or self.provisioner != "managed":
                raise ValueError("a capacity-block pool is one managed node group of the block's single instance type")
        if self.ami_version is not None and self.ami_family == "al2023" and not re.fullmatch(r"\d+\.\d+\.\d+-20\d{6}", self.ami_version):
            raise ValueError(f"ami_version {self.ami_version} is not an AL2023 release (`<kubernetes>-<date>`, e.g. 1.33.13-20260714)")
        if self.provisioner == "karpenter" and (self.min_size or self.desired_size):
            raise ValueError("a karpenter pool scales from zero on demand — remove min_size and desired_size")
        if self.max_size < self.min_size:
            raise ValueError(f"max_size {self.max_size} is below min_size {self.min_size} — raise max_size or lower min_size")
        if self.desired_size is not None and not self.min_size <= self.desired_size <= self.max_size:
            raise ValueError(f"desired_size {self.desired_size} must lie within [min_size {self.min_size}, max_size {self.max_size}]")
        return self


class EfaImage(Strict):
    """A vLLM image built with libfabric and the aws-ofi-nccl plugin (e.g. AWS's vLLM Deep Learning Container): NCCL
    reaches EFA only through that plugin, which the stock vllm/vllm-openai image lacks."""

    repository: str = Field(description="Image repository; its registry must be in `allowed_registries`.")
    tag: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")] | None = Field(
        None, description="Image tag. Default `v<version>`; it must name the same vLLM version (policy F2 reads it).")
    digest: Annotated[str, StringConstraints(pattern=r"^sha256:[0-9a-f]{64}$")] | None = Field(None, description="Image digest (policy D15).")


class TimeSlicing(Strict):
    enabled: CliBool = Field(False, description="Share a GPU between pods. Never used for vLLM replicas (policy E9); for light system workloads only.")
    replicas: CliInt = Field(2, ge=2, le=16, description="Virtual GPUs per physical GPU.")
    fail_requests_greater_than_one: CliBool = Field(True, description="Refuse pods asking for more than one shared GPU (NVIDIA recommends true).")
    rename_by_default: CliBool = Field(True, description="Advertise shared GPUs as `nvidia.com/gpu.shared` so they are never mistaken for whole GPUs.")


class DevicePlugin(Strict):
    """NVIDIA k8s-device-plugin (installed only on AL2023 pools; Bottlerocket NVIDIA ships it)."""

    image: str = Field("nvcr.io/nvidia/k8s-device-plugin:v0.17.4", description="Pinned device plugin image.")
    mig_strategy: Literal["none", "single", "mixed"] = Field("none", description="MIG strategy for A100/H100 partitions.")
    time_slicing: TimeSlicing = Field(default_factory=TimeSlicing)  # type: ignore[arg-type]
    dcgm_exporter: CliBool = Field(True, description="Run the DCGM exporter DaemonSet for GPU metrics on every GPU pool.")
    dcgm_image: str = Field("nvcr.io/nvidia/k8s/dcgm-exporter:4.4.1-4.6.0-ubuntu22.04", description="Pinned DCGM exporter image.")
    efa_image: str = Field("public.ecr.aws/eks/aws-efa-k8s-device-plugin:v0.5.6",
                           description="AWS EFA Kubernetes device plugin (advertises vpc.amazonaws.com/efa on pools with `efa: true`).")


class ModelCache(Strict):
    """Shared model-weight cache mounted at HF_HOME and filled once per model and revision by a prefetch Job."""

    backend: Literal["efs", "fsx-lustre", "s3", "none"] = Field(
        "efs", description="`efs` (RWX, simple), `fsx-lustre` (fast loads for large models), `s3` (Mountpoint, read-only; "
                           "weights are staged into the bucket outside the stack), `none` (each pod downloads; dev only).")
    size_gib: CliInt = Field(1200, ge=1200, description="FSx for Lustre capacity: 1200, 2400 or a multiple of 2400 GiB (PERSISTENT_2, the "
                                                    "FSx API's StorageCapacity); "
                                                    "the advertised PV capacity for EFS and S3.")
    throughput_mibps: CliInt = Field(250, ge=1, description="Expected read throughput per pod in MiB/s, used to derive startup "
                                                         "probe budgets. For FSx, also the per-TiB throughput (125, 250, 500 or 1000).")
    kms_key_arn: str | None = Field(None, description="KMS key for the file system or bucket. Default: a key created by the stack.")
    s3_bucket_name: str | None = Field(None, description="Bucket for `s3`. Default: generated from the stack and cluster.")
    fsx_import_path: Annotated[str, StringConstraints(pattern=r"^s3://[a-z0-9.\-]+(/.*)?$")] | None = Field(
        None, description="`fsx-lustre` only: an S3 data repository linked to the file system (lazy-loaded on first read).")
    subnet_ids: list[SubnetId] = Field(default_factory=list, description="Subnets for EFS mount targets or the FSx file system. "
                                                                    "Default: the subnets of all GPU pools.")

    @model_validator(mode="after")
    def _backend_fields(self) -> ModelCache:
        if self.fsx_import_path is not None and self.backend != "fsx-lustre":
            raise ValueError("fsx_import_path is only for backend fsx-lustre")
        if self.s3_bucket_name is not None and self.backend != "s3":
            raise ValueError("s3_bucket_name is only for backend s3")
        return self


class NodeAutoscaler(Strict):
    """What adds GPU nodes when pods wait for them (docs/capacity.md). `plan` proves that every model's minimum replicas
    fit the nodes that exist, or that this autoscaler can add, when `pulumi up` runs: pulumi-kubernetes awaits each
    Deployment until its pods are ready, so a pod with no node fails the update at its timeout."""

    kind: Literal["cluster-autoscaler", "karpenter", "none"] | None = Field(
        None, description="`cluster-autoscaler`: the stack installs the Cluster Autoscaler (the release of the stack's Kubernetes "
        "minor, its IAM role, RBAC and auto-discovery of the managed node groups) and managed pools grow to `max_size` on "
        "demand. `karpenter`: the GPU pools are `provisioner: karpenter` pools and the Karpenter controller runs in the "
        "cluster (installed separately). `none`: nothing adds nodes — each managed pool's `desired_size` must hold its "
        "models' minimum replicas. Default: `karpenter` when every pool is a Karpenter pool, else `cluster-autoscaler`.")
    image: str | None = Field(None, description="Cluster Autoscaler image. Default: registry.k8s.io/autoscaling/cluster-autoscaler at "
                                                "the release of the stack's Kubernetes minor (fleet/catalog/cluster_autoscaler.yaml); "
                                                "an image of your own (a mirror, a digest) must carry that release's tag.")
    identity: Literal["irsa", "pod-identity"] = Field("irsa", description="How its pods get their IAM role: `irsa` (the cluster's OIDC "
                                                                         "provider, like the stack's CSI roles) or `pod-identity` (an "
                                                                         "EKS Pod Identity association; needs the eks-pod-identity-agent "
                                                                         "add-on).")
    namespace: Namespace = Field("cluster-autoscaler", description="Namespace of the Cluster "
                                                                            "Autoscaler (its own, restricted Pod Security).")

    def resolved_kind(self, pools: list[GpuPool]) -> str:
        if self.kind is not None:
            return self.kind
        return "karpenter" if pools and all(p.provisioner == "karpenter" for p in pools) else "cluster-autoscaler"


class Autoscaling(Strict):
    backend: Literal["hpa", "keda", "none"] = Field("hpa", description="`hpa`: autoscaling/v2 on vllm:num_requests_waiting via prometheus-adapter. `keda`: "
                                                                       "ScaledObject with a Prometheus trigger. `none`: fixed replicas.")
    prometheus_url: str = Field("http://prometheus-operated.monitoring.svc:9090", description="Prometheus for KEDA triggers.")
    adapter_namespace: Namespace = Field(
        "monitoring", description="Namespace of prometheus-adapter; the stack renders its vLLM rules there as a ConfigMap "
                                  "(`vllm-fleet-adapter-rules`, for the chart's `rules.existing`).")
    allow_scale_to_zero: CliBool = Field(False, description="Let KEDA scale models with `autoscaling.min_replicas: 0` to zero. Only with backend `keda`.")

    @model_validator(mode="after")
    def _zero(self) -> Autoscaling:
        if self.allow_scale_to_zero and self.backend != "keda":
            raise ValueError("allow_scale_to_zero needs backend: keda — an HPA cannot scale to zero")
        return self


# kube-prometheus-stack's Prometheus selects ServiceMonitors, PodMonitors and PrometheusRules labelled `release: <its Helm
# release>` (its serviceMonitorSelectorNilUsesHelmValues and ruleSelectorNilUsesHelmValues default true); the chart is
# usually installed as `kube-prometheus-stack`.
MONITOR_LABELS_DEFAULT = {"release": "kube-prometheus-stack"}


class Observability(Strict):
    prometheus_operator: CliBool = Field(True, description="Render ServiceMonitor/PrometheusRule objects (needs the Prometheus operator CRDs).")
    monitor_labels: dict[LabelKey, LabelValue] = Field(
        default_factory=lambda: dict(MONITOR_LABELS_DEFAULT),
        description="Labels on every ServiceMonitor and PrometheusRule the stack renders, so the cluster's Prometheus selects "
                    "them: its `serviceMonitorSelector` and `ruleSelector`. kube-prometheus-stack selects `release: <its Helm "
                    "release name>` by default — set the name you installed it as (`{}` for a Prometheus that selects all). "
                    "Without a match Prometheus scrapes no vLLM metrics and the HPAs never scale.")
    dashboards: CliBool = Field(True, description="Render a Grafana dashboard ConfigMap per team.")


class VllmImage(Strict):
    repository: str = Field("docker.io/vllm/vllm-openai", description="vLLM server image repository; its registry must be in `allowed_registries`.")
    version: Annotated[str, StringConstraints(pattern=r"^\d+\.\d+\.\d+$")] = Field("0.33.0", description="vLLM version; selects the flag table. Must be ≥ "
            "the policy floor (0.32.0).")
    digest: Annotated[str, StringConstraints(pattern=r"^sha256:[0-9a-f]{64}$")] | None = Field(None, description="Image digest. Required unless "
            "`allow_tag_only: true` (policy D15).")
    allow_tag_only: CliBool = Field(False, description="Allow the image by tag alone (dev only).")
    efa: EfaImage | None = Field(None, description="The image multi-node replicas on EFA pools run. Required when a replica spans "
                                                   "nodes of a pool with `efa: true`.")

    @model_validator(mode="after")
    def _pin(self) -> VllmImage:
        if self.digest is None and not self.allow_tag_only:
            raise ValueError("the image is not pinned — set `digest: sha256:...` or, for dev only, `allow_tag_only: true`")
        return self


# Kind/namespace/name, or Kind/name for cluster-scoped objects
OBJECT_REF = r"^[A-Z][A-Za-z0-9]*/([a-z0-9]([a-z0-9\-]{0,61}[a-z0-9])?/)?[a-z0-9]([a-z0-9.\-]{0,251}[a-z0-9])?$"


def _object_name(ref: str) -> str:
    errs = dns1123_subdomain(ref.rsplit("/", 1)[-1])
    if errs:
        raise ValueError(f"the name in '{ref}' is not an object name (a DNS-1123 subdomain): {'; '.join(errs)}")
    return ref


class Exemption(Strict):
    rule: RuleId = Field(description="Catalogue id (docs/guardrails.md), e.g. `D11`.")
    resource: Annotated[str, StringConstraints(pattern=OBJECT_REF), AfterValidator(_object_name)] = Field(
        description="The one object exempted, `Kind/namespace/name` (`Kind/name` for cluster-scoped objects), e.g. "
                    "`Deployment/team-search/qwen-3b`. Whole namespaces are never exempt.")
    reason: str = Field(min_length=10, description="Why; required and reviewed (10+ characters of text).")
    owner: Owner | None = Field(None, description="Who answers for it (`@user`, `@org/team` or an e-mail address); required in "
                                                  "a prod stack.")

    @model_validator(mode="before")
    @classmethod
    def _no_namespaces(cls, data: object) -> object:
        if isinstance(data, dict) and "namespace" in data:
            raise ValueError("exempting a whole namespace is not supported: anything placed there would escape the rule — "
                             "list each object as `resource: Kind/namespace/name`")
        return data

    @model_validator(mode="after")
    def _reason(self) -> Exemption:
        if len(self.reason.strip()) < 10 or len(set(self.reason.strip())) < 4:
            raise ValueError("the reason must say why in words (10+ characters of text, not whitespace or filler)")
        return self


class LevelOverride(Strict):
    level: Level
    reason: str | None = Field(None, min_length=10, description="Why the rule is lowered or disabled (10+ characters of text).")
    owner: Owner | None = Field(None, description="Who answers for lowering it (`@user`, `@org/team` or an e-mail address); "
                                                  "required with the reason when a prod stack lowers a mandatory rule or the pack.")

    @model_validator(mode="after")
    def _reason(self) -> LevelOverride:
        if self.reason is not None and (len(self.reason.strip()) < 10 or len(set(self.reason.strip())) < 4):
            raise ValueError("the reason must say why in words (10+ characters of text, not whitespace or filler)")
        return self


def _override(value: object) -> object:
    """`D11: mandatory` is `{level: mandatory}`."""
    return {"level": value} if isinstance(value, str) else value


Override = Annotated[LevelOverride, BeforeValidator(_override)]


class Policy(Strict):
    enforcement: Override | None = Field(None, description="Level for every rule. Default: `advisory` for dev, `mandatory` for staging and "
                                                           "prod. Lowering the pack outside dev needs a reason, and in prod an owner too: "
                                                           "`{level: advisory, reason: ..., owner: '@org/team'}`.")
    overrides: dict[RuleId, Override] = Field(default_factory=dict, description="Per-rule levels, e.g. `{D11: mandatory}`; lowering or "
                                                                             "disabling a rule outside dev needs a reason: "
                                                                             "`{D2: {level: disabled, reason: ...}}`.")
    exemptions: list[Exemption] = Field(default_factory=list)
    allow_spot_in_prod: CliBool = Field(False, description="Allow spot GPU pools in a prod stack (policy B9).")
    vllm_version_floor: Annotated[str, StringConstraints(pattern=r"^\d+\.\d+\.\d+$")] = Field(
        "0.32.0", description="Lowest vLLM version allowed (policy F2), e.g. 0.32.0.")


SecretName = StackSecretName


class Secure(Strict):
    """A value encrypted by `pulumi config set --secret`."""

    secure: str = Field(min_length=1)


# Images of the Gateway API Inference Extension release this stack renders for (InferencePool v1,
# InferenceObjective v1alpha2) and of llm-d's P/D-aware scheduler and routing sidecar.
EPP_IMAGE = "registry.k8s.io/gateway-api-inference-extension/epp:v1.3.1"
BBR_IMAGE = "registry.k8s.io/gateway-api-inference-extension/bbr:v1.3.1"
PD_SCHEDULER_IMAGE = "ghcr.io/llm-d/llm-d-inference-scheduler:v0.5.1"
ROUTING_SIDECAR_IMAGE = "ghcr.io/llm-d/llm-d-routing-sidecar:v0.5.1"


# Istio serves a Gateway through a Service named `<gateway_name>-istio` (a DNS-1035 label) and labels its pods with the
# name (a label value).
GatewayName = Annotated[str, rule(dns1035_label, "a Gateway name (Istio's Service for it is `<name>-istio`, a DNS-1035 label)",
                                  "e.g. 'inference-gateway'", DNS1035_LABEL_MAX - len("-istio")),
                        schema(DNS1035_LABEL_FMT, DNS1035_LABEL_MAX - len("-istio"))]
# Hosts are `<model>.<team>.<suffix>` (Ingress) and `*.<suffix>` (Gateway listener): DNS-1123 subdomains of at most 253.
HOSTNAME_SUFFIX_MAX = DNS1123_SUBDOMAIN_MAX - 2 * (NAME_MAX + 1)
HostnameSuffix = Annotated[str, rule(dns1123_subdomain, "a host name suffix (the hosts `<model>.<team>.<suffix>` and `*.<suffix>` "
                                     "are DNS-1123 subdomains)", "e.g. 'llm.example.com'", HOSTNAME_SUFFIX_MAX),
                           schema(DNS1123_SUBDOMAIN_FMT, HOSTNAME_SUFFIX_MAX)]


class Gateway(Strict):
    namespace: Namespace = Field(
        "gateway", description="Namespace of the gateway/ingress controller; the only namespace admitted to vLLM pods.")
    kind: Literal["none", "ingress", "inference"] = Field(
        "none", description="`inference`: the stack's Gateway (Gateway API) with the Inference Extension — one OpenAI endpoint per "
                            "team at `<team>.<suffix>`, routed on the request's `model` field, to an InferencePool and its endpoint "
                            "picker per model (`routing: gateway`) or to the model's Service (`routing: service`); docs/gateway.md. "
                            "`ingress`: an Ingress per model with TLS that routes only `/v1`. "
                            "`none`: reach models through your own gateway (ClusterIP only).")
    implementation: Literal["istio"] = Field("istio", description="Gateway implementation (kind inference): `istio` — Istio ≥ 1.28 "
                                                                  "with ENABLE_GATEWAY_API_INFERENCE_EXTENSION=true (gatewayClassName istio).")
    gateway_name: GatewayName = Field(
        "inference-gateway", description="Name of the Gateway the stack renders in `namespace` (kind inference).")
    ingress_class: ObjectName = Field("nginx", description="ingressClassName of the Ingresses.")
    hostname_suffix: HostnameSuffix | None = Field(None, description="kind ingress: models are exposed as `<model>.<team>.<suffix>`; kind inference: "
                                                          "each team as `<team>.<suffix>`. Required with both.")
    tls_secret_name: SecretObjectName | None = Field(None, description="TLS certificate Secret: in each team namespace for the Ingresses; in the gateway "
                                                          "namespace for the Gateway (a certificate for `*.<suffix>`). Required with "
                                                          "kind ingress and inference.")
    epp_image: str = Field(EPP_IMAGE, description="Endpoint picker (EPP) image of the Inference Extension, pinned (policy D15).")
    bbr_image: str = Field(BBR_IMAGE, description="Body-based router image: copies the request's `model` field into the header the "
                                                  "routes match (kind inference).")
    pd_scheduler_image: str = Field(PD_SCHEDULER_IMAGE, description="Endpoint picker for models with disaggregated prefill/decode "
                                                                     "(llm-d inference scheduler: P/D profile handler).")
    routing_sidecar_image: str = Field(ROUTING_SIDECAR_IMAGE, description="llm-d routing sidecar in decode pods: sends the prompt "
                                                                          "to the prefill pod the picker chose, then decodes locally.")

    @model_validator(mode="after")
    def _tls(self) -> Gateway:
        if self.kind in ("ingress", "inference") and (not self.hostname_suffix or not self.tls_secret_name):
            raise ValueError(f"kind {self.kind} needs hostname_suffix and tls_secret_name — models are only exposed with TLS")
        return self


class StackConfig(Strict):
    """The `config:` block of `stacks/Pulumi.<stack>.yaml`."""

    region: Annotated[str, StringConstraints(pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d$")] = Field(alias="aws:region", description="AWS region, e.g. us-west-2.")
    tier: Literal["dev", "staging", "prod"] = Field(alias="vllm-fleet:tier", description="Environment tier. `prod` adds `protect`/`retain_on_delete` to "
                                                                                         "stateful resources and defaults policies to mandatory.")
    cluster: Cluster = Field(alias="vllm-fleet:cluster")
    kubernetes_version: Annotated[str, StringConstraints(pattern=r"^1\.(2[5-9]|3[0-7])$")] = Field(
        alias="vllm-fleet:kubernetes_version",
        description="Kubernetes minor version (1.25–1.37); manifests are validated against its OpenAPI schema.")
    gpu_pools: list[GpuPool] = Field(alias="vllm-fleet:gpu_pools", min_length=1)
    device_plugin: DevicePlugin = Field(default_factory=DevicePlugin, alias="vllm-fleet:device_plugin")  # type: ignore[arg-type]
    model_cache: ModelCache = Field(default_factory=ModelCache, alias="vllm-fleet:model_cache")  # type: ignore[arg-type]
    autoscaling: Autoscaling = Field(default_factory=Autoscaling, alias="vllm-fleet:autoscaling")  # type: ignore[arg-type]
    node_autoscaler: NodeAutoscaler = Field(default_factory=NodeAutoscaler, alias="vllm-fleet:node_autoscaler")  # type: ignore[arg-type]
    observability: Observability = Field(default_factory=Observability, alias="vllm-fleet:observability")  # type: ignore[arg-type]
    allowed_instance_types: list[str] = Field(alias="vllm-fleet:allowed_instance_types", min_length=1, description="Instance types pools may use (policy B9).")
    allowed_registries: list[str] = Field(
        default_factory=lambda: ["docker.io/vllm", "nvcr.io/nvidia", "public.ecr.aws/eks", "registry.k8s.io/autoscaling"],
        alias="vllm-fleet:allowed_registries",
        description="Image registries/prefixes pods may pull from (policy D15).")
    vllm: VllmImage = Field(alias="vllm-fleet:vllm")
    spare_gpus: CliInt = Field(0, ge=0, alias="vllm-fleet:spare_gpus", description="Spare GPUs kept for rolling updates. A rollout surges only when surge × "
                                                                                "GPUs per pod fits here (policy G4).")
    price_max_age_days: CliInt = Field(90, ge=1, alias="vllm-fleet:price_max_age_days",
                                    description="`plan` warns when a price it uses (fleet/catalog/prices.yaml) is older than this many days.")
    gateway: Gateway = Field(default_factory=Gateway, alias="vllm-fleet:gateway")  # type: ignore[arg-type]
    smoke_tests: CliBool = Field(True, alias="vllm-fleet:smoke_tests", description="Run a smoke-test Job per model once its workload is "
                                 "ready (`/v1/models` and one tiny completion or embedding through its Service, with its API key); "
                                 "`pulumi up` fails when a model deploys but does not serve.")
    policy: Policy = Field(default_factory=Policy, alias="vllm-fleet:policy")  # type: ignore[arg-type]
    secrets: tuple[SecretName, ...] = Field(
        (), alias="vllm-fleet:secrets",
        description="Names of the stack's secrets. The engine hands the program the decrypted values; the spec keeps only "
                    "their names, and the Kubernetes Secrets are built from the engine's secret config.")

    @property
    def effective_enforcement(self) -> Level:
        return self.policy.enforcement.level if self.policy.enforcement else ("advisory" if self.tier == "dev" else "mandatory")


class StackFileConfig(StackConfig):
    """The `config:` block as the file holds it: secrets as Pulumi ciphertexts."""

    secrets: dict[SecretName, Secure] = Field(  # type: ignore[assignment]
        default_factory=dict, alias="vllm-fleet:secrets",
        description="Secret values, set with `pulumi config set --secret --path 'vllm-fleet:secrets.<name>' <value>` (or "
                    "provided by an ESC environment); team files reference them by name.")


class StackFile(Strict):
    """The whole `stacks/Pulumi.<stack>.yaml` file, as the Pulumi CLI writes it (for editor completion and the docs;
    `fleet.spec.stack_file` reads it the way the CLI does)."""

    config: StackFileConfig
    encryptionsalt: str | None = Field(None, description="Salt of the passphrase secrets provider (written by `pulumi stack init`).")
    secretsprovider: str | None = Field(None, description="Pulumi secrets provider (set by `pulumi stack init --secrets-provider`).")
    encryptedkey: str | None = Field(None, description="Data key encrypted by a cloud secrets provider.")
    environment: list[str] | None = Field(None, description="Pulumi ESC environments imported by this stack; their values reach the "
                                                            "program through the engine and are unknown to the offline plan.")
