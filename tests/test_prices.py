"""`vllm-fleet prices refresh` on recorded AWS responses (tests/prices/SOURCES.md), and the shipped price catalog."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from fleet import prices
from fleet.catalog import CATALOG_DIR, gpu_instance_types
from fleet.cli import main
from fleet.yamlsrc import safe_load

FIXTURES = Path(__file__).parent / "prices"
GET_PRODUCTS = FIXTURES / "get-products-c5ad.2xlarge-af-south-1.json"
SPOT = FIXTURES / "describe-spot-price-history-m1.xlarge-us-west-1.json"
OFFER = FIXTURES / "offer-us-west-2-2018.json"


def test_a_recorded_get_products_entry_is_read_and_an_unused_reservation_is_not_taken_for_the_on_demand_price() -> None:
    (record,) = prices.records_from_price_list([json.loads(GET_PRODUCTS.read_text())])
    attrs = record["product"]["attributes"]
    assert (attrs["instanceType"], attrs["regionCode"], prices._hourly_usd(record["terms"])) == ("c5ad.2xlarge", "af-south-1", 0.468)
    skipped: list[str] = []
    assert prices.on_demand_prices([record], "pricing:GetProducts", {"c5ad.2xlarge"}, skipped) == []
    assert skipped == ["c5ad.2xlarge in af-south-1: skipped, capacitystatus is 'UnusedCapacityReservation', not 'Used'"]
    # with the status AWS gives the plain on-demand product, the same entry is priced from its OnDemand term
    used = json.loads(json.dumps(record).replace("UnusedCapacityReservation", "Used"))
    (od,) = prices.on_demand_prices([used], "pricing:GetProducts", {"c5ad.2xlarge"})
    assert (od.usd, od.source) == (0.468, "pricing:GetProducts (AmazonEC2 offer 20240508191027)")


def test_an_offer_file_prices_no_windows_sql_or_dedicated_product() -> None:
    offer = json.loads(OFFER.read_text())
    records = list(prices.records_from_offer_file(offer))
    types = {r["product"]["attributes"].get("instanceType") for r in records} - {None}
    skipped: list[str] = []
    assert prices.on_demand_prices(records, "offer", types, skipped) == []
    assert sorted(skipped) == [
        "c3.large in US West (Oregon): skipped, tenancy is 'Dedicated', not 'Shared'",
        "c4.8xlarge in US West (Oregon): skipped, operatingSystem is 'Windows', not 'Linux'",
        "c5.xlarge in US West (Oregon): skipped, operatingSystem is 'Windows', not 'Linux'",
        "d2.8xlarge in US West (Oregon): skipped, operatingSystem is 'Windows', not 'Linux'",
        "h1.2xlarge in US West (Oregon): skipped, tenancy is 'Dedicated', not 'Shared'",
        "i3.metal in US West (Oregon): skipped, operatingSystem is 'Windows', not 'Linux'"]


def test_the_lowest_spot_price_across_the_regions_zones_and_no_local_zone() -> None:
    history = json.loads(SPOT.read_text())["SpotPriceHistory"]
    (spot,) = prices.spot_prices(history, "ec2:DescribeSpotPriceHistory", {"m1.xlarge"})
    assert (spot.region, spot.usd, spot.zone) == ("us-west-1", 0.08, "us-west-1a")
    local = [dict(history[0], AvailabilityZone="us-west-2-lax-1a", SpotPrice="0.010000")]
    assert prices.spot_prices(local, "x", {"m1.xlarge"}) == []


def stubbed(service: str, region: str) -> tuple[object, Stubber]:
    client = boto3.client(service, region_name=region, aws_access_key_id="x", aws_secret_access_key="x")
    return client, Stubber(client)


def test_refresh_asks_get_products_and_the_spot_history_with_the_recorded_answers() -> None:
    pricing, pstub = stubbed("pricing", "us-east-1")
    filters = [{"Type": "TERM_MATCH", "Field": "instanceType", "Value": "m1.xlarge"}]
    filters += [{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in prices.PLAIN_LINUX.items()]
    recorded = json.loads(GET_PRODUCTS.read_text())
    pstub.add_response("get_products", recorded, {"ServiceCode": "AmazonEC2", "Filters": filters, "FormatVersion": "aws_v1"})
    ec2, estub = stubbed("ec2", "us-west-1")
    now = dt.datetime(2014, 1, 6, 8, 9, 10, tzinfo=dt.UTC)
    history = json.loads(SPOT.read_text())
    for item in history["SpotPriceHistory"]:
        item["Timestamp"] = dt.datetime.fromisoformat(item["Timestamp"].replace("Z", "+00:00"))
    estub.add_response("describe_spot_price_history", history,
                       {"InstanceTypes": ["m1.xlarge"], "ProductDescriptions": ["Linux/UNIX"], "StartTime": now, "EndTime": now})
    with pstub, estub:
        on_demand, spot, skipped = prices.fetch(["m1.xlarge"], ["us-west-1"], pricing, lambda r: ec2, now)
    pstub.assert_no_pending_responses()
    estub.assert_no_pending_responses()
    assert on_demand == [] and skipped == []          # the recorded entry is another type: nothing priced from it
    assert [(s.instance_type, s.region, s.usd) for s in spot] == [("m1.xlarge", "us-west-1", 0.08)]
    assert spot[0].source == "ec2:DescribeSpotPriceHistory (us-west-1a at 2014-01-06T04:32:53+00:00)"
    result = prices.rows(on_demand, spot, None, dt.date(2026, 12, 7))
    assert result.rows == [] and result.notes == [
        "m1.xlarge in us-west-1: a spot price but no on-demand price was read — no row written"]


def test_a_region_the_account_has_not_enabled_gives_no_spot_price_and_stops_nothing() -> None:
    pricing, pstub = stubbed("pricing", "us-east-1")
    filters = [{"Type": "TERM_MATCH", "Field": "instanceType", "Value": "m1.xlarge"}]
    filters += [{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in prices.PLAIN_LINUX.items()]
    pstub.add_response("get_products", {"FormatVersion": "aws_v1", "PriceList": []},
                       {"ServiceCode": "AmazonEC2", "Filters": filters, "FormatVersion": "aws_v1"})
    ec2, estub = stubbed("ec2", "me-south-1")
    estub.add_client_error("describe_spot_price_history", service_error_code="OptInRequired", http_status_code=401)
    with pstub, estub:
        on_demand, spot, skipped = prices.fetch(["m1.xlarge"], ["me-south-1"], pricing, lambda r: ec2, dt.datetime.now(dt.UTC))
    assert (on_demand, spot) == ([], [])
    assert skipped == ["me-south-1: no spot price read (OptInRequired: the region is not enabled for this account) — its rows "
                       "get spot: null"]


def test_rows_carry_both_sources_and_the_day_they_were_read_and_merge_keeps_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    shutil.copy(CATALOG_DIR / "prices.yaml", path)
    before = safe_load(path.read_text())["prices"]
    od = prices.OnDemand("g6.xlarge", "us-west-1", 0.468, "pricing:GetProducts (AmazonEC2 offer 20240508191027)")
    sp = prices.Spot("g6.xlarge", "us-west-1", 0.08, "us-west-1a", "ec2:DescribeSpotPriceHistory (us-west-1a at 2014-01-06)")
    result = prices.rows([od], [sp], {"us-west-1"}, dt.date(2026, 12, 7))
    assert result.rows == [{"instance_type": "g6.xlarge", "region": "us-west-1", "on_demand": 0.468, "spot": 0.08,
                            "source": "pricing:GetProducts (AmazonEC2 offer 20240508191027); spot: ec2:DescribeSpotPriceHistory "
                                      "(us-west-1a at 2014-01-06)", "as_of": "2026-12-07"}]
    changed = prices.merge(path, result.rows)
    assert [old for old, _ in changed] == [next((r for r in before if (r["instance_type"], r["region"]) == ("g6.xlarge", "us-west-1")), None)]
    text = path.read_text()
    assert text.startswith((CATALOG_DIR / "prices.yaml").read_text()[:200])            # the header stays
    after = safe_load(text)["prices"]
    keys = [(r["instance_type"], r["region"]) for r in after]
    assert keys == sorted(keys) and ("g6.xlarge", "us-west-1") in keys
    assert len(after) == len({(r["instance_type"], r["region"]) for r in before} | {("g6.xlarge", "us-west-1")})
    untouched = [r for r in before if (r["instance_type"], r["region"]) != ("g6.xlarge", "us-west-1")]
    assert all(r in after for r in untouched)                                          # anchors resolve to the same source


def test_the_command_reads_recorded_files_and_bad_input_is_exit_2_without_a_traceback(tmp_path: Path, capsys) -> None:
    assert main(["prices", "refresh", "--from-file", str(GET_PRODUCTS), str(SPOT), "--dry-run"]) == 0
    assert "no on-demand price was read for the catalog's GPU types" in capsys.readouterr().out
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["prices", "refresh", "--from-file", str(bad)]) == 2
    assert f"--from-file {bad}: not JSON" in capsys.readouterr().err
    other = tmp_path / "other.json"
    other.write_text('{"Reservations": []}')
    assert main(["prices", "refresh", "--from-file", str(other)]) == 2
    assert "neither PriceList, products/terms nor SpotPriceHistory" in capsys.readouterr().err
    assert main(["prices", "refresh", "--regions", "Mars", "--from-file", str(SPOT)]) == 2
    assert "--regions Mars: not a region name" in capsys.readouterr().err


def test_without_credentials_the_refresh_says_how_to_give_them(monkeypatch, capsys, tmp_path: Path) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    assert main(["prices", "refresh", "--regions", "us-east-1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("prices refresh: no AWS credentials — configure the standard chain") and "Traceback" not in err


def test_every_commercial_region_offering_a_catalog_type_has_its_rows() -> None:
    rows = safe_load((CATALOG_DIR / "prices.yaml").read_text())["prices"]
    regions = {r["region"] for r in rows}
    assert all(prices.REGION_RE.match(r) and not r.startswith(("us-gov-", "cn-")) for r in regions)
    assert len(regions) >= 25
    assert {"ap-northeast-1", "eu-central-1", "ap-south-1", "sa-east-1", "me-central-1"} <= regions
    covered = {r["instance_type"] for r in rows}
    assert set(gpu_instance_types()) - covered == {"p5e.48xlarge"}


@pytest.mark.parametrize("name", ["nope", "us-east-1a"])
def test_a_zone_or_garbage_is_not_a_region(name: str) -> None:
    assert not prices.REGION_RE.match(name)
