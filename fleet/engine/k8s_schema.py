"""Validate rendered Kubernetes objects against the upstream OpenAPI schemas, strict mode.

Uses the schemas shipped by kubernetes-validate (Kubernetes 1.25–1.37, `-local-strict`: unknown fields
are errors) with one validator built per (version, apiVersion, kind) instead of one per call, compiled to
closures by fleet.engine.compiled_schema (jsonschema's results, ~10x faster; jsonschema itself for a schema
using a keyword the compiler lacks). Custom resources are validated against schemas vendored under
fleet/catalog/crds/ (fail closed: a kind with no schema is an error, never a silent pass).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, TypeAlias

import jsonschema
import kubernetes_validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from fleet.engine.compiled_schema import CompiledValidator, SchemaError, Unsupported

Validator: TypeAlias = CompiledValidator | jsonschema.protocols.Validator

SCHEMA_ROOT = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
CRD_ROOT = Path(__file__).resolve().parent.parent / "catalog" / "crds"


@dataclass(frozen=True)
class SchemaProblem:
    kind: str
    name: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.name} {self.path or '<root>'}: {self.message}"


@cache
def _schema_dir(version: str) -> Path:
    want = tuple(int(x) for x in version.split(".")[:2])
    found = sorted(
        (tuple(int(x) for x in m.group(1).split(".")[:2]), p)
        for p in SCHEMA_ROOT.iterdir()
        if (m := re.match(r"^v(\d+\.\d+)\.\d+-local-strict$", p.name))
    )
    candidates = [p for v, p in found if v <= want]
    if not candidates:
        raise ValueError(f"no Kubernetes schemas for {version}")
    return candidates[-1]


@cache
def _definitions(version: str) -> Registry:
    defs = json.loads((_schema_dir(version) / "_definitions.json").read_text())
    return Resource.from_contents(defs) @ Registry()  # type: ignore[no-any-return]


@cache
def _schema(version: str, api_version: str, kind: str) -> tuple[dict[str, Any], Registry] | None:
    """The schema of a kind and the registry its `$ref`s resolve in; None when there is none."""
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    path = _schema_dir(version) / f"{kind.lower()}-{group_version}.json"
    if path.exists():
        schema = json.loads(path.read_text())
        return schema, Resource.from_contents(schema) @ _definitions(version)
    crd = CRD_ROOT / f"{kind.lower()}-{api_version.replace('/', '-')}.json"
    if crd.exists():
        # Vendored CRD schemas $ref the upstream definitions (PodTemplateSpec...) of this version.
        return json.loads(crd.read_text()), _definitions(version)
    return None


@cache
def _validator(version: str, api_version: str, kind: str, reference: bool = False) -> Validator | None:
    """The compiled validator (fleet.engine.compiled_schema) unless the schema uses a keyword it does not
    implement, or `reference` asks for jsonschema itself (the tests compare the two)."""
    found = _schema(version, api_version, kind)
    if found is None:
        return None
    schema, registry = found
    if not reference:
        try:
            return CompiledValidator(schema, registry.resolver_with_root(DRAFT202012.create_resource(schema)))
        except Unsupported:
            pass
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


def _path(error: jsonschema.ValidationError | SchemaError) -> str:
    out = ""
    for part in error.absolute_path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _join(parent: str, key: str) -> str:
    return f"{parent}.{key}" if parent else key


def validate(obj: dict[str, Any], version: str, unknown: frozenset[str] | set[str] = frozenset(),
             reference: bool = False) -> list[SchemaProblem]:
    """Schema problems of `obj`. `unknown` lists paths whose values are unknown at preview time (already
    removed from `obj`): a required field that is only unknown is not missing. `reference` validates with
    jsonschema instead of the compiled validator (same results, ~10x slower; for tests)."""
    kind = str(obj.get("kind", "?"))
    metadata = obj.get("metadata")
    name = str(metadata.get("name", "?")) if isinstance(metadata, dict) else "?"
    api_version = obj.get("apiVersion")
    if not isinstance(api_version, str):
        return [SchemaProblem(kind, name, "apiVersion", "missing apiVersion")]
    validator = _validator(version, api_version, kind, reference)
    if validator is None:
        return [SchemaProblem(kind, name, "", f"no schema for {api_version} {kind} in Kubernetes {version} "
                                                "(and none vendored under fleet/catalog/crds/)")]
    problems = []
    for error in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path))):
        if error.validator == "required" and unknown and isinstance(error.instance, dict):
            missing = [p for p in error.validator_value if p not in error.instance]
            if all(_join(_path(error), p) in unknown for p in missing):
                continue
        message = error.message if len(error.message) < 300 else error.message[:297] + "..."
        problems.append(SchemaProblem(kind, name, _path(error), message))
    return problems
