"""`vllm-fleet guard PREVIEW.json`: fail when `pulumi preview --json` would delete or replace a protected or
stateful resource, or destroy cached data. Policies cannot see this: the engine does not show them the planned
operation.

The document is the engine's PreviewDigest: `steps[]` with `op`, `urn`, `oldState` (type, protect, inputs),
`newState`, `replaceReasons` and `diffReasons`. Operations are matched case-insensitively; an operation this guard
does not know is treated as destructive (fail closed), as is a step it cannot read.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from fleet.kinds import NAMESPACE_TYPE, STATEFUL_TYPES
from fleet.yamlsrc import DOCUMENT_MAX_BYTES, InputError, read_input

# The engine's step operations (pkg/resource/deploy StepOp) that keep the resource.
SAFE_OPS = frozenset({"same", "create", "update", "read", "refresh", "import"})
# Those that delete or replace it; anything else is unknown and blocked.
DESTRUCTIVE_OPS = frozenset({"delete", "replace", "create-replacement", "delete-replaced", "discard", "discard-replaced",
                             "read-replacement", "import-replacement", "remove-pending-replace"})
UNKNOWN_TYPE = "unknown type"
FSX_ASSOCIATION = "aws:fsx/dataRepositoryAssociation:DataRepositoryAssociation"


class PreviewError(ValueError):
    """A document that is not a readable `pulumi preview --json`."""


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PreviewError(f"{where} is not an object")
    return value


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
    steps = doc.get("steps")
    if steps is None:
        steps = []
    if not isinstance(steps, list):
        raise PreviewError("`steps` is not a list")
    for i, s in enumerate(steps):
        if not isinstance(s, dict):
            raise PreviewError(f"steps[{i}] is not an object")
        _mapping(s.get("oldState"), f"steps[{i}].oldState")
        _mapping(s.get("newState"), f"steps[{i}].newState")
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
        doc = json.loads(read_input(path, max_bytes=DOCUMENT_MAX_BYTES))
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
        print(f"{path}: not a `pulumi preview --json` document: {exc}", file=sys.stderr)
        return 2
    for p in problems:
        print(f"BLOCKED {p}")
    if problems:
        print(f"{len(problems)} step(s) would delete or replace a stateful or protected resource, or destroy cached data: "
              "refusing. Revert the change, or migrate the data and remove the protection deliberately in its own change.")
        return 1
    print(f"{len(doc.get('steps') or [])} steps: no protected or stateful resource is deleted or replaced")
    return 0
