"""Tenancy and privilege: no trust by name, images pinned and allow-listed everywhere, secrets per team, validated RBAC
groups, flags that cannot be smuggled, literal secrets that never reach output, quotas a team cannot approve itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from fleet.cli import main
from fleet.offline.plan import make_plan
from fleet.offline.policy_pack import policy_config
from fleet.spec.load import load
from policies.framework import object_ref
from tests.conftest import edit, grant


def test_a_privileged_workload_in_the_gpu_system_namespace_is_judged_like_any_other(tmp_path: Path, capsys) -> None:
    evil = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "miner", "namespace": "gpu-system"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "m"}}, "template": {"metadata": {"labels": {"app": "m"}}, "spec": {
                "hostNetwork": True,
                "containers": [{"name": "m", "image": "evil.example.com/miner:latest", "securityContext": {"privileged": True},
                                "volumeMounts": [{"name": "root", "mountPath": "/host"}]}],
                "volumes": [{"name": "root", "hostPath": {"path": "/"}}]}}}}
    path = tmp_path / "evil.yaml"
    path.write_text(yaml.safe_dump(evil))
    assert main(["check", str(path), "--format", "json"]) == 1
    found = {f["rule_id"] for f in json.loads(capsys.readouterr().out)["findings"] if f["level"] == "mandatory"}
    assert {"D1", "D2", "D3", "D15"} <= found


def test_gpu_system_images_come_from_allowed_registries_pinned_by_digest(prod_root: Path, tmp_path: Path) -> None:
    from tests.conftest import copy_project

    project = copy_project(tmp_path / "p")
    (project / "stacks").joinpath("Pulumi.prod.yaml").write_text((prod_root / "stacks" / "Pulumi.prod.yaml").read_text())
    stack = project / "stacks" / "Pulumi.prod.yaml"
    text = stack.read_text()
    start = text.index("    dcgm_image: ")
    end = text.index("\n", start)
    stack.write_text(text[:start] + "    dcgm_image: evil.example.com/dcgm:latest" + text[end:])
    plan = make_plan("prod", project)
    d15 = [f for f in plan.mandatory if f.rule_id == "D15"]
    assert {f.message.split(".image ", 1)[1] for f in d15} == {
        "evil.example.com/dcgm:latest is not from an allowed registry (docker.io/vllm, nvcr.io/nvidia, public.ecr.aws/eks, "
        "763104351884.dkr.ecr.us-east-1.amazonaws.com/vllm, registry.k8s.io/gateway-api-inference-extension, ghcr.io/llm-d, registry.k8s.io/autoscaling)",
        "evil.example.com/dcgm:latest is latest"}
    assert all(f.name == "daemonset-gpu-system-dcgm-exporter" for f in d15)


def test_platform_exemptions_name_exact_rendered_objects_with_reasons(prod_root: Path) -> None:
    spec = load("prod", prod_root)
    plan = make_plan("prod", prod_root)
    rendered = {object_ref(c.inputs) for c in plan.kubernetes_objects()}
    exempted = {ref: reason for conf in policy_config(spec).values() for ref, reason in conf["exempt_resources"].items()}
    assert exempted, "the prod stack renders objects that need exemptions"
    assert set(exempted) <= rendered          # no exemption for an object that does not exist
    assert all(len(reason) > 30 for reason in exempted.values())
    assert not any(ref.startswith("Namespace/team-") for ref in exempted)
    # and they are exactly enough: the bundled plan is clean
    assert plan.mandatory == []


# --- what a team is granted lives in the platform's file ------------------------------------------------------------

def validate(project: Path, capsys, stack: str = "dev") -> tuple[int, str]:
    code = main(["--root", str(project), "validate", "--stack", stack])
    return code, capsys.readouterr().err


def test_a_team_cannot_grant_itself_quota_rbac_or_secrets(project: Path, capsys) -> None:
    team = project / "stacks" / "teams" / "search.yaml"
    edit(team, 'owners: ["@acme/search-ml"]\n', 'owners: ["@acme/search-ml"]\ngpu_quota: {dev: 64}\nrbac_group: acme:search\n')
    code, err = validate(project, capsys)
    assert code == 2
    assert ("stacks/teams/search.yaml:4 gpu_quota: gpu_quota is granted by the platform team in stacks/tenancy.yaml "
            "(teams.search.gpu_quota), not in the team's own file") in err
    assert "stacks/teams/search.yaml:5 rbac_group: rbac_group is granted by the platform team" in err


def test_a_model_cannot_reference_another_teams_secret(project: Path, capsys) -> None:
    edit(project / "stacks" / "teams" / "search.yaml", "api_key: {secret: search-api-key}", "api_key: {secret: assistant-api-key}")
    code, err = validate(project, capsys)
    assert code == 2
    assert ("models[0].api_key: secret 'assistant-api-key' is not granted to team search — the platform team grants secrets "
            "per team in stacks/tenancy.yaml (teams.search.secrets)") in err


def test_a_team_without_a_grant_is_not_deployed_and_says_why(project: Path, capsys) -> None:
    text = (project / "stacks" / "tenancy.yaml").read_text()
    (project / "stacks" / "tenancy.yaml").write_text(text[:text.index("  search:")])
    code, err = validate(project, capsys)
    assert code == 2 and "stacks/teams/search.yaml:2 name: team 'search' has no entry in stacks/tenancy.yaml" in err


def test_rbac_groups_are_validated_and_system_groups_refused(project: Path, capsys) -> None:
    for group in ("system:masters", "SYSTEM:masters", "eks:cluster-admins", "kubeadm:cluster-admins", "bad group", ""):
        grant(project, "search", rbac_group=group)
        code, err = validate(project, capsys)
        assert code == 2 and "stacks/tenancy.yaml:" in err and "teams.search.rbac_group" in err, (group, err)
    grant(project, "search", rbac_group="acme:search-ml")
    assert validate(project, capsys)[0] == 0
    binding = next(c for c in make_plan("dev", project).resources if c.name == "rolebinding-team-search-team-edit")
    assert binding.inputs["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "acme:search-ml"}]


def test_no_error_echoes_a_secret_value(project: Path, capsys) -> None:
    team = project / "stacks" / "teams" / "search.yaml"
    edit(team, "    api_key: {secret: search-api-key}\n    structured_outputs",
         "    api_key: {secret: sk-proj-AbCdEf0123456789}\n    hf_token: [hf_AbCdEfGhIjKlMnOp]\n    structured_outputs")
    edit(team, "  - name: bge-m3\n", "  - name: bge-m3\n    extra_args: ['--hf-token', 'hf_ZyXwVuTsRqPoNm', '--served-model-name=sk-live-0123456789']\n")
    code, err = validate(project, capsys)
    assert code == 2 and "models[0].api_key" in err and "models[0].hf_token" in err
    for value in ("sk-proj-AbCdEf0123456789", "hf_AbCdEfGhIjKlMnOp", "hf_ZyXwVuTsRqPoNm", "sk-live-0123456789"):
        assert value not in err


def test_codeowners_gives_the_tenancy_file_to_the_platform_alone(capsys) -> None:
    from fleet.offline.codeowners import render
    from tests.conftest import ROOT

    lines = render(ROOT).splitlines()
    assert lines[-1] == "/stacks/tenancy.yaml  @acme/platform"
    assert "/stacks/teams/search.yaml  @acme/search-ml @acme/platform" in lines


# --- flags cannot be smuggled -----------------------------------------------------------------------------------------

def with_extra_args(project: Path, args: list[str]) -> None:
    edit(project / "stacks" / "teams" / "search.yaml", "  - name: bge-m3\n", f"  - name: bge-m3\n    extra_args: {json.dumps(args)}\n")


@pytest.mark.parametrize(("args", "problem"), [
    (["-q", "fp8"], "'-q' (= --quantization) has a typed field — use the typed field `quantization`"),
    (["-tp", "2"], "'-tp' (= --tensor-parallel-size) has a typed field"),
    (["--tensor_parallel_size", "2"], "'--tensor_parallel_size' (= --tensor-parallel-size) has a typed field"),
    (["--device-memory-utilization", "0.5"], "'--device-memory-utilization' (= --gpu-memory-utilization) has a typed field"),
    (["--no-enable-prefix-caching"], "'--no-enable-prefix-caching' (= --enable-prefix-caching) has a typed field"),
    (["-sc", '{"method":"ngram"}'], "'-sc' (= --speculative-config) has a typed field — use the typed field `speculative`"),
    (["-dp", "4"], "'-dp' (= --data-parallel-size) has a typed field — use the typed field `replicas`"),
    (["--port", "9000"], "'--port' is set by the stack — remove it from extra_args"),
    (["--config", "/models/x.yaml"], "'--config' is not allowed from a team file: it reads a config file that can set any flag"),
    (["--middleware", "evil.mod"], "'--middleware' is not allowed from a team file: it imports and runs a Python module"),
    (["--allowed-local-media-path", "/"], "'--allowed-local-media-path' is not allowed from a team file"),
    (["--max-logprobs", "-q", "fp8"], "'-q' (= --quantization) has a typed field"),
    (["--hf-overrides", '{"auth": {"api_token": "abc123"}}'], "'--hf-overrides' carries a literal value for api_token"),
    (["--api-key=sk-live-0123456789abcdef"], "a credential in extra_args is refused"),
])
def test_extra_args_cannot_smuggle_reserved_or_dangerous_flags(project: Path, capsys, args: list[str], problem: str) -> None:
    with_extra_args(project, args)
    code, err = validate(project, capsys)
    assert code == 2 and "stacks/teams/search.yaml:" in err and "models[1].extra_args" in err, err
    assert problem in err, err
    assert "sk-live-0123456789abcdef" not in err and "abc123" not in err


@pytest.mark.parametrize(("field", "value"), [
    ("revision", "-x"), ("revision", "main/../x"), ("revision", "$(TOKEN)"),
    ("served_model_name", ["--api-key"]), ("served_model_name", ["$(VLLM_API_KEY)"]),
    ("chat_template", "/models/../etc/passwd"), ("chat_template", "--x"),
])
def test_values_that_become_arguments_are_values(project: Path, capsys, field: str, value: object) -> None:
    edit(project / "stacks" / "teams" / "search.yaml", "  - name: bge-m3\n", f"  - name: bge-m3\n    {field}: {json.dumps(value)}\n")
    code, err = validate(project, capsys)
    assert code == 2 and f"models[1].{field}" in err, err


def test_kubernetes_variable_expansion_is_neutralised(project: Path) -> None:
    with_extra_args(project, ["--response-role=$(VLLM_API_KEY)"])
    spec = load("dev", project)
    from fleet.render.workload import vllm_args

    args = vllm_args(spec.config, next(m for m in spec.models if m.name == "bge-m3"))
    assert "--response-role=$$(VLLM_API_KEY)" in args and "--response-role=$(VLLM_API_KEY)" not in args
