"""What a team file and a CLI argument must never be able to do (issue 30): widen the team's own cloud access, inject
lines into generated files, reach another program as an option, smuggle secrets past the secret rules, weaken the
policy pack unseen, or set a reserved engine setting by another spelling. Each case is a hostile input."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest

from fleet.offline import diff
from tests.conftest import ROOT

# --- Arguments passed to other programs -------------------------------------------------------------------------

@pytest.fixture
def git_repo(tmp_path: Path) -> Path:
    dest = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", "--", str(dest)], check=True)
    (dest / "README").write_text("x\n")
    subprocess.run(["git", "-C", str(dest), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(dest), "-c", "user.email=ci@example.com", "-c", "user.name=ci", "commit", "-qm", "base"], check=True)
    return dest


@pytest.mark.parametrize("ref", ["--output={victim}", "-o{victim}", "--remote=ext::sh -c touch% {victim}", "HEAD\n--output={victim}"])
def test_a_base_ref_never_reaches_git_archive_as_an_option(git_repo: Path, tmp_path: Path, ref: str) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    with pytest.raises(diff.BadRef, match="not a git ref"):
        diff.export_tree(git_repo, ref.format(victim=victim), tmp_path / "out")
    assert victim.read_text() == "precious\n"


def test_plan_base_refuses_an_option_shaped_ref_before_planning(git_repo: Path, tmp_path: Path, capsys) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    assert diff.run(git_repo, "dev", f"--output={victim}", "markdown") == 2
    err = capsys.readouterr().err
    assert f"--base --output={victim}: not a git ref" in err and "Traceback" not in err
    assert victim.read_text() == "precious\n"


def test_a_base_that_names_no_commit_is_resolved_by_git_and_refused(git_repo: Path, tmp_path: Path) -> None:
    with pytest.raises(diff.BadRef, match="cannot read it from git"):
        diff.resolve_ref(git_repo, "no-such-branch")
    tree = subprocess.run(["git", "-C", str(git_repo), "rev-parse", "HEAD^{tree}"], capture_output=True, text=True).stdout.strip()
    with pytest.raises(diff.BadRef):       # a tree id is not a commit: ^{commit} refuses it
        diff.resolve_ref(git_repo, tree)
    assert len(diff.resolve_ref(git_repo, "HEAD")) == 40


SUBPROCESS_CALLS = {"run", "Popen", "call", "check_call", "check_output"}
END_OF_OPTIONS = {"--", "--end-of-options", "-c"}   # after `python -c CODE` come the code's own arguments


def _subprocess_calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value.id if isinstance(node.func.value, ast.Name) else None
            if (owner == "subprocess" and node.func.attr in SUBPROCESS_CALLS) or (owner == "os" and node.func.attr in
                                                                                  {"system", "popen", "execv", "execvp", "spawnv"}):
                yield node


def _operand_problems(argv: ast.List) -> list[str]:
    """Non-literal words of an argv that could be read as an option: each must follow `--` (or `--end-of-options`),
    be the value of the option before it, or be joined to its option (`--stack={stack}`)."""
    problems, ended = [], False
    for i, word in enumerate(argv.elts):
        if isinstance(word, ast.Constant):
            ended = ended or word.value in END_OF_OPTIONS
            continue
        if i == 0 or ended:
            continue
        if isinstance(word, ast.JoinedStr) and isinstance(word.values[0], ast.Constant) and str(word.values[0].value).startswith("--"):
            continue
        before = argv.elts[i - 1]
        if isinstance(before, ast.Constant) and str(before.value).startswith("-") and before.value not in ("--",):
            continue
        problems.append(f"word {i} ({ast.unparse(word)})")
    return problems


def test_every_subprocess_call_takes_an_argv_list_without_a_shell_and_ends_options() -> None:
    found, problems = 0, []
    for part in ("fleet", "scripts", "policies", "components"):
        for path in sorted((ROOT / part).rglob("*.py")):
            for call in _subprocess_calls(ast.parse(path.read_text(encoding="utf-8"))):
                found += 1
                where = f"{path.relative_to(ROOT)}:{call.lineno}"
                if isinstance(call.func, ast.Attribute) and call.func.attr in {"system", "popen"}:
                    problems.append(f"{where}: os.{call.func.attr} runs a shell")
                    continue
                if any(k.arg == "shell" and not (isinstance(k.value, ast.Constant) and k.value.value is False) for k in call.keywords):
                    problems.append(f"{where}: shell=")
                argv = call.args[0] if call.args else None
                if not isinstance(argv, ast.List):
                    problems.append(f"{where}: argv is not a list literal")
                    continue
                problems += [f"{where}: {p} may be read as an option — put it after `--`" for p in _operand_problems(argv)]
    assert found >= 10 and not problems, problems


def test_the_shell_scripts_make_their_directory_argument_absolute() -> None:
    text = (ROOT / "scripts" / "h200_pack.sh").read_text()
    assert 'dir=$(realpath -m -- "$dir")' in text
