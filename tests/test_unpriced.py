"""A model without a rate is `unpriced` in every table, total and PR diff — never `$0.00` — and a stack none of whose
GPUs is priced says so before anything else."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from fleet.cli import main
from fleet.cost import usd_or_unpriced
from fleet.offline import diff
from tests.conftest import ROOT, edit, resolve_prod_digest

# A commercial region fleet/catalog/prices.yaml has no g6e row for (the dev stack's L40S pool): the source lists no
# g6e offering there.
UNPRICED_REGION = "sa-east-1"


def unpriced_region(project: Path) -> None:
    edit(project / "stacks" / "Pulumi.dev.yaml", "aws:region: us-west-2", f"aws:region: {UNPRICED_REGION}")


def test_a_figure_is_unpriced_when_no_model_has_a_rate_and_says_how_many_lack_one_otherwise() -> None:
    assert usd_or_unpriced(0.0, 2, 2) == "unpriced"          # a plan written before None: 0.0 over unpriced models
    assert usd_or_unpriced(None, 3, 0) == "unpriced"
    assert usd_or_unpriced(7.82, 3, 1) == "$7.82 + 1 unpriced"
    assert usd_or_unpriced(1234.5, 2, 0) == "$1,234.50"


def test_a_stack_none_of_whose_gpus_is_priced_says_so_up_front_in_every_format(project: Path, capsys) -> None:
    unpriced_region(project)
    main(["--root", str(project), "plan", "--stack", "dev", "--format", "markdown", "--no-policies"])
    md = capsys.readouterr().out
    assert "$0.00" not in md
    assert md.splitlines()[2] == (f"> **No GPU of this stack is priced in {UNPRICED_REGION}: every $/hour below is unpriced. "
                                  f"Add the region's prices with `vllm-fleet prices refresh --regions {UNPRICED_REGION}`; "
                                  "the cost warnings say why each model has none.**")
    assert f"$/h unpriced in {UNPRICED_REGION}" in md
    assert "| search | 2 | 2-2 | 2 | 0 | 2-2 | unpriced | unpriced |" in md
    assert "| **total** | 3 | 3-3 | 3 | | | unpriced | unpriced |" in md
    main(["--root", str(project), "plan", "--stack", "dev", "--no-policies"])
    table = capsys.readouterr().out
    assert "$0.00" not in table and f"No GPU of this stack is priced in {UNPRICED_REGION}" in table.splitlines()[1]
    main(["--root", str(project), "plan", "--stack", "dev", "--format", "json", "--no-policies"])
    doc = json.loads(capsys.readouterr().out)
    assert doc["summary"]["usd_per_hour_min"] is None and doc["summary"]["unpriced_models"] == 3
    assert all(t["usd_per_hour_max"] is None for t in doc["teams"])
    assert doc["cost_warnings"][0].startswith(f"no model of this stack is priced in {UNPRICED_REGION}")
    assert f"no price for g6e.xlarge in {UNPRICED_REGION}" in doc["cost_warnings"][1]


def test_a_partly_priced_team_shows_its_priced_sum_and_how_many_models_are_unpriced(prod_root: Path, capsys) -> None:
    main(["--root", str(prod_root), "plan", "--stack", "prod", "--format", "markdown", "--no-policies"])
    md = capsys.readouterr().out
    assert "$0.00" not in md and "No GPU of this stack is priced" not in md
    # assistant's llama-70b and qwen3-32b (prefill, decode) and research's llama-405b run on the capacity-block pool
    assert "| assistant | 4 | 14-20 | 24 | 4 | 4-4 | $10.49 + 3 unpriced | $10.49 + 3 unpriced |" in md
    assert "| **total** | 8 | 36-46 | 64 | | | $24.89 + 4 unpriced | $28.80 + 4 unpriced |" in md


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    dest = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(dest)], check=True)
    for part in ("Pulumi.yaml", "pyproject.toml", "fleet", "components", "policies", "stacks"):
        subprocess.run(["cp", "-r", str(ROOT / part), str(dest / part)], check=True)
    resolve_prod_digest(dest)
    subprocess.run(["git", "-C", str(dest), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(dest), "-c", "user.email=ci@example.com", "-c", "user.name=ci", "commit", "-qm", "base"],
                   check=True)
    return dest


def test_a_pr_moving_the_stack_to_an_unpriced_region_shows_unpriced_not_a_saving(repo: Path, capsys) -> None:
    unpriced_region(repo)
    diff.run(repo, "dev", "HEAD", "markdown")
    md = capsys.readouterr().out
    assert "$0.00" not in md and "−$3.72" not in md
    assert "| search | 2 | 2 | 2 | $3.72 → unpriced | $3.72 → unpriced |" in md
    assert f"> **No GPU of this stack is priced in {UNPRICED_REGION}" in md


def test_recommend_shows_unpriced_where_the_region_has_no_price(capsys) -> None:
    main(["recommend", "--model", "Qwen/Qwen2.5-7B-Instruct", "--max-model-len", "8192", "--concurrency", "4",
          "--region", UNPRICED_REGION])
    out = capsys.readouterr().out
    g6e = next(line for line in out.splitlines() if line.startswith("g6e.xlarge "))
    assert " unpriced " in g6e and " - " not in g6e.split("  ")[-2]
