"""What the AWS APIs accept, as small pure rules with their source, shared by the stack loader (an early error naming the
field) and the policy pack (the same rule judged on the resources that reach the engine). docs/capacity.md lists them.

Each constant names the document it restates; re-check them there when AWS changes a limit."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# FSx for Lustre storage capacity by deployment type (FSx API CreateFileSystem, StorageCapacity:
# https://docs.aws.amazon.com/fsx/latest/APIReference/API_CreateFileSystem.html): "For SCRATCH_2, PERSISTENT_2, and
# PERSISTENT_1 deployment types using SSD storage type, the valid values are 1200 GiB, 2400 GiB, and increments of
# 2400 GiB. [...] For SCRATCH_1 deployment type, valid values are 1200 GiB, 2400 GiB, and increments of 3600 GiB."
# PERSISTENT_1 on HDD: increments of 6000 GiB (12 MB/s/TiB) or 1800 GiB (40 MB/s/TiB).
LUSTRE_STORAGE_STEP_GIB = {"SCRATCH_1": 3600, "SCRATCH_2": 2400, "PERSISTENT_1": 2400, "PERSISTENT_2": 2400}
LUSTRE_HDD_STEP_GIB = {12: 6000, 40: 1800}
# PerUnitStorageThroughput (same page): PERSISTENT_1 SSD 50, 100, 200; PERSISTENT_2 125, 250, 500, 1000; HDD 12, 40.
LUSTRE_THROUGHPUT = {"PERSISTENT_1": (50, 100, 200), "PERSISTENT_2": (125, 250, 500, 1000)}
LUSTRE_HDD_THROUGHPUT = (12, 40)
LUSTRE_DEPLOYMENT_DEFAULT = "PERSISTENT_2"   # the deployment type components.model_cache creates
LUSTRE_DOC = "https://docs.aws.amazon.com/fsx/latest/APIReference/API_CreateFileSystem.html"

# Lustre traffic (FSx for Lustre User Guide, "File system access control with Amazon VPC",
# https://docs.aws.amazon.com/fsx/latest/LustreGuide/limit-access-security-groups.html): the file system's security
# group needs inbound AND outbound rules for TCP 988 and TCP 1018-1023, with itself (the file servers talk to each other)
# and with the clients' security group. pulumi-aws removes the default allow-all egress of every aws.ec2.SecurityGroup it
# creates (pulumi/pulumi-aws@v7.51.1:sdk/python/pulumi_aws/ec2/security_group.py, "NOTE on Egress rules"), so the
# outbound rules must be written.
LUSTRE_PORTS = ((988, 988), (1018, 1023))
LUSTRE_SG_DOC = "https://docs.aws.amazon.com/fsx/latest/LustreGuide/limit-access-security-groups.html"
# EFS mount targets (Amazon EFS User Guide, "Using VPC security groups",
# https://docs.aws.amazon.com/efs/latest/ug/network-access.html): the mount target's group allows inbound TCP 2049 (NFS)
# from the clients; the clients' group allows outbound 2049 to it (the EKS cluster security group allows all egress).
NFS_PORT = 2049

# EC2 Auto Scaling scheduled actions (PutScheduledUpdateGroupAction, StartTime:
# https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_PutScheduledUpdateGroupAction.html): a start time in the
# past is refused ("Given start time is in the past"), so a one-time action is only rendered while its time is ahead.
SCHEDULE_DOC = "https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_PutScheduledUpdateGroupAction.html"
# Capacity Blocks in EKS managed node groups (https://docs.aws.amazon.com/eks/latest/userguide/capacity-blocks-mng.html):
# scale the group to zero more than 30 minutes before the block ends, so pods drain before EC2 reclaims the instances.
CAPACITY_BLOCK_DRAIN = dt.timedelta(minutes=45)


def lustre_storage_problem(deployment_type: str, size_gib: int, throughput: int | None = None, storage_type: str = "SSD") -> str | None:
    """Why AWS would refuse this Lustre storage capacity, or None."""
    if storage_type == "HDD":
        step = LUSTRE_HDD_STEP_GIB.get(throughput or 0)
        if step is None:
            return f"HDD storage takes per_unit_storage_throughput {' or '.join(map(str, LUSTRE_HDD_THROUGHPUT))} MB/s/TiB"
        return None if size_gib > 0 and size_gib % step == 0 else f"{deployment_type} HDD at {throughput} MB/s/TiB takes multiples of {step} GiB"
    step = LUSTRE_STORAGE_STEP_GIB.get(deployment_type)
    if step is None:
        return f"unknown deployment type {deployment_type}"
    if size_gib not in (1200, 2400) and (size_gib <= 0 or size_gib % step):
        return f"{deployment_type} takes 1200 GiB, 2400 GiB or a multiple of {step} GiB, not {size_gib}"
    allowed = LUSTRE_THROUGHPUT.get(deployment_type)
    if allowed is not None and throughput is not None and throughput not in allowed:
        return f"{deployment_type} takes per_unit_storage_throughput {', '.join(map(str, allowed))} MB/s/TiB, not {throughput}"
    return None


def nearest_lustre_sizes(deployment_type: str, size_gib: int) -> tuple[int, int]:
    """The valid sizes just below and above `size_gib` (for the fix in an error)."""
    step = LUSTRE_STORAGE_STEP_GIB.get(deployment_type, 2400)
    valid = sorted({1200, 2400, *range(step, max(size_gib, step) + 2 * step, step)})
    below = max((v for v in valid if v <= size_gib), default=1200)
    above = min((v for v in valid if v >= size_gib), default=valid[-1])
    return below, above


def _covers(rules: Iterable[Mapping[str, Any]], low: int, high: int, peer: str) -> bool:
    """Some TCP rule covers ports low..high for `peer` ("self" or a security group id, known or not)."""
    for r in rules:
        if str(r.get("protocol", "")).lower() not in ("tcp", "6", "-1", "all"):
            continue
        all_ports = str(r.get("protocol", "")).lower() in ("-1", "all")
        if not all_ports and not (int(r.get("fromPort", -1)) <= low and high <= int(r.get("toPort", -1))):
            continue
        if peer == "self" and r.get("self") is True:
            return True
        if peer == "clients" and (r.get("securityGroups") or r.get("cidrBlocks")):
            return True
    return False


def lustre_security_group_problems(props: Mapping[str, Any]) -> list[str]:
    """An aws.ec2.SecurityGroup that admits Lustre (TCP 988): what it lacks of the FSx for Lustre guide's rules."""
    ingress: Sequence[Mapping[str, Any]] = props.get("ingress") or []
    egress: Sequence[Mapping[str, Any]] = props.get("egress") or []
    out = []
    for direction, rules in (("ingress", ingress), ("egress", egress)):
        for low, high in LUSTRE_PORTS:
            ports = f"TCP {low}" if low == high else f"TCP {low}-{high}"
            for peer, who in (("self", "the file servers (self)"), ("clients", "the clients' security group")):
                if not _covers(rules, low, high, peer):
                    out.append(f"no {direction} rule for {ports} {'from' if direction == 'ingress' else 'to'} {who}")
    return out


def admits_lustre(props: Mapping[str, Any]) -> bool:
    return any(str(r.get("protocol", "")).lower() in ("tcp", "6") and int(r.get("fromPort", -1)) <= 988 <= int(r.get("toPort", -1))
               for r in props.get("ingress") or [])


def schedule_start_problem(start_time: str, now: dt.datetime) -> str | None:
    """Why EC2 Auto Scaling would refuse a scheduled action starting at `start_time` (ISO 8601) when applied `now`."""
    try:
        at = dt.datetime.fromisoformat(start_time.replace("Z", "+00:00"))
    except ValueError:
        return f"startTime {start_time!r} is not an ISO 8601 time (YYYY-MM-DDThh:mm:ssZ)"
    if at.tzinfo is None:
        return f"startTime {start_time} has no time zone (write it in UTC, ending in Z)"
    if at <= now:
        return f"startTime {start_time} is in the past ({now.strftime('%Y-%m-%dT%H:%M:%SZ')}): EC2 Auto Scaling refuses it"
    return None
