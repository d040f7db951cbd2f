"""components.aws registers AWS resources and calls AWS functions without pulumi-aws's typed classes: the engine
must receive what the typed class would send (token, properties, provider version, secret outputs, options;
for invokes the whole request). Each raw registration of the real program is paired with a twin made by the
typed class from the same arguments, for the bundled stacks and every cache backend and pool kind."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as typed_aws
import pytest

import components.aws as raw_aws
from fleet.engine import mocks
from fleet.plan import capture
from fleet.spec.loader import load
from tests.conftest import ROOT, copy_project, edit, karpenter_l40s, s3_cache
from tests.test_kube_registration import plain

TYPED: dict[str, Any] = {
    "aws:iam/role:Role": typed_aws.iam.Role,
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": typed_aws.iam.RolePolicyAttachment,
    "aws:iam/rolePolicy:RolePolicy": typed_aws.iam.RolePolicy,
    "aws:eks/accessEntry:AccessEntry": typed_aws.eks.AccessEntry,
    "aws:eks/nodeGroup:NodeGroup": typed_aws.eks.NodeGroup,
    "aws:eks/addon:Addon": typed_aws.eks.Addon,
    "aws:ec2/launchTemplate:LaunchTemplate": typed_aws.ec2.LaunchTemplate,
    "aws:ec2/securityGroup:SecurityGroup": typed_aws.ec2.SecurityGroup,
    "aws:kms/key:Key": typed_aws.kms.Key,
    "aws:efs/fileSystem:FileSystem": typed_aws.efs.FileSystem,
    "aws:efs/mountTarget:MountTarget": typed_aws.efs.MountTarget,
    "aws:efs/accessPoint:AccessPoint": typed_aws.efs.AccessPoint,
    "aws:fsx/lustreFileSystem:LustreFileSystem": typed_aws.fsx.LustreFileSystem,
    "aws:fsx/dataRepositoryAssociation:DataRepositoryAssociation": typed_aws.fsx.DataRepositoryAssociation,
    "aws:s3/bucket:Bucket": typed_aws.s3.Bucket,
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": typed_aws.s3.BucketPublicAccessBlock,
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration":
        typed_aws.s3.BucketServerSideEncryptionConfiguration,
    "aws:s3/bucketVersioning:BucketVersioning": typed_aws.s3.BucketVersioning,
}
TYPED_INVOKES: dict[str, Any] = {
    "aws:eks/getCluster:getCluster": typed_aws.eks.get_cluster_output,
    "aws:index/getCallerIdentity:getCallerIdentity": typed_aws.get_caller_identity_output,
}
MAPS = {"tags", "labels"}  # user keys, not property names


def snake(value: Any, key: str = "") -> Any:
    """Wire-form (camelCase) arguments as the typed classes' snake_case keyword arguments."""
    if isinstance(value, dict) and key not in MAPS:
        return {re.sub(r"(?<!^)(?=[A-Z])", "_", k).lower(): snake(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [snake(v, key) for v in value]
    return value


def variants(tmp: Path) -> list[tuple[str, Path]]:
    """(stack, project root): dev (EFS, managed node groups), prod (FSx, capacity blocks), and edits for the
    S3 backend, an FSx import path, no cache, and a Karpenter pool."""
    fsx_import = copy_project(tmp / "fsx-import")
    edit(fsx_import / "stacks" / "Pulumi.prod.yaml", "    backend: fsx-lustre\n",
         "    backend: fsx-lustre\n    fsx_import_path: s3://models-bucket/hf\n")
    no_cache = copy_project(tmp / "none")
    edit(no_cache / "stacks" / "Pulumi.dev.yaml", "    backend: efs\n    throughput_mibps: 150\n", "    backend: none\n")
    s3 = copy_project(tmp / "s3")
    s3_cache(s3)
    karpenter = copy_project(tmp / "karpenter")
    karpenter_l40s(karpenter)
    return [("dev", ROOT), ("prod", ROOT), ("dev", s3), ("prod", fsx_import), ("dev", no_cache), ("dev", karpenter)]


def test_raw_aws_registrations_and_invokes_equal_the_typed_classes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registered: dict[str, Any] = {}
    invoked: list[Any] = []
    original_register, original_invoke = mocks.CaptureMonitor.RegisterResource, mocks.CaptureMonitor.Invoke

    def record(self: mocks.CaptureMonitor, request: Any) -> Any:
        registered[request.name] = request
        return original_register(self, request)

    def record_invoke(self: mocks.CaptureMonitor, request: Any) -> Any:
        invoked.append(request)
        return original_invoke(self, request)

    monkeypatch.setattr(mocks.CaptureMonitor, "RegisterResource", record)
    monkeypatch.setattr(mocks.CaptureMonitor, "Invoke", record_invoke)
    pairs: list[str] = []
    real_resource, real_invoke = raw_aws.resource, raw_aws.invoke

    def resource(token: str, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions, outputs: Any = ()) -> Any:
        TYPED[token](f"typed-{name}", **snake(props), opts=opts)
        pairs.append(name)
        return real_resource(token, name, props, opts, outputs)

    def invoke(token: str, args: dict[str, Any], opts: Any = None) -> Any:
        TYPED_INVOKES[token](**snake(args), opts=opts)
        return real_invoke(token, args, opts)

    monkeypatch.setattr(raw_aws, "resource", resource)
    monkeypatch.setattr(raw_aws, "invoke", invoke)

    tokens: set[str] = set()
    for stack, root in variants(tmp_path):
        registered.clear()
        invoked.clear()
        pairs.clear()
        capture(load(stack, root))
        assert pairs, (stack, root)
        for name in pairs:
            raw, typed = registered[name], registered[f"typed-{name}"]
            where = f"{root.name}:{name}"
            tokens.add(raw.type)
            assert raw.type == typed.type, where
            assert plain(raw) == plain(typed), where
            for attr in ("version", "protect", "retainOnDelete", "parent", "provider", "deleteBeforeReplace", "custom"):
                assert getattr(raw, attr) == getattr(typed, attr), (where, attr)
            for attr in ("additionalSecretOutputs", "ignoreChanges", "replaceOnChanges"):
                assert list(getattr(raw, attr)) == list(getattr(typed, attr)), (where, attr)
            assert sorted(raw.dependencies) == sorted(typed.dependencies), where
            assert {k: sorted(v.urns) for k, v in raw.propertyDependencies.items()} == \
                   {k: sorted(v.urns) for k, v in typed.propertyDependencies.items()}, where
            # What the typed class aliases (S3's pre-7.0 ...V2 types) is never registered by this program.
            assert not raw.aliases, where
            assert not {a.spec.type for a in typed.aliases} & set(TYPED), where
        # Invokes run concurrently: each request (typed twin and raw) must come in pairs.
        counts = Counter(str(request) for request in invoked)
        assert counts and all(n % 2 == 0 for n in counts.values()), counts
    assert tokens == set(TYPED)  # every AWS type the program can register was compared
