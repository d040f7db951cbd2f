"""`vllm-fleet plan --stack S --base REF`: what a change does, compared with the plan of a git ref.

The base is the tree of REF exported from git (the working tree is not touched) and planned with REF's own
code when it can be (a subprocess on the exported tree, whose JSON is read back through the plan document's
schema); when REF predates that, with this checkout's code on REF's stack and team files, and the report says
which.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from fleet.cost import usd, usd_or_unpriced
from fleet.errors import ConfigError
from fleet.kinds import NAMESPACE_TYPE, REPLACED_WHEN_CHANGED, STATEFUL_TYPES
from fleet.offline.engine import SECRET_MASK
from fleet.offline.markdown import code, text
from fleet.offline.node_rolls import NodeRoll, node_rolls
from fleet.offline.plan import make_plan
from fleet.offline.plan_document import FindingEntry, PlanDocument, ResourceEntry, TeamEntry, WeakenedEntry
from fleet.offline.report import all_unpriced, unpriced_notice, weakened_table

GITHUB_COMMENT_LIMIT = 65536
COMMIT_ID = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
# Per-team figures the diff compares.
TEAM_FIELDS = ("gpus_min", "gpus_max", "gpu_quota", "usd_per_hour_min", "usd_per_hour_max")
MONEY_FIELDS = ("usd_per_hour_min", "usd_per_hour_max")


def team_figure(t: TeamEntry | None, f: str) -> float | int | None:
    """A team's figure on one side of the diff: 0 where the team does not exist; None for the $/hour of a team none
    of whose models is priced (a plan written before unpriced teams carried None says 0.0 there: read as None)."""
    if t is None:
        return 0
    if f in MONEY_FIELDS and t.models and len(t.unpriced_models) >= t.models:
        return None
    value: float | int | None = getattr(t, f)
    return value


def flatten(value: Any, path: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(flatten(v, f"{path}.{k}" if path else str(k)))
        return out or {path: {}}
    if isinstance(value, list):
        out = {}
        for i, v in enumerate(value):
            out.update(flatten(v, f"{path}[{i}]"))
        return out or {path: []}
    return {path: value}


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root + ".") or path.startswith(root + "[")


@dataclass
class Change:
    urn: str
    type: str
    fields: list[tuple[str, Any, Any]]         # (path, before, after)
    replaces: list[str] = field(default_factory=list)
    secret_paths: list[str] = field(default_factory=list)


@dataclass
class Diff:
    stack: str
    base_ref: str
    base_engine: str                            # "base code" | "this checkout's code" | why there is no base
    added: list[ResourceEntry]
    removed: list[ResourceEntry]
    changed: list[Change]
    gpu: list[dict[str, Any]]
    findings_new: list[FindingEntry]
    findings_fixed: list[FindingEntry]
    findings_remaining: int
    stateful_replacements: list[str]
    head_exit: int
    unpriced_notice: str | None = None          # the head prices none of its GPUs: said before the table
    node_rolls: list[NodeRoll] = field(default_factory=list)   # changes that replace every node of a GPU pool
    guardrails_weakened: list[WeakenedEntry] = field(default_factory=list)   # new in head, or recorded differently
    guardrails_restored: list[WeakenedEntry] = field(default_factory=list)   # in the base, gone in head
    slo_charts: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (team/model, its slo curve) in head

    @property
    def exit_code(self) -> int:
        return 1 if self.stateful_replacements or self.head_exit == 1 else 0

    def to_json(self) -> dict[str, Any]:
        return {"stack": self.stack, "base": self.base_ref, "base_planned_with": self.base_engine,
                "added": [r.urn for r in self.added], "removed": [r.urn for r in self.removed],
                "changed": [{"urn": c.urn, "fields": [p for p, _, _ in c.fields], "replaces": c.replaces} for c in self.changed],
                "gpu": self.gpu, "findings": {"new": [f.model_dump() for f in self.findings_new],
                                              "fixed": [f.model_dump() for f in self.findings_fixed],
                                              "remaining": self.findings_remaining},
                "guardrails": {"weakened": [w.model_dump() for w in self.guardrails_weakened],
                               "restored": [w.model_dump() for w in self.guardrails_restored]},
                "stateful_replacements": self.stateful_replacements,
                "gpu_node_rolls": [r.as_dict() for r in self.node_rolls], "exit_code": self.exit_code}


class BadRef(ValueError):
    """A `--base` that is not a commit of the repository, or that git would read as an option."""


def resolve_ref(root: Path, ref: str) -> str:
    """The commit `ref` names, as 40 hex digits. A ref that starts with `-` or holds control characters is refused
    before git sees it (`--output=FILE` would be an option of `git archive`); the rest is resolved with
    `git rev-parse --verify --end-of-options REF^{commit}`, so what reaches `git archive` is always a commit id."""
    if not ref or ref.startswith("-") or any(ord(c) < 0x20 or ord(c) == 0x7F for c in ref):
        raise BadRef("not a git ref (a ref never starts with '-' nor holds control characters) — name a branch, tag or commit, "
                     "e.g. --base origin/main")
    proc = subprocess.run(["git", "-C", str(root), "rev-parse", "--quiet", "--verify", "--end-of-options", f"{ref}^{{commit}}"],
                          capture_output=True, text=True)
    sha = proc.stdout.strip()
    if proc.returncode != 0 or not COMMIT_ID.match(sha):
        raise BadRef("cannot read it from git (no commit of that name in this repository) — fetch it first, or name a branch, "
                     "tag or commit")
    return sha


def export_tree(root: Path, ref: str, dest: Path) -> None:
    """The tree of `ref`, without touching the working tree or the index."""
    sha = resolve_ref(root, ref)
    data = subprocess.run(["git", "-C", str(root), "archive", "--format=tar", "--end-of-options", sha], check=True,
                          capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(dest, filter="data")


def base_document(tree: Path, stack: str) -> tuple[PlanDocument | None, str]:
    """The plan of the tree at `tree`: with its own code when that prints a plan this version can read, else with
    this checkout's code; (None, why) when its config does not load."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    proc = subprocess.run([sys.executable, "-m", "fleet.cli", f"--root={tree}", "plan", f"--stack={stack}", "--format=json"],
                          cwd=tree, env=env, capture_output=True, text=True)
    if proc.returncode in (0, 1):
        try:
            doc = PlanDocument.model_validate_json(proc.stdout)
            if doc.resources and doc.resources[0].inputs:
                return doc, "base code"
        except ValidationError:
            pass
    elif proc.returncode == 2 and "config error" in proc.stderr:
        return None, proc.stderr.strip()
    try:
        return make_plan(stack, tree).document(), "this checkout's code"
    except ConfigError as exc:
        return None, str(exc)


def compare(stack: str, ref: str, base: PlanDocument | None, head: PlanDocument, engine: str) -> Diff:
    base_res = {r.urn: r for r in (base.resources if base else [])}
    head_res = {r.urn: r for r in head.resources}
    added = [head_res[u] for u in sorted(head_res.keys() - base_res.keys())]
    removed = [base_res[u] for u in sorted(base_res.keys() - head_res.keys())]
    changed: list[Change] = []
    replacements: list[str] = []
    for urn in sorted(head_res.keys() & base_res.keys()):
        b, h = flatten(base_res[urn].inputs), flatten(head_res[urn].inputs)
        fields = [(p, b.get(p), h.get(p)) for p in sorted(b.keys() | h.keys()) if b.get(p) != h.get(p)]
        if not fields:
            continue
        typ = head_res[urn].type
        roots = REPLACED_WHEN_CHANGED.get(typ, ())
        replaces = sorted({r for p, _, _ in fields for r in roots if _under(p, r)})
        changed.append(Change(urn, typ, fields, replaces, head_res[urn].secret_paths))
        if replaces and (typ in STATEFUL_TYPES or typ == NAMESPACE_TYPE):
            replacements.append(f"{urn} would be replaced: {', '.join(replaces)} changed")
    replacements += [f"{r.urn} would be deleted" for r in removed if r.type in STATEFUL_TYPES]
    base_teams: dict[str, TeamEntry] = {t.team: t for t in (base.teams if base else [])}
    gpu = []
    for t in head.teams:
        bt = base_teams.pop(t.team, None)
        gpu.append({"team": t.team, **{f: (team_figure(bt, f), team_figure(t, f)) for f in TEAM_FIELDS},
                    "unpriced_models": (len(bt.unpriced_models) if bt else 0, len(t.unpriced_models))})
    for name, bt in base_teams.items():
        gpu.append({"team": name, **{f: (team_figure(bt, f), 0) for f in TEAM_FIELDS},
                    "unpriced_models": (len(bt.unpriced_models), 0)})

    def key(f: FindingEntry) -> tuple[str, str, str]:
        return (f.rule_id, f.urn, f.message)

    base_f = {key(f): f for f in (base.findings if base else [])}
    head_f = {key(f): f for f in head.findings}
    # A base planned before plans recorded them reads as weakening nothing: everything head weakens shows.
    base_w = {w.key: w for w in (base.weakened_guardrails if base else [])}
    head_w = {w.key: w for w in head.weakened_guardrails}
    return Diff(stack, ref, engine, added, removed, changed, gpu,
                [head_f[k] for k in sorted(head_f.keys() - base_f.keys())], [base_f[k] for k in sorted(base_f.keys() - head_f.keys())],
                len(head_f.keys() & base_f.keys()), replacements, head.summary.exit_code,
                unpriced_notice(head) if all_unpriced(head) else None,
                node_rolls([(c.urn, c.type, [p for p, _, _ in c.fields], bool(c.replaces), head_res[c.urn].inputs) for c in changed]),
                guardrails_weakened=[w for k, w in sorted(head_w.items()) if base_w.get(k) != w],
                guardrails_restored=[w for k, w in sorted(base_w.items()) if k not in head_w],
                slo_charts=[(f"{m.team}/{m.model}", m.slo) for m in head.models if m.slo])


def _delta(before: float, after: float, money: bool = False) -> str:
    show = usd if money else str
    if before == after:
        return show(after)
    sign = "+" if after > before else "−"
    return f"{show(before)} → {show(after)} ({sign}{show(abs(after - before))})"


def _money_delta(before: float | None, after: float | None, unpriced: tuple[int, int] = (0, 0)) -> str:
    """A $/hour change: `unpriced` for a side none of whose models is priced, never `$0.00`; a difference only where
    both sides price the same models."""
    shown = usd_or_unpriced(before, 0, unpriced[0]), usd_or_unpriced(after, 0, unpriced[1])
    if shown[0] == shown[1]:
        return shown[1]
    if before is None or after is None or unpriced[0] != unpriced[1]:
        return f"{shown[0]} → {shown[1]}"
    return _delta(before, after, money=True)


def _short(urn: str) -> str:
    return urn.rsplit("::", 1)[-1]


def _value(v: Any) -> str:
    text = json.dumps(v) if not isinstance(v, str) else v
    return text if len(text) <= 80 else text[:77] + "..."


def _masked(path: str, value: Any, secret_paths: list[str]) -> Any:
    return SECRET_MASK if any(_under(path, p) for p in secret_paths) else value


def markdown(d: Diff) -> str:
    icon = "❌" if d.exit_code else "✅"
    lines = [f"### {icon} vllm-fleet plan {code(d.stack)} vs {code(d.base_ref)}", "",
             f"{len(d.added)} added, {len(d.changed)} changed, {len(d.removed)} removed · findings: {len(d.findings_new)} new, "
             f"{len(d.findings_fixed)} fixed, {d.findings_remaining} remaining · base planned with {text(d.base_engine)}.", ""]
    if d.unpriced_notice:
        lines += [f"> **{d.unpriced_notice}**", ""]
    if d.stateful_replacements:
        lines += ["**Stateful resources would be replaced or deleted (data loss):**", ""]
        lines += [f"- {code(r)}" for r in d.stateful_replacements] + [""]
    if d.node_rolls:
        lines += ["**This change replaces every GPU node of a pool:**", ""]
        lines += [f"- {r.message}" for r in d.node_rolls] + [""]
    lines += ["| team | GPUs at min | GPUs at max | GPU quota | $/h at min | $/h at max |", "|---|---:|---:|---:|---:|---:|"]
    for g in d.gpu:
        cells = [_money_delta(g[f][0], g[f][1], g.get("unpriced_models", (0, 0))) if f in MONEY_FIELDS else _delta(g[f][0], g[f][1])
                 for f in TEAM_FIELDS]
        lines.append(f"| {text(g['team'])} | " + " | ".join(cells) + " |")
    lines.append("")
    if d.slo_charts:
        from fleet.capacity.slo import mermaid_chart

        lines += ["**Latency against traffic** (predicted; the flat line is the team's target)", ""]
        for name, slo in d.slo_charts:
            lines += mermaid_chart(name, slo)
    if d.guardrails_weakened:
        lines += weakened_table(d.guardrails_weakened, "Guardrails this change weakens")
    if d.guardrails_restored:
        lines += weakened_table(d.guardrails_restored, "Guardrails this change restores")
    if d.findings_new:
        lines += ["**New findings**", "", "| rule | level | resource | message |", "|---|---|---|---|"]
        lines += [f"| {text(f.rule_id)} | {text(f.level)} | {code(f.resource)} | {text(f.message)} |" for f in d.findings_new] + [""]
    if d.findings_fixed:
        lines += ["<details><summary>Fixed findings</summary>", ""]
        lines += [f"- {text(f.rule_id)} {code(f.resource)}: {text(f.message)}" for f in d.findings_fixed] + ["", "</details>", ""]
    for title, items in (("Added", d.added), ("Removed", d.removed)):
        if items:
            lines += [f"<details><summary>{title} ({len(items)})</summary>", ""]
            lines += [f"- {code(r.type)} {code(_short(r.urn))}" for r in items] + ["", "</details>", ""]
    if d.changed:
        lines += [f"<details><summary>Changed ({len(d.changed)})</summary>", ""]
        for c in d.changed:
            lines.append(f"- {code(c.type)} {code(_short(c.urn))}" + (f" — **replaces**: {text(', '.join(c.replaces))}" if c.replaces else ""))
            for p, before, after in c.fields[:30]:
                lines.append(f"  - {code(p)}: {code(_value(_masked(p, before, c.secret_paths)))} → "
                             f"{code(_value(_masked(p, after, c.secret_paths)))}")
            if len(c.fields) > 30:
                lines.append(f"  - … {len(c.fields) - 30} more fields")
        lines += ["", "</details>", ""]
    out = "\n".join(lines) + "\n"
    if len(out) > GITHUB_COMMENT_LIMIT - 200:
        out = out[: GITHUB_COMMENT_LIMIT - 400] + "\n\n… truncated to fit a PR comment; run `vllm-fleet plan --base` locally.\n"
    return out


def run(root: Path, stack: str, ref: str, fmt: str) -> int:
    try:
        commit = resolve_ref(root, ref)
    except BadRef as exc:
        print(f"--base {ref if ref.isprintable() else repr(ref)}: {exc}", file=sys.stderr)
        return 2
    try:
        head = make_plan(stack, root).document()
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="vllm-fleet-base-") as tmp:
        try:
            export_tree(root, commit, Path(tmp))
        except (BadRef, subprocess.CalledProcessError) as exc:
            why = exc.stderr.decode(errors="replace").strip() if isinstance(exc, subprocess.CalledProcessError) else str(exc)
            print(f"--base {ref}: cannot read it from git ({why})", file=sys.stderr)
            return 2
        stack_file = Path(tmp) / "stacks" / f"Pulumi.{stack}.yaml"
        base, engine = base_document(Path(tmp), stack) if stack_file.exists() else (None, f"stack {stack} does not exist at {ref}")
    if base is None:
        engine = f"nothing (the base does not plan: {engine.splitlines()[0] if engine else 'no stack'})"
    d = compare(stack, ref, base, head, engine)
    if fmt == "json":
        print(json.dumps(d.to_json(), indent=2))
    else:
        print(markdown(d), end="")
    return d.exit_code
