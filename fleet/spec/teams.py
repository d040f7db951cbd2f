"""Team files: one team and its models, each merged with its override for the stack, within what
stacks/tenancy.yaml grants the team (quota per stack, RBAC group, secrets)."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path as FsPath
from typing import Any

from pydantic import ValidationError

from fleet.errors import ConfigIssue, format_path
from fleet.spec.model_rules import PD_ROLES, RULES, ModelContext, check_model, role_spec, routing_of
from fleet.spec.pydantic_errors import translate
from fleet.spec.resolved import ResolvedModel, ResolvedTeam
from fleet.spec.stack import StackConfig
from fleet.spec.team import ModelSpec, Team
from fleet.spec.tenancy import TENANCY_FILE, Grants
from fleet.yamlsrc import Located, Path, load_file


def merge_override(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Per-stack override: top-level keys replace; nested mappings merge one level deep."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def unknown_stack(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    hint = f"did you mean '{close[0]}'?" if close else f"known stacks: {', '.join(known)}"
    return f"no stack '{name}' (stacks/Pulumi.{name}.yaml) — {hint}"


# Keys a team file may not carry: the platform grants them in stacks/tenancy.yaml.
GRANTED_KEYS = ("gpu_quota", "rbac_group", "secrets", "data_sources")


def _granted_keys(src: Located) -> list[ConfigIssue]:
    name = src.data.get("name") if isinstance(src.data.get("name"), str) else "<team>"
    return [ConfigIssue(src.file, src.line_of((key,)), key,
                        f"{key} is granted by the platform team in {TENANCY_FILE} (teams.{name}.{key}), not in the team's own "
                        "file, so a team cannot approve its own quota, RBAC, secrets or data access — move it there")
            for key in GRANTED_KEYS if key in src.data]


def _parse_team(src: Located, stack: str) -> tuple[Team | None, list[int], list[ConfigIssue]]:
    """The team with the models that validate (the others' errors reported), and the file index of each model."""
    moved = _granted_keys(src)
    if moved:
        src = Located(src.file, {k: v for k, v in src.data.items() if k not in GRANTED_KEYS}, src.lines)
    team, index, issues = _parse_team_fields(src, stack)
    return team, index, moved + issues


def _parse_team_fields(src: Located, stack: str) -> tuple[Team | None, list[int], list[ConfigIssue]]:
    raw_models = src.data.get("models") if isinstance(src.data.get("models"), list) else []
    try:
        team = Team.model_validate(src.data)
        return team, list(range(len(raw_models))), []
    except ValidationError as exc:
        # Report every schema error, then keep checking the team and the models that did validate.
        issues = translate(exc, Team, src, stack)
        bad: set[int] = set()
        for err in exc.errors():
            loc = err["loc"]
            if loc and loc[0] == "models":
                if len(loc) > 1 and isinstance(loc[1], int):
                    bad.add(loc[1])
                else:
                    return None, [], issues
        try:
            team = Team.model_validate({**src.data, "models": []})
        except ValidationError:
            return None, [], issues
        index = [i for i in range(len(raw_models)) if i not in bad]
        good = [ModelSpec.model_validate(raw_models[i]) for i in index]
        return team.model_copy(update={"models": good}), index, issues


def _team_checks(team: Team, index: list[int], src: Located, stem: str, known: list[str]) -> list[ConfigIssue]:
    issues = []
    if team.name != stem:
        issues.append(ConfigIssue(src.file, src.line_of(("name",)), "name", f"'{team.name}' must match the file name '{stem}' — rename one of them"))
    seen: dict[str, int] = {}
    for i, m in zip(index, team.models, strict=True):
        if m.name in seen:
            issues.append(ConfigIssue(src.file, src.line_of(("models", i, "name")), f"models[{i}].name",
                                      f"'{m.name}' is already used by models[{seen[m.name]}] — model names are unique per team"))
        seen.setdefault(m.name, i)
        for s in m.stacks:
            if s not in known:
                where: Path = ("models", i, "stacks", s)
                issues.append(ConfigIssue(src.file, src.line_of(where), format_path(where), unknown_stack(s, known)))
    return issues


@dataclass(frozen=True)
class TeamFile:
    """A team file as read and checked before any stack is applied: its YAML (with lines), the team with the models
    that validate, and the file index of each of those models."""

    src: Located
    team: Team
    index: list[int]


def read_team_file(path: FsPath, display: str, known: list[str], root: FsPath | None = None,
                   stack: str = "") -> tuple[TeamFile | None, list[ConfigIssue]]:
    """Every command that reads team files (validate, plan, policy-config, codeowners, the program) reads them here, so
    a malformed one is refused the same way everywhere: not a file, not YAML, not a mapping, a schema error, a name
    that does not match the file. `stack`: the stack the secret fixes name (any, when no stack is involved)."""
    src, issues = load_file(str(path), display, inside=root)
    if issues:
        return None, issues
    if not isinstance(src.data, dict):
        what = "a list" if isinstance(src.data, list) else f"a {type(src.data).__name__} value"
        return None, [ConfigIssue(display, 1, "", f"is {what}, expected a mapping with name, owners and models — see "
                                                  "docs/configuration.md")]
    team, index, issues = _parse_team(src, stack or "<stack>")
    if team is None:
        return None, issues
    issues += _team_checks(team, index, src, path.stem, known)
    return TeamFile(src, team, index), issues


def load_team(path: FsPath, display: str, stack: str, cfg: StackConfig | None, known: list[str], grants: Grants | None,
              environments: tuple[str, ...] = (), root: FsPath | None = None) -> tuple[ResolvedTeam | None, list[ConfigIssue]]:
    """The team in `stack` (None when it is not deployed there or does not validate) and every problem. `grants`: what
    stacks/tenancy.yaml grants (None when that file has errors of its own). `root`: the repository the file must lie in."""
    read, issues = read_team_file(path, display, known, root, stack)
    if read is None:
        return None, issues
    src, team, index = read.src, read.team, read.index
    if grants is None:
        return None, issues
    grant = grants.of(team.name)
    if grant is None:
        issues.append(ConfigIssue(display, src.line_of(("name",)), "name",
                                  f"team '{team.name}' has no entry in {TENANCY_FILE} — the platform team grants its GPU quota "
                                  f"there (teams.{team.name}.gpu_quota)"))
        return None, issues
    if cfg is None or stack not in grant.gpu_quota:
        return None, issues
    raw_models = src.data.get("models") or []
    resolved: list[ResolvedModel] = []
    for i in index:
        raw = dict(raw_models[i])
        over = (raw.pop("stacks", {}) or {}).get(stack) or {}

        def where_of(full: Path, _i: int = i, _over: dict[str, Any] = over) -> Path:
            # ('models', i, field, ...) → the override's path when the override set that field.
            if len(full) >= 3 and full[0] == "models" and full[2] in _over:
                return ("models", _i, "stacks", stack, *full[2:])
            return full

        try:
            merged = ModelSpec.model_validate(merge_override(raw, over))
        except ValidationError as exc:
            issues.extend(translate(exc, ModelSpec, src, stack, prefix=("models", i), line_path=where_of))
            continue
        if merged.enabled is False:
            continue
        def where(field_path: tuple[str | int, ...], _w: Callable[[Path], Path] = where_of, _i: int = i) -> Path:
            return _w(("models", _i, *field_path))

        context = ModelContext(stack, cfg, merged, path, environments, granted_secrets=frozenset(grant.secrets),
                               granted_sources=tuple(grant.data_sources), team=team.name)
        if merged.disaggregated_prefill is None:
            model, model_issues = _resolve_model(context, team.name, src, where)
            issues += model_issues
            resolved += [model] if model is not None else []
            continue
        # Prefill and decode: two workloads of one model, each checked, placed and sized with its own parallelism.
        problems = [p for rule in RULES for p in rule(context)]
        if problems:
            issues += [ConfigIssue(src.file, src.line_of(where(p)), format_path(where(p)), msg) for p, msg in problems]
            continue
        for role in PD_ROLES:
            model, model_issues = _resolve_model(replace(context, spec=role_spec(merged, role), pd_role=role), team.name, src, where,
                                                 group=merged.name)
            issues += model_issues
            resolved += [model] if model is not None else []
    quota = grant.gpu_quota[stack]
    need = sum(m.max_replicas * m.gpus_per_replica for m in resolved)
    if need > quota:
        issues.append(ConfigIssue(display, src.line_of(("models",)), "models",
                                  f"the models need up to {need} GPUs at max replicas in stack {stack}, but {TENANCY_FILE}:"
                                  f"{grants.line(team.name, 'gpu_quota', stack)} grants the team {quota} — lower replicas, or ask the "
                                  f"platform team to raise teams.{team.name}.gpu_quota.{stack}"))
    return ResolvedTeam(
        name=team.name, namespace=f"team-{team.name}", source=display, owners=tuple(team.owners),
        rbac_group=grant.rbac_group or f"vllm-fleet:{team.name}", gpu_quota=quota, models=tuple(resolved),
    ), issues


def _resolve_model(ctx: ModelContext, team: str, src: Located, where: Callable[[tuple[str | int, ...]], Path],
                   group: str = "") -> tuple[ResolvedModel | None, list[ConfigIssue]]:
    checked, problems = check_model(ctx)
    issues = [ConfigIssue(src.file, src.line_of(where(p)), format_path(where(p)), msg) for p, msg in problems]
    if checked is None or issues:
        return None, issues
    placed = checked.placement
    return ResolvedModel(
        team=team, namespace=f"team-{team}", source=src.file, spec=ctx.spec, pool=placed.pool, instance=placed.instance,
        gpus_per_replica=placed.gpus_per_replica, nodes_per_replica=placed.nodes_per_replica, gpus_per_pod=placed.gpus_per_pod,
        min_replicas=placed.min_replicas, max_replicas=placed.max_replicas, sizing=checked.sizing, arch=checked.arch,
        line=src.line_of(where(("name",))), path=format_path(where(("name",))), routing=routing_of(ctx.cfg, ctx.spec),
        pd_role=ctx.pd_role, group=group), []
