"""Load one stack: its config (as the engine hands it, or read from the stack file as the CLI would) and
every team file, validated, with derived values filled.

Every problem of a run is collected and raised together as a ConfigError whose issues name the file, the
line, the field path and the fix.
"""

from __future__ import annotations

from pathlib import Path as FsPath

from fleet.errors import ConfigError, ConfigIssue, format_path
from fleet.labels import GPU_SYSTEM_NAMESPACE
from fleet.spec.cheaper_pools import cheaper_pool_notes
from fleet.spec.engine_config import EngineConfig, parse_stack_config
from fleet.spec.resolved import FleetSpec, ResolvedTeam
from fleet.spec.stack import StackConfig
from fleet.spec.stack_file import display_path, known_stacks, read_stack_file, stack_path
from fleet.spec.stack_rules import stack_problems, unpinned_amis
from fleet.spec.teams import load_team, unknown_stack
from fleet.spec.tenancy import load_tenancy
from fleet.vllm.flags import has_table
from fleet.yamlsrc import Located, load_file


def load(stack: str, root: str | FsPath = ".", engine: EngineConfig | None = None) -> FleetSpec:
    """The stack's spec. `engine` is the config the Pulumi engine handed the program; without it the stack file is
    read the way the CLI reads it (the offline commands)."""
    root = FsPath(root).resolve()
    warnings: list[ConfigIssue] = []
    if engine is None:
        engine, issues, warnings = read_stack_file(root, stack)
    else:
        issues = []
    cfg = None
    if engine is not None:
        cfg, config_issues = parse_stack_config(engine, stack)
        issues += config_issues
    src = engine.source if engine is not None else Located(display_path(root, stack_path(root, stack)), None)
    if cfg is not None:
        issues += [ConfigIssue(src.file, src.line_of(path), format_path(path), msg) for path, msg in stack_problems(cfg)]
    environments = engine.environments if engine is not None else ()
    known = known_stacks(root) or [stack]
    grants, grant_issues = load_tenancy(root)
    issues += grant_issues
    if grants is not None:
        issues += [ConfigIssue(grants.source.file, grants.line(team, "gpu_quota", s), f"teams.{team}.gpu_quota.{s}", unknown_stack(s, known))
                   for team, grant in grants.tenancy.teams.items() for s in grant.gpu_quota if s not in known]
    # Models are compiled against the version's flag table: without one, the team files are checked on their own.
    model_cfg = cfg if cfg is not None and has_table(cfg.vllm.version) else None
    teams: list[ResolvedTeam] = []
    for path in sorted((root / "stacks" / "teams").glob("*.yaml")):
        team, team_issues = load_team(path, display_path(root, path), stack, model_cfg, known, grants, environments, root)
        issues += team_issues
        if team is not None:
            teams.append(team)
    if cfg is not None:
        issues += _gateway_outside_teams(cfg, teams, src)
    if issues or cfg is None:
        raise ConfigError(list(dict.fromkeys(issues)))
    notes = [str(w) for w in warnings]
    missing = sorted({ref.secret for t in teams for m in t.models for ref in (m.spec.api_key, m.spec.hf_token)
                      if ref is not None and ref.secret is not None and ref.secret not in cfg.secrets})
    notes += [f"{src.file}: secret '{name}' is not in the stack file: provided by environment {', '.join(environments)} "
              "(unknown offline)" for name in missing]
    notes += [str(ConfigIssue(src.file, src.line_of(path), format_path(path), msg)) for path, msg in unpinned_amis(cfg)]
    notes += cheaper_pool_notes(cfg, teams)
    return FleetSpec(stack=stack, root=str(root), source=src.file, config=cfg, teams=tuple(teams), notes=tuple(notes))


def _gateway_outside_teams(cfg: StackConfig, teams: list[ResolvedTeam], src: Located) -> list[ConfigIssue]:
    """The gateway namespace is the one namespace admitted to every model: a team's (or the GPU system's) would admit
    that namespace's pods to every other team's models."""
    ns = cfg.gateway.namespace
    owner = next((f"team {t.name}'s namespace" for t in teams if t.namespace == ns), None)
    if owner is None and ns in (GPU_SYSTEM_NAMESPACE, "kube-system", "default"):
        owner = "a system namespace"
    if owner is None:
        return []
    path = ("config", "vllm-fleet:gateway", "namespace")
    return [ConfigIssue(src.file, src.line_of(path), format_path(path),
                        f"'{ns}' is {owner}: every team's network policy admits the gateway namespace to its models, so its "
                        "pods would reach all of them — run the gateway in its own namespace")]


def load_from_engine(stack: str, root: str | FsPath, values: dict[str, str], secret_keys: frozenset[str] | set[str]) -> FleetSpec:
    """The spec from the config the engine handed the program. The stack file, when it is there, only gives
    errors their line numbers: values come from the engine (stack file, --config-file, ESC environments)."""
    root = FsPath(root).resolve()
    path = stack_path(root, stack)
    display = display_path(root, path)
    src = load_file(str(path), display, inside=root)[0] if path.exists() else Located(display, None)
    return load(stack, root, EngineConfig(values=dict(values), secret_keys=frozenset(secret_keys), source=src))
