"""Load one stack: the stack file merged with every team file, validated, with derived values filled.

Every problem of a run is collected and raised together as a ConfigError whose issues name the file,
the line, the field path and the fix.
"""

from __future__ import annotations

import difflib
import types
import typing
from dataclasses import dataclass
from pathlib import Path as FsPath
from typing import Any

from pydantic import BaseModel, ValidationError

from fleet.catalog import InstanceType, gpu_instance, gpu_instance_types
from fleet.errors import ConfigError, ConfigIssue, format_path
from fleet.sizing import Arch, Settings, Sizing, arch_from_config_json, model_catalog, size
from fleet.spec.stack import GpuPool, StackConfig, StackFile
from fleet.spec.team import ModelFields, ModelSpec, Team
from fleet.vllm.compiler import PROFILES, FlagError, compile_args
from fleet.yamlsrc import Located, Path, load_file

SECRET_FIELDS = {"api_key", "hf_token"}
# Flags with a typed field in the team file, or that only a Secret may carry; extra_args may not set them.
RESERVED_FLAGS = {
    "--model", "--host", "--port", "--api-key", "--served-model-name", "--dtype", "--tensor-parallel-size",
    "--pipeline-parallel-size", "--gpu-memory-utilization", "--max-model-len", "--max-num-seqs",
    "--max-num-batched-tokens", "--quantization", "--kv-cache-dtype", "--enable-prefix-caching",
    "--no-enable-prefix-caching", "--enable-chunked-prefill", "--no-enable-chunked-prefill", "--enforce-eager",
    "--trust-remote-code", "--chat-template", "--revision", "--enable-lora", "--lora-modules", "--max-lora-rank",
    "--max-loras", "--speculative-config", "--structured-outputs-config", "--tool-call-parser",
    "--enable-auto-tool-choice", "--limit-mm-per-prompt", "--allowed-media-domains", "--runner", "--convert",
    "-tp", "-pp",
}


@dataclass(frozen=True)
class ResolvedModel:
    """A model of one team in one stack, overrides applied and derived values filled."""

    team: str
    namespace: str
    source: str
    spec: ModelSpec
    pool: GpuPool
    instance: InstanceType
    gpus_per_replica: int
    nodes_per_replica: int
    gpus_per_pod: int
    min_replicas: int
    max_replicas: int
    sizing: Sizing | None = None      # None when the architecture is unknown (not in the catalog, none given)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def multi_node(self) -> bool:
        return self.nodes_per_replica > 1


@dataclass(frozen=True)
class ResolvedTeam:
    name: str
    namespace: str
    source: str
    owners: tuple[str, ...]
    rbac_group: str
    gpu_quota: int
    models: tuple[ResolvedModel, ...]


@dataclass(frozen=True)
class FleetSpec:
    stack: str
    root: str
    source: str
    config: StackConfig
    teams: tuple[ResolvedTeam, ...]

    @property
    def models(self) -> list[ResolvedModel]:
        return [m for t in self.teams for m in t.models]


# --------------------------------------------------------------------------------------------- errors

def _unwrap(annotation: Any) -> list[Any]:
    """The concrete types inside Optional/Union/Annotated/list/dict annotations."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [t for a in typing.get_args(annotation) for t in _unwrap(a)]
    return [annotation]


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Keys allowed at `loc` (the location of an unknown key's parent) by walking the model types."""
    current: list[Any] = [model]
    for part in loc:
        nxt: list[Any] = []
        for typ in current:
            origin = typing.get_origin(typ)
            if isinstance(typ, type) and issubclass(typ, BaseModel) and isinstance(part, str):
                for name, info in typ.model_fields.items():
                    if (info.alias or name) == part:
                        nxt.extend(_unwrap(info.annotation))
            elif origin is list and isinstance(part, int):
                nxt.extend(_unwrap(typing.get_args(typ)[0]))
            elif origin is dict:
                nxt.extend(_unwrap(typing.get_args(typ)[1]))
        current = nxt
    keys: list[str] = []
    for typ in current:
        if isinstance(typ, type) and issubclass(typ, BaseModel):
            keys.extend(info.alias or name for name, info in typ.model_fields.items())
    return keys


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _secret_fix(stack: str, name: str) -> str:
    return (f"a literal secret is refused — store it with `pulumi config set --stack {stack} --secret --path "
            f"'vllm-fleet:secrets.{name}' <value>` and reference it as `{{secret: {name}}}`")


def translate(exc: ValidationError, model: type[BaseModel], src: Located, stack: str,
              prefix: Path = (), line_path: Any = None) -> list[ConfigIssue]:
    """Pydantic errors → ConfigIssues with file, line, field path and a fix."""
    issues = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        typ = err["type"]
        value = err.get("input")
        full = (*prefix, *loc)
        path_for_line = line_path(full) if line_path else full
        line = src.line_of(path_for_line)
        shown = format_path(path_for_line)
        if typ == "extra_forbidden":
            key = str(loc[-1])
            allowed = _allowed_keys(model, loc[:-1])
            close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
            hint = f"did you mean '{close[0]}'?" if close else f"allowed keys: {', '.join(sorted(allowed))}"
            msg = f"unknown key '{key}' — {hint}"
        elif (loc and loc[-1] in SECRET_FIELDS and isinstance(value, str)) or (
                len(loc) >= 3 and loc[1] == "vllm-fleet:secrets" and isinstance(value, str)):
            stem = src.file.rsplit("/", 1)[-1].removesuffix(".yaml")
            name = str(loc[2]) if len(loc) >= 3 and loc[1] == "vllm-fleet:secrets" else f"{stem}-{loc[-1]}".replace("_", "-")
            msg = _secret_fix(stack, name)
        elif typ == "missing":
            msg = f"required field '{loc[-1]}' is missing — add it" if loc else "required field is missing"
            shown = format_path(full)
        elif typ in ("value_error", "assertion_error"):
            msg = str(err["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
        elif typ == "model_type" or typ == "dict_type":
            msg = f"{_short(value)} — expected a mapping of keys (see the schema)"
        elif typ == "list_type":
            msg = f"{_short(value)} — expected a list"
        else:
            msg = f"{_short(value)} — {err['msg']}"
        issues.append(ConfigIssue(src.file, line, shown, msg))
    return issues


# --------------------------------------------------------------------------------------------- load

def _rel(root: FsPath, path: FsPath) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def load_stack_file(root: FsPath, stack: str) -> tuple[StackConfig | None, Located, list[ConfigIssue]]:
    path = root / "stacks" / f"Pulumi.{stack}.yaml"
    display = _rel(root, path)
    if not path.exists():
        known = known_stacks(root)
        return None, Located(display, None), [ConfigIssue(display, 0, "", f"no such stack '{stack}' — known stacks: {', '.join(known) or 'none'}")]
    src, issues = load_file(str(path), display)
    if issues:
        return None, src, issues
    if not isinstance(src.data, dict):
        return None, src, [ConfigIssue(display, 1, "", "expected a mapping with a `config:` key")]
    try:
        parsed = StackFile.model_validate(src.data)
    except ValidationError as exc:
        return None, src, translate(exc, StackFile, src, stack)
    return parsed.config, src, []


def _stack_checks(cfg: StackConfig, src: Located) -> list[ConfigIssue]:
    issues = []
    if cfg.cluster.create is not None:
        p: Path = ("config", "vllm-fleet:cluster", "create")
        issues.append(ConfigIssue(src.file, src.line_of(p), format_path(p),
                                  "creating the cluster is not supported yet — create it separately and adopt it by `name`"))
    catalog = gpu_instance_types()
    names: dict[str, int] = {}
    for i, pool in enumerate(cfg.gpu_pools):
        base: Path = ("config", "vllm-fleet:gpu_pools", i)
        if pool.name in names:
            issues.append(ConfigIssue(src.file, src.line_of((*base, "name")), format_path((*base, "name")),
                                      f"'{pool.name}' is already the name of gpu_pools[{names[pool.name]}] — pool names must be unique"))
        names.setdefault(pool.name, i)
        facts = []
        for j, itype in enumerate(pool.instance_types):
            p = (*base, "instance_types", j)
            inst = catalog.get(itype)
            if inst is None:
                close = difflib.get_close_matches(itype, list(catalog), n=1, cutoff=0.7)
                hint = (f"did you mean '{close[0]}'?" if close else
                        "use a GPU instance type from fleet/catalog/gpus.yaml (g4dn, g5, g6, g6e, p4d, p4de, p5, p5e, p5en)")
                issues.append(ConfigIssue(src.file, src.line_of(p), format_path(p), f"'{itype}' is not a GPU instance type in the catalog — {hint}"))
                continue
            if itype not in cfg.allowed_instance_types:
                issues.append(ConfigIssue(src.file, src.line_of(p), format_path(p),
                                          f"'{itype}' is outside allowed_instance_types ({', '.join(cfg.allowed_instance_types)}) "
                                          "— add it there or pick an allowed type"))
            if pool.efa and not inst.efa:
                issues.append(ConfigIssue(src.file, src.line_of(p), format_path(p),
                                          f"'{itype}' does not support EFA but the pool sets efa: true — drop efa or use an EFA-capable type"))
            facts.append(inst)
        if len({(f.gpus, f.gpu_memory_gib) for f in facts}) > 1:
            p = (*base, "instance_types")
            shapes = ", ".join(f"{f.instance_type}={f.gpus}x{f.gpu_memory_gib:g}GiB" for f in facts)
            issues.append(ConfigIssue(src.file, src.line_of(p), format_path(p),
                                      f"instance types differ in GPU count or memory ({shapes}) — split them into separate pools so sizing is exact"))
        if len({f.architecture for f in facts}) > 1:
            p = (*base, "instance_types")
            issues.append(ConfigIssue(src.file, src.line_of(p), format_path(p), "instance types mix x86_64 and arm64 — one AMI type per pool; split the pool"))
        if cfg.tier == "prod" and pool.capacity_type == "spot" and not cfg.policy.allow_spot_in_prod:
            p = (*base, "capacity_type")
            issues.append(ConfigIssue(src.file, src.line_of(p), format_path(p),
                                      "spot GPU capacity in a prod stack — use on-demand or set policy.allow_spot_in_prod: true"))
    for j, allowed in enumerate(cfg.allowed_instance_types):
        if allowed not in catalog:
            p = ("config", "vllm-fleet:allowed_instance_types", j)
            issues.append(ConfigIssue(src.file, src.line_of(p), format_path(p), f"'{allowed}' is not a GPU instance type in the catalog"))
    repo = cfg.vllm.repository
    if not any(repo == r or repo.startswith(r.rstrip("/") + "/") for r in cfg.allowed_registries):
        p = ("config", "vllm-fleet:vllm", "repository")
        issues.append(ConfigIssue(src.file, src.line_of(p), format_path(p), f"'{repo}' is not in allowed_registries ({', '.join(cfg.allowed_registries)})"))
    from fleet.versions import parse_version
    if parse_version(cfg.vllm.version) < parse_version(cfg.policy.vllm_version_floor):
        p = ("config", "vllm-fleet:vllm", "version")
        issues.append(ConfigIssue(src.file, src.line_of(p), format_path(p),
                                  f"{cfg.vllm.version} is below the security floor {cfg.policy.vllm_version_floor} — upgrade the image"))
    return issues


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Per-stack override: top-level keys replace; nested mappings merge one level deep."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def _model_checks(stack: str, cfg: StackConfig, team: Team, spec: ModelSpec, src: Located,
                  where: Any, pools: dict[str, GpuPool]) -> tuple[ResolvedModel | None, list[ConfigIssue]]:
    issues: list[ConfigIssue] = []

    def issue(fieldname: str, msg: str) -> None:
        p = where(fieldname)
        issues.append(ConfigIssue(src.file, src.line_of(p), format_path(p), msg))

    for secret_field in ("api_key", "hf_token"):
        ref = getattr(spec, secret_field)
        if ref is not None and ref.secret is not None and ref.secret not in cfg.secrets:
            issue(secret_field, f"secret '{ref.secret}' is not set in stack {stack} — run "
                                f"`pulumi config set --stack {stack} --secret --path 'vllm-fleet:secrets.{ref.secret}' <value>`")
    pool = pools.get(spec.pool)
    if pool is None:
        close = difflib.get_close_matches(spec.pool, list(pools), n=1, cutoff=0.5)
        hint = f"did you mean '{close[0]}'?" if close else f"pools of stack {stack}: {', '.join(pools)}"
        issue("pool", f"'{spec.pool}' is not a GPU pool of stack {stack} — {hint}")
        return None, issues
    inst = gpu_instance(pool.instance_types[0])
    if inst is None:  # reported by the stack checks
        return None, issues
    tp = spec.tensor_parallel_size or 1
    pp = spec.pipeline_parallel_size or 1
    per_replica = tp * pp
    node_gpus = inst.gpus
    if per_replica <= node_gpus:
        if node_gpus % per_replica:
            field_name = "tensor_parallel_size" if pp == 1 else "pipeline_parallel_size"
            value = tp if pp == 1 else pp
            issue(field_name, f"{value} — tensor × pipeline parallel size ({per_replica}) must divide the pool's {node_gpus} GPUs ({inst.instance_type})")
        nodes, per_pod = 1, per_replica
    else:
        if per_replica % node_gpus:
            issue("tensor_parallel_size", f"{tp} — a replica spanning nodes needs tensor × pipeline parallel size ({per_replica}) "
                                          f"to be a multiple of the pool's {node_gpus} GPUs per node")
        nodes, per_pod = max(1, per_replica // node_gpus), node_gpus
        if nodes > 1 and not pool.efa and node_gpus >= 8:
            pass  # EFA advice belongs to the policy pack (advisory), not a config error
    if spec.autoscaling is not None:
        if cfg.autoscaling.backend == "none":
            issue("autoscaling", f"stack {stack} has autoscaling backend none — set fixed `replicas` or enable hpa/keda in the stack")
        lo, hi = spec.autoscaling.min_replicas, spec.autoscaling.max_replicas
        if lo == 0 and not cfg.autoscaling.allow_scale_to_zero:
            issue("autoscaling", f"min_replicas 0 needs autoscaling.backend keda with allow_scale_to_zero in stack {stack} — use min_replicas ≥ 1")
    else:
        lo = hi = spec.replicas or 1
    if hi * nodes > pool.max_size:
        issue("replicas" if spec.autoscaling is None else "autoscaling",
              f"{hi} replica(s) × {nodes} node(s) exceed pool '{pool.name}' max_size {pool.max_size} — raise the pool's max_size or lower replicas")
    if spec.disaggregated_prefill:
        issue("disaggregated_prefill", "disaggregated prefill/decode is not built by this stack — vLLM has no single-server flag "
                                       "for it (`--enable-disagg-prefill` never existed); run separate prefill and decode models "
                                       "with `--kv-transfer-config` in extra_args behind a P/D-aware router, or remove the field")
    if spec.trust_remote_code and not (spec.revision and len(spec.revision) == 40 and all(c in "0123456789abcdef" for c in spec.revision)):
        issue("trust_remote_code", "trust_remote_code needs `revision` pinned to a 40-hex commit (remote code runs at load; CVE-2025-66448)")
    if spec.quantization == "bitsandbytes" and spec.extra_args and any(a.startswith("--load-format") for a in spec.extra_args):
        issue("extra_args", "bitsandbytes sets --load-format itself — remove it from extra_args")
    if spec.extra_args:
        for k, arg in enumerate(spec.extra_args):
            flag = arg.split("=", 1)[0]
            if flag in RESERVED_FLAGS:
                p = (*where("extra_args"), k)
                typed = flag.lstrip("-").replace("-", "_").removeprefix("no_")
                fix = "use `api_key: {secret: <name>}`" if flag == "--api-key" else f"use the typed field `{typed}`"
                issues.append(ConfigIssue(src.file, src.line_of(p), format_path(p), f"'{flag}' has a typed field — {fix} instead of extra_args"))
    if not issues:
        try:
            compile_args(spec, cfg.vllm.version)
        except FlagError as exc:
            issue("extra_args" if spec.extra_args else "model", f"{exc}")
        except KeyError as exc:
            issue("model", str(exc.args[0]))
    sizing = None
    if not issues:
        arch, arch_issue = resolve_arch(spec, src)
        if arch_issue:
            issue("config_json", arch_issue)
        elif arch is not None:
            sizing = size(arch, settings_for(spec, inst.gpu_usable_memory_gib, inst.gpus, inst.gpu_model))
            if not sizing.fits:
                field_name = "max_model_len" if spec.max_model_len is not None else "tensor_parallel_size"
                placement = f"{per_replica}× {inst.gpu_model} ({pool.name}: {inst.instance_type})"
                fixes = "; ".join(sizing.fixes) if sizing.fixes else "no change within the catalog fits"
                issue(field_name, f"{spec.model} does not fit on {placement}: {sizing.reason} — fixes: {fixes}")
    if issues:
        return None, issues
    return ResolvedModel(
        team=team.name, namespace=f"team-{team.name}", source=src.file, spec=spec, pool=pool, instance=inst,
        gpus_per_replica=per_replica, nodes_per_replica=nodes, gpus_per_pod=per_pod, min_replicas=lo, max_replicas=hi,
        sizing=sizing,
    ), []


def resolve_arch(spec: ModelSpec, src: Located) -> tuple[Arch | None, str | None]:
    """The model's architecture: inline in the team file, from a local config.json, or from the catalog."""
    if spec.architecture is not None:
        a = spec.architecture
        return Arch(id=spec.model, params_b=a.params_b, layers=a.layers, kv_heads=a.kv_heads, head_dim=a.head_dim,
                    hidden_size=a.hidden_size, vocab_size=a.vocab_size, max_context=a.max_context,
                    active_params_b=a.active_params_b, family="moe" if a.active_params_b else "dense"), None
    if spec.config_json is not None:
        path = FsPath(src.file).parent / spec.config_json
        root_relative = FsPath.cwd() / path
        try:
            return arch_from_config_json(root_relative if root_relative.exists() else path, spec.model), None
        except (OSError, ValueError, KeyError) as exc:
            return None, f"cannot read {spec.config_json}: {exc} — point at a Hugging Face config.json or give `architecture:`"
    return model_catalog().get(spec.model), None


def settings_for(spec: ModelSpec, gpu_memory_gib: float, gpus_per_node: int, gpu_model: str | None = None) -> Settings:
    profile = PROFILES[spec.profile or "balanced"]
    return Settings(
        gpu_memory_gib=gpu_memory_gib, gpus_per_node=gpus_per_node,
        tensor_parallel_size=spec.tensor_parallel_size or 1, pipeline_parallel_size=spec.pipeline_parallel_size or 1,
        max_model_len=spec.max_model_len, gpu_memory_utilization=spec.gpu_memory_utilization or 0.9,
        dtype=spec.dtype or "auto", quantization=spec.quantization, kv_cache_dtype=spec.kv_cache_dtype or "auto",
        max_num_batched_tokens=spec.max_num_batched_tokens or profile.get("max_num_batched_tokens"),
        max_num_seqs=spec.max_num_seqs or profile.get("max_num_seqs"), enforce_eager=bool(spec.enforce_eager),
        gpu_model=gpu_model)


def known_stacks(root: FsPath) -> list[str]:
    return sorted(p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in (root / "stacks").glob("Pulumi.*.yaml"))


def _unknown_stack(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    hint = f"did you mean '{close[0]}'?" if close else f"known stacks: {', '.join(known)}"
    return f"no stack '{name}' (stacks/Pulumi.{name}.yaml) — {hint}"


def load_team(root: FsPath, path: FsPath, stack: str, cfg: StackConfig | None) -> tuple[ResolvedTeam | None, list[ConfigIssue]]:
    display = _rel(root, path)
    src, issues = load_file(str(path), display)
    if issues:
        return None, issues
    if not isinstance(src.data, dict):
        return None, [ConfigIssue(display, 1, "", "expected a mapping with name, owners, gpu_quota and models")]
    raw_models = src.data.get("models")
    bad_models: set[int] = set()
    try:
        team = Team.model_validate(src.data)
    except ValidationError as exc:
        # Report every schema error, then keep checking the team and the models that did validate.
        issues.extend(translate(exc, Team, src, stack))
        for err in exc.errors():
            loc = err["loc"]
            if loc and loc[0] == "models":
                if len(loc) > 1 and isinstance(loc[1], int):
                    bad_models.add(loc[1])
                else:
                    return None, issues
        try:
            team = Team.model_validate({**src.data, "models": []})
        except ValidationError:
            return None, issues
        good = [ModelSpec.model_validate(m) for i, m in enumerate(raw_models or []) if i not in bad_models]
        team = team.model_copy(update={"models": good})
    model_index = [i for i in range(len(raw_models or [])) if i not in bad_models]
    if team.name != path.stem:
        issues.append(ConfigIssue(display, src.line_of(("name",)), "name", f"'{team.name}' must match the file name '{path.stem}' — rename one of them"))
    known = known_stacks(root)
    seen: dict[str, int] = {}
    for i, m in zip(model_index, team.models, strict=True):
        if m.name in seen:
            issues.append(ConfigIssue(display, src.line_of(("models", i, "name")), f"models[{i}].name",
                                      f"'{m.name}' is already used by models[{seen[m.name]}] — model names are unique per team"))
        seen.setdefault(m.name, i)
        for s in m.stacks:
            if s not in known:
                where: Path = ("models", i, "stacks", s)
                issues.append(ConfigIssue(display, src.line_of(where), format_path(where), _unknown_stack(s, known)))
    for s in team.gpu_quota:
        if s not in known:
            issues.append(ConfigIssue(display, src.line_of(("gpu_quota", s)), f"gpu_quota.{s}", _unknown_stack(s, known)))
    if cfg is None or stack not in team.gpu_quota:
        return None, issues

    pools = {p.name: p for p in cfg.gpu_pools}
    resolved: list[ResolvedModel] = []
    for i in model_index:
        raw = dict((raw_models or [])[i])
        overrides = raw.pop("stacks", {}) or {}
        over = overrides.get(stack) or {}

        def where_of(full: Path, _i: int = i, _over: dict[str, Any] = over) -> Path:
            # ('models', i, field, ...) → the override's path when the override set that field.
            if len(full) >= 3 and full[0] == "models" and full[2] in _over:
                return ("models", _i, "stacks", stack, *full[2:])
            return full

        try:
            merged = ModelSpec.model_validate(_merge(raw, over))
        except ValidationError as exc:
            issues.extend(translate(exc, ModelSpec, src, stack, prefix=("models", i), line_path=where_of))
            continue
        if merged.enabled is False:
            continue
        model, model_issues = _model_checks(stack, cfg, team, merged, src,
                                            lambda f, _w=where_of, _i=i: _w(("models", _i, f)), pools)
        issues.extend(model_issues)
        if model is not None:
            resolved.append(model)
    quota = team.gpu_quota[stack]
    need = sum(m.max_replicas * m.gpus_per_replica for m in resolved)
    if need > quota:
        issues.append(ConfigIssue(display, src.line_of(("gpu_quota", stack)), f"gpu_quota.{stack}",
                                  f"{quota} GPUs granted but the models need up to {need} at max replicas — raise the quota or lower replicas"))
    return ResolvedTeam(
        name=team.name, namespace=f"team-{team.name}", source=display, owners=tuple(team.owners),
        rbac_group=team.rbac_group or f"vllm-fleet:{team.name}", gpu_quota=quota, models=tuple(resolved),
    ), issues


def load(stack: str, root: str | FsPath = ".") -> FleetSpec:
    """Validate and merge `stacks/Pulumi.<stack>.yaml` with every `stacks/teams/*.yaml`."""
    root = FsPath(root).resolve()
    cfg, src, issues = load_stack_file(root, stack)
    if cfg is not None:
        issues.extend(_stack_checks(cfg, src))
    teams = []
    for path in sorted((root / "stacks" / "teams").glob("*.yaml")):
        team, team_issues = load_team(root, path, stack, cfg)
        issues.extend(team_issues)
        if team is not None:
            teams.append(team)
    if issues or cfg is None:
        raise ConfigError(list(dict.fromkeys(issues)))
    return FleetSpec(stack=stack, root=str(root), source=src.file, config=cfg, teams=tuple(teams))


__all__ = ["FleetSpec", "ModelFields", "ResolvedModel", "ResolvedTeam", "load"]
