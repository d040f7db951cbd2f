"""GPU, node and $/hour estimates per team and stack, from the resolved spec and the price catalog.

Nodes are counted per model: a pod takes `gpus_per_pod` GPUs of a node with `instance.gpus` GPUs, so
`gpus // gpus_per_pod` pods share a node and a replica spans `nodes_per_replica` nodes. Models do not share nodes
in the estimate, so several small models on one pool are priced as an upper bound. The pool's capacity type picks
the rate: on-demand or spot from fleet/catalog/prices.yaml; capacity-block pools stay unpriced (reserved ahead).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

from fleet import clock
from fleet.catalog import Price, gpu_instance, prices
from fleet.node_capacity import nodes_at_up
from fleet.spec.resolved import FleetSpec, ResolvedModel


def usd(value: float) -> str:
    """Dollar figures as plan and diff print them: `$1,234.56`."""
    return f"${value:,.2f}"


UNPRICED = "unpriced"


def usd_or_unpriced(value: float | None, models: int, unpriced: int) -> str:
    """A $/hour figure over `models` models of which `unpriced` have no rate: `unpriced` when none has one (never
    `$0.00`), `$7.82 + 1 unpriced` when some lack one (the sum covers the priced ones only), else `$7.82`."""
    if value is None or (models > 0 and unpriced >= models):
        return UNPRICED
    return usd(value) + (f" + {unpriced} {UNPRICED}" if unpriced else "")


def nodes_for(model: ResolvedModel, replicas: int) -> int:
    pods = replicas * model.nodes_per_replica
    per_node = max(1, model.instance.gpus // model.gpus_per_pod)
    return math.ceil(pods / per_node)


@dataclass(frozen=True)
class Rate:
    usd_per_hour: float | None
    price: Price | None
    note: str | None          # why there is no rate, when there is none


def hourly_rate(model: ResolvedModel, region: str) -> Rate:
    capacity = model.pool.capacity_type
    if capacity == "capacity-block":
        return Rate(None, None, f"pool {model.pool.name} uses a capacity block, priced at reservation")
    price = prices().get((model.instance.instance_type, region))
    if price is None:
        return Rate(None, None, f"no price for {model.instance.instance_type} in {region} in fleet/catalog/prices.yaml")
    rate = price.on_demand if capacity == "on-demand" else price.spot
    if rate is None:
        return Rate(None, price, f"no spot price for {model.instance.instance_type} in {region} in fleet/catalog/prices.yaml")
    return Rate(rate, price, None)


@dataclass
class TeamCost:
    team: str
    gpu_quota: int
    models: int
    gpus_min: int = 0
    gpus_max: int = 0
    nodes_min: int = 0
    nodes_max: int = 0
    usd_per_hour_min: float = 0.0
    usd_per_hour_max: float = 0.0
    unpriced_models: list[str] = field(default_factory=list)

    @property
    def quota_left_at_max(self) -> int:
        return self.gpu_quota - self.gpus_max

    @property
    def priced(self) -> bool:
        """Whether any of the team's models has a rate; a team with none has no $/hour figure at all."""
        return len(self.unpriced_models) < self.models


@dataclass(frozen=True)
class PoolHeadroom:
    pool: str
    capacity_type: str
    gpu_capacity: int          # GPUs at the pool's max size
    gpus_at_max: int           # GPUs its models need at max replicas
    headroom: int              # what is left for rollouts (spare_gpus) and new models
    gpus_at_up: int = 0        # GPUs it can have while `pulumi up` waits for the pods (fleet.node_capacity.nodes_at_up)
    gpus_at_min: int = 0       # GPUs its models need at min replicas (what `up` waits for; policy E15 packs them on nodes)


@dataclass(frozen=True)
class CostEstimate:
    teams: list[TeamCost]
    pools: list[PoolHeadroom]
    spare_gpus: int
    warnings: list[str]

    def total(self, attr: str) -> float:
        value = sum(getattr(t, attr) for t in self.teams)
        return round(value, 2) if isinstance(value, float) else value

    @property
    def unpriced_models(self) -> int:
        return sum(len(t.unpriced_models) for t in self.teams)

    @property
    def all_unpriced(self) -> bool:
        """Models to run and not one of them priced: every $/hour of the stack is unknown, not zero."""
        models = sum(t.models for t in self.teams)
        return models > 0 and self.unpriced_models >= models


def estimate(spec: FleetSpec, today: dt.date | None = None) -> CostEstimate:
    """Per-team GPUs, nodes and $/hour at min and max replicas, quota use, pool headroom, warnings."""
    today = today or dt.date.today()
    region = spec.config.region
    warnings: list[str] = []
    stale: set[tuple[str, str]] = set()
    teams = []
    for team in spec.teams:
        row = TeamCost(team=team.name, gpu_quota=team.gpu_quota, models=len(team.models))
        for m in team.models:
            row.gpus_min += m.min_replicas * m.gpus_per_replica
            row.gpus_max += m.max_replicas * m.gpus_per_replica
            nodes_min, nodes_max = nodes_for(m, m.min_replicas), nodes_for(m, m.max_replicas)
            row.nodes_min += nodes_min
            row.nodes_max += nodes_max
            rate = hourly_rate(m, region)
            if rate.usd_per_hour is None:
                row.unpriced_models.append(m.name)
                warnings.append(f"{team.name}/{m.name}: unpriced — {rate.note}")
            else:
                row.usd_per_hour_min += nodes_min * rate.usd_per_hour
                row.usd_per_hour_max += nodes_max * rate.usd_per_hour
            if rate.price is not None and (rate.price.instance_type, region) not in stale:
                age = (today - dt.date.fromisoformat(rate.price.as_of)).days
                if age > spec.config.price_max_age_days:
                    stale.add((rate.price.instance_type, region))
                    warnings.append(f"price of {rate.price.instance_type} in {region} is {age} days old (as of "
                                    f"{rate.price.as_of}, limit {spec.config.price_max_age_days}) — refresh "
                                    "fleet/catalog/prices.yaml")
        row.usd_per_hour_min = round(row.usd_per_hour_min, 2)
        row.usd_per_hour_max = round(row.usd_per_hour_max, 2)
        teams.append(row)
    result = CostEstimate(teams=teams, pools=pool_headroom(spec), spare_gpus=spec.config.spare_gpus, warnings=warnings)
    if result.all_unpriced:
        warnings.insert(0, f"no model of this stack is priced in {region}: its $/hour is unpriced (the reasons follow) — "
                           f"add the region's rows with `vllm-fleet prices refresh --regions {region}`")
    return result


def pool_headroom(spec: FleetSpec) -> list[PoolHeadroom]:
    """Per pool: GPU capacity at max size, GPUs the models need at max replicas, and what is left for rollouts."""
    out = []
    now = clock.now()
    for pool in spec.config.gpu_pools:
        used = sum(m.max_replicas * m.gpus_per_replica for m in spec.models if m.pool.name == pool.name)
        instance = gpu_instance(pool.instance_types[0])
        assert instance is not None  # the loader refuses instance types missing from the catalog
        capacity = pool.max_size * instance.gpus
        at_up = nodes_at_up(pool, spec.config.node_autoscaler.resolved_kind(list(spec.config.gpu_pools)), now) * instance.gpus
        at_min = sum(m.min_replicas * m.gpus_per_replica for m in spec.models if m.pool.name == pool.name)
        out.append(PoolHeadroom(pool=pool.name, capacity_type=pool.capacity_type, gpu_capacity=capacity, gpus_at_max=used,
                                headroom=capacity - used, gpus_at_up=at_up, gpus_at_min=at_min))
    return out
