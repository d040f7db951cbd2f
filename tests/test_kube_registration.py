"""components.kube registers manifests without the typed classes: the engine must receive exactly what the
typed pulumi-kubernetes class of each kind would send (token, properties, provider version, secret outputs),
except the typed classes' aliases to earlier API versions, which this program never registered. Checked for
every Kubernetes object of the bundled stacks plus a Secret."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pytest
from pulumi.runtime import rpc

from components.kube import apply, type_token
from fleet.engine import mocks
from fleet.plan import make_plan

ROOT = Path(__file__).resolve().parent.parent

TYPED: dict[tuple[str, str], Any] = {
    ("v1", "Namespace"): k8s.core.v1.Namespace,
    ("v1", "ResourceQuota"): k8s.core.v1.ResourceQuota,
    ("v1", "LimitRange"): k8s.core.v1.LimitRange,
    ("v1", "ServiceAccount"): k8s.core.v1.ServiceAccount,
    ("v1", "Service"): k8s.core.v1.Service,
    ("v1", "ConfigMap"): k8s.core.v1.ConfigMap,
    ("v1", "Secret"): k8s.core.v1.Secret,
    ("v1", "PersistentVolume"): k8s.core.v1.PersistentVolume,
    ("v1", "PersistentVolumeClaim"): k8s.core.v1.PersistentVolumeClaim,
    ("apps/v1", "Deployment"): k8s.apps.v1.Deployment,
    ("apps/v1", "DaemonSet"): k8s.apps.v1.DaemonSet,
    ("batch/v1", "Job"): k8s.batch.v1.Job,
    ("policy/v1", "PodDisruptionBudget"): k8s.policy.v1.PodDisruptionBudget,
    ("autoscaling/v2", "HorizontalPodAutoscaler"): k8s.autoscaling.v2.HorizontalPodAutoscaler,
    ("networking.k8s.io/v1", "NetworkPolicy"): k8s.networking.v1.NetworkPolicy,
    ("networking.k8s.io/v1", "Ingress"): k8s.networking.v1.Ingress,
    ("rbac.authorization.k8s.io/v1", "Role"): k8s.rbac.v1.Role,
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): k8s.rbac.v1.RoleBinding,
    ("storage.k8s.io/v1", "StorageClass"): k8s.storage.v1.StorageClass,
}
KEYWORD = {"stringData": "string_data", "roleRef": "role_ref", "automountServiceAccountToken": "automount_service_account_token",
           "reclaimPolicy": "reclaim_policy", "volumeBindingMode": "volume_binding_mode", "mountOptions": "mount_options",
           "allowVolumeExpansion": "allow_volume_expansion", "binaryData": "binary_data", "imagePullSecrets": "image_pull_secrets"}


def typed(manifest: dict[str, Any], name: str, opts: pulumi.ResourceOptions) -> pulumi.CustomResource:
    cls = TYPED.get((manifest["apiVersion"], manifest["kind"]))
    if cls is None:
        return k8s.apiextensions.CustomResource(name, api_version=manifest["apiVersion"], kind=manifest["kind"],
                                                metadata=manifest["metadata"], spec=manifest.get("spec"), opts=opts)
    kwargs = {KEYWORD.get(k, k): v for k, v in manifest.items() if k not in ("apiVersion", "kind")}
    return cls(name, **kwargs, opts=opts)  # type: ignore[no-any-return]


def bundled_manifests() -> list[dict[str, Any]]:
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for stack in ("dev", "prod"):
        for c in make_plan(stack, ROOT, policies=False).kubernetes_objects():
            out.setdefault((c.type, c.inputs["metadata"]["name"]), c.inputs)
    return list(out.values())


def plain(request: Any) -> Any:
    """The registered properties as data (unknowns as the engine's sentinel, secrets with their paths)."""
    secrets: list[str] = []
    return mocks._plain(dict(rpc.deserialize_properties(request.object)), "", secrets), secrets


def test_raw_registration_equals_the_typed_classes(monkeypatch: pytest.MonkeyPatch) -> None:
    manifests = bundled_manifests()
    manifests.append({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                      "metadata": {"name": "token", "namespace": "team-a"}, "stringData": {"value": "s3cr3t"}})
    kinds = {(m["apiVersion"], m["kind"]) for m in manifests}
    rendered = {type_token(*k) for k in kinds}
    assert set(TYPED) - kinds <= {("v1", "PersistentVolume"), ("v1", "PersistentVolumeClaim"), ("storage.k8s.io/v1", "StorageClass")}
    assert any(k not in TYPED for k in kinds), "a CRD-backed kind (ServiceMonitor, NodePool, ...) is covered"

    requests: dict[str, Any] = {}
    original = mocks.CaptureMonitor.RegisterResource

    def record(self: mocks.CaptureMonitor, request: Any) -> Any:
        requests[request.name] = request
        return original(self, request)

    monkeypatch.setattr(mocks.CaptureMonitor, "RegisterResource", record)

    def program() -> None:
        provider = k8s.Provider("k8s")
        first = k8s.core.v1.Namespace("ns", metadata={"name": "ns"})
        for i, m in enumerate(manifests):
            # The option shapes the components pass: plain, a provider map, depends_on, ignore_changes.
            opts = [pulumi.ResourceOptions(protect=i % 2 == 0),
                    pulumi.ResourceOptions(providers={"kubernetes": provider}, depends_on=[first]),
                    pulumi.ResourceOptions(provider=provider, ignore_changes=["spec.replicas"], retain_on_delete=True)][i % 3]
            typed(m, f"typed-{i}", opts)
            apply(m, opts, name=f"raw-{i}")

    mocks.run(program, project="vllm-fleet", stack="dev")
    all_aliased: set[str] = set()
    assert len([n for n in requests if n.startswith(("typed-", "raw-"))]) == 2 * len(manifests)
    for i, m in enumerate(manifests):
        a, b = requests[f"typed-{i}"], requests[f"raw-{i}"]
        where = f"{m['apiVersion']} {m['kind']} {m['metadata']['name']}"
        assert a.type == b.type, where
        assert plain(a) == plain(b), where
        assert (a.version, list(a.additionalSecretOutputs), a.protect) == (b.version, list(b.additionalSecretOutputs), b.protect), where
        assert (a.provider, sorted(a.dependencies), list(a.ignoreChanges), a.retainOnDelete, a.parent) == \
               (b.provider, sorted(b.dependencies), list(b.ignoreChanges), b.retainOnDelete, b.parent), where
        assert not b.aliases and not b.aliasURNs, where
        # What the typed class aliases are other types of this kind, none of which the program registers.
        aliased = {x.spec.type for x in a.aliases}
        assert all(t.endswith(f":{m['kind']}") and t != a.type for t in aliased), where
        assert not aliased & rendered, where
        all_aliased |= aliased
    assert "kubernetes:extensions/v1beta1:Deployment" in all_aliased  # the typed classes do send aliases
    secret = requests[f"raw-{len(manifests) - 1}"]
    assert list(secret.additionalSecretOutputs) == ["data", "stringData"]
    assert rpc.is_rpc_secret(rpc.deserialize_properties(secret.object)["stringData"])
