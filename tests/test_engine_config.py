"""The stack's config arrives as the Pulumi engine hands it: strings, JSON for structured values, secrets by key,
values from ESC environments; `plan` and `validate` read the stack file the way the CLI does."""

from __future__ import annotations

import json
from pathlib import Path

import pulumi
import pytest

from components.program import engine_config
from fleet.cli import main
from fleet.errors import ConfigError
from fleet.offline.plan import make_plan
from fleet.spec.load import load, load_from_engine
from fleet.spec.stack_file import looks_like_ciphertext, read_stack_file
from tests.conftest import edit

PASSPHRASE_HEADER = """encryptionsalt: v1:ZXhhbXBsZXNhbHQ=:v1:c2FsdG5vbmNlMTI=:dGVzdA==
secretsprovider: passphrase
environment:
  - vllm-fleet/prod-secrets
"""


def cli_written(project: Path, spare: str) -> Path:
    """The dev stack as the CLI leaves it after `pulumi stack init --secrets-provider passphrase`, an ESC import,
    and `pulumi config set vllm-fleet:spare_gpus <spare>` (a top-level value: stored as a string)."""
    stack = project / "stacks" / "Pulumi.dev.yaml"
    text = stack.read_text().replace("# yaml-language-server: $schema=schema/stack.schema.json\n", "")
    text = text.replace("  vllm-fleet:spare_gpus: 1\n", f'  vllm-fleet:spare_gpus: "{spare}"\n')
    # the hf-token secret is no longer in the file: the ESC environment provides it
    text = text.replace("    hf-token:\n      secure: v1:devHfTokenCiphertextPlaceholder\n", "")
    stack.write_text(PASSPHRASE_HEADER + text)
    return stack


def test_a_stack_file_the_cli_wrote_plans(project: Path, capsys) -> None:
    cli_written(project, "2")
    plan = make_plan("dev", project)
    assert plan.exit_code == 0
    assert plan.spec.config.spare_gpus == 2
    assert any("secret 'hf-token' is not in the stack file: provided by environment vllm-fleet/prod-secrets (unknown offline)"
               in n for n in plan.spec.notes)
    # the program still builds the Secret the team files reference: its value comes from the engine
    secret = next(c for c in plan.resources if c.name == "secret-team-assistant-hf-token")
    assert secret.inputs["stringData"] == {"value": "[secret]"} and secret.secret_paths == ["stringData"]
    assert main(["--root", str(project), "validate", "--stack", "dev"]) == 0
    assert "provided by environment vllm-fleet/prod-secrets" in capsys.readouterr().err


def test_a_number_that_is_not_a_number_is_refused_at_its_line(project: Path) -> None:
    cli_written(project, "two")
    with pytest.raises(ConfigError) as exc:
        load("dev", project)
    assert [str(i) for i in exc.value.issues] == [
        "stacks/Pulumi.dev.yaml:29 config.vllm-fleet:spare_gpus: 'two' — Input should be a valid integer"]


def test_what_the_cli_writes_is_accepted_and_nothing_else(project: Path) -> None:
    stack = project / "stacks" / "Pulumi.dev.yaml"
    # a project key without its namespace is the project's; booleans and integers under --path arrive typed or as strings
    edit(stack, "  vllm-fleet:spare_gpus: 1\n", '  spare_gpus: "3"\n')
    edit(stack, "    allow_tag_only: true\n", '    allow_tag_only: "true"\n')
    assert load("dev", project).config.spare_gpus == 3
    edit(stack, "config:\n", "confg: {}\nconfig:\n")
    edit(stack, "  vllm-fleet:tier: dev\n", "  vllm-fleet:teir: dev\n  vllm-fleet:tier: dev\n")
    with pytest.raises(ConfigError) as exc:
        load("dev", project)
    messages = sorted(str(i) for i in exc.value.issues)
    assert any("stacks/Pulumi.dev.yaml:3 confg: unknown key 'confg' — did you mean 'config'?" in m for m in messages), messages
    assert any("config.vllm-fleet:teir: unknown key 'vllm-fleet:teir' — did you mean 'vllm-fleet:tier'?" in m for m in messages), messages


def test_literal_secrets_in_the_stack_file_are_refused_without_echoing_them(project: Path) -> None:
    edit(project / "stacks" / "Pulumi.dev.yaml", "      secure: v1:devSearchApiKeyCiphertextPlaceholder\n", "      sk-live-do-not-print\n")
    with pytest.raises(ConfigError) as exc:
        load("dev", project)
    text = str(exc.value)
    assert "config.vllm-fleet:secrets.search-api-key: a literal secret is refused" in text and "sk-live" not in text


def test_placeholder_ciphertexts_are_warned_about() -> None:
    assert not looks_like_ciphertext("v1:devHfTokenCiphertextPlaceholder")
    assert looks_like_ciphertext("v1:ZwzBg/6Kb1mQ5Y/y:CO0VQOUWT7zWmK1o3iXlS25RArT5")   # passphrase provider
    assert looks_like_ciphertext("AAABAKl3u4GRzHq8qQ2x7JpLZsd4qGk=")                 # Pulumi Cloud
    assert not looks_like_ciphertext("changeme")


def test_the_program_reads_what_the_language_host_passes(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under `pulumi up` the language host passes every config value in PULUMI_CONFIG (and the secret keys in
    PULUMI_CONFIG_SECRET_KEYS); the program's spec follows those values, not the stack file's."""
    engine, _, _ = read_stack_file(project, "dev")
    assert engine is not None
    values = {**engine.values, "vllm-fleet:spare_gpus": "3", "vllm-fleet:secrets": json.dumps(
        {"hf-token": "hf_x", "search-api-key": "k1", "assistant-api-key": "k2"})}
    pulumi.runtime.set_all_config({}, [])  # a fresh program: nothing set in-process (earlier plans used the mocks' channel)
    monkeypatch.setenv("PULUMI_CONFIG", json.dumps(values))
    monkeypatch.setenv("PULUMI_CONFIG_SECRET_KEYS", json.dumps(["vllm-fleet:secrets"]))
    got, secret_keys = engine_config()
    assert got["vllm-fleet:spare_gpus"] == "3" and "vllm-fleet:secrets" in secret_keys
    spec = load_from_engine("dev", project, got, secret_keys)
    assert spec.config.spare_gpus == 3 and spec.config.secrets == ("assistant-api-key", "hf-token", "search-api-key")
    # a secret the engine did not mark secret is a literal: refused, never echoed
    with pytest.raises(ConfigError) as exc:
        load_from_engine("dev", project, got, frozenset())
    assert "vllm-fleet:secrets is not a secret" in str(exc.value) and "hf_x" not in str(exc.value)
