"""Pure renderers: resolved spec → Kubernetes manifests (camelCase, exactly what the API server and the
policy pack see). Components wrap each manifest in a Pulumi resource; nothing here touches Pulumi."""

from __future__ import annotations

from typing import Any

Manifest = dict[str, Any]


def meta(name: str, namespace: str | None = None, labels: dict[str, str] | None = None,
         annotations: dict[str, str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name}
    if namespace is not None:
        out["namespace"] = namespace
    if labels:
        out["labels"] = dict(labels)
    if annotations:
        out["annotations"] = dict(annotations)
    return out
