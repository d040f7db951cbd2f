"""Register AWS resources and call AWS functions by their provider type token, with wire-form properties.

Like components.kube for Kubernetes objects: each registration is the one the typed pulumi-aws class would
send — same token, camelCase properties, provider version, secret outputs (tests/test_aws_registration.py
compares every AWS resource and invoke of the bundled stacks, under every cache backend and pool kind, with
the typed class) — without importing pulumi-aws's typed modules, whose loading was a fixed ~0.4 s of every
plan and preview (`pulumi_aws.ec2` alone is 0.3 s: every EC2 resource and input class).

Not sent: the typed S3 classes' aliases to their pre-7.0 `...V2` types, which this program never registered
(the same reasoning as components/kube.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.metadata import version
from typing import Any, cast

import pulumi

from components.options import pinned

# The provider plugin the typed classes would pin (they pass their package version).
PROVIDER_VERSION = version("pulumi_aws")


def resource(token: str, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions,
             outputs: Sequence[str] = ()) -> pulumi.CustomResource:
    """Register `token` (e.g. `aws:eks/nodeGroup:NodeGroup`) with camelCase `props`; `outputs` names the
    provider-computed properties the program reads (`arn`, `latestVersion`...), which `output()` returns."""
    full = {**props, **{o: None for o in outputs if o not in props}}
    return pulumi.CustomResource(token, name, full, pinned(opts, PROVIDER_VERSION))


def output(res: pulumi.CustomResource, name: str) -> pulumi.Output[Any]:
    """A property of a resource registered by `resource()` (`id` and `urn` are always there)."""
    return cast(pulumi.Output[Any], getattr(res, name))


def invoke(token: str, args: dict[str, Any], opts: pulumi.InvokeOptions | None = None) -> pulumi.Output[Any]:
    """Call a provider function (e.g. `aws:eks/getCluster:getCluster`); the result is its camelCase object."""
    defaults = pulumi.InvokeOutputOptions(version=PROVIDER_VERSION)
    return pulumi.runtime.invoke_output(token, args, pulumi.InvokeOutputOptions.merge(defaults, opts))
