"""The offline engine: what the mocks capture must match what the real engine would record."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s
import pytest

from fleet.offline.engine import UNKNOWN, DuplicateUrnError, run
from fleet.offline.plan import capture
from fleet.spec.load import load
from tests.conftest import ROOT


class Outer(pulumi.ComponentResource):
    def __init__(self, name: str) -> None:
        super().__init__("test:index:Outer", name)
        Inner(f"{name}-inner", pulumi.ResourceOptions(parent=self))
        self.register_outputs({})


class Inner(pulumi.ComponentResource):
    def __init__(self, name: str, opts: pulumi.ResourceOptions) -> None:
        super().__init__("test:index:Inner", name, None, opts)
        k8s.core.v1.ConfigMap("cm", metadata={"name": "cm"}, data={"a": "1"},
                              opts=pulumi.ResourceOptions(parent=self, protect=True, retain_on_delete=True))
        self.register_outputs({})


def test_urns_carry_the_whole_parent_type_chain_without_the_stack() -> None:
    captured = run(lambda: Outer("o"), project="p", stack="s")
    urns = [c.urn for c in captured]
    assert urns == [
        "urn:pulumi:s::p::test:index:Outer$test:index:Inner$kubernetes:core/v1:ConfigMap::cm",
        "urn:pulumi:s::p::test:index:Outer$test:index:Inner::o-inner",
        "urn:pulumi:s::p::test:index:Outer::o",
    ]
    cm = captured[0]
    assert cm.protect and cm.retain_on_delete
    assert cm.inputs == {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"a": "1"}}


def test_duplicate_urns_fail_the_run_like_the_engine() -> None:
    def program() -> None:
        k8s.core.v1.ConfigMap("same", metadata={"name": "a"})
        k8s.core.v1.ConfigMap("same", metadata={"name": "b"})

    with pytest.raises(DuplicateUrnError, match="duplicate URN urn:pulumi:s::p::kubernetes:core/v1:ConfigMap::same"):
        run(program, project="p", stack="s")


def test_computed_outputs_are_unknown_at_preview_and_known_on_update() -> None:
    spec = load("dev", ROOT)
    preview = {c.name: c for c in capture(spec, preview=True)}
    update = {c.name: c for c in capture(spec, preview=False)}
    ng = "pool-l40s-ng"
    # The node role ARN is computed by AWS: unknown in `pulumi preview`, known after `up`.
    assert preview[ng].inputs["nodeRoleArn"] == UNKNOWN
    assert update[ng].inputs["nodeRoleArn"].startswith("arn:aws:iam:")
    # Values the program sets are known in both.
    assert preview[ng].inputs["amiType"] == update[ng].inputs["amiType"] == "AL2023_x86_64_NVIDIA"


def test_runs_do_not_leak_into_each_other() -> None:
    spec = load("dev", ROOT)
    first = [c.urn for c in capture(spec)]
    second = [c.urn for c in capture(spec)]
    assert first == second
    assert len(first) == len(set(first))


def test_numbers_arrive_as_ints_and_secrets_are_masked() -> None:
    spec = load("dev", ROOT)
    by_name = {c.name: c for c in capture(spec)}
    deploy = by_name["deployment-team-search-qwen-3b"]
    assert deploy.inputs["spec"]["replicas"] == 1 and isinstance(deploy.inputs["spec"]["replicas"], int)
    secret = by_name["secret-team-search-search-api-key"]
    assert secret.inputs["stringData"] == {"value": "[secret]"}
    assert secret.secret_paths == ["stringData"]
