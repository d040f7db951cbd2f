"""`vllm-fleet check FILE...`: the policy pack and schema validation on manifests nobody generated here."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

from fleet.kinds import kubernetes_type
from fleet.offline.engine import Captured
from fleet.offline.manifest_schema import is_custom_resource, validator
from fleet.offline.manifest_schema import validate as validate_manifest
from fleet.offline.policy_pack import analyze, policy_config, policy_levels
from fleet.yamlsrc import DOCUMENT_MAX_BYTES, SAFE_LOADER, InputError, plain_data, read_input, yaml_limits


def _yaml_error(path: Path, exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f" line {mark.line + 1}" if mark is not None else ""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    return f"{path}{where}: not valid YAML: {problem}{f' ({context})' if context else ''} — fix the syntax at this line"


def _documents(path: Path) -> tuple[list[tuple[int, Any]], str | None]:
    """(line, document) pairs of a multi-document YAML file, or the reason it cannot be read."""
    try:
        text = read_input(path, max_bytes=DOCUMENT_MAX_BYTES)
    except InputError as exc:
        return [], str(exc)
    limit = yaml_limits(text, str(path))
    if limit is not None:
        return [], f"{path} line {limit[0]}: {limit[1]}"
    try:
        loader = SAFE_LOADER(text)
        docs = []
        try:
            while loader.check_node():
                node = loader.get_node()
                if node is not None:
                    docs.append((node.start_mark.line + 1, plain_data(loader.construct_document(node))))
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        return [], _yaml_error(path, exc)
    return docs, None


def load_manifests(files: list[Path]) -> tuple[list[Captured], list[str]]:
    objects: list[Captured] = []
    errors: list[str] = []
    seen: dict[str, int] = {}
    for path in files:
        docs, error = _documents(path)
        if error is not None:
            errors.append(error)
            continue
        for i, (line, doc) in enumerate(docs):
            if doc is None:
                continue
            items = doc.get("items") if isinstance(doc, dict) and str(doc.get("kind", "")).endswith("List") else [doc]
            if not isinstance(items, list):
                errors.append(f"{path} line {line} (document {i + 1}): `items` of a {doc.get('kind')} is not a list")
                continue
            for obj in items:
                problem = _not_an_object(obj)
                if problem:
                    errors.append(f"{path} line {line} (document {i + 1}): {problem}")
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


def _not_an_object(obj: Any) -> str | None:
    if not isinstance(obj, dict) or "apiVersion" not in obj or "kind" not in obj:
        return "not a Kubernetes object (apiVersion and kind required)"
    if not isinstance(obj["apiVersion"], str) or not isinstance(obj["kind"], str):
        return "apiVersion and kind must be strings"
    md = obj.get("metadata")
    if md is not None and not isinstance(md, dict):
        return f"metadata of {obj['kind']} is not a mapping"
    if isinstance(md, dict) and not all(isinstance(md.get(k), (str, type(None))) for k in ("name", "namespace")):
        return f"metadata.name and metadata.namespace of {obj['kind']} must be strings"
    return None


def check_files(files: list[Path], fmt: str, kubernetes_version: str) -> int:
    """Exit 2 when a file cannot be read (even among readable ones: an unchecked file is not a clean one), 1 on a
    mandatory finding or an invalid manifest, else 0. Custom resources without a vendored schema are listed as not
    validated, not as invalid."""
    objects, errors = load_manifests(files)
    findings = analyze(objects, policy_levels(None), policy_config(None)) if objects else []
    problems = []
    unvalidated = []
    for c in objects:
        api_version = str(c.inputs["apiVersion"])
        if validator(kubernetes_version, api_version, str(c.inputs["kind"])) is None and is_custom_resource(kubernetes_version, api_version):
            unvalidated.append(c)
            continue
        problems += [(c.name, p) for p in validate_manifest(c.inputs, kubernetes_version)]
    mandatory = [f for f in findings if f.level == "mandatory"]
    code = 2 if errors else 1 if mandatory or problems else 0
    if fmt == "json":
        doc: dict[str, Any] = {
            "findings": [f.as_dict() for f in sorted(findings, key=lambda f: (f.level != "mandatory", f.rule_id, f.urn))],
            "schema_problems": [{"resource": name, "kind": p.kind, "path": p.path, "message": p.message} for name, p in problems],
            "not_validated": [{"resource": c.name, "kind": c.inputs["kind"], "apiVersion": c.inputs["apiVersion"],
                               "reason": "custom resource without a vendored schema"} for c in unvalidated],
            "errors": errors,
            "summary": {"objects": len(objects), "mandatory_findings": len(mandatory),
                        "advisory_findings": len(findings) - len(mandatory), "invalid_manifests": len({n for n, _ in problems}),
                        "not_validated": len(unvalidated), "unreadable_files": len(errors), "exit_code": code},
        }
        print(json.dumps(doc, indent=2))
        return code
    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    for f in sorted(findings, key=lambda f: (f.level != "mandatory", f.rule_id, f.name)):
        print(f"{f.level:9} {f.rule_id:4} {f.name}: {f.message}")
        if f.remediation:
            print(f"{'':15}fix: {f.remediation}")
    for name, p in problems:
        print(f"invalid   {p.kind}/{name} {p.path or '<root>'}: {p.message}")
    for c in unvalidated:
        print(f"unchecked {c.inputs['kind']}/{c.name}: {c.inputs['apiVersion']} is a custom resource without a vendored schema "
              "(not validated)")
    print(f"{len(objects)} objects: {len(mandatory)} mandatory, {len(findings) - len(mandatory)} advisory findings, "
          f"{len({n for n, _ in problems})} invalid, {len(unvalidated)} not validated manifests"
          + (f"; {len(errors)} unreadable files" if errors else ""))
    return code
