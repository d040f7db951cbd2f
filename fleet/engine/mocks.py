"""Run the Pulumi program under the SDK's unit-test mocks and capture every registration.

What the stock MockMonitor gets wrong, and this one fixes (see ../shared/OFFLINE_ENGINE.md):
- URNs: the engine qualifies a type with the whole chain of parent types and leaves the root stack out;
  the stock monitor keeps only the last parent type. Here URNs are built the engine's way.
- Duplicate URNs: the engine refuses them; the stock monitor silently overwrites. Here they fail the run.
- Resource options (protect, retainOnDelete, dependsOn, provider, ignoreChanges) are recorded from the
  registration request, so tests and policies see them.
- Preview: outputs a provider computes (ARNs, ids, status) are unknown at preview time. In preview mode
  the mocks return only the inputs, so anything derived from a computed output stays unknown, as it
  would in `pulumi preview`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import pulumi
from pulumi.output import Unknown
from pulumi.runtime import mocks as pmocks
from pulumi.runtime import resource as sdk_resource
from pulumi.runtime import rpc, settings
from pulumi.runtime.proto import resource_pb2, source_pb2
from pulumi.runtime.sync_await import _ensure_event_loop, _sync_await

from fleet.gcpause import paused

UNKNOWN = rpc.UNKNOWN
SECRET_MASK = "[secret]"


class DuplicateUrnError(Exception):
    pass


@dataclass
class Captured:
    """One registered resource as the engine would record it for policies."""

    urn: str
    type: str
    name: str
    custom: bool
    parent: str | None
    inputs: dict[str, Any]
    protect: bool = False
    retain_on_delete: bool = False
    delete_before_replace: bool = False
    dependencies: list[str] = field(default_factory=list)
    provider: str | None = None
    ignore_changes: list[str] = field(default_factory=list)
    secret_paths: list[str] = field(default_factory=list)

    @property
    def analyzed(self) -> bool:
        """What the engine sends to a policy pack: custom resources other than providers."""
        return self.custom and not self.type.startswith("pulumi:providers:")

    @property
    def is_kubernetes(self) -> bool:
        return self.analyzed and self.type.startswith("kubernetes:") and "apiVersion" in self.inputs


def _plain(value: Any, path: str, secrets: list[str]) -> Any:
    """Deserialised inputs → plain data: unknowns become the engine's UNKNOWN sentinel, secrets are masked,
    integral floats (the wire has only doubles) become ints."""
    if isinstance(value, Unknown):
        return UNKNOWN
    if rpc.is_rpc_secret(value):
        secrets.append(path)
        return _mask(rpc.unwrap_rpc_secret(value))
    if isinstance(value, dict):
        return {k: _plain(v, f"{path}.{k}" if path else k, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v, f"{path}[{i}]", secrets) for i, v in enumerate(value)]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, pulumi.Resource):
        return UNKNOWN
    return value


def _mask(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _mask(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v) for v in value]
    return SECRET_MASK


class FleetMocks(pmocks.Mocks):
    """Provider behaviour: echo inputs; in update mode add ids and ARNs; answer the few invokes we use."""

    def __init__(self, preview: bool, region: str = "us-west-2", account: str = "123456789012") -> None:
        self.preview = preview
        self.region = region
        self.account = account

    def new_resource(self, args: pmocks.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        state = dict(args.inputs)
        if self.preview:
            return None, state  # ids and computed outputs unknown, as in `pulumi preview`
        rid = f"{args.name}-id"
        if args.typ.startswith("aws:"):
            service = args.typ.split(":")[1].split("/")[0]
            state.setdefault("arn", f"arn:aws:{service}:{self.region}:{self.account}:{args.name}")
            state.setdefault("id", rid)
        return rid, state

    def call(self, args: pmocks.MockCallArgs) -> dict[str, Any]:  # type: ignore[override]
        if args.token == "aws:eks/getCluster:getCluster":
            name = args.args.get("name", "cluster")
            return {
                "name": name,
                "arn": f"arn:aws:eks:{self.region}:{self.account}:cluster/{name}",
                "endpoint": f"https://{name}.gr7.{self.region}.eks.amazonaws.com",
                "certificateAuthorities": [{"data": "LS0tLS1CRUdJTi1DRVJUSUZJQ0FURS0tLS0t"}],
                "identities": [{"oidcs": [{"issuer": f"https://oidc.eks.{self.region}.amazonaws.com/id/EXAMPLE"}]}],
                "vpcConfig": {"clusterSecurityGroupId": "sg-0cluster", "vpcId": "vpc-0example", "subnetIds": []},
                "version": "1.33",
                "roleArn": f"arn:aws:iam::{self.account}:role/{name}-cluster",
            }
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {"accountId": self.account, "arn": f"arn:aws:iam::{self.account}:user/ci", "userId": "AIDA"}
        if args.token == "aws:index/getPartition:getPartition":
            return {"partition": "aws", "dnsSuffix": "amazonaws.com"}
        return {}


class CaptureMonitor(pmocks.MockMonitor):
    def __init__(self, mocks: FleetMocks, project: str, stack: str,
                 on_capture: Callable[[Captured], None] | None = None) -> None:
        super().__init__(mocks)
        self.on_capture = on_capture
        self.project = project
        self.stack = stack
        self.captured: dict[str, Captured] = {}
        self.errors: list[str] = []
        self._reserved: set[str] = set()
        self._lock = threading.Lock()

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        qualified = type_
        if parent:
            parent_type = parent.split("::")[2]
            if parent_type != "pulumi:pulumi:Stack":
                qualified = f"{parent_type}${type_}"
        return f"urn:pulumi:{self.stack}::{self.project}::{qualified}::{name}"

    def RegisterResource(self, request: Any) -> Any:
        """The stock registration, done once: engine-format URN, inputs deserialised a single time and
        shared by the mocks and the capture (the stock monitor would deserialise them again)."""
        urn = self.make_urn(request.parent, request.type, request.name)
        if request.type == "pulumi:pulumi:Stack":
            return resource_pb2.RegisterResourceResponse(urn=urn)
        # Registrations arrive on executor threads: reserve the URN atomically.
        with self._lock:
            if urn in self._reserved:
                self.errors.append(f"duplicate URN {urn}: two resources share type and name under one parent")
            self._reserved.add(urn)
        _ensure_event_loop()
        inputs = rpc.deserialize_properties(request.object)
        args = pmocks.MockResourceArgs(
            typ=request.type, name=request.name, inputs=inputs, provider=request.provider,
            resource_id=request.importId, custom=request.custom or False,
            transforms=pmocks._resolve_callbacks(request.transforms))
        id_, state = self.mocks.new_resource(args)
        obj_proto = _sync_await(rpc.serialize_properties(state, {}))
        secrets: list[str] = []
        plain = _plain(dict(inputs), "", secrets)
        captured = Captured(
            urn=urn, type=request.type, name=request.name, custom=bool(request.custom),
            parent=request.parent or None, inputs=plain, protect=bool(request.protect),
            retain_on_delete=bool(request.retainOnDelete), delete_before_replace=bool(request.deleteBeforeReplace),
            dependencies=list(request.dependencies), provider=request.provider or None,
            ignore_changes=list(request.ignoreChanges), secret_paths=secrets,
        )
        with self._lock:
            self.resources[urn] = pmocks.MockMonitor.ResourceRegistration(urn, id_ or "", state)
            self.captured[urn] = captured
        if self.on_capture is not None:
            self.on_capture(captured)
        return resource_pb2.RegisterResourceResponse(urn=urn, id=id_ or "", object=obj_proto)


@contextlib.contextmanager
def fast_stack_traces() -> Iterator[None]:
    """The SDK sends each registration's stack trace, built with `traceback.extract_stack()` (which stats every
    frame's file and reads its source line) and a pathlib URI per frame: ~16 frames a resource, 0.25 s of a
    100-model plan. The message depends only on the frames' files, lines and function names, so within a run
    it is built from the frames directly, with the SDK's frame selection (up to the third `__init__`) and the
    SDK's own position function memoised on file and line. tests/test_engine.py compares the registered
    traces with the SDK's."""
    original_trace = sdk_resource._get_stack_trace
    original_position = sdk_resource._get_source_position_for_frame

    @functools.lru_cache(maxsize=4096)
    def position(filename: str, lineno: int | None) -> Any:
        return original_position(traceback.FrameSummary(filename, lineno, "", lookup_line=False))

    def stack_trace() -> source_pb2.StackTrace:
        frames = []
        frame: FrameType | None = sys._getframe(0)
        while frame is not None:
            frames.append(frame)
            frame = frame.f_back
        frames.reverse()  # outermost first, as traceback.extract_stack() lists them
        n, i = 0, 0
        for i in range(len(frames) - 1, -1, -1):
            if frames[i].f_code.co_name == "__init__":
                n += 1
                if n == 3:
                    break
        if i < 1:
            return source_pb2.StackTrace()
        return source_pb2.StackTrace(frames=[source_pb2.StackFrame(pc=position(f.f_code.co_filename, f.f_lineno))
                                             for f in reversed(frames[:i])])

    sdk_resource._get_stack_trace = stack_trace
    try:
        yield
    finally:
        sdk_resource._get_stack_trace = original_trace


def run_core(allowed: set[int]) -> int:
    """The core a run keeps to, of the ones the process may use."""
    return min(allowed)


@contextlib.contextmanager
def one_core() -> Iterator[None]:
    """Registration is bound by the GIL: the SDK hands every request to an executor thread and takes the answer
    back. With those threads free to run on any core, each hand-off wakes a thread on another core; kept to one
    core the same work is faster (100-model run, 2 cores: median 1.62 → 1.44 s; the floor 1.33 → 1.16 s). The
    run keeps to the lowest allowed core (fleet.checks puts its checker on the others) and gives the rest back
    after; threads the run starts keep its core."""
    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
    if len(allowed) < 2:
        yield
        return
    os.sched_setaffinity(0, {run_core(allowed)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, allowed)


def run(program: Any, *, project: str, stack: str, preview: bool = True,
        config: dict[str, str] | None = None, secret_keys: list[str] | None = None,
        region: str = "us-west-2", on_capture: Callable[[Captured], None] | None = None) -> list[Captured]:
    """Run `program()` under mocks and return every captured resource, sorted by URN (the SDK registers
    concurrently, so registration order differs between runs; reports and diffs need a stable order).
    `on_capture` is called with each resource as it is registered, from the SDK's executor threads."""
    mocks = FleetMocks(preview=preview, region=region)
    monitor = CaptureMonitor(mocks, project, stack, on_capture)
    settings.ROOT.set(None)  # the root stack resource survives between runs otherwise
    pmocks.set_mocks(mocks, project=project, stack=stack, preview=preview, monitor=monitor)
    pulumi.runtime.set_all_config(config or {}, secret_keys or [])
    settings.SETTINGS.rpc_manager.clear()
    settings.SETTINGS.outputs.clear()
    try:
        loop = asyncio.get_event_loop()
    except RuntimeError:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
    # The SDK sends each registration to the loop's default executor: a pool per run, whose threads end with it,
    # so a process that plans again (plan --base, tests) forks its next checker without stray threads.
    executor = ThreadPoolExecutor(thread_name_prefix="pulumi-mocks")
    loop.set_default_executor(executor)
    try:
        with paused(freeze=True), fast_stack_traces(), one_core():
            _sync_await(pulumi.runtime.stack.run_pulumi_func(program))
    finally:
        executor.shutdown(wait=True)
    if monitor.errors:
        raise DuplicateUrnError("; ".join(monitor.errors))
    return sorted(monitor.captured.values(), key=lambda c: c.urn)
