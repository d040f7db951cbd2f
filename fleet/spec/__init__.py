"""Typed stack and team configs and their loading (fleet.spec.load.load): stack file or engine config, team files,
cross-field rules, resolved models."""
