"""Pure renderers: resolved spec → Kubernetes manifests (camelCase, exactly what the API server and the
policy pack see). Components wrap each manifest in a Pulumi resource; nothing here touches Pulumi."""

from __future__ import annotations

from typing import Any

from fleet.labels import NONROOT_UID

Manifest = dict[str, Any]


def restricted_pod() -> dict[str, Any]:
    """The pod securityContext of the fleet's own non-root pods (Pod Security "restricted")."""
    return {"runAsNonRoot": True, "runAsUser": NONROOT_UID, "runAsGroup": NONROOT_UID, "seccompProfile": {"type": "RuntimeDefault"}}


def restricted_container() -> dict[str, Any]:
    """The container securityContext that goes with restricted_pod(): no privilege escalation, no capabilities, a
    read-only root filesystem."""
    return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": True,
            "runAsUser": NONROOT_UID, "readOnlyRootFilesystem": True}


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
