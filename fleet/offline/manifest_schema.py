"""Validate Kubernetes objects against the upstream OpenAPI schemas, strict mode.

The schemas are the ones kubernetes-validate ships (Kubernetes 1.25–1.37, `-local-strict`: unknown fields are
errors), validated with jsonschema; one validator is built per (version, apiVersion, kind) and reused. Custom
resources are validated against schemas vendored under fleet/catalog/crds/ (scripts/vendor_crd_schemas.py).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
from referencing import Registry, Resource

SCHEMA_ROOT = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
CRD_ROOT = Path(__file__).resolve().parent.parent / "catalog" / "crds"


# Formats the API server enforces that jsonschema does not know: `byte` is base64 (Secret.data, ConfigMap.binaryData);
# a Secret whose data is not base64 is rejected at apply time.
FORMATS = jsonschema.FormatChecker()


@FORMATS.checks("byte", raises=(binascii.Error, ValueError))
def _base64(value: object) -> bool:
    if isinstance(value, str):
        base64.b64decode(value, validate=True)
    return True


@dataclass(frozen=True)
class SchemaProblem:
    kind: str
    name: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.name} {self.path or '<root>'}: {self.message}"


def supported_versions() -> list[str]:
    """Kubernetes minor versions with bundled schemas, oldest first."""
    found = {m.group(1) for p in SCHEMA_ROOT.iterdir() if (m := re.match(r"^v(\d+\.\d+)\.\d+-local-strict$", p.name))}
    return sorted(found, key=lambda v: tuple(int(x) for x in v.split(".")))


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
def validator(version: str, api_version: str, kind: str) -> jsonschema.protocols.Validator | None:
    """The validator of a kind in a Kubernetes version, or None when neither upstream nor the vendored CRDs have one."""
    path = _schema_dir(version) / f"{kind.lower()}-{_group_version(api_version)}.json"
    if path.exists():
        schema = json.loads(path.read_text())
        registry = Resource.from_contents(schema) @ _definitions(version)
    else:
        crd = CRD_ROOT / f"{kind.lower()}-{api_version.replace('/', '-')}.json"
        if not crd.exists():
            return None
        # Vendored CRD schemas $ref the upstream definitions (PodTemplateSpec...) of this version.
        schema, registry = json.loads(crd.read_text()), _definitions(version)
    return jsonschema.validators.Draft202012Validator(schema, registry=registry, format_checker=FORMATS)


def _group_version(api_version: str) -> str:
    return re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)


@cache
def _builtin_group_versions(version: str) -> frozenset[str]:
    """The API group/versions Kubernetes itself serves in `version` (as schema file suffixes, e.g. apps-v1)."""
    return frozenset(p.stem.split("-", 1)[1] for p in _schema_dir(version).glob("*-*.json") if not p.name.startswith("_"))


def is_custom_resource(version: str, api_version: str) -> bool:
    """An object of an API group Kubernetes does not serve itself (a CRD's): without a vendored schema it cannot be
    validated here, which is not the same as invalid. A built-in group with an unknown kind is invalid."""
    group = api_version.rpartition("/")[0]
    return "." in group and _group_version(api_version) not in _builtin_group_versions(version)


def _path(error: jsonschema.ValidationError) -> str:
    out = ""
    for part in error.absolute_path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _join(parent: str, key: str) -> str:
    return f"{parent}.{key}" if parent else key


def validate(obj: dict[str, Any], version: str, unknown: frozenset[str] | set[str] = frozenset()) -> list[SchemaProblem]:
    """Schema problems of `obj`. `unknown` lists paths whose values are unknown at preview time (already removed
    from `obj`): a required field that is only unknown is not missing. A kind without a schema is a problem:
    the plan renders only kinds it can validate."""
    kind = str(obj.get("kind", "?"))
    metadata = obj.get("metadata")
    name = str(metadata.get("name", "?")) if isinstance(metadata, dict) else "?"
    api_version = obj.get("apiVersion")
    if not isinstance(api_version, str):
        return [SchemaProblem(kind, name, "apiVersion", "missing apiVersion")]
    check = validator(version, api_version, kind)
    if check is None:
        return [SchemaProblem(kind, name, "", f"no schema for {api_version} {kind} in Kubernetes {version} "
                                                "(and none vendored under fleet/catalog/crds/)")]
    problems = []
    for error in sorted(check.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path))):
        if error.validator == "required" and unknown and isinstance(error.instance, dict):
            missing = [p for p in error.validator_value if p not in error.instance]
            if all(_join(_path(error), p) in unknown for p in missing):
                continue
        if error.validator == "format" and error.validator_value == "byte":
            message = "is not base64, which the API server requires here (for a Secret, put plain text in stringData)"
        else:
            message = error.message if len(error.message) < 300 else error.message[:297] + "..."
        problems.append(SchemaProblem(kind, name, _path(error), message))
    return problems


def strip_unknowns(value: Any, path: str, found: list[str], unknown: Any) -> Any:
    """Drop values unknown at preview time (recording where) so the rest still validates."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            here = f"{path}.{k}" if path else k
            if v == unknown:
                found.append(here)
                continue
            out[k] = strip_unknowns(v, here, found, unknown)
        return out
    if isinstance(value, list):
        return [strip_unknowns(v, f"{path}[{i}]", found, unknown) for i, v in enumerate(value) if v != unknown]
    return value
