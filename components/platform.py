"""Platform components: the Kubernetes provider, GPU node groups and the NVIDIA device plugin."""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from fleet.catalog import gpu_instance
from fleet.labels import (
    AMI_TYPES,
    CAPACITY_TYPES,
    DEVICE_PLUGIN_NAMESPACE,
    GPU_MEMORY_LABEL,
    GPU_MODEL_LABEL,
    GPU_TAINT_KEY,
    GPUS_PER_NODE_LABEL,
    MANAGED_BY,
    NODE_MANAGED_POLICIES,
    POOL_LABEL,
)
from fleet.spec.stack import DevicePlugin, GpuPool, StackConfig


def kube_provider(name: str, cfg: StackConfig, opts: pulumi.ResourceOptions) -> k8s.Provider:
    """A Kubernetes provider for the stack's EKS cluster (token from `aws eks get-token`)."""
    cluster = aws.eks.get_cluster_output(name=cfg.cluster.name, opts=pulumi.InvokeOptions(parent=opts.parent))

    def kubeconfig(args: list) -> str:  # type: ignore[type-arg]
        endpoint, ca = args
        return json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "eks",
            "clusters": [{"name": "eks", "cluster": {"server": endpoint, "certificate-authority-data": ca}}],
            "contexts": [{"name": "eks", "context": {"cluster": "eks", "user": "eks"}}],
            "users": [{"name": "eks", "user": {"exec": {
                "apiVersion": "client.authentication.k8s.io/v1beta1", "command": "aws",
                "args": ["eks", "get-token", "--cluster-name", cfg.cluster.name, "--region", cfg.region]}}}],
        })

    config = pulumi.Output.all(cluster.endpoint, cluster.certificate_authorities[0].data).apply(kubeconfig)
    return k8s.Provider(name, kubeconfig=config, enable_server_side_apply=True, opts=opts)


def node_labels(pool: GpuPool) -> dict[str, str]:
    inst = gpu_instance(pool.instance_types[0])
    assert inst is not None  # the loader checked every instance type
    return {**pool.labels, POOL_LABEL: pool.name, GPU_MODEL_LABEL: inst.gpu_model,
            GPU_MEMORY_LABEL: str(int(inst.gpu_memory_gib)), GPUS_PER_NODE_LABEL: str(inst.gpus)}


class GpuNodeGroup(pulumi.ComponentResource):
    """An EKS managed node group of GPU instances with its own launch template and node role.

    Raw `aws.eks.NodeGroup` + `aws.ec2.LaunchTemplate` (not pulumi-eks) so every resource is visible
    to the policy pack and to tests under mocks.
    """

    def __init__(self, name: str, cfg: StackConfig, pool: GpuPool, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("vllm-fleet:platform:GpuNodeGroup", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        inst = gpu_instance(pool.instance_types[0])
        assert inst is not None
        tags = {"vllm-fleet/pool": pool.name, "vllm-fleet/cluster": cfg.cluster.name}

        self.role = aws.iam.Role(
            f"{name}-node-role",
            assume_role_policy=json.dumps({"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}),
            tags=tags, opts=child)
        self.attachments = [
            aws.iam.RolePolicyAttachment(
                f"{name}-{policy}", role=self.role.name,
                policy_arn=f"arn:aws:iam::aws:policy/{policy}", opts=child)
            for policy in NODE_MANAGED_POLICIES
        ]
        # Bottlerocket boots from /dev/xvda and keeps images and logs on the data volume /dev/xvdb.
        device = "/dev/xvdb" if pool.ami_family == "bottlerocket" else "/dev/xvda"
        interfaces: list[aws.ec2.LaunchTemplateNetworkInterfaceArgs] = []
        if pool.efa and inst.efa:
            interfaces = [aws.ec2.LaunchTemplateNetworkInterfaceArgs(
                device_index=0, network_card_index=0, interface_type="efa", associate_public_ip_address="false",
                delete_on_termination="true")]
        else:
            interfaces = [aws.ec2.LaunchTemplateNetworkInterfaceArgs(
                device_index=0, associate_public_ip_address="false", delete_on_termination="true")]
        self.launch_template = aws.ec2.LaunchTemplate(
            f"{name}-lt",
            description=f"GPU pool {pool.name} ({inst.gpu_model})",
            metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
                http_endpoint="enabled", http_tokens="required", http_put_response_hop_limit=1),
            block_device_mappings=[aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                device_name=device,
                ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                    volume_size=pool.disk_gib, volume_type="gp3", encrypted="true", delete_on_termination="true"))],
            network_interfaces=interfaces,
            tag_specifications=[aws.ec2.LaunchTemplateTagSpecificationArgs(resource_type="instance", tags=tags)],
            tags=tags, opts=child)
        self.node_group = aws.eks.NodeGroup(
            f"{name}-ng",
            cluster_name=cfg.cluster.name,
            node_group_name_prefix=f"{pool.name}-",
            node_role_arn=self.role.arn,
            subnet_ids=pool.subnet_ids,
            instance_types=pool.instance_types,
            capacity_type=CAPACITY_TYPES[pool.capacity_type],
            ami_type=AMI_TYPES[(pool.ami_family, inst.architecture)],
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(
                min_size=pool.min_size, max_size=pool.max_size,
                desired_size=pool.desired_size if pool.desired_size is not None else pool.min_size),
            update_config=aws.eks.NodeGroupUpdateConfigArgs(max_unavailable=1),
            labels=node_labels(pool),
            taints=[aws.eks.NodeGroupTaintArgs(key=GPU_TAINT_KEY, value="true", effect="NO_SCHEDULE")],
            launch_template=aws.eks.NodeGroupLaunchTemplateArgs(
                id=self.launch_template.id, version=self.launch_template.latest_version.apply(str)),
            tags=tags,
            # The autoscaler owns the desired size once the group exists.
            opts=pulumi.ResourceOptions(parent=self, depends_on=self.attachments,
                                        ignore_changes=["scalingConfig.desiredSize"]))
        self.register_outputs({"node_group": self.node_group.id})


DEVICE_PLUGIN_CONFIG_KEY = "config.yaml"


def device_plugin_config(settings: DevicePlugin) -> str:
    """The device plugin's config file (MIG strategy, optional time-slicing)."""
    cfg: dict = {"version": "v1", "flags": {"migStrategy": settings.mig_strategy, "failOnInitError": True}}
    ts = settings.time_slicing
    if ts.enabled:
        cfg["sharing"] = {"timeSlicing": {
            "renameByDefault": ts.rename_by_default,
            "failRequestsGreaterThanOne": ts.fail_requests_greater_than_one,
            "resources": [{"name": "nvidia.com/gpu", "replicas": ts.replicas}]}}
    return json.dumps(cfg, indent=2, sort_keys=True)


class NvidiaDevicePlugin(pulumi.ComponentResource):
    """NVIDIA k8s-device-plugin DaemonSet mirroring NVIDIA's static manifest, on the pools that need it."""

    def __init__(self, name: str, settings: DevicePlugin, pools: list[GpuPool],
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("vllm-fleet:platform:NvidiaDevicePlugin", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        labels = {"app.kubernetes.io/name": "nvidia-device-plugin", **MANAGED_BY}
        self.namespace = k8s.core.v1.Namespace(
            f"{name}-ns",
            metadata={"name": DEVICE_PLUGIN_NAMESPACE, "labels": {
                **MANAGED_BY,
                # The plugin needs a hostPath to the kubelet socket: a system namespace, exempted by name.
                "pod-security.kubernetes.io/enforce": "privileged",
                "pod-security.kubernetes.io/warn": "baseline"}},
            opts=child)
        self.config = k8s.core.v1.ConfigMap(
            f"{name}-config",
            metadata={"name": "nvidia-device-plugin-config", "namespace": DEVICE_PLUGIN_NAMESPACE, "labels": labels},
            data={DEVICE_PLUGIN_CONFIG_KEY: device_plugin_config(settings)},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.namespace]))
        self.daemonset = k8s.apps.v1.DaemonSet(
            f"{name}-ds",
            metadata={"name": "nvidia-device-plugin", "namespace": DEVICE_PLUGIN_NAMESPACE, "labels": labels},
            spec={
                "selector": {"match_labels": {"app.kubernetes.io/name": "nvidia-device-plugin"}},
                "update_strategy": {"type": "RollingUpdate"},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "priority_class_name": "system-node-critical",
                        "tolerations": [{"key": GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}],
                        "affinity": {"node_affinity": {"required_during_scheduling_ignored_during_execution": {
                            "node_selector_terms": [{"match_expressions": [
                                {"key": POOL_LABEL, "operator": "In", "values": sorted(p.name for p in pools)}]}]}}},
                        "containers": [{
                            "name": "nvidia-device-plugin-ctr",
                            "image": settings.image,
                            "args": ["--config-file", f"/etc/nvidia-device-plugin/{DEVICE_PLUGIN_CONFIG_KEY}"],
                            "env": [{"name": "FAIL_ON_INIT_ERROR", "value": "true"}],
                            "security_context": {"allow_privilege_escalation": False, "capabilities": {"drop": ["ALL"]}},
                            "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "200m", "memory": "256Mi"}},
                            "volume_mounts": [
                                {"name": "device-plugin", "mount_path": "/var/lib/kubelet/device-plugins"},
                                {"name": "config", "mount_path": "/etc/nvidia-device-plugin", "read_only": True}],
                        }],
                        "volumes": [
                            {"name": "device-plugin", "host_path": {"path": "/var/lib/kubelet/device-plugins", "type": "Directory"}},
                            {"name": "config", "config_map": {"name": "nvidia-device-plugin-config"}}],
                    },
                },
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.config]))
        self.register_outputs({})
