#!/usr/bin/env python3
"""Measure vLLM's own memory accounting on a real GPU with dummy weights (no downloads).

Run on the lent H200 machine with vLLM 0.26.0 importable (see `scripts/h200_pack.sh`):

    python3 scripts/h200_measure.py OUT_DIR NAME [NAME ...]     # or `all`

Each configuration runs in a fresh Python process (one engine per process): it writes a hand-written
`config.json` (the public values of the architecture), starts `vllm.LLM(load_format="dummy",
skip_tokenizer_init=True, ...)`, generates 8 tokens from prompt token ids to prove the engine serves, and
records vLLM's own log lines: weights, peak activation, non-torch and CUDA-graph memory, KV cache GiB and
tokens, and the start-up time. Results go to OUT_DIR/results.jsonl (one object per configuration) and the logs to
OUT_DIR/logs.txt, from which `scripts/h200_records.py` makes the calibration records with their log lines;
`fleet/catalog/calibration.yaml` cites them as "measured on H200, vLLM 0.26.0, dummy weights".
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Public config.json values (Hugging Face model cards), enough for vLLM to build the model.
ARCHS: dict[str, dict] = {
    "meta-llama/Llama-3.1-8B-Instruct": {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336,
        "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128,
        "vocab_size": 128256, "max_position_embeddings": 131072, "rope_theta": 500000.0, "rms_norm_eps": 1e-5,
        "hidden_act": "silu", "tie_word_embeddings": False, "torch_dtype": "bfloat16"},
    "meta-llama/Llama-3.1-70B-Instruct": {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 8192, "intermediate_size": 28672,
        "num_hidden_layers": 80, "num_attention_heads": 64, "num_key_value_heads": 8, "head_dim": 128,
        "vocab_size": 128256, "max_position_embeddings": 131072, "rope_theta": 500000.0, "rms_norm_eps": 1e-5,
        "hidden_act": "silu", "tie_word_embeddings": False, "torch_dtype": "bfloat16"},
    "Qwen/Qwen2.5-7B-Instruct": {
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 3584, "intermediate_size": 18944,
        "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4, "vocab_size": 152064,
        "max_position_embeddings": 32768, "rope_theta": 1000000.0, "rms_norm_eps": 1e-6, "hidden_act": "silu",
        "tie_word_embeddings": False, "torch_dtype": "bfloat16", "use_sliding_window": False},
    "Qwen/Qwen2.5-0.5B-Instruct": {
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 896, "intermediate_size": 4864,
        "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2, "vocab_size": 151936,
        "max_position_embeddings": 32768, "rope_theta": 1000000.0, "rms_norm_eps": 1e-6, "hidden_act": "silu",
        "tie_word_embeddings": True, "torch_dtype": "bfloat16", "use_sliding_window": False},
    "google/gemma-2b": {
        "architectures": ["GemmaForCausalLM"], "model_type": "gemma", "hidden_size": 2048, "intermediate_size": 16384,
        "num_hidden_layers": 18, "num_attention_heads": 8, "num_key_value_heads": 1, "head_dim": 256,
        "vocab_size": 256000, "max_position_embeddings": 8192, "rope_theta": 10000.0, "rms_norm_eps": 1e-6,
        "hidden_act": "gelu", "hidden_activation": "gelu_pytorch_tanh", "tie_word_embeddings": True,
        "torch_dtype": "bfloat16"},
    "Qwen/Qwen3-30B-A3B": {
        "architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe", "hidden_size": 2048, "intermediate_size": 6144,
        "moe_intermediate_size": 768, "num_hidden_layers": 48, "num_attention_heads": 32, "num_key_value_heads": 4,
        "head_dim": 128, "num_experts": 128, "num_experts_per_tok": 8, "norm_topk_prob": True, "decoder_sparse_step": 1,
        "mlp_only_layers": [], "vocab_size": 151936, "max_position_embeddings": 40960, "rope_theta": 1000000.0,
        "rms_norm_eps": 1e-6, "hidden_act": "silu", "tie_word_embeddings": False, "torch_dtype": "bfloat16",
        "attention_bias": False, "use_sliding_window": False},
}

# A vision model: Gemma 3 4B (SigLIP tower). vLLM profiles its encoder with dummy images through the model's HF
# processor, so the run also writes a stand-in processor (write_processor): the image processor's public settings and
# a tokenizer holding just the special tokens the processor and the model's config name, at their ids.
ARCHS["google/gemma-3-4b-it"] = {
    "architectures": ["Gemma3ForConditionalGeneration"], "boi_token_index": 255999, "eoi_token_index": 256000,
    "eos_token_id": [1, 106], "image_token_index": 262144, "initializer_range": 0.02, "mm_tokens_per_image": 256,
    "model_type": "gemma3", "torch_dtype": "bfloat16",
    "text_config": {"hidden_size": 2560, "intermediate_size": 10240, "model_type": "gemma3_text", "num_hidden_layers": 34,
                    "rope_scaling": {"factor": 8.0, "rope_type": "linear"}, "sliding_window": 1024, "num_attention_heads": 8,
                    "num_key_value_heads": 4, "head_dim": 256, "vocab_size": 262208, "max_position_embeddings": 131072,
                    "query_pre_attn_scalar": 256, "rope_theta": 1000000.0, "rope_local_base_freq": 10000.0,
                    "sliding_window_pattern": 6},
    "vision_config": {"hidden_size": 1152, "image_size": 896, "intermediate_size": 4304, "model_type": "siglip_vision_model",
                      "num_attention_heads": 16, "num_hidden_layers": 27, "patch_size": 14, "vision_use_head": False}}
VISION = {"google/gemma-3-4b-it"}


def write_processor(d: str) -> None:
    """The stand-in processor files of the Gemma 3 runs (see VISION)."""
    from tokenizers import AddedToken, Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import WhitespaceSplit

    # vLLM's Gemma 3 processor merges the newlines around an image into Gemma's one-token runs of 1-4 newlines.
    specials = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3, "<start_of_turn>": 105, "<end_of_turn>": 106, "\n": 107,
                "\n\n": 108, "\n\n\n": 109, "\n\n\n\n": 110, "<start_of_image>": 255999, "<end_of_image>": 256000,
                "<image_soft_token>": 262144}
    tok = Tokenizer(WordLevel({**specials, **{f"w{i}": i for i in range(4, 100)}}, unk_token="<unk>"))
    tok.pre_tokenizer = WhitespaceSplit()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    tok.save(str(Path(d, "tokenizer.json")))
    image_tokens = {"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>", "image_token": "<image_soft_token>"}
    Path(d, "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>",
        "unk_token": "<unk>", **image_tokens, "extra_special_tokens": image_tokens, "model_max_length": 131072}))
    Path(d, "preprocessor_config.json").write_text(json.dumps({
        "do_normalize": True, "do_rescale": True, "do_resize": True, "image_mean": [0.5, 0.5, 0.5],
        "image_processor_type": "Gemma3ImageProcessor", "image_seq_length": 256, "image_std": [0.5, 0.5, 0.5],
        "processor_class": "Gemma3Processor", "resample": 2, "rescale_factor": 1 / 255, "size": {"height": 896, "width": 896}}))
    Path(d, "processor_config.json").write_text(json.dumps({"image_seq_length": 256, "processor_class": "Gemma3Processor"}))


G3 = "google/gemma-3-4b-it"
L8, L70, Q7, Q05, G2, MOE = ("meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Llama-3.1-70B-Instruct", "Qwen/Qwen2.5-7B-Instruct",
                             "Qwen/Qwen2.5-0.5B-Instruct", "google/gemma-2b", "Qwen/Qwen3-30B-A3B")

# name -> (model, engine arguments). Two are meant not to fit (70B at 0.9; 7B with too little left for one sequence).
CONFIGS: dict[str, tuple[str, dict]] = {
    "llama8b-u90-8k-s256": (L8, {"gpu_memory_utilization": 0.9, "max_model_len": 8192, "max_num_seqs": 256}),
    "llama8b-u90-8k-s256-eager": (L8, {"gpu_memory_utilization": 0.9, "max_model_len": 8192, "max_num_seqs": 256,
                                       "enforce_eager": True}),
    "llama8b-u90-8k-s256-kvfp8": (L8, {"gpu_memory_utilization": 0.9, "max_model_len": 8192, "max_num_seqs": 256,
                                       "kv_cache_dtype": "fp8"}),
    "llama70b-u90-8k-nofit": (L70, {"gpu_memory_utilization": 0.9, "max_model_len": 8192, "max_num_seqs": 64}),
    "qwen7b-u12-32k-nofit": (Q7, {"gpu_memory_utilization": 0.12, "max_model_len": 32768, "max_num_seqs": 16,
                                  "enforce_eager": True}),
    "llama8b-u50-32k-s64": (L8, {"gpu_memory_utilization": 0.5, "max_model_len": 32768, "max_num_seqs": 64}),
    "llama8b-fp8-u90-8k-s256": (L8, {"gpu_memory_utilization": 0.9, "max_model_len": 8192, "max_num_seqs": 256,
                                     "quantization": "fp8"}),
    "qwen7b-u90-32k-s256": (Q7, {"gpu_memory_utilization": 0.9, "max_model_len": 32768, "max_num_seqs": 256}),
    "gemma2b-u60-8k-s512": (G2, {"gpu_memory_utilization": 0.6, "max_model_len": 8192, "max_num_seqs": 512}),
    "qwen3moe-u90-32k-s256": (MOE, {"gpu_memory_utilization": 0.9, "max_model_len": 32768, "max_num_seqs": 256}),
    "qwen3moe-fp8-u90-32k-s256": (MOE, {"gpu_memory_utilization": 0.9, "max_model_len": 32768, "max_num_seqs": 256,
                                        "quantization": "fp8"}),
    "qwen05b-u30-32k-s128": (Q05, {"gpu_memory_utilization": 0.3, "max_model_len": 32768, "max_num_seqs": 128}),
    # Tensor parallel 2 (the two GPUs of an nvidia-h200-x2 machine), and host memory with and without KV offload.
    "llama8b-tp2-u90-8k-s256": (L8, {"tensor_parallel_size": 2, "gpu_memory_utilization": 0.9, "max_model_len": 8192,
                                     "max_num_seqs": 256}),
    "llama70b-tp2-u90-16k-s128": (L70, {"tensor_parallel_size": 2, "gpu_memory_utilization": 0.9, "max_model_len": 16384,
                                        "max_num_seqs": 128}),
    "qwen3moe-tp2-u90-8k-s256": (MOE, {"tensor_parallel_size": 2, "gpu_memory_utilization": 0.9, "max_model_len": 8192,
                                       "max_num_seqs": 256}),
    "llama8b-offload16-u90-8k-s256": (L8, {"gpu_memory_utilization": 0.9, "max_model_len": 8192, "max_num_seqs": 256,
                                           "kv_offloading_size": 16}),
    "llama8b-tp2-u90-8k-s256-eager": (L8, {"tensor_parallel_size": 2, "gpu_memory_utilization": 0.9, "max_model_len": 8192,
                                           "max_num_seqs": 256, "enforce_eager": True}),
    "qwen7b-tp2-u90-32k-s256": (Q7, {"tensor_parallel_size": 2, "gpu_memory_utilization": 0.9, "max_model_len": 32768,
                                     "max_num_seqs": 256}),
    # The vision encoder's profiling pass: up to 64 images at 16,384 batched tokens, 16 at 4,096, none text-only.
    "gemma3-4b-u90-8k-img4": (G3, {"gpu_memory_utilization": 0.9, "max_model_len": 8192, "limit_mm_per_prompt": {"image": 4}}),
    "gemma3-4b-u90-8k-b4k-img4": (G3, {"gpu_memory_utilization": 0.9, "max_model_len": 8192, "max_num_batched_tokens": 4096,
                                       "limit_mm_per_prompt": {"image": 4}}),
    "gemma3-4b-u90-8k-text": (G3, {"gpu_memory_utilization": 0.9, "max_model_len": 8192, "limit_mm_per_prompt": {"image": 0}}),
}

RUN = """
import json, os, sys, time


def host_rss_gib():
    # Resident host memory of this process and every process under it (EngineCore, its GPU workers): what a pod's
    # memory limit has to hold, KV offload buffers included.
    children = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                children.setdefault(int(open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[1]), []).append(int(p))
            except (OSError, IndexError, ValueError):
                pass
    todo, kib = [os.getpid()], 0
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            kib += next(int(line.split()[1]) for line in open(f"/proc/{pid}/status") if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            pass
    return round(kib / 2**20, 2)


start = time.monotonic()
from vllm import LLM, SamplingParams
args = json.loads(sys.argv[2])
llm = LLM(model=sys.argv[1], load_format="dummy", skip_tokenizer_init=not sys.argv[3:], seed=0, **args)
ready = time.monotonic() - start
out = llm.generate([{"prompt_token_ids": list(range(100, 132))}],
                   SamplingParams(max_tokens=8, ignore_eos=True, detokenize=False), use_tqdm=False)
print("FLEET-RESULT", json.dumps({"ready_s": round(ready, 1), "generated": len(out[0].outputs[0].token_ids),
                                   "host_rss_gib": host_rss_gib()}), flush=True)
"""

NUM = r"(-?[\d.]+)"
PATTERNS = {
    "weights_gib": re.compile(rf"Model loading took {NUM} GiB"),
    "load_s": re.compile(rf"Model loading took {NUM} GiB (?:memory )?and {NUM} seconds"),
    "kv_cache_gib": re.compile(rf"Available KV cache memory: {NUM} GiB"),
    "kv_cache_tokens": re.compile(r"GPU KV cache size: ([\d,]+) tokens"),
    "max_concurrency": re.compile(rf"Maximum concurrency for [\d,]+ tokens per request: {NUM}x"),
    "usage": re.compile(rf"Actual usage is {NUM} GiB for weight, {NUM} GiB for peak activation, {NUM} GiB for non-torch "
                        rf"memory, and {NUM} GiB for CUDAGraph memory"),
    "free_on_startup": re.compile(rf"Free memory on device \({NUM}/{NUM} GiB\) on startup"),
    "init_engine_s": re.compile(rf"init engine \(profile, create kv cache, warmup model\) took {NUM} s"),
    "compile_s": re.compile(rf"\(compilation: {NUM} s\)"),
    "graph_capture": re.compile(rf"Graph capturing finished in {NUM} secs?, took {NUM} GiB"),
    "encoder_profile": re.compile(r"Encoder cache will be initialized with a budget of (\d+) tokens, and profiled with (\d+) image items"),
}


def parse(log: str) -> dict:
    found: dict = {}
    for key, pattern in PATTERNS.items():
        m = pattern.search(log)
        if not m:
            continue
        g = [x.replace(",", "") for x in m.groups()]
        if key == "usage":
            found.update(weights_usage_gib=float(g[0]), activation_gib=float(g[1]), non_torch_gib=float(g[2]),
                         cuda_graph_gib=float(g[3]))
        elif key == "free_on_startup":
            found.update(free_gib=float(g[0]), gpu_memory_gib=float(g[1]))
        elif key == "graph_capture":
            found.update(graph_capture_s=float(g[0]), graph_capture_gib=float(g[1]))
        elif key == "load_s":
            found["load_s"] = float(g[1])
        elif key == "kv_cache_tokens":
            found[key] = int(g[0])
        elif key == "encoder_profile":
            found.update(encoder_budget_tokens=int(g[0]), profiled_images=int(g[1]))
        else:
            found[key] = float(g[0])
    return found


def wait_for_idle_gpu(limit_s: float = 60) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid", "--format=csv,noheader"],
                             capture_output=True, text=True, check=False).stdout.strip()
        if not out:
            return
        time.sleep(2)


def measure(name: str, out_dir: Path, timeout_s: int) -> dict:
    model, args = CONFIGS[name]
    with tempfile.TemporaryDirectory() as d:
        Path(d, "config.json").write_text(json.dumps(ARCHS[model]))
        if model in VISION:
            write_processor(d)
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_USE_FLASHINFER_SAMPLER": os.environ.get("VLLM_USE_FLASHINFER_SAMPLER", "0"),
               "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}
        start = time.monotonic()
        try:
            proc = subprocess.run([sys.executable, "-c", RUN, d, json.dumps(args), *(["processor"] if model in VISION else [])],
                                  capture_output=True, text=True,
                                  env=env, timeout=timeout_s, check=False)
            log, code = proc.stdout + proc.stderr, str(proc.returncode)
        except subprocess.TimeoutExpired as e:
            out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
            err = e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
            log, code = out + err, "timeout"
        wall = time.monotonic() - start
    wait_for_idle_gpu()
    result: dict = {"name": name, "model": model, "settings": args, "exit": code, "wall_s": round(wall, 1), **parse(log)}
    for line in log.splitlines():
        if line.startswith("FLEET-RESULT "):
            result.update(json.loads(line.split(" ", 1)[1]))
    result["served"] = result.get("generated") == 8
    with open(out_dir / "logs.txt", "a", encoding="utf-8") as fh:
        fh.write(f"\n===== {name} ({model}, {json.dumps(args)}) exit {code} in {wall:.0f} s\n{log[-60000:]}\n")
    return result


def main(argv: list[str]) -> int:
    out_dir = Path(argv[0])
    out_dir.mkdir(parents=True, exist_ok=True)
    names = list(CONFIGS) if argv[1:] == ["all"] else argv[1:]
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        print(f"unknown configurations: {', '.join(unknown)}; known: {', '.join(CONFIGS)}", file=sys.stderr)
        return 2
    timeout_s = int(os.environ.get("FLEET_RUN_TIMEOUT_S", "300"))
    # Stop starting configurations when the call's remaining time (FLEET_CALL_BUDGET_S) could not hold one.
    deadline = time.monotonic() + float(os.environ.get("FLEET_CALL_BUDGET_S", "1e9"))
    for name in names:
        if deadline - time.monotonic() < min(timeout_s, 200):
            print(name, "skipped: not enough time left in this call", flush=True)
            continue
        timeout_s = min(timeout_s, int(deadline - time.monotonic()))
        result = measure(name, out_dir, timeout_s)
        with open(out_dir / "results.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(result) + "\n")
        brief = {k: result.get(k) for k in ("exit", "wall_s", "ready_s", "weights_gib", "activation_gib", "non_torch_gib",
                                             "cuda_graph_gib", "kv_cache_gib", "kv_cache_tokens", "host_rss_gib", "served")}
        print(name, json.dumps(brief), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
