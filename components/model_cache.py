"""ModelCache: the shared weight cache and its PersistentVolume/Claim per team namespace. One interface, a class
per backend: EFS (an access point per team), FSx for Lustre, S3 (Mountpoint, read-only). Production stacks put
`protect` and `retain_on_delete` on every stateful resource here."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.iam import ClusterOidc, service_account_role
from components.kubernetes import register
from fleet.aws_limits import LUSTRE_DEPLOYMENT_DEFAULT, LUSTRE_PORTS, NFS_PORT
from fleet.render.cache import directories_job, directories_service_account, persistent_volume, persistent_volume_claim, root_claim, root_volume, team_directory
from fleet.render.gpu_system import namespace as gpu_system_namespace
from fleet.spec.resolved import ResolvedTeam
from fleet.spec.stack import ModelCache as CacheSettings

EFS_CSI_POLICY = "arn:aws:iam::aws:policy/service-role/AmazonEFSCSIDriverPolicy"
# pulumi-kubernetes awaits a Job until it completes; its own timeout outlasts the Job's deadline, so Kubernetes fails a
# stuck Job (reported at once) before the provider's await gives up on it.
JOB_TIMEOUT_GRACE_SECONDS = 300


@dataclass(frozen=True)
class ModelCacheArgs:
    stack: str
    cluster_name: str
    region: str
    settings: CacheSettings
    protect: bool                                   # prod: protect and retain_on_delete on the stateful resources
    subnet_ids: tuple[str, ...]
    vpc_id: pulumi.Input[str]
    cluster_security_group_id: pulumi.Input[str]
    oidc: ClusterOidc
    teams: tuple[ResolvedTeam, ...]                 # a team with models gets a PV and a claim in its namespace
    namespaces: dict[str, pulumi.Resource]          # team → its Namespace resource
    platform_namespace: pulumi.Resource             # where platform Jobs run (the GPU system namespace)
    image: str                                      # an image with a shell, for platform Jobs (the vLLM image)

    @property
    def tags(self) -> dict[str, str]:
        return {"vllm-fleet/cluster": self.cluster_name, "vllm-fleet/stack": self.stack}


class ModelCache(pulumi.ComponentResource):
    """The backend's storage (`_storage`), then a PV bound to a claim in each team namespace once it is ready."""

    def __init__(self, name: str, args: ModelCacheArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("vllm-fleet:platform:ModelCache", name, None, opts)
        self.args = args
        self.stateful = pulumi.ResourceOptions(parent=self, protect=args.protect, retain_on_delete=args.protect)
        self.child = pulumi.ResourceOptions(parent=self)
        key_arn: pulumi.Input[str]
        if args.settings.kms_key_arn:
            key_arn = args.settings.kms_key_arn
        else:
            self.key = aws.kms.Key(f"{name}-key", description=f"vllm-fleet model cache ({args.stack})", enable_key_rotation=True,
                                   deletion_window_in_days=30, tags=args.tags, opts=self.stateful)
            key_arn = self.key.arn
        sources, ready = self._storage(name, key_arn)
        self.claims = {}
        for team in args.teams:
            if not team.models:
                continue
            pv = register(persistent_volume(args.settings, args.region, team, sources[team.name]),
                          pulumi.ResourceOptions(parent=self, protect=args.protect, retain_on_delete=args.protect, depends_on=ready))
            self.claims[team.name] = register(persistent_volume_claim(args.settings, team), pulumi.ResourceOptions(
                parent=self, protect=args.protect, retain_on_delete=args.protect, depends_on=[pv, args.namespaces[team.name]]))
        self.register_outputs({"claims": sorted(self.claims)})

    def _storage(self, name: str, key_arn: pulumi.Input[str]) -> tuple[dict[str, dict[str, pulumi.Input[str]]], list[pulumi.Resource]]:
        """Per team, the identifiers its PV mounts (fleet.render.cache.persistent_volume), and what must exist first."""
        raise NotImplementedError

    def csi_role(self, role_name: str, service_account: str) -> aws.iam.Role:
        """The IAM role a CSI driver's service account in kube-system assumes through the cluster's OIDC issuer (IRSA)."""
        return service_account_role(role_name, self.args.oidc, "kube-system", service_account, self.args.tags, self.child)


class EfsModelCache(ModelCache):
    """Elastic-throughput EFS, encrypted with the key, one access point per team (its own directory and POSIX
    owner), mount targets in the cache subnets, and the EFS CSI driver add-on with its IRSA role."""

    def _storage(self, name: str, key_arn: pulumi.Input[str]) -> tuple[dict[str, dict[str, pulumi.Input[str]]], list[pulumi.Resource]]:
        args = self.args
        self.file_system = aws.efs.FileSystem(f"{name}-efs", encrypted=True, kms_key_id=key_arn, performance_mode="generalPurpose",
                                              throughput_mode="elastic", tags={**args.tags, "Name": f"{args.cluster_name}-model-cache"},
                                              opts=self.stateful)
        # Inbound NFS from the nodes is all a mount target needs (security groups are stateful; the nodes' cluster
        # security group allows all egress). fleet.aws_limits.NFS_PORT.
        self.security_group = aws.ec2.SecurityGroup(
            f"{name}-efs-sg", vpc_id=args.vpc_id, description="NFS from the cluster's nodes to the model cache",
            ingress=[aws.ec2.SecurityGroupIngressArgs(protocol="tcp", from_port=NFS_PORT, to_port=NFS_PORT,
                                                      security_groups=[args.cluster_security_group_id], description="NFS from nodes")],
            tags=args.tags, opts=self.child)
        mount_targets = [aws.efs.MountTarget(f"{name}-mt-{subnet}", file_system_id=self.file_system.id, subnet_id=subnet,
                                             security_groups=[self.security_group.id], opts=self.child)
                         for subnet in args.subnet_ids]
        role = self.csi_role(f"{name}-efs-csi-role", "efs-csi-controller-sa")
        attach = aws.iam.RolePolicyAttachment(f"{name}-efs-csi-policy", role=role.name, policy_arn=EFS_CSI_POLICY, opts=self.child)
        self.addon = aws.eks.Addon(f"{name}-efs-csi", cluster_name=args.cluster_name, addon_name="aws-efs-csi-driver",
                                   service_account_role_arn=role.arn, resolve_conflicts_on_update="OVERWRITE", tags=args.tags,
                                   opts=pulumi.ResourceOptions(parent=self, depends_on=[attach]))
        sources: dict[str, dict[str, pulumi.Input[str]]] = {}
        for team in args.teams:
            ap = aws.efs.AccessPoint(
                f"{name}-ap-{team.name}", file_system_id=self.file_system.id,
                posix_user=aws.efs.AccessPointPosixUserArgs(uid=1000, gid=1000),
                root_directory=aws.efs.AccessPointRootDirectoryArgs(
                    path=f"/teams/{team.name}",
                    creation_info=aws.efs.AccessPointRootDirectoryCreationInfoArgs(owner_uid=1000, owner_gid=1000, permissions="0750")),
                tags={**args.tags, "vllm-fleet/team": team.name}, opts=self.child)
            sources[team.name] = {"volume_handle": pulumi.Output.concat(self.file_system.id, "::", ap.id)}
        return sources, [self.addon, *mount_targets]


class FsxLustreModelCache(ModelCache):
    """A PERSISTENT_2 FSx for Lustre file system in one subnet, encrypted with the key, optionally linked to an
    S3 data repository; its security group admits Lustre from the cluster's nodes."""

    def _storage(self, name: str, key_arn: pulumi.Input[str]) -> tuple[dict[str, dict[str, pulumi.Input[str]]], list[pulumi.Resource]]:
        args, cache = self.args, self.args.settings
        # The FSx for Lustre guide's rules (fleet.aws_limits.LUSTRE_SG_DOC): TCP 988 and 1018-1023 in AND out, between
        # the file servers (self) and with the clients (the nodes' cluster security group). pulumi-aws drops the
        # default allow-all egress, so the outbound rules are written here; policy C8 checks both directions.
        sg = args.cluster_security_group_id
        self.security_group = aws.ec2.SecurityGroup(
            f"{name}-fsx-sg", vpc_id=args.vpc_id, description="Lustre between the model cache's file servers and the cluster's nodes",
            ingress=[aws.ec2.SecurityGroupIngressArgs(protocol="tcp", from_port=lo, to_port=hi, security_groups=[sg],
                                                      self=True, description="Lustre from file servers and nodes") for lo, hi in LUSTRE_PORTS],
            egress=[aws.ec2.SecurityGroupEgressArgs(protocol="tcp", from_port=lo, to_port=hi, security_groups=[sg],
                                                    self=True, description="Lustre to file servers and nodes") for lo, hi in LUSTRE_PORTS],
            tags=args.tags, opts=self.child)
        # The clients' side: the cluster security group admits Lustre from the file servers (it only admits itself).
        for lo, hi in LUSTRE_PORTS:
            aws.vpc.SecurityGroupIngressRule(f"{name}-fsx-to-nodes-{lo}", security_group_id=sg, ip_protocol="tcp", from_port=lo,
                                             to_port=hi, referenced_security_group_id=self.security_group.id,
                                             description="Lustre from the model cache's file servers", tags=args.tags, opts=self.child)
        self.file_system = aws.fsx.LustreFileSystem(
            f"{name}-fsx", storage_capacity=cache.size_gib, subnet_ids=args.subnet_ids[0],  # one subnet (one AZ)
            deployment_type=LUSTRE_DEPLOYMENT_DEFAULT, per_unit_storage_throughput=cache.throughput_mibps, kms_key_id=key_arn,
            data_compression_type="LZ4", security_group_ids=[self.security_group.id],
            tags={**args.tags, "Name": f"{args.cluster_name}-model-cache"}, opts=self.stateful)
        if cache.fsx_import_path:
            aws.fsx.DataRepositoryAssociation(f"{name}-fsx-s3", file_system_id=self.file_system.id, data_repository_path=cache.fsx_import_path,
                                              file_system_path="/s3", batch_import_meta_data_on_create=True,
                                              # explicit: deleting the association must never delete the cached files
                                              # (`vllm-fleet guard` blocks a preview that would)
                                              delete_data_in_filesystem=False, opts=self.child)
        # Every team gets its own directory, mounted as the root of its volume: no team sees another's weights.
        root = {"file_system_id": self.file_system.id, "dns_name": self.file_system.dns_name, "root_mount_name": self.file_system.mount_name}
        namespace = str(gpu_system_namespace()["metadata"]["name"])
        volume = register(root_volume(args.settings, root, namespace),
                          pulumi.ResourceOptions(parent=self, protect=args.protect, retain_on_delete=args.protect, depends_on=[self.file_system]))
        claim = register(root_claim(args.settings, namespace), pulumi.ResourceOptions(
            parent=self, protect=args.protect, retain_on_delete=args.protect, depends_on=[volume, args.platform_namespace]))
        teams = [t.name for t in args.teams if t.models]
        account = register(directories_service_account(namespace), pulumi.ResourceOptions(parent=self, depends_on=[args.platform_namespace]))
        job = directories_job(teams, args.image, namespace)
        wait = f"{int(job['spec']['activeDeadlineSeconds']) + JOB_TIMEOUT_GRACE_SECONDS}s"
        self.directories = register(job, pulumi.ResourceOptions(parent=self, depends_on=[claim, account],
                                                                custom_timeouts=pulumi.CustomTimeouts(create=wait, update=wait)))
        sources: dict[str, dict[str, pulumi.Input[str]]] = {}
        for team in args.teams:
            sources[team.name] = {"volume_handle": pulumi.Output.concat(self.file_system.id, "::", team_directory(team.name)),
                                  "dns_name": self.file_system.dns_name,
                                  "mount_name": pulumi.Output.concat(self.file_system.mount_name, "/", team_directory(team.name))}
        return sources, [self.file_system, self.directories]


class S3ModelCache(ModelCache):
    """A private, versioned, SSE-KMS bucket mounted read-only by the Mountpoint S3 CSI driver (weights are staged
    into it outside the stack), with the driver add-on and an IRSA role that may only read it."""

    def _storage(self, name: str, key_arn: pulumi.Input[str]) -> tuple[dict[str, dict[str, pulumi.Input[str]]], list[pulumi.Resource]]:
        args = self.args
        bucket_name = args.settings.s3_bucket_name or f"{args.cluster_name}-{args.stack}-model-cache"
        self.bucket = aws.s3.Bucket(f"{name}-bucket", bucket=bucket_name, tags=args.tags, opts=self.stateful)
        aws.s3.BucketPublicAccessBlock(f"{name}-bucket-pab", bucket=self.bucket.id, block_public_acls=True, block_public_policy=True,
                                       ignore_public_acls=True, restrict_public_buckets=True, opts=self.child)
        aws.s3.BucketServerSideEncryptionConfiguration(f"{name}-bucket-sse", bucket=self.bucket.id, rules=[
            aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                    sse_algorithm="aws:kms", kms_master_key_id=key_arn),
                bucket_key_enabled=True)], opts=self.child)
        aws.s3.BucketVersioning(f"{name}-bucket-versioning", bucket=self.bucket.id,
                                versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(status="Enabled"), opts=self.child)
        role = self.csi_role(f"{name}-s3-csi-role", "s3-csi-driver-sa")
        read = aws.iam.RolePolicy(f"{name}-s3-csi-read", role=role.id, policy=pulumi.Output.all(self.bucket.arn, key_arn).apply(lambda a: json.dumps({
            "Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": [a[0]]},
                {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": [f"{a[0]}/*"]},
                {"Effect": "Allow", "Action": ["kms:Decrypt"], "Resource": [a[1]]}]})), opts=self.child)
        self.addon = aws.eks.Addon(f"{name}-s3-csi", cluster_name=args.cluster_name, addon_name="aws-mountpoint-s3-csi-driver",
                                   service_account_role_arn=role.arn, resolve_conflicts_on_update="OVERWRITE", tags=args.tags,
                                   opts=pulumi.ResourceOptions(parent=self, depends_on=[read]))
        return {team.name: {"bucket": self.bucket.bucket} for team in args.teams}, [self.addon]


BACKENDS: dict[str, type[ModelCache]] = {"efs": EfsModelCache, "fsx-lustre": FsxLustreModelCache, "s3": S3ModelCache}


def model_cache(name: str, args: ModelCacheArgs, opts: pulumi.ResourceOptions | None = None) -> ModelCache | None:
    """The cache of the stack's backend; None for `backend: none` (each pod downloads its weights)."""
    backend = BACKENDS.get(args.settings.backend)
    return backend(name, args, opts) if backend is not None else None
