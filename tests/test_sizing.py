"""The GPU-memory fit check: arithmetic, verdicts with fixes, the loader's early error, the CLI, calibration."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from fleet.capacity.memory import (
    GIB,
    Arch,
    KvPool,
    Settings,
    activation_gib,
    arch_from_config_json,
    default_batched_tokens,
    engine_profile_for,
    kv_bytes_per_token,
    kv_capacity,
    kv_pool,
    model_catalog,
    size,
    weights_gib_per_gpu,
)
from fleet.capacity.memory_calibration import checks, summary
from fleet.catalog import CATALOG_DIR
from fleet.cli import main
from fleet.errors import ConfigError
from fleet.spec.architecture import settings_for
from fleet.spec.load import load
from fleet.spec.team import ModelSpec
from tests.conftest import grant, write

CATALOG = model_catalog()
LLAMA8 = CATALOG["meta-llama/Llama-3.1-8B-Instruct"]
LLAMA70 = CATALOG["meta-llama/Llama-3.1-70B-Instruct"]


def test_kv_bytes_per_token_splits_gqa_heads_by_tp_and_layers_by_pp() -> None:
    assert kv_bytes_per_token(LLAMA8, Settings(gpu_memory_gib=80)) == 2 * 32 * 8 * 128 * 2 == 131072
    assert kv_bytes_per_token(LLAMA8, Settings(gpu_memory_gib=80, tensor_parallel_size=4)) == 2 * 32 * 2 * 128 * 2
    # more TP ranks than KV heads: heads are replicated, never fewer than one per GPU
    assert kv_bytes_per_token(LLAMA8, Settings(gpu_memory_gib=80, tensor_parallel_size=16)) == 2 * 32 * 1 * 128 * 2
    assert kv_bytes_per_token(LLAMA8, Settings(gpu_memory_gib=80, pipeline_parallel_size=2)) == 2 * 16 * 8 * 128 * 2
    assert kv_bytes_per_token(LLAMA8, Settings(gpu_memory_gib=80, kv_cache_dtype="fp8")) == 65536
    # MLA: one latent vector per layer, not split by TP
    v3 = CATALOG["deepseek-ai/DeepSeek-V3"]
    assert kv_bytes_per_token(v3, Settings(gpu_memory_gib=141, tensor_parallel_size=8)) == 61 * (512 + 64) * 2
    assert kv_bytes_per_token(CATALOG["BAAI/bge-m3"], Settings(gpu_memory_gib=24)) == 0


def test_weights_split_by_parallelism_and_quantization() -> None:
    # vLLM logged 14.99–15.00 GiB: 14.96 of parameters and a 32 MiB rotary cache (131,072 positions × 128, bf16)
    assert weights_gib_per_gpu(LLAMA8, Settings(gpu_memory_gib=80)) == pytest.approx(14.99, abs=0.01)
    assert weights_gib_per_gpu(LLAMA70, Settings(gpu_memory_gib=80, tensor_parallel_size=4)) == pytest.approx(32.85, abs=0.05)
    fp8 = weights_gib_per_gpu(LLAMA70, Settings(gpu_memory_gib=80, tensor_parallel_size=4, quantization="fp8"))
    assert 0.5 < fp8 / 32.85 < 0.56  # linear layers at 1 byte, embeddings stay 16-bit


def test_a_70b_at_128k_on_four_40gb_gpus_does_not_fit_and_names_fixes() -> None:
    result = size(LLAMA70, Settings(gpu_memory_gib=39.39, gpus_per_node=8, tensor_parallel_size=4, max_model_len=131072))
    assert not result.fits
    assert result.reason.startswith("one 131,072-token sequence needs 10.00 GiB of KV cache per GPU")
    assert result.fixes == ["raise tensor_parallel_size to 8", "lower max_model_len to 29,696 or less",
                            "serve an FP8-quantized checkpoint or set quantization: fp8 (halves the weights)",
                            "use a larger GPU: A100-80GB (p4de.24xlarge, 80 GB per GPU)"]
    # every fix, applied, really fits
    assert size(LLAMA70, Settings(gpu_memory_gib=39.39, tensor_parallel_size=8, max_model_len=131072)).fits
    assert size(LLAMA70, Settings(gpu_memory_gib=39.39, tensor_parallel_size=4, max_model_len=29696)).fits
    assert not size(LLAMA70, Settings(gpu_memory_gib=39.39, tensor_parallel_size=4, max_model_len=31744)).fits
    assert size(LLAMA70, Settings(gpu_memory_gib=79.15, tensor_parallel_size=4, max_model_len=131072)).fits


def test_weights_larger_than_the_budget_is_its_own_reason() -> None:
    result = size(LLAMA70, Settings(gpu_memory_gib=22.05, gpus_per_node=1))
    assert not result.fits and result.reason.startswith("weights need 131.4 GiB per GPU but the budget is 19.8 GiB")


def test_sliding_window_layers_make_long_sequences_cheaper() -> None:
    gemma = CATALOG["google/gemma-3-27b-it"]
    full = Arch(**{**gemma.__dict__, "sliding_window": None, "sliding_window_layers": 0})
    s = Settings(gpu_memory_gib=44.53, tensor_parallel_size=2, max_model_len=131072)
    assert size(gemma, s).fits and not size(full, s).fits


def test_hybrid_kv_pool_groups_gemma3_layers_as_vllm_does() -> None:
    gemma = CATALOG["google/gemma-3-4b-it"]              # 29 sliding-window layers, 5 full-attention ones
    s = Settings(gpu_memory_gib=139.8, max_model_len=8192, max_num_batched_tokens=16384)
    # groups of 5 layers: one full-attention group and 6 sliding ones (the last padded with an empty layer)
    assert kv_pool(gemma, s) == KvPool(group_size=5, full_groups=1, sliding_groups=6, page_bytes=16 * 2 * 4 * 256 * 2,
                                       sliding_tokens=1023 + 2 * 16384)
    # the H200 run h200-gemma3-4b-u90-8k-text: "Available KV cache memory: 116.37 GiB", "GPU KV cache size: 870,136
    # tokens", "Maximum concurrency for 8,192 tokens per request: 106.22x" (35 layers' worth of pages per token, not 34)
    tokens, concurrency = kv_capacity(gemma, s, 116.37 * GIB, 8192)
    assert concurrency == pytest.approx(106.22, abs=0.01) and tokens == pytest.approx(870_136, rel=1e-4)
    # a model of one attention type is one group of all its layers, whose tokens are whole blocks
    assert kv_pool(LLAMA8, s) == KvPool(group_size=32, full_groups=1, sliding_groups=0, page_bytes=16 * 2 * 8 * 128 * 2)
    assert kv_capacity(LLAMA8, s, 10 * GIB, 8192)[0] == 10 * GIB // (32 * 16 * 2 * 8 * 128 * 2) * 16


def test_sliding_window_layers_hold_their_window_and_the_tokens_in_flight() -> None:
    gemma = CATALOG["google/gemma-3-27b-it"]             # 52 sliding layers, 10 full: 1 + 6 groups of 10
    s = Settings(gpu_memory_gib=139.8, max_model_len=131072, max_num_batched_tokens=8192)
    pool = kv_pool(gemma, s)
    assert pool is not None and (pool.group_size, pool.full_groups, pool.sliding_groups) == (10, 1, 6)
    blocks = 131072 // 16
    # vLLM 0.26 schedules a step ahead: a sliding layer keeps its last 1,023 tokens and two steps of 8,192
    assert pool.blocks_per_request(131072) == blocks + 6 * (-(-(1023 + 2 * 8192) // 16) + 1) == 14726
    one_step = blocks + 6 * (-(-(1023 + 8192) // 16) + 1)
    older = replace(s, engine_profile="v1-native-sampler")
    older_pool, sync_pool = kv_pool(gemma, older), kv_pool(gemma, replace(s, async_scheduling=False))
    assert older_pool and sync_pool
    assert older_pool.blocks_per_request(131072) == sync_pool.blocks_per_request(131072) == one_step
    # a short context caps the window at max_model_len
    assert pool.blocks_per_request(4096) == 256 + 6 * (256 + 1)
    # without the hybrid manager (V0, or a KV connector that does not support it) every layer is sized full
    assert kv_pool(gemma, replace(s, hybrid_kv=False)) == KvPool(62, 1, 0, pool.page_bytes)
    assert kv_pool(gemma, replace(s, engine_profile="v0")) == KvPool(62, 1, 0, pool.page_bytes)
    # one 131,072-token request: 14,726 blocks of 10 layers' pages (17.98 GiB), not 62 full layers (62 GiB)
    hybrid = size(gemma, replace(s, gpu_memory_gib=95.0))
    assert hybrid.fits and hybrid.max_concurrency == pytest.approx(hybrid.kv_cache_gib / 17.98, rel=0.01)
    full = size(gemma, replace(s, gpu_memory_gib=95.0, hybrid_kv=False))
    assert not full.fits and "needs 62.00 GiB of KV cache" in full.reason


def test_settings_follow_what_turns_vllms_hybrid_manager_and_async_scheduling_off() -> None:
    def settings(**fields: object) -> Settings:
        spec = ModelSpec.model_validate({"name": "m", "model": "google/gemma-3-27b-it", "pool": "p", **fields})
        return settings_for(spec, 44.53, 4, "L40S", "0.26.0")

    plain = settings()
    assert plain.hybrid_kv and plain.async_scheduling
    assert not settings(kv_offload={"backend": "lmcache", "cpu_gib": 16}).hybrid_kv
    assert settings(kv_offload={"backend": "native", "cpu_gib": 16}).hybrid_kv
    assert not settings(speculative={"method": "ngram", "num_speculative_tokens": 3}).async_scheduling
    assert settings(speculative={"method": "eagle3", "model": "org/draft", "num_speculative_tokens": 3}).async_scheduling


def test_loader_refuses_a_model_that_does_not_fit_with_the_fixes(project: Path) -> None:
    stack = project / "stacks" / "Pulumi.prod.yaml"
    text = stack.read_text().replace("instance_types: [g6e.12xlarge, g6e.24xlarge]", "instance_types: [p4d.24xlarge]")
    stack.write_text(text.replace("allowed_instance_types: [p5.48xlarge,", "allowed_instance_types: [p4d.24xlarge, p5.48xlarge,"))
    for f in (project / "stacks" / "teams").glob("*.yaml"):
        f.unlink()
    write(project / "stacks" / "teams" / "big.yaml", """\
name: big
owners: ["@acme/big"]
# quota: stacks/tenancy.yaml
models:
  - name: llama-70b
    model: meta-llama/Llama-3.1-70B-Instruct
    pool: l40s
    tensor_parallel_size: 4
    max_model_len: 131072
""")
    grant(project, "big", gpu_quota={"prod": 8}, only=True)
    with pytest.raises(ConfigError) as info:
        load("prod", project)
    (issue,) = info.value.issues
    assert str(issue).startswith("stacks/teams/big.yaml:9 models[0].max_model_len: meta-llama/Llama-3.1-70B-Instruct does not fit "
                                 "on 4× A100-40GB (l40s: p4d.24xlarge): one 131,072-token sequence needs 10.00 GiB")
    assert str(issue).endswith("— fixes: raise tensor_parallel_size to 8; lower max_model_len to 29,696 or less; serve an "
                               "FP8-quantized checkpoint or set quantization: fp8 (halves the weights); use a larger GPU: "
                               "A100-80GB (p4de.24xlarge, 80 GB per GPU)")


def test_size_command_json_and_exit_codes(capsys) -> None:
    assert main(["size", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "L4", "--max-model-len", "8192", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {"weights_gib_per_gpu", "kv_cache_gib", "kv_cache_tokens", "max_concurrency", "fits", "reason"} <= set(doc)
    assert doc["fits"] is True and doc["kv_cache_tokens"] % 16 == 0
    assert main(["size", "--params-b", "70", "--layers", "80", "--kv-heads", "8", "--head-dim", "128",
                 "--gpu-memory-gib", "40", "--tp", "4", "--max-model-len", "131072"]) == 1
    assert main(["size", "--model", "nobody/none", "--gpu", "H100"]) == 2
    assert "not in fleet/catalog/models.yaml" in capsys.readouterr().err


def test_size_from_a_config_json(tmp_path: Path, capsys) -> None:
    cfg = {"num_attention_heads": 32, "num_key_value_heads": 8, "hidden_size": 4096, "num_hidden_layers": 32,
           "intermediate_size": 14336, "vocab_size": 128256, "max_position_embeddings": 131072, "torch_dtype": "bfloat16"}
    path = write(tmp_path / "config.json", json.dumps(cfg))
    assert main(["size", "--config-json", str(path), "--gpu", "H100", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["kv_bytes_per_token"] == 131072 and doc["weights_gib_per_gpu"] == pytest.approx(14.96, rel=0.01)


def test_calibration_against_recorded_startup_logs() -> None:
    s = summary(checks())
    assert s["records"] >= 20
    assert s["weights"]["median_pct"] <= 5
    assert s["kv_tokens_from_memory"]["median_pct"] <= 1
    assert s["kv_v1_dense"]["n"] >= 5 and s["kv_v1_dense"]["median_pct"] <= 10
    assert s["verdicts"]["right"] == s["verdicts"]["n"] >= 15


def test_activation_is_the_sampler_peak_before_vllm_0_26_and_a100_keeps_small_batches() -> None:
    # vLLM 0.11 printed 4.76 GiB peak activation for Llama-3.1-8B on H100 (1024 dummy requests × 128,256 logits).
    h100 = Settings(gpu_memory_gib=79.18, gpu_model="H100", engine_profile="v1-native-sampler")
    assert default_batched_tokens(h100) == (8192, 1024)
    assert activation_gib(LLAMA8, h100) == pytest.approx(4.76, rel=0.05)
    # A100 80GB stays on the 2048/256 defaults whatever its memory; B200-class GPUs get 16384/1024.
    assert default_batched_tokens(Settings(gpu_memory_gib=79.15, gpu_model="A100-80GB")) == (2048, 256)
    assert default_batched_tokens(Settings(gpu_memory_gib=178)) == (16384, 1024)
    # Tensor parallelism splits the forward pass, not the gathered logits; pooling models do not sample.
    tp4 = Settings(gpu_memory_gib=79.18, tensor_parallel_size=4, engine_profile="v1-native-sampler")
    assert activation_gib(LLAMA8, tp4) == activation_gib(LLAMA8, h100)
    assert activation_gib(CATALOG["BAAI/bge-m3"], h100) < 1


def test_from_vllm_0_26_the_peak_is_the_forward_pass_and_graphs_sit_outside_the_budget() -> None:
    """The H200 runs (calibration.yaml, h200-*): 1.78 GiB peak for Llama-3.1-8B at 16,384 batched tokens whatever
    max_num_seqs, 0.24 GiB at 2,048; CUDA graphs 0.59 GiB (51 sizes) and 0.22 GiB (19 sizes), not taken from the
    KV cache; non-torch 0.22 GiB."""
    h200 = Settings(gpu_memory_gib=139.8, gpu_model="H200", max_num_batched_tokens=16384, max_num_seqs=256)
    assert engine_profile_for("0.33.0") == engine_profile_for("0.26.0") == "v0.26" == h200.engine_profile
    assert engine_profile_for("0.11.2") == "v1-native-sampler"
    assert activation_gib(LLAMA8, h200) == pytest.approx(1.78, abs=0.1)
    assert activation_gib(LLAMA8, replace(h200, max_num_seqs=1024)) == activation_gib(LLAMA8, h200)
    assert activation_gib(LLAMA8, replace(h200, max_num_batched_tokens=2048)) == pytest.approx(0.24, abs=0.05)
    result = size(LLAMA8, replace(h200, max_model_len=8192))
    assert result.cuda_graph_gib == pytest.approx(0.59, abs=0.05) and result.non_torch_gib == 0.22
    assert result.kv_cache_gib == pytest.approx(0.9 * 139.8 - result.weights_gib_per_gpu - result.activation_gib - 0.22)
    assert size(LLAMA8, replace(h200, max_num_seqs=64)).cuda_graph_gib == pytest.approx(0.22, abs=0.03)
    assert size(LLAMA8, replace(h200, enforce_eager=True)).cuda_graph_gib == 0
    assert size(LLAMA8, Settings(gpu_memory_gib=79.18, engine_profile="v0")).cuda_graph_gib == 0
    # Graphs captured after the KV cache fills the budget must fit in what the budget leaves.
    squeezed = size(LLAMA8, replace(h200, gpu_memory_utilization=0.999, max_model_len=8192))
    assert not squeezed.fits and "CUDA graphs" in squeezed.reason and "enforce_eager" in squeezed.reason


def test_the_sampler_in_the_startup_peak_follows_the_release_and_the_environment(capsys) -> None:
    """Before 0.17 the native sampler sorted the vocabulary (38.5 B per dummy request × vocabulary entry, fitted on
    0.11 logs); FlashInfer's takes 14.5 (on an H200 its step took 12.0 B above the 16-bit logits where the sort took
    36.0: scripts/h200_sampler_peak.py). From 0.17 the native top-k/top-p runs in place (Triton) and both take 14.5;
    from 0.26 the profile does not sample with top-k/top-p at all, and the H200 runs in pairs left equal memory."""
    assert [engine_profile_for(v) for v in ("0.11.0", "0.16.0", "0.17.0", "0.25.1", "0.26.0")] == \
        ["v1-native-sampler", "v1-native-sampler", "v1-triton-sampler", "v1-triton-sampler", "v0.26"]
    oss = CATALOG["openai/gpt-oss-120b"]
    h100 = Settings(gpu_memory_gib=79.19, gpu_model="H100", max_model_len=8192, engine_profile="v1-native-sampler")
    logits = 1024 * 201088
    assert activation_gib(oss, h100) == pytest.approx(logits * 38.5 / GIB)
    assert activation_gib(oss, replace(h100, flashinfer_sampler=True)) == pytest.approx(logits * 14.5 / GIB)
    assert activation_gib(oss, replace(h100, flashinfer_sampler=False)) == activation_gib(oss, h100)
    for profile in ("v1-triton-sampler", "v0.26"):
        s = replace(h100, engine_profile=profile)
        assert activation_gib(oss, replace(s, flashinfer_sampler=True)) == activation_gib(oss, replace(s, flashinfer_sampler=False))
    assert activation_gib(oss, replace(h100, engine_profile="v1-triton-sampler")) == pytest.approx(logits * 14.5 / GIB)

    def peak(*extra: str) -> float:
        assert main(["size", "--model", "openai/gpt-oss-120b", "--gpu", "H100", "--max-model-len", "8192", "--json", *extra]) in (0, 1)
        return json.loads(capsys.readouterr().out)["activation_gib"]

    # the FlashInfer constant is the fitted native one less the measured difference of the two steps
    steps = json.loads((CATALOG_DIR / "sampler_steps.json").read_text())["shapes"]
    for row in steps:
        assert 38.5 - row["native_bytes_per_logit"] + row["flashinfer_logits_bytes_per_logit"] == pytest.approx(14.5, abs=0.1)
        assert row["flashinfer_probs_bytes_per_logit"] < row["flashinfer_logits_bytes_per_logit"]   # older releases' form
    assert peak("--vllm-version", "0.11.0", "--sampler", "flashinfer") < peak("--vllm-version", "0.11.0") / 2
    assert peak("--sampler", "native") == peak("--sampler", "flashinfer") == peak()


def test_fewer_sequences_in_the_startup_profile_is_a_fix() -> None:
    # gpt-oss-120b on one H100: 64 GiB of weights and a 7.4 GiB sampler peak for 1024 dummy requests leave no KV cache.
    oss = CATALOG["openai/gpt-oss-120b"]
    h100 = Settings(gpu_memory_gib=79.19, gpu_model="H100", max_model_len=131072, engine_profile="v1-native-sampler")
    result = size(oss, h100)
    assert not result.fits
    assert "lower max_num_seqs to 256 (the startup profile samples that many requests over the vocabulary)" in result.fixes
    assert size(oss, replace(h100, max_num_seqs=256)).fits


def test_the_h200_runs_meet_the_goals_on_records_no_constant_was_fitted_on() -> None:
    from fleet.capacity.memory_calibration import measured_summary

    items = checks()
    for held_out in (False, True):
        m = measured_summary(items, held_out_only=held_out)
        assert m["n"] >= (10 if held_out else 15)
        assert m["overhead_gib"] <= 0.3 < m["overhead_fixed_1_5_gib"]
        assert m["kv_tokens_pct"] <= 1 and m["weights_pct"] <= 2 and m["startup_pct"] <= 30
        right, total = m["verdicts"].split("/")
        assert right == total


def test_either_sampler_leaves_the_same_numbers_on_vllm_0_26() -> None:
    """The H200 runs in pairs, FlashInfer's sampler on (`-fi`, 0.26's default) and off: the startup profile, the KV
    cache and what a started server leaves for new allocations agree, so the 0.26 profile is one for both samplers.
    Every H200 run states whether FlashInfer was installed and sampled, and the model runner vLLM chose where it logged
    it: V2 for dense models, V1 for MoE."""
    from fleet.capacity.memory_calibration import record_arch, records, started_room_gib

    h200 = {r["id"]: r for r in records() if r["id"].startswith("h200-")}
    assert all({"flashinfer_installed", "flashinfer_sampler"} <= set(r["settings"]) for r in h200.values())
    pairs = [(h200[i.removesuffix("-fi")], r) for i, r in h200.items() if i.endswith("-fi") and i.removesuffix("-fi") in h200]
    assert len(pairs) >= 4 and all(fi["settings"]["flashinfer_sampler"] and not native["settings"]["flashinfer_sampler"]
                                   for native, fi in pairs)
    for native, fi in pairs:
        for key in ("activation_gib", "non_torch_gib", "kv_cache_gib", "kv_cache_tokens", "fits"):
            assert native["observed"][key] == fi["observed"][key], (fi["id"], key)
        rooms = started_room_gib(native["observed"]), started_room_gib(fi["observed"])
        if None not in rooms:
            assert abs(rooms[0] - rooms[1]) <= 0.15, fi["id"]
    runners = {(r["observed"]["runner"], record_arch(r).family == "moe") for r in h200.values() if "runner" in r["observed"]}
    assert runners == {("v2", False), ("v1", True)}


def test_size_speaks_the_engines_language(capsys) -> None:
    base = ["size", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--max-model-len", "8192", "--max-num-batched-tokens",
            "16384", "--max-num-seqs", "256", "--json"]

    def sized(*extra: str) -> dict:
        assert main([*base, *extra]) == 0
        return json.loads(capsys.readouterr().out)

    # The card's defaults with the memory torch reports: vLLM 0.26.0 printed 891,392 tokens for this on an H200.
    h200 = sized("--gpu", "H200", "--gpu-memory-gib", "139.8")
    assert h200["gpu_memory_gib"] == 139.8 and abs(h200["kv_cache_tokens"] - 891392) / 891392 < 0.01
    assert h200["cuda_graph_gib"] > 0 and sized("--gpu", "H200", "--gpu-memory-gib", "139.8", "--enforce-eager")["cuda_graph_gib"] == 0
    # An older release samples 256 dummy requests in its startup profile: a bigger peak, fewer tokens.
    old = sized("--gpu", "H200", "--gpu-memory-gib", "139.8", "--vllm-version", "0.11.2")
    assert old["activation_gib"] == h200["activation_gib"] and old["non_torch_gib"] < h200["non_torch_gib"]
    old_many = sized("--gpu", "H200", "--vllm-version", "0.11.2", "--max-num-seqs", "1024", "--max-num-batched-tokens", "2048")
    new_many = sized("--gpu", "H200", "--max-num-seqs", "1024", "--max-num-batched-tokens", "2048")
    assert old_many["activation_gib"] > 4 > 1 > new_many["activation_gib"]
    assert main(["size", "--model", "meta-llama/Llama-3.1-8B-Instruct"]) == 2
    assert "give --gpu" in capsys.readouterr().err
    # vLLM refuses to start with a token budget below max_num_seqs (vllm@v0.34.0:vllm/config/scheduler.py): not sized
    assert main(["size", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "L40S", "--max-num-seqs", "4096"]) == 2
    assert "the default max_num_batched_tokens on this GPU (2,048) is below max_num_seqs 4,096" in capsys.readouterr().err


def test_recommend_lists_every_shape_cheapest_first_and_why_the_rest_fail(capsys) -> None:
    argv = ["recommend", "--model", "meta-llama/Llama-3.1-70B-Instruct", "--max-model-len", "32768", "--concurrency", "64",
            "--region", "us-east-1", "--json"]
    assert main(argv) == 0
    options = json.loads(capsys.readouterr().out)["options"]
    keys = {"instance_type", "gpu", "tp", "pp", "replicas", "kv_cache_tokens", "max_concurrency", "usd_per_hour", "fits", "reason"}
    assert all(keys <= set(o) for o in options)
    fitting = [o for o in options if o["fits"]]
    priced = [o["usd_per_hour"] for o in fitting if o["usd_per_hour"] is not None]
    assert fitting and priced == sorted(priced) and options[: len(fitting)] == fitting
    for o in fitting:  # enough replicas for the concurrency, each re-checked by the fit check
        assert o["replicas"] * (min(o["max_concurrency"], 1024) + 0.005) >= 64   # max_concurrency is shown to 2 decimals
    one_l4 = next(o for o in options if o["instance_type"] == "g6.xlarge" and o["tp"] == 1)
    assert not one_l4["fits"] and one_l4["reason"].startswith("weights need")
    assert any(not o["fits"] and "does not divide the 64 attention heads" not in o["reason"] for o in options)
    # a 405B at 128k needs two 8-GPU nodes per replica on anything but H200
    big = ["recommend", "--model", "meta-llama/Llama-3.1-405B-Instruct", "--max-model-len", "131072", "--concurrency", "8", "--json"]
    assert main(big) == 0
    cheapest_h100 = next(o for o in json.loads(capsys.readouterr().out)["options"] if o["gpu"] == "H100" and o["fits"])
    assert (cheapest_h100["tp"], cheapest_h100["pp"]) == (8, 2)
    assert main(["recommend", "--model", "meta-llama/Llama-3.1-405B-Instruct", "--max-model-len", "131072",
                 "--concurrency", "1", "--quantization", "fp8", "--region", "mars-1"]) == 0
    assert "no price in mars-1" in capsys.readouterr().out
    assert main(["recommend", "--model", "nobody/none", "--max-model-len", "1", "--concurrency", "1"]) == 2


def test_validate_names_a_cheaper_pool_that_serves_the_same_context_and_concurrency(project: Path, capsys) -> None:
    from tests.conftest import edit

    team = project / "stacks" / "teams" / "search.yaml"
    edit(team, "      prod:\n        pool: l4\n        replicas: 2", "      prod:\n        pool: l40s\n        replicas: 2")
    assert main(["--root", str(project), "validate", "--stack", "prod"]) == 0
    err = capsys.readouterr().err
    assert ("warning: stacks/teams/search.yaml:17 models[1].pool: pool l4 (L4, g6.2xlarge) fits it (an embedding model keeps no "
            "KV cache) for $0.98/h per replica instead of $2.62/h on l40s (advisory; pools stay as the team chose)") in err
    # qwen-3b on l40s serves 58 sequences of 16k per replica; an L4 holds fewer: no note for it.
    edit(team, "      prod:\n        pool: l4\n        autoscaling", "      prod:\n        pool: l40s\n        autoscaling")
    assert main(["--root", str(project), "validate", "--stack", "prod"]) == 0
    assert "models[0].pool" not in capsys.readouterr().err


def test_gguf_checkpoints_are_sized_by_their_type_and_unknown_methods_are_refused(capsys) -> None:
    # bartowski/Meta-Llama-3.1-8B-Instruct-GGUF: Q8_0 8.54 GB, Q6_K 6.60 GB, Q5_K_M 5.73 GB, Q4_K_M 4.92 GB.
    for kind, file_gb in (("Q8_0", 8.54), ("Q6_K", 6.60), ("Q5_K_M", 5.73), ("Q4_K_M", 4.92)):
        weights = weights_gib_per_gpu(LLAMA8, Settings(gpu_memory_gib=22, quantization=f"gguf:{kind}"))
        assert weights == pytest.approx(file_gb * 1e9 / 2**30, rel=0.03), kind
    with pytest.raises(ValueError, match="is not one the fit check knows"):
        Settings(gpu_memory_gib=22, quantization="gguf")
    with pytest.raises(SystemExit):
        main(["size", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "L4", "--quantization", "int3"])
    assert "invalid choice: 'int3'" in capsys.readouterr().err


def test_leave_one_source_out_refits_every_constant_and_still_holds() -> None:
    from fleet.capacity.memory_calibration import fit_profiles, leave_one_source_out, measured_summary, records

    refit = fit_profiles(records())   # on everything: close to the shipped constants
    assert refit["v1-native-sampler"].sampler_bytes_per_logit == pytest.approx(38.5, rel=0.05)
    assert refit["v0.26"].non_torch_gib == pytest.approx(0.22) and refit["v0.26"].moe_hidden_factor == pytest.approx(10, rel=0.1)
    loso = leave_one_source_out()
    s, m = summary(loso), measured_summary(loso)
    assert s["kv_v1_dense"]["median_pct"] <= 5 and s["weights"]["median_pct"] <= 2
    assert s["verdicts"]["right"] == s["verdicts"]["n"]
    assert m["overhead_gib"] <= 0.3 and m["kv_tokens_pct"] <= 1


def test_expert_parallelism_splits_the_routed_experts_and_data_parallel_ranks_copy_the_rest(capsys) -> None:
    from fleet.capacity.memory import expert_fraction

    v3 = CATALOG["deepseek-ai/DeepSeek-V3"]
    # 671B total, 37B active, 8 of 256 experts: 654B in routed experts (97.5 %)
    assert expert_fraction(v3) == pytest.approx((671.03 - 37.45) / (1 - 8 / 256) / 671.03, rel=1e-6)
    one = Settings(gpu_memory_gib=139.8, max_model_len=32768)
    whole = weights_gib_per_gpu(v3, one)
    dp8 = Settings(gpu_memory_gib=139.8, max_model_len=32768, data_parallel_size=8)
    assert weights_gib_per_gpu(v3, dp8) == whole   # data parallel copies the model
    ep8 = Settings(gpu_memory_gib=139.8, max_model_len=32768, data_parallel_size=8, expert_parallel=True)
    f = expert_fraction(v3)
    rope = v3.rope_cache_gib                        # every GPU keeps the whole rotary cache
    assert weights_gib_per_gpu(v3, ep8) == pytest.approx((whole - rope) * ((1 - f) + f / 8) + rope)
    assert not size(v3, dp8).fits and size(v3, ep8).fits
    assert expert_fraction(LLAMA8) == 0
    assert main(["size", "--model", "deepseek-ai/DeepSeek-V3", "--gpu", "H200", "--max-model-len", "32768", "--dp", "8",
                 "--enable-expert-parallel", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["fits"] is True


def test_a_method_the_card_cannot_run_does_not_fit() -> None:
    oss = CATALOG["openai/gpt-oss-20b"]           # an MXFP4 checkpoint: vLLM 0.26 needs compute capability 8.0
    on_t4 = size(oss, Settings(gpu_memory_gib=14.58, gpu_model="T4", max_model_len=8192))
    assert not on_t4.fits and on_t4.reason.startswith("mxfp4 needs a GPU of compute capability 8.0 or newer and the T4 is 7.5")
    on_l4 = size(oss, Settings(gpu_memory_gib=22.05, gpu_model="L4", max_model_len=8192))
    assert on_l4.fits and on_l4.weights_gib_per_gpu < 14      # weight-only Marlin keeps the 4-bit size on Ada
    assert size(LLAMA8, Settings(gpu_memory_gib=22.05, gpu_model="L4", quantization="modelopt", max_model_len=4096)).fits
    assert not size(LLAMA8, Settings(gpu_memory_gib=22.3, gpu_model="A10G", quantization="modelopt", max_model_len=4096)).fits


def test_a_vision_model_counts_its_encoders_pass() -> None:
    """A vision model encodes up to max_num_batched_tokens worth of its largest images in one step. Before 0.26 vLLM's
    startup profile ran that pass (it is in the activation peak); 0.26's runner leaves it out (the H200 runs: Gemma 3
    with up to 64 images peaked at 1.19 GiB, its text-only self at 1.41), so it must fit in what the budget leaves."""
    gemma = model_catalog()["google/gemma-3-4b-it"]
    small = Settings(gpu_memory_gib=15.0, gpus_per_node=1, max_model_len=8192, max_num_batched_tokens=16384,
                     engine_profile="v1-native-sampler")
    result = size(gemma, small)
    assert not result.fits and result.activation_gib > 6
    assert "activations (6.5 GiB, the vision encoder's profiling pass over 64 images)" in result.reason
    assert "lower max_num_batched_tokens to 8192 (a step encodes up to that many tokens of images)" in result.fixes
    assert size(gemma, replace(small, max_num_batched_tokens=8192)).fits
    text_only = size(gemma, replace(small, mm_items_per_prompt=0))          # limit_per_prompt {image: 0}
    assert text_only.fits and text_only.activation_gib < result.activation_gib - 4   # the sampler step, no encoder
    # fewer images per prompt only help where max_num_seqs prompts could not fill the budget
    assert size(gemma, replace(small, max_num_seqs=4, mm_items_per_prompt=2)).activation_gib < 2
    # 0.26: not in the profile, so not in the activations; but the pass needs the memory the running server leaves
    latest = replace(small, engine_profile="v0.26", gpu_memory_gib=44.4)
    unbudgeted = size(gemma, latest)
    assert unbudgeted.activation_gib < 1.5 and not unbudgeted.fits
    assert unbudgeted.reason.startswith("the vision encoder's pass over 64 images needs 6.45 GiB, which this vLLM release "
                                        "leaves out of its budget, and the running server leaves 4.17 GiB of 44.4 GiB")
    assert unbudgeted.fixes[0] == "lower max_num_batched_tokens to 8192 (a step encodes up to that many tokens of images)"
    assert "lower gpu_memory_utilization to 0.8 (leaves room for what runs outside the budget)" in unbudgeted.fixes
    assert size(gemma, replace(latest, max_num_batched_tokens=8192)).fits
    assert size(gemma, replace(latest, gpu_memory_utilization=0.8)).fits
    assert size(gemma, replace(latest, mm_items_per_prompt=0)).fits


def test_the_encoder_pass_must_fit_in_what_the_started_server_leaves_as_measured() -> None:
    """Gemma 3 4B on an H200 with vLLM 0.26, 16,384 batched tokens, up to 4 images a prompt: the first step of 62
    images took 6.53 GiB; at 0.93 the started server left 8.56 GiB (native sampler) and 8.69 (FlashInfer's) of free
    memory and cached blocks, and served; at 0.95 it ran out of memory."""
    from fleet.capacity.memory import serving_reserve_gib, serving_room_gib

    gemma = CATALOG["google/gemma-3-4b-it"]
    h200 = Settings(gpu_memory_gib=139.8, gpu_model="H200", max_model_len=8192, max_num_batched_tokens=16384,
                    mm_items_per_prompt=4)
    # 0.87 GiB and 4.1 B per dummy request × vocabulary entry held outside the budget once started
    assert serving_reserve_gib(gemma, h200) == pytest.approx(0.87 + 1024 * 262208 * 4.1 / GIB)
    for utilization, room_measured, serves in ((0.9, None, True), (0.93, 8.62, True), (0.95, None, False)):
        s = replace(h200, gpu_memory_utilization=utilization)
        result = size(gemma, s)
        room = serving_room_gib(gemma, s, result.activation_gib, result.non_torch_gib, result.cuda_graph_gib)
        if room_measured is not None:
            assert room == pytest.approx(room_measured, abs=0.15)
        assert result.fits is serves, result.reason
    failing = size(gemma, replace(h200, gpu_memory_utilization=0.95))
    assert failing.reason.startswith("the vision encoder's pass over 64 images needs 6.45 GiB")
    assert "lower gpu_memory_utilization to 0.9 (leaves room for what runs outside the budget)" in failing.fixes
    # text only, or a text model, never meets the check
    assert size(gemma, replace(h200, gpu_memory_utilization=0.95, mm_items_per_prompt=0)).fits
    assert size(LLAMA8, replace(h200, gpu_memory_utilization=0.97)).fits
    assert "lower max_num_seqs to 512 (the running server keeps the sampler's state per request over the vocabulary)" \
        in failing.fixes


def test_a_started_moe_server_keeps_its_fused_experts_workspace() -> None:
    """Qwen3-30B-A3B on an H200 (vLLM 0.26, eager, 256 sequences, 16,384 batched tokens): the started server left
    13.97 GiB of free memory and cached blocks, 0.9 GiB less than a dense model's reserve gives — the Triton experts'
    workspace for every token and routed expert, which 0.26 keeps once allocated."""
    from fleet.capacity.memory import moe_workspace_gib, serving_room_gib

    moe = CATALOG["Qwen/Qwen3-30B-A3B"]
    s = Settings(gpu_memory_gib=139.8, gpu_model="H200", max_model_len=8192, max_num_batched_tokens=16384, max_num_seqs=256,
                 enforce_eager=True)
    assert moe_workspace_gib(moe, s) == pytest.approx(16384 * 8 * (2048 + 2048) * 2 / GIB)
    result = size(moe, s)
    room = serving_room_gib(moe, s, result.activation_gib, result.non_torch_gib, result.cuda_graph_gib)
    assert room == pytest.approx(13.97, abs=0.15)
    # TP splits the experts' gate/up output, not the hidden size; dense models and older releases keep none
    assert moe_workspace_gib(moe, replace(s, tensor_parallel_size=2)) == pytest.approx(1.0)
    assert moe_workspace_gib(LLAMA8, s) == 0.0
    assert moe_workspace_gib(moe, replace(s, engine_profile="v1-native-sampler")) == 0.0


def test_a_checkpoints_quantization_recipe_sizes_its_weights(tmp_path: Path) -> None:
    """llm-compressor recipes on Llama-3.1-8B, measured on H200 (vLLM 0.26, dummy weights): FP8 with lm_head kept
    16-bit loaded 8.55 GiB, with every attention layer kept too 9.78, W4A16 5.36."""
    cfg = {"architectures": ["LlamaForCausalLM"], "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
           "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 128256,
           "max_position_embeddings": 131072, "torch_dtype": "bfloat16",
           "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "original_max_position_embeddings": 8192}}

    def weights(qcfg: dict | None) -> float:
        (tmp_path / "config.json").write_text(json.dumps({**cfg, **({"quantization_config": qcfg} if qcfg else {})}))
        arch = arch_from_config_json(tmp_path / "config.json", "llama")
        return weights_gib_per_gpu(arch, Settings(gpu_memory_gib=139.8))

    def ct(bits: int, kind: str, ignore: list[str]) -> dict:
        return {"quant_method": "compressed-tensors", "ignore": ignore,
                "config_groups": {"group_0": {"targets": ["Linear"], "weights": {"num_bits": bits, "type": kind}}}}

    assert weights(None) == pytest.approx(14.99, abs=0.05)
    assert weights(ct(8, "float", ["lm_head"])) == pytest.approx(8.55, rel=0.02)
    assert weights(ct(8, "float", ["lm_head", "re:.*self_attn.*"])) == pytest.approx(9.78, rel=0.02)
    assert weights(ct(4, "int", ["lm_head"])) == pytest.approx(5.36, rel=0.02)
    # the other ways recipes name layers: fp8's module names, ModelOpt's wildcards, AWQ's name parts
    attn16 = weights(ct(8, "float", ["lm_head", "re:.*self_attn.*"]))
    assert weights({"quant_method": "fp8", "modules_to_not_convert": [f"model.layers.{i}.self_attn" for i in range(32)]}) \
        == pytest.approx(attn16, rel=0.005)
    assert weights({"quant_method": "modelopt", "quant_algo": "FP8", "exclude_modules": ["lm_head", "*self_attn*"]}) \
        == pytest.approx(attn16, rel=0.005)
    assert weights({"quant_method": "awq", "bits": 4, "modules_to_not_convert": ["self_attn"]}) > weights(
        {"quant_method": "awq", "bits": 4})
    nvfp4 = weights({"quant_method": "modelopt", "quant_algo": "NVFP4"})   # 4 bits and an FP8 scale per 16
    assert weights(ct(4, "int", ["lm_head"])) < nvfp4 < 5.7
    # a method the fit check cannot size is refused, never sized as 16-bit
    with pytest.raises(ValueError, match=r"quantization_config.quant_method 'hqq' is not a method the fit check can size"):
        weights({"quant_method": "hqq"})
    with pytest.raises(ValueError, match="is not a regular expression"):
        weights(ct(8, "float", ["re:("]))


def test_config_json_gives_the_vision_tower_and_rotary_caches(tmp_path: Path) -> None:
    cfg = {"architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3", "mm_tokens_per_image": 256,
           "text_config": {"num_attention_heads": 8, "hidden_size": 2560, "num_hidden_layers": 34, "num_key_value_heads": 4,
                           "head_dim": 256, "intermediate_size": 10240, "vocab_size": 262208, "tie_word_embeddings": True,
                           "max_position_embeddings": 131072, "rope_scaling": {"rope_type": "linear", "factor": 8.0},
                           "rope_local_base_freq": 10000.0},
           "vision_config": {"hidden_size": 1152, "image_size": 896, "intermediate_size": 4304, "patch_size": 14,
                             "num_hidden_layers": 27}}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    arch = arch_from_config_json(tmp_path / "config.json")
    catalog = CATALOG["google/gemma-3-4b-it"]
    assert arch.model_type == catalog.model_type == "gemma3"   # vLLM's float16 rule is keyed on it (model_rules)
    assert arch.vision_params_b == pytest.approx(catalog.vision_params_b, abs=0.001)
    assert arch.rope_cache_positions == catalog.rope_cache_positions == 131072 * 8 + 131072
    # measured on H200: 8.61 GiB with the tower, 7.82 without it ({image: 0}); 0.56 GiB of it rotary caches
    h200 = Settings(gpu_memory_gib=139.8)
    assert catalog.rope_cache_gib == pytest.approx(0.5625)
    assert weights_gib_per_gpu(catalog, h200) == pytest.approx(8.61, rel=0.01)
    assert weights_gib_per_gpu(catalog, replace(h200, mm_items_per_prompt=0)) == pytest.approx(7.82, rel=0.01)


def test_a_vision_tower_is_read_from_config_json(tmp_path: Path) -> None:
    cfg = {"architectures": ["Gemma3ForConditionalGeneration"], "mm_tokens_per_image": 256,
           "text_config": {"num_attention_heads": 8, "hidden_size": 2560, "num_hidden_layers": 34, "num_key_value_heads": 4,
                           "head_dim": 256, "intermediate_size": 10240, "vocab_size": 262208},
           "vision_config": {"hidden_size": 1152, "image_size": 896, "intermediate_size": 4304, "patch_size": 14}}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    arch = arch_from_config_json(tmp_path / "config.json")
    assert (arch.mm_tokens_per_item, arch.vision_patches_per_item, arch.vision_hidden_size) == (256, 4096, 1152)
    catalog = model_catalog()["google/gemma-3-4b-it"]
    assert (catalog.mm_tokens_per_item, catalog.vision_patches_per_item, catalog.vision_intermediate_size) == (256, 4096, 4304)
