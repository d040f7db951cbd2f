"""The GPU nodes a pool has when `pulumi up` runs, and the Capacity Block schedule as AWS will accept it then
(docs/capacity.md). pulumi-kubernetes awaits every Deployment until its pods are ready, so the models' minimum replicas
must fit these nodes; the policy pack proves it on the rendered resources (rule E15), this module says what to render."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from fleet.aws_limits import CAPACITY_BLOCK_DRAIN
from fleet.spec.stack import GpuPool

Phase = Literal["before", "active", "over"]


def block_drain_at(pool: GpuPool) -> dt.datetime:
    assert pool.capacity_block_ends_at is not None
    return pool.capacity_block_ends_at - CAPACITY_BLOCK_DRAIN


def block_phase(pool: GpuPool, now: dt.datetime) -> Phase:
    """Where `now` falls in the pool's Capacity Block: before it starts, while it runs (until the drain), or after."""
    assert pool.capacity_block_starts_at is not None
    if now < pool.capacity_block_starts_at:
        return "before"
    return "active" if now < block_drain_at(pool) else "over"


@dataclass(frozen=True)
class ScheduledStep:
    step: str                  # start | drain
    at: dt.datetime
    desired: int


def block_schedule(pool: GpuPool, now: dt.datetime) -> list[ScheduledStep]:
    """The one-time scheduled actions still ahead of `now`: EC2 Auto Scaling refuses a start time in the past
    (fleet.aws_limits.SCHEDULE_DOC), so a step whose time has come is not rendered — the group already took its size
    (or, created during the block, starts at it: `block_nodes_at_creation`)."""
    assert pool.capacity_block_starts_at is not None
    steps = [ScheduledStep("start", pool.capacity_block_starts_at, pool.max_size), ScheduledStep("drain", block_drain_at(pool), 0)]
    return [s for s in steps if s.at > now]


def block_nodes_at_creation(pool: GpuPool, now: dt.datetime) -> int:
    """A Capacity Block group's desired size when it is created `now`: the block's instances while it runs, else 0."""
    return pool.max_size if block_phase(pool, now) == "active" else 0


def nodes_at_up(pool: GpuPool, node_autoscaler: str, now: dt.datetime) -> int:
    """The most nodes the pool can have while `pulumi up` waits for its pods: a Capacity Block's instances only while it
    runs; Karpenter's or the Cluster Autoscaler's pools up to their maximum; a group nothing scales, its desired size."""
    if pool.capacity_type == "capacity-block":
        return block_nodes_at_creation(pool, now)
    if pool.provisioner == "karpenter" or node_autoscaler == "cluster-autoscaler":
        return pool.max_size
    return pool.desired_size if pool.desired_size is not None else pool.min_size
