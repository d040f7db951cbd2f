"""Inputs that used to end in a wrongful accept: blank secrets, team files that are not mappings under every command
that reads them. Each case is refused with exit 2 naming the file, the line and the field."""

from __future__ import annotations

import json
from pathlib import Path

import pulumi
import pytest

from components.program import engine_config
from fleet.cli import main
from fleet.errors import ConfigError
from fleet.offline import codeowners
from fleet.spec.load import load_from_engine
from fleet.spec.stack_file import read_stack_file
from tests.conftest import edit, write


@pytest.mark.parametrize("value", ['""', '"   "', '"\\t\\n"'])
def test_a_blank_secure_value_is_refused_like_a_missing_secret(project: Path, capsys, value: str) -> None:
    edit(project / "stacks" / "Pulumi.dev.yaml", "      secure: v1:devSearchApiKeyCiphertextPlaceholder\n", f"      secure: {value}\n")
    assert main(["--root", str(project), "validate", "--stack", "dev"]) == 2
    err = capsys.readouterr().err
    line = next(i for i, text in enumerate((project / "stacks" / "Pulumi.dev.yaml").read_text().splitlines(), 1) if "search-api-key:" in text)
    assert f"stacks/Pulumi.dev.yaml:{line} config.vllm-fleet:secrets.search-api-key: the secret is empty" in err, err
    assert "pulumi config set --stack dev --secret --path 'vllm-fleet:secrets.search-api-key'" in err


@pytest.mark.parametrize("value", ["", "  ", None])
def test_a_blank_secret_from_the_engine_is_refused(project: Path, monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
    engine, _, _ = read_stack_file(project, "dev")
    assert engine is not None
    values = {**engine.values, "vllm-fleet:secrets": json.dumps({"hf-token": "hf_x", "search-api-key": value, "assistant-api-key": "k2"})}
    pulumi.runtime.set_all_config({}, [])
    monkeypatch.setenv("PULUMI_CONFIG", json.dumps(values))
    monkeypatch.setenv("PULUMI_CONFIG_SECRET_KEYS", json.dumps(["vllm-fleet:secrets"]))
    got, secret_keys = engine_config()
    with pytest.raises(ConfigError) as exc:
        load_from_engine("dev", project, got, secret_keys)
    assert "config.vllm-fleet:secrets: secret 'search-api-key' is empty" in str(exc.value)
    assert "hf_x" not in str(exc.value)


NOT_A_MAPPING = {"a list": "- name: evil\n- owners: ['@acme/evil']\n", "a string": "just some text\n", "a number": "42\n"}


@pytest.mark.parametrize("case", sorted(NOT_A_MAPPING))
def test_every_command_that_reads_team_files_refuses_one_that_is_not_a_mapping(project: Path, capsys, case: str) -> None:
    (project / ".github").mkdir()
    (project / ".github" / "CODEOWNERS").write_text(codeowners.render(project))
    write(project / "stacks" / "teams" / "evil.yaml", NOT_A_MAPPING[case])
    for argv in (["validate", "--stack", "dev"], ["policy-config", "--stack", "dev"], ["codeowners", "--check"], ["codeowners"],
                 ["plan", "--stack", "dev", "--no-policies"]):
        code = main(["--root", str(project), *argv])
        err = capsys.readouterr().err
        assert code == 2, (argv, err)
        assert "stacks/teams/evil.yaml:1: is a" in err and "expected a mapping with name, owners and models" in err, (argv, err)


def test_codeowners_refuses_a_team_file_that_validate_refuses(project: Path, capsys) -> None:
    edit(project / "stacks" / "teams" / "search.yaml", "owners:", "ownrs:")
    assert main(["--root", str(project), "codeowners", "--check"]) == 2
    err = capsys.readouterr().err
    assert "stacks/teams/search.yaml:" in err and "unknown key 'ownrs'" in err
    assert main(["--root", str(project), "validate", "--stack", "dev"]) == 2
    assert "unknown key 'ownrs'" in capsys.readouterr().err
