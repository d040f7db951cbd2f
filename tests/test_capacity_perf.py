"""The performance model's parts: the stand-in tokenizer, the step model, the scheduler simulation and the fit."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from fleet.capacity import standin_tokenizer
from fleet.capacity.calibrate import FITTED, Run, fit, grid_points
from fleet.capacity.memory import Settings, model_catalog
from fleet.capacity.perf import StepConstants, gpu_models, model_cost
from fleet.capacity.simulate import Engine, Load, percentile, simulate

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


def test_simulation_load_raises_latency_and_throughput() -> None:
    eng = _engine()
    low = simulate(eng, Load(1024, 128, request_rate=2, num_prompts=60))
    high = simulate(eng, Load(1024, 128, request_rate=40, num_prompts=400))
    assert high.output_tokens_per_s > 3 * low.output_tokens_per_s
    assert percentile(high.ttft_s, 95) > percentile(low.ttft_s, 95)
    assert percentile(high.itl_s, 50) > percentile(low.itl_s, 50)


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
