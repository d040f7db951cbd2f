"""Inputs that would take a tool down: alias bombs, deep nesting, self-referencing aliases, device files, symlinks out
of the repository, huge or non-UTF-8 files, malformed documents and nonsense arguments. Every subcommand answers
with exit 2 and a message that names the file (and line), quickly, never with a traceback."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from fleet.capacity.memory import DTYPE_BYTES, KV_BYTES, QUANT_BYTES
from fleet.cli import DTYPES, KV_DTYPES, QUANTIZATIONS, main
from fleet.yamlsrc import CONFIG_MAX_BYTES
from tests.conftest import write

BILLION_LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(8))

HOSTILE_YAML = {
    "alias bomb": (BILLION_LAUGHS, "expands to more than"),
    "deep nesting": ("x: " + "[" * 100_000 + "]" * 100_000 + "\n", "nests deeper than 100 levels"),
    "deep mappings": ("".join("  " * i + f"k{i}:\n" for i in range(150)) + "  " * 150 + "v: 1\n", "nests deeper than 100 levels"),
    "self-referencing alias": ("name: search\nmodels: &m [*m]\n", "self-referencing alias"),
    "broken syntax": ("name: search\nmodels: [\n", "not valid YAML"),
}


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    start = time.monotonic()
    code = main(argv)
    out, err = capsys.readouterr()
    assert time.monotonic() - start < 10, f"{argv} took too long"
    assert "Traceback" not in out + err
    return code, out, err


@pytest.mark.parametrize("case", sorted(HOSTILE_YAML))
def test_a_hostile_team_file_is_a_config_error_naming_file_and_line(project: Path, capsys, case: str) -> None:
    text, problem = HOSTILE_YAML[case]
    write(project / "stacks" / "teams" / "evil.yaml", text)
    code, _, err = run(["--root", str(project), "validate", "--stack", "dev"], capsys)
    assert code == 2
    assert "stacks/teams/evil.yaml:" in err and problem in err


@pytest.mark.parametrize("case", sorted(HOSTILE_YAML))
def test_check_reads_hostile_yaml_as_an_error(tmp_path: Path, capsys, case: str) -> None:
    text, problem = HOSTILE_YAML[case]
    path = write(tmp_path / "m.yaml", text)
    code, _, err = run(["check", str(path)], capsys)
    assert code == 2 and str(path) in err and problem in err


def test_a_hostile_stack_file_is_a_config_error(project: Path, capsys) -> None:
    write(project / "stacks" / "Pulumi.dev.yaml", BILLION_LAUGHS)
    code, _, err = run(["--root", str(project), "plan", "--stack", "dev"], capsys)
    assert code == 2 and "stacks/Pulumi.dev.yaml:" in err and "expands to more than" in err


def test_device_files_directories_and_missing_files(tmp_path: Path, capsys) -> None:
    for target, problem in (("/dev/zero", "a device or pipe, not a regular file"), (str(tmp_path), "is a directory"),
                            (str(tmp_path / "none.yaml"), "cannot read file")):
        for argv in (["check", target], ["guard", target], ["size", "--config-json", target, "--gpu", "H100"]):
            code, _, err = run(argv, capsys)
            assert code == 2 and problem in err, (argv, err)


def test_a_symlink_out_of_the_repository_is_refused_for_config(project: Path, tmp_path_factory, capsys) -> None:
    outside = write(tmp_path_factory.mktemp("elsewhere") / "team.yaml", (project / "stacks" / "teams" / "search.yaml").read_text())
    (project / "stacks" / "teams" / "search.yaml").unlink()
    os.symlink(outside, project / "stacks" / "teams" / "search.yaml")
    code, _, err = run(["--root", str(project), "validate", "--stack", "dev"], capsys)
    assert code == 2 and "outside the repository" in err


def test_oversized_and_non_utf8_files(project: Path, tmp_path: Path, capsys) -> None:
    write(project / "stacks" / "teams" / "big.yaml", "# " + "x" * CONFIG_MAX_BYTES + "\n")
    code, _, err = run(["--root", str(project), "validate", "--stack", "dev"], capsys)
    assert code == 2 and "stacks/teams/big.yaml" in err and "over the limit" in err
    (project / "stacks" / "teams" / "big.yaml").unlink()
    (project / "stacks" / "teams" / "latin1.yaml").write_bytes("name: caf\xe9\n".encode("latin-1"))
    code, _, err = run(["--root", str(project), "validate", "--stack", "dev"], capsys)
    assert code == 2 and "stacks/teams/latin1.yaml" in err and "not UTF-8" in err
    (tmp_path / "m.yaml").write_bytes(b"\xff\xfe kind: x")
    code, _, err = run(["check", str(tmp_path / "m.yaml")], capsys)
    assert code == 2 and "not UTF-8" in err


@pytest.mark.parametrize("text", ["- a\n- b\n", "42\n", "'just a string'\n", "null\n"])
def test_a_team_file_that_is_not_a_mapping(project: Path, capsys, text: str) -> None:
    write(project / "stacks" / "teams" / "odd.yaml", text)
    code, _, err = run(["--root", str(project), "validate", "--stack", "dev"], capsys)
    assert code == 2 and "stacks/teams/odd.yaml" in err


@pytest.mark.parametrize("doc", ["kind: Deployment\n", "apiVersion: v1\nkind: Pod\nmetadata: [a]\n",
                                 "apiVersion: v1\nkind: Pod\nmetadata: {name: {a: 1}}\n", "apiVersion: 1\nkind: [Pod]\n",
                                 "apiVersion: v1\nkind: List\nitems: 3\n"])
def test_check_names_broken_documents(tmp_path: Path, capsys, doc: str) -> None:
    path = write(tmp_path / "m.yaml", doc)
    code, _, err = run(["check", str(path)], capsys)
    assert code == 2 and f"{path} line 1" in err


@pytest.mark.parametrize("argv", [
    ["size", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "H100", "--tp", "0"],
    ["size", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "H100", "--tp", "-2"],
    ["size", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--gpu-memory-gib", "nan"],
    ["size", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--gpu-memory-gib", "-80"],
    ["size", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "H100", "--gpu-memory-utilization", "1.5"],
    ["size", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "H100", "--dtype", "int3"],
    ["size", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "H100", "--quantization", "magic"],
    ["size", "--params-b", "inf", "--layers", "32", "--kv-heads", "8", "--head-dim", "128", "--gpu", "H100"],
    ["size", "--params-b", "8", "--layers", "0", "--kv-heads", "8", "--head-dim", "128", "--gpu", "H100"],
    ["check", "x.yaml", "--kubernetes-version", "abc"],
    ["plan", "--stack", "../../etc/passwd"],
])
def test_nonsense_arguments_are_refused_with_exit_2(capsys, argv: list[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        code = main(argv)
        raise SystemExit(code)
    out, err = capsys.readouterr()
    assert stop.value.code == 2 and err and "Traceback" not in out + err


def test_size_choices_are_the_fit_checks(capsys) -> None:
    assert set(DTYPES) == set(DTYPE_BYTES) and set(QUANTIZATIONS) == set(QUANT_BYTES) and set(KV_DTYPES) == set(KV_BYTES)


@pytest.mark.parametrize("text", ['{"num_hidden_layers": 32}', "[1, 2]", '{"hidden_size": "x", "num_attention_heads": 0, '
                                  '"num_hidden_layers": 2}', "[" * 50_000])
def test_size_refuses_a_config_json_that_is_not_one(tmp_path: Path, capsys, text: str) -> None:
    path = write(tmp_path / "config.json", text)
    code, _, err = run(["size", "--config-json", str(path), "--gpu", "H100"], capsys)
    assert code == 2 and "--config-json" in err


def test_plan_out_to_something_that_is_not_a_directory(capsys, tmp_path: Path) -> None:
    from tests.conftest import ROOT
    code, _, err = run(["--root", str(ROOT), "plan", "--stack", "dev", "--out", "/dev/null"], capsys)
    assert code == 2 and "--out /dev/null" in err


def test_validate_and_plan_agree_on_colliding_resource_names(project: Path, capsys) -> None:
    """Team search's model bge-m3 and team search-bge's model m3 both render deployment-team-search-bge-m3."""
    from tests.conftest import grant

    write(project / "stacks" / "teams" / "search-bge.yaml", "name: search-bge\nowners: ['@acme/x']\nmodels:\n"
          "  - name: m3\n    model: BAAI/bge-m3\n    pool: l40s\n    runner: pooling\n")
    grant(project, "search", gpu_quota={"dev": 3, "prod": 16})
    grant(project, "search-bge", gpu_quota={"dev": 1}, secrets=[])
    code, _, validate_err = run(["--root", str(project), "validate", "--stack", "dev"], capsys)
    assert code == 2
    assert "stacks/teams/search.yaml:17 models[1].name:" in validate_err and "(stacks/teams/search-bge.yaml:4)" in validate_err
    assert validate_err.startswith("1 config error:") and "team search's model bge-m3 and team search-bge's model m3" in validate_err
    assert "both render `serviceaccount-team-search-bge-m3` (and more), which the engine refuses as a duplicate" in validate_err
    code, _, plan_err = run(["--root", str(project), "plan", "--stack", "dev"], capsys)
    assert code == 2 and plan_err == validate_err


@pytest.mark.parametrize("version, problem", [
    ("0.99.0", "no flag table for vLLM 0.99.0 (bundled: "),
    ("0.31.0", "0.31.0 is below the security floor 0.32.0"),
])
@pytest.mark.parametrize("command", ["validate", "plan", "policy-config"])
def test_a_stack_on_a_vllm_release_without_a_table_names_the_line_and_the_upgrade_command(project: Path, capsys, command: str,
                                                                                         version: str, problem: str) -> None:
    stack = project / "stacks" / "Pulumi.dev.yaml"
    text = stack.read_text()
    stack.write_text(text.replace("    version: 0.3", f"    version: {version}  # was 0.3", 1))
    line = next(i for i, row in enumerate(stack.read_text().splitlines(), 1) if f"version: {version}" in row)
    code, out, err = run(["--root", str(project), command, "--stack", "dev"], capsys)
    assert code == 2, out + err
    assert f"stacks/Pulumi.dev.yaml:{line} config.vllm-fleet:vllm.version: {problem}" in err
    assert "`vllm-fleet upgrade vllm " in err and len(err.strip().splitlines()) == 2  # the count line and the one error


@pytest.mark.parametrize("command", [["size", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "H100"],
                                     ["recommend", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--max-model-len", "8192",
                                      "--concurrency", "4"],
                                     ["predict", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "p5.48xlarge",
                                      "--input-tokens", "128", "--output-tokens", "128", "--concurrency", "4"]])
def test_size_recommend_and_predict_refuse_a_release_newer_than_the_bundled_tables(capsys, command: list[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main([*command, "--vllm-version", "0.99.0"])
    out, err = capsys.readouterr()
    assert stop.value.code == 2 and "Traceback" not in out + err
    assert "--vllm-version: no flag table for vLLM 0.99.0" in err and "`vllm-fleet upgrade vllm 0.99.0`" in err
