"""The README's sample outputs are real: they must match what the commands print."""

from __future__ import annotations

import contextlib
import io
import re
import shutil
from pathlib import Path

from fleet.cli import main
from tests.conftest import ROOT, write

EXAMPLE_TEAM = """\
name: search
owners: ["@acme/search-ml"]
# quota: stacks/tenancy.yaml
models:
  - name: qwen-7b
    model: Qwen/Qwen2.5-7B-Instruct
    pool: l40s
    replica: 2
    api_key: sk-live-1234
  - name: llama-70b
    model: meta-llama/Llama-3.1-70B-Instruct
    pool: h100
    max_model_len: 65536
    tensor_parallel_size: 3
"""


def blocks() -> list[str]:
    return [body for _lang, body in re.findall(r"^```(\w*)\n(.*?)^```", (ROOT / "README.md").read_text(), flags=re.S | re.M)]


def run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def test_readme_plan_sample_matches_the_dev_plan() -> None:
    sample = next(b for b in blocks() if b.startswith("vllm-fleet plan stack=dev"))
    code, out, _ = run(["--root", str(ROOT), "plan", "--stack", "dev"])
    assert code == 0
    printed = [" ".join(line.split()) for line in out.splitlines()]
    for line in sample.splitlines():
        line = " ".join(line.split())
        if line and line != "..." and not set(line) <= set("─ "):
            assert line in printed, f"README line not printed by `plan --stack dev`: {line!r}"


def test_readme_config_error_sample_is_what_validate_prints(tmp_path: Path) -> None:
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    write(tmp_path / "stacks" / "Pulumi.prod.yaml", (ROOT / "stacks" / "Pulumi.prod.yaml").read_text())
    write(tmp_path / "stacks" / "teams" / "search.yaml", EXAMPLE_TEAM)
    write(tmp_path / "stacks" / "tenancy.yaml", "teams:\n  search: {gpu_quota: {prod: 16}, secrets: [search-api-key]}\n")
    sample = next(b for b in blocks() if b.startswith("3 config errors:"))
    code, _, err = run(["--root", str(tmp_path), "validate", "--stack", "prod"])
    assert code == 2
    assert err == sample
