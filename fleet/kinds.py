"""Resource types as the engine names them, and the facts about them that several places need (one owner each)."""

from __future__ import annotations


def kubernetes_type(api_version: str, kind: str) -> str:
    """The engine's type token of a Kubernetes object: `kubernetes:<group>/<version>:<Kind>`, the core group `core`."""
    return f"kubernetes:{api_version if '/' in api_version else f'core/{api_version}'}:{kind}"


# Kinds whose objects carry a pod template (pod-level rules judge every one).
WORKLOAD_KINDS = {
    "Pod": "v1", "Deployment": "apps/v1", "StatefulSet": "apps/v1", "DaemonSet": "apps/v1", "ReplicaSet": "apps/v1",
    "Job": "batch/v1", "CronJob": "batch/v1", "LeaderWorkerSet": "leaderworkerset.x-k8s.io/v1",
}
POD_TYPES = tuple(kubernetes_type(api, kind) for kind, api in WORKLOAD_KINDS.items())

# Resources that hold the weights cache or unlock it (its KMS key): deleting or replacing one loses data, so
# prod protects them (policy C6).
DATA_TYPES = frozenset({
    "aws:efs/fileSystem:FileSystem", "aws:fsx/lustreFileSystem:LustreFileSystem", "aws:s3/bucket:Bucket",
    "aws:s3/bucketV2:BucketV2", "aws:kms/key:Key", "kubernetes:core/v1:PersistentVolume",
    "kubernetes:core/v1:PersistentVolumeClaim",
})
# What `guard` refuses to destroy and `plan --base` flags when a change would replace it: the data resources
# and the StorageClasses their volumes are provisioned through.
STATEFUL_TYPES = DATA_TYPES | {"kubernetes:storage.k8s.io/v1:StorageClass"}
NAMESPACE_TYPE = "kubernetes:core/v1:Namespace"

# Fields whose change makes the provider replace the resource (delete, then create).
REPLACED_WHEN_CHANGED: dict[str, tuple[str, ...]] = {
    "kubernetes:core/v1:PersistentVolumeClaim": ("spec.storageClassName", "spec.accessModes", "spec.volumeName",
                                                 "spec.selector", "metadata.name", "metadata.namespace"),
    "kubernetes:core/v1:PersistentVolume": ("spec.csi", "spec.nfs", "spec.hostPath", "spec.storageClassName",
                                            "spec.accessModes", "metadata.name"),
    "kubernetes:storage.k8s.io/v1:StorageClass": ("provisioner", "parameters", "reclaimPolicy", "volumeBindingMode", "metadata.name"),
    "aws:efs/fileSystem:FileSystem": ("encrypted", "kmsKeyId", "performanceMode", "creationToken", "availabilityZoneName"),
    "aws:fsx/lustreFileSystem:LustreFileSystem": ("deploymentType", "subnetIds", "kmsKeyId", "storageType", "fileSystemTypeVersion"),
    "aws:s3/bucket:Bucket": ("bucket",),
    "aws:kms/key:Key": ("keySpec", "keyUsage", "customerMasterKeySpec"),
    NAMESPACE_TYPE: ("metadata.name",),
}

# Fields the typed Kubernetes classes register as secrets.
SECRET_FIELDS: dict[str, tuple[str, ...]] = {"kubernetes:core/v1:Secret": ("data", "stringData")}

HPA_TYPE = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
SCALED_OBJECT_TYPE = "kubernetes:keda.sh/v1alpha1:ScaledObject"
AUTOSCALER_TYPES = (HPA_TYPE, SCALED_OBJECT_TYPE)
