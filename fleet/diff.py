"""`vllm-fleet plan --stack S --base REF`: what a change does, compared with the plan of a git ref.

The base is the tree of REF exported from git (the working tree is not touched) and planned with REF's own
code when it can be (a subprocess on the exported tree); when REF predates that, with this checkout's code
on REF's stack and team files, and the report says which.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleet.cost import usd
from fleet.engine.mocks import SECRET_MASK

GITHUB_COMMENT_LIMIT = 65536
# Per-team figures the diff compares (plan JSON `teams[]`); a base planned by older code may lack some: they count as 0.
TEAM_FIELDS = ("gpus_min", "gpus_max", "gpu_quota", "usd_per_hour_min", "usd_per_hour_max")
STATEFUL = {
    "kubernetes:core/v1:PersistentVolumeClaim", "kubernetes:core/v1:PersistentVolume",
    "kubernetes:storage.k8s.io/v1:StorageClass", "aws:efs/fileSystem:FileSystem",
    "aws:fsx/lustreFileSystem:LustreFileSystem", "aws:s3/bucket:Bucket", "aws:kms/key:Key",
}
# Fields whose change makes the provider replace the resource (delete, then create): data is lost.
IMMUTABLE = {
    "kubernetes:core/v1:PersistentVolumeClaim": ("spec.storageClassName", "spec.accessModes", "spec.volumeName",
                                                 "spec.selector", "metadata.name", "metadata.namespace"),
    "kubernetes:core/v1:PersistentVolume": ("spec.csi", "spec.nfs", "spec.hostPath", "spec.storageClassName",
                                            "spec.accessModes", "metadata.name"),
    "kubernetes:storage.k8s.io/v1:StorageClass": ("provisioner", "parameters", "reclaimPolicy", "volumeBindingMode",
                                                  "metadata.name"),
    "aws:efs/fileSystem:FileSystem": ("encrypted", "kmsKeyId", "performanceMode", "creationToken", "availabilityZoneName"),
    "aws:fsx/lustreFileSystem:LustreFileSystem": ("deploymentType", "subnetIds", "kmsKeyId", "storageType", "fileSystemTypeVersion"),
    "aws:s3/bucket:Bucket": ("bucket",),
    "aws:kms/key:Key": ("keySpec", "keyUsage", "customerMasterKeySpec"),
    "kubernetes:core/v1:Namespace": ("metadata.name",),
}


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


@dataclass
class Change:
    urn: str
    type: str
    fields: list[tuple[str, Any, Any]]         # (path, before, after)
    replaces: list[str] = field(default_factory=list)


@dataclass
class Diff:
    stack: str
    base_ref: str
    base_engine: str                            # "base code" | "this checkout's code"
    added: list[dict[str, Any]]
    removed: list[dict[str, Any]]
    changed: list[Change]
    gpu: list[dict[str, Any]]
    findings_new: list[dict[str, Any]]
    findings_fixed: list[dict[str, Any]]
    findings_remaining: int
    stateful_replacements: list[str]
    head_exit: int

    @property
    def exit_code(self) -> int:
        return 1 if self.stateful_replacements or self.head_exit == 1 else 0


def _mask(path: str, value: Any, secret_paths: set[str]) -> Any:
    return SECRET_MASK if any(path == p or path.startswith(p + ".") or path.startswith(p + "[") for p in secret_paths) else value


def export_tree(root: Path, ref: str, dest: Path) -> None:
    """The tree of `ref`, without touching the working tree or the index."""
    data = subprocess.run(["git", "-C", str(root), "archive", "--format=tar", ref], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(dest, filter="data")


def plan_document(root: Path, stack: str, use_own_code: bool) -> tuple[dict[str, Any] | None, str]:
    """The plan JSON of the tree at `root`; (None, message) when its config does not load."""
    if use_own_code:
        env = {**os.environ, "PYTHONPATH": str(root)}
        proc = subprocess.run([sys.executable, "-m", "fleet.cli", "--root", str(root), "plan", "--stack", stack,
                               "--format", "json"], cwd=root, env=env, capture_output=True, text=True)
        if proc.returncode in (0, 1):
            try:
                doc = json.loads(proc.stdout)
                if doc.get("resources") and "inputs" in doc["resources"][0]:
                    return doc, "base code"
            except ValueError:
                pass
        elif proc.returncode == 2 and "config error" in proc.stderr:
            return None, proc.stderr.strip()
    from fleet.errors import ConfigError
    from fleet.plan import make_plan
    from fleet.report import document

    try:
        return document(make_plan(stack, root)), "this checkout's code"
    except ConfigError as exc:
        return None, str(exc)


def compare(stack: str, ref: str, base: dict[str, Any] | None, head: dict[str, Any], engine: str) -> Diff:
    base_res = {r["urn"]: r for r in (base or {}).get("resources", [])}
    head_res = {r["urn"]: r for r in head["resources"]}
    added = [head_res[u] for u in sorted(head_res.keys() - base_res.keys())]
    removed = [base_res[u] for u in sorted(base_res.keys() - head_res.keys())]
    changed: list[Change] = []
    replacements: list[str] = []
    for urn in sorted(head_res.keys() & base_res.keys()):
        b, h = flatten(base_res[urn].get("inputs") or {}), flatten(head_res[urn].get("inputs") or {})
        fields = [(p, b.get(p), h.get(p)) for p in sorted(b.keys() | h.keys()) if b.get(p) != h.get(p)]
        if not fields:
            continue
        typ = head_res[urn]["type"]
        immutable = [p for p, _, _ in fields if any(p == f or p.startswith(f + ".") or p.startswith(f + "[")
                                                     for f in IMMUTABLE.get(typ, ()))]
        change = Change(urn, typ, fields, sorted({_field_root(p, IMMUTABLE.get(typ, ())) for p in immutable}))
        changed.append(change)
        if change.replaces and (typ in STATEFUL or typ == "kubernetes:core/v1:Namespace"):
            replacements.append(f"{urn} would be replaced: {', '.join(change.replaces)} changed")
    for r in removed:
        if r["type"] in STATEFUL:
            replacements.append(f"{r['urn']} would be deleted")
    gpu = []
    base_teams = {t["team"]: t for t in (base or {}).get("teams", [])}
    for t in head["teams"]:
        bt = base_teams.pop(t["team"], {})
        gpu.append({"team": t["team"], **{f: (bt.get(f, 0), t.get(f, 0)) for f in TEAM_FIELDS}})
    for name, bt in base_teams.items():
        gpu.append({"team": name, **{f: (bt.get(f, 0), 0) for f in TEAM_FIELDS}})

    def key(f: dict[str, Any]) -> tuple[str, str, str]:
        return (f["rule_id"], f["urn"], f["message"])

    base_f = {key(f): f for f in (base or {}).get("findings", [])}
    head_f = {key(f): f for f in head["findings"]}
    return Diff(stack, ref, engine, added, removed, changed, gpu,
                [head_f[k] for k in sorted(head_f.keys() - base_f.keys())], [base_f[k] for k in sorted(base_f.keys() - head_f.keys())],
                len(head_f.keys() & base_f.keys()), replacements, head["summary"]["exit_code"])


def _delta(before: float, after: float, money: bool = False) -> str:
    show = usd if money else str
    if before == after:
        return show(after)
    sign = "+" if after > before else "−"
    return f"{show(before)} → {show(after)} ({sign}{show(abs(after - before))})"


def _field_root(path: str, roots: tuple[str, ...]) -> str:
    return next(r for r in roots if path == r or path.startswith(r + ".") or path.startswith(r + "["))


def _short(urn: str) -> str:
    return urn.rsplit("::", 1)[-1]


def _value(v: Any) -> str:
    text = json.dumps(v) if not isinstance(v, str) else v
    return text if len(text) <= 80 else text[:77] + "..."


def markdown(d: Diff, head_secret_paths: dict[str, set[str]] | None = None) -> str:
    icon = "❌" if d.exit_code else "✅"
    lines = [f"### {icon} vllm-fleet plan `{d.stack}` vs `{d.base_ref}`", "",
             f"{len(d.added)} added, {len(d.changed)} changed, {len(d.removed)} removed · findings: {len(d.findings_new)} new, "
             f"{len(d.findings_fixed)} fixed, {d.findings_remaining} remaining · base planned with {d.base_engine}.", ""]
    if d.stateful_replacements:
        lines += ["**Stateful resources would be replaced or deleted (data loss):**", ""]
        lines += [f"- `{r}`" for r in d.stateful_replacements] + [""]
    lines += ["| team | GPUs at min | GPUs at max | GPU quota | $/h at min | $/h at max |", "|---|---:|---:|---:|---:|---:|"]
    for g in d.gpu:
        cells = [_delta(g[f][0], g[f][1], money=f.startswith("usd")) for f in TEAM_FIELDS]
        lines.append(f"| {g['team']} | " + " | ".join(cells) + " |")
    lines.append("")
    if d.findings_new:
        lines += ["**New findings**", "", "| rule | level | resource | message |", "|---|---|---|---|"]
        lines += [f"| {f['rule_id']} | {f['level']} | `{f['resource']}` | {f['message']} |" for f in d.findings_new] + [""]
    if d.findings_fixed:
        lines += ["<details><summary>Fixed findings</summary>", ""]
        lines += [f"- {f['rule_id']} `{f['resource']}`: {f['message']}" for f in d.findings_fixed] + ["", "</details>", ""]
    for title, items in (("Added", d.added), ("Removed", d.removed)):
        if items:
            lines += [f"<details><summary>{title} ({len(items)})</summary>", ""]
            lines += [f"- `{r['type']}` `{_short(r['urn'])}`" for r in items] + ["", "</details>", ""]
    if d.changed:
        lines += [f"<details><summary>Changed ({len(d.changed)})</summary>", ""]
        for c in d.changed:
            secrets = (head_secret_paths or {}).get(c.urn, set())
            lines.append(f"- `{c.type}` `{_short(c.urn)}`" + (f" — **replaces**: {', '.join(c.replaces)}" if c.replaces else ""))
            for p, before, after in c.fields[:30]:
                lines.append(f"  - `{p}`: `{_value(_mask(p, before, secrets))}` → `{_value(_mask(p, after, secrets))}`")
            if len(c.fields) > 30:
                lines.append(f"  - … {len(c.fields) - 30} more fields")
        lines += ["", "</details>", ""]
    text = "\n".join(lines) + "\n"
    if len(text) > GITHUB_COMMENT_LIMIT - 200:
        text = text[: GITHUB_COMMENT_LIMIT - 400] + "\n\n… truncated to fit a PR comment; run `vllm-fleet plan --base` locally.\n"
    return text


def run(root: Path, stack: str, ref: str, fmt: str) -> int:
    from fleet.errors import ConfigError
    from fleet.plan import make_plan
    from fleet.report import document

    try:
        head_plan = make_plan(stack, root)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    head = document(head_plan)
    with tempfile.TemporaryDirectory(prefix="vllm-fleet-base-") as tmp:
        try:
            export_tree(root, ref, Path(tmp))
        except subprocess.CalledProcessError as exc:
            print(f"--base {ref}: cannot read it from git ({exc.stderr.decode(errors='replace').strip()})", file=sys.stderr)
            return 2
        stack_file = Path(tmp) / "stacks" / f"Pulumi.{stack}.yaml"
        base, engine = (plan_document(Path(tmp), stack, use_own_code=True) if stack_file.exists()
                        else (None, f"stack {stack} does not exist at {ref}"))
    if base is None:
        engine = f"nothing (the base does not plan: {engine.splitlines()[0] if engine else 'no stack'})"
    d = compare(stack, ref, base, head, engine)
    secret_paths = {c.urn: set(c.secret_paths) for c in head_plan.resources if c.secret_paths}
    if fmt == "json":
        print(json.dumps({"stack": stack, "base": ref, "base_planned_with": engine,
                          "added": [r["urn"] for r in d.added], "removed": [r["urn"] for r in d.removed],
                          "changed": [{"urn": c.urn, "fields": [p for p, _, _ in c.fields], "replaces": c.replaces} for c in d.changed],
                          "gpu": d.gpu, "findings": {"new": d.findings_new, "fixed": d.findings_fixed, "remaining": d.findings_remaining},
                          "stateful_replacements": d.stateful_replacements, "exit_code": d.exit_code}, indent=2))
    else:
        print(markdown(d, secret_paths), end="")
    return d.exit_code
