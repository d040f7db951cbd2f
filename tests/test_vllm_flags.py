"""The vLLM flag tables (generated from vLLM's parser) and the argument compiler."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from fleet.spec.load import load
from fleet.spec.team import ModelSpec
from fleet.vllm.compiler import FlagError, check_args, compile_args
from fleet.vllm.flags import available_versions, table
from tests.conftest import ROOT


def spec(**fields) -> ModelSpec:
    return ModelSpec.model_validate({"name": "m", "model": "org/model", "pool": "p", **fields})


def test_tables_exist_for_the_default_version_and_the_security_floor() -> None:
    assert {"0.32.0", "0.33.0"} <= set(available_versions())
    t = table("0.33.0")
    assert t.version == "0.33.0"
    assert t.lookup("-tp") is t.lookup("--tensor-parallel-size")
    assert "vllm:num_requests_waiting" in t.metrics and "vllm:kv_cache_usage_perc" in t.metrics
    assert "vllm:gpu_cache_usage_perc" not in t.metrics  # renamed; the old name is gone


def test_every_bundled_model_compiles_to_flags_of_its_pinned_version() -> None:
    for stack in ("dev", "prod"):
        s = load(stack, ROOT)
        for m in s.models:
            args = compile_args(m.spec, s.config.vllm.version)
            assert args[0] == m.spec.model
            assert check_args(args[1:], s.config.vllm.version) == [], (m.name, args)


# The fit check sizes for this utilisation; vLLM's default moves between releases (0.92 in 0.33.0, None in 0.34.0).
GMU = ["--gpu-memory-utilization", "0.9"]


def test_defaults_are_left_out_and_negations_are_right() -> None:
    assert compile_args(spec(), "0.33.0") == ["org/model", *GMU]
    assert compile_args(spec(enable_prefix_caching=True, enable_chunked_prefill=True, tensor_parallel_size=1,
                             gpu_memory_utilization=0.9, dtype="auto"), "0.33.0") == ["org/model", *GMU]
    assert compile_args(spec(enable_prefix_caching=False), "0.33.0") == ["org/model", *GMU, "--disable-prefix-caching"]
    assert compile_args(spec(enforce_eager=True, trust_remote_code=True, revision="a" * 40), "0.33.0") == [
        "org/model", "--revision", "a" * 40, *GMU, "--enforce-eager", "--trust-remote-code"]


def test_the_memory_utilisation_the_fit_check_assumed_is_always_passed() -> None:
    assert table("0.33.0").lookup("--gpu-memory-utilization").default == 0.92   # not the 0.9 sizing assumes
    assert table("0.34.0").lookup("--gpu-memory-utilization").default is None
    for version in ("0.33.0", "0.34.0"):
        args = compile_args(spec(), version)
        assert args[args.index("--gpu-memory-utilization") + 1] == "0.9"


def test_json_flags_are_serialised_stably() -> None:
    args = compile_args(spec(speculative={"num_speculative_tokens": 4, "method": "eagle3", "model": "org/draft"},
                             structured_outputs={"backend": "guidance"},
                             multimodal={"limit_per_prompt": {"video": 1, "image": 2}}), "0.33.0")
    assert args[args.index("--speculative-config") + 1] == '{"method":"eagle3","model":"org/draft","num_speculative_tokens":4}'
    assert args[args.index("--structured-outputs-config") + 1] == '{"backend":"guidance"}'
    assert args[args.index("--limit-mm-per-prompt") + 1] == '{"image":2,"video":1}'


def test_features_render_their_flags() -> None:
    args = compile_args(spec(quantization="bitsandbytes", runner="pooling", convert="embed",
                             served_model_name=["a", "b"]), "0.33.0")
    assert args == ["org/model", *GMU, "--quantization", "bitsandbytes", "--load-format", "bitsandbytes",
                    "--served-model-name", "a", "b", "--runner", "pooling", "--convert", "embed"]
    lora = compile_args(spec(lora={"modules": [{"name": "x", "path": "org/x-lora", "revision": "b" * 40}], "max_rank": 64,
                                   "max_loras": 2}, tool_calling={"parser": "hermes"}), "0.33.0",
                        adapter_root="/models/adapters/m")
    assert lora == ["org/model", *GMU, "--enable-lora", "--lora-modules", "x=/models/adapters/m/x", "--max-lora-rank", "64",
                    "--max-loras", "2", "--enable-auto-tool-choice", "--tool-call-parser", "hermes"]


@pytest.mark.parametrize(("args", "problem"), [
    (["--speculative-model", "org/draft"], "--speculative-model is not a flag of vLLM 0.33.0 — use --speculative-config"),
    (["--task", "embed"], "--task is not a flag of vLLM 0.33.0 — use --runner pooling"),
    (["--guided-decoding-backend", "xgrammar"], "--guided-decoding-backend is not a flag of vLLM 0.33.0 — use --structured-outputs-config"),
    (["--enable-disagg-prefill"], "--enable-disagg-prefill is not a flag of vLLM 0.33.0 — use separate prefill and decode servers with --kv-transfer-config"),
    (["--max-model", "4096"], "--max-model is not a flag of vLLM 0.33.0 (abbreviations are not accepted: did you mean --max-model-len?)"),
    (["--max-model-len"], "--max-model-len needs a value"),
    (["--enforce-eager=yes"], "--enforce-eager takes no value"),
    (["--max-lora-rank", "7"], "--max-lora-rank 7 is not one of 1, 8, 16, 32, 64, 128, 256, 320, 512"),
])
def test_user_flags_are_checked_with_abbreviations_off(args: list[str], problem: str) -> None:
    (found,) = check_args(args, "0.33.0")
    assert found.startswith(problem)


def test_a_flag_that_still_exists_is_accepted_even_if_old_guides_call_it_removed() -> None:
    # --disable-log-requests is in the rename table, but 0.33.0's parser still accepts it (negation of
    # --enable-log-requests): the generated table wins over the hand-written list.
    assert check_args(["--disable-log-requests"], "0.33.0") == []


def test_a_flag_added_in_0_33_is_refused_on_0_32() -> None:
    assert check_args(["--watchdog-config", "{}"], "0.33.0") == []
    assert check_args(["--watchdog-config", "{}"], "0.32.0") == ["--watchdog-config is not a flag of vLLM 0.32.0"]


def test_an_unknown_version_names_the_generator() -> None:
    with pytest.raises(KeyError, match=r"no flag table for vLLM 0.99.0 .* run `vllm-fleet upgrade vllm 0.99.0`"):
        table("0.99.0")


def test_compile_refuses_bad_extra_args() -> None:
    with pytest.raises(FlagError, match=r"--swap-space is not a flag of vLLM 0\.33\.0"):
        compile_args(spec(extra_args=["--swap-space", "4"]), "0.33.0")


@pytest.mark.vllm_parser
def test_vllm_own_parser_accepts_every_bundled_model() -> None:
    """Opt-in: VLLM_PARSER_PYTHON=<python where vllm imports> pytest -m vllm_parser."""
    python = os.environ.get("VLLM_PARSER_PYTHON")
    assert python, "set VLLM_PARSER_PYTHON to a Python interpreter where `import vllm` works"
    for stack in ("dev", "prod"):
        s = load(stack, ROOT)
        arg_lists = [compile_args(m.spec, s.config.vllm.version, shutdown_timeout=30) for m in s.models]
        out = subprocess.run([python, str(ROOT / "scripts" / "vllm_parse_check.py")], input=json.dumps(arg_lists),
                             capture_output=True, text=True, check=True, env={**os.environ, "VLLM_TARGET_DEVICE": "cpu"})
        results = json.loads(out.stdout)
        assert results == [None] * len(arg_lists), list(zip([m.name for m in s.models], results, strict=True))
