"""A: cluster, B: GPU node groups (launch templates, node roles), E10: spot GPUs; A6 judges Kubernetes RBAC."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from fleet import clock
from fleet.aws_limits import SCHEDULE_DOC, schedule_start_problem
from fleet.catalog import gpu_instance_types
from fleet.quantity import whole
from policies.framework import has_key, rule, shown_number, stack_rule, to_plain_data

CLUSTER = ("aws:eks/cluster:Cluster",)
NODEGROUP = ("aws:eks/nodeGroup:NodeGroup",)
LAUNCH_TEMPLATE = ("aws:ec2/launchTemplate:LaunchTemplate",)
NODE_CLASS = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"
NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"


def _spec_if_node_class(args: Any, props: Any) -> Any:
    """EC2NodeClass keeps the launch settings under spec (metadataOptions, blockDeviceMappings, …)."""
    return props.get("spec") or {} if args.resource_type == NODE_CLASS else props
LOG_TYPES = ("api", "audit", "authenticator", "controllerManager", "scheduler")
SUPPORTED_VERSIONS = ("1.31", "1.32", "1.33", "1.34", "1.35")
NODE_POLICIES = ("AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryReadOnly",
                 "AmazonEC2ContainerRegistryPullOnly", "AmazonSSMManagedInstanceCore")


@rule("A1", "aws-eks-cluster-disallow-public-endpoint", "The API endpoint is private, or public only to listed CIDRs.",
      level="mandatory", severity="critical", remediation="Set endpointPublicAccess false, or publicAccessCidrs without 0.0.0.0/0.",
      sources=("CIS 5.4.1-2", "CKV_AWS_38/39"), kinds=CLUSTER)
def public_endpoint(props: Any, report: Any, args: Any) -> None:
    vpc = props.get("vpcConfig") or {}
    if vpc.get("endpointPublicAccess", True) is False:
        return
    cidrs = list(vpc.get("publicAccessCidrs") or ["0.0.0.0/0"])
    if "0.0.0.0/0" in cidrs:
        report("the API endpoint is public to 0.0.0.0/0")


@rule("A2", "aws-eks-cluster-enable-secrets-encryption", "Secrets are envelope-encrypted with a KMS key.", level="mandatory",
      severity="high", remediation="Set encryptionConfig {resources: [secrets], provider.keyArn}.", sources=("CIS 5.3.1", "CKV_AWS_58"),
      kinds=CLUSTER)
def secrets_encryption(props: Any, report: Any, args: Any) -> None:
    enc = props.get("encryptionConfig") or {}
    if "secrets" not in list(enc.get("resources") or []) or not has_key(enc.get("provider") or {}, "keyArn"):
        report("Secrets are not envelope-encrypted with a KMS key")


@rule("A3", "aws-eks-cluster-enable-control-plane-logs", "All five control-plane log types are enabled.", level="mandatory",
      severity="medium", remediation=f"Set enabledClusterLogTypes: {list(LOG_TYPES)}.", sources=("CIS 2.1.1", "CKV_AWS_37"),
      kinds=CLUSTER)
def control_plane_logs(props: Any, report: Any, args: Any) -> None:
    missing = [t for t in LOG_TYPES if t not in list(props.get("enabledClusterLogTypes") or [])]
    if missing:
        report(f"control-plane logs missing: {', '.join(missing)}")


@rule("A4", "aws-eks-cluster-configure-supported-version", "The Kubernetes version is in the supported list.", level="advisory",
      severity="medium", remediation="Upgrade to a supported EKS version.", sources=("CKV_AWS_339",), kinds=CLUSTER)
def supported_version(props: Any, report: Any, args: Any) -> None:
    supported = list((args.get_config() or {}).get("supported_versions", SUPPORTED_VERSIONS))
    if str(props.get("version")) not in supported:
        report(f"Kubernetes {props.get('version')} is not in {', '.join(supported)}")


@rule("A5", "aws-eks-cluster-configure-access-entries", "Access entries authentication; no implicit creator admin.",
      level="advisory", severity="medium", remediation="Set accessConfig.authenticationMode API and "
      "bootstrapClusterCreatorAdminPermissions false.", sources=("CIS 4.1.7",), kinds=CLUSTER)
def access_entries(props: Any, report: Any, args: Any) -> None:
    access = props.get("accessConfig") or {}
    if access.get("authenticationMode") not in ("API", "API_AND_CONFIG_MAP"):
        report(f"authenticationMode is {access.get('authenticationMode', 'CONFIG_MAP (default)')}")
    if access.get("bootstrapClusterCreatorAdminPermissions", True) is not False:
        report("the cluster creator gets implicit admin")


@rule("A6", "kubernetes-rbac-disallow-wildcards-and-cluster-admin", "No cluster-admin bindings outside the allow-list; no `*` "
      "verbs or resources in Roles.", level="mandatory", severity="critical", remediation="Bind narrower roles; list verbs "
      "and resources explicitly.", sources=("CIS 4.1.1/4.1.3",),
      kinds=("kubernetes:rbac.authorization.k8s.io/v1:Role", "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole",
             "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding", "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding"))
def rbac(props: Any, report: Any, args: Any) -> None:
    if args.resource_type.endswith("Binding"):
        allowed = set((args.get_config() or {}).get("cluster_admin_subjects", []))
        if (props.get("roleRef") or {}).get("name") == "cluster-admin":
            subjects = [str(s.get("name")) for s in props.get("subjects") or []]
            if not set(subjects) <= allowed:
                report(f"binds cluster-admin to {', '.join(subjects)}")
        return
    for i, r in enumerate(props.get("rules") or []):
        for key in ("verbs", "resources", "apiGroups"):
            if "*" in list(r.get(key) or []) and key != "apiGroups":
                report(f"rules[{i}].{key} contains *")


@rule("B1", "aws-ec2-launchtemplate-enable-imdsv2", "Instance metadata requires IMDSv2 tokens.", level="mandatory",
      severity="high", remediation="Set metadataOptions.httpTokens: required.", sources=("BPG", "CKV_AWS_79"),
      kinds=(*LAUNCH_TEMPLATE, NODE_CLASS))
def imdsv2(props: Any, report: Any, args: Any) -> None:
    if (_spec_if_node_class(args, props).get("metadataOptions") or {}).get("httpTokens") != "required":
        report("metadataOptions.httpTokens is not required")


@rule("B2", "aws-ec2-launchtemplate-configure-hop-limit", "Metadata hop limit is 1, so pods cannot reach node credentials.",
      level="mandatory", severity="high", remediation="Set metadataOptions.httpPutResponseHopLimit: 1 (2 only with an exemption).",
      sources=("BPG", "CKV_AWS_341"), kinds=(*LAUNCH_TEMPLATE, NODE_CLASS))
def hop_limit(props: Any, report: Any, args: Any) -> None:
    hops = (_spec_if_node_class(args, props).get("metadataOptions") or {}).get("httpPutResponseHopLimit")
    if hops is None or whole(hops, 2) > 1:
        report(f"metadataOptions.httpPutResponseHopLimit is {shown_number(hops) if hops is not None else 'unset (defaults to 1 only for IMDSv2-only AMIs)'}")


@rule("B3", "aws-ec2-launchtemplate-disallow-public-ip", "GPU nodes get no public IP.", level="mandatory", severity="high",
      remediation="Set associatePublicIpAddress false on every network interface and use private subnets.",
      sources=("CIS 5.4.3",), kinds=(*LAUNCH_TEMPLATE, NODE_CLASS))
def public_ip(props: Any, report: Any, args: Any) -> None:
    if args.resource_type == NODE_CLASS:
        if (props.get("spec") or {}).get("associatePublicIPAddress") is not False:
            report("spec.associatePublicIPAddress is not false (the subnet's default decides)")
        return
    for i, nic in enumerate(props.get("networkInterfaces") or []):
        if str(nic.get("associatePublicIpAddress", "")).lower() == "true":
            report(f"networkInterfaces[{i}].associatePublicIpAddress is true")


@rule("B4", "aws-eks-nodegroup-disallow-open-ssh", "No SSH remote access from anywhere.", level="mandatory", severity="critical",
      remediation="Drop remoteAccess or restrict it with sourceSecurityGroupIds.", sources=("CKV_AWS_100",), kinds=NODEGROUP)
def open_ssh(props: Any, report: Any, args: Any) -> None:
    remote = props.get("remoteAccess")
    if remote and not list(remote.get("sourceSecurityGroupIds") or []):
        report("remoteAccess allows SSH from 0.0.0.0/0 (no sourceSecurityGroupIds)")


@rule("B5", "aws-ec2-launchtemplate-enable-volume-encryption", "Root and data volumes are encrypted.", level="mandatory",
      severity="high", remediation="Set ebs.encrypted: true on every block device mapping.", sources=("CKV_AWS_8/189",),
      kinds=(*LAUNCH_TEMPLATE, NODE_CLASS))
def volume_encryption(props: Any, report: Any, args: Any) -> None:
    for i, bdm in enumerate(_spec_if_node_class(args, props).get("blockDeviceMappings") or []):
        if str((bdm.get("ebs") or {}).get("encrypted", "")).lower() != "true":
            report(f"blockDeviceMappings[{i}] ({bdm.get('deviceName')}) is not encrypted")


def _gpu_node_group(props: Mapping[str, Any]) -> bool:
    """A node group of GPU instances: by its instance types, or (a Capacity Block keeps its instance type in the launch
    template) its capacity type or the GPU labels the stack puts on it."""
    return bool(_gpu_types(props)) or props.get("capacityType") == "CAPACITY_BLOCK" or \
        "vllm-fleet.io/gpus-per-node" in (props.get("labels") or {})


def _gpu_types(props: Mapping[str, Any]) -> list[str]:
    catalog = gpu_instance_types()
    return [t for t in props.get("instanceTypes") or [] if t in catalog]


@rule("B6", "aws-eks-nodegroup-configure-gpu-ami", "GPU node groups use an accelerated AMI type (AL2023 or Bottlerocket NVIDIA).",
      level="mandatory", severity="high", remediation="Set amiType to AL2023_*_NVIDIA or BOTTLEROCKET_*_NVIDIA.",
      sources=("BPG AI/ML",), kinds=NODEGROUP)
def gpu_ami(props: Any, report: Any, args: Any) -> None:
    if _gpu_node_group(props) and not str(props.get("amiType", "")).endswith("_NVIDIA"):
        report(f"GPU instance types with amiType {props.get('amiType', 'unset')}")


@stack_rule("B6", "kubernetes-device-plugin-configure-presence", "AL2023 NVIDIA node groups have the NVIDIA device plugin.",
            level="mandatory", severity="high", remediation="Install the NVIDIA device plugin DaemonSet on those pools.",
            sources=("BPG AI/ML",))
def device_plugin_present(resources: Any, report: Any, args: Any) -> None:
    al2023 = [r for r in resources if r.resource_type == NODEGROUP[0] and str(r.props.get("amiType", "")).startswith("AL2023_")
              and str(r.props.get("amiType", "")).endswith("_NVIDIA")]
    plugin = any(r.resource_type == "kubernetes:apps/v1:DaemonSet" and "k8s-device-plugin" in str(to_plain_data(r.props.get("spec")))
                 for r in resources)
    if al2023 and not plugin:
        for r in al2023:
            report("AL2023 NVIDIA node group without an NVIDIA device plugin DaemonSet", r.urn)


@rule("B7", "aws-eks-nodegroup-configure-gpu-taint", "GPU node groups carry the nvidia.com/gpu NoSchedule taint.",
      level="mandatory", severity="high", remediation="Add taint {key: nvidia.com/gpu, effect: NO_SCHEDULE}.",
      sources=("BPG AI/ML",), kinds=(*NODEGROUP, NODE_POOL))
def gpu_taint(props: Any, report: Any, args: Any) -> None:
    if args.resource_type == NODE_POOL:
        template = ((props.get("spec") or {}).get("template") or {}).get("spec") or {}
        if _pool_types(template) and not any(t.get("key") == "nvidia.com/gpu" and t.get("effect") == "NoSchedule"
                                             for t in template.get("taints") or []):
            report("GPU NodePool without the nvidia.com/gpu NoSchedule taint")
        return
    if _gpu_node_group(props) and not any(t.get("key") == "nvidia.com/gpu" and t.get("effect") == "NO_SCHEDULE"
                                     for t in props.get("taints") or []):
        report("GPU node group without the nvidia.com/gpu NO_SCHEDULE taint")


def _pool_types(template_spec: Any) -> list[str]:
    catalog = gpu_instance_types()
    return [str(v) for r in template_spec.get("requirements") or [] if r.get("key") == "node.kubernetes.io/instance-type"
            and r.get("operator") == "In" for v in r.get("values") or [] if v in catalog]


def _actions(doc: Any) -> list[str]:
    try:
        policy = json.loads(doc) if isinstance(doc, str) else doc
    except ValueError:
        return []
    statements = policy.get("Statement", []) if isinstance(policy, Mapping) else []
    if isinstance(statements, Mapping):
        statements = [statements]
    out: list[str] = []
    for s in statements:
        if s.get("Effect", "Allow") != "Allow":
            continue
        action = s.get("Action", [])
        out += [action] if isinstance(action, str) else [str(a) for a in action] if isinstance(action, Sequence) else []
    return out


@rule("B8", "aws-iam-disallow-wildcard-actions", "Node roles hold only the needed managed policies; no `*` actions.",
      level="mandatory", severity="critical", remediation="List actions explicitly; attach only the worker node policies.",
      sources=("CIS 5.1.3",), kinds=("aws:iam/rolePolicy:RolePolicy", "aws:iam/policy:Policy",
                                     "aws:iam/rolePolicyAttachment:RolePolicyAttachment"))
def wildcard_actions(props: Any, report: Any, args: Any) -> None:
    if args.resource_type == "aws:iam/rolePolicyAttachment:RolePolicyAttachment":
        arn = str(props.get("policyArn", ""))
        if arn.endswith(("/AdministratorAccess", "/PowerUserAccess", "/IAMFullAccess")):
            report(f"attaches {arn.rsplit('/', 1)[-1]}")
        return
    wild = [a for a in _actions(props.get("policy")) if a == "*" or a.endswith(":*")]
    if wild:
        report(f"allows {', '.join(wild)}")


@rule("B9", "aws-eks-nodegroup-configure-allowed-instances", "Instance types are within the stack's allow-list; no spot GPUs in "
      "prod unless allowed.", level="mandatory", severity="medium", remediation="Use allowed instance types; on-demand or "
      "capacity blocks in prod.", sources=("cost control",), kinds=(*NODEGROUP, NODE_POOL, *LAUNCH_TEMPLATE))
def allowed_instances(props: Any, report: Any, args: Any) -> None:
    config = args.get_config() or {}
    allowed = config.get("allowed_instance_types")
    if args.resource_type == LAUNCH_TEMPLATE[0]:  # a Capacity Block's instance type lives in its launch template
        itype = props.get("instanceType")
        if allowed is not None and itype is not None and itype not in allowed:
            report(f"instance type {itype} is outside the allow-list")
        return
    if args.resource_type == NODE_POOL:
        template = ((props.get("spec") or {}).get("template") or {}).get("spec") or {}
        types = [str(v) for r in template.get("requirements") or [] if r.get("key") == "node.kubernetes.io/instance-type"
                 for v in r.get("values") or []]
        capacity = [str(v) for r in template.get("requirements") or [] if r.get("key") == "karpenter.sh/capacity-type"
                    for v in r.get("values") or []]
        if allowed is not None and [t for t in types if t not in allowed]:
            report(f"instance types outside the allow-list: {', '.join(t for t in types if t not in allowed)}")
        if not types:
            report("no node.kubernetes.io/instance-type requirement: Karpenter may launch any instance type")
        if config.get("prod") and not config.get("allow_spot") and "spot" in capacity and _pool_types(template):
            report("spot GPU capacity in a prod stack")
        return
    if allowed is not None:
        outside = [t for t in props.get("instanceTypes") or [] if t not in allowed]
        if outside:
            report(f"instance types outside the allow-list: {', '.join(outside)}")
    if config.get("prod") and not config.get("allow_spot") and props.get("capacityType") == "SPOT" and _gpu_types(props):
        report("spot GPU capacity in a prod stack")


@stack_rule("E10", "aws-eks-nodegroup-configure-spot-resilience", "Spot GPUs only with replicas ≥ 2, a PDB and a grace period "
            "under 120 s.", level="advisory", severity="medium", remediation="Run ≥ 2 replicas with a PDB on spot pools and "
            "keep terminationGracePeriodSeconds < 120 (spot gives a 2-minute notice).", sources=("BPG",))
def spot_resilience(resources: Any, report: Any, args: Any) -> None:
    spot_pools = {str((r.props.get("labels") or {}).get("vllm-fleet.io/pool")) for r in resources
                  if r.resource_type == NODEGROUP[0] and r.props.get("capacityType") == "SPOT"}
    if not spot_pools:
        return
    for r in resources:
        if r.resource_type != "kubernetes:apps/v1:Deployment":
            continue
        spec = r.props.get("spec") or {}
        pod = (spec.get("template") or {}).get("spec") or {}
        if (pod.get("nodeSelector") or {}).get("vllm-fleet.io/pool") not in spot_pools:
            continue
        md = r.props.get("metadata") or {}
        if whole(spec.get("replicas"), 1) < 2:
            report(f"Deployment {md.get('namespace')}/{md.get('name')} runs one replica on spot GPUs", r.urn)
        if whole(pod.get("terminationGracePeriodSeconds"), 30) >= 120:
            report(f"Deployment {md.get('namespace')}/{md.get('name')} has a grace period ≥ 120 s on spot GPUs", r.urn)


@rule("B10", "aws-autoscaling-schedule-configure-future-start", "A one-time scheduled action starts in the future: EC2 Auto Scaling "
      "refuses a start time in the past.", level="mandatory", severity="high",
      remediation="Render a Capacity Block step only while its time is ahead (the stack does: a block that has begun gets no "
      "start step and its group is created at the block's size); for a block that has ended, remove the pool or set the next "
      "block's capacity_reservation_id and window.", sources=("AWS EC2 Auto Scaling PutScheduledUpdateGroupAction",),
      kinds=("aws:autoscaling/schedule:Schedule",))
def schedule_start(props: Any, report: Any, args: Any) -> None:
    start = props.get("startTime")
    if start is None or props.get("recurrence"):
        return  # a recurring action takes its next time from the cron expression
    problem = schedule_start_problem(str(start), clock.now())
    if problem is not None:
        report(f"scheduled action {props.get('scheduledActionName')}: {problem} — the first `pulumi up` (or any re-create) fails "
               f"({SCHEDULE_DOC})")
