"""Platform components: the Kubernetes provider, GPU node groups and the NVIDIA device plugin."""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components import aws
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

    config = pulumi.Output.all(cluster["endpoint"], cluster["certificateAuthorities"][0]["data"]).apply(kubeconfig)
    return k8s.Provider(name, kubeconfig=config, enable_server_side_apply=True, opts=opts)


def network_interfaces(pool: GpuPool, efa_cards: int) -> list[dict[str, Any]]:
    """No public IP on any interface. With EFA: one EFA interface per network card (32 on p5.48xlarge);
    the primary ENI stays on card 0."""
    if efa_cards == 0:
        return [{"deviceIndex": 0, "associatePublicIpAddress": "false", "deleteOnTermination": "true"}]
    return [{"deviceIndex": 0 if card == 0 else 1, "networkCardIndex": card, "interfaceType": "efa",
             "associatePublicIpAddress": "false", "deleteOnTermination": "true"}
            for card in range(efa_cards)]


def node_role(name: str, tags: dict[str, str], opts: pulumi.ResourceOptions) -> tuple[pulumi.CustomResource, list[pulumi.CustomResource]]:
    """The node IAM role: EC2 may assume it; exactly the managed policies a worker needs."""
    role = aws.resource("aws:iam/role:Role", f"{name}-node-role", {
        "assumeRolePolicy": json.dumps({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}),
        "tags": tags}, opts, outputs=["arn", "name"])
    attachments = [aws.resource("aws:iam/rolePolicyAttachment:RolePolicyAttachment", f"{name}-{policy}",
                                {"role": aws.output(role, "name"), "policyArn": f"arn:aws:iam::aws:policy/{policy}"}, opts)
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
        self.access_entry = aws.resource("aws:eks/accessEntry:AccessEntry", f"{name}-access", {
            "clusterName": cfg.cluster.name, "principalArn": aws.output(self.role, "arn"), "type": "EC2_LINUX", "tags": tags}, child)
        k8s_child = pulumi.ResourceOptions.merge(k8s_opts, pulumi.ResourceOptions(parent=self, depends_on=[self.access_entry, *attachments]))
        self.node_class = apply(karpenter.node_class(pool, aws.output(self.role, "name"), cluster["vpcConfig"]["clusterSecurityGroupId"], tags),
                                k8s_child)
        self.node_pool = apply(karpenter.node_pool(pool, node_labels(pool)),
                               pulumi.ResourceOptions.merge(k8s_child, pulumi.ResourceOptions(depends_on=[self.node_class])))
        self.register_outputs({})


class GpuNodeGroup(pulumi.ComponentResource):
    """An EKS managed node group of GPU instances with its own launch template and node role.

    A plain EKS NodeGroup + EC2 LaunchTemplate (not pulumi-eks) so every resource is visible
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
        market: dict[str, Any] = {}
        if pool.capacity_type == "capacity-block":
            # Capacity Blocks launch only into their reservation, with the capacity-block market type.
            market = {
                "instanceMarketOptions": {"marketType": "capacity-block"},
                "capacityReservationSpecification": {
                    "capacityReservationTarget": {"capacityReservationId": pool.capacity_reservation_id}},
            }
        self.launch_template = aws.resource("aws:ec2/launchTemplate:LaunchTemplate", f"{name}-lt", {
            "description": f"GPU pool {pool.name} ({inst.gpu_model})",
            "metadataOptions": {"httpEndpoint": "enabled", "httpTokens": "required", "httpPutResponseHopLimit": 1},
            "blockDeviceMappings": [{"deviceName": device, "ebs": {
                "volumeSize": pool.disk_gib, "volumeType": "gp3", "encrypted": "true", "deleteOnTermination": "true"}}],
            "networkInterfaces": interfaces,
            **market,
            "tagSpecifications": [{"resourceType": "instance", "tags": tags}],
            "tags": tags}, child, outputs=["latestVersion"])
        self.node_group = aws.resource("aws:eks/nodeGroup:NodeGroup", f"{name}-ng", {
            "clusterName": cfg.cluster.name,
            "nodeGroupNamePrefix": f"{pool.name}-",
            "nodeRoleArn": aws.output(self.role, "arn"),
            "subnetIds": pool.subnet_ids,
            "instanceTypes": pool.instance_types,
            "capacityType": CAPACITY_TYPES[pool.capacity_type],
            "amiType": AMI_TYPES[(pool.ami_family, inst.architecture)],
            "scalingConfig": {"minSize": pool.min_size, "maxSize": pool.max_size,
                              "desiredSize": pool.desired_size if pool.desired_size is not None else pool.min_size},
            "updateConfig": {"maxUnavailable": 1},
            "labels": node_labels(pool),
            "taints": [{"key": GPU_TAINT_KEY, "value": "true", "effect": "NO_SCHEDULE"}],
            "launchTemplate": {"id": self.launch_template.id,
                               "version": aws.output(self.launch_template, "latestVersion").apply(str)},
            "tags": tags},
            # The autoscaler owns the desired size once the group exists.
            pulumi.ResourceOptions(parent=self, depends_on=self.attachments, ignore_changes=["scalingConfig.desiredSize"]))
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
