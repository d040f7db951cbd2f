"""What a team file and a CLI argument must never be able to do (issue 30): widen the team's own cloud access, inject
lines into generated files, reach another program as an option, smuggle secrets past the secret rules, weaken the
policy pack unseen, or set a reserved engine setting by another spelling. Each case is a hostile input."""

from __future__ import annotations

import ast
import re
import subprocess
import tempfile
from pathlib import Path

import pytest

from fleet.offline import diff
from tests.conftest import ASSISTANT_LORA, ROOT, copy_project, edit

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


def _is_option(word: ast.expr) -> bool:
    """A literal option word (`-C`, `--model`, f"--{key}"), whose next word is its value."""
    if isinstance(word, ast.Constant):
        return str(word.value).startswith("-") and word.value != "--"
    return isinstance(word, ast.JoinedStr) and isinstance(word.values[0], ast.Constant) and str(word.values[0].value).startswith("-")


def _argv_lists(tree: ast.Module, call: ast.Call) -> list[ast.List] | None:
    """The list literals an argv is built from: the call's own, or those of the module function whose result the
    variable holds (`cmd = server_cmd(...)`: every list that function assigns, extends or returns)."""
    argv = call.args[0] if call.args else None
    if isinstance(argv, ast.List):
        return [argv]
    if not isinstance(argv, ast.Name):
        return None
    # `cmd = [..., *args, ...]` in the calling function: that list, and for each parameter it splices, the lists the
    # module's calls of that function pass (`_pip(py, ["download", ..., "--", f"vllm=={version}"], ...)`)
    home = next((f for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) and any(n is call for n in ast.walk(f))), None)
    own = [n.value for n in ast.walk(home) if isinstance(n, ast.Assign) and isinstance(n.value, ast.List)
           and any(isinstance(t, ast.Name) and t.id == argv.id for t in n.targets)] if home else []
    if own:
        params = [a.arg for a in home.args.args] if home else []
        spliced = {e.value.id for lst in own for e in lst.elts if isinstance(e, ast.Starred) and isinstance(e.value, ast.Name)}
        passed = [c.args[params.index(name)] for c in ast.walk(tree) if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)
                  and home is not None and c.func.id == home.name for name in spliced & set(params) if params.index(name) < len(c.args)]
        if not all(isinstance(a, ast.List) for a in passed):
            return None
        return [*own, *(a for a in passed if isinstance(a, ast.List))]
    builders = {n.value.func.id for n in ast.walk(tree) if isinstance(n, ast.Assign) and isinstance(n.value, ast.Call)
                and isinstance(n.value.func, ast.Name) and any(isinstance(t, ast.Name) and t.id == argv.id for t in n.targets)}
    functions = [f for f in tree.body if isinstance(f, ast.FunctionDef) and f.name in builders]
    if len(functions) != 1:
        return None
    lists = [n.value for n in ast.walk(functions[0]) if isinstance(n, (ast.Assign, ast.AugAssign, ast.Return))
             and isinstance(n.value, ast.List)]
    return lists or None


def _operand_problems(argv: ast.List) -> list[str]:
    """Non-literal words of an argv that could be read as an option: each must follow `--` (or `--end-of-options`),
    be the value of the option before it, or be joined to its option (`--stack={stack}`)."""
    problems, ended = [], False
    for i, word in enumerate(argv.elts):
        if isinstance(word, ast.Starred):
            continue   # a parameter's words, checked where the function is called
        if isinstance(word, ast.Constant):
            ended = ended or word.value in END_OF_OPTIONS
            continue
        if i == 0 or ended:
            continue
        if isinstance(word, ast.JoinedStr) and isinstance(word.values[0], ast.Constant) and str(word.values[0].value).startswith("--"):
            continue
        if _is_option(argv.elts[i - 1]):
            continue
        problems.append(f"word {i} ({ast.unparse(word)})")
    return problems


def test_every_subprocess_call_takes_an_argv_list_without_a_shell_and_ends_options() -> None:
    found, problems = 0, []
    for part in ("fleet", "scripts", "policies", "components"):
        for path in sorted((ROOT / part).rglob("*.py")):
            module = ast.parse(path.read_text(encoding="utf-8"))
            for call in _subprocess_calls(module):
                found += 1
                where = f"{path.relative_to(ROOT)}:{call.lineno}"
                if isinstance(call.func, ast.Attribute) and call.func.attr in {"system", "popen"}:
                    problems.append(f"{where}: os.{call.func.attr} runs a shell")
                    continue
                if any(k.arg == "shell" and not (isinstance(k.value, ast.Constant) and k.value.value is False) for k in call.keywords):
                    problems.append(f"{where}: shell=")
                lists = _argv_lists(module, call)
                if lists is None:
                    problems.append(f"{where}: argv is not a list (literal, or built from literals by one function here)")
                    continue
                problems += [f"{where}: {p} may be read as an option — put it after `--`" for argv in lists
                             for p in _operand_problems(argv)]
    assert found >= 10 and not problems, problems


def test_the_shell_scripts_make_their_directory_argument_absolute() -> None:
    text = (ROOT / "scripts" / "h200_pack.sh").read_text()
    assert 'dir=$(realpath -m -- "$dir")' in text


# --- Generated files: CODEOWNERS ------------------------------------------------------------------------------

INJECTED_OWNERS = {
    "newline and tab": "@acme/search-ml\n/stacks/Pulumi.prod.yaml\t@acme/search-ml",
    "carriage return": "@acme/search-ml\r/.github/ @acme/search-ml",
    "comment": "@acme/search-ml#",
    "path as owner": "@acme/../platform",
    "not an owner": "search-ml",
}


@pytest.mark.parametrize("case", sorted(INJECTED_OWNERS))
def test_codeowners_refuses_an_owner_outside_the_grammar_as_validate_does(project: Path, capsys, case: str) -> None:
    import json

    from fleet.cli import main

    team = project / "stacks" / "teams" / "search.yaml"
    edit(team, 'owners: ["@acme/search-ml"]', f"owners: [{json.dumps(INJECTED_OWNERS[case])}]")
    target = project / ".github" / "CODEOWNERS"
    code = main(["--root", str(project), "codeowners"])
    err = capsys.readouterr().err
    assert code == 2 and "stacks/teams/search.yaml:3 owners[0]:" in err and "Traceback" not in err
    assert not target.exists()
    assert main(["--root", str(project), "validate", "--stack", "dev"]) == 2
    assert "stacks/teams/search.yaml:3 owners[0]:" in capsys.readouterr().err


def test_codeowners_refuses_a_platform_owner_outside_the_grammar(project: Path, capsys) -> None:
    from fleet.cli import main

    edit(project / "stacks" / "owners.yaml", 'platform: ["@acme/platform"]', 'platform: ["@acme/platform\\n/stacks/ @mallory"]')
    assert main(["--root", str(project), "codeowners"]) == 2
    err = capsys.readouterr().err
    assert "stacks/owners.yaml:3 platform.0:" in err and "@user" in err


def test_codeowners_refuses_a_team_file_whose_name_is_no_team_name(project: Path, capsys) -> None:
    from fleet.cli import main

    teams = project / "stacks" / "teams"
    (teams / "search\n- @mallory.yaml").write_text((teams / "search.yaml").read_text())
    assert main(["--root", str(project), "codeowners"]) == 2
    assert "must match the file name" in capsys.readouterr().err


def test_a_codeowners_line_is_checked_against_the_grammar_as_it_is_built() -> None:
    from fleet.offline.codeowners import rule

    assert rule("/stacks/teams/search.yaml", ["@acme/search-ml", "ml@example.com"]) == \
        "/stacks/teams/search.yaml  @acme/search-ml ml@example.com"
    for path, owners in [("/stacks/x.yaml\n*", ["@a"]), ("/stacks/x.yaml", ["@a\t@b"]), ("/a b", ["@a"]), ("/x", [])]:
        with pytest.raises(ValueError):
            rule(path, owners)


# --- Self-granted cloud access ------------------------------------------------------------------------------------

def _s3_adapter(project: Path, path: str) -> None:
    edit(project / "stacks" / "teams" / "assistant.yaml", ASSISTANT_LORA,
         f"    lora:\n      modules: [{{name: support-tone, path: '{path}'}}]\n")


def _config_error(project: Path, stack: str = "dev") -> str:
    from fleet.errors import ConfigError
    from fleet.spec.load import load

    with pytest.raises(ConfigError) as exc:
        load(stack, project)
    return str(exc.value)


@pytest.mark.parametrize("path", ["s3://any-bucket/weights/", "s3://acme-adapters/assistant-other/x",
                                  "s3://acme-adapters/research/x"])
def test_an_adapter_outside_the_granted_prefixes_is_refused_naming_line_and_grant(project: Path, path: str) -> None:
    _s3_adapter(project, path)
    text = _config_error(project)
    assert re.search(r"stacks/teams/assistant\.yaml:\d+ models\[\d\]\.lora\.modules\[0\]\.path: s3://\S+ is not granted to team "
                     r"assistant", text), text
    assert "teams.assistant.data_sources; granted: s3://acme-adapters/assistant/" in text


@pytest.mark.parametrize("path", ["s3://acme-adapters", "s3://acme-adapters/", "s3://acme-adapters/assistant/*",
                                  "s3://acme-adapters/assistant/../research/x", "s3://acme-adapters/assistant//x",
                                  "s3://acme-adapters/assistant/x?y"])
def test_an_adapter_uri_that_would_widen_the_iam_policy_is_refused(project: Path, path: str) -> None:
    _s3_adapter(project, path)
    assert "is not an S3 prefix: write s3://<bucket>/<prefix>/" in _config_error(project)


def test_a_team_file_cannot_grant_itself_data_sources(project: Path) -> None:
    team = project / "stacks" / "teams" / "assistant.yaml"
    team.write_text(team.read_text() + "data_sources: [s3://any-bucket/x/]\n")
    assert re.search(r"stacks/teams/assistant\.yaml:\d+ data_sources: data_sources is granted by the platform team in "
                     r"stacks/tenancy\.yaml \(teams\.assistant\.data_sources\)", _config_error(project))


def test_a_grant_names_a_prefix_not_a_bucket(project: Path) -> None:
    edit(project / "stacks" / "tenancy.yaml", "data_sources: [s3://acme-adapters/assistant/]", "data_sources: [s3://acme-adapters]")
    assert re.search(r"stacks/tenancy\.yaml:\d+ teams\.assistant\.data_sources\[0\]: .*is not an S3 prefix", _config_error(project))


def test_the_adapter_role_reads_only_the_adapters_prefix() -> None:
    import json

    from fleet.offline.plan import capture
    from fleet.spec.load import load

    project = copy_project(Path(tempfile.mkdtemp(prefix="lp-")))
    _s3_adapter(project, "s3://acme-adapters/assistant/tone")
    caps = {c.name: c for c in capture(load("dev", project))}
    policy = json.loads(caps["assistant-llama-8b-adapters-read"].inputs["policy"])
    by_action = {s["Action"][0]: s for s in policy["Statement"]}
    assert by_action["s3:GetObject"]["Resource"] == ["arn:aws:s3:::acme-adapters/assistant/tone/*"]
    assert by_action["s3:ListBucket"]["Resource"] == ["arn:aws:s3:::acme-adapters"]
    assert by_action["s3:ListBucket"]["Condition"] == {"StringLike": {"s3:prefix": ["assistant/tone/", "assistant/tone/*"]}}


# --- Enforcement downgrades -------------------------------------------------------------------------------------

def _policy(project: Path, body: str, stack: str = "prod") -> None:
    path = project / "stacks" / f"Pulumi.{stack}.yaml"
    path.write_text(path.read_text() + "  vllm-fleet:policy:\n" + body)


REASON = "vendor DaemonSet needs it until the 2027 upgrade"


@pytest.mark.parametrize("body, missing", [
    ("    enforcement: advisory\n", "without a reason and an owner"),
    ("    enforcement: disabled\n", "without a reason and an owner"),
    (f"    enforcement: {{level: advisory, reason: {REASON}}}\n", "without an owner"),
])
def test_a_prod_stack_cannot_lower_the_whole_pack_without_reason_and_owner(project: Path, body: str, missing: str) -> None:
    _policy(project, body)
    text = _config_error(project, "prod")
    assert re.search(r"stacks/Pulumi\.prod\.yaml:\d+ config\.vllm-fleet:policy\.enforcement: the whole policy pack is set to "
                     rf"(advisory|disabled) in prod stack {missing}", text), text


@pytest.mark.parametrize("body, where, missing", [
    ("    overrides: {D2: advisory}\n", "overrides.D2", "without a reason and an owner"),
    (f"    overrides: {{D2: {{level: disabled, reason: {REASON}}}}}\n", "overrides.D2", "without an owner"),
    (f"    exemptions: [{{rule: D2, resource: Deployment/team-search/m, reason: {REASON}}}]\n", "exemptions[0].owner", "has no owner"),
])
def test_a_prod_stack_cannot_lower_a_rule_or_exempt_an_object_without_an_owner(project: Path, body: str, where: str,
                                                                               missing: str) -> None:
    _policy(project, body)
    text = _config_error(project, "prod")
    assert f"config.vllm-fleet:policy.{where}: " in text and missing in text, text


def test_a_recorded_downgrade_loads_and_the_plan_lists_every_weakened_guardrail(project: Path) -> None:
    from fleet.offline.plan import weakened_guardrails
    from fleet.spec.load import load

    _policy(project, f"    enforcement: {{level: advisory, reason: {REASON}, owner: '@acme/platform'}}\n"
                     f"    overrides: {{D11: {{level: disabled, reason: {REASON}, owner: sre@example.com}}}}\n")
    weakened = weakened_guardrails(load("prod", project).config)
    assert [(w.scope, w.rule, w.level, w.owner) for w in weakened] == [("pack", "", "advisory", "@acme/platform"),
                                                                      ("rule", "D11", "disabled", "sre@example.com")]


def _document(weakened: list) -> object:
    from fleet.offline.plan_document import PlanDocument

    summary = dict.fromkeys(["resources", "kubernetes_objects", "teams", "models", "gpus_min", "gpus_max", "gpu_quota",
                             "mandatory_findings", "advisory_findings", "invalid_manifests", "exit_code"], 0)
    return PlanDocument.model_validate({
        "stack": "prod", "region": "us-east-1", "cluster": "c", "tier": "prod", "enforcement": "mandatory", "vllm_version": "0.33.0",
        "kubernetes_version": "1.33", "resources": [], "findings": [], "weakened_guardrails": weakened,
        "summary": {**summary, "usd_per_hour_min": 0.0, "usd_per_hour_max": 0.0}})


def test_the_pr_diff_shows_a_pack_downgrade_with_its_reason_and_owner_escaped() -> None:
    hostile = "ok | <img src=x onerror=alert(1)>\n| injected | row | `code` @acme/everyone"
    head = _document([{"scope": "pack", "level": "advisory", "reason": hostile, "owner": "@acme/platform"}])
    d = diff.compare("prod", "main", _document([]), head, "base code")
    assert [w.scope for w in d.guardrails_weakened] == ["pack"] and d.to_json()["guardrails"]["weakened"][0]["level"] == "advisory"
    md = diff.markdown(d)
    assert "**Guardrails this change weakens:**" in md
    (row,) = [line for line in md.splitlines() if line.startswith("| pack |")]
    assert row.count(" | ") == 5                  # six cells: the reason split none and added no row
    assert not re.search(r"(?<!\\)<img", md) and "\\<img" in row and "\\|" in row and "@acme/everyone" not in md
    restored = diff.compare("prod", "main", head, _document([]), "base code")
    assert "**Guardrails this change restores:**" in diff.markdown(restored)
    assert diff.compare("prod", "main", head, head, "base code").guardrails_weakened == []


# --- Generated files: markdown for PR comments ------------------------------------------------------------------

def test_markdown_text_and_code_spans_hold_whatever_a_user_wrote() -> None:
    from fleet.offline.markdown import code, text

    assert text("a|b\nc <details> @org/t") == "a\\|b c \\<details\\> @\u200borg/t"
    assert code("plain") == "`plain`"
    assert code("has ` one") == "``has ` one``" and code("``x``") == "``` ``x`` ```"
    assert code("a|b") == "`a\\|b`" and "\n" not in code("a\nb")


def test_the_plan_comment_escapes_finding_messages_and_resources() -> None:
    from fleet.offline.plan_document import FindingEntry
    from fleet.offline.report import markdown

    doc = _document([])
    doc = doc.model_copy(update={"findings": [FindingEntry(rule_id="D2", level="mandatory", urn="u", resource="Pod/ns/`x`|y",
                                                           message="bad\n| forged | row |")]})
    (row,) = [line for line in markdown(doc).splitlines() if line.startswith("| D2 |")]
    assert row == "| D2 | mandatory | ``Pod/ns/`x`\\|y`` | bad \\| forged \\| row \\| |"


# --- Secrets by another road ------------------------------------------------------------------------------------

def _pod_with(env_from: list, env: list | None = None, data: dict | None = None) -> list:
    from tests.policy_fixtures import base_pod, cap, container, wrap

    pod = base_pod()
    c = container(pod)
    c["envFrom"] = env_from
    # the variables the ConfigMap now supplies leave the pod's own env (which would override them, as in the kubelet)
    supplied = {str(src.get("prefix", "")) + k for src in env_from if "configMapRef" in src for k in data or {}}
    c["env"] = [*(e for e in c["env"] if e["name"] not in supplied), *(env or [])]
    config_map = cap("kubernetes:core/v1:ConfigMap", {"apiVersion": "v1", "kind": "ConfigMap",
                                                      "metadata": {"name": "cfg", "namespace": "team-search"}, "data": data or {}})
    return [wrap("Deployment", pod), config_map]


def _env_findings(resources: list) -> set[tuple[str, str]]:
    from fleet.offline.policy_pack import analyze
    from policies.framework import RULES
    from tests.policy_fixtures import fixture_config

    return {(f.rule_id, f.message) for f in analyze(resources, {r.policy_name: "mandatory" for r in RULES}, fixture_config())}


CM = {"configMapRef": {"name": "cfg"}}
P = "Deployment/team-search/m spec.template.spec.containers[0]"
ENV_FROM_CASES = {
    "api key in a ConfigMap": ([CM], [], {"VLLM_API_KEY": "sk-" + "a" * 24},
                               {("F3", f"{P}: VLLM_API_KEY is not from a secretKeyRef (envFrom[0] (ConfigMap team-search/cfg))"),
                                ("D16", f"{P}.envFrom[0] (ConfigMap team-search/cfg) VLLM_API_KEY holds a literal value")}),
    "api key by prefix": ([{"prefix": "VLLM_", **CM}], [], {"API_KEY": "letmein-please"},
                          {("F3", f"{P}: VLLM_API_KEY is not from a secretKeyRef (envFrom[0] (ConfigMap team-search/cfg))"),
                           ("D16", f"{P}.envFrom[0] (ConfigMap team-search/cfg) VLLM_API_KEY holds a literal value")}),
    "dev mode": ([CM], [], {"VLLM_SERVER_DEV_MODE": "1"},
                 {("F4", f"{P}.envFrom[0] (ConfigMap team-search/cfg) sets VLLM_SERVER_DEV_MODE")}),
    "visible devices": ([CM], [], {"NVIDIA_VISIBLE_DEVICES": "all"},
                        {("E8", f"{P}.envFrom[0] (ConfigMap team-search/cfg) sets NVIDIA_VISIBLE_DEVICES")}),
    "hf token": ([CM], [], {"HF_TOKEN": "hf_" + "b" * 30},
                 {("F6", f"{P}.envFrom[0] (ConfigMap team-search/cfg) HF_TOKEN is not from a Secret"),
                  ("D16", f"{P}.envFrom[0] (ConfigMap team-search/cfg) HF_TOKEN holds a literal value")}),
    "credential under an innocent name": ([CM], [], {"EXTRA": "hf_" + "c" * 30},
                                          {("D16", f"{P}.envFrom[0] (ConfigMap team-search/cfg) EXTRA holds a credential-shaped "
                                                   "literal value")}),
    "runtime lora by key ref": ([], [{"name": "VLLM_ALLOW_RUNTIME_LORA_UPDATING",
                                      "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "lora"}}},
                                     {"name": "VLLM_API_KEY", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "key"}}}],
                                {"lora": "True", "key": "letmein-please"},
                                {("F10", f"{P}: runtime LoRA loading is on without an API key from a Secret: anyone who reaches "
                                         "the server can make it load adapters"),
                                 ("F3", "spec.template.spec.containers[0]: VLLM_API_KEY is not from a secretKeyRef"),
                                 ("D16", f"{P}.env VLLM_API_KEY holds a literal value")}),
    "env overrides envFrom": ([CM], [{"name": "VLLM_API_KEY", "valueFrom": {"secretKeyRef": {"name": "k", "key": "v"}}}],
                              {"VLLM_API_KEY": "sk-" + "a" * 24}, set()),
    "a Secret in envFrom": ([{"secretRef": {"name": "keys"}}], [], {}, set()),
}


@pytest.mark.parametrize("case", sorted(ENV_FROM_CASES))
def test_env_rules_resolve_envfrom_and_valuefrom_as_the_kubelet_does(case: str) -> None:
    env_from, env, data, expected = ENV_FROM_CASES[case]
    baseline = _env_findings(_pod_with([], [], {}))
    assert _env_findings(_pod_with(env_from, env, data)) - baseline == expected


def test_check_resolves_configmaps_among_the_manifests_it_reads(tmp_path: Path, capsys) -> None:
    import yaml

    from fleet.cli import main

    resources = _pod_with([CM], [], {"VLLM_SERVER_DEV_MODE": "1"})
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump_all([c.inputs for c in resources]))
    assert main(["check", str(path)]) == 1
    assert "VLLM_SERVER_DEV_MODE" in capsys.readouterr().out


# --- Reserved engine settings by other spellings ----------------------------------------------------------------

def _extra_args(project: Path, args: list[str]) -> None:
    import json

    edit(project / "stacks" / "teams" / "search.yaml", "  - name: bge-m3\n", f"  - name: bge-m3\n    extra_args: {json.dumps(args)}\n")


RESERVED_SPELLINGS = [
    # prefix abbreviations (the 0.33.0 parser keeps argparse's allow_abbrev), the `=` form, attached short values
    (["--tensor-parallel", "2"], "'--tensor-parallel' (= --tensor-parallel-size) has a typed field"),
    (["--gpu-memory=0.99"], "'--gpu-memory' (= --gpu-memory-utilization) has a typed field"),
    (["-tp=2"], "'-tp' (= --tensor-parallel-size) has a typed field"),
    (["--hos", "0.0.0.0"], "'--hos' (= --host) is set by the stack"),
    # world size
    (["-n", "2"], "'-n' (= --nnodes) changes the server's world size"),
    (["-n2"], "'-n2' (= --nnodes) changes the server's world size"),
    (["--node_rank=1"], "'--node_rank' (= --node-rank) changes the server's world size"),
    (["-pcp", "2"], "'-pcp' (= --prefill-context-parallel-size) changes the server's world size"),
    (["-dpn", "1"], "'-dpn' (= --data-parallel-rank) changes the server's world size"),
    # listening socket
    (["--uds", "/tmp/vllm.sock"], "'--uds' changes the server's listening socket"),
    (["--grpc-port", "9000"], "'--grpc-port' changes the server's listening socket"),
    (["--data-parallel-rpc-port", "9000"], "'--data-parallel-rpc-port' changes the server's listening socket"),
    # memory budget: -O shorthands become --optimization-level
    (["-O0"], "'-O0' (= --optimization-level) changes the server's memory budget"),
    (["-O=0"], "'-O' (= --optimization-level) changes the server's memory budget"),
    (["--optimization_level", "0"], "'--optimization_level' (= --optimization-level) changes the server's memory budget"),
    (["--kv-cache-memory-bytes", "80000000000"], "'--kv-cache-memory-bytes' changes the server's memory budget"),
    (["--num-gpu-blocks-override=100000"], "'--num-gpu-blocks-override' changes the server's memory budget"),
    (["--cpu-offload-g", "8"], "'--cpu-offload-g' (= --cpu-offload-gb) changes the server's memory budget"),
    # code it imports
    (["--scheduler-cls", "evil.Scheduler"], "'--scheduler-cls' changes the server's code it imports"),
    (["--log-config-file", "/models/log.json"], "'--log-config-file' changes the server's code it imports"),
    (["--middle", "evil.mod"], "'--middle' is not allowed from a team file: it imports and runs a Python module"),
    # JSON --*-config values and their dotted spellings
    (["-cc.backend=evil.module.compile"], "'-cc.backend' (= --compilation-config) sets `backend` (code it imports)"),
    (["--compilation_config.inductor_passes.x", "evil.p"], "sets `inductor_passes` (code it imports)"),
    (["--compilation-config", '{"cudagraph_capture_sizes": [1, 512]}'], "sets `cudagraph_capture_sizes` (memory budget)"),
    (["--kv-events-config", '{"enable_kv_cache_events": true, "endpoint": "tcp://*:5557"}'], "sets `endpoint` (listening socket)"),
    (["--ec-transfer-config={\"ec_port\": 14580}"], "sets `ec_port` (listening socket)"),
    (["--additional-config", '{"nested": {"tensor_parallel_size": 8}}'], "sets `nested.tensor_parallel_size` (world size)"),
]


@pytest.mark.parametrize(("args", "problem"), RESERVED_SPELLINGS)
def test_reserved_settings_are_refused_in_every_spelling_the_parser_accepts(project: Path, capsys, args: list[str],
                                                                             problem: str) -> None:
    from fleet.cli import main

    _extra_args(project, args)
    code = main(["--root", str(project), "validate", "--stack", "dev"])
    err = capsys.readouterr().err
    assert code == 2 and "stacks/teams/search.yaml:" in err and "models[1].extra_args[0]:" in err, err
    assert problem in err, err


def test_harmless_extra_args_still_pass(project: Path, capsys) -> None:
    from fleet.cli import main

    _extra_args(project, ["--max-logprobs", "5", "--attention-config", '{"backend": "FLASHINFER"}', "--enable-log-requests"])
    assert main(["--root", str(project), "validate", "--stack", "dev"]) == 0, capsys.readouterr().err


def test_spellings_resolve_as_argparse_does_with_the_tables_option_strings() -> None:
    """The reader agrees with argparse itself on a parser built from each bundled table's option strings."""
    from fleet.vllm.flags import available_versions, table
    from fleet.vllm.reserved import read

    for version in available_versions():
        _agrees_with_argparse(table(version), read)


def _agrees_with_argparse(flags, read) -> None:
    import argparse

    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=flags.allow_abbrev, argument_default=argparse.SUPPRESS,
                                     exit_on_error=False)
    for opt in {o.dest: o for o in flags.options.values()}.values():
        strings = [opt.flag, *opt.aliases, *opt.negations]
        if opt.takes_value:
            parser.add_argument(*strings, dest=opt.dest, nargs="?")
        else:
            parser.add_argument(*strings, dest=opt.dest, action="store_const", const=True)
    for words in (["--tensor-parallel", "2"], ["-tp=2"], ["-n2"], ["--hos", "x"], ["--cpu-offload-g", "8"], ["-qfp8"],
                  ["--gpu-memory=0.9"], ["--middle", "x"], ["-dpn", "1"]):
        namespace, _ = parser.parse_known_args(words)
        spelling = read(words[0], flags)
        assert spelling is not None and list(vars(namespace)) == [spelling.option.dest], words


# --- The trust model --------------------------------------------------------------------------------------------

def test_the_guardrails_doc_states_the_trust_model_from_the_code() -> None:
    from fleet.spec.teams import GRANTED_KEYS
    from fleet.vllm.reserved import RESERVED_SETTINGS

    text = (ROOT / "docs" / "guardrails.md").read_text()
    model = text[text.index("## Trust model"):text.index("## Rules")]
    for part in ("**A team file may, alone:**", "**Needs a platform grant in `stacks/tenancy.yaml`", "**Nobody may,"):
        assert part in model
    assert all(f"`{key}`" in model for key in GRANTED_KEYS)
    assert all(f"  - {cls}: " in model and all(f"`{d}`" in model for d in dests) for cls, dests in RESERVED_SETTINGS.items())
