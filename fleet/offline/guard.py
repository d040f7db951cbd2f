"""`vllm-fleet guard PREVIEW.json`: fail when `pulumi preview --json` would delete or replace a protected or
stateful resource, or destroy cached data. Policies cannot see this: the engine does not show them the planned
operation.

The document is the engine's PreviewDigest: `steps[]` with `op`, `urn`, `oldState` (type, protect, inputs),
`newState`, `replaceReasons` and `diffReasons`. Operations are matched case-insensitively; an operation this guard
does not know is treated as destructive (fail closed), as is a step that does not say what it is. A document that
is not of that shape (`steps` null or not a list, a step that is not an object, a field of the wrong type) is exit 2
naming the file, the line and the field: it is never read as a preview of nothing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from fleet.errors import format_path
from fleet.kinds import NAMESPACE_TYPE, STATEFUL_TYPES
from fleet.yamlsrc import DOCUMENT_MAX_BYTES, InputError, Located, load_text, read_input

# The engine's step operations (pkg/resource/deploy StepOp) that keep the resource.
SAFE_OPS = frozenset({"same", "create", "update", "read", "refresh", "import"})
# Those that delete or replace it; anything else is unknown and blocked.
DESTRUCTIVE_OPS = frozenset({"delete", "replace", "create-replacement", "delete-replaced", "discard", "discard-replaced",
                             "read-replacement", "import-replacement", "remove-pending-replace"})
UNKNOWN_TYPE = "unknown type"
FSX_ASSOCIATION = "aws:fsx/dataRepositoryAssociation:DataRepositoryAssociation"


class PreviewError(ValueError):
    """A document that is not a readable `pulumi preview --json`: each problem as (path, message)."""

    def __init__(self, problems: list[tuple[tuple[str | int, ...], str]]) -> None:
        super().__init__("; ".join(f"{format_path(p) or '(document)'}: {m}" for p, m in problems))
        self.problems = problems


class _State(BaseModel):
    """A step's oldState/newState (apitype.ResourceV3): the fields the guard reads, typed; the rest is the engine's."""

    model_config = ConfigDict(extra="allow", strict=True)
    type: str | None = None
    protect: bool | None = None
    inputs: dict[str, Any] | None = None
    outputs: dict[str, Any] | None = None


class _Step(BaseModel):
    """One apitype.PreviewStep: `op` (the engine's StepOp) always, the rest when the engine has it."""

    model_config = ConfigDict(extra="allow", strict=True)
    op: str
    urn: str | None = None
    oldState: _State | None = None
    newState: _State | None = None
    replaceReasons: list[str] | None = None
    diffReasons: list[str] | None = None


class _Preview(BaseModel):
    """apitype.PreviewDigest as `pulumi preview --json` prints it: `steps` is a list (an empty preview prints [])."""

    model_config = ConfigDict(extra="allow", strict=True)
    steps: list[_Step]


_EXPECTED = {"model_type": "an object", "dict_type": "an object", "model_attributes_type": "an object", "list_type": "a list",
             "string_type": "a string", "bool_type": "true or false"}
_JSON_TYPES = {dict: "an object", list: "a list", str: "a string", int: "a number", float: "a number", bool: "a boolean",
               type(None): "null"}


def check_shape(doc: Any) -> None:
    """PreviewError naming every field of the document that is not what `pulumi preview --json` writes: a guard that
    read `steps: null` or a step it cannot type as a preview of nothing would let a destructive change through."""
    if not isinstance(doc, dict):
        raise PreviewError([((), f"is a JSON {type(doc).__name__}, not an object with `steps`")])
    try:
        _Preview.model_validate(doc)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc, typ = tuple(err["loc"]), err["type"]
            if typ == "missing":
                problems.append((loc, "is missing"))
            elif loc == ("steps",) and doc.get("steps") is None:
                problems.append((loc, "is null; the engine prints a list (`[]` when nothing changes)"))
            else:
                got = _JSON_TYPES.get(type(err.get("input")), type(err.get("input")).__name__)
                problems.append((loc, f"expected {_EXPECTED.get(typ, err['msg'].lower())}, got {got}"))
        raise PreviewError(problems) from None


def _state_inputs(state: dict[str, Any]) -> dict[str, Any]:
    inputs = state.get("inputs") or state.get("outputs") or {}
    return inputs if isinstance(inputs, dict) else {}


def _type_of(step: dict[str, Any], old: dict[str, Any], new: dict[str, Any]) -> str:
    typ = old.get("type") or new.get("type")
    if typ:
        return str(typ)
    parts = str(step.get("urn", "")).split("::")
    return parts[2].rsplit("$", 1)[-1] if len(parts) > 3 else UNKNOWN_TYPE


def _name_of(state: dict[str, Any]) -> Any:
    md = _state_inputs(state).get("metadata")
    return md.get("name") if isinstance(md, dict) else None


def _namespaces_with_claims(steps: list[dict[str, Any]]) -> set[str]:
    out = set()
    for s in steps:
        state = s.get("oldState")
        if isinstance(state, dict) and state.get("type") == "kubernetes:core/v1:PersistentVolumeClaim":
            md = _state_inputs(state).get("metadata")
            if isinstance(md, dict) and md.get("namespace"):
                out.add(str(md["namespace"]))
    return out


def blocked_steps(doc: dict[str, Any]) -> list[str]:
    """Why each blocked step is blocked. PreviewError when the document's shape is wrong."""
    check_shape(doc)
    steps = doc["steps"]
    claim_namespaces = _namespaces_with_claims(steps)
    problems = []
    for i, s in enumerate(steps):
        op = str(s.get("op", "")).strip().lower()
        old, new = s.get("oldState") or {}, s.get("newState") or {}
        typ = _type_of(s, old, new)
        urn = s.get("urn") if isinstance(s.get("urn"), str) and s.get("urn") else f"steps[{i}] (no urn)"
        if new and _state_inputs(new).get("deleteDataInFilesystem") is True and typ == FSX_ASSOCIATION:
            problems.append(f"{op or 'no op'} {urn} ({typ}; deleteDataInFilesystem: true would delete the cached files when the "
                            "association is removed) — set it to false")
        if op in SAFE_OPS:
            continue
        why = []
        if op not in DESTRUCTIVE_OPS:
            why.append(f"unknown operation {s.get('op')!r}: treated as destructive")
        if old.get("protect"):
            why.append("protected")
        if typ in STATEFUL_TYPES:
            why.append("stateful")
        if typ == UNKNOWN_TYPE:
            why.append("no urn or type to tell what it is: treated as stateful")
        if typ == FSX_ASSOCIATION and _state_inputs(old).get("deleteDataInFilesystem") is True:
            why.append("deleteDataInFilesystem: the cached files go with it")
        if typ == NAMESPACE_TYPE and _name_of(old) in claim_namespaces:
            why.append(f"holds the model-cache claim of {_name_of(old)}")
        if not why:
            continue
        reasons = [str(r) for r in (s.get("replaceReasons") or s.get("diffReasons") or []) if isinstance(r, (str, int))] \
            if isinstance(s.get("replaceReasons") or s.get("diffReasons") or [], list) else []
        because = f" because {', '.join(reasons)} changed" if reasons and op != "delete" else ""
        problems.append(f"{op or 'no op'} {urn} ({typ}; {', '.join(why)}){because}")
    return problems


def main(path: Path) -> int:
    try:
        text = read_input(path, max_bytes=DOCUMENT_MAX_BYTES)
        doc = json.loads(text)
    except InputError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except (ValueError, RecursionError) as exc:
        print(f"{path}: not a `pulumi preview --json` document ({str(exc)[:200]})", file=sys.stderr)
        return 2
    if not isinstance(doc, dict) or "steps" not in doc:
        print(f"{path}: no `steps` — produce it with `pulumi preview --json`", file=sys.stderr)
        return 2
    try:
        problems = blocked_steps(doc)
    except PreviewError as exc:
        lines = _lines(text, str(path))
        print(f"{path}: not a `pulumi preview --json` document — produce it with `pulumi preview --json`:", file=sys.stderr)
        for where, message in exc.problems:
            line = lines.line_of(where) if lines is not None else 0
            print(f"  {path}{f':{line}' if line else ''} {format_path(where) or '(document)'}: {message}", file=sys.stderr)
        return 2
    for p in problems:
        print(f"BLOCKED {p}")
    if problems:
        print(f"{len(problems)} step(s) would delete or replace a stateful or protected resource, or destroy cached data: "
              "refusing. Revert the change, or migrate the data and remove the protection deliberately in its own change.")
        return 1
    print(f"{len(doc['steps'])} steps: no protected or stateful resource is deleted or replaced")
    return 0


# Lines are placed for documents up to this size; a larger malformed one is reported by field path alone (the line
# map is built in Python, seconds per 10 MiB).
LINE_MAP_MAX_BYTES = 8 << 20


def _lines(text: str, file: str) -> Located | None:
    """The line of every path of a malformed document (JSON is YAML: the config loader's line map), read only when there
    is an error to place; None when the text is too large or does not read as YAML."""
    if len(text) > LINE_MAP_MAX_BYTES:
        return None
    located, issues = load_text(text, file)
    return None if issues else located
