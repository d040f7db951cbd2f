"""`vllm-fleet upgrade vllm VERSION`: move the stacks to another vLLM release.

The release's flag table is generated from its own parser when it is not bundled (fleet/vllm/table_gen.py), every
model of every stack is checked against it through the loader the plan uses, and the report says per model which
of the flags it passes were removed or renamed, which defaults changed under it, which metrics its alerts,
dashboards, autoscaler and endpoint picker read that the release no longer exports, and how its sizing moves. The
stack files whose models all pass are then edited in place (fleet/yamledit.py keeps comments and layout).
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleet.capacity.memory import Sizing, engine_profile_for
from fleet.errors import ConfigError, ConfigIssue
from fleet.spec.engine_config import EngineConfig
from fleet.spec.load import load
from fleet.spec.resolved import FleetSpec, ResolvedModel
from fleet.spec.stack_file import display_path, known_stacks, read_stack_file, stack_path
from fleet.versions import FLAG_TABLE_DIR, flag_table_path, parse_version, unshipped_tables
from fleet.vllm import table_gen
from fleet.vllm.flags import FlagTable, Option, has_table, normal_flag, renames, table
from fleet.yamledit import EditError, replace_scalars
from fleet.yamlsrc import Path as YamlPath

VLLM_KEY = "vllm-fleet:vllm"
PLACEHOLDER_DIGEST = "sha256:" + "0" * 64
# Metric names a removed name was replaced by (vLLM release notes; fleet.vllm.flags.metric says the same).
METRIC_RENAMES = {"vllm:gpu_cache_usage_perc": "vllm:kv_cache_usage_perc", "vllm:time_per_output_token_seconds": "vllm:inter_token_latency_seconds"}
METRIC = re.compile(r"vllm:[a-z0-9_]+")
SUFFIXES = ("_total", "_bucket", "_sum", "_count")
# Flags whose value the fit check reads (fleet.spec.architecture.settings_for): a model that leaves one to vLLM's
# default is sized for the old default.
SIZED_FLAGS = ("--gpu-memory-utilization", "--max-model-len", "--max-num-seqs", "--max-num-batched-tokens", "--kv-cache-dtype",
               "--block-size", "--dtype", "--enforce-eager")


class UpgradeError(Exception):
    """The upgrade cannot start (no table and none can be generated, a stack that cannot be read); nothing written."""


# ---------------------------------------------------------------------------------------------------------- tables


@dataclass(frozen=True)
class TableDiff:
    """What changed between two releases' `vllm serve` parsers and metrics."""

    old: str
    new: str
    removed: dict[str, str | None]              # flag → the replacement to use, when one is known
    renamed: dict[str, str]                     # flag → the flag the new release calls it
    defaults: dict[str, tuple[Any, Any]]        # flag → (old default, new default)
    added: tuple[str, ...]
    metrics_removed: tuple[str, ...]
    metrics_added: tuple[str, ...]


def _canonical(flags: FlagTable) -> dict[str, Option]:
    return {o.flag: o for o in flags.options.values()}


def diff_tables(old: str, new: str) -> TableDiff:
    a, b = table(old), table(new)
    old_opts, new_opts = _canonical(a), _canonical(b)
    by_dest = {o.dest: o for o in new_opts.values()}
    removed: dict[str, str | None] = {}
    renamed: dict[str, str] = {}
    for flag, opt in old_opts.items():
        now = b.lookup(flag)
        if now is not None:
            if now.flag != flag:  # still accepted, as another option's alias
                renamed[flag] = now.flag
            continue
        same = by_dest.get(opt.dest)
        if same is not None and same.flag not in old_opts:
            renamed[flag] = same.flag
        else:
            removed[flag] = renames().get(flag)
    defaults = {f: (o.default, new_opts[f].default) for f, o in old_opts.items()
                if f in new_opts and o.default != new_opts[f].default}
    added = tuple(sorted(f for f in new_opts if f not in old_opts and f not in renamed.values()))
    return TableDiff(old, new, removed, renamed, defaults, added, tuple(sorted(a.metrics - b.metrics)),
                     tuple(sorted(b.metrics - a.metrics)))


def _fields(text: str) -> dict[str, str] | None:
    """`Config(a=1, b='x')` or `{'a': 1}` as {a: '1', b: "'x'"} (top level only); None for other values."""
    m = re.fullmatch(r"\s*(?:[A-Za-z_]\w*\((.*)\)|\{(.*)\})\s*", text, re.S)
    if m is None:
        return None
    body, dict_form = (m.group(1), False) if m.group(1) is not None else (m.group(2), True)
    parts, depth, start = [], 0, 0
    quote: str | None = None
    for i, ch in enumerate(body):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(body[start:i])
            start = i + 1
    parts.append(body[start:])
    out = {}
    for part in (p.strip() for p in parts if p.strip()):
        key, sep, value = part.partition(": " if dict_form else "=")
        if not sep:
            return None
        out[key.strip().strip("'\"")] = value.strip()
    return out


def describe_default(old: Any, new: Any) -> str:
    """A changed default in a line: whole values when short, the fields that differ for config objects."""
    a, b = json.dumps(old), json.dumps(new)
    fa = _fields(old) if isinstance(old, str) else _fields(str(old)) if isinstance(old, dict) else None
    fb = _fields(new) if isinstance(new, str) else _fields(str(new)) if isinstance(new, dict) else None
    if fa is not None and fb is not None and len(a) + len(b) > 80:
        changes = [f"{k} {fa[k]} → {fb[k]}" for k in fa if k in fb and fa[k] != fb[k]]
        changes += [f"+{k}={fb[k]}" for k in fb if k not in fa] + [f"-{k}" for k in fa if k not in fb]
        return ", ".join(changes)
    if len(a) + len(b) > 120:
        return f"{a[:50]}… → {b[:50]}…"
    return f"{a} → {b}"


# ---------------------------------------------------------------------------------------------------------- models


@dataclass
class ModelReport:
    name: str                                   # team/model (a P/D role: team/model-role)
    where: str                                  # file:line of the model in its team file
    removed: list[str] = field(default_factory=list)
    renamed: list[str] = field(default_factory=list)
    defaults_applied: list[str] = field(default_factory=list)   # changed defaults of flags the model does not pass
    defaults_overridden: list[str] = field(default_factory=list)  # changed defaults of flags it passes (no effect)
    metrics: list[str] = field(default_factory=list)
    sizing: str = ""
    problems: list[str] = field(default_factory=list)


def passed_flags(args: list[str]) -> list[str]:
    return [normal_flag(a.split("=", 1)[0]) for a in args if a.startswith("--")]


def metrics_read(cfg: Any, spec: FleetSpec, model: ResolvedModel) -> dict[str, set[str]]:
    """consumer → the vLLM metric names it reads for this model, from the objects the stack renders."""
    from fleet.render.gateway import endpoint_picker, gateway_routed, owns_pool
    from fleet.render.observability import adapter_rules, dashboard, prometheus_rule
    from fleet.render.workload import autoscaler

    def names(objects: list[Any]) -> set[str]:
        found = set(METRIC.findall(json.dumps(objects, default=str)))
        return {next((n.removesuffix(s) for s in SUFFIXES if n.endswith(s) and n.removesuffix(s) in known), n) for n in found}

    known = table(cfg.vllm.version).metrics
    out: dict[str, set[str]] = {}
    if cfg.observability.prometheus_operator:
        out["alerts"] = names([prometheus_rule(cfg, model)])
    team = next(t for t in spec.teams if t.name == model.team)
    if cfg.observability.dashboards:
        out["dashboards"] = names([dashboard(cfg, team)])
    scaler = autoscaler(cfg, model)
    if scaler is not None:
        out["autoscaler"] = names([scaler, adapter_rules(cfg)] if cfg.autoscaling.backend == "hpa" else [scaler])
    if cfg.gateway.kind == "inference" and gateway_routed(model) and owns_pool(model):
        out["endpoint picker"] = names(endpoint_picker(cfg, model))
    return {k: v for k, v in out.items() if v}


def _sizing(old: Sizing | None, new: Sizing | None) -> str:
    if old is None and new is None:
        return "not sized (architecture not in the catalog)"
    if old is None or new is None:
        got = old or new
        assert got is not None
        return f"{got.kv_cache_tokens:,} KV tokens, {'fits' if got.fits else 'does not fit'}"
    same = old.kv_cache_tokens == new.kv_cache_tokens and old.fits == new.fits
    verdict = "fits" if new.fits else f"does not fit: {new.reason}"
    return (f"KV cache {old.kv_cache_tokens:,} → {new.kv_cache_tokens:,} tokens, max concurrency {old.max_concurrency:.1f} → "
            f"{new.max_concurrency:.1f}, {verdict}" + (" (unchanged)" if same else ""))


def model_report(diff: TableDiff | None, old_spec: FleetSpec | None, model: ResolvedModel, new: ResolvedModel | None,
                 new_spec: FleetSpec | None) -> ModelReport:
    from fleet.render.workload import vllm_args

    report = ModelReport(name=f"{model.team}/{model.name}", where=f"{model.source}:{model.line}")
    if diff is not None and old_spec is not None:
        passed = set(passed_flags(vllm_args(old_spec.config, model)))
        old_flags = table(diff.old)
        spelled = {f: (old_flags.lookup(f).flag if old_flags.lookup(f) else f) for f in passed}  # type: ignore[union-attr]
        for given, flag in sorted(spelled.items()):
            if flag in diff.removed:
                hint = diff.removed[flag]
                report.removed.append(f"{given}" + (f" (use {hint})" if hint else ""))
            elif flag in diff.renamed:
                report.renamed.append(f"{given} → {diff.renamed[flag]}")
        for flag in sorted(diff.defaults):
            if flag in spelled.values():
                report.defaults_overridden.append(flag)
                continue
            report.defaults_applied.append(flag)
            if flag in SIZED_FLAGS:
                a, b = diff.defaults[flag]
                report.problems.append(f"{flag}: the default the fit check assumes changed ({describe_default(a, b)}) and the model "
                                       "does not pass it — set the field in the team file, or pass the value explicitly")
        for consumer, names in sorted(metrics_read(old_spec.config, old_spec, model).items()):
            for name in sorted(names):
                if name in diff.metrics_removed:
                    hint = METRIC_RENAMES.get(name)
                    report.metrics.append(f"{consumer}: {name} is not exported by {diff.new}" + (f" — use {hint}" if hint else ""))
    report.sizing = _sizing(model.sizing, new.sizing if new is not None else None)
    return report


# ---------------------------------------------------------------------------------------------------------- stacks


@dataclass
class StackReport:
    stack: str
    file: str
    line: int
    current: str | None
    target: str
    models: list[ModelReport] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)     # the re-check's errors outside any one model
    notes: list[str] = field(default_factory=list)
    edits: dict[YamlPath, str] = field(default_factory=dict)
    written: bool = False

    @property
    def passes(self) -> bool:
        return not self.problems and not any(m.problems or m.metrics for m in self.models)


def _issues(stack: str, root: Path, engine: EngineConfig | None = None) -> tuple[FleetSpec | None, list[ConfigIssue]]:
    try:
        return load(stack, root, engine), []
    except ConfigError as exc:
        return None, list(exc.issues)


def _vllm_block(engine: EngineConfig) -> dict[str, Any]:
    try:
        value = json.loads(engine.values.get(VLLM_KEY, "{}"))
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _raw_key(data: Any) -> str | None:
    config = data.get("config") if isinstance(data, dict) else None
    if not isinstance(config, dict):
        return None
    return next((k for k in (VLLM_KEY, "vllm") if isinstance(config.get(k), dict)), None)


def check_stack(root: Path, stack: str, target: str) -> StackReport:
    engine, issues, _ = read_stack_file(root, stack)
    display = display_path(root, stack_path(root, stack))
    if engine is None or issues:
        raise UpgradeError("\n".join(str(i) for i in issues) or f"{display}: cannot be read")
    block = _vllm_block(engine)
    key = _raw_key(engine.source.data)
    vpath: YamlPath = ("config", key or VLLM_KEY, "version")
    current = block.get("version") if isinstance(block.get("version"), str) else None
    report = StackReport(stack, display, engine.source.line_of(("config", VLLM_KEY, "version")), current, target)
    if key is None or "version" not in block:
        report.problems.append(f"{display}: config.{VLLM_KEY} sets no version — add `version: {target}` under it")
        return report
    new_block = {**block, "version": target}
    edits: dict[YamlPath, str] = {vpath: target}
    if current != target:
        _image_edits(block, new_block, key, current, target, report, edits)
    new_engine = EngineConfig(values={**engine.values, VLLM_KEY: json.dumps(new_block)}, secret_keys=engine.secret_keys,
                              source=engine.source, environments=engine.environments, from_stack_file=True)
    old_spec, _ = _issues(stack, root) if current is not None and has_table(current) else (None, [])
    new_spec, new_issues = _issues(stack, root, new_engine)
    diff = diff_tables(current, target) if old_spec is not None and current is not None and current != target else None
    new_models = {(m.team, m.name): m for m in new_spec.models} if new_spec is not None else {}
    for model in (old_spec.models if old_spec is not None else new_spec.models if new_spec is not None else []):
        report.models.append(model_report(diff, old_spec, model, new_models.get((model.team, model.name)), new_spec))
    by_model = {m.name: m for m in report.models}
    prefix = {f"{m.team}/{m.name}": (m.source, m.path.rsplit(".", 1)[0]) for m in (old_spec.models if old_spec else [])}
    for issue in new_issues:
        owner = next((name for name, (src, p) in prefix.items() if issue.file == src and (issue.path == p or issue.path.startswith(p + ".")
                                                                                            or issue.path.startswith(p + "["))), None)
        if owner in by_model:
            by_model[owner].problems.append(str(issue))
        else:
            report.problems.append(str(issue))
    report.edits = edits
    return report


def _image_edits(block: dict[str, Any], new_block: dict[str, Any], key: str, current: str | None, target: str, report: StackReport,
                 edits: dict[YamlPath, str]) -> None:
    """A digest names one image: the old release's digest under the new version would run the old server with
    arguments compiled for the new one. It becomes the placeholder that policy D15 refuses until it is resolved."""
    pin = f"resolve it before deploying (`vllm-fleet pin --stack {report.stack}`, or `crane digest IMAGE`)"
    if isinstance(block.get("digest"), str) and block["digest"] != PLACEHOLDER_DIGEST:
        edits[("config", key, "digest")] = new_block["digest"] = PLACEHOLDER_DIGEST
        report.notes.append(f"vllm.digest named the v{current} image: set to the placeholder — {pin}")
    efa = block.get("efa")
    if isinstance(efa, dict):
        new_efa = dict(efa)
        tag = efa.get("tag")
        if isinstance(tag, str) and current and current in tag:
            edits[("config", key, "efa", "tag")] = new_efa["tag"] = tag.replace(current, target)
            report.notes.append(f"vllm.efa.tag {tag} → {new_efa['tag']}: check that {efa.get('repository')} publishes it")
        elif isinstance(tag, str):
            report.problems.append(f"{report.file}: config.{key}.efa.tag '{tag}' does not name vLLM {current} — set the tag of "
                                   f"the {target} EFA image by hand, then run the upgrade again")
        if isinstance(efa.get("digest"), str) and efa["digest"] != PLACEHOLDER_DIGEST:
            edits[("config", key, "efa", "digest")] = new_efa["digest"] = PLACEHOLDER_DIGEST
            report.notes.append(f"vllm.efa.digest named the {current} EFA image: set to the placeholder — {pin}")
        new_block["efa"] = new_efa


# ---------------------------------------------------------------------------------------------------------- command


@dataclass
class Upgrade:
    target: str
    table: Path
    generated: bool
    diffs: dict[str, TableDiff]
    stacks: list[StackReport]

    @property
    def passes(self) -> bool:
        return all(s.passes for s in self.stacks)


Generator = Callable[[str, Path], Path]


def _generate(version: str, out_dir: Path, index_url: str | None) -> Path:
    try:
        return table_gen.generate(version, out_dir, index_url=index_url)
    except table_gen.GenerationError as exc:
        raise UpgradeError(f"vllm-fleet upgrade vllm {version}: {exc}; nothing was written") from None


def upgrade_vllm(root: Path, target: str, stacks: list[str] | None = None, dry_run: bool = False,
                 generate: Generator | None = None, index_url: str | None = None) -> Upgrade:
    """Check `stacks` (default: all) against vLLM `target`, generating its table first when it is not bundled (into the
    catalog, or a temporary directory on a dry run), and write the stack files whose models all pass unless `dry_run`."""
    names = stacks or known_stacks(root)
    unknown = [s for s in names if not stack_path(root, s).is_file()]
    if unknown:
        raise UpgradeError(f"--stack {unknown[0]}: no stacks/Pulumi.{unknown[0]}.yaml (stacks: {', '.join(known_stacks(root)) or 'none'})")
    gen = generate or (lambda version, out: _generate(version, out, index_url))
    with ExitStack() as scope:
        path = flag_table_path(target)
        generated = path is None
        if path is None:
            out = FLAG_TABLE_DIR
            if dry_run:
                out = Path(scope.enter_context(tempfile.TemporaryDirectory(prefix="vllm-fleet-table-")))
                scope.enter_context(unshipped_tables(out))
            path = gen(target, out)
            table.cache_clear()
        reports = [check_stack(root, s, target) for s in names]
        diffs = {r.current: diff_tables(r.current, target) for r in reports
                 if r.current and r.current != target and has_table(r.current)}
        result = Upgrade(target, path, generated, diffs, reports)
    if not dry_run:
        for r in result.stacks:
            if r.passes and r.current != target:
                _write(root, r)
    return result


def _write(root: Path, report: StackReport) -> None:
    path = stack_path(root, report.stack)
    text = path.read_text(encoding="utf-8")
    try:
        new = replace_scalars(text, report.edits)
    except (EditError, ValueError) as exc:
        report.problems.append(f"{report.file}: not edited — {exc}; set vllm.version: {report.target} by hand")
        return
    path.write_text(new, encoding="utf-8")
    report.written = True


def lines(result: Upgrade, root: Path) -> Iterator[str]:
    """The report, as the command prints it."""
    shipped = display_path(root, result.table) if result.table.is_relative_to(root) else str(result.table)
    if result.generated and result.table.parent != FLAG_TABLE_DIR:
        shipped = "not shipped (dry run)"
    yield (f"vLLM {result.target}: flag table {'generated from its parser, ' if result.generated else ''}{shipped}")
    for old, d in sorted(result.diffs.items(), key=lambda kv: parse_version(kv[0])):
        yield (f"  {old} → {d.new}: {len(d.added)} flags added, {len(d.removed)} removed, {len(d.renamed)} renamed, "
               f"{len(d.defaults)} defaults changed; metrics {len(d.metrics_removed)} removed, {len(d.metrics_added)} added")
        for flag, hint in sorted(d.removed.items()):
            yield f"    removed {flag}" + (f" (use {hint})" if hint else "")
        for flag, new in sorted(d.renamed.items()):
            yield f"    renamed {flag} → {new}"
        for flag, (was, now) in sorted(d.defaults.items()):
            yield f"    default of {flag}: {describe_default(was, now)}"
        for name in d.metrics_removed:
            yield f"    metric removed {name}" + (f" (use {METRIC_RENAMES[name]})" if name in METRIC_RENAMES else "")
        a, b = engine_profile_for(old), engine_profile_for(d.new)
        yield f"    sizing profile {a} → {b}" + (" (unchanged)" if a == b else "")
    for s in result.stacks:
        head = f"{s.current} → {s.target}" if s.current != s.target else f"already {s.target}"
        yield f"stack {s.stack} ({s.file}:{s.line} vllm.version {head})"
        for m in s.models:
            yield f"  {m.name} ({m.where}): {'FAILS' if m.problems or m.metrics else 'ok'}"
            yield f"    flags removed: {', '.join(m.removed) or 'none'}; renamed: {', '.join(m.renamed) or 'none'}"
            if m.defaults_applied or m.defaults_overridden:
                yield (f"    changed defaults: apply (not passed): {', '.join(m.defaults_applied) or 'none'}; no effect (passed "
                       f"explicitly): {', '.join(m.defaults_overridden) or 'none'}")
            yield f"    metrics: {'; '.join(m.metrics) or 'every metric its alerts, dashboards, autoscaler and picker read is exported'}"
            yield f"    sizing: {m.sizing}"
            for p in m.problems:
                yield f"    error: {p}"
        for p in s.problems:
            yield f"  error: {p}"
        for n in s.notes:
            yield f"  note: {n}"
        if s.current == s.target:
            continue
        if s.written:
            yield f"  wrote {s.file}"
        elif s.passes:
            yield f"  would write {s.file} (dry run)"
        else:
            yield "  not written: fix the errors above, then run the upgrade again"


# ---------------------------------------------------------------------------------------------------------- AMIs

POOLS_KEY = "vllm-fleet:gpu_pools"
AMI_RELEASE = {"al2023": re.compile(r"^\d+\.\d+\.\d+-20\d{6}$"), "bottlerocket": re.compile(r"^\d+\.\d+\.\d+-[0-9a-f]{8}$")}
AMI_EXAMPLE = {"al2023": "1.33.13-20260714", "bottlerocket": "1.46.0-<8-hex commit>"}


@dataclass
class PoolChange:
    stack: str
    pool: str
    where: str
    old: str | None
    new: str
    rollout: str


@dataclass
class AmiUpgrade:
    family: str
    target: str
    changes: list[PoolChange]
    problems: dict[str, list[str]]     # stack → errors of the check with the new release (that stack is not written)
    written: list[str]

    @property
    def passes(self) -> bool:
        return not any(self.problems.values())


def upgrade_ami(root: Path, family: str, target: str, stacks: list[str] | None = None, dry_run: bool = False) -> AmiUpgrade:
    """Pin every `family` pool of `stacks` (default: all) to the EKS AMI release `target`, checked through the loader."""
    if not AMI_RELEASE[family].match(target):
        raise UpgradeError(f"vllm-fleet upgrade ami-{family} {target}: not a {family} release as EKS names it (e.g. "
                           f"{AMI_EXAMPLE[family]}) — nothing was written")
    names = stacks or known_stacks(root)
    unknown = [s for s in names if not stack_path(root, s).is_file()]
    if unknown:
        raise UpgradeError(f"--stack {unknown[0]}: no stacks/Pulumi.{unknown[0]}.yaml (stacks: {', '.join(known_stacks(root)) or 'none'})")
    result = AmiUpgrade(family, target, [], {}, [])
    pending: dict[str, dict[YamlPath, str]] = {}
    for stack in names:
        engine, issues, _ = read_stack_file(root, stack)
        display = display_path(root, stack_path(root, stack))
        if engine is None or issues:
            raise UpgradeError("\n".join(str(i) for i in issues) or f"{display}: cannot be read")
        config = engine.source.data.get("config") or {}
        key = next((k for k in (POOLS_KEY, "gpu_pools") if isinstance(config.get(k), list)), None)
        try:
            pools = json.loads(engine.values.get(POOLS_KEY, "[]"))
        except json.JSONDecodeError:
            pools = []
        if key is None or not isinstance(pools, list):
            continue
        edits: dict[YamlPath, str] = {}
        for i, pool in enumerate(pools):
            if not isinstance(pool, dict) or pool.get("ami_family", "al2023") != family or pool.get("ami_version") == target:
                continue
            pool["ami_version"] = target
            edits[("config", key, i, "ami_version")] = target
            rollout = ("Karpenter drifts every node of the pool to the new AMI, as its NodePool's disruption budget allows"
                       if pool.get("provisioner") == "karpenter" else
                       "EKS replaces the node group's nodes with the new AMI, one unavailable at a time (update_config)")
            result.changes.append(PoolChange(stack, str(pool.get("name")), f"{display}:{engine.source.line_of(('config', POOLS_KEY, i))}",
                                             _raw_ami(config[key], i), target, rollout))
        if not edits:
            continue
        new_engine = EngineConfig(values={**engine.values, POOLS_KEY: json.dumps(pools)}, secret_keys=engine.secret_keys,
                                  source=engine.source, environments=engine.environments, from_stack_file=True)
        _, problems = _issues(stack, root, new_engine)
        result.problems[stack] = [str(p) for p in problems]
        if not problems:
            pending[stack] = edits
    if not dry_run:
        from fleet.yamledit import set_scalars

        for stack, edits in pending.items():
            path = stack_path(root, stack)
            try:
                path.write_text(set_scalars(path.read_text(encoding="utf-8"), edits), encoding="utf-8")
            except EditError as exc:
                result.problems[stack] = [f"{display_path(root, path)}: not edited — {exc}; set ami_version: {target} by hand"]
                continue
            result.written.append(display_path(root, path))
    return result


def _raw_ami(pools: list[Any], i: int) -> str | None:
    pool = pools[i] if i < len(pools) else None
    value = pool.get("ami_version") if isinstance(pool, dict) else None
    return str(value) if value is not None else None


def ami_lines(result: AmiUpgrade) -> Iterator[str]:
    yield f"{result.family} AMI release {result.target}"
    if not result.changes:
        yield f"  no {result.family} pool to change"
    for c in result.changes:
        yield f"  stack {c.stack} pool {c.pool} ({c.where}): {c.old or 'unpinned'} → {c.new}"
        yield f"    rolls every node of the pool: {c.rollout}"
    for stack, problems in sorted(result.problems.items()):
        for p in problems:
            yield f"  error: {p}"
        if problems:
            yield f"  stack {stack} not written: fix the errors above, then run the upgrade again"
    for f in result.written:
        yield f"  wrote {f}"
