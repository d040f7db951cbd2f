"""Team and stack values that parse but that the engine, vLLM or a security reviewer would refuse: each is a config error
(exit 2) that names the file, the line, the field path and the fix, found by `validate` before anything renders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleet.cli import main
from tests.conftest import edit

TEAM = "stacks/teams/search.yaml"
PROD = "stacks/Pulumi.prod.yaml"
VLLM = "  vllm-fleet:vllm:\n    version: 0.34.0\n"
THROUGHPUT = "    profile: throughput\n"

CASES = {
    "model name starting with a digit": (
        TEAM, "  - name: qwen-3b\n", "  - name: 3b-qwen\n", "dev",
        "stacks/teams/search.yaml:5 models[0].name: '3b-qwen' starts with a digit", "e.g. 'qwen-3b'"),
    "tensor parallel that does not divide the heads": (
        TEAM, THROUGHPUT, THROUGHPUT + "    tensor_parallel_size: 3\n", "dev",
        "models[0].tensor_parallel_size: Qwen/Qwen2.5-3B-Instruct: tensor parallel size 3 does not divide the 16 attention heads", "use 1, 2, 4, 8, 16"),
    "max_model_len above the model's context": (
        TEAM, "max_model_len: 16384", "max_model_len: 131072", "dev",
        "stacks/teams/search.yaml:9 models[0].max_model_len: 131,072 is above", "lower max_model_len to 32,768"),
    "awq on a 16-bit checkpoint": (
        TEAM, THROUGHPUT, THROUGHPUT + "    quantization: awq\n", "dev",
        "models[0].quantization: awq needs a checkpoint quantized with AWQ", "use fp8 or bitsandbytes"),
    "an embedding model without the pooling runner": (
        TEAM, "    runner: pooling\n", "", "dev",
        "models[1].runner: BAAI/bge-m3 is an embedding model", "set `runner: pooling`"),
    "an autoscaling target that scales on every request": (
        TEAM, "target_queue_per_pod: 8", "target_queue_per_pod: 0.01", "prod",
        "models[0].stacks.prod.autoscaling.target_queue_per_pod: 0.01", "greater than or equal to 0.1"),
    "a subnet id that is not one": (
        PROD, "subnet_ids: [subnet-0a9e7c1b2c3d40011]\n    - name: l40s", "subnet_ids: [subnet-x]\n    - name: l40s", "prod",
        "config.vllm-fleet:gpu_pools[0].subnet_ids[0]: 'subnet-x'", "should match pattern"),
    "a pool label key Kubernetes refuses": (
        PROD, "      max_size: 16\n", "      max_size: 16\n      labels: {'bad key!': x}\n", "prod",
        "config.vllm-fleet:gpu_pools[2].labels", "bad key!"),
    "prod images by tag only": (
        PROD, VLLM, VLLM + "    allow_tag_only: true\n", "prod",
        "config.vllm-fleet:vllm.allow_tag_only: a prod stack pins its images by digest", "vllm-fleet pin --stack <stack>"),
    "prod without a model cache": (
        PROD, "    backend: fsx-lustre\n    size_gib: 4800\n    throughput_mibps: 500\n", "    backend: none\n", "prod",
        "config.vllm-fleet:model_cache.backend:", "prod"),
    "a guardrail disabled without a reason": (
        PROD, "  vllm-fleet:spare_gpus: 8\n", "  vllm-fleet:spare_gpus: 8\n  vllm-fleet:policy:\n    overrides: {D3: disabled}\n", "prod",
        "config.vllm-fleet:policy.overrides.D3: D3 is set to disabled without a reason", "reason:"),
    "a guardrail made advisory in prod without a reason": (
        PROD, "  vllm-fleet:spare_gpus: 8\n", "  vllm-fleet:spare_gpus: 8\n  vllm-fleet:policy:\n    overrides: {D3: advisory}\n", "prod",
        "D3 is set to advisory without a reason", "reviewed like an exemption"),
    "the gateway in a team's namespace": (
        PROD, "    namespace: gateway\n", "    namespace: team-search\n", "prod",
        "config.vllm-fleet:gateway.namespace: 'team-search' is team search's namespace", "its own namespace"),
    "a version floor that is not a version": (
        PROD, "  vllm-fleet:spare_gpus: 8\n", "  vllm-fleet:spare_gpus: 8\n  vllm-fleet:policy:\n    vllm_version_floor: latest\n", "prod",
        "config.vllm-fleet:policy.vllm_version_floor: 'latest'", "should match pattern"),
    # vLLM's SchedulerConfig.verify_max_model_len (vllm@v0.34.0:vllm/config/scheduler.py) refuses these at startup
    "a token budget below the profile's max_num_seqs": (
        TEAM, THROUGHPUT, THROUGHPUT + "    max_num_batched_tokens: 256\n", "dev",
        "stacks/teams/search.yaml:11 models[0].max_num_batched_tokens: on L40S (l40s: g6e.xlarge) with max_num_seqs 512 from "
        "profile throughput, max_num_batched_tokens 256 is below max_num_seqs 512", "set max_num_batched_tokens to at least 512"),
    "max_num_seqs above the GPU's default token budget": (
        TEAM, THROUGHPUT, "    max_num_seqs: 4096\n", "dev",
        "models[0].max_num_seqs: on L40S (l40s: g6e.xlarge), the default max_num_batched_tokens on this GPU (2,048) is below "
        "max_num_seqs 4,096", "lower max_num_seqs to 2,048 or less"),
    "the profile's budget below max_model_len without chunked prefill": (
        TEAM, THROUGHPUT, "    profile: latency\n    enable_chunked_prefill: false\n", "dev",
        "models[0].profile: max_num_batched_tokens 4,096 (profile latency) is below max_model_len 16,384 and chunked prefill is "
        "off", "use profile balanced"),
    "an encoder's budget below max_model_len": (
        TEAM, "    runner: pooling\n", "    runner: pooling\n    max_num_batched_tokens: 2048\n", "dev",
        "models[1].max_num_batched_tokens: max_num_batched_tokens 2,048 is below max_model_len 8,192 and vLLM serves BAAI/bge-m3, "
        "an encoder, without chunked prefill", "raise max_num_batched_tokens to 8,192"),
    "bitsandbytes on the stock image": (
        TEAM, THROUGHPUT, THROUGHPUT + "    quantization: bitsandbytes\n", "dev",
        "models[0].quantization: vLLM 0.34.0 has no bitsandbytes without the out-of-tree vllm-bnb-plugin", "`quantization: fp8`"),
    "a draft model with another vocabulary": (
        TEAM, "    model: Qwen/Qwen2.5-3B-Instruct\n", "    model: Qwen/Qwen2.5-7B-Instruct\n    speculative: {method: draft_model, "
        "model: Qwen/Qwen2.5-0.5B-Instruct, num_speculative_tokens: 4}\n", "dev",
        "models[0].speculative.model: Qwen/Qwen2.5-0.5B-Instruct has a vocabulary of 151,936 tokens", "method ngram"),
    "LoRA and speculation beyond the token budget": (
        TEAM, THROUGHPUT, "    lora: {modules: [{name: t, path: acme-ml/qwen-tone-lora}]}\n"
        "    speculative: {method: ngram, num_speculative_tokens: 8, prompt_lookup_max: 4}\n", "dev",
        "models[0].speculative.num_speculative_tokens: with LoRA, vLLM needs max_num_batched_tokens (2,048 on L40S) of at least "
        "max_num_seqs 256 × (8 speculative tokens + 1) = 2,304", "speculate fewer tokens"),
    "a speculator the pinned release removed": (
        TEAM, THROUGHPUT, THROUGHPUT + "    speculative: {method: medusa, model: acme-ml/qwen-medusa, num_speculative_tokens: 3}\n",
        "dev", "models[0].speculative.method: vLLM 0.34.0 has no medusa speculator (removed in 0.33)", "or ngram"),
    # dtype rules of vllm@v0.34.0:vllm/config/model.py and the quantizations' activation dtypes
    "float16 on Gemma 2": (
        TEAM, "    model: Qwen/Qwen2.5-3B-Instruct\n    revision: aa8e72537993ba99e69dfaafa59ed015b17504d1\n    pool: l40s\n"
        "    max_model_len: 16384\n", "    model: google/gemma-2-9b-it\n    pool: l40s\n    max_model_len: 8192\n    dtype: half\n", "dev",
        "models[0].dtype: google/gemma-2-9b-it (gemma2) refuses float16", "use bfloat16"),
    "fp8 with float32 activations": (
        TEAM, THROUGHPUT, THROUGHPUT + "    quantization: fp8\n    dtype: float32\n", "dev",
        "models[0].dtype: fp8 quantization runs its activations in bfloat16 or float16, not float32", "set dtype bfloat16"),
    "a checkpoint of a deprecated quantization": (
        TEAM, "    model: Qwen/Qwen2.5-3B-Instruct\n", "    model: meta-llama/Llama-3.1-405B-Instruct-FP8\n", "dev",
        "models[0].model: meta-llama/Llama-3.1-405B-Instruct-FP8 is quantized with fbgemm_fp8", "`--allow-deprecated-quantization`"),
    "a tool-call parser the pinned vLLM does not have": (
        "stacks/teams/assistant.yaml", "    tool_calling: {parser: llama3_json}\n", "    tool_calling: {parser: llama31_json}\n", "dev",
        "models[0].tool_calling.parser: 'llama31_json' is not a tool-call parser of vLLM 0.34.0", "did you mean llama3_json"),
    "credentials in a registry address": (
        PROD, VLLM, "  vllm-fleet:vllm:\n    repository: user:hunter2@registry.example.com/x\n    version: 0.34.0\n", "prod",
        "config.vllm-fleet:vllm.repository: holds a user name and password", "the value is not shown"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_values_that_would_fail_later_are_config_errors(project: Path, capsys, case: str) -> None:
    file, old, new, stack, where, fix = CASES[case]
    edit(project / file, old, new)
    code = main(["--root", str(project), "validate", "--stack", stack])
    out, err = capsys.readouterr()
    assert code == 2, out + err
    assert where in err and fix in err
    assert "hunter2" not in out + err and "Traceback" not in err


def test_a_speculator_is_accepted_by_the_releases_that_still_have_it(project: Path, capsys) -> None:
    # medusa left vLLM in 0.33 (vllm@v0.33.0:vllm/config/speculative.py); a stack pinned at 0.32 may still use it
    edit(project / "stacks" / "Pulumi.dev.yaml", "    version: 0.34.0\n", "    version: 0.32.0\n")
    edit(project / TEAM, THROUGHPUT, THROUGHPUT + "    speculative: {method: medusa, model: acme-ml/qwen-medusa, num_speculative_tokens: 3}\n")
    assert main(["--root", str(project), "validate", "--stack", "dev"]) == 0, capsys.readouterr().err


def test_a_deprecated_quantization_is_served_when_the_team_allows_it(project: Path, capsys) -> None:
    edit(project / TEAM, "    model: Qwen/Qwen2.5-3B-Instruct\n", "    model: meta-llama/Llama-3.1-405B-Instruct-FP8\n"
         "    extra_args: [--allow-deprecated-quantization]\n")
    main(["--root", str(project), "validate", "--stack", "dev"])
    err = capsys.readouterr().err
    assert "does not fit" in err and "fbgemm_fp8" not in err   # on to the fit check, which 405B on one L40S fails


def test_every_bundled_vllm_release_has_its_tool_parsers_recorded() -> None:
    from fleet.versions import bundled_vllm_versions
    from fleet.vllm.flags import tool_parsers

    # scripts/vllm_tool_parsers.py VERSION records a release `vllm-fleet upgrade vllm` adds
    for version in bundled_vllm_versions():
        names = tool_parsers(version)
        assert names and "hermes" in names and "llama3_json" in names, version
    # a built-in name with a hyphen is a parser too (the field's pattern once refused it)
    assert "granite-20b-fc" in (tool_parsers("0.34.0") or [])


@pytest.mark.parametrize("dtype, refused", [("bfloat16", True), ("auto", False)])
def test_bfloat16_on_a_gpu_older_than_ampere_is_a_config_error(project: Path, capsys, dtype: str, refused: bool) -> None:
    stack = project / "stacks" / "Pulumi.dev.yaml"
    edit(stack, "instance_types: [g6e.xlarge, g6e.2xlarge]", "instance_types: [g4dn.xlarge]")
    edit(stack, "allowed_instance_types: [g6e.xlarge,", "allowed_instance_types: [g4dn.xlarge, g6e.xlarge,")
    edit(project / TEAM, THROUGHPUT, THROUGHPUT + f"    dtype: {dtype}\n")
    main(["--root", str(project), "validate", "--stack", "dev"])
    err = capsys.readouterr().err
    message = "models[0].dtype: bfloat16 needs a GPU of compute capability 8.0 or newer and the T4 of pool 'l40s' is 7.5"
    assert (message in err) == refused, err


def test_a_reasoned_override_is_accepted_and_reaches_the_pack(project: Path, capsys) -> None:
    edit(project / PROD, "  vllm-fleet:spare_gpus: 8\n", "  vllm-fleet:spare_gpus: 8\n  vllm-fleet:policy:\n    overrides:\n"
         "      D3: {level: advisory, reason: 'node-local cache measured in INC-123', owner: '@acme/platform'}\n")
    assert main(["--root", str(project), "policy-config", "--stack", "prod"]) == 0
    levels = {name.split("-")[0]: v["enforcementLevel"] for name, v in json.loads(capsys.readouterr().out).items()}
    assert levels["d3"] == "advisory" and levels["d2"] == "mandatory"


def test_image_digests_are_not_mistaken_for_credentials() -> None:
    from fleet.errors import redact

    assert redact("image 'vllm-openai:v0.33.0@sha256:00ff' is not pinned") == "image 'vllm-openai:v0.33.0@sha256:00ff' is not pinned"
    assert redact("'user:pw@registry.example.com/x' is not allowed") == "'<redacted>@registry.example.com/x' is not allowed"
