"""`vllm-fleet check FILE...`: the policy pack and schema validation on manifests nobody generated here."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

from fleet.kinds import kubernetes_type
from fleet.offline.engine import Captured
from fleet.offline.manifest_schema import validate as validate_manifest
from fleet.offline.policy_pack import analyze, policy_config, policy_levels


def load_manifests(files: list[Path]) -> tuple[list[Captured], list[str]]:
    objects: list[Captured] = []
    errors: list[str] = []
    seen: dict[str, int] = {}
    for path in files:
        try:
            docs = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        except (OSError, yaml.YAMLError) as exc:
            errors.append(f"{path}: cannot read YAML: {str(exc).splitlines()[0]}")
            continue
        for i, doc in enumerate(docs):
            if doc is None:
                continue
            items = doc.get("items") if isinstance(doc, dict) and str(doc.get("kind", "")).endswith("List") else [doc]
            for obj in items or []:
                if not isinstance(obj, dict) or "apiVersion" not in obj or "kind" not in obj:
                    errors.append(f"{path} document {i + 1}: not a Kubernetes object (apiVersion and kind required)")
                    continue
                md = obj.get("metadata") or {}
                typ = kubernetes_type(str(obj["apiVersion"]), str(obj["kind"]))
                ns = md.get("namespace")
                name = f"{ns + '/' if ns else ''}{md.get('name', f'doc{i + 1}')}"
                urn = f"urn:pulumi:check::manifests::{typ}::{name}"
                seen[urn] = seen.get(urn, 0) + 1
                if seen[urn] > 1:
                    urn += f"#{seen[urn]}"
                objects.append(Captured(urn=urn, type=typ, name=name, custom=True, parent=None, inputs=obj))
    return objects, errors


def check_files(files: list[Path], fmt: str, kubernetes_version: str) -> int:
    objects, errors = load_manifests(files)
    if errors and not objects:
        for e in errors:
            print(e, file=sys.stderr)
        return 2
    findings = analyze(objects, policy_levels(None), policy_config(None))
    problems = [(c.name, p) for c in objects for p in validate_manifest(c.inputs, kubernetes_version)]
    mandatory = [f for f in findings if f.level == "mandatory"]
    code = 1 if mandatory or problems else 0
    if fmt == "json":
        doc: dict[str, Any] = {
            "findings": [f.as_dict() for f in sorted(findings, key=lambda f: (f.level != "mandatory", f.rule_id, f.urn))],
            "schema_problems": [{"resource": name, "kind": p.kind, "path": p.path, "message": p.message} for name, p in problems],
            "errors": errors,
            "summary": {"objects": len(objects), "mandatory_findings": len(mandatory),
                        "advisory_findings": len(findings) - len(mandatory), "invalid_manifests": len({n for n, _ in problems}),
                        "exit_code": code},
        }
        print(json.dumps(doc, indent=2))
        return code
    for e in errors:
        print(e, file=sys.stderr)
    for f in sorted(findings, key=lambda f: (f.level != "mandatory", f.rule_id, f.name)):
        print(f"{f.level:9} {f.rule_id:4} {f.name}: {f.message}")
    for name, p in problems:
        print(f"invalid   {p.kind}/{name} {p.path or '<root>'}: {p.message}")
    print(f"{len(objects)} objects: {len(mandatory)} mandatory, {len(findings) - len(mandatory)} advisory findings, "
          f"{len({n for n, _ in problems})} invalid manifests")
    return code
