#!/usr/bin/env python3
"""Vendor strict JSON Schemas of the custom resources the stack renders (ServiceMonitor, PrometheusRule,
KEDA ScaledObject) into fleet/catalog/crds/.

The schemas come from the `cloudcoil-models-*` packages, which are generated from the projects' published
CRDs. This script installs them in a throwaway environment, exports each model's JSON Schema and makes it
strict the way the API server treats a structural schema with field validation on: unknown fields are
errors (`additionalProperties: false` on every object with declared properties). `metadata` points at the
upstream ObjectMeta of the validated Kubernetes version.

    python scripts/vendor_crd_schemas.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "fleet" / "catalog" / "crds"
PACKAGES = ["cloudcoil-models-prometheus-operator==0.80.1.0", "cloudcoil-models-keda==2.16.1.0"]
KINDS = [  # (module, class, apiVersion)
    ("cloudcoil.models.prometheus_operator.v1", "ServiceMonitor", "monitoring.coreos.com/v1"),
    ("cloudcoil.models.prometheus_operator.v1", "PrometheusRule", "monitoring.coreos.com/v1"),
    ("cloudcoil.models.prometheus_operator.v1", "PodMonitor", "monitoring.coreos.com/v1"),
    ("cloudcoil.models.keda.v1alpha1", "ScaledObject", "keda.sh/v1alpha1"),
]
OBJECT_META = "https://kubernetes.io/api/_definitions.json#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"

EXPORT = """
import importlib, json, sys
out = {}
for module, cls, _ in json.loads(sys.argv[1]):
    out[cls] = getattr(importlib.import_module(module), cls).model_json_schema(by_alias=True)
print(json.dumps(out))
"""


def strict(node):
    if isinstance(node, dict):
        node = {k: strict(v) for k, v in node.items()}
        if "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        node.pop("title", None)
        return node
    if isinstance(node, list):
        return [strict(v) for v in node]
    return node


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        py = Path(tmp) / "venv" / "bin" / "python"
        subprocess.run([sys.executable, "-m", "venv", str(Path(tmp) / "venv")], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", *PACKAGES], check=True)
        raw = json.loads(subprocess.run([str(py), "-c", EXPORT, json.dumps(KINDS)], check=True,
                                        capture_output=True, text=True).stdout)
    OUT.mkdir(parents=True, exist_ok=True)
    for _module, cls, api_version in KINDS:
        schema = strict(raw[cls])
        props = schema["properties"]
        props["apiVersion"] = {"type": "string", "enum": [api_version]}
        props["kind"] = {"type": "string", "enum": [cls]}
        props["metadata"] = {"$ref": OBJECT_META}
        props.pop("status", None)
        schema["required"] = sorted(set(schema.get("required", [])) | {"apiVersion", "kind", "metadata"})
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["x-source"] = f"generated from {', '.join(PACKAGES)} (models of the published CRDs) by scripts/vendor_crd_schemas.py"
        path = OUT / f"{cls.lower()}-{api_version.replace('/', '-')}.json"
        path.write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")
        print(path.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
