"""The program `pulumi up` runs (`__main__.py`), also run offline under mocks by `vllm-fleet plan`: read the
stack's config from the engine, load the spec, build the Fleet, export what it serves."""

from __future__ import annotations

from pathlib import Path

import pulumi
from pulumi.runtime import config as runtime_config

from components.fleet import Fleet, FleetArgs
from fleet.spec.engine_config import NAMESPACE
from fleet.spec.load import load_from_engine
from fleet.spec.resolved import FleetSpec

ROOT = Path(__file__).resolve().parent.parent


def engine_config() -> tuple[dict[str, str], frozenset[str]]:
    """Every config value the engine handed this program, and which are secrets. The language host passes the
    whole bag in PULUMI_CONFIG / PULUMI_CONFIG_SECRET_KEYS; under the SDK's mocks it is what `set_all_config`
    set. Reading the whole bag, not a list of known keys, is what lets a mistyped key be refused."""
    keys = set(runtime_config.get_config_env()) | set(runtime_config.CONFIG.get())
    values = {k: str(runtime_config.get_config(k)) for k in keys}
    secrets = set(runtime_config.get_config_secret_keys_env()) | {k for k in keys if runtime_config.is_config_secret(k)}
    return values, frozenset(secrets & keys)


def build(root: Path = ROOT) -> FleetSpec:
    """Load the spec from the engine's config and declare the whole fleet; raises ConfigError on bad config."""
    values, secret_keys = engine_config()
    spec = load_from_engine(pulumi.get_stack(), root, values, secret_keys)
    secret_values = pulumi.Config(NAMESPACE).get_secret_object("secrets") or pulumi.Output.secret({})
    Fleet("fleet", FleetArgs(spec, secret_values))
    pulumi.export("teams", [t.name for t in spec.teams])
    pulumi.export("models", {f"{m.team}/{m.name}": m.namespace for m in spec.models})
    return spec
