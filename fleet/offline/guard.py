"""`vllm-fleet guard PREVIEW.json`: fail when `pulumi preview --json` would delete or replace a protected or
stateful resource. Policies cannot see this: the engine does not show them the planned operation.

The document is the engine's PreviewDigest: `steps[]` with `op`, `urn`, `oldState` (type, protect,
inputs), `newState`, `replaceReasons` and `diffReasons`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from fleet.kinds import NAMESPACE_TYPE, STATEFUL_TYPES

DESTRUCTIVE = {"delete", "replace", "create-replacement", "delete-replaced", "discard", "discard-replaced",
               "read-replacement", "import-replacement"}


def _type_of(step: dict[str, Any]) -> str:
    state = step.get("oldState") or step.get("newState") or {}
    return str(state.get("type") or str(step.get("urn", "")).split("::")[2].rsplit("$", 1)[-1])


def _namespaces_with_claims(steps: list[dict[str, Any]]) -> set[str]:
    out = set()
    for s in steps:
        state = s.get("oldState") or {}
        if state.get("type") == "kubernetes:core/v1:PersistentVolumeClaim":
            md = (state.get("inputs") or state.get("outputs") or {}).get("metadata") or {}
            if md.get("namespace"):
                out.add(str(md["namespace"]))
    return out


def blocked_steps(doc: dict[str, Any]) -> list[str]:
    steps = list(doc.get("steps") or [])
    claim_namespaces = _namespaces_with_claims(steps)
    problems = []
    for s in steps:
        op = str(s.get("op", ""))
        if op not in DESTRUCTIVE:
            continue
        old = s.get("oldState") or {}
        typ = _type_of(s)
        why = []
        if old.get("protect"):
            why.append("protected")
        if typ in STATEFUL_TYPES:
            why.append("stateful")
        if typ == NAMESPACE_TYPE:
            name = ((old.get("inputs") or old.get("outputs") or {}).get("metadata") or {}).get("name")
            if name in claim_namespaces:
                why.append(f"holds the model-cache claim of {name}")
        if not why:
            continue
        reasons = list(s.get("replaceReasons") or []) or list(s.get("diffReasons") or [])
        because = f" because {', '.join(reasons)} changed" if reasons and op != "delete" else ""
        problems.append(f"{op} {s.get('urn')} ({typ}; {', '.join(why)}){because}")
    return problems


def main(path: Path) -> int:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"{path}: not a `pulumi preview --json` document ({exc})", file=sys.stderr)
        return 2
    if not isinstance(doc, dict) or "steps" not in doc:
        print(f"{path}: no `steps` — produce it with `pulumi preview --json`", file=sys.stderr)
        return 2
    problems = blocked_steps(doc)
    for p in problems:
        print(f"BLOCKED {p}")
    if problems:
        print(f"{len(problems)} stateful or protected resource(s) would be deleted or replaced: refusing. Revert the "
              "change, or migrate the data and remove the protection deliberately in its own change.")
        return 1
    print(f"{len(doc['steps'])} steps: no protected or stateful resource is deleted or replaced")
    return 0
