"""ModelCache: the shared weight cache (EFS, FSx for Lustre or S3) and its PV/PVC per team namespace."""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_aws as aws

from components.kube import apply
from fleet.render.cache import persistent_volume, persistent_volume_claim
from fleet.spec.loader import FleetSpec

EFS_CSI_POLICY = "arn:aws:iam::aws:policy/service-role/AmazonEFSCSIDriverPolicy"
# Lustre traffic: 988 (LNet) and 1018-1023 (clients), from the cluster's nodes and the file system itself.
LUSTRE_PORTS = [(988, 988), (1018, 1023)]


def cache_subnets(spec: FleetSpec) -> list[str]:
    cache = spec.config.model_cache
    if cache.subnet_ids:
        return list(cache.subnet_ids)
    return sorted({s for pool in spec.config.gpu_pools for s in pool.subnet_ids})


def irsa_trust_policy(oidc_provider_arn: str, issuer: str, namespace: str, service_account: str) -> str:
    host = issuer.removeprefix("https://")
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Federated": oidc_provider_arn}, "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {f"{host}:sub": f"system:serviceaccount:{namespace}:{service_account}",
                                       f"{host}:aud": "sts.amazonaws.com"}}}]})


class ModelCache(pulumi.ComponentResource):
    """Production stacks put `protect` and `retain_on_delete` on every stateful resource here."""

    def __init__(self, name: str, spec: FleetSpec, cluster: Any, namespaces: dict[str, pulumi.Resource],
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("vllm-fleet:platform:ModelCache", name, None, opts)
        cfg = spec.config
        cache = cfg.model_cache
        prod = cfg.tier == "prod"
        child = pulumi.ResourceOptions(parent=self)
        stateful = pulumi.ResourceOptions(parent=self, protect=prod, retain_on_delete=prod)
        tags = {"vllm-fleet/cluster": cfg.cluster.name, "vllm-fleet/stack": spec.stack}
        self.claims: dict[str, pulumi.Resource] = {}
        if cache.backend == "none":
            self.register_outputs({})
            return

        if cache.kms_key_arn:
            key_arn: pulumi.Input[str] = cache.kms_key_arn
        else:
            self.key = aws.kms.Key(f"{name}-key", description=f"vllm-fleet model cache ({spec.stack})",
                                   enable_key_rotation=True, deletion_window_in_days=30, tags=tags, opts=stateful)
            key_arn = self.key.arn

        cluster_sg = cluster.vpc_config.cluster_security_group_id
        vpc_id = cluster.vpc_config.vpc_id
        issuer = cluster.identities[0].oidcs[0].issuer
        account = aws.get_caller_identity_output(opts=pulumi.InvokeOptions(parent=self)).account_id
        oidc_arn = cfg.cluster.oidc_provider_arn or pulumi.Output.all(account, issuer).apply(
            lambda a: f"arn:aws:iam::{a[0]}:oidc-provider/{a[1].removeprefix('https://')}")

        sources: dict[str, dict[str, Any]] = {}
        if cache.backend == "efs":
            self.efs = aws.efs.FileSystem(
                f"{name}-efs", encrypted=True, kms_key_id=key_arn, performance_mode="generalPurpose",
                throughput_mode="elastic", tags={**tags, "Name": f"{cfg.cluster.name}-model-cache"}, opts=stateful)
            self.security_group = aws.ec2.SecurityGroup(
                f"{name}-efs-sg", vpc_id=vpc_id, description="NFS from the cluster's nodes to the model cache",
                ingress=[aws.ec2.SecurityGroupIngressArgs(protocol="tcp", from_port=2049, to_port=2049,
                                                          security_groups=[cluster_sg], description="NFS from nodes")],
                tags=tags, opts=child)
            self.mount_targets = [
                aws.efs.MountTarget(f"{name}-mt-{subnet}", file_system_id=self.efs.id, subnet_id=subnet,
                                    security_groups=[self.security_group.id], opts=child)
                for subnet in cache_subnets(spec)]
            role = aws.iam.Role(
                f"{name}-efs-csi-role",
                assume_role_policy=pulumi.Output.all(oidc_arn, issuer).apply(
                    lambda a: irsa_trust_policy(a[0], a[1], "kube-system", "efs-csi-controller-sa")),
                tags=tags, opts=child)
            attach = aws.iam.RolePolicyAttachment(f"{name}-efs-csi-policy", role=role.name, policy_arn=EFS_CSI_POLICY,
                                                  opts=child)
            self.addon = aws.eks.Addon(
                f"{name}-efs-csi", cluster_name=cfg.cluster.name, addon_name="aws-efs-csi-driver",
                service_account_role_arn=role.arn, resolve_conflicts_on_update="OVERWRITE", tags=tags,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[attach]))
            for team in spec.teams:
                ap = aws.efs.AccessPoint(
                    f"{name}-ap-{team.name}", file_system_id=self.efs.id,
                    posix_user=aws.efs.AccessPointPosixUserArgs(uid=1000, gid=1000),
                    root_directory=aws.efs.AccessPointRootDirectoryArgs(
                        path=f"/teams/{team.name}",
                        creation_info=aws.efs.AccessPointRootDirectoryCreationInfoArgs(
                            owner_uid=1000, owner_gid=1000, permissions="0750")),
                    tags={**tags, "vllm-fleet/team": team.name}, opts=child)
                sources[team.name] = {"volume_handle": pulumi.Output.concat(self.efs.id, "::", ap.id)}
            self.depends: list[pulumi.Resource] = [self.addon, *self.mount_targets]
        elif cache.backend == "fsx-lustre":
            self.security_group = aws.ec2.SecurityGroup(
                f"{name}-fsx-sg", vpc_id=vpc_id, description="Lustre from the cluster's nodes to the model cache",
                ingress=[aws.ec2.SecurityGroupIngressArgs(protocol="tcp", from_port=lo, to_port=hi, security_groups=[cluster_sg],
                                                          self=True, description="Lustre") for lo, hi in LUSTRE_PORTS],
                tags=tags, opts=child)
            self.fsx = aws.fsx.LustreFileSystem(
                f"{name}-fsx", storage_capacity=cache.size_gib, subnet_ids=cache_subnets(spec)[0],  # one subnet (one AZ)
                deployment_type="PERSISTENT_2", per_unit_storage_throughput=cache.throughput_mibps,
                kms_key_id=key_arn, data_compression_type="LZ4", security_group_ids=[self.security_group.id],
                tags={**tags, "Name": f"{cfg.cluster.name}-model-cache"}, opts=stateful)
            if cache.fsx_import_path:
                aws.fsx.DataRepositoryAssociation(
                    f"{name}-fsx-s3", file_system_id=self.fsx.id, data_repository_path=cache.fsx_import_path,
                    file_system_path="/s3", batch_import_meta_data_on_create=True, opts=child)
            for team in spec.teams:
                sources[team.name] = {"file_system_id": self.fsx.id, "dns_name": self.fsx.dns_name,
                                      "mount_name": self.fsx.mount_name}
            self.depends = [self.fsx]
        else:  # s3
            bucket_name = cache.s3_bucket_name or f"{cfg.cluster.name}-{spec.stack}-model-cache"
            self.bucket = aws.s3.Bucket(f"{name}-bucket", bucket=bucket_name, tags=tags, opts=stateful)
            aws.s3.BucketPublicAccessBlock(f"{name}-bucket-pab", bucket=self.bucket.id, block_public_acls=True,
                                           block_public_policy=True, ignore_public_acls=True, restrict_public_buckets=True,
                                           opts=child)
            aws.s3.BucketServerSideEncryptionConfiguration(
                f"{name}-bucket-sse", bucket=self.bucket.id,
                rules=[aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                    apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                        sse_algorithm="aws:kms", kms_master_key_id=key_arn),
                    bucket_key_enabled=True)], opts=child)
            aws.s3.BucketVersioning(f"{name}-bucket-versioning", bucket=self.bucket.id,
                                    versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(status="Enabled"),
                                    opts=child)
            role = aws.iam.Role(
                f"{name}-s3-csi-role",
                assume_role_policy=pulumi.Output.all(oidc_arn, issuer).apply(
                    lambda a: irsa_trust_policy(a[0], a[1], "kube-system", "s3-csi-driver-sa")),
                tags=tags, opts=child)
            aws.iam.RolePolicy(
                f"{name}-s3-csi-read", role=role.id,
                policy=pulumi.Output.all(self.bucket.arn, key_arn).apply(lambda a: json.dumps({
                    "Version": "2012-10-17", "Statement": [
                        {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": [a[0]]},
                        {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": [f"{a[0]}/*"]},
                        {"Effect": "Allow", "Action": ["kms:Decrypt"], "Resource": [a[1]]}]})),
                opts=child)
            self.addon = aws.eks.Addon(
                f"{name}-s3-csi", cluster_name=cfg.cluster.name, addon_name="aws-mountpoint-s3-csi-driver",
                service_account_role_arn=role.arn, resolve_conflicts_on_update="OVERWRITE", tags=tags, opts=child)
            for team in spec.teams:
                sources[team.name] = {"bucket": self.bucket.bucket}
            self.depends = [self.addon]

        for team in spec.teams:
            if not team.models:
                continue
            pv = apply(persistent_volume(spec, team, sources[team.name]),
                       pulumi.ResourceOptions(parent=self, protect=prod, retain_on_delete=prod, depends_on=self.depends))
            self.claims[team.name] = apply(
                persistent_volume_claim(spec, team),
                pulumi.ResourceOptions(parent=self, protect=prod, retain_on_delete=prod,
                                       depends_on=[pv, namespaces[team.name]]))
        self.register_outputs({})
