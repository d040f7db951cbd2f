"""Resource options for registrations by type token (components.kube, components.aws)."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import pulumi


def pinned(opts: pulumi.ResourceOptions, version: str, secret_outputs: Sequence[str] = ()) -> pulumi.ResourceOptions:
    """The caller's options plus what a typed provider class adds: its package version and secret outputs. A copy,
    not ResourceOptions.merge, which would also turn an absent depends_on into an empty list that the SDK then
    resolves for every resource (the same request either way; the registration tests compare them)."""
    out = copy.copy(opts)
    out.version = version
    if secret_outputs:
        out.additional_secret_outputs = [*(opts.additional_secret_outputs or []), *secret_outputs]
    return out
