"""GPU node pools: an EKS managed node group with its own launch template, or a Karpenter NodePool and
EC2NodeClass. Plain `aws.eks.NodeGroup` + `aws.ec2.LaunchTemplate` (not pulumi-eks, a multi-language
component whose children the policy pack and the offline plan cannot see)."""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.kubernetes import register
from fleet.catalog import InstanceType
from fleet.labels import AMI_TYPES, CAPACITY_TYPES, GPU_TAINT_KEY, NODE_MANAGED_POLICIES
from fleet.node_capacity import block_nodes_at_creation, block_schedule
from fleet.render import cluster_autoscaler, karpenter
from fleet.render.platform_labels import pool_labels
from fleet.spec.stack import GpuPool


@dataclass(frozen=True)
class GpuNodeGroupArgs:
    cluster_name: str
    pool: GpuPool
    instance: InstanceType                          # the pool's instance shape (every type of a pool has the same GPUs)
    cluster_security_group_id: pulumi.Input[str]
    vpc_id: pulumi.Input[str]
    tags: dict[str, str]
    now: dt.datetime                                # when `pulumi up` applies it (fleet.clock): a past step is never scheduled
    autoscaled: bool = False                        # the stack's Cluster Autoscaler sizes the group (node-template tags)


@dataclass(frozen=True)
class KarpenterGpuPoolArgs:
    cluster_name: str
    pool: GpuPool
    instance: InstanceType
    cluster_security_group_id: pulumi.Input[str]
    vpc_id: pulumi.Input[str]
    tags: dict[str, str]


def network_interfaces(efa_cards: int, security_groups: list[pulumi.Input[str]]) -> list[aws.ec2.LaunchTemplateNetworkInterfaceArgs]:
    """No public IP on any interface; the launch template's interfaces carry the security groups (EKS adds none to a
    launch template that names interfaces). With EFA: one EFA interface per network card (32 on p5.48xlarge); the
    primary ENI stays on card 0."""
    if efa_cards == 0:
        return [aws.ec2.LaunchTemplateNetworkInterfaceArgs(device_index=0, associate_public_ip_address="false",
                                                           delete_on_termination="true", security_groups=security_groups)]
    return [aws.ec2.LaunchTemplateNetworkInterfaceArgs(
        device_index=0 if card == 0 else 1, network_card_index=card, interface_type="efa",
        associate_public_ip_address="false", delete_on_termination="true", security_groups=security_groups)
        for card in range(efa_cards)]


def node_role(name: str, tags: dict[str, str], opts: pulumi.ResourceOptions) -> tuple[aws.iam.Role, list[aws.iam.RolePolicyAttachment]]:
    """The node IAM role: EC2 may assume it; exactly the managed policies a worker needs."""
    role = aws.iam.Role(f"{name}-node-role", assume_role_policy=json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}), tags=tags, opts=opts)
    attachments = [aws.iam.RolePolicyAttachment(f"{name}-{policy}", role=role.name, policy_arn=f"arn:aws:iam::aws:policy/{policy}",
                                                opts=opts)
                   for policy in NODE_MANAGED_POLICIES]
    return role, attachments


def efa_security_group(name: str, vpc_id: pulumi.Input[str], tags: dict[str, str], opts: pulumi.ResourceOptions) -> aws.ec2.SecurityGroup:
    """EFA traffic flows only inside a security group that allows all traffic to and from itself (AWS EFA user guide)."""
    note = "EFA: all traffic within the group"
    return aws.ec2.SecurityGroup(
        f"{name}-efa-sg", vpc_id=vpc_id, description="EFA between the GPU nodes of one pool",
        ingress=[aws.ec2.SecurityGroupIngressArgs(protocol="-1", from_port=0, to_port=0, self=True, description=note)],
        egress=[aws.ec2.SecurityGroupEgressArgs(protocol="-1", from_port=0, to_port=0, self=True, description=note)], tags=tags, opts=opts)


class GpuNodeGroup(pulumi.ComponentResource):
    """An EKS managed node group of GPU instances with its own launch template (IMDSv2 only, hop limit 1,
    encrypted gp3 root, no public IP, EFA interfaces and their security group where the pool asks) and node role.

    A `capacity-block` pool follows AWS's procedure for Capacity Blocks in managed node groups
    (https://docs.aws.amazon.com/eks/latest/userguide/capacity-blocks-mng.html): the instance type, the
    capacity-block market type and the reservation live in the launch template, not on the node group; the group is
    created at 0 nodes (the desired size before the block starts is 0); scheduled scaling on its Auto Scaling group
    brings it to the block's instance count when the block begins and back to 0 more than 30 minutes before it ends
    (https://docs.aws.amazon.com/autoscaling/ec2/userguide/launch-template-capacity-blocks.html)."""

    def __init__(self, name: str, args: GpuNodeGroupArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("vllm-fleet:platform:GpuNodeGroup", name, None, opts)
        pool, inst, tags = args.pool, args.instance, args.tags
        child = pulumi.ResourceOptions(parent=self)
        self.role, attachments = node_role(name, tags, child)
        efa = pool.efa and inst.efa
        security_groups: list[pulumi.Input[str]] = [args.cluster_security_group_id]
        if efa:
            self.efa_security_group = efa_security_group(name, args.vpc_id, tags, child)
            security_groups.append(self.efa_security_group.id)
        # Bottlerocket boots from /dev/xvda and keeps images and logs on the data volume /dev/xvdb.
        device = "/dev/xvdb" if pool.ami_family == "bottlerocket" else "/dev/xvda"
        block = pool.capacity_type == "capacity-block"
        self.launch_template = aws.ec2.LaunchTemplate(
            f"{name}-lt",
            description=f"GPU pool {pool.name} ({inst.gpu_model})",
            metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(http_endpoint="enabled", http_tokens="required",
                                                                       http_put_response_hop_limit=1),
            block_device_mappings=[aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                device_name=device, ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                    volume_size=pool.disk_gib, volume_type="gp3", encrypted="true", delete_on_termination="true"))],
            network_interfaces=network_interfaces(inst.efa_interfaces if efa else 0, security_groups),
            instance_type=pool.instance_types[0] if block else None,
            instance_market_options=aws.ec2.LaunchTemplateInstanceMarketOptionsArgs(market_type="capacity-block") if block else None,
            capacity_reservation_specification=aws.ec2.LaunchTemplateCapacityReservationSpecificationArgs(
                capacity_reservation_target=aws.ec2.LaunchTemplateCapacityReservationSpecificationCapacityReservationTargetArgs(
                    capacity_reservation_id=pool.capacity_reservation_id)) if block else None,
            tag_specifications=[aws.ec2.LaunchTemplateTagSpecificationArgs(resource_type="instance", tags=tags)],
            tags=tags, opts=child)
        self.node_group = aws.eks.NodeGroup(
            f"{name}-ng",
            cluster_name=args.cluster_name,
            node_group_name_prefix=f"{pool.name}-",
            node_role_arn=self.role.arn,
            subnet_ids=pool.subnet_ids,
            instance_types=None if block else pool.instance_types,
            capacity_type=CAPACITY_TYPES[pool.capacity_type],
            ami_type=AMI_TYPES[(pool.ami_family, inst.architecture)],
            release_version=pool.ami_version,   # None: the latest release when the group is created
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(
                min_size=pool.min_size, max_size=pool.max_size,
                desired_size=block_nodes_at_creation(pool, args.now) if block else
                pool.desired_size if pool.desired_size is not None else pool.min_size),
            update_config=aws.eks.NodeGroupUpdateConfigArgs(max_unavailable=1),
            labels=pool_labels(pool),
            taints=[aws.eks.NodeGroupTaintArgs(key=GPU_TAINT_KEY, value="true", effect="NO_SCHEDULE")],
            launch_template=aws.eks.NodeGroupLaunchTemplateArgs(id=self.launch_template.id,
                                                                version=self.launch_template.latest_version.apply(str)),
            tags=tags,
            # The cluster autoscaler (or the block's schedule) owns the desired size once the group exists.
            opts=pulumi.ResourceOptions(parent=self, depends_on=attachments, ignore_changes=["scalingConfig.desiredSize"]))
        group: pulumi.Output[str] = self.node_group.resources.apply(
            lambda r: str(r[0].autoscaling_groups[0].name or "") if r and r[0].autoscaling_groups else "")
        if block:
            self._capacity_block_schedule(name, pool, group, args.now)
        if args.autoscaled:
            # Scale from zero: what a node of this group would carry, as tags on its Auto Scaling group (EKS does not
            # copy node group tags there). Not propagated: they describe the nodes, the nodes get the real labels.
            for key, value in sorted(cluster_autoscaler.node_template_tags(pool, inst).items()):
                suffix = re.sub(r"[^a-z0-9]+", "-", key.split("/node-template/", 1)[1].lower())
                aws.autoscaling.Tag(f"{name}-ca-{suffix}", autoscaling_group_name=group, tag=aws.autoscaling.TagTagArgs(
                    key=key, value=value, propagate_at_launch=False), opts=child)
        self.register_outputs({"node_group_name": self.node_group.node_group_name, "role_arn": self.role.arn})

    def _capacity_block_schedule(self, name: str, pool: GpuPool, group: pulumi.Input[str], now: dt.datetime) -> None:
        """Only the steps still ahead: AWS refuses a scheduled action that starts in the past, so once the block has
        begun the start step is gone (a group created during the block starts at its size) — the stack file keeps
        working through the block's window (fleet.node_capacity.block_schedule)."""
        for s in block_schedule(pool, now):
            aws.autoscaling.Schedule(f"{name}-block-{s.step}", scheduled_action_name=f"{pool.name}-capacity-block-{s.step}",
                                     autoscaling_group_name=group, start_time=s.at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                                     min_size=0, max_size=pool.max_size, desired_capacity=s.desired,
                                     # EC2 Auto Scaling deletes a one-time action once it has run, and deleting it again fails
                                     # ("Scheduled action name not found", hashicorp/terraform-provider-aws#19446): when a
                                     # step drops out of the program (its time passed, the pool went), leave AWS alone.
                                     opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True))


class KarpenterGpuPool(pulumi.ComponentResource):
    """`provisioner: karpenter`: NodePool + EC2NodeClass, a node role and the access entry that lets its nodes
    join (and the EFA security group on EFA pools). Needs the Karpenter controller in the cluster (installed
    separately); the Kubernetes provider comes with `opts.providers`."""

    def __init__(self, name: str, args: KarpenterGpuPoolArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("vllm-fleet:platform:KarpenterGpuPool", name, None, opts)
        pool, tags = args.pool, args.tags
        child = pulumi.ResourceOptions(parent=self)
        self.role, attachments = node_role(name, tags, child)
        access = aws.eks.AccessEntry(f"{name}-access", cluster_name=args.cluster_name, principal_arn=self.role.arn,
                                     type="EC2_LINUX", tags=tags, opts=child)
        security_groups: list[pulumi.Input[str]] = [args.cluster_security_group_id]
        if pool.efa and args.instance.efa:
            security_groups.append(efa_security_group(name, args.vpc_id, tags, child).id)
        self.node_class = register(karpenter.node_class(pool, self.role.name, security_groups, tags),
                                   pulumi.ResourceOptions(parent=self, depends_on=[access, *attachments]))
        self.node_pool = register(karpenter.node_pool(pool, pool_labels(pool)),
                                  pulumi.ResourceOptions(parent=self, depends_on=[self.node_class]))
        self.register_outputs({"role_arn": self.role.arn})
