"""The performance model's parts: the stand-in tokenizer, the step model, the scheduler simulation and the fit."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from fleet.capacity import standin_tokenizer
from fleet.capacity.calibrate import FITTED, Run, fit, grid_points
from fleet.capacity.memory import Settings, model_catalog
from fleet.capacity.perf import StepConstants, gpu_models, model_cost
from fleet.capacity.simulate import SAMPLES, Engine, Load, percentile, simulate, typical

LLAMA = "meta-llama/Llama-3.1-8B-Instruct"


@pytest.mark.parametrize("vocab", [128256, 151936])
def test_standin_tokenizer_round_trips_every_prompt(vocab: int) -> None:
    tok = standin_tokenizer.build(vocab)
    assert tok.get_vocab_size() == vocab
    rng = random.Random(vocab)
    for n in (1, 2, 17, 1024, 4096):
        ids = [rng.randrange(vocab - 1) for _ in range(n)]
        assert standin_tokenizer.round_trips(tok, ids), n
    # the edges of the vocabulary too, and the benchmark's sequential ids (offset + index + arange(len) % vocab)
    assert standin_tokenizer.round_trips(tok, [0, vocab - 2, 1, vocab - 3])
    assert standin_tokenizer.round_trips(tok, [(7 + i) % (vocab - 1) for i in range(3000)])


def test_standin_tokenizer_files_load_with_the_tokenizers_library(tmp_path) -> None:
    from tokenizers import Tokenizer

    standin_tokenizer.write(tmp_path, 1000)
    tok = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    assert tok.encode("t5 t999 t0", add_special_tokens=False).ids == [5, 999, 0]   # t999 is not a word: unknown
    assert tok.token_to_id(standin_tokenizer.UNKNOWN) == 999


def test_percentile_interpolates_as_numpy() -> None:
    xs = [1.0, 2.0, 3.0, 4.0]
    assert percentile(xs, 50) == 2.5          # numpy.percentile([1, 2, 3, 4], 50)
    assert percentile(xs, 95) == pytest.approx(3.85)
    assert percentile([5.0], 99) == 5.0


def _engine(kv_tokens: int = 400_000, constants: StepConstants | None = None) -> Engine:
    arch = model_catalog()[LLAMA]
    s = Settings(gpu_memory_gib=80, gpus_per_node=1, max_model_len=4096, max_num_seqs=256, max_num_batched_tokens=8192,
                 gpu_model="H100")
    return Engine(model_cost(arch, s, gpu_models()["H100"], constants), 256, 8192, kv_tokens)


def test_step_model_decode_is_memory_bound_and_prefill_compute_bound() -> None:
    cost = _engine().cost
    one, many = cost.step_seconds(1, 1024), cost.step_seconds(64, 64 * 1024)
    assert many < 4 * one                      # decoding 64 requests costs far less than 64 single steps
    long_prefill = cost.step_seconds(0, 0, 8192, 8192 * 4096, 8192, sampled=1)
    assert long_prefill > 10 * one             # a full chunk is compute bound


def test_simulation_single_stream_is_one_prefill_then_steps() -> None:
    eng = _engine()
    o = simulate(eng, Load(1024, 64, concurrency=1, num_prompts=3))
    prefill = eng.cost.step_seconds(0, 0, 1024, 1024 * 512, 1024, sampled=1)
    assert percentile(o.ttft_s, 50) == pytest.approx(prefill + eng.cost.constants.http_s)
    step = eng.cost.step_seconds(1, 1024 + 32)
    assert percentile(o.itl_s, 50) == pytest.approx(step, rel=0.05)
    assert o.output_tokens == 3 * 64 and o.preemptions == 0


def test_scheduling_is_asynchronous_a_request_arriving_mid_step_waits_for_the_step_after() -> None:
    # one long stream decodes; a second request reaches the scheduler halfway through a step: the next step was
    # planned when this one started, so its prefill runs in the step after that (vLLM's async scheduling)
    eng = _engine()
    decode = eng.cost.step_seconds(1, 1024 + 200)
    o = simulate(eng, Load(1024, 400, request_rate=1.0, num_prompts=2, seed=3))
    prefill_with_decode = eng.cost.step_seconds(1, 1024 + 200, 1024, 1024 * 512, 1024, sampled=2)
    second = max(o.ttft_s)
    # its TTFT holds the rest of the running step, one whole decode step and its own step: more than one step's wait
    assert second > prefill_with_decode + decode + eng.cost.constants.http_s - 1e-9
    assert second < prefill_with_decode + 2 * decode + eng.cost.constants.http_s + 1e-6


def test_a_moe_s_routed_experts_run_at_their_own_efficiency() -> None:
    arch = model_catalog()["Qwen/Qwen3-30B-A3B"]
    s = Settings(gpu_memory_gib=80, gpus_per_node=1, max_model_len=4096, gpu_model="H100")
    fast = model_cost(arch, s, gpu_models()["H100"], StepConstants(e_compute=0.6, e_expert=0.6))
    slow = model_cost(arch, s, gpu_models()["H100"], StepConstants(e_compute=0.6, e_expert=0.15))
    unset = model_cost(arch, s, gpu_models()["H100"], StepConstants(e_compute=0.6, e_expert=0.0))
    prefill = (0, 0, 8192, 8192 * 4096, 8192, 1)
    assert 0 < slow.expert_flops_per_token < slow.linear_flops_per_token
    assert slow.step_seconds(*prefill) > 2 * fast.step_seconds(*prefill)   # a compute-bound chunk pays for it
    assert unset.step_seconds(*prefill) == pytest.approx(fast.step_seconds(*prefill))   # 0: as dense GEMMs
    # a dense model has no routed experts: e_expert changes nothing
    dense = model_catalog()[LLAMA]
    a = model_cost(dense, s, gpu_models()["H100"], StepConstants(e_expert=0.1))
    b = model_cost(dense, s, gpu_models()["H100"], StepConstants(e_expert=0.9))
    assert a.expert_flops_per_token == 0 and a.step_seconds(*prefill) == b.step_seconds(*prefill)


def test_a_step_outside_a_full_cuda_graph_waits_for_the_host_to_launch_it() -> None:
    small = model_catalog()["Qwen/Qwen2.5-0.5B-Instruct"]
    s = Settings(gpu_memory_gib=80, gpus_per_node=1, max_model_len=4096, max_num_seqs=256, max_num_batched_tokens=8192,
                 gpu_model="H100")
    k = StepConstants(piecewise_layer_s=2e-4, eager_layer_s=1e-3)
    cost = model_cost(small, s, gpu_models()["H100"], k)
    assert cost.graph_max_tokens == 512                     # min(2 * max_num_seqs, 512), as vLLM 0.26 logs it
    assert cost.launch_seconds(256, 0) == 0                 # a decode step replays one FULL graph
    assert cost.launch_seconds(256, 200) == pytest.approx(2e-4 * small.layers)   # piecewise: attention launched per layer
    assert cost.launch_seconds(513, 513) == pytest.approx(1e-3 * small.layers)   # beyond the largest graph: eager
    # a small model's prompt is set by the host: one token past the largest graph costs more than doubling within it
    within, past = (cost.step_seconds(0, 0, n, n * n / 2, n, 1) for n in (512, 513))
    assert past > 1.5 * within and past == pytest.approx(k.fixed_s + k.per_layer_s * small.layers + 513 * small.layers
                                                         * k.per_token_layer_s + 1e-3 * small.layers)
    # a large model's full chunk keeps the GPU busy for longer than the host needs: the launches hide
    big = model_cost(model_catalog()["Qwen/Qwen2.5-14B-Instruct"], s, gpu_models()["H100"], k)
    chunk = (0, 0, 8192, 8192 * 4096, 8192, 1)
    assert big.step_seconds(*chunk) == pytest.approx(model_cost(model_catalog()["Qwen/Qwen2.5-14B-Instruct"], s, gpu_models()["H100"],
                                                                replace(k, eager_layer_s=0.0)).step_seconds(*chunk))
    # fewer sequences, smaller graphs; enforce_eager captures none, so even a decode step is launched kernel by kernel
    assert model_cost(small, replace(s, max_num_seqs=64), gpu_models()["H100"], k).graph_max_tokens == 128
    eager = model_cost(small, replace(s, enforce_eager=True), gpu_models()["H100"], k)
    assert eager.graph_max_tokens == 0 and eager.launch_seconds(1, 0) == pytest.approx(1e-3 * small.layers)
    # a MoE layer launches more kernels (router, top-k, the fused experts): its own factor, 0 meaning as dense
    moe = model_catalog()["Qwen/Qwen3-30B-A3B"]
    assert model_cost(moe, s, gpu_models()["H100"], replace(k, moe_launch_factor=2.0)).launch_seconds(600, 600) == \
        pytest.approx(2 * model_cost(moe, s, gpu_models()["H100"], k).launch_seconds(600, 600))
    assert model_cost(small, s, gpu_models()["H100"], replace(k, moe_launch_factor=2.0)).launch_seconds(600, 600) == \
        pytest.approx(cost.launch_seconds(600, 600))      # a dense model has no MoE layers


def test_the_expert_efficiency_is_fitted_only_where_a_moe_was_measured() -> None:
    from fleet.capacity.calibrate import fitted_names, runs
    measured = list(runs())
    dense = [r for r in measured if not model_catalog()[r.model].experts]
    assert "e_expert" not in fitted_names(dense) and "moe_launch_factor" not in fitted_names(dense)
    assert {"e_expert", "moe_launch_factor"} <= set(fitted_names(measured))   # the catalog holds a measured MoE


def test_lengths_drawn_with_a_p95_have_that_mean_and_that_percentile() -> None:
    from fleet.capacity.lengths import MAX_P95_OVER_MEAN, lognormal_sigma
    ins, outs = Load(1000, 200, request_rate=1, input_p95=2500, output_p95=200, num_prompts=20_000, seed=4).lengths(20_000)
    assert sum(ins) / len(ins) == pytest.approx(1000, rel=0.03)
    assert percentile([float(x) for x in ins], 95) == pytest.approx(2500, rel=0.04)
    assert set(outs) == {200}                                   # p95 = mean: every output alike
    assert lognormal_sigma(10, 10) == 0
    assert pytest.approx(3.87, abs=0.01) == MAX_P95_OVER_MEAN
    with pytest.raises(ValueError, match="below the mean"):
        lognormal_sigma(10, 9)
    with pytest.raises(ValueError, match="fits no log-normal"):
        lognormal_sigma(10, 39)
    # cut to the context: no drawn request is longer than max_model_len
    ins, outs = Load(3000, 500, request_rate=1, input_p95=8000, output_p95=1500, max_model_len=4096).lengths(5000)
    assert max(i + o for i, o in zip(ins, outs, strict=True)) <= 4096 and min(outs) >= 1


def test_simulation_serves_each_request_its_own_lengths() -> None:
    eng = _engine()
    # a mean prompt well inside the largest CUDA graph (512 tokens), its tail well past it
    load = Load(384, 64, request_rate=4, num_prompts=300, input_p95=1400, output_p95=180, seed=2)
    o = simulate(eng, load)
    _, outs = load.lengths(300)
    assert o.output_tokens == sum(outs) and len(o.ttft_s) == 300
    fixed = simulate(eng, Load(384, 64, request_rate=4, num_prompts=300, seed=2))
    assert percentile(o.ttft_s, 95) > percentile(fixed.ttft_s, 95)     # long prompts make the tail
    assert percentile(o.e2e_s, 95) > 1.5 * percentile(fixed.e2e_s, 95)   # long outputs too


def test_simulation_load_raises_latency_and_throughput() -> None:
    eng = _engine()
    low = simulate(eng, Load(1024, 128, request_rate=2, num_prompts=60))
    high = simulate(eng, Load(1024, 128, request_rate=40, num_prompts=400))
    assert high.output_tokens_per_s > 3 * low.output_tokens_per_s
    assert percentile(high.ttft_s, 95) > percentile(low.ttft_s, 95)
    assert percentile(high.itl_s, 50) > percentile(low.itl_s, 50)


def test_a_prediction_is_the_median_over_arrival_draws_where_the_load_has_any() -> None:
    eng = _engine()
    # a closed loop of fixed lengths draws nothing: one run is the answer
    closed = Load(1024, 64, concurrency=8, num_prompts=32)
    one = simulate(eng, closed)
    assert typical(eng, closed)["ttft_p95_ms"] == pytest.approx(percentile(one.ttft_s, 95) * 1000)
    # near capacity one Poisson draw's tail is far from another's; the prediction is their median, not seed 0's
    capacity = simulate(eng, Load(1024, 64, concurrency=256, num_prompts=1024)).requests_per_s
    poisson = Load(1024, 64, request_rate=0.8 * capacity, num_prompts=300, seed=5)
    tails = sorted(percentile(simulate(eng, replace(poisson, seed=5 + i)).ttft_s, 95) * 1000 for i in range(SAMPLES))
    assert tails[-1] > 1.4 * tails[0]
    assert typical(eng, poisson)["ttft_p95_ms"] == pytest.approx(tails[SAMPLES // 2])
    assert typical(eng, poisson, samples=1)["ttft_p95_ms"] == pytest.approx(percentile(simulate(eng, poisson).ttft_s, 95) * 1000)


def test_simulation_preempts_when_the_kv_cache_runs_out() -> None:
    # room for ~12 requests of 1024 + 256 tokens while 64 are let in
    o = simulate(_engine(kv_tokens=16_000), Load(1024, 256, concurrency=64, num_prompts=128))
    assert o.preemptions > 0
    assert o.output_tokens == 128 * 256        # every request still finishes


def test_fit_recovers_the_constants_a_grid_was_made_with() -> None:
    truth = StepConstants(e_compute=0.62, e_weights=0.71, e_kv=0.45, fixed_s=2.1e-3, per_layer_s=1.5e-5,
                          per_token_layer_s=3e-8, http_s=6e-3)
    skeleton = Run(name="synthetic", model=LLAMA, gpu_model="H100",
                   server={"max_model_len": 4096, "max_num_seqs": 256, "max_num_batched_tokens": 8192},
                   kv_cache_tokens=400_000, held_out=False, source="test", bench=[],
                   grid={"decode": [{"batch": b, "context_tokens": c, "tokens": 48, "step_ms": 0}
                                    for b, c in ((1, 512), (8, 512), (64, 1024), (256, 512), (32, 2048))],
                         "prefill": [{"batch": b, "prompt_tokens": p, "median_ms": 0}
                                     for b, p in ((1, 128), (1, 2048), (4, 2048), (16, 2048), (32, 1024))]})
    points = grid_points(skeleton, truth)
    decode = [dict(d, step_ms=m * 1000) for d, (_, _, m) in zip(skeleton.grid["decode"], points, strict=False)]
    prefill = [dict(p, median_ms=m * 1000) for p, (_, _, m) in zip(skeleton.grid["prefill"], points[len(decode):], strict=True)]
    run = replace(skeleton, grid={"decode": decode, "prefill": prefill})
    fitted = fit("H100", [run])
    for _, measured, predicted in grid_points(run, fitted):
        assert predicted == pytest.approx(measured, rel=0.03)
    assert set(FITTED) <= set(vars(fitted))


def _perf_records(tmp_path):
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parent.parent / "scripts" / "perf_records.py"
    spec = importlib.util.spec_from_file_location("perf_records_under_test", path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.CATALOG = tmp_path / "catalog"
    mod.CATALOG.mkdir()
    return mod


def test_a_bench_only_run_adds_its_points_to_the_recorded_run_of_the_same_server(tmp_path) -> None:
    import json

    import yaml
    records = _perf_records(tmp_path)
    server = {"max_model_len": 4096, "max_num_seqs": 256}
    grid = {"prefill": [{"batch": 1, "prompt_tokens": 128, "ms": 20.0}], "decode": []}
    (records.CATALOG / "perf_runs.yaml").write_text(yaml.safe_dump({"runs": [
        {"name": "perf-x", "model": "M", "gpu_model": "H100", "server": server, "kv_cache_tokens": 1000,
         "held_out": False, "source": "measured earlier", "grid": grid, "bench": []}]}))
    out = tmp_path / "out"
    out.mkdir()
    point = {"concurrency": 1, "median_ttft_ms": 30.0}
    results = [{"name": "bench-x", "model": "M", "server": server, "gpu": "NVIDIA H100 80GB HBM3",
                "sweep_settings": {"bench_of": "perf-x"}, "kv_cache_tokens": 1000, "bench": [point]}]
    (out / "perf.jsonl").write_text("".join(json.dumps(r) + "\n" for r in results))
    (out / "perf_logs.txt").write_text("\n===== bench-x (M) ok\nlog lines\n")
    assert records.main([str(out), "--date", "2026-12-08"]) == 0
    (run,) = yaml.safe_load((records.CATALOG / "perf_runs.yaml").read_text())["runs"]
    assert run["grid"] == grid and run["bench"] == [point]
    assert run["source"] == "measured earlier"
    assert run["bench_source"].startswith("measured 2026-12-08") and "perf_logs/bench-x.txt" in run["bench_source"]
    # recording the same output again changes nothing
    before = (records.CATALOG / "perf_runs.yaml").read_text()
    assert records.main([str(out), "--date", "2026-12-08"]) == 0
    assert (records.CATALOG / "perf_runs.yaml").read_text() == before
    # another server's points never land on a run they were not measured against
    results[0]["server"] = {**server, "max_num_seqs": 128}
    (out / "perf.jsonl").write_text(json.dumps(results[0]) + "\n")
    with pytest.raises(SystemExit, match="same server settings"):
        records.main([str(out), "--date", "2026-12-08"])
