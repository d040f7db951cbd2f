"""Register a rendered manifest as the pulumi-kubernetes resource of its kind.

The manifest is already the wire form (camelCase, validated against the cluster's OpenAPI schema by
`plan`), so it is registered directly with the provider's type token (`kubernetes:apps/v1:Deployment`)
instead of through the typed classes. The registration is the one the typed class would send — same token,
properties, provider version and secret outputs (tests/test_kube_registration.py compares them kind by
kind), minus the aliases explained below — without importing ~20 typed modules or converting every nested
field through typed input/output classes, which made registration twice as slow.
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

import pulumi

from components.options import pinned
from fleet.render import Manifest

# The provider plugin the typed classes would pin (they pass their package version).
PROVIDER_VERSION = version("pulumi_kubernetes")

# No aliases. The typed classes alias each kind's earlier API versions (apps/v1beta1 Deployments...) so that
# a program which once registered those types updates them in place. This program has only ever registered
# the current versions, so those aliases can match nothing in its stacks' state, and each one costs the SDK
# ~0.1 ms per object (alias URNs are computed as Outputs for children): 0.3 s of a 100-model plan. If the
# project ever changes the apiVersion it renders for a kind, pass the old type token as an alias then.
# Fields the typed classes register as secrets (values wrapped, outputs kept secret in state).
SECRET_FIELDS: dict[tuple[str, str], tuple[str, ...]] = {("v1", "Secret"): ("data", "stringData")}


def type_token(api_version: str, kind: str) -> str:
    """`kubernetes:<group>/<version>:<Kind>`; the core group is spelled `core`."""
    group_version = api_version if "/" in api_version else f"core/{api_version}"
    return f"kubernetes:{group_version}:{kind}"


def resource_name(manifest: Manifest) -> str:
    """Pulumi name: kind, namespace and name, unique in the stack and stable across runs."""
    md = manifest["metadata"]
    ns = md.get("namespace")
    return f"{manifest['kind'].lower()}-{ns + '-' if ns else ''}{md['name']}"


def apply(manifest: Manifest | dict[str, Any], opts: pulumi.ResourceOptions, name: str | None = None) -> pulumi.CustomResource:
    api_version, kind = manifest["apiVersion"], manifest["kind"]
    props = dict(manifest)
    secret_fields = SECRET_FIELDS.get((api_version, kind), ())
    for f in secret_fields:
        if props.get(f) is not None:
            props[f] = pulumi.Output.secret(props[f])
    return pulumi.CustomResource(type_token(api_version, kind), name or resource_name(manifest), props,
                                 pinned(opts, PROVIDER_VERSION, secret_fields))
