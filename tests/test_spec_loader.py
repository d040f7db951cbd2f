"""The typed configs and the loader: every error names file, line, field path and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.errors import ConfigError
from fleet.spec.load import load
from tests.conftest import ROOT, edit, grant, write

TEAM_HEAD = """\
name: search
owners: ["@acme/search"]
# GPU quota, RBAC group and secrets: stacks/tenancy.yaml
models:
"""


def errors(project: Path, stack: str = "prod") -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(stack, project)
    return [str(i) for i in sorted(info.value.issues)]


def only_team(project: Path, body: str, name: str = "search", gpu_quota: dict[str, int] | None = None) -> None:
    """The project with this one team file, granted `gpu_quota` (default prod 32, dev 4) and every secret."""
    for f in (project / "stacks" / "teams").glob("*.yaml"):
        f.unlink()
    write(project / "stacks" / "teams" / f"{name}.yaml", body)
    grant(project, name, gpu_quota=gpu_quota or {"prod": 32, "dev": 4}, only=True)


def test_bundled_stacks_load_with_derived_values() -> None:
    dev = load("dev", ROOT)
    assert [t.name for t in dev.teams] == ["assistant", "search"]
    assert len(dev.models) == 3
    assert any(m.spec.runner == "pooling" for m in dev.models)
    prod = load("prod", ROOT)
    assert len(prod.teams) >= 3 and len(prod.models) >= 6
    by_name = {m.name: m for m in prod.models}
    assert by_name["llama-405b"].gpus_per_replica == 16
    assert by_name["llama-405b"].nodes_per_replica == 2 and by_name["llama-405b"].gpus_per_pod == 8
    assert by_name["llama-70b"].spec.tensor_parallel_size == 4 and not by_name["llama-70b"].multi_node
    # per-stack override: the 70B is disabled by default and enabled in prod with 2 replicas
    assert by_name["llama-70b"].min_replicas == 2
    assert "llama-70b" not in {m.name for m in dev.models}
    # override of pool and autoscaling for search/qwen-3b in prod
    assert by_name["qwen-3b"].pool.name == "l4" and (by_name["qwen-3b"].min_replicas, by_name["qwen-3b"].max_replicas) == (2, 6)


def test_tensor_parallel_must_divide_the_pool_gpus(project: Path) -> None:
    only_team(project, TEAM_HEAD + """\
  - name: m
    model: meta-llama/Llama-3.1-8B-Instruct
    pool: h100
    tensor_parallel_size: 3
""")
    assert errors(project) == [
        "stacks/teams/search.yaml:8 models[0].tensor_parallel_size: 3 — tensor × pipeline parallel size (3) "
        "must divide the pool's 8 GPUs (p5.48xlarge)"]


def test_unknown_key_gets_did_you_mean_and_literal_secret_gets_the_command(project: Path) -> None:
    only_team(project, TEAM_HEAD + """\
  - name: m
    model: meta-llama/Llama-3.1-8B-Instruct
    pool: l40s
    replica: 2
    api_key: sk-live-1234
""")
    assert errors(project) == [
        "stacks/teams/search.yaml:8 models[0].replica: unknown key 'replica' — did you mean 'replicas'?",
        "stacks/teams/search.yaml:9 models[0].api_key: a literal secret is refused — store it with "
        "`pulumi config set --stack prod --secret --path 'vllm-fleet:secrets.search-api-key' <value>` "
        "and reference it as `{secret: search-api-key}`",
    ]


def test_all_errors_of_a_run_are_reported_together(project: Path) -> None:
    only_team(project, TEAM_HEAD + """\
  - name: a
    model: x/a
    pool: h10
  - name: b
    model: x/b
    pool: l40s
    dtype: int3
  - name: c
    model: x/c
    pool: l40s
    api_key: {secret: missing-key}
""")
    grant(project, "search", secrets=["missing-key"])
    assert errors(project) == [
        "stacks/teams/search.yaml:7 models[0].pool: 'h10' is not a GPU pool of stack prod — did you mean 'h100'?",
        "stacks/teams/search.yaml:11 models[1].dtype: 'int3' — Input should be 'auto', 'half', 'float16', "
        "'bfloat16', 'float' or 'float32'",
        "stacks/teams/search.yaml:15 models[2].api_key: secret 'missing-key' is not set in stack prod — run "
        "`pulumi config set --stack prod --secret --path 'vllm-fleet:secrets.missing-key' <value>`",
    ]


def test_override_errors_point_at_the_override_line(project: Path) -> None:
    only_team(project, TEAM_HEAD + """\
  - name: m
    model: x/m
    pool: l40s
    stacks:
      prod:
        tensor_parallel_size: 3
""")
    assert errors(project) == [
        "stacks/teams/search.yaml:10 models[0].stacks.prod.tensor_parallel_size: 3 — tensor × pipeline parallel "
        "size (3) must divide the pool's 4 GPUs (g6e.12xlarge)"]


def test_quota_and_replicas_are_checked(project: Path) -> None:
    only_team(project, TEAM_HEAD + """\
  - name: m
    model: x/m
    pool: h100
    tensor_parallel_size: 8
""", gpu_quota={"prod": 4})
    assert errors(project) == [
        "stacks/teams/search.yaml:4 models: the models need up to 8 GPUs at max replicas in stack prod, but "
        "stacks/tenancy.yaml:4 grants the team 4 — lower replicas, or ask the platform team to raise teams.search.gpu_quota.prod"]


def test_removed_flag_in_extra_args_names_its_replacement(project: Path) -> None:
    only_team(project, TEAM_HEAD + """\
  - name: m
    model: x/m
    pool: l40s
    extra_args: ["--speculative-model", "x/draft", "--max-logp", "5"]
""")
    (err,) = errors(project)
    assert err.startswith("stacks/teams/search.yaml:8 models[0].extra_args: --speculative-model is not a flag of vLLM 0.34.0 — use --speculative-config")
    assert "--max-logp is not a flag of vLLM 0.34.0 (abbreviations are not accepted: did you mean --max-logprobs?)" in err


def test_typed_flags_are_refused_in_extra_args(project: Path) -> None:
    only_team(project, TEAM_HEAD + """\
  - name: m
    model: x/m
    pool: l40s
    extra_args: ["--api-key", "abc", "--tensor-parallel-size=2"]
""")
    assert errors(project) == [
        "stacks/teams/search.yaml:8 models[0].extra_args[0]: '--api-key' has a typed field — use `api_key: {secret: <name>}` instead of extra_args",
        "stacks/teams/search.yaml:8 models[0].extra_args[2]: '--tensor-parallel-size' has a typed field — use the typed field `tensor_parallel_size` instead of extra_args",
    ]


def test_yaml_syntax_duplicate_keys_and_team_name(project: Path) -> None:
    write(project / "stacks" / "teams" / "broken.yaml", "name: broken\nowners: [\n")
    write(project / "stacks" / "teams" / "dup.yaml", "name: dup\nname: dup\nowners: ['@a']\n")
    write(project / "stacks" / "teams" / "other.yaml", "name: not-other\nowners: ['@a']\n")
    errs = errors(project)
    assert "stacks/teams/broken.yaml:3: not valid YAML: expected the node content, but found '<stream end>' — fix the syntax at this line" in errs
    assert "stacks/teams/dup.yaml:2 name: duplicate key 'name' (first at line 1); YAML keeps only the last one — remove one of them" in errs
    assert "stacks/teams/other.yaml:1 name: 'not-other' must match the file name 'other' — rename one of them" in errs


BAD_POOLS = [
    ("instance_types: [m5.xlarge]", "instance_types[0]: 'm5.xlarge' is not a GPU instance type in the catalog"),
    ("instance_types: [g6.xlarge]", "instance_types[0]: 'g6.xlarge' is outside allowed_instance_types"),
    ("instance_types: [p5.48xlarge]\n      min_size: 3\n      max_size: 2",
     "max_size 2 is below min_size 3 — raise max_size or lower min_size"),
    ("instance_types: [g6e.12xlarge, g6e.xlarge]", "instance types differ in GPU count or memory"),
]


@pytest.mark.parametrize(("pool", "expected"), BAD_POOLS)
def test_bad_pools_are_config_errors_naming_the_field(project: Path, pool: str, expected: str) -> None:
    stack = project / "stacks" / "Pulumi.prod.yaml"
    edit(stack, "instance_types: [p5.48xlarge]\n      capacity_type: capacity-block\n      capacity_reservation_id: cr-0a1b2c3d4e5f60789\n"
                '      capacity_block_starts_at: "2026-12-07T11:30:00Z"\n      capacity_block_ends_at: "2027-01-04T11:30:00Z"\n'
                "      max_size: 6", pool + ("\n      max_size: 6" if "max_size" not in pool else ""))
    edit(stack, "allowed_instance_types: [p5.48xlarge, g6e.12xlarge, g6e.24xlarge, g6.2xlarge, g6.4xlarge]",
         "allowed_instance_types: [p5.48xlarge, g6e.12xlarge, g6e.24xlarge, g6e.xlarge, g6.2xlarge, g6.4xlarge]")
    errs = errors(project)
    assert any(e.startswith("stacks/Pulumi.prod.yaml:") and "config.vllm-fleet:gpu_pools[0]" in e and expected in e
               for e in errs), errs


def test_unknown_stack_key_and_literal_stack_secret(project: Path) -> None:
    stack = project / "stacks" / "Pulumi.dev.yaml"
    text = stack.read_text().replace("  vllm-fleet:spare_gpus: 1", "  vllm-fleet:spare_gpu: 1")
    text = text.replace("    hf-token:\n      secure: v1:devHfTokenCiphertextPlaceholder", "    hf-token: hf_abcdef")
    stack.write_text(text)
    errs = errors(project, "dev")
    assert any("config.vllm-fleet:spare_gpu: unknown key 'vllm-fleet:spare_gpu' — did you mean 'vllm-fleet:spare_gpus'?" in e for e in errs), errs
    assert any("config.vllm-fleet:secrets.hf-token: a literal secret is refused — store it with "
               "`pulumi config set --stack dev --secret --path 'vllm-fleet:secrets.hf-token' <value>`" in e for e in errs), errs


def test_unknown_stack_is_a_config_error(project: Path) -> None:
    assert errors(project, "qa") == ["stacks/Pulumi.qa.yaml: no such stack 'qa' — known stacks: dev, prod"]


def test_trust_remote_code_needs_a_pinned_revision(project: Path) -> None:
    only_team(project, TEAM_HEAD + """\
  - name: m
    model: x/m
    pool: l40s
    trust_remote_code: true
""")
    assert errors(project) == [
        "stacks/teams/search.yaml:8 models[0].trust_remote_code: trust_remote_code needs `revision` pinned to a "
        "40-hex commit (remote code runs at load; CVE-2025-66448)"]


def test_quota_or_override_for_a_stack_that_does_not_exist(project: Path) -> None:
    only_team(project, TEAM_HEAD + """\
  - name: m
    model: x/m
    pool: l40s
    stacks:
      staging: {replicas: 2}
""", gpu_quota={"prdo": 8, "dev": 1})
    assert errors(project, "dev") == [
        "stacks/teams/search.yaml:9 models[0].stacks.staging: no stack 'staging' (stacks/Pulumi.staging.yaml) — known stacks: dev, prod",
        "stacks/tenancy.yaml:4 teams.search.gpu_quota.prdo: no stack 'prdo' (stacks/Pulumi.prdo.yaml) — did you mean 'prod'?",
    ]
