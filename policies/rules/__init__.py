"""Every rule of the catalogue, by area. Importing this package registers them in policies.framework.RULES."""

from policies.framework import RULES
from policies.rules import aws, cache, components, gpu, pod_security, reliability, routing, vllm  # noqa: F401

__all__ = ["RULES"]
