"""Model cache objects in Kubernetes: one static PV per team (Retain) bound to the team's PVC, and the
prefetch Job that fills the cache once per model and revision.

Identifiers that AWS assigns (file system id, access point id, DNS name) arrive as arguments so these
functions stay pure; components pass Pulumi outputs through them unchanged.
"""

from __future__ import annotations

import hashlib
import shlex
from typing import Any

from fleet.labels import FOR_MODEL_LABEL, MANAGED_BY, NONROOT_UID, ROLE_LABEL, TEAM_LABEL
from fleet.render import Manifest, meta
from fleet.spec.resolved import ResolvedModel, ResolvedTeam
from fleet.spec.s3 import parse_s3_prefix
from fleet.spec.stack import ModelCache as CacheSettings
from fleet.spec.stack import StackConfig

CACHE_CLAIM = "model-cache"
CACHE_STORAGE_CLASS = "model-cache"   # static binding only: PV and PVC carry the same class name
CACHE_MOUNT = "/models"
HF_HOME_ON_CACHE = f"{CACHE_MOUNT}/hf"
PREFETCH_ROLE = "prefetch"

CSI_DRIVERS = {"efs": "efs.csi.aws.com", "fsx-lustre": "fsx.csi.aws.com", "s3": "s3.csi.aws.com"}


def has_cache(cfg: StackConfig) -> bool:
    return cfg.model_cache.backend != "none"


def prefetches(cfg: StackConfig) -> bool:
    """A prefetch Job fills the cache (EFS, FSx); an S3 cache is staged outside the stack and mounted read-only."""
    return cfg.model_cache.backend in ("efs", "fsx-lustre")


def pv_name(team: ResolvedTeam) -> str:
    return f"model-cache-{team.namespace}"


def persistent_volume(cache: CacheSettings, region: str, team: ResolvedTeam, source: dict[str, Any]) -> Manifest:
    """`source` carries the backend identifiers: efs {volume_handle: "<fs-id>::<access-point-id>"};
    fsx-lustre {file_system_id, dns_name, mount_name}; s3 {bucket}."""
    backend = cache.backend
    csi: dict[str, Any] = {"driver": CSI_DRIVERS[backend]}
    mount_options: list[str] = []
    access = ["ReadWriteMany"]
    if backend == "efs":
        csi["volumeHandle"] = source["volume_handle"]       # "<fs-id>::<access-point-id>"
        mount_options = ["tls"]                             # encryption in transit
    elif backend == "fsx-lustre":
        # A Lustre subdirectory mount ("<mountname>/teams/<team>"): the team's pods see their directory and nothing
        # above it. Each PV gets its own handle (the driver mounts from the attributes; kubelet keys volumes by handle).
        csi["volumeHandle"] = source["volume_handle"]
        csi["volumeAttributes"] = {"dnsname": source["dns_name"], "mountname": source["mount_name"]}
        mount_options = ["flock"]
    else:
        csi["volumeHandle"] = source["bucket"]
        csi["volumeAttributes"] = {"bucketName": source["bucket"]}
        mount_options = ["read-only", "allow-other", f"uid={NONROOT_UID}", f"gid={NONROOT_UID}", f"region {region}"]
        access = ["ReadOnlyMany"]
    return {
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": meta(pv_name(team), labels={**MANAGED_BY, TEAM_LABEL: team.name}),
        "spec": {
            "capacity": {"storage": f"{cache.size_gib}Gi"},
            "accessModes": access,
            # The weights outlive any PVC: deleting the claim never deletes the data.
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": CACHE_STORAGE_CLASS,
            "mountOptions": mount_options,
            "claimRef": {"namespace": team.namespace, "name": CACHE_CLAIM},
            "csi": csi,
        },
    }


TEAM_DIRECTORIES = "teams"        # on a shared file system, every team's cache lives under /teams/<team>
DIRECTORIES_CLAIM = "model-cache-root"


def team_directory(team: str) -> str:
    return f"{TEAM_DIRECTORIES}/{team}"


def root_volume(cache: CacheSettings, source: dict[str, Any], namespace: str) -> Manifest:
    """The whole FSx file system, for the platform Job that creates the team directories."""
    return {
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": meta(DIRECTORIES_CLAIM, labels=dict(MANAGED_BY)),
        "spec": {
            "capacity": {"storage": f"{cache.size_gib}Gi"}, "accessModes": ["ReadWriteMany"],
            "persistentVolumeReclaimPolicy": "Retain", "storageClassName": CACHE_STORAGE_CLASS, "mountOptions": ["flock"],
            "claimRef": {"namespace": namespace, "name": DIRECTORIES_CLAIM},
            "csi": {"driver": CSI_DRIVERS["fsx-lustre"], "volumeHandle": source["file_system_id"],
                    "volumeAttributes": {"dnsname": source["dns_name"], "mountname": source["root_mount_name"]}},
        },
    }


def root_claim(cache: CacheSettings, namespace: str) -> Manifest:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta(DIRECTORIES_CLAIM, namespace, dict(MANAGED_BY)),
            "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": CACHE_STORAGE_CLASS, "volumeName": DIRECTORIES_CLAIM,
                     "resources": {"requests": {"storage": f"{cache.size_gib}Gi"}}}}


DIRECTORIES = "model-cache-directories"
# rule id → why the directories Job needs what the rule forbids (fleet.render.exemptions)
DIRECTORIES_NEEDS = {
    "D5": "CHOWN hands each new team directory on the root-owned Lustre file system to the serving user",
    "D7": "the Lustre root directory belongs to root: only root creates the team directories in it, once, here",
}


def directories_job_name(teams: list[str]) -> str:
    """Named after the teams it creates: a new team is a new Job."""
    return f"{DIRECTORIES}-{hashlib.sha256(','.join(sorted(teams)).encode()).hexdigest()[:8]}"


def directories_service_account(namespace: str) -> Manifest:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(DIRECTORIES, namespace, dict(MANAGED_BY)),
            "automountServiceAccountToken": False}


def directories_job(teams: list[str], image: str, namespace: str) -> Manifest:
    """Creates /teams/<team> on the file system, owned by the serving user and closed to others (0750). A Lustre
    root directory belongs to root: creating and handing over the directories needs root and CHOWN, once, here, so
    no serving pod ever does."""
    steps = [f"mkdir -p -m 0750 /fsx/{team_directory(t)} && chown {NONROOT_UID}:{NONROOT_UID} /fsx/{team_directory(t)}"
             for t in sorted(teams)]
    labels = {**MANAGED_BY, "app.kubernetes.io/name": DIRECTORIES}
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": meta(directories_job_name(teams), namespace, labels),
        "spec": {"backoffLimit": 3, "activeDeadlineSeconds": 600, "template": {"metadata": {"labels": labels}, "spec": {
            "restartPolicy": "OnFailure", "serviceAccountName": DIRECTORIES, "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "securityContext": {"runAsUser": 0, "runAsGroup": 0, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "directories", "image": image, "command": ["/bin/sh", "-c"], "args": [" && ".join(["set -e", *steps])],
                "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"], "add": ["CHOWN"]}},
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
                "volumeMounts": [{"name": "fsx", "mountPath": "/fsx"}],
            }],
            "volumes": [{"name": "fsx", "persistentVolumeClaim": {"claimName": DIRECTORIES_CLAIM}}],
        }}},
    }


def persistent_volume_claim(cache: CacheSettings, team: ResolvedTeam) -> Manifest:
    backend = cache.backend
    return {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": meta(CACHE_CLAIM, team.namespace, {**MANAGED_BY, TEAM_LABEL: team.name}),
        "spec": {
            "accessModes": ["ReadOnlyMany"] if backend == "s3" else ["ReadWriteMany"],
            "storageClassName": CACHE_STORAGE_CLASS,
            "volumeName": pv_name(team),
            "resources": {"requests": {"storage": f"{cache.size_gib}Gi"}},
        },
    }


def prefetch_name(model: ResolvedModel) -> str:
    """One Job per model and revision: a new revision is a new Job, a re-run of the same one is a no-op."""
    digest = hashlib.sha256(f"{model.spec.model}@{model.spec.revision or 'main'}".encode()).hexdigest()[:8]
    return f"{model.name}-prefetch-{digest}"


def adapter_root(model: ResolvedModel) -> str:
    """Where a model's LoRA adapters live on the cache: `<root>/<adapter name>`."""
    return f"{CACHE_MOUNT}/adapters/{model.name}"


# Copies s3://bucket/prefix into a directory with boto3 (in the vLLM image, for its S3 model streamer), under the
# prefetch pod's IRSA role.
S3_COPY = (
    "import boto3,os,sys\n"
    "bucket,_,prefix=sys.argv[1][5:].partition('/')\n"
    "s3=boto3.client('s3')\n"
    "n=0\n"
    "for page in s3.get_paginator('list_objects_v2').paginate(Bucket=bucket,Prefix=prefix):\n"
    "    for o in page.get('Contents',[]):\n"
    "        rel=o['Key'][len(prefix):].lstrip('/')\n"
    "        if not rel or rel.endswith('/'): continue\n"
    "        dest=os.path.join(sys.argv[2],rel); os.makedirs(os.path.dirname(dest),exist_ok=True)\n"
    "        s3.download_file(bucket,o['Key'],dest); n+=1\n"
    "sys.exit(0 if n else f'nothing under {sys.argv[1]}')\n"
)


def prefetch_pod_labels(model: ResolvedModel) -> dict[str, str]:
    """A prefetch pod is not one of the model's serving pods: no model label, so the model's Service, disruption
    budget and spread constraints never select it."""
    return {**MANAGED_BY, TEAM_LABEL: model.team, ROLE_LABEL: PREFETCH_ROLE, FOR_MODEL_LABEL: model.name}


def prefetch_job(cfg: StackConfig, model: ResolvedModel, image: str, hf_token: tuple[str, str] | None, deadline_seconds: int) -> Manifest:
    """`hf download` of the model, its draft model and its Hugging Face adapters into the cache; adapters from S3
    copied with boto3. Adapters land in `adapter_root(model)/<name>`, where vLLM loads them from."""
    labels = prefetch_pod_labels(model)
    repos = [(model.spec.model, model.spec.revision)]
    if model.spec.speculative is not None and model.spec.speculative.model:
        repos.append((model.spec.speculative.model, None))
    # The original/ folder of Meta checkpoints duplicates the weights in another format.
    commands = [f"hf download {shlex.quote(repo)}{f' --revision {shlex.quote(rev)}' if rev else ''} --exclude 'original/*'"
                for repo, rev in repos]
    for adapter in (model.spec.lora.modules if model.spec.lora is not None else []):
        dest = shlex.quote(f"{adapter_root(model)}/{adapter.name}")
        if adapter.path.startswith("s3://"):
            # The prefix with its '/': what the IAM role may list and read (`team/a` would also list `team/ab/`).
            commands.append(f"python3 -c {shlex.quote(S3_COPY)} {shlex.quote(parse_s3_prefix(adapter.path).uri)} {dest}")
        else:
            rev = f" --revision {shlex.quote(adapter.revision)}" if adapter.revision else ""
            commands.append(f"hf download {shlex.quote(adapter.path)}{rev} --local-dir {dest}")
    env: list[dict[str, Any]] = [
        {"name": "HF_HOME", "value": HF_HOME_ON_CACHE},
        {"name": "HOME", "value": "/scratch"},
        {"name": "HF_HUB_DISABLE_TELEMETRY", "value": "1"},
    ]
    mounts: list[dict[str, Any]] = [{"name": "model-cache", "mountPath": CACHE_MOUNT},
                                    {"name": "scratch", "mountPath": "/scratch"}]
    volumes: list[dict[str, Any]] = [{"name": "model-cache", "persistentVolumeClaim": {"claimName": CACHE_CLAIM}},
                                     {"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}}]
    if hf_token is not None:
        name, key = hf_token
        env.append({"name": "HF_TOKEN_PATH", "value": f"/var/run/secrets/huggingface/{key}"})
        volumes.append({"name": "hf-token", "secret": {"secretName": name, "items": [{"key": key, "path": key}],
                                                       "defaultMode": 0o440}})
        mounts.append({"name": "hf-token", "mountPath": "/var/run/secrets/huggingface", "readOnly": True})
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": meta(prefetch_name(model), model.namespace, labels),
        "spec": {
            "backoffLimit": 3,
            # Kubernetes fails the Job at its deadline, which pulumi-kubernetes reports at once (its own timeout is longer).
            "activeDeadlineSeconds": deadline_seconds,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "OnFailure",
                    "serviceAccountName": model.name,
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": {"runAsNonRoot": True, "runAsUser": NONROOT_UID, "runAsGroup": NONROOT_UID,
                                        "fsGroup": NONROOT_UID, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "prefetch",
                        "image": image,
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["/bin/sh", "-c"],
                        "args": [" && ".join(["set -e", *commands])],
                        "env": env,
                        "resources": {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}},
                        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                                            "runAsNonRoot": True, "runAsUser": NONROOT_UID, "readOnlyRootFilesystem": True},
                        "volumeMounts": mounts,
                    }],
                    "volumes": volumes,
                },
            },
        },
    }
