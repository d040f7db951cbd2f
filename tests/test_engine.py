"""The offline engine: what the mocks capture must match what the real engine would record."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s
import pytest

from fleet.engine.mocks import UNKNOWN, DuplicateUrnError, run
from fleet.plan import capture
from fleet.spec.loader import load
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


def test_fast_stack_traces_are_the_sdks(monkeypatch: pytest.MonkeyPatch) -> None:
    import contextlib

    from fleet.engine import mocks

    requests: list[list] = []
    original = mocks.CaptureMonitor.RegisterResource

    def record(self: mocks.CaptureMonitor, request: object) -> object:
        requests[-1].append((request.name, request.stackTrace, request.sourcePosition))  # type: ignore[attr-defined]
        return original(self, request)

    monkeypatch.setattr(mocks.CaptureMonitor, "RegisterResource", record)

    def program() -> None:
        Outer("a")
        pulumi.CustomResource("test:index:Thing", "top", {"a": 1})  # registered outside any constructor

    for fast in (True, False):  # one call site: the test's own frame is in the traces
        if not fast:
            monkeypatch.setattr(mocks, "fast_stack_traces", contextlib.nullcontext)
        requests.append([])
        run(program, project="p", stack="s")
    fast, plain = (sorted(r, key=lambda x: x[0]) for r in requests)
    assert fast == plain
    frames = {name: len(trace.frames) for name, trace, _ in plain}
    assert frames["cm"] > 3 and frames["a-inner"] > 3, frames  # real traces were compared


def test_a_run_keeps_to_one_core_and_gives_the_others_back() -> None:
    import os

    from fleet.engine.mocks import run_core

    before = os.sched_getaffinity(0)
    seen: list[set[int]] = []
    run(lambda: seen.append(os.sched_getaffinity(0)), project="p", stack="s")
    assert seen == [{run_core(before)} if len(before) > 1 else before]
    assert os.sched_getaffinity(0) == before
