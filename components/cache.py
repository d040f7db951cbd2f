"""ModelCache: the shared weight cache (EFS, FSx for Lustre or S3) and its PV/PVC per team namespace."""

from __future__ import annotations

import json
from typing import Any

import pulumi

from components import aws
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
            self.key = aws.resource("aws:kms/key:Key", f"{name}-key", {
                "description": f"vllm-fleet model cache ({spec.stack})", "enableKeyRotation": True,
                "deletionWindowInDays": 30, "tags": tags}, stateful, outputs=["arn"])
            key_arn = aws.output(self.key, "arn")

        cluster_sg = cluster["vpcConfig"]["clusterSecurityGroupId"]
        vpc_id = cluster["vpcConfig"]["vpcId"]
        issuer = cluster["identities"][0]["oidcs"][0]["issuer"]
        account = aws.invoke("aws:index/getCallerIdentity:getCallerIdentity", {}, pulumi.InvokeOptions(parent=self))["accountId"]
        oidc_arn = cfg.cluster.oidc_provider_arn or pulumi.Output.all(account, issuer).apply(
            lambda a: f"arn:aws:iam::{a[0]}:oidc-provider/{a[1].removeprefix('https://')}")

        def csi_role(role_name: str, service_account: str) -> pulumi.CustomResource:
            """The IAM role a CSI driver's service account in kube-system assumes through the cluster's OIDC issuer."""
            return aws.resource("aws:iam/role:Role", role_name, {
                "assumeRolePolicy": pulumi.Output.all(oidc_arn, issuer).apply(
                    lambda a: irsa_trust_policy(a[0], a[1], "kube-system", service_account)),
                "tags": tags}, child, outputs=["arn", "name"])

        sources: dict[str, dict[str, Any]] = {}
        if cache.backend == "efs":
            self.efs = aws.resource("aws:efs/fileSystem:FileSystem", f"{name}-efs", {
                "encrypted": True, "kmsKeyId": key_arn, "performanceMode": "generalPurpose", "throughputMode": "elastic",
                "tags": {**tags, "Name": f"{cfg.cluster.name}-model-cache"}}, stateful)
            self.security_group = aws.resource("aws:ec2/securityGroup:SecurityGroup", f"{name}-efs-sg", {
                "vpcId": vpc_id, "description": "NFS from the cluster's nodes to the model cache",
                "ingress": [{"protocol": "tcp", "fromPort": 2049, "toPort": 2049, "securityGroups": [cluster_sg],
                             "description": "NFS from nodes"}],
                "tags": tags}, child)
            self.mount_targets = [
                aws.resource("aws:efs/mountTarget:MountTarget", f"{name}-mt-{subnet}", {
                    "fileSystemId": self.efs.id, "subnetId": subnet, "securityGroups": [self.security_group.id]}, child)
                for subnet in cache_subnets(spec)]
            role = csi_role(f"{name}-efs-csi-role", "efs-csi-controller-sa")
            attach = aws.resource("aws:iam/rolePolicyAttachment:RolePolicyAttachment", f"{name}-efs-csi-policy", {
                "role": aws.output(role, "name"), "policyArn": EFS_CSI_POLICY}, child)
            self.addon = aws.resource("aws:eks/addon:Addon", f"{name}-efs-csi", {
                "clusterName": cfg.cluster.name, "addonName": "aws-efs-csi-driver",
                "serviceAccountRoleArn": aws.output(role, "arn"), "resolveConflictsOnUpdate": "OVERWRITE", "tags": tags},
                pulumi.ResourceOptions(parent=self, depends_on=[attach]))
            for team in spec.teams:
                ap = aws.resource("aws:efs/accessPoint:AccessPoint", f"{name}-ap-{team.name}", {
                    "fileSystemId": self.efs.id,
                    "posixUser": {"uid": 1000, "gid": 1000},
                    "rootDirectory": {"path": f"/teams/{team.name}",
                                      "creationInfo": {"ownerUid": 1000, "ownerGid": 1000, "permissions": "0750"}},
                    "tags": {**tags, "vllm-fleet/team": team.name}}, child)
                sources[team.name] = {"volume_handle": pulumi.Output.concat(self.efs.id, "::", ap.id)}
            self.depends: list[pulumi.Resource] = [self.addon, *self.mount_targets]
        elif cache.backend == "fsx-lustre":
            self.security_group = aws.resource("aws:ec2/securityGroup:SecurityGroup", f"{name}-fsx-sg", {
                "vpcId": vpc_id, "description": "Lustre from the cluster's nodes to the model cache",
                "ingress": [{"protocol": "tcp", "fromPort": lo, "toPort": hi, "securityGroups": [cluster_sg], "self": True,
                             "description": "Lustre"} for lo, hi in LUSTRE_PORTS],
                "tags": tags}, child)
            self.fsx = aws.resource("aws:fsx/lustreFileSystem:LustreFileSystem", f"{name}-fsx", {
                "storageCapacity": cache.size_gib, "subnetIds": cache_subnets(spec)[0],  # one subnet (one AZ)
                "deploymentType": "PERSISTENT_2", "perUnitStorageThroughput": cache.throughput_mibps,
                "kmsKeyId": key_arn, "dataCompressionType": "LZ4", "securityGroupIds": [self.security_group.id],
                "tags": {**tags, "Name": f"{cfg.cluster.name}-model-cache"}}, stateful, outputs=["dnsName", "mountName"])
            if cache.fsx_import_path:
                aws.resource("aws:fsx/dataRepositoryAssociation:DataRepositoryAssociation", f"{name}-fsx-s3", {
                    "fileSystemId": self.fsx.id, "dataRepositoryPath": cache.fsx_import_path, "fileSystemPath": "/s3",
                    "batchImportMetaDataOnCreate": True}, child)
            for team in spec.teams:
                sources[team.name] = {"file_system_id": self.fsx.id, "dns_name": aws.output(self.fsx, "dnsName"),
                                      "mount_name": aws.output(self.fsx, "mountName")}
            self.depends = [self.fsx]
        else:  # s3
            bucket_name = cache.s3_bucket_name or f"{cfg.cluster.name}-{spec.stack}-model-cache"
            self.bucket = aws.resource("aws:s3/bucket:Bucket", f"{name}-bucket", {"bucket": bucket_name, "tags": tags},
                                       stateful, outputs=["arn"])
            aws.resource("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", f"{name}-bucket-pab", {
                "bucket": self.bucket.id, "blockPublicAcls": True, "blockPublicPolicy": True, "ignorePublicAcls": True,
                "restrictPublicBuckets": True}, child)
            aws.resource("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
                         f"{name}-bucket-sse", {"bucket": self.bucket.id, "rules": [{
                             "applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms", "kmsMasterKeyId": key_arn},
                             "bucketKeyEnabled": True}]}, child)
            aws.resource("aws:s3/bucketVersioning:BucketVersioning", f"{name}-bucket-versioning", {
                "bucket": self.bucket.id, "versioningConfiguration": {"status": "Enabled"}}, child)
            role = csi_role(f"{name}-s3-csi-role", "s3-csi-driver-sa")
            aws.resource("aws:iam/rolePolicy:RolePolicy", f"{name}-s3-csi-read", {
                "role": role.id,
                "policy": pulumi.Output.all(aws.output(self.bucket, "arn"), key_arn).apply(lambda a: json.dumps({
                    "Version": "2012-10-17", "Statement": [
                        {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": [a[0]]},
                        {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": [f"{a[0]}/*"]},
                        {"Effect": "Allow", "Action": ["kms:Decrypt"], "Resource": [a[1]]}]}))}, child)
            self.addon = aws.resource("aws:eks/addon:Addon", f"{name}-s3-csi", {
                "clusterName": cfg.cluster.name, "addonName": "aws-mountpoint-s3-csi-driver",
                "serviceAccountRoleArn": aws.output(role, "arn"), "resolveConflictsOnUpdate": "OVERWRITE", "tags": tags}, child)
            for team in spec.teams:
                sources[team.name] = {"bucket": aws.output(self.bucket, "bucket")}
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
