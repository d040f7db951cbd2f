"""Pydantic validation errors → config issues that name the file, the line, the field path and the fix."""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ValidationError

from fleet.errors import ConfigIssue, format_path
from fleet.yamlsrc import Located, Path

SECRET_FIELDS = {"api_key", "hf_token"}
# Values under these keys are never shown back, whatever is wrong with them.
HIDDEN_KEYS = SECRET_FIELDS | {"secret", "secrets", "vllm-fleet:secrets", "secure"}


def _unwrap(annotation: Any) -> list[Any]:
    """The concrete types inside Optional/Union/Annotated/list/dict annotations."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [t for a in typing.get_args(annotation) for t in _unwrap(a)]
    return [annotation]


def allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
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
            elif origin in (list, tuple) and isinstance(part, int):
                nxt.extend(_unwrap(typing.get_args(typ)[0]))
            elif origin is dict:
                nxt.extend(_unwrap(typing.get_args(typ)[1]))
        current = nxt
    keys: list[str] = []
    for typ in current:
        if isinstance(typ, type) and issubclass(typ, BaseModel):
            keys.extend(info.alias or name for name, info in typ.model_fields.items())
    return keys


def unknown_key_message(key: str, allowed: list[str]) -> str:
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'?" if close else f"allowed keys: {', '.join(sorted(allowed))}"
    return f"unknown key '{key}' — {hint}"


def short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def secret_fix(stack: str, name: str) -> str:
    return (f"a literal secret is refused — store it with `pulumi config set --stack {stack} --secret --path "
            f"'vllm-fleet:secrets.{name}' <value>` and reference it as `{{secret: {name}}}`")


def _hidden_value_message(typ: str, err: Any, loc: tuple[Any, ...]) -> str:
    if typ in ("model_type", "dict_type", "string_type", "list_type"):
        return "expected `{secret: <name>}`, the name of a secret in `vllm-fleet:secrets` (the value typed here is not shown)"
    if typ == "string_pattern_mismatch":
        return ("not a secret name (lower-case letters, digits and '-') — reference a secret stored with `pulumi config set "
                "--secret`, never the value itself (the value typed here is not shown)")
    if typ in ("value_error", "assertion_error"):
        return str(err["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return f"{err['msg']} (the value typed here is not shown)"


def translate(exc: ValidationError, model: type[BaseModel], src: Located, stack: str,
              prefix: Path = (), line_path: Callable[[Path], Path] | None = None) -> list[ConfigIssue]:
    """Pydantic errors → ConfigIssues with file, line, field path and a fix. A value is shown back only when it
    cannot be a secret."""
    issues = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        if loc and loc[-1] == "[key]":  # a mapping key that fails its type: the key's own path (and line)
            loc = loc[:-1]
        typ = err["type"]
        value = err.get("input")
        full = (*prefix, *loc)
        path_for_line = line_path(full) if line_path else full
        line = src.line_of(path_for_line)
        shown = format_path(path_for_line)
        if typ == "extra_forbidden":
            msg = unknown_key_message(str(loc[-1]), allowed_keys(model, loc[:-1]))
        elif loc and loc[-1] in SECRET_FIELDS and isinstance(value, str):
            stem = src.file.rsplit("/", 1)[-1].removesuffix(".yaml")
            msg = secret_fix(stack, f"{stem}-{loc[-1]}".replace("_", "-"))
        elif any(part in HIDDEN_KEYS for part in full if isinstance(part, str)):
            # a secret reference or value: say what is wrong, never what was typed
            msg = _hidden_value_message(typ, err, loc)
        elif typ == "missing":
            msg = f"required field '{loc[-1]}' is missing — add it" if loc else "required field is missing"
            shown = format_path(full)
        elif typ in ("value_error", "assertion_error"):
            msg = str(err["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
        elif typ in ("model_type", "dict_type"):
            msg = f"{short(value)} — expected a mapping of keys (see the schema)"
        elif typ == "list_type":
            msg = f"{short(value)} — expected a list"
        else:
            msg = f"{short(value)} — {err['msg']}"
        issues.append(ConfigIssue(src.file, line, shown, msg))
    return issues
