"""Generated JSON Schemas and the configuration reference stay fresh; YAML files point at them."""

from __future__ import annotations

import json

import jsonschema
import yaml

from fleet.cli import main
from fleet.offline import config_docs as schema
from tests.conftest import ROOT


def test_committed_schemas_and_reference_are_fresh() -> None:
    stale = [str(p.relative_to(ROOT)) for p in schema.stale_files(ROOT)]
    assert stale == [], f"run `vllm-fleet schema` and commit: {stale}"


def test_schema_check_fails_when_a_schema_is_stale(project, capsys) -> None:
    (project / "docs").mkdir()
    (project / "docs" / "configuration.md").write_text(schema.reference_text())
    (project / "docs" / "guardrails.md").write_text(schema.guardrails_text())
    assert main(["--root", str(project), "schema", "--check"]) == 0
    path = project / "stacks" / "schema" / "team.schema.json"
    path.write_text(path.read_text().replace('"maximum": 64', '"maximum": 65', 1))
    assert main(["--root", str(project), "schema", "--check"]) == 1
    assert "stale: stacks/schema/team.schema.json" in capsys.readouterr().err
    path.write_text(path.read_text().replace('"maximum": 65', '"maximum": 64', 1))
    guardrails = project / "docs" / "guardrails.md"
    guardrails.write_text(guardrails.read_text().replace("| mandatory |", "| advisory |", 1))
    assert main(["--root", str(project), "schema", "--check"]) == 1
    assert "stale: docs/guardrails.md" in capsys.readouterr().err


def test_every_yaml_file_references_its_schema_and_validates_against_it() -> None:
    stack_schema = json.loads((ROOT / "stacks" / "schema" / "stack.schema.json").read_text())
    team_schema = json.loads((ROOT / "stacks" / "schema" / "team.schema.json").read_text())
    files = sorted((ROOT / "stacks").glob("Pulumi.*.yaml")) + sorted((ROOT / "stacks" / "teams").glob("*.yaml"))
    assert len(files) >= 5
    for path in files:
        first = path.read_text().splitlines()[0]
        expected = "schema/stack.schema.json" if path.name.startswith("Pulumi.") else "../schema/team.schema.json"
        assert first == f"# yaml-language-server: $schema={expected}", path
        jsonschema.validate(yaml.safe_load(path.read_text()),
                            stack_schema if path.name.startswith("Pulumi.") else team_schema)


def test_the_reference_documents_defaults_and_conflicts() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text()
    assert "| `tensor_parallel_size` |" in text
    assert "Conflicts with `autoscaling`" in text
    assert "| `disk_gib` | integer | `200` |" in text
