"""Platform components: the Kubernetes provider, GPU node groups and the NVIDIA device plugin."""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.kube import apply
from fleet.catalog import gpu_instance
from fleet.labels import (
    AMI_TYPES,
    CAPACITY_TYPES,
    GPU_TAINT_KEY,
    NODE_MANAGED_POLICIES,
    SHIPS_DEVICE_PLUGIN,
)
from fleet.render import gpu_system, karpenter
from fleet.render.platform_labels import pool_labels as node_labels
from fleet.spec.stack import GpuPool, StackConfig


def kube_provider(name: str, cfg: StackConfig, cluster: Any, opts: pulumi.ResourceOptions) -> k8s.Provider:
    """A Kubernetes provider for the stack's EKS cluster (token from `aws eks get-token`)."""
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


def network_interfaces(pool: GpuPool, efa_cards: int) -> list[aws.ec2.LaunchTemplateNetworkInterfaceArgs]:
    """No public IP on any interface. With EFA: one EFA interface per network card (32 on p5.48xlarge);
    the primary ENI stays on card 0."""
    if efa_cards == 0:
        return [aws.ec2.LaunchTemplateNetworkInterfaceArgs(
            device_index=0, associate_public_ip_address="false", delete_on_termination="true")]
    return [aws.ec2.LaunchTemplateNetworkInterfaceArgs(
        device_index=0 if card == 0 else 1, network_card_index=card, interface_type="efa",
        associate_public_ip_address="false", delete_on_termination="true")
        for card in range(efa_cards)]


def node_role(name: str, tags: dict[str, str], opts: pulumi.ResourceOptions) -> tuple[aws.iam.Role, list[aws.iam.RolePolicyAttachment]]:
    """The node IAM role: EC2 may assume it; exactly the managed policies a worker needs."""
    role = aws.iam.Role(
        f"{name}-node-role",
        assume_role_policy=json.dumps({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}),
        tags=tags, opts=opts)
    attachments = [aws.iam.RolePolicyAttachment(f"{name}-{policy}", role=role.name,
                                                policy_arn=f"arn:aws:iam::aws:policy/{policy}", opts=opts)
                   for policy in NODE_MANAGED_POLICIES]
    return role, attachments


class KarpenterGpuPool(pulumi.ComponentResource):
    """`provisioner: karpenter`: NodePool + EC2NodeClass, a node role and the access entry that lets its nodes join.
    Needs the Karpenter controller in the cluster (installed separately)."""

    def __init__(self, name: str, cfg: StackConfig, pool: GpuPool, cluster: Any, k8s_opts: pulumi.ResourceOptions,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("vllm-fleet:platform:KarpenterGpuPool", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = {"vllm-fleet/pool": pool.name, "vllm-fleet/cluster": cfg.cluster.name}
        self.role, attachments = node_role(name, tags, child)
        self.access_entry = aws.eks.AccessEntry(f"{name}-access", cluster_name=cfg.cluster.name,
                                                principal_arn=self.role.arn, type="EC2_LINUX", tags=tags, opts=child)
        k8s_child = pulumi.ResourceOptions.merge(k8s_opts, pulumi.ResourceOptions(parent=self, depends_on=[self.access_entry, *attachments]))
        self.node_class = apply(karpenter.node_class(pool, self.role.name, cluster.vpc_config.cluster_security_group_id, tags), k8s_child)
        self.node_pool = apply(karpenter.node_pool(pool, node_labels(pool)),
                               pulumi.ResourceOptions.merge(k8s_child, pulumi.ResourceOptions(depends_on=[self.node_class])))
        self.register_outputs({})


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

        self.role, self.attachments = node_role(name, tags, child)
        # Bottlerocket boots from /dev/xvda and keeps images and logs on the data volume /dev/xvdb.
        device = "/dev/xvdb" if pool.ami_family == "bottlerocket" else "/dev/xvda"
        interfaces = network_interfaces(pool, inst.efa_interfaces if pool.efa and inst.efa else 0)
        market: dict = {}
        if pool.capacity_type == "capacity-block":
            # Capacity Blocks launch only into their reservation, with the capacity-block market type.
            market = {
                "instance_market_options": aws.ec2.LaunchTemplateInstanceMarketOptionsArgs(market_type="capacity-block"),
                "capacity_reservation_specification": aws.ec2.LaunchTemplateCapacityReservationSpecificationArgs(
                    capacity_reservation_target=aws.ec2.LaunchTemplateCapacityReservationSpecificationCapacityReservationTargetArgs(
                        capacity_reservation_id=pool.capacity_reservation_id)),
            }
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
            **market,
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


class GpuSystem(pulumi.ComponentResource):
    """The GPU system namespace with the NVIDIA device plugin (only on pools whose AMI lacks it) and the
    DCGM exporter (every GPU pool)."""

    def __init__(self, name: str, cfg: StackConfig, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("vllm-fleet:platform:GpuSystem", name, None, opts)
        settings = cfg.device_plugin
        needs_plugin = [p for p in cfg.gpu_pools if p.ami_family not in SHIPS_DEVICE_PLUGIN]
        self.namespace = apply(gpu_system.namespace(), pulumi.ResourceOptions(parent=self))
        after = pulumi.ResourceOptions(parent=self, depends_on=[self.namespace])
        self.device_plugin = [apply(m, after) for m in gpu_system.device_plugin(settings, needs_plugin)] if needs_plugin else []
        self.dcgm = ([apply(m, after) for m in gpu_system.dcgm_exporter(settings, list(cfg.gpu_pools),
                                                                         cfg.observability.prometheus_operator)]
                     if settings.dcgm_exporter else [])
        self.register_outputs({})
