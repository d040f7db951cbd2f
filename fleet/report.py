"""Plan reports: a terminal table, a JSON document and markdown (for PR comments)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from fleet.cost import estimate, usd
from fleet.plan import Plan

PLATFORM = "(platform)"


def _kind(c: Any) -> str:
    if c.type.startswith("pulumi:providers:"):
        return f"Provider ({c.type.rsplit(':', 1)[-1]})"
    if c.is_kubernetes:
        return str(c.inputs.get("kind"))
    if not c.custom:
        return c.type.split(":")[-1] + " (component)"
    package, module, name = c.type.split(":")
    return f"{package}:{module.split('/')[0]}:{name}"  # aws:iam/role:Role → aws:iam:Role


def document(plan: Plan) -> dict[str, Any]:
    spec = plan.spec
    resources = []
    for c in plan.resources:
        md = c.inputs.get("metadata") or {} if c.is_kubernetes else {}
        resources.append({"urn": c.urn, "type": c.type, "name": c.name, "team": plan.teams_by_urn.get(c.urn),
                          "kind": _kind(c), "namespace": md.get("namespace"), "protect": c.protect,
                          "retain_on_delete": c.retain_on_delete, "inputs": c.inputs})
    cost = estimate(spec)
    teams = cost["teams"]
    models = [{"team": m.team, "model": m.name, "hf_id": m.spec.model, "pool": m.pool.name,
               "instance_type": m.instance.instance_type, "gpu": m.instance.gpu_model,
               "tensor_parallel_size": m.spec.tensor_parallel_size or 1,
               "pipeline_parallel_size": m.spec.pipeline_parallel_size or 1,
               "gpus_per_replica": m.gpus_per_replica, "nodes_per_replica": m.nodes_per_replica,
               "min_replicas": m.min_replicas, "max_replicas": m.max_replicas,
               "workload": "LeaderWorkerSet" if m.multi_node else "Deployment",
               "sizing": m.sizing.as_dict() if m.sizing is not None else None} for m in spec.models]
    mandatory = len(plan.mandatory)
    advisory = sum(1 for f in plan.findings if f.level == "advisory")
    return {
        "stack": spec.stack, "region": spec.config.region, "cluster": spec.config.cluster.name,
        "tier": spec.config.tier, "enforcement": spec.config.effective_enforcement,
        "vllm_version": spec.config.vllm.version, "kubernetes_version": spec.config.kubernetes_version,
        "resources": resources,
        "findings": [f.as_dict() for f in sorted(plan.findings, key=lambda f: (f.level != "mandatory", f.rule_id, f.urn))],
        "schema_problems": [{"urn": urn, "kind": p.kind, "name": p.name, "path": p.path, "message": p.message}
                            for urn, p in plan.schema_problems],
        "unknown_at_preview": plan.unknown_fields,
        "teams": teams, "models": models, "pools": cost["pools"], "spare_gpus": cost["spare_gpus"],
        "cost_warnings": cost["warnings"],
        "summary": {
            "resources": len(plan.resources), "kubernetes_objects": len(plan.kubernetes_objects()),
            "teams": len(spec.teams), "models": len(spec.models),
            "gpus_min": cost["total"]["gpus_min"], "gpus_max": cost["total"]["gpus_max"], "gpu_quota": cost["total"]["gpu_quota"],
            "usd_per_hour_min": cost["total"]["usd_per_hour_min"], "usd_per_hour_max": cost["total"]["usd_per_hour_max"],
            "mandatory_findings": mandatory, "advisory_findings": advisory,
            "invalid_manifests": len({urn for urn, _ in plan.schema_problems}),
            "exit_code": plan.exit_code,
        },
    }


def _resource_rows(doc: dict[str, Any]) -> list[tuple[str, str, int]]:
    counts = Counter((r["team"] or PLATFORM, r["kind"]) for r in doc["resources"] if "(component)" not in r["kind"])
    return sorted(((team, kind, n) for (team, kind), n in counts.items()), key=lambda r: (r[0] != PLATFORM, r[0], r[1]))


def _team_cells(t: dict[str, Any]) -> list[str]:
    unpriced = f" (+{len(t['unpriced_models'])} unpriced)" if t["unpriced_models"] else ""
    return [t["team"], str(t["models"]), f"{t['gpus_min']}-{t['gpus_max']}", str(t["gpu_quota"]), str(t["quota_left_at_max"]),
            f"{t['nodes_min']}-{t['nodes_max']}", usd(t["usd_per_hour_min"]) + unpriced, usd(t["usd_per_hour_max"]) + unpriced]


def print_table(doc: dict[str, Any], console: Console) -> None:
    s = doc["summary"]
    console.print(f"[bold]vllm-fleet plan[/bold] stack={doc['stack']} tier={doc['tier']} region={doc['region']} "
                  f"cluster={doc['cluster']} vllm={doc['vllm_version']} kubernetes={doc['kubernetes_version']} "
                  f"policies={doc['enforcement']}")
    res = Table(title="Resources by team and kind", box=box.SIMPLE_HEAD)
    for col in ("team", "kind", "count"):
        res.add_column(col, justify="right" if col == "count" else "left")
    for team, kind, n in _resource_rows(doc):
        res.add_row(team, kind, str(n))
    console.print(res)
    models = Table(title="Models", box=box.SIMPLE_HEAD)
    for col in ("team/model", "pool", "instance", "TPxPP", "GPUs/replica", "nodes/replica", "replicas", "workload"):
        models.add_column(col)
    for m in doc["models"]:
        models.add_row(f"{m['team']}/{m['model']}", m["pool"], m["instance_type"],
                       f"{m['tensor_parallel_size']}x{m['pipeline_parallel_size']}", str(m["gpus_per_replica"]),
                       str(m["nodes_per_replica"]), f"{m['min_replicas']}-{m['max_replicas']}", m["workload"])
    console.print(models)
    sizing = Table(title="Sizing per GPU (vLLM V1 estimate)", box=box.SIMPLE_HEAD)
    for col in ("team/model", "GPU", "weights GiB", "KV cache GiB", "KV tokens", "max model len", "concurrency", "fits"):
        sizing.add_column(col, justify="left" if col in ("team/model", "GPU") else "right")
    for m in doc["models"]:
        sz = m["sizing"]
        if sz is None:
            sizing.add_row(f"{m['team']}/{m['model']}", m["gpu"], "?", "?", "?", "?", "?", "unknown architecture")
            continue
        sizing.add_row(f"{m['team']}/{m['model']}", m["gpu"], f"{sz['weights_gib_per_gpu']:.1f}", f"{sz['kv_cache_gib']:.1f}",
                       f"{sz['kv_cache_tokens']:,}", f"{sz['max_model_len']:,}", f"{sz['max_concurrency']:.1f}",
                       "yes" if sz["fits"] else "NO")
    console.print(sizing)
    gpus = Table(title=f"GPUs and cost per hour ({doc['region']})", box=box.SIMPLE_HEAD)
    for col in ("team", "models", "GPUs min-max", "quota", "quota left at max", "nodes min-max", "$/h at min", "$/h at max"):
        gpus.add_column(col, justify="left" if col == "team" else "right")
    for t in doc["teams"]:
        gpus.add_row(*_team_cells(t))
    gpus.add_row("total", str(s["models"]), f"{s['gpus_min']}-{s['gpus_max']}", str(s["gpu_quota"]),
                 "", "", usd(s["usd_per_hour_min"]), usd(s["usd_per_hour_max"]), style="bold")
    console.print(gpus)
    pools = Table(title=f"Pool headroom (spare GPUs kept for rollouts: {doc['spare_gpus']})", box=box.SIMPLE_HEAD)
    for col in ("pool", "capacity", "GPUs at max size", "GPUs at max replicas", "headroom"):
        pools.add_column(col, justify="left" if col in ("pool", "capacity") else "right")
    for p in doc["pools"]:
        pools.add_row(p["pool"], p["capacity_type"], str(p["gpu_capacity"]), str(p["gpus_at_max"]), str(p["headroom"]))
    console.print(pools)
    for w in doc["cost_warnings"]:
        console.print(f"[yellow]cost warning[/yellow] {w}")
    if doc["findings"]:
        ft = Table(title="Policy findings", box=box.SIMPLE_HEAD)
        for col in ("rule", "level", "resource", "message"):
            ft.add_column(col, overflow="fold")
        for f in doc["findings"]:
            ft.add_row(f["rule_id"], f["level"], f["resource"], f["message"])
        console.print(ft)
    for p in doc["schema_problems"]:
        console.print(f"[red]invalid manifest[/red] {p['kind']}/{p['name']} {p['path']}: {p['message']}")
    verdict = "clean" if s["exit_code"] == 0 else "FAILED"
    console.print(f"{s['resources']} resources ({s['kubernetes_objects']} Kubernetes objects, "
                  f"{s['invalid_manifests']} invalid), {s['mandatory_findings']} mandatory and "
                  f"{s['advisory_findings']} advisory findings: {verdict}")


def markdown(doc: dict[str, Any]) -> str:
    s = doc["summary"]
    icon = "✅" if s["exit_code"] == 0 else "❌"
    lines = [f"### {icon} vllm-fleet plan `{doc['stack']}`", "",
             f"{s['resources']} resources, {s['models']} models, GPUs {s['gpus_min']}–{s['gpus_max']}, "
             f"{usd(s['usd_per_hour_min'])}–{usd(s['usd_per_hour_max'])}/h in {doc['region']}, "
             f"{s['mandatory_findings']} mandatory / {s['advisory_findings']} advisory findings, "
             f"{s['invalid_manifests']} invalid manifests.", "",
             "| team | models | GPUs min-max | quota | quota left at max | nodes min-max | $/h at min | $/h at max |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    lines += ["| " + " | ".join(_team_cells(t)) + " |" for t in doc["teams"]]
    lines += [f"- cost warning: {w}" for w in doc["cost_warnings"]]
    if doc["findings"]:
        lines += ["", "<details><summary>Policy findings</summary>", "", "| rule | level | resource | message |",
                  "|---|---|---|---|"]
        lines += [f"| {f['rule_id']} | {f['level']} | `{f['resource']}` | {f['message']} |" for f in doc["findings"]]
        lines += ["", "</details>"]
    lines += ["", "<details><summary>Resources by team and kind</summary>", "", "| team | kind | count |",
              "|---|---|---:|"]
    lines += [f"| {team} | {kind} | {n} |" for team, kind, n in _resource_rows(doc)]
    lines += ["", "</details>"]
    return "\n".join(lines) + "\n"
