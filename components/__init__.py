"""Pulumi ComponentResources that turn a validated FleetSpec into resources."""

from components.fleet import Fleet

__all__ = ["Fleet"]
