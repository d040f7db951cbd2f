"""`vllm-fleet prices refresh`: dated, sourced rows of fleet/catalog/prices.yaml from the AWS Price List API and the
EC2 spot price history.

On demand: the Price List API's EC2 products (`pricing:GetProducts`, or a bulk offer file or recorded GetProducts
response given with `--from-file`) that are the plain Linux price of an instance: product family Compute Instance,
Linux, shared tenancy, no pre-installed software, no license, capacity status `Used` (the other statuses price
unused reservations and allocated hosts), and the hourly USD price of their OnDemand term.

Spot: `ec2:DescribeSpotPriceHistory` for Linux/UNIX with start and end time now, which answers the price in force in
each Availability Zone; a row keeps the lowest across the region's zones. Local and Wavelength Zones (`us-west-2-lax-1a`)
are left out: a pool's subnets are in the region's own zones.

A row is written for an (instance type, region) whose on-demand price was found; the rows not refreshed stay as they
are. Every row names its sources and is dated the day it was read.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PRICING_REGION = "us-east-1"           # the Price List query API's endpoint (also served from ap-south-1, eu-central-1)
# The attributes that make a product the plain on-demand Linux price of an instance.
PLAIN_LINUX = {"operatingSystem": "Linux", "tenancy": "Shared", "preInstalledSw": "NA", "capacitystatus": "Used",
               "licenseModel": "No License required"}
SPOT_PRODUCT = "Linux/UNIX"
NOT_ENABLED = ("OptInRequired", "AuthFailure")     # what EC2 answers in an opt-in region the account has not enabled
REGION_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")


class PriceInputError(Exception):
    """Input the refresh cannot read, or AWS it cannot ask: one line naming the input and the fix (exit 2)."""


@dataclass(frozen=True)
class OnDemand:
    instance_type: str
    region: str
    usd: float
    source: str


@dataclass(frozen=True)
class Spot:
    instance_type: str
    region: str
    usd: float
    zone: str
    source: str


@dataclass
class Refresh:
    rows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _region_of_zone(zone: str) -> str | None:
    """`us-east-1a` → `us-east-1`; None for a Local or Wavelength Zone (`us-west-2-lax-1a`, `us-east-1-wl1-bos-wlz-1`)."""
    match = re.match(r"^([a-z]{2}(?:-[a-z]+)+-\d)[a-z]$", zone)
    return match.group(1) if match else None


def plain_linux(attributes: dict[str, Any]) -> str | None:
    """Why a product is not the plain on-demand Linux price of an instance, or None when it is."""
    for key, want in PLAIN_LINUX.items():
        if attributes.get(key, want) != want:
            return f"{key} is {attributes.get(key)!r}, not {want!r}"
    if attributes.get("marketoption", "OnDemand") != "OnDemand":
        return f"marketoption is {attributes.get('marketoption')!r}"
    return None


def _hourly_usd(terms: dict[str, Any]) -> float | None:
    for term in (terms.get("OnDemand") or {}).values():
        for dim in (term.get("priceDimensions") or {}).values():
            usd = (dim.get("pricePerUnit") or {}).get("USD")
            if dim.get("unit") == "Hrs" and usd is not None:
                return float(usd)
    return None


def on_demand_prices(records: Iterable[dict[str, Any]], source: str, types: set[str],
                     skipped: list[str] | None = None) -> list[OnDemand]:
    """The plain Linux on-demand prices among Price List records ({product, terms, version}) for `types`."""
    out = []
    for rec in records:
        product = rec.get("product") or {}
        attrs = product.get("attributes") or {}
        itype, region = attrs.get("instanceType"), attrs.get("regionCode")
        if not str(product.get("productFamily", "")).startswith("Compute Instance") or itype not in types:
            continue
        why = plain_linux(attrs) or (None if region else "it names no regionCode")
        usd = _hourly_usd(rec.get("terms") or {})
        if why is None and usd is None:
            why = "it has no hourly USD OnDemand price"
        if why is not None:
            if skipped is not None:
                skipped.append(f"{itype} in {region or attrs.get('location')}: skipped, {why}")
            continue
        assert usd is not None and region
        version = rec.get("version") or rec.get("publicationDate") or "unversioned"
        out.append(OnDemand(itype, region, usd, f"{source} (AmazonEC2 offer {version})"))
    return out


def records_from_offer_file(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The bulk offer file's products, each with its own OnDemand terms, as GetProducts answers them."""
    terms = (doc.get("terms") or {}).get("OnDemand") or {}
    for sku, product in (doc.get("products") or {}).items():
        yield {"product": product, "terms": {"OnDemand": terms.get(sku) or {}}, "version": doc.get("version")}


def records_from_price_list(pages: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """GetProducts pages: each PriceList entry is a JSON document in a string."""
    for page in pages:
        for entry in page.get("PriceList") or []:
            yield json.loads(entry) if isinstance(entry, str) else entry


def spot_prices(history: Iterable[dict[str, Any]], source: str, types: set[str]) -> list[Spot]:
    """The lowest current Linux/UNIX spot price per (type, region) across the region's Availability Zones."""
    best: dict[tuple[str, str], Spot] = {}
    for item in history:
        itype, zone = item.get("InstanceType"), str(item.get("AvailabilityZone", ""))
        region = _region_of_zone(zone)
        if itype not in types or region is None or item.get("ProductDescription") not in (SPOT_PRODUCT, f"{SPOT_PRODUCT} (Amazon VPC)"):
            continue
        usd = float(item["SpotPrice"])
        stamp = item.get("Timestamp")
        when = stamp.isoformat() if isinstance(stamp, dt.datetime) else str(stamp or "")
        key = (itype, region)
        if key not in best or usd < best[key].usd:
            best[key] = Spot(itype, region, usd, zone, f"{source} ({zone} at {when})" if when else f"{source} ({zone})")
    return list(best.values())


def rows(on_demand: list[OnDemand], spot: list[Spot], regions: set[str] | None, today: dt.date) -> Refresh:
    """prices.yaml rows: one per (type, region) with an on-demand price, its spot price where one was read."""
    result = Refresh()
    spot_by = {(s.instance_type, s.region): s for s in spot}
    seen: set[tuple[str, str]] = set()
    for od in sorted(on_demand, key=lambda o: (o.instance_type, o.region)):
        key = (od.instance_type, od.region)
        if (regions is not None and od.region not in regions) or key in seen:
            continue
        seen.add(key)
        s = spot_by.get(key)
        result.rows.append({"instance_type": od.instance_type, "region": od.region, "on_demand": od.usd,
                            "spot": s.usd if s else None, "source": od.source + (f"; spot: {s.source}" if s else ""),
                            "as_of": today.isoformat()})
    for key in sorted(spot_by.keys() - seen):
        if regions is None or key[1] in regions:
            result.notes.append(f"{key[0]} in {key[1]}: a spot price but no on-demand price was read — no row written")
    return result


def read_files(paths: list[Path], types: set[str]) -> tuple[list[OnDemand], list[Spot], list[str]]:
    """Recorded responses and offer files: a GetProducts response (`PriceList`), a bulk offer file (`products`,
    `terms`), a DescribeSpotPriceHistory response (`SpotPriceHistory`), or a JSON list of such responses."""
    on_demand: list[OnDemand] = []
    spot: list[Spot] = []
    skipped: list[str] = []
    for path in paths:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise PriceInputError(f"--from-file {path}: cannot read it ({exc.strerror})") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise PriceInputError(f"--from-file {path}: not JSON ({exc}) — give a recorded GetProducts or "
                              "DescribeSpotPriceHistory response, or an AmazonEC2 offer file") from None
        docs = doc if isinstance(doc, list) else [doc]
        for i, d in enumerate(docs):
            where = f"{path}" + (f"[{i}]" if isinstance(doc, list) else "")
            if not isinstance(d, dict):
                raise PriceInputError(f"--from-file {where}: a JSON object was expected")
            if "PriceList" in d:
                on_demand += on_demand_prices(records_from_price_list([d]), f"pricing:GetProducts ({path.name})", types, skipped)
            elif "products" in d and "terms" in d:
                on_demand += on_demand_prices(records_from_offer_file(d), f"AWS Price List offer file ({path.name})", types, skipped)
            elif "SpotPriceHistory" in d:
                spot += spot_prices(d["SpotPriceHistory"], f"ec2:DescribeSpotPriceHistory ({path.name})", types)
            else:
                raise PriceInputError(f"--from-file {where}: neither PriceList, products/terms nor SpotPriceHistory — give a "
                                  "recorded GetProducts or DescribeSpotPriceHistory response, or an AmazonEC2 offer file")
    return on_demand, spot, skipped


def fetch(types: list[str], regions: list[str], pricing: Any, ec2_for: Callable[[str], Any],
          now: dt.datetime) -> tuple[list[OnDemand], list[Spot], list[str]]:
    """Ask AWS: GetProducts per instance type (all regions at once), DescribeSpotPriceHistory per region."""
    on_demand: list[OnDemand] = []
    skipped: list[str] = []
    paginator = pricing.get_paginator("get_products")
    for itype in types:
        filters = [{"Type": "TERM_MATCH", "Field": "instanceType", "Value": itype}]
        filters += [{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in PLAIN_LINUX.items()]
        pages = paginator.paginate(ServiceCode="AmazonEC2", Filters=filters, FormatVersion="aws_v1")
        on_demand += on_demand_prices(records_from_price_list(pages), "pricing:GetProducts", set(types), skipped)
    import botocore.exceptions

    spot: list[Spot] = []
    for region in regions:
        pages = ec2_for(region).get_paginator("describe_spot_price_history").paginate(
            InstanceTypes=types, ProductDescriptions=[SPOT_PRODUCT], StartTime=now, EndTime=now)
        try:
            history = [item for page in pages for item in page.get("SpotPriceHistory", [])]
        except botocore.exceptions.ClientError as exc:
            # An opt-in region the account has not enabled answers OptInRequired (or AuthFailure): its on-demand
            # prices still come from the Price List API; its rows get no spot price.
            if exc.response.get("Error", {}).get("Code") not in NOT_ENABLED:
                raise
            skipped.append(f"{region}: no spot price read ({exc.response['Error']['Code']}: the region is not enabled for "
                           "this account) — its rows get spot: null")
            continue
        spot += spot_prices(history, "ec2:DescribeSpotPriceHistory", set(types))
    return on_demand, spot, skipped


def _flow(row: dict[str, Any], anchors: dict[str, str]) -> str:
    def scalar(v: Any) -> str:
        if v is None:
            return "null"
        if isinstance(v, float):
            return repr(v)
        return json.dumps(v)
    src = anchors.get(row["source"])
    cells = [f"instance_type: {row['instance_type']}", f"region: {row['region']}", f"on_demand: {scalar(row['on_demand'])}",
             f"spot: {scalar(row['spot'])}", f"source: {'*' + src if src else scalar(row['source'])}", f"as_of: '{row['as_of']}'"]
    return "- {" + ", ".join(cells) + "}"


def merge(path: Path, new_rows: list[dict[str, Any]]) -> list[tuple[dict[str, Any] | None, dict[str, Any]]]:
    """Write `new_rows` into the price file at `path` (replacing the rows of the same type and region, keeping the
    others and the header), sorted by type and region; the (old, new) pairs that changed."""
    from fleet.yamlsrc import safe_load

    text = path.read_text(encoding="utf-8")
    head = text[: text.index("\nprices:") + 1]
    anchors = {m.group(2).strip(): m.group(1) for m in re.finditer(r"^\w+: &(\w+) (.+)$", head, re.M)}
    old = {(r["instance_type"], r["region"]): r for r in safe_load(text)["prices"]}
    changed: list[tuple[dict[str, Any] | None, dict[str, Any]]] = []
    table = dict(old)
    for r in new_rows:
        key = (r["instance_type"], r["region"])
        before = old.get(key)
        if before is None or (before["on_demand"], before["spot"]) != (r["on_demand"], r["spot"]) or before["source"] != r["source"]:
            changed.append((before, r))
        table[key] = r
    body = "\n".join(_flow(table[k], anchors) for k in sorted(table))
    path.write_text(head + "prices:\n" + body + "\n", encoding="utf-8")
    return changed


def commercial_regions() -> list[str]:
    """The commercial partition's EC2 regions as botocore's endpoint data lists them (opt-in regions included)."""
    import boto3

    return sorted(r for r in boto3.session.Session().get_available_regions("ec2", partition_name="aws") if REGION_RE.match(r))


def refresh(regions: list[str] | None, files: list[Path], dry_run: bool, path: Path, today: dt.date | None = None,
            pricing: Any = None, ec2_for: Callable[[str], Any] | None = None) -> int:
    """The `prices refresh` command: 0 when the rows are written (or would be, with `dry_run`), 2 when its input
    cannot be read or AWS cannot be asked."""
    from fleet.catalog import gpu_instance_types

    today = today or dt.date.today()
    types = sorted(gpu_instance_types())
    bad = [r for r in regions or [] if not REGION_RE.match(r)]
    if bad:
        raise PriceInputError(f"--regions {' '.join(bad)}: not a region name (e.g. us-east-1)")
    if files:
        on_demand, spot, skipped = read_files(files, set(types))
    else:
        import botocore.exceptions

        try:
            if pricing is None or ec2_for is None:
                import boto3

                session = boto3.session.Session()
                pricing = pricing or session.client("pricing", region_name=PRICING_REGION)
                ec2_for = ec2_for or (lambda r: session.client("ec2", region_name=r))
            wanted = regions or commercial_regions()
            on_demand, spot, skipped = fetch(types, wanted, pricing, ec2_for, dt.datetime.now(dt.UTC))
        except botocore.exceptions.NoCredentialsError:
            raise PriceInputError("prices refresh: no AWS credentials — configure the standard chain (AWS_PROFILE, "
                              "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, SSO or an instance role), or read recorded responses "
                              "with --from-file") from None
        except botocore.exceptions.EndpointConnectionError as exc:
            raise PriceInputError(f"prices refresh: cannot reach AWS ({exc}) — check the network, or read recorded "
                              "responses with --from-file") from None
        except botocore.exceptions.ClientError as exc:
            err = exc.response.get("Error", {})
            raise PriceInputError(f"prices refresh: AWS refused {exc.operation_name} ({err.get('Code')}: {err.get('Message')}) — "
                              "the credentials need pricing:GetProducts and ec2:DescribeSpotPriceHistory; an opt-in "
                              "region must be enabled, or left out of --regions") from None
    result = rows(on_demand, spot, set(regions) if regions else None, today)
    for note in skipped + result.notes:
        print(f"note: {note}")
    if not result.rows:
        print("prices refresh: no on-demand price was read for the catalog's GPU types — nothing to write")
        return 0
    if dry_run:
        for r in result.rows:
            print(f"would write {r['instance_type']} in {r['region']}: on demand {r['on_demand']}, spot {r['spot']}")
        return 0
    changed = merge(path, result.rows)
    for before, after in changed:
        was = f"{before['on_demand']}/{before['spot']}" if before else "no row"
        print(f"{after['instance_type']} in {after['region']}: {was} → {after['on_demand']}/{after['spot']} ({after['source']})")
    print(f"wrote {len(result.rows)} rows ({len(changed)} changed) to {path}")
    return 0
