"""predict and recommend with targets against the measured runs: the interface, the accuracy gate, bad input."""

from __future__ import annotations

import json
import time

import pytest

from fleet.capacity.calibrate import accuracy, runs
from fleet.capacity.calibration_data import fitted_constants
from fleet.cli import main

LLAMA = "meta-llama/Llama-3.1-8B-Instruct"


def test_the_shipped_constants_come_from_runs_that_are_not_held_out() -> None:
    fit = fitted_constants()["H100"]
    held = [r.name for r in runs() if r.held_out]
    fitted = [r.name for r in runs() if not r.held_out]
    assert held and fitted
    assert all(name in fit.source for name in fitted)
    assert not any(name in fit.source for name in held)


@pytest.fixture(scope="module")
def result() -> dict:
    return accuracy(fitted_constants())


def test_held_out_accuracy_stays_where_it_was_measured(result: dict) -> None:
    # bench/perf_accuracy prints these; the gate keeps a change of the model from losing what the runs showed
    h = result["held_out_median_pct"]
    # two dense models held out (Gemma 2B, Qwen2.5-3B): 14 points, measured at TTFT p50 5.3%, p95 9.4%, ITL p50 5.9%,
    # throughput 1.6% (docs/performance.md); the gate leaves room for a refit, and stays inside the goals
    assert result["held_out_points"] >= 14
    assert h["ttft_p50"] <= 7 and h["ttft_p95"] <= 15 and h["itl_p50"] <= 8 and h["throughput"] <= 4
    assert result["held_out_grid_median_pct"] <= 12
    assert result["held_out_verdicts_right_pct"] >= 90


def test_at_concurrency_16_the_ttft_p50_sits_on_the_split_of_the_prompts_over_two_steps(result: dict) -> None:
    # sixteen 1024-token prompts fill two 8192-token steps: the measured TTFTs are two clusters, not one. Llama 8B:
    # p50 390 ms but mean 304 ms, so the lower half averages at most 2 * 304 - 390 = 218 ms (one step), the upper
    # half sits at two steps. A p50 on the split jumps between the clusters with one request; the mean does not
    llama = next(p for r in runs() if r.name == "perf-llama8b" for p in r.bench if p.get("concurrency") == 16)
    assert 2 * llama["mean_ttft_ms"] - llama["p50_ttft_ms"] < 0.6 * llama["p50_ttft_ms"]
    rows = [r for r in result["rows"] if r["load"] == "c=16"]
    assert len(rows) >= 5
    # the p50 errs by up to 32 % there (docs/performance.md), the mean by at most 18 % (bench/perf_accuracy prints both)
    for r in rows:
        measured, predicted = r["ttft_mean"]
        assert abs(predicted / measured - 1) <= 0.2, r["run"]
    # the simulated mean is the mean of the simulated requests' TTFTs, not a percentile
    from fleet.capacity.calibrate import engine_for
    from fleet.capacity.simulate import Load, _metrics, simulate
    run = next(r for r in runs() if r.name == "perf-llama8b")
    o = simulate(engine_for(run, fitted_constants()["H100"]), Load(1024, 256, concurrency=16, num_prompts=64))
    assert _metrics(o)["ttft_mean_ms"] == pytest.approx(1000 * sum(o.ttft_s) / len(o.ttft_s))


def test_p_meet_spreads_each_metric_by_its_held_out_error(result: dict) -> None:
    from fleet.capacity import calibrate, calibration_data
    from fleet.capacity.slo import DEFAULT_SIGMA, Targets, _p_meet, sigmas
    # the shipped spread is the held-out runs' RMS log error under the shipped constants, not a number typed in
    shipped = calibration_data.held_out_sigma()
    # (the file's constants are rounded to six digits, so the third decimal may move)
    assert shipped == pytest.approx(calibrate.held_out_sigma(result), abs=0.005)
    assert set(shipped) == {"ttft_p50_ms", "ttft_p95_ms", "itl_p50_ms", "itl_p95_ms", "tpot_p50_ms"}
    assert sigmas() == shipped and sigmas(DEFAULT_SIGMA) == dict.fromkeys(shipped, DEFAULT_SIGMA)
    t = Targets(request_rate=1, input_tokens=1024, output_tokens=256, ttft_p95_ms=500)
    # a prediction on the target is a coin toss; 20 % under it is likelier met the tighter the model's error
    assert _p_meet({"ttft_p95_ms": 500}, t, None) == pytest.approx(0.5)
    assert _p_meet({"ttft_p95_ms": 400}, t, 0.1) > _p_meet({"ttft_p95_ms": 400}, t, None) > 0.5


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_predict_prints_the_interface_keys(capsys) -> None:
    code, out, _ = run(capsys, "predict", "--model", LLAMA, "--gpu", "p5.48xlarge", "--input-tokens", "1024",
                       "--output-tokens", "256", "--request-rate", "7.7", "--max-model-len", "4096", "--max-num-seqs", "256",
                       "--max-num-batched-tokens", "8192", "--num-prompts", "192", "--json")
    assert code == 0
    d = json.loads(out)
    assert set(d["ttft_ms"]) == {"p50", "p95", "p99"} and set(d["itl_ms"]) == {"p50", "p95"} and "p50" in d["tpot_ms"]
    assert d["output_tokens_per_s"] > 0 and d["requests_per_s"] > 0
    # the measured point (perf-llama8b r=7.694): TTFT p50 54.4 ms, ITL p50 7.6 ms
    assert 40 < d["ttft_ms"]["p50"] < 75 and 6.5 < d["itl_ms"]["p50"] < 9


@pytest.mark.parametrize("argv, code, fragment", [
    (["--request-rate", "0"], 2, "must be a positive number"),
    (["--request-rate", "-3"], 2, "must be a positive number"),
    (["--input-tokens", "5000", "--max-model-len", "4096"], 2, "exceed --max-model-len"),
    (["--gpu", "p9.huge"], 2, "not an instance type"),
    (["--model", "nobody/nothing"], 2, "not in fleet/catalog/models.yaml"),
    (["--tp", "3"], 1, "does not divide"),       # a shape vLLM refuses is an answer: it cannot serve
    (["--input-tokens-p95", "800"], 2, "below the mean"),
    (["--output-tokens-p95", "2000"], 2, "fits no log-normal"),
    (["--input-tokens-p95", "3900", "--max-model-len", "4096"], 2, "95th-percentile request"),
    # vLLM refuses a token budget below max_num_seqs at startup (vllm@v0.34.0:vllm/config/scheduler.py)
    (["--max-num-batched-tokens", "512", "--max-num-seqs", "1024"], 2, "max_num_batched_tokens 512 is below max_num_seqs 1,024"),
    (["--gpu", "g6e.xlarge", "--max-num-seqs", "4096"], 2, "the default max_num_batched_tokens on this GPU (2,048) is below"),
])
def test_predict_bad_input(capsys, argv: list[str], code: int, fragment: str) -> None:
    base = {"--model": LLAMA, "--gpu": "p5.48xlarge", "--input-tokens": "1024", "--output-tokens": "256", "--request-rate": "5"}
    for i in range(0, len(argv), 2):
        base[argv[i]] = argv[i + 1]
    try:
        got = main(["predict"] + [x for kv in base.items() for x in kv])
    except SystemExit as exc:   # argparse's own refusals
        got = exc.code
    assert got == code
    assert fragment in capsys.readouterr().err


def test_predict_runs_the_max_num_seqs_vllm_lowers_to_a_small_budget(capsys) -> None:
    # without --max-num-seqs vLLM caps its default (1,024 on an H100) at the token budget instead of refusing
    # (EngineArgs._set_default_max_num_seqs_and_batched_tokens_args); so does the simulated engine
    code, out, _ = run(capsys, "predict", "--model", LLAMA, "--gpu", "p5.48xlarge", "--input-tokens", "1024",
                       "--output-tokens", "64", "--concurrency", "4", "--max-num-batched-tokens", "256", "--json")
    assert code == 0
    assert json.loads(out)["engine"]["max_num_seqs"] == 256


def test_recommend_with_targets_ranks_options_that_meet_them_by_price(capsys) -> None:
    start = time.monotonic()
    code, out, _ = run(capsys, "recommend", "--model", LLAMA, "--request-rate", "20", "--input-tokens", "1024",
                       "--output-tokens", "256", "--ttft-p95-ms", "500", "--itl-p50-ms", "50", "--json")
    elapsed = time.monotonic() - start
    assert code == 0
    options = json.loads(out)["options"]
    meets = [o for o in options if o["meets_slo"]]
    assert meets
    priced = [o["usd_per_hour"] for o in meets if o["usd_per_hour"] is not None]
    assert priced == sorted(priced)
    for o in meets:
        assert o["predicted"]["ttft_p95_ms"] <= 500 and o["predicted"]["itl_p50_ms"] <= 50
        assert o["replicas"] >= 1 and 0 <= o["p_meet"] <= 1
    assert any(not o["fits"] and "does not" in o["reason"] for o in options)   # rejected shapes say why
    assert elapsed < 6   # the goal is 2 s on a quiet machine; CI shares two cores


def test_recommend_an_infeasible_slo_is_an_answer_with_the_closest_option(capsys) -> None:
    code, out, err = run(capsys, "recommend", "--model", LLAMA, "--request-rate", "20", "--input-tokens", "1024",
                         "--output-tokens", "256", "--itl-p50-ms", "0.5", "--json")
    assert code == 1
    assert json.loads(out)["closest"]["instance_type"]
    assert "no shape meets the targets" in err


@pytest.mark.parametrize("extra, fragment", [
    (["--ttft-p50-ms", "500", "--ttft-p95-ms", "100"], "can never hold"),
    (["--max-model-len", "512", "--itl-p50-ms", "50"], "exceed --max-model-len"),
    (["--concurrency", "4", "--itl-p50-ms", "50"], "two different modes"),
    ([], "at least one target"),
    (["--input-tokens-p95", "900", "--itl-p50-ms", "50"], "--input-tokens-p95: a 95th percentile (900) below the mean"),
    (["--input-tokens-p95", "3900", "--max-model-len", "4096", "--itl-p50-ms", "50"], "95th-percentile request"),
])
def test_recommend_impossible_or_contradictory_targets_are_exit_2(capsys, extra: list[str], fragment: str) -> None:
    code, _, err = run(capsys, "recommend", "--model", LLAMA, "--request-rate", "5", "--input-tokens", "1024",
                       "--output-tokens", "256", *extra)
    assert code == 2
    assert fragment in err


def test_recommend_plot_draws_a_png(capsys, tmp_path) -> None:
    png = tmp_path / "latency.png"
    code, _, _ = run(capsys, "recommend", "--model", LLAMA, "--request-rate", "10", "--input-tokens", "512",
                     "--output-tokens", "128", "--itl-p50-ms", "50", "--plot", str(png))
    assert code == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def _slo(project, text: str) -> None:
    from tests.conftest import edit

    edit(project / "stacks/teams/assistant.yaml", "    profile: latency\n", "    profile: latency\n" + text)


def test_a_team_slo_the_replicas_at_max_cannot_meet_is_a_finding_with_the_replicas_that_would(project) -> None:
    from fleet.offline.plan import make_plan

    # dev serves llama-8b on one L40S replica: 12 req/s of 1024 in / 256 out under 40 ms ITL needs more
    _slo(project, "    slo: {request_rate: 12, input_tokens: 1024, output_tokens: 256, itl_p50_ms: 40, ttft_p95_ms: 2000}\n")
    plan = make_plan("dev", project)
    s1 = [f for f in plan.findings if f.rule_id == "S1"]
    assert len(s1) == 1
    assert "assistant/llama-8b" in s1[0].name and "replicas would meet it" in s1[0].message
    assert "stacks/teams/assistant.yaml" in s1[0].message and ".slo" in s1[0].message
    assert s1[0].level == "advisory"      # dev's enforcement


def test_an_slo_with_length_percentiles_is_simulated_with_them(project) -> None:
    from dataclasses import replace

    from fleet.capacity.slo import model_slo_curve, planned_engine
    from fleet.offline.plan import make_plan

    _slo(project, "    slo: {request_rate: 2, input_tokens: 1024, output_tokens: 128, input_tokens_p95: 3000, ttft_p95_ms: 25}\n")
    plan = make_plan("dev", project)
    (m,) = [m for m in plan.spec.models if m.spec.slo is not None]
    planned = planned_engine(m)
    assert planned is not None
    t = planned[1]
    assert (t.input_tokens_p95, t.output_tokens_p95, t.longest()) == (3000, None, (3000, 128))
    curve = model_slo_curve(m)
    assert curve is not None and curve["targets"]["input_tokens_p95"] == 3000
    # the same mean with every prompt alike has a far shorter TTFT tail: the percentile is not ignored
    fixed = model_slo_curve(replace(m, spec=m.spec.model_copy(update={"slo": m.spec.slo.model_copy(update={"input_tokens_p95": None})})))
    assert fixed is not None
    assert curve["curve"][0]["ttft_p95_ms"] > 1.3 * fixed["curve"][0]["ttft_p95_ms"]
    s1 = [f for f in plan.findings if f.rule_id == "S1"]
    assert len(s1) == 1 and "1024 (p95 3000) in / 128 out" in s1[0].message


def test_a_team_slo_the_replicas_meet_is_no_finding(project) -> None:
    from fleet.offline.plan import make_plan

    _slo(project, "    slo: {request_rate: 1, input_tokens: 512, output_tokens: 128, itl_p50_ms: 80}\n")
    assert not [f for f in make_plan("dev", project).findings if f.rule_id == "S1"]


@pytest.mark.parametrize("slo, fragment", [
    ("{request_rate: 0, input_tokens: 10, output_tokens: 10, itl_p50_ms: 5}", "request_rate"),
    ("{request_rate: 5, input_tokens: 10, output_tokens: 10}", "at least one target"),
    ("{request_rate: 5, input_tokens: 10, output_tokens: 10, ttft_p50_ms: 900, ttft_p95_ms: 100}", "never below the median"),
    ("{request_rate: 5, input_tokens: 32000, output_tokens: 1000, itl_p50_ms: 50}", "exceed max_model_len"),
    ("{request_rate: 5, input_tokens: 1000, output_tokens: 100, input_tokens_p95: 500, itl_p50_ms: 50}",
     "input_tokens_p95: a 95th percentile (500) below the mean"),
    ("{request_rate: 5, input_tokens: 1000, output_tokens: 100, output_tokens_p95: 900, itl_p50_ms: 50}", "fits no log-normal"),
    ("{request_rate: 5, input_tokens: 20000, output_tokens: 100, input_tokens_p95: 33000, itl_p50_ms: 50}",
     "95th-percentile request (33,000 in + 100 out) exceeds max_model_len 32,768"),
])
def test_a_bad_slo_is_a_config_error_at_its_line(project, capsys, slo: str, fragment: str) -> None:
    _slo(project, f"    slo: {slo}\n")
    assert main(["--root", str(project), "validate", "--stack", "dev"]) == 2
    err = capsys.readouterr().err
    assert "stacks/teams/assistant.yaml:" in err and fragment in err


def _hpa_target(project) -> str:
    from fleet.offline.plan import make_plan

    plan = make_plan("dev", project, policies=False)
    (hpa,) = [c for c in plan.kubernetes_objects() if (c.inputs or {}).get("kind") == "HorizontalPodAutoscaler"
              and c.inputs["metadata"]["name"] == "llama-8b"]
    return hpa.inputs["spec"]["metrics"][0]["pods"]["target"]["averageValue"]


def test_an_slo_derives_the_autoscalers_queue_target_and_an_explicit_one_wins(project) -> None:
    from tests.conftest import grant

    grant(project, "assistant", gpu_quota={"dev": 2, "prod": 16})
    slo = "    slo: {request_rate: 6, input_tokens: 1024, output_tokens: 256, ttft_p95_ms: 1500, itl_p50_ms: 60}\n"
    _slo(project, "    autoscaling: {min_replicas: 1, max_replicas: 2}\n" + slo)
    derived = _hpa_target(project)
    assert derived != "5"                       # not the constant default
    value = float(derived[:-1]) / 1000 if derived.endswith("m") else float(derived)
    assert 0.1 <= value < 5
    team = project / "stacks/teams/assistant.yaml"
    team.write_text(team.read_text().replace("max_replicas: 2}", "max_replicas: 2, target_queue_per_pod: 7}"))
    assert _hpa_target(project) == "7"


FAKE_BENCH = '''
import argparse, json, os, sys
ap = argparse.ArgumentParser()
for flag in ("--backend", "--base-url", "--model", "--tokenizer", "--dataset-name", "--random-input-len", "--random-output-len",
             "--num-prompts", "--percentile-metrics", "--metric-percentiles", "--seed", "--result-dir", "--result-filename",
             "--max-concurrency", "--request-rate"):
    ap.add_argument(flag)
for flag in ("--ignore-eos", "--disable-tqdm", "--save-result"):
    ap.add_argument(flag, action="store_true")
assert sys.argv[1:3] == ["bench", "serve"], sys.argv
a = ap.parse_args(sys.argv[3:])
assert a.ignore_eos and a.dataset_name == "random" and a.tokenizer == os.environ["MODEL_ID"]
os.makedirs(a.result_dir, exist_ok=True)
json.dump({"completed": int(a.num_prompts), "median_ttft_ms": 50.0, "p95_ttft_ms": 90.0, "median_itl_ms": 7.5,
           "median_tpot_ms": 8.0, "output_throughput": 1800.0, "request_throughput": 7.0, "ttfts": [0.05]},
          open(os.path.join(a.result_dir, a.result_filename), "w"))
'''


def test_the_benchmark_job_runs_vllm_bench_serve_per_point_and_its_log_becomes_a_record(project, capsys, tmp_path) -> None:
    import os
    import subprocess
    import sys

    import yaml

    from fleet.capacity.calibrate import Run, bench_errors

    code, out, _ = run(capsys, "--root", str(project), "benchmark", "--stack", "dev", "--model", "assistant/llama-8b",
                       "--input-tokens", "1024", "--output-tokens", "256", "--concurrency", "1,16", "--request-rates", "7.7")
    assert code == 0
    job = yaml.safe_load(out)
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["image"].startswith("docker.io/vllm/vllm-openai:") and container["command"][:2] == ["python3", "-c"]
    env = {e["name"]: e for e in container["env"]}
    assert env["HF_HUB_OFFLINE"]["value"] == "1" and "secretKeyRef" in env["OPENAI_API_KEY"]["valueFrom"]
    # run the Job's own script against a stand-in `vllm` module, as the container would
    fake = tmp_path / "fake" / "vllm" / "entrypoints" / "cli"
    fake.mkdir(parents=True)
    for d in (fake.parent.parent, fake.parent, fake):
        (d / "__init__.py").write_text("")
    (fake / "main.py").write_text(FAKE_BENCH)
    environ = {**os.environ, "PYTHONPATH": str(tmp_path / "fake"),
               **{k: v["value"] for k, v in env.items() if "value" in v}}
    script = container["command"][2].replace("/tmp/bench", str(tmp_path / "bench"))
    done = subprocess.run([sys.executable, "-c", script], env=environ, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("FLEET-BENCH ") == 3
    log = tmp_path / "job.log"
    log.write_text(done.stdout)
    records = tmp_path / "runs.yaml"
    code, out, _ = run(capsys, "--root", str(project), "benchmark", "--stack", "dev", "--model", "assistant/llama-8b",
                       "--ingest", str(log), "--held-out", "--records", str(records))
    assert code == 0 and json.loads(out)["points"] == 3
    (rec,) = yaml.safe_load(records.read_text())["runs"]
    assert rec["held_out"] and rec["gpu_model"] == "L40S" and len(rec["bench"]) == 3
    rows = bench_errors(Run(**{k: rec[k] for k in Run.__dataclass_fields__}), fitted_constants()["H100"])
    assert len(rows) == 3 and all(r["ttft_p50"][0] == 50.0 for r in rows)


def test_benchmark_ingest_of_a_log_without_results_is_exit_2(project, capsys, tmp_path) -> None:
    log = tmp_path / "empty.log"
    log.write_text("nothing here\n")
    code, _, err = run(capsys, "--root", str(project), "benchmark", "--stack", "dev", "--model", "assistant/llama-8b",
                       "--ingest", str(log), "--records", str(tmp_path / "r.yaml"))
    assert code == 2 and "no FLEET-BENCH line" in err
    assert not (tmp_path / "r.yaml").exists()
