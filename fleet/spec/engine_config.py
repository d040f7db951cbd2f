"""The stack's config as the Pulumi engine hands it to the program, and how the program reads it.

The engine gives a program every config value as a string: scalars as written (`pulumi config set ns:key 8`
stores "8"), structured values as JSON, secrets decrypted and listed as secret keys; values can come from
the stack file, `--config-file` or imported ESC environments. `EngineConfig` is that view. The real program
builds it from the engine (components.program), the offline commands from the stack file
(fleet.spec.stack_file), and `parse_stack_config` turns it into a `StackConfig` either way.
"""

from __future__ import annotations

import json
import typing
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from fleet.errors import ConfigIssue, format_path
from fleet.spec.pydantic_errors import secret_fix, translate, unknown_key_message
from fleet.spec.stack import StackConfig
from fleet.yamlsrc import Located

NAMESPACE = "vllm-fleet"
SECRETS_KEY = f"{NAMESPACE}:secrets"
# Fields of StackConfig by config key (`vllm-fleet:gpu_pools`, `aws:region`).
FIELDS = {info.alias: name for name, info in StackConfig.model_fields.items() if info.alias}


@dataclass(frozen=True)
class EngineConfig:
    values: dict[str, str]                      # config key → value as the engine hands it
    secret_keys: frozenset[str] = frozenset()
    source: Located = field(default_factory=lambda: Located("", None))   # where the stack file put each key (lines)
    environments: tuple[str, ...] = ()          # ESC environments the stack imports (their values are unknown offline)
    from_stack_file: bool = False               # built offline from the stack file (the file reader checked its secrets)


def _structured(alias: str) -> bool:
    """Whether a StackConfig field holds a map or list (the engine hands those as JSON)."""
    annotation = StackConfig.model_fields[FIELDS[alias]].annotation
    origin = typing.get_origin(annotation) or annotation
    return origin in (list, tuple, dict) or (isinstance(origin, type) and issubclass(origin, BaseModel))


def _path(key: str) -> tuple[str, ...]:
    return ("config", key)


def parse_stack_config(engine: EngineConfig, stack: str) -> tuple[StackConfig | None, list[ConfigIssue]]:
    """The typed stack config; every problem names the stack file, the line and the field path."""
    src = engine.source
    issues: list[ConfigIssue] = []

    def issue(key: str, message: str) -> None:
        issues.append(ConfigIssue(src.file, src.line_of(_path(key)), format_path(_path(key)), message))

    data: dict[str, Any] = {}
    for key, value in sorted(engine.values.items()):
        if key == SECRETS_KEY:
            names = _secret_names(engine, value, issue, stack)
            if names is not None:
                data[key] = tuple(sorted(names))
            continue
        namespace = key.partition(":")[0]
        if namespace != NAMESPACE:
            if key in FIELDS:  # aws:region
                data[key] = value
            continue  # other namespaces configure providers (aws:profile, kubernetes:…) and the engine itself
        if key not in FIELDS:
            issue(key, unknown_key_message(key, sorted(k for k in FIELDS if k.startswith(f"{NAMESPACE}:"))))
            continue
        if key in engine.secret_keys:
            issue(key, f"{key} is a secret, but only {SECRETS_KEY} holds secrets — set it without --secret, or move "
                       f"the value under {SECRETS_KEY}")
            continue
        if _structured(key):
            try:
                data[key] = json.loads(value)
            except (ValueError, RecursionError):
                issue(key, f"expected a structured value (JSON), got {value[:40]!r} — set it with `pulumi config set "
                           f"--path '{key}.<field>' <value>` or edit the stack file")
                continue
        else:
            data[key] = value
    if issues:
        return None, issues
    secret_names = data.get(SECRETS_KEY, ())

    def by_name(path: tuple[str | int, ...]) -> tuple[str | int, ...]:
        # the names are validated as a sorted tuple: report each at its own key, not at its index
        if len(path) >= 3 and path[:2] == ("config", SECRETS_KEY) and isinstance(path[2], int) and path[2] < len(secret_names):
            return (*path[:2], secret_names[path[2]], *path[3:])
        return path

    try:
        return StackConfig.model_validate(data), []
    except ValidationError as exc:
        found = translate(exc, StackConfig, src, stack, prefix=("config",), line_path=by_name)
        if engine.environments:
            imported = ", ".join(engine.environments)
            found = [ConfigIssue(i.file, i.line, i.path, f"{i.message} (the stack imports {imported}: a value only an "
                                                         "environment provides is unknown offline)")
                     if "is missing" in i.message else i for i in found]
        return None, found


def _secret_names(engine: EngineConfig, value: str, issue: Any, stack: str) -> list[str] | None:
    if SECRETS_KEY not in engine.secret_keys and not engine.from_stack_file:
        issue(SECRETS_KEY, f"{SECRETS_KEY} is not a secret — {secret_fix(stack, '<name>')}")
        return None
    try:
        parsed = json.loads(value)
    except (ValueError, RecursionError):
        parsed = None
    if not isinstance(parsed, dict):
        issue(SECRETS_KEY, "expected a map of secret names to values — set each with `pulumi config set --secret --path "
                           f"'{SECRETS_KEY}.<name>' <value>`")
        return None
    empty = sorted(str(k) for k, v in parsed.items() if v is None or (isinstance(v, str) and not v.strip()))
    if empty:
        for name in empty:
            issue(SECRETS_KEY, f"secret '{name}' is empty — {empty_secret_fix(stack, f'{SECRETS_KEY}.{name}')}")
        return None
    return [str(k) for k in parsed]


def empty_secret_fix(stack: str, key: str) -> str:
    """An empty or blank secret is refused like a missing one: the server would start with an empty API key or token."""
    return (f"an empty or blank value is refused like a missing one (the server would run with an empty key or token); set the "
            f"real value with `pulumi config set --stack {stack} --secret --path '{key}' <value>`")
