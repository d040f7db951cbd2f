"""Plan reports: a terminal table and markdown (for PR comments), both serialising the plan document; the JSON
report is the document itself."""

from __future__ import annotations

from collections import Counter

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fleet.cost import usd_or_unpriced
from fleet.offline.markdown import code, text
from fleet.offline.plan_document import ModelEntry, PlanDocument, TeamEntry, WeakenedEntry

PLATFORM = "(platform)"


def resource_rows(doc: PlanDocument) -> list[tuple[str, str, int]]:
    counts = Counter((r.team or PLATFORM, r.kind) for r in doc.resources if "(component)" not in r.kind)
    return sorted(((team, kind, n) for (team, kind), n in counts.items()), key=lambda r: (r[0] != PLATFORM, r[0], r[1]))


def team_cells(t: TeamEntry) -> list[str]:
    unpriced = len(t.unpriced_models)
    return [t.team, str(t.models), f"{t.gpus_min}-{t.gpus_max}", str(t.gpu_quota), str(t.quota_left_at_max),
            f"{t.nodes_min}-{t.nodes_max}", usd_or_unpriced(t.usd_per_hour_min, t.models, unpriced),
            usd_or_unpriced(t.usd_per_hour_max, t.models, unpriced)]


def total_cost(doc: PlanDocument) -> tuple[str, str]:
    """The stack's $/hour at min and max replicas, `unpriced` where no model has a rate."""
    s = doc.summary
    unpriced = sum(len(t.unpriced_models) for t in doc.teams)
    return (usd_or_unpriced(s.usd_per_hour_min, s.models, unpriced), usd_or_unpriced(s.usd_per_hour_max, s.models, unpriced))


def all_unpriced(doc: PlanDocument) -> bool:
    return doc.summary.models > 0 and sum(len(t.unpriced_models) for t in doc.teams) >= doc.summary.models


def unpriced_notice(doc: PlanDocument) -> str:
    return (f"No GPU of this stack is priced in {doc.region}: every $/hour below is unpriced. Add the region's prices with "
            f"`vllm-fleet prices refresh --regions {doc.region}`; the cost warnings say why each model has none.")


def minutes(seconds: float | None) -> str:
    """`1 h 05 min`, `12 min`, `—` for nothing."""
    if not seconds:
        return "—"
    total = round(seconds / 60)
    return f"{total // 60} h {total % 60:02d} min" if total >= 60 else f"{total} min"


def _routing(m: ModelEntry) -> str:
    """How requests reach the model, and what it adds to the KV cache: its pool (P/D role), host-memory offload."""
    text = "InferencePool" if m.routing == "gateway" else "Service"
    if m.pd_role is not None:
        text += f" ({m.pd_role})"
    if m.kv_offload_gib:
        text += f", +{m.kv_offload_tokens or 0:,} tokens in {m.kv_offload_gib:g} GiB host memory"
    return text


def _table(title: str, columns: tuple[str, ...], left: tuple[str, ...] = ()) -> Table:
    table = Table(title=title, box=box.SIMPLE_HEAD)
    for col in columns:
        table.add_column(col, justify="left" if col in left else "right")
    return table


def print_table(doc: PlanDocument, console: Console) -> None:
    s = doc.summary
    console.print(f"[bold]vllm-fleet plan[/bold] stack={doc.stack} tier={doc.tier} region={doc.region} cluster={doc.cluster} "
                  f"vllm={doc.vllm_version} kubernetes={doc.kubernetes_version} policies={doc.enforcement}")
    if all_unpriced(doc):
        console.print(f"[yellow]unpriced[/yellow] {unpriced_notice(doc)}")
    res = _table("Resources by team and kind", ("team", "kind", "count"), left=("team", "kind"))
    for team, kind, n in resource_rows(doc):
        res.add_row(team, kind, str(n))
    console.print(res)
    columns = ("team/model", "pool", "instance", "TPxPP", "GPUs/replica", "nodes/replica", "replicas", "workload")
    models = _table("Models", columns, left=columns)
    for m in doc.models:
        models.add_row(f"{m.team}/{m.model}", m.pool, m.instance_type, f"{m.tensor_parallel_size}x{m.pipeline_parallel_size}",
                       str(m.gpus_per_replica), str(m.nodes_per_replica), f"{m.min_replicas}-{m.max_replicas}", m.workload)
    console.print(models)
    sizing = _table("Sizing per GPU (vLLM V1 estimate)", ("team/model", "GPU", "weights GiB", "KV cache GiB", "KV tokens",
                                                          "max model len", "concurrency", "fits", "routing"), left=("team/model", "GPU", "routing"))
    for m in doc.models:
        sz = m.sizing
        if sz is None:
            sizing.add_row(f"{m.team}/{m.model}", m.gpu, "?", "?", "?", "?", "?", "unknown architecture", _routing(m))
            continue
        sizing.add_row(f"{m.team}/{m.model}", m.gpu, f"{sz['weights_gib_per_gpu']:.1f}", f"{sz['kv_cache_gib']:.1f}",
                       f"{sz['kv_cache_tokens']:,}", f"{sz['max_model_len']:,}", f"{sz['max_concurrency']:.1f}",
                       "yes" if sz["fits"] else "NO", _routing(m))
    console.print(sizing)
    times = _table("First deploy: estimates, and the timeouts pulumi up is given", ("team/model", "reads/pod GiB", "download", "pod start",
                                                                          "first deploy", "prefetch deadline", "rollout timeout"),
                   left=("team/model",))
    for m in doc.models:
        est = m.deploy_time or {}
        times.add_row(f"{m.team}/{m.model}", f"{est.get('pod_read_gib', 0):.0f}", minutes(est.get("download")), minutes(est.get("pod_start")),
                      minutes(est.get("first_deploy")), minutes(est.get("prefetch_timeout")),
                      f"{minutes(est.get('rollout_create_timeout'))} / {minutes(est.get('rollout_update_timeout'))}"
                      if m.workload == "Deployment" else "not awaited")
    console.print(times)
    gpus = _table(f"GPUs and cost per hour ({doc.region})", ("team", "models", "GPUs min-max", "quota", "quota left at max",
                                                              "nodes min-max", "$/h at min", "$/h at max"), left=("team",))
    for t in doc.teams:
        gpus.add_row(*team_cells(t))
    gpus.add_row("total", str(s.models), f"{s.gpus_min}-{s.gpus_max}", str(s.gpu_quota), "", "", *total_cost(doc), style="bold")
    console.print(gpus)
    pools = _table(f"Pool headroom (spare GPUs kept for rollouts: {doc.spare_gpus})",
                   ("pool", "capacity", "GPUs at max size", "GPUs at max replicas", "headroom", "GPUs at up", "GPUs at min replicas"),
                   left=("pool", "capacity"))
    for p in doc.pools:
        pools.add_row(p.pool, p.capacity_type, str(p.gpu_capacity), str(p.gpus_at_max), str(p.headroom), str(p.gpus_at_up),
                      str(p.gpus_at_min))
    console.print(pools)
    for w in doc.cost_warnings:
        console.print(f"[yellow]cost warning[/yellow] {w}")
    for note in doc.config_notes:
        console.print(f"[yellow]config note[/yellow] {escape(note)}")
    for weak in doc.weakened_guardrails:
        what = "the whole pack" if weak.scope == "pack" else weak.rule + (f" for {weak.resource}" if weak.resource else "")
        console.print(f"[yellow]weakened guardrail[/yellow] {escape(what)}: {weak.level} — reason: {escape(weak.reason or 'none')}; "
                      f"owner: {escape(weak.owner or 'none')}")
    if doc.findings:
        ft = Table(title="Policy findings", box=box.SIMPLE_HEAD)
        for col in ("rule", "level", "resource", "message"):
            ft.add_column(col, overflow="fold")
        for f in doc.findings:
            ft.add_row(f.rule_id, f.level, f.resource, f.message)
        console.print(ft)
    for problem in doc.schema_problems:
        console.print(f"[red]invalid manifest[/red] {problem.kind}/{problem.name} {problem.path}: {problem.message}")
    verdict = "clean" if s.exit_code == 0 else "FAILED"
    console.print(f"{s.resources} resources ({s.kubernetes_objects} Kubernetes objects, {s.invalid_manifests} invalid), "
                  f"{s.mandatory_findings} mandatory and {s.advisory_findings} advisory findings: {verdict}")


def markdown(doc: PlanDocument) -> str:
    s = doc.summary
    icon = "✅" if s.exit_code == 0 else "❌"
    low, high = total_cost(doc)
    cost = f"$/h unpriced in {doc.region}" if all_unpriced(doc) else f"{low}–{high}/h in {doc.region}"
    lines = [f"### {icon} vllm-fleet plan {code(doc.stack)}", ""]
    if all_unpriced(doc):
        lines += [f"> **{unpriced_notice(doc)}**", ""]
    lines += [f"{s.resources} resources, {s.models} models, GPUs {s.gpus_min}–{s.gpus_max}, {cost}, "
              f"{s.mandatory_findings} mandatory / {s.advisory_findings} advisory findings, "
              f"{s.invalid_manifests} invalid manifests.", "",
              "| team | models | GPUs min-max | quota | quota left at max | nodes min-max | $/h at min | $/h at max |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    lines += ["| " + " | ".join([text(c) if i == 0 else c for i, c in enumerate(team_cells(t))]) + " |" for t in doc.teams]
    lines.append(f"| **total** | {s.models} | {s.gpus_min}-{s.gpus_max} | {s.gpu_quota} | | | " + " | ".join(total_cost(doc)) + " |")
    lines += [f"- cost warning: {text(w)}" for w in doc.cost_warnings]
    lines += [f"- config note: {text(n)}" for n in doc.config_notes]
    if doc.weakened_guardrails:
        lines += ["", *weakened_table(doc.weakened_guardrails, "Guardrails this stack weakens")]
    if doc.findings:
        lines += ["", "<details><summary>Policy findings</summary>", "", "| rule | level | resource | message |", "|---|---|---|---|"]
        lines += [f"| {text(f.rule_id)} | {text(f.level)} | {code(f.resource)} | {text(f.message)} |" for f in doc.findings]
        lines += ["", "</details>"]
    lines += ["", "<details><summary>Resources by team and kind</summary>", "", "| team | kind | count |", "|---|---|---:|"]
    lines += [f"| {text(team)} | {text(kind)} | {n} |" for team, kind, n in resource_rows(doc)]
    lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


def weakened_table(entries: list[WeakenedEntry], title: str) -> list[str]:
    """The weakened guardrails as a markdown table, every cell escaped (reasons are free text from the stack file)."""
    lines = [f"**{title}:**", "", "| what | rule | object | level | reason | owner |", "|---|---|---|---|---|---|"]
    for w in entries:
        lines.append(f"| {w.scope} | {text(w.rule or 'all')} | {code(w.resource) if w.resource else '—'} | {text(w.level)} | "
                     f"{text(w.reason) if w.reason else '**none**'} | {text(w.owner) if w.owner else '**none**'} |")
    return [*lines, ""]
