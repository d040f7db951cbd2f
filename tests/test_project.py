"""The Pulumi project itself: Pulumi.yaml, the program entry point, the console script."""

from __future__ import annotations

import json
import runpy

import jsonschema
import yaml

from fleet.offline.engine import run
from fleet.offline.plan import engine_config_offline
from fleet.spec.load import load
from fleet.spec.stack_file import read_stack_file
from tests.conftest import ROOT

PROJECT_SCHEMA = ROOT / "tests" / "schemas" / "pulumi-project.schema.json"


def test_pulumi_yaml_matches_the_project_schema() -> None:
    schema = json.loads(PROJECT_SCHEMA.read_text())
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    jsonschema.validate(project, schema)
    assert project["name"] == "vllm-fleet"
    assert project["runtime"]["name"] == "python"
    assert project["runtime"]["options"]["virtualenv"] == ".venv"
    assert project["stackConfigDir"] == "stacks"


def test_pulumi_yaml_schema_rejects_a_broken_project() -> None:
    schema = json.loads(PROJECT_SCHEMA.read_text())
    try:
        jsonschema.validate({"name": "x", "runtime": {"name": "python", "bogus": 1}}, schema)
    except jsonschema.ValidationError:
        return
    raise AssertionError("the project schema accepted an unknown runtime key")


def test_main_program_runs_under_mocks_and_registers_the_fleet(monkeypatch) -> None:
    """`__main__.py` is what `pulumi up` runs: execute it for real under the mocks."""
    monkeypatch.chdir(ROOT)
    spec = load("dev", ROOT)
    engine, _, _ = read_stack_file(ROOT, "dev")
    assert engine is not None
    config, secret_keys = engine_config_offline(engine, spec)
    captured = run(lambda: runpy.run_path(str(ROOT / "__main__.py")), project="vllm-fleet", stack="dev",
                   config=config, secret_keys=secret_keys)
    types = {c.type for c in captured}
    assert "vllm-fleet:index:Fleet" in types
    assert "aws:eks/nodeGroup:NodeGroup" in types
    # the dev stack's three models and the Cluster Autoscaler (docs/capacity.md)
    assert sum(1 for c in captured if c.type == "kubernetes:apps/v1:Deployment") == 4
