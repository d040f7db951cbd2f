"""`plan --base REF`: diff against a git ref, read without touching the working tree."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from fleet.offline import diff
from tests.conftest import ROOT, resolve_prod_digest, s3_cache


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository holding the project's code and stacks, one commit."""
    dest = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(dest)], check=True)
    for part in ("Pulumi.yaml", "pyproject.toml", "fleet", "components", "policies", "stacks"):
        src = ROOT / part
        subprocess.run(["cp", "-r", str(src), str(dest / part)], check=True)
    resolve_prod_digest(dest)
    subprocess.run(["git", "-C", str(dest), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(dest), "-c", "user.email=ci@example.com", "-c", "user.name=ci", "commit", "-qm", "base"], check=True)
    return dest


def run_json(repo: Path, stack: str, capsys) -> tuple[int, dict]:
    code = diff.run(repo, stack, "HEAD", "json")
    return code, json.loads(capsys.readouterr().out)


def test_a_team_file_change_shows_gpu_and_field_deltas_and_leaves_the_tree_alone(repo: Path, capsys) -> None:
    tenancy = repo / "stacks" / "tenancy.yaml"
    tenancy.write_text(tenancy.read_text().replace("gpu_quota: {dev: 2, prod: 16}", "gpu_quota: {dev: 2, prod: 20}"))
    status_before = subprocess.run(["git", "-C", str(repo), "status", "--porcelain"], capture_output=True, text=True).stdout
    code, doc = run_json(repo, "prod", capsys)
    assert code == 0 and doc["base_planned_with"] == "base code"
    (change,) = doc["changed"]
    assert change["urn"].endswith("::resourcequota-team-search-team-quota")
    assert "spec.hard.requests.nvidia.com/gpu" in change["fields"] and change["replaces"] == []
    search = next(g for g in doc["gpu"] if g["team"] == "search")
    assert search["gpu_quota"] == [16, 20]
    assert subprocess.run(["git", "-C", str(repo), "status", "--porcelain"], capture_output=True, text=True).stdout == status_before


def test_fewer_max_replicas_show_gpu_and_cost_deltas(repo: Path, capsys) -> None:
    team = repo / "stacks" / "teams" / "search.yaml"
    team.write_text(team.read_text().replace("max_replicas: 6", "max_replicas: 4"))
    code, doc = run_json(repo, "prod", capsys)
    assert code == 0
    search = next(g for g in doc["gpu"] if g["team"] == "search")
    # qwen-3b runs one L4 per pod on g6.2xlarge ($0.9776/h on demand in us-east-1): 6 -> 4 nodes at max
    assert search["gpus_max"] == [8, 6] and search["usd_per_hour_max"] == [7.82, 5.87]
    assert search["usd_per_hour_min"][0] == search["usd_per_hour_min"][1]
    assert diff._delta(7.82, 5.87, money=True) == "$7.82 → $5.87 (−$1.95)" and diff._delta(2, 2) == "2"


def test_a_storage_class_change_to_the_cache_claim_exits_1_naming_the_field(repo: Path, capsys, monkeypatch) -> None:
    import fleet.render.cache as cache

    monkeypatch.setattr(cache, "CACHE_STORAGE_CLASS", "efs-sc")  # the change under review, in this checkout's code
    code, doc = run_json(repo, "dev", capsys)
    assert code == 1
    assert any(r.endswith("::persistentvolumeclaim-team-search-model-cache would be replaced: spec.storageClassName changed")
               for r in doc["stateful_replacements"])
    pvc = next(c for c in doc["changed"] if c["urn"].endswith("persistentvolumeclaim-team-search-model-cache"))
    assert pvc["replaces"] == ["spec.storageClassName"]


def test_switching_the_cache_backend_deletes_the_file_system(repo: Path, capsys) -> None:
    s3_cache(repo)
    code, doc = run_json(repo, "dev", capsys)
    assert code == 1
    assert any("aws:efs/fileSystem:FileSystem::model-cache-efs would be deleted" in r for r in doc["stateful_replacements"])


def test_markdown_fits_a_comment_and_masks_secrets(repo: Path, capsys) -> None:
    stack = repo / "stacks" / "Pulumi.dev.yaml"
    stack.write_text(stack.read_text().replace("vllm-fleet:spare_gpus: 1", "vllm-fleet:spare_gpus: 2"))
    tenancy = repo / "stacks" / "tenancy.yaml"
    tenancy.write_text(tenancy.read_text().replace("gpu_quota: {dev: 1, prod: 24}", "gpu_quota: {dev: 2, prod: 24}"))
    assert diff.run(repo, "dev", "HEAD", "markdown") == 0
    md = capsys.readouterr().out
    assert md.startswith("### ✅ vllm-fleet plan `dev` vs `HEAD`")
    assert "| assistant | 1 | 1 | 1 → 2 (+1) | $1.86 | $1.86 |" in md and len(md) < diff.GITHUB_COMMENT_LIMIT
    change = diff.Change("urn:x::secret-team-a-key", "kubernetes:core/v1:Secret", [("stringData.value", "old-key", "new-key")],
                         secret_paths=["stringData"])
    masked = diff.markdown(diff.Diff("dev", "HEAD", "base code", [], [], [change], [], [], [], 0, [], 0))
    assert "`stringData.value`: `[secret]` → `[secret]`" in masked and "new-key" not in masked


def test_an_unknown_ref_is_a_config_error(repo: Path, capsys) -> None:
    assert diff.run(repo, "dev", "no-such-ref", "markdown") == 2
    assert "--base no-such-ref: cannot read it from git" in capsys.readouterr().err


def test_a_model_with_an_slo_gets_a_mermaid_chart_in_the_pr_markdown(repo: Path, capsys) -> None:
    team = repo / "stacks" / "teams" / "assistant.yaml"
    team.write_text(team.read_text().replace(
        "    profile: latency\n",
        "    profile: latency\n    slo: {request_rate: 2, input_tokens: 512, output_tokens: 128, ttft_p95_ms: 400, itl_p50_ms: 60}\n", 1))
    diff.run(repo, "dev", "HEAD", "markdown")
    out = capsys.readouterr().out
    block = out[out.index("```mermaid"):]
    block = block[:block.index("```", 3)]
    assert "xychart-beta" in block and "assistant/llama-8b" in block
    assert 'x-axis "requests per second" [0.5, 1, 1.5, 2, 2.5, 3]' in block
    lines = [line.strip() for line in block.splitlines() if line.strip().startswith("line [")]
    assert len(lines) == 2 and lines[1] == "line [400, 400, 400, 400, 400, 400]"   # the target, flat
