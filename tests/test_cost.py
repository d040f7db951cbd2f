"""GPU, node and $/hour estimates (fleet/cost.py) and the price catalog they read."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from fleet import cost
from fleet.catalog import gpu_instance, gpu_instance_types, prices
from fleet.spec.load import load
from fleet.spec.resolved import FleetSpec, ResolvedModel
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def prod() -> FleetSpec:
    return load("prod", ROOT)


def model(spec: FleetSpec, team: str, name: str) -> ResolvedModel:
    return next(m for m in spec.models if m.team == team and m.name == name)


def test_the_price_catalog_covers_three_regions_with_dated_sourced_rows() -> None:
    table = prices()
    assert {"us-east-1", "us-west-2", "eu-west-1"} <= {region for _, region in table}
    for (itype, region), p in table.items():
        assert itype in gpu_instance_types(), f"{itype} is not in fleet/catalog/gpus.yaml"
        assert p.on_demand > 0 and (p.spot is None or 0 < p.spot <= p.on_demand), (itype, region)
        assert p.source and dt.date.fromisoformat(p.as_of)
    # every catalog type is priced somewhere, except the one the source gives no on-demand price for
    assert set(gpu_instance_types()) - {itype for itype, _ in table} == {"p5e.48xlarge"}


def test_pods_pack_onto_nodes_by_gpus_per_node_and_multi_node_replicas_take_whole_nodes(prod: FleetSpec) -> None:
    qwen = model(prod, "search", "qwen-3b")                  # 1 GPU per pod on g6.2xlarge (1 GPU per node)
    assert (qwen.gpus_per_pod, qwen.instance.gpus) == (1, 1) and cost.nodes_for(qwen, 6) == 6
    four_gpu = gpu_instance("g6e.12xlarge")
    assert four_gpu is not None
    packed = dataclasses.replace(qwen, instance=four_gpu)     # four 1-GPU pods share a 4-GPU node
    assert [cost.nodes_for(packed, n) for n in (1, 4, 5, 8)] == [1, 1, 2, 2]
    big = model(prod, "research", "llama-405b")               # two 8-GPU nodes per replica
    assert big.nodes_per_replica == 2 and cost.nodes_for(big, 1) == 2 and cost.nodes_for(big, 3) == 6


def test_the_pool_capacity_type_picks_the_rate(prod: FleetSpec) -> None:
    qwen = model(prod, "search", "qwen-3b")
    price = prices()[("g6.2xlarge", "us-east-1")]
    assert cost.hourly_rate(qwen, "us-east-1").usd_per_hour == price.on_demand
    spot = dataclasses.replace(qwen, pool=qwen.pool.model_copy(update={"capacity_type": "spot"}))
    assert cost.hourly_rate(spot, "us-east-1").usd_per_hour == price.spot
    block = model(prod, "assistant", "llama-70b")
    rate = cost.hourly_rate(block, "us-east-1")
    assert rate.usd_per_hour is None and "capacity block" in (rate.note or "")
    missing = cost.hourly_rate(qwen, "eu-west-1")              # the snapshot lists no g6 offering in eu-west-1
    assert missing.usd_per_hour is None and "no price for g6.2xlarge in eu-west-1" in (missing.note or "")


def test_team_totals_quota_headroom_and_unpriced_models(prod: FleetSpec) -> None:
    est = cost.estimate(prod, today=dt.date(2026, 11, 28))
    search = next(t for t in est.teams if t.team == "search")
    g62 = prices()[("g6.2xlarge", "us-east-1")].on_demand
    # qwen-3b 2..6 replicas + bge-m3 2 replicas, one g6.2xlarge each
    assert (search.nodes_min, search.nodes_max) == (4, 8)
    assert search.usd_per_hour_min == round(4 * g62, 2) and search.usd_per_hour_max == round(8 * g62, 2)
    assert search.quota_left_at_max == search.gpu_quota - search.gpus_max
    assistant = next(t for t in est.teams if t.team == "assistant")
    assert assistant.unpriced_models == ["llama-70b", "qwen3-32b-prefill", "qwen3-32b-decode"]   # capacity-block pool
    assert any(w.startswith("assistant/llama-70b: unpriced") for w in est.warnings)
    h100 = next(p for p in est.pools if p.pool == "h100")
    assert h100.headroom == h100.gpu_capacity - h100.gpus_at_max
    assert est.total("usd_per_hour_max") == round(sum(t.usd_per_hour_max for t in est.teams), 2)


def test_a_price_older_than_the_stack_limit_is_a_warning_once_per_instance_type(prod: FleetSpec) -> None:
    fresh = cost.estimate(prod, today=dt.date(2026, 11, 28))
    assert not any("days old" in w for w in fresh.warnings)
    late = cost.estimate(prod, today=dt.date(2027, 6, 1))
    stale = [w for w in late.warnings if "days old" in w]
    assert stale and len(stale) == len(set(stale))
    assert any("price of g6.2xlarge in us-east-1 is 185 days old (as of 2026-11-28, limit 90)" in w for w in stale)
