#!/usr/bin/env python3
"""Measure vLLM's serving speed on a real GPU with dummy weights: the data the performance model is fitted on.

Run on the lent GPU machine with vLLM 0.26.0 importable (`scripts/h200_pack.sh`):

    python3 scripts/gpu_perf_measure.py OUT_DIR NAME [NAME ...]

Each configuration NAME (CONFIGS below) starts one `vllm serve` process (the OpenAI server, `load_format dummy`,
the model's public config.json and a stand-in tokenizer, fleet/capacity/standin_tokenizer.py, whose prompts
round-trip exactly — checked here with vLLM's own tokenizer loader before the server starts), then measures two
things against it:

1. **Step grid** — controlled batches sent at once to `/v1/completions` with prompt token ids (no tokenizer):
   prefill (B prompts of P tokens, one output token: the time until the last answer) and decode (B streams of
   `DECODE_TOKENS` tokens after C-token prompts: the median gap between tokens while all B are decoding, which is
   the scheduler's step time at batch B).
2. **`vllm bench serve` sweeps** — vLLM's own benchmark (vllm.benchmarks.serve, the code behind `vllm bench serve`,
   called in this process so that vLLM is imported once; the arguments are recorded as the command line that
   reproduces each point) with `--dataset-name random --ignore-eos` at fixed lengths: closed loop at several
   `--max-concurrency`, then Poisson `--request-rate` at fractions of the closed-loop throughput.

Results go to OUT_DIR/perf.jsonl (one object per configuration) and the server logs to OUT_DIR/perf_logs.txt;
`fleet/catalog/perf_runs.yaml` keeps them as records with their commands.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from h200_measure import ARCHS  # noqa: E402  (the public config.json values)

from fleet.capacity import standin_tokenizer  # noqa: E402

ARCHS["Qwen/Qwen2.5-14B-Instruct"] = {
    "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 5120, "intermediate_size": 13824,
    "num_hidden_layers": 48, "num_attention_heads": 40, "num_key_value_heads": 8, "vocab_size": 152064,
    "max_position_embeddings": 32768, "rope_theta": 1000000.0, "rms_norm_eps": 1e-6, "hidden_act": "silu",
    "tie_word_embeddings": False, "torch_dtype": "bfloat16", "use_sliding_window": False}
ARCHS["Qwen/Qwen2.5-3B-Instruct"] = {
    "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 2048, "intermediate_size": 11008,
    "num_hidden_layers": 36, "num_attention_heads": 16, "num_key_value_heads": 2, "vocab_size": 151936,
    "max_position_embeddings": 32768, "rope_theta": 1000000.0, "rms_norm_eps": 1e-6, "hidden_act": "silu",
    "tie_word_embeddings": True, "torch_dtype": "bfloat16", "use_sliding_window": False}

# name -> (model, server settings, sweep settings). Server settings are `vllm serve` flags (dashes for underscores).
BASE = {"max_model_len": 4096, "max_num_seqs": 256, "max_num_batched_tokens": 8192, "gpu_memory_utilization": 0.9}
SWEEP = {"input_len": 1024, "output_len": 256, "concurrency": [1, 16, 64, 256], "rate_fractions": [0.35, 0.65, 0.9]}
CONFIGS: dict[str, tuple[str, dict, dict]] = {
    "perf-qwen05b": ("Qwen/Qwen2.5-0.5B-Instruct", BASE, SWEEP),
    "perf-qwen3b": ("Qwen/Qwen2.5-3B-Instruct", BASE, SWEEP),
    "perf-llama8b": ("meta-llama/Llama-3.1-8B-Instruct", BASE, SWEEP),
    "perf-qwen14b": ("Qwen/Qwen2.5-14B-Instruct", BASE, SWEEP),
    "perf-qwen3moe": ("Qwen/Qwen3-30B-A3B", {**BASE, "gpu_memory_utilization": 0.92}, SWEEP),
    "perf-gemma2b": ("google/gemma-2b", BASE, SWEEP),
    "perf-llama8b-fp8": ("meta-llama/Llama-3.1-8B-Instruct", {**BASE, "quantization": "fp8"}, SWEEP),
    # only the TTFT probe (below): where a streamed benchmark's first token spends the time a bare prefill does not
    "probe-qwen05b": ("Qwen/Qwen2.5-0.5B-Instruct", BASE, {**SWEEP, "probe_only": True}),
    "probe-gemma2b": ("google/gemma-2b", BASE, {**SWEEP, "probe_only": True}),
    # only the `vllm bench serve` sweep, for a run whose step grid is recorded already (bench_of names it):
    # scripts/perf_records.py adds these points to that run
    "bench-qwen14b": ("Qwen/Qwen2.5-14B-Instruct", BASE, {**SWEEP, "bench_of": "perf-qwen14b"}),
    "perf-llama8b-short": ("meta-llama/Llama-3.1-8B-Instruct", BASE,
                           {"input_len": 256, "output_len": 512, "concurrency": [8, 128], "rate_fractions": [0.5, 0.85]}),
}
PREFILL_GRID = [(1, 128), (1, 512), (1, 2048), (1, 4096), (4, 512), (4, 2048), (16, 512), (16, 2048), (32, 1024)]
DECODE_GRID = [(1, 512), (8, 512), (32, 512), (64, 1024), (128, 512), (256, 512), (32, 2048), (128, 1024)]
DECODE_TOKENS = 48
PROBE_LENGTHS = (64, 256, 512, 520, 768, 1024, 1536, 2048, 3072)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_model(d: str, model: str) -> None:
    arch = ARCHS[model]
    Path(d, "config.json").write_text(json.dumps(arch))
    # The tokenizer lives in a folder of its own, without config.json: beside a Qwen config, transformers 5 loads
    # Qwen2Tokenizer (byte-level, words glued together on decode) whatever tokenizer_config.json names, and the
    # prompts no longer round-trip (seen on the H100, 2026-12-07).
    standin_tokenizer.write(Path(d, "tokenizer"), arch["vocab_size"])


def check_tokenizer(d: str, vocab: int) -> dict:
    """The stand-in's prompts round-trip through the loader vLLM's server and benchmark use."""
    from vllm.tokenizers import get_tokenizer
    tok = get_tokenizer(d)
    rng = random.Random(0)
    ok = all(standin_tokenizer.round_trips(tok, [rng.randrange(vocab - 1) for _ in range(n)]) for n in (1, 17, 1024, 4096))
    return {"round_trip": ok, "vocab_size": tok.vocab_size, "special_ids": list(tok.all_special_ids)}


def server_cmd(d: str, port: int, settings: dict) -> list[str]:
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", d, "--tokenizer", str(Path(d, "tokenizer")),
           "--served-model-name", "m",
           "--load-format", "dummy", "--host", "127.0.0.1", "--port", str(port)]
    for k, v in settings.items():
        cmd += [f"--{k.replace('_', '-')}", str(v)]
    return cmd


def wait_ready(proc: subprocess.Popen, port: int, limit_s: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < limit_s:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return time.monotonic() - start
        except OSError:
            pass
        time.sleep(1)
    raise RuntimeError(f"server not ready in {limit_s:.0f} s")


async def _one(session, url: str, prompt: list[int] | str, max_tokens: int, stream: bool) -> list[float]:
    """Send one completion; the arrival times of its tokens (one entry when not streamed)."""
    body = {"model": "m", "prompt": prompt, "max_tokens": max_tokens, "temperature": 0.0, "ignore_eos": True,
            "stream": stream}
    times: list[float] = []
    async with session.post(url, json=body) as resp:
        if resp.status != 200:
            raise RuntimeError(f"HTTP {resp.status}: {(await resp.text())[:300]}")
        if not stream:
            await resp.read()
            return [time.perf_counter()]
        async for raw in resp.content:
            line = raw.strip()
            if line.startswith(b"data: ") and line != b"data: [DONE]":
                chunk = json.loads(line[6:])
                if chunk.get("choices") and chunk["choices"][0].get("text") is not None:
                    times.append(time.perf_counter())
    return times


async def ttft_probe(port: int, vocab: int, plen: int = 1024, repeats: int = 5) -> dict:
    """One request at a time, four ways: token ids or text, streamed or not (max_tokens 1 and 8). The step grid sends
    ids without streaming; `vllm bench serve` sends text and streams; the runs of 2026-12-07 showed the benchmark's
    TTFT at concurrency 1 7-43 ms above the grid's prefill of the same length, more on the Qwen models. Medians, ms."""
    import aiohttp
    url = f"http://127.0.0.1:{port}/v1/completions"
    rng = random.Random(2)
    out: dict = {"prompt_tokens": plen}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as s:
        for kind in ("ids", "text"):
            for stream, max_tokens in ((False, 1), (True, 1), (True, 8)):
                firsts = []
                for _ in range(repeats):
                    ids = [rng.randrange(vocab - 1) for _ in range(plen)]
                    prompt = ids if kind == "ids" else " ".join(standin_tokenizer.word(i) for i in ids)
                    t0 = time.perf_counter()
                    times = await _one(s, url, prompt, max_tokens, stream)
                    firsts.append(times[0] - t0)
                out[f"{kind}_{'stream' if stream else 'plain'}_{max_tokens}"] = round(statistics.median(firsts) * 1000, 2)
        # one prompt of each length, token ids, not streamed: does a prefill step cost more once it has more tokens
        # than the largest captured CUDA graph (512 here: `max_cudagraph_capture_size` in the log)?
        for n in PROBE_LENGTHS:
            walls = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                await _one(s, url, [rng.randrange(vocab - 1) for _ in range(n)], 1, False)
                walls.append(time.perf_counter() - t0)
            out[f"prefill_ids_{n}"] = round(statistics.median(walls) * 1000, 2)
    return out


async def step_grid(port: int, vocab: int, kv_tokens: int | None, max_len: int) -> dict:
    import aiohttp
    url = f"http://127.0.0.1:{port}/v1/completions"
    rng = random.Random(1)

    def prompt(n: int) -> list[int]:   # random ids: no two prompts share a cached block
        return [rng.randrange(vocab - 1) for _ in range(n)]

    out: dict = {"prefill": [], "decode": []}
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout) as s:
        await asyncio.gather(*(_one(s, url, prompt(64), 4, False) for _ in range(4)))   # warm-up
        for batch, plen in PREFILL_GRID:
            if plen + 1 > max_len:
                continue
            walls = []
            for _ in range(3):
                prompts = [prompt(plen) for _ in range(batch)]
                t0 = time.perf_counter()
                await asyncio.gather(*(_one(s, url, p, 1, False) for p in prompts))
                walls.append(time.perf_counter() - t0)
            out["prefill"].append({"batch": batch, "prompt_tokens": plen, "wall_ms": [round(w * 1000, 2) for w in walls],
                                   "median_ms": round(statistics.median(walls) * 1000, 2)})
        for batch, ctx in DECODE_GRID:
            if ctx + DECODE_TOKENS > max_len or (kv_tokens and batch * (ctx + DECODE_TOKENS + 16) > 0.9 * kv_tokens):
                continue
            prompts = [prompt(ctx) for _ in range(batch)]
            t0 = time.perf_counter()
            streams = await asyncio.gather(*(_one(s, url, p, DECODE_TOKENS, True) for p in prompts))
            wall = time.perf_counter() - t0
            start = max(t[0] for t in streams)          # every request decoding
            end = min(t[-1] for t in streams)           # none finished
            gaps = [b - a for t in streams for a, b in itertools.pairwise(t) if a >= start and b <= end]
            all_gaps = [b - a for t in streams for a, b in itertools.pairwise(t)]
            out["decode"].append({
                "batch": batch, "context_tokens": ctx, "tokens": DECODE_TOKENS, "wall_ms": round(wall * 1000, 1),
                "steady_gaps": len(gaps),
                "step_ms": round(statistics.median(gaps or all_gaps) * 1000, 3),
                "itl_p50_ms": round(statistics.median(all_gaps) * 1000, 3),
                "ttft_max_ms": round((start - t0) * 1000, 1)})
    return out


BENCH_KEYS = ("completed", "failed", "duration", "total_input_tokens", "total_output_tokens", "request_throughput",
              "output_throughput", "total_token_throughput", "max_concurrent_requests")


def bench(port: int, d: str, sweep: dict, concurrency: int | None, rate: float | None, seed: int) -> dict:
    from vllm.benchmarks.serve import add_cli_args
    from vllm.benchmarks.serve import main as bench_main
    from vllm.utils.argparse_utils import FlexibleArgumentParser
    if concurrency is not None:
        n = max(8, min(4 * concurrency, 512)) if concurrency > 1 else 6
    else:
        n = int(max(48, min((rate or 1.0) * 25, 800)))
    argv = ["--backend", "vllm", "--base-url", f"http://127.0.0.1:{port}", "--model", "m", "--tokenizer", str(Path(d, "tokenizer")),
            "--dataset-name", "random", "--random-input-len", str(sweep["input_len"]),
            "--random-output-len", str(sweep["output_len"]), "--num-prompts", str(n), "--ignore-eos",
            "--percentile-metrics", "ttft,tpot,itl,e2el", "--metric-percentiles", "50,90,95,99",
            "--seed", str(seed), "--disable-tqdm", "--ready-check-timeout-sec", "0",
            # keeps each request's start time and TTFT in the result (without it vLLM drops them before returning)
            "--save-detailed"]
    argv += ["--max-concurrency", str(concurrency)] if concurrency is not None else ["--request-rate", f"{rate:.3f}"]
    parser = FlexibleArgumentParser()
    add_cli_args(parser)
    args = parser.parse_args(argv)
    t0 = time.monotonic()
    res = bench_main(args)
    point = {"command": "vllm bench serve " + " ".join(argv).replace(d, "MODEL_DIR"),
             "concurrency": concurrency, "request_rate": rate, "num_prompts": n,
             "input_len": sweep["input_len"], "output_len": sweep["output_len"], "wall_s": round(time.monotonic() - t0, 1)}
    for k in BENCH_KEYS:
        if k in res:
            point[k] = res[k]
    for k, v in res.items():
        if re.match(r"^(mean|median|std|p\d+)_(ttft|tpot|itl|e2el)_ms$", k):
            point[k] = round(float(v), 3)
    if res.get("ttfts"):
        point["ttfts_ms"] = [round(t * 1000, 1) for t in res["ttfts"]]
    if res.get("start_times"):
        first = min(res["start_times"])
        point["starts_ms"] = [round((t - first) * 1000, 1) for t in res["start_times"]]
    return point


def parse_log(log: str) -> dict:
    out: dict = {}
    m = re.search(r"GPU KV cache size: ([\d,]+) tokens", log)
    if m:
        out["kv_cache_tokens"] = int(m.group(1).replace(",", ""))
    m = re.search(r"Maximum concurrency for ([\d,]+) tokens per request: ([\d.]+)x", log)
    if m:
        out["max_concurrency"] = float(m.group(2))
    m = re.search(r"init engine .*? took ([\d.]+) s", log)
    if m:
        out["init_engine_s"] = float(m.group(1))
    out["runner"] = "v2" if "Using V2 Model Runner" in log else "v1"
    out["cuda_graphs"] = "Capturing CUDA graphs" in log or "Graph capturing finished" in log
    return out


def gpu_name() -> str:
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,clocks.max.sm", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=20).stdout.strip()
    except Exception as e:
        return f"unknown ({e})"


def measure(name: str, out_dir: Path, deadline: float) -> dict:
    model, settings, sweep = CONFIGS[name]
    vocab = ARCHS[model]["vocab_size"]
    result: dict = {"name": name, "model": model, "server": settings, "sweep_settings": sweep, "gpu": gpu_name()}
    with tempfile.TemporaryDirectory() as d:
        write_model(d, model)
        result["tokenizer"] = check_tokenizer(str(Path(d, "tokenizer")), vocab)
        if not result["tokenizer"]["round_trip"]:
            result["error"] = "stand-in tokenizer does not round-trip"
            return result
        port = free_port()
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_USE_FLASHINFER_SAMPLER": "0", "PYTHONUNBUFFERED": "1",
               "TOKENIZERS_PARALLELISM": "false"}
        logf = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)  # noqa: SIM115 - the server writes it until killed
        cmd = server_cmd(d, port, settings)
        result["server_command"] = "vllm serve MODEL_DIR " + " ".join(cmd[5:]).replace(d, "MODEL_DIR")
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            result["ready_s"] = round(wait_ready(proc, port, min(420, deadline - time.monotonic())), 1)
            result.update(parse_log(Path(logf.name).read_text(errors="replace")))
            result["ttft_probe"] = asyncio.run(ttft_probe(port, vocab))
            print(name, "ttft probe", result["ttft_probe"], flush=True)
            if sweep.get("probe_only"):
                result["bench"] = [bench(port, d, {**sweep, "output_len": 16}, 1, None, seed=100)]
                return result
            if not sweep.get("bench_of"):
                t0 = time.monotonic()
                result["grid"] = asyncio.run(step_grid(port, vocab, result.get("kv_cache_tokens"), settings["max_model_len"]))
                result["grid_s"] = round(time.monotonic() - t0, 1)
            points = []
            for i, c in enumerate(sweep["concurrency"]):
                if deadline - time.monotonic() < 40:
                    break
                points.append(bench(port, d, sweep, c, None, seed=100 + i))
                print(name, "c", c, {k: points[-1].get(k) for k in ("request_throughput", "median_ttft_ms", "median_itl_ms")},
                      flush=True)
            capacity = max((p.get("request_throughput", 0) for p in points), default=0)
            for i, f in enumerate(sweep["rate_fractions"]):
                if not capacity or deadline - time.monotonic() < 45:
                    break
                points.append(bench(port, d, sweep, None, round(capacity * f, 3), seed=200 + i))
                print(name, "r", points[-1]["request_rate"],
                      {k: points[-1].get(k) for k in ("request_throughput", "median_ttft_ms", "p95_ttft_ms", "median_itl_ms")},
                      flush=True)
            result["bench"] = points
        except Exception as e:
            result["error"] = f"{type(e).__name__}: {e}"
        finally:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=30)
            except Exception:
                os.killpg(proc.pid, signal.SIGKILL)
            log = Path(logf.name).read_text(errors="replace")
            result.update({k: v for k, v in parse_log(log).items() if k not in result})
            with open(out_dir / "perf_logs.txt", "a", encoding="utf-8") as fh:
                fh.write(f"\n===== {name} ({model}) {result.get('error', 'ok')}\n{log[:20000]}\n[...]\n{log[-8000:]}\n")
    return result


def main(argv: list[str]) -> int:
    out_dir = Path(argv[0])
    out_dir.mkdir(parents=True, exist_ok=True)
    names = argv[1:]
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        print(f"unknown configurations: {', '.join(unknown)}; known: {', '.join(CONFIGS)}", file=sys.stderr)
        return 2
    deadline = time.monotonic() + float(os.environ.get("FLEET_CALL_BUDGET_S", "1e9"))
    for name in names:
        if deadline - time.monotonic() < 150:
            print(name, "skipped: not enough time left in this call", flush=True)
            continue
        t0 = time.monotonic()
        result = measure(name, out_dir, deadline)
        result["wall_s"] = round(time.monotonic() - t0, 1)
        with open(out_dir / "perf.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(result) + "\n")
        print(name, "done", result.get("error", "ok"), result["wall_s"], "s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
