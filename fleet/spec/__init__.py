"""Typed stack and team configs and the loader that merges them (see fleet.spec.loader.load)."""
