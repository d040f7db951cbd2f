"""C: model cache and data (file systems, buckets, volumes)."""

from __future__ import annotations

from typing import Any

from fleet.aws_limits import LUSTRE_DOC, LUSTRE_SG_DOC, admits_lustre, lustre_security_group_problems, lustre_storage_problem
from fleet.kinds import DATA_TYPES
from fleet.quantity import whole
from policies.framework import has_key, rule, shown_number, stack_rule, to_plain_data

STATEFUL = tuple(sorted(DATA_TYPES))


@rule("C1", "aws-efs-enable-encryption", "EFS file systems are encrypted; EFS volumes mount with TLS.", level="mandatory",
      severity="high", remediation="Set encrypted: true (with a KMS key) and mountOptions [tls] on EFS PVs.", sources=("BPG",),
      kinds=("aws:efs/fileSystem:FileSystem", "kubernetes:core/v1:PersistentVolume"))
def efs(props: Any, report: Any, args: Any) -> None:
    if args.resource_type == "aws:efs/fileSystem:FileSystem":
        if props.get("encrypted") is not True:
            report("the file system is not encrypted")
        return
    spec = props.get("spec") or {}
    if (spec.get("csi") or {}).get("driver") == "efs.csi.aws.com":
        attrs = (spec.get("csi") or {}).get("volumeAttributes") or {}
        if "tls" not in list(spec.get("mountOptions") or []) and attrs.get("encryptInTransit") != "true":
            report("the EFS volume mounts without tls")


@rule("C2", "aws-fsx-enable-kms-encryption", "FSx for Lustre uses a KMS key; no Scratch deployment for production caches.",
      level="mandatory", severity="medium", remediation="Set kmsKeyId and a PERSISTENT deployment type.", sources=("BPG",),
      kinds=("aws:fsx/lustreFileSystem:LustreFileSystem",))
def fsx(props: Any, report: Any, args: Any) -> None:
    if not has_key(props, "kmsKeyId"):  # set to the stack's key: present, unknown until the key exists
        report("no kmsKeyId")
    if str(props.get("deploymentType", "SCRATCH_1")).startswith("SCRATCH") and (args.get_config() or {}).get("prod"):
        report(f"deployment type {props.get('deploymentType', 'SCRATCH_1')} loses data on failure")


@rule("C3", "kubernetes-storageclass-enable-ebs-encryption", "EBS StorageClasses encrypt volumes.", level="mandatory",
      severity="high", remediation="Set parameters.encrypted: \"true\".", sources=("BPG",),
      kinds=("kubernetes:storage.k8s.io/v1:StorageClass",))
def ebs_storage_class(props: Any, report: Any, args: Any) -> None:
    if props.get("provisioner") in ("ebs.csi.aws.com", "kubernetes.io/aws-ebs") and \
            str((props.get("parameters") or {}).get("encrypted", "")).lower() != "true":
        report("EBS StorageClass without encrypted: \"true\"")


@stack_rule("C4", "aws-s3-bucket-configure-model-bucket", "Model buckets block public access, use SSE-KMS and versioning.",
            level="mandatory", severity="high", remediation="Add a BucketPublicAccessBlock (all four true), SSE with aws:kms "
            "and versioning Enabled.", sources=("BPG",))
def model_bucket(resources: Any, report: Any, args: Any) -> None:
    buckets = {r.urn: r for r in resources if r.resource_type == "aws:s3/bucket:Bucket"}
    if not buckets:
        return
    pab = [r for r in resources if r.resource_type == "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
           and all(r.props.get(k) is True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"))]
    sse = [r for r in resources if r.resource_type.startswith("aws:s3/bucketServerSideEncryptionConfiguration")
           and "aws:kms" in str(to_plain_data(r.props.get("rules")))]
    versioning = [r for r in resources if r.resource_type.startswith("aws:s3/bucketVersioning")
                  and (r.props.get("versioningConfiguration") or {}).get("status") == "Enabled"]

    def covers(items: list[Any], bucket: Any) -> bool:
        return any(bucket.urn in [d.urn for d in getattr(i, "dependencies", [])] or str(i.props.get("bucket")) in
                   (str(bucket.props.get("bucket")), bucket.name) or i.parent is bucket.parent for i in items)

    for bucket in buckets.values():
        for items, what in ((pab, "a public access block with all four switches"), (sse, "SSE-KMS"), (versioning, "versioning")):
            if not covers(items, bucket):
                report(f"bucket {bucket.props.get('bucket', bucket.name)} has no {what}", bucket.urn)


@rule("C5", "kubernetes-pv-configure-retain", "Model-cache volumes and StorageClasses use Retain; never Recycle.",
      level="mandatory", severity="high", remediation="Set persistentVolumeReclaimPolicy (or reclaimPolicy) Retain.",
      sources=("K8S",), kinds=("kubernetes:core/v1:PersistentVolume", "kubernetes:storage.k8s.io/v1:StorageClass"))
def retain(props: Any, report: Any, args: Any) -> None:
    if args.resource_type == "kubernetes:core/v1:PersistentVolume":
        policy = (props.get("spec") or {}).get("persistentVolumeReclaimPolicy", "Retain")
    else:
        policy = props.get("reclaimPolicy", "Delete")
    name = str((props.get("metadata") or {}).get("name", ""))
    if policy == "Recycle" or (policy != "Retain" and "model-cache" in name):
        report(f"reclaim policy {policy}")


@rule("C6", "pulumi-stateful-enable-protect", "Stateful cache resources carry `protect` in production stacks.",
      level="mandatory", severity="high", remediation="Set protect (and retain_on_delete) on the resource.", sources=("Pulumi",),
      kinds=STATEFUL)
def protect(props: Any, report: Any, args: Any) -> None:
    if (args.get_config() or {}).get("prod") and not args.opts.protect:
        report("stateful resource without protect in a production stack")


@rule("C7", "kubernetes-pvc-configure-storage-class", "PVCs name an explicit storage class.", level="advisory",
      severity="low", remediation="Set spec.storageClassName (and ReadWriteMany for multi-replica models).",
      sources=("GK", "production-stack#107"), kinds=("kubernetes:core/v1:PersistentVolumeClaim",))
def storage_class(props: Any, report: Any, args: Any) -> None:
    if not (props.get("spec") or {}).get("storageClassName"):
        report("no storageClassName: the cluster default decides")


@rule("C8", "aws-ec2-securitygroup-configure-lustre-ports", "A security group that admits Lustre (TCP 988) has the FSx for "
      "Lustre guide's inbound and outbound rules for TCP 988 and 1018-1023, with itself and with the clients.",
      level="mandatory", severity="high", remediation="Add ingress and egress rules for TCP 988 and TCP 1018-1023 with `self: true` "
      "and the nodes' security group; pulumi-aws removes a new group's default allow-all egress, so write the egress rules.",
      sources=("AWS FSx for Lustre User Guide", "pulumi-aws SecurityGroup"), kinds=("aws:ec2/securityGroup:SecurityGroup",))
def lustre_security_group(props: Any, report: Any, args: Any) -> None:
    if not admits_lustre(props):
        return
    for problem in lustre_security_group_problems(props):
        report(f"Lustre security group: {problem} — the file system's servers and clients cannot reach each other ({LUSTRE_SG_DOC})")


@rule("C9", "aws-fsx-configure-lustre-storage-capacity", "FSx for Lustre storage capacity and throughput are values the FSx API "
      "accepts for the deployment type.", level="mandatory", severity="high",
      remediation="PERSISTENT_2, PERSISTENT_1 (SSD) and SCRATCH_2: 1200, 2400 or a multiple of 2400 GiB; SCRATCH_1: 1200, 2400 or a "
      "multiple of 3600 GiB; PERSISTENT_2 throughput 125, 250, 500 or 1000 MB/s/TiB.", sources=("AWS FSx API CreateFileSystem",),
      kinds=("aws:fsx/lustreFileSystem:LustreFileSystem",))
def lustre_storage(props: Any, report: Any, args: Any) -> None:
    size, throughput = props.get("storageCapacity"), props.get("perUnitStorageThroughput")
    if size is None:
        return  # restored from a backup: its size
    problem = lustre_storage_problem(str(props.get("deploymentType", "SCRATCH_1")), whole(size, 0),
                                     whole(throughput, 0) if throughput is not None else None, str(props.get("storageType", "SSD")))
    if problem is not None:
        report(f"storageCapacity {shown_number(size)}: {problem} — CreateFileSystem refuses it ({LUSTRE_DOC})")
