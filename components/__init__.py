"""Pulumi ComponentResources that turn a loaded FleetSpec into resources, through the typed pulumi_aws and
pulumi_kubernetes classes; components.program is the program itself."""

from components.fleet import Fleet, FleetArgs

__all__ = ["Fleet", "FleetArgs"]
