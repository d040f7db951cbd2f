"""Run a Pulumi program under the SDK's unit-test mocks and capture every registration as the engine sees it.

Only public SDK API: `reset_options`, `set_mocks`, `set_all_config`, the `pulumi.runtime.test` runner, and a
`MockMonitor` subclass. What the stock monitor does differently from the engine, and how this one follows the
engine instead (docs/offline-engine.md):
- URNs: the engine qualifies a type with the whole chain of parent types and leaves the root stack out; the
  stock monitor keeps only the last parent type. `make_urn` builds them the engine's way.
- Duplicate URNs: the engine refuses them; the stock monitor overwrites. Here they fail the run.
- Resource options (protect, retainOnDelete, dependsOn, provider, ignoreChanges, customTimeouts) are kept from
  the registration request, so tests, policies and reports see them.
- Preview: in preview mode the mocks echo only the inputs, so every output a provider computes (ids, ARNs,
  status) stays unknown, as in `pulumi preview`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.output import Unknown
from pulumi.runtime import mocks as pmocks
from pulumi.runtime import rpc

UNKNOWN = rpc.UNKNOWN
SECRET_MASK = "[secret]"
STACK_TYPE = "pulumi:pulumi:Stack"


class DuplicateUrnError(Exception):
    pass


@dataclass
class Captured:
    """One registered resource as the engine records it (and sends it to a policy pack)."""

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
    custom_timeouts: dict[str, int] = field(default_factory=dict)   # create/update/delete in seconds, where set

    @property
    def analyzed(self) -> bool:
        """What the engine sends to a policy pack: custom resources other than providers."""
        return self.custom and not self.type.startswith("pulumi:providers:")

    @property
    def is_kubernetes(self) -> bool:
        return self.analyzed and self.type.startswith("kubernetes:") and "apiVersion" in self.inputs


def plain(value: Any, path: str, secrets: list[str]) -> Any:
    """Deserialised inputs → plain data: unknowns become the engine's UNKNOWN sentinel, secrets are masked
    (their paths recorded), integral floats (the wire has only doubles) become ints."""
    if isinstance(value, (Unknown, pulumi.Resource)):
        return UNKNOWN
    if rpc.is_rpc_secret(value):
        secrets.append(path)
        return _mask(rpc.unwrap_rpc_secret(value))
    if isinstance(value, dict):
        return {k: plain(v, f"{path}.{k}" if path else k, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v, f"{path}[{i}]", secrets) for i, v in enumerate(value)]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _mask(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _mask(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v) for v in value]
    return SECRET_MASK


def _seconds(duration: str) -> int:
    """A Go duration as the SDK sends custom timeouts ("3600s", "1h30m", "90m") → seconds."""
    total, number = 0.0, ""
    units = {"h": 3600, "m": 60, "s": 1}
    for ch in duration:
        if ch.isdigit() or ch == ".":
            number += ch
        elif ch in units and number:
            total += float(number) * units[ch]
            number = ""
    return int(total + (float(number) if number else 0))


class FleetMocks(pmocks.Mocks):
    """Provider behaviour: echo inputs; outside preview add ids and ARNs; answer the invokes the program makes."""

    def __init__(self, preview: bool, region: str = "us-west-2", account: str = "123456789012") -> None:
        self.preview = preview
        self.region = region
        self.account = account
        self.received = threading.local()   # the inputs of the registration in progress on this thread

    def new_resource(self, args: pmocks.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        self.received.inputs = args.inputs
        state = dict(args.inputs)
        if self.preview:
            return None, state  # ids and computed outputs unknown, as in `pulumi preview`
        rid = f"{args.name}-id"
        if args.typ.startswith("aws:"):
            service = args.typ.split(":")[1].split("/")[0]
            state.setdefault("arn", f"arn:aws:{service}:{self.region}:{self.account}:{args.name}")
            state.setdefault("id", rid)
        if args.typ == "aws:fsx/lustreFileSystem:LustreFileSystem":  # what AWS assigns a file system
            state.setdefault("dnsName", f"{rid}.fsx.{self.region}.amazonaws.com")
            state.setdefault("mountName", "fsxmount")
        if args.typ == "aws:eks/nodeGroup:NodeGroup":  # the Auto Scaling group EKS creates behind a managed node group
            state.setdefault("resources", [{"autoscalingGroups": [{"name": f"eks-{args.name}"}]}])
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
    """The stock mock monitor, with engine-format URNs, duplicate URNs refused and every registration captured."""

    mocks: FleetMocks

    def __init__(self, mocks: FleetMocks, project: str, stack: str) -> None:
        super().__init__(mocks)
        self.project = project
        self.stack = stack
        self.captured: dict[str, Captured] = {}
        self.errors: list[str] = []
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        qualified = type_
        if parent:
            parent_type = parent.split("::")[2]
            if parent_type != STACK_TYPE:
                qualified = f"{parent_type}${type_}"
        return f"urn:pulumi:{self.stack}::{self.project}::{qualified}::{name}"

    def RegisterResource(self, request: Any) -> Any:
        urn = self.make_urn(request.parent, request.type, request.name)
        if request.type == STACK_TYPE:
            return super().RegisterResource(request)
        with self._lock:  # registrations arrive on the SDK's executor threads
            if urn in self._seen:
                self.errors.append(f"duplicate URN {urn}: two resources share type and name under one parent")
            self._seen.add(urn)
        response = super().RegisterResource(request)
        secrets: list[str] = []
        timeouts = request.customTimeouts
        captured = Captured(
            urn=urn, type=request.type, name=request.name, custom=bool(request.custom), parent=request.parent or None,
            inputs=plain(dict(self.mocks.received.inputs), "", secrets), protect=bool(request.protect),
            retain_on_delete=bool(request.retainOnDelete), delete_before_replace=bool(request.deleteBeforeReplace),
            dependencies=list(request.dependencies), provider=request.provider or None,
            ignore_changes=list(request.ignoreChanges), secret_paths=secrets,
            custom_timeouts={k: _seconds(getattr(timeouts, k)) for k in ("create", "update", "delete") if getattr(timeouts, k)},
        )
        with self._lock:
            self.captured[urn] = captured
        return response


def run(program: Callable[[], Any], *, project: str, stack: str, preview: bool = True,
        config: dict[str, str] | None = None, secret_keys: list[str] | None = None,
        region: str = "us-west-2") -> list[Captured]:
    """Run `program()` under mocks, with `config` as the engine's config (values as the engine hands them:
    strings, structured values as JSON, secrets listed in `secret_keys`), and return every captured resource
    sorted by URN (the SDK registers concurrently, so registration order differs between runs)."""
    mocks = FleetMocks(preview=preview, region=region)
    monitor = CaptureMonitor(mocks, project, stack)
    pulumi.runtime.reset_options(project=project, stack=stack, preview=preview)
    pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=preview, monitor=monitor)
    pulumi.runtime.set_all_config(config or {}, secret_keys or [])
    def body() -> None:  # the SDK's test runner awaits what the program returns: a program returns nothing here
        program()

    pulumi.runtime.test(body)()
    if monitor.errors:
        raise DuplicateUrnError("; ".join(monitor.errors))
    return sorted(monitor.captured.values(), key=lambda c: c.urn)
