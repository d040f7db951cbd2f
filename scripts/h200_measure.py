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

A configuration can also name a quantized checkpoint's recipe (`recipe`: its quantization_config goes into the
config.json), or run the engine in the measuring process to read what the started server holds and leaves free
(`free`), to serve requests with random images and record the allocator's peak (`serve_images`: requests, images
each), or to list the loaded parameters and buffers by module (`inventory`); `free` and `serve_images` also read
torch's allocator once the server has started (held, cached in its default pool, private pools, device free).
Runs use the native sampler (VLLM_USE_FLASHINFER_SAMPLER=0) unless a configuration names `sampler: flashinfer`
(0.26's default where FlashInfer is installed, as in vLLM's image; unpack fi.tar.xz from `scripts/h200_pack.sh` over
the site); FlashInfer's sampling kernels are then compiled once, before the first such run, so that its start-up
time is not counted (`flashinfer_jit.json` says how long that took).
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


# Checkpoint quantization recipes (the `quantization_config` of a quantized checkpoint's config.json, as
# llm-compressor writes it): the dummy weights take the recipe's layout, so vLLM's "Model loading took" shows which
# layers the recipe keeps 16-bit.
def compressed_tensors(num_bits: int, ignore: list[str]) -> dict:
    group: dict[str, object]
    if num_bits == 8:     # FP8_DYNAMIC: per-channel FP8 weights, dynamic per-token FP8 activations
        weights = {"num_bits": 8, "type": "float", "strategy": "channel", "dynamic": False, "symmetric": True}
        group = {"targets": ["Linear"], "weights": weights,
                 "input_activations": {"num_bits": 8, "type": "float", "strategy": "token", "dynamic": True, "symmetric": True}}
        fmt = "float-quantized"
    else:                 # W4A16: 4-bit integer weights in groups of 128, 16-bit activations
        weights = {"num_bits": 4, "type": "int", "strategy": "group", "group_size": 128, "dynamic": False, "symmetric": True}
        group, fmt = {"targets": ["Linear"], "weights": weights, "input_activations": None}, "pack-quantized"
    return {"quantization_config": {"quant_method": "compressed-tensors", "format": fmt, "config_groups": {"group_0": group},
                                    "ignore": ignore, "quantization_status": "compressed"}}


RECIPES: dict[str, dict] = {
    "ct-fp8": compressed_tensors(8, ["lm_head"]),
    "ct-fp8-attn16": compressed_tensors(8, ["lm_head", "re:.*self_attn.*"]),
    "ct-w4a16": compressed_tensors(4, ["lm_head"]),
}

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
    # Quantized checkpoints (RECIPES): which layers each recipe keeps 16-bit.
    "llama8b-ct-fp8-u90-8k-eager": (L8, {"gpu_memory_utilization": 0.9, "max_model_len": 8192, "max_num_seqs": 256,
                                         "enforce_eager": True, "recipe": "ct-fp8"}),
    "llama8b-ct-fp8-attn16-u90-8k-eager": (L8, {"gpu_memory_utilization": 0.9, "max_model_len": 8192, "max_num_seqs": 256,
                                                "enforce_eager": True, "recipe": "ct-fp8-attn16"}),
    "llama8b-ct-w4a16-u90-8k-eager": (L8, {"gpu_memory_utilization": 0.9, "max_model_len": 8192, "max_num_seqs": 256,
                                           "enforce_eager": True, "recipe": "ct-w4a16"}),
    # Serving images (the engine in this process): the peak beyond the memory held after start-up while a step's
    # images go through the encoder — 16 requests of 4 images at 16,384 batched tokens, 8 at 4,096 — and the text-only
    # model's parameters and buffers by module.
    "gemma3-4b-u90-8k-img4-serve": (G3, {"gpu_memory_utilization": 0.9, "max_model_len": 8192, "limit_mm_per_prompt": {"image": 4},
                                         "serve_images": [16, 4]}),
    # ... and closer to the card's end: is the encoder's pass still in the memory gpu_memory_utilization leaves?
    "gemma3-4b-u93-8k-img4-serve": (G3, {"gpu_memory_utilization": 0.93, "max_model_len": 8192, "limit_mm_per_prompt": {"image": 4},
                                         "serve_images": [16, 4]}),
    "gemma3-4b-u95-8k-img4-serve": (G3, {"gpu_memory_utilization": 0.95, "max_model_len": 8192, "limit_mm_per_prompt": {"image": 4},
                                         "serve_images": [16, 4]}),
    # What a started server holds outside the budget, by max_num_seqs (eager: no CUDA graphs in it).
    "gemma3-4b-u90-8k-img4-s256-serve-eager": (G3, {"gpu_memory_utilization": 0.9, "max_model_len": 8192, "max_num_seqs": 256,
                                                    "enforce_eager": True, "limit_mm_per_prompt": {"image": 4},
                                                    "serve_images": [16, 4]}),
    "llama8b-u90-8k-s256-eager-free": (L8, {"gpu_memory_utilization": 0.9, "max_model_len": 8192, "max_num_seqs": 256,
                                            "enforce_eager": True, "free": True}),
    "llama8b-u90-8k-s1024-eager-free": (L8, {"gpu_memory_utilization": 0.9, "max_model_len": 8192, "max_num_seqs": 1024,
                                             "enforce_eager": True, "free": True}),
    "gemma3-4b-u90-8k-b4k-img4-serve": (G3, {"gpu_memory_utilization": 0.9, "max_model_len": 8192, "max_num_batched_tokens": 4096,
                                             "limit_mm_per_prompt": {"image": 4}, "serve_images": [8, 4]}),
    "gemma3-4b-u90-8k-text-inventory": (G3, {"gpu_memory_utilization": 0.9, "max_model_len": 8192, "enforce_eager": True,
                                             "limit_mm_per_prompt": {"image": 0}, "inventory": True}),
    # The FlashInfer sampler (0.26's default) against the native one: the startup profile and what a started server
    # leaves, dense models (the V2 model runner: its warm-up samples with FlashInfer alone) and MoE (the V1 runner:
    # FlashInfer, then the native path for requests with their own seed); and the encoder's pass again.
    "llama8b-u90-8k-s256-eager-free-fi": (L8, {"gpu_memory_utilization": 0.9, "max_model_len": 8192, "max_num_seqs": 256,
                                               "enforce_eager": True, "free": True, "sampler": "flashinfer"}),
    "llama8b-u90-8k-s1024-eager-free-fi": (L8, {"gpu_memory_utilization": 0.9, "max_model_len": 8192, "max_num_seqs": 1024,
                                                "enforce_eager": True, "free": True, "sampler": "flashinfer"}),
    "gemma3-4b-u90-8k-img4-s256-serve-eager-fi": (G3, {"gpu_memory_utilization": 0.9, "max_model_len": 8192, "max_num_seqs": 256,
                                                       "enforce_eager": True, "limit_mm_per_prompt": {"image": 4},
                                                       "serve_images": [16, 4], "sampler": "flashinfer"}),
    "gemma3-4b-u95-8k-img4-serve-fi": (G3, {"gpu_memory_utilization": 0.95, "max_model_len": 8192, "limit_mm_per_prompt": {"image": 4},
                                            "serve_images": [16, 4], "sampler": "flashinfer"}),
    "gemma3-4b-u93-8k-img4-serve-fi": (G3, {"gpu_memory_utilization": 0.93, "max_model_len": 8192, "limit_mm_per_prompt": {"image": 4},
                                            "serve_images": [16, 4], "sampler": "flashinfer"}),
    "gemma3-4b-u90-8k-img4-s1024-serve-eager-fi": (G3, {"gpu_memory_utilization": 0.9, "max_model_len": 8192, "max_num_seqs": 1024,
                                                        "enforce_eager": True, "limit_mm_per_prompt": {"image": 4},
                                                        "serve_images": [16, 4], "sampler": "flashinfer"}),
    "qwen3moe-u90-8k-s256-eager-free": (MOE, {"gpu_memory_utilization": 0.9, "max_model_len": 8192, "max_num_seqs": 256,
                                              "enforce_eager": True, "free": True}),
    "qwen3moe-u90-8k-s256-eager-free-fi": (MOE, {"gpu_memory_utilization": 0.9, "max_model_len": 8192, "max_num_seqs": 256,
                                                 "enforce_eager": True, "free": True, "sampler": "flashinfer"}),
    "llama8b-u90-8k-s256-fi": (L8, {"gpu_memory_utilization": 0.9, "max_model_len": 8192, "max_num_seqs": 256,
                                    "sampler": "flashinfer"}),
}
# Keys of a configuration that are instructions to this script, not engine arguments.
SCRIPT_KEYS = ("recipe", "serve_images", "inventory", "free", "sampler")

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


def inventory(model):
    # GiB of parameters and buffers by module name, layer numbers folded ("layers.*"), with their dtypes.
    import re
    out = {}
    for kind, items in (("param", model.named_parameters()), ("buffer", model.named_buffers())):
        for name, x in items:
            key = f"{kind} {re.sub(r'[.][0-9]+[.]', '.*.', name)} {str(x.dtype).replace('torch.', '')}"
            out[key] = out.get(key, 0) + x.numel() * x.element_size()
    return {k: round(v / 2**30, 4) for k, v in sorted(out.items())}


def allocator():
    # What the started server holds (allocated), what torch's allocator keeps cached in its default pool (freed
    # blocks a later allocation reuses: on a failed cudaMalloc it also releases them and retries) and in private pools
    # (the CUDA graphs', not reusable outside them), and the device's free memory.
    import torch
    torch.cuda.synchronize()
    cached = private = 0
    for seg in torch.cuda.memory_snapshot():
        if tuple(seg.get("segment_pool_id") or (0, 0)) != (0, 0):
            private += seg["total_size"]
        else:
            cached += sum(b["size"] for b in seg["blocks"] if b["state"] == "inactive")
    return {"held_gib": round(torch.cuda.memory_allocated() / 2**30, 3), "reserved_gib": round(torch.cuda.memory_reserved() / 2**30, 3),
            "cached_gib": round(cached / 2**30, 3), "private_pools_gib": round(private / 2**30, 3),
            "free_gib": round(torch.cuda.mem_get_info()[0] / 2**30, 3)}


start = time.monotonic()
from vllm import LLM, SamplingParams
args, opts = json.loads(sys.argv[2]), json.loads(sys.argv[3])
llm = LLM(model=sys.argv[1], load_format="dummy", skip_tokenizer_init=not opts.get("processor"), seed=0, **args)
ready = time.monotonic() - start
params = SamplingParams(max_tokens=8, ignore_eos=True, detokenize=False)
out = llm.generate([{"prompt_token_ids": list(range(100, 132))}], params, use_tqdm=False)
result = {"ready_s": round(ready, 1), "generated": len(out[0].outputs[0].token_ids), "host_rss_gib": host_rss_gib()}
if opts.get("inventory"):
    result["inventory"] = llm.apply_model(inventory)[0]
if opts.get("free"):
    # The engine runs in this process: what the started server holds, and what the device has free.
    import torch
    torch.cuda.synchronize()
    result["started"] = allocator()
if opts.get("serve_images"):
    # The engine runs in this process (VLLM_ENABLE_V1_MULTIPROCESSING=0): torch's allocator sees the worker's memory.
    import numpy, torch
    from PIL import Image
    requests, per_request = opts["serve_images"]
    rng = numpy.random.default_rng(0)
    prompts = [{"prompt": "<bos> " + "<start_of_image> w5 " * per_request + "w6",
                "multi_modal_data": {"image": [Image.fromarray(rng.integers(0, 255, (896, 896, 3), dtype=numpy.uint8))
                                               for _ in range(per_request)]}} for _ in range(requests)]
    torch.cuda.synchronize()
    result["started"] = allocator()
    held, free = torch.cuda.memory_allocated(), torch.cuda.mem_get_info()[0]
    torch.cuda.reset_peak_memory_stats()
    t0 = time.monotonic()
    served = llm.generate(prompts, SamplingParams(max_tokens=4, ignore_eos=True, detokenize=False), use_tqdm=False)
    torch.cuda.synchronize()
    result["serve"] = {"requests": requests, "images_per_request": per_request,
                       "prompt_tokens": len(served[0].prompt_token_ids), "served": sum(len(o.outputs[0].token_ids) == 4 for o in served),
                       "held_gib": round(held / 2**30, 3), "free_gib": round(free / 2**30, 3),
                       "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 3),
                       "transient_gib": round((torch.cuda.max_memory_allocated() - held) / 2**30, 3),
                       "reserved_gib": round(torch.cuda.memory_reserved() / 2**30, 3), "seconds": round(time.monotonic() - t0, 1)}
print("FLEET-RESULT", json.dumps(result), flush=True)
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


def kept(log: str, head: int = 30000, tail: int = 30000) -> str:
    """The start-up lines and the end of a log (an error's dump of the scheduler state can run to megabytes)."""
    return log if len(log) <= head + tail else f"{log[:head]}\n[... {len(log) - head - tail} characters ...]\n{log[-tail:]}"


def measure(name: str, out_dir: Path, timeout_s: int) -> dict:
    model, settings = CONFIGS[name]
    args = {k: v for k, v in settings.items() if k not in SCRIPT_KEYS}
    opts = {"processor": model in VISION, **{k: v for k, v in settings.items() if k in SCRIPT_KEYS}}
    with tempfile.TemporaryDirectory() as d:
        Path(d, "config.json").write_text(json.dumps({**ARCHS[model], **RECIPES.get(settings.get("recipe", ""), {})}))
        if model in VISION:
            write_processor(d)
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_USE_FLASHINFER_SAMPLER": "1" if opts.get("sampler") == "flashinfer" else "0",
               "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}
        if "serve_images" in opts or "inventory" in opts or "free" in opts:
            env["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        start = time.monotonic()
        try:
            proc = subprocess.run([sys.executable, "-c", RUN, d, json.dumps(args), json.dumps(opts)],
                                  capture_output=True, text=True,
                                  env=env, timeout=timeout_s, check=False)
            log, code = proc.stdout + proc.stderr, str(proc.returncode)
        except subprocess.TimeoutExpired as e:
            out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
            err = e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
            log, code = out + err, "timeout"
        wall = time.monotonic() - start
    wait_for_idle_gpu()
    result: dict = {"name": name, "model": model, "settings": settings, "exit": code, "wall_s": round(wall, 1), **parse(log)}
    for line in log.splitlines():
        if line.startswith("FLEET-RESULT "):
            result.update(json.loads(line.split(" ", 1)[1]))
    result["served"] = result.get("generated") == 8
    # Which model runner and sampler the engine chose (0.26 logs both once).
    result["runner"] = "v2" if "Using V2 Model Runner" in log else "v1"
    result["sampler"] = "flashinfer" if "Using FlashInfer for top-p & top-k sampling" in log else "native"
    with open(out_dir / "logs.txt", "a", encoding="utf-8") as fh:
        fh.write(f"\n===== {name} ({model}, {json.dumps(settings)}) exit {code} in {wall:.0f} s\n{kept(log)}\n")
    return result


WARM_FLASHINFER = """
import time, torch
t = time.monotonic()
import flashinfer.sampling as s
logits = torch.randn(4, 1000, device="cuda")
s.top_k_top_p_sampling_from_logits(logits, torch.full((4,), 50, device="cuda", dtype=torch.int32),
                                   torch.full((4,), 0.9, device="cuda"), deterministic=True)
torch.cuda.synchronize()
print(round(time.monotonic() - t, 1))
"""


def warm_flashinfer(out_dir: Path) -> bool:
    """Compile FlashInfer's sampling kernels once (its JIT cache then serves every run), timing it."""
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", WARM_FLASHINFER], capture_output=True, text=True, check=False, timeout=600)
    record = {"exit": proc.returncode, "seconds": round(time.monotonic() - start, 1), "log": (proc.stdout + proc.stderr)[-4000:]}
    (out_dir / "flashinfer_jit.json").write_text(json.dumps(record, indent=1))
    print("flashinfer sampling kernels:", record["exit"], record["seconds"], "s", flush=True)
    return proc.returncode == 0


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
    flashinfer_ok = any(CONFIGS[n][1].get("sampler") == "flashinfer" for n in names) and warm_flashinfer(out_dir)
    for name in names:
        if CONFIGS[name][1].get("sampler") == "flashinfer" and not flashinfer_ok:
            print(name, "skipped: FlashInfer's sampling kernels did not build", flush=True)
            continue
        if deadline - time.monotonic() < min(timeout_s, 200):
            print(name, "skipped: not enough time left in this call", flush=True)
            continue
        timeout_s = min(timeout_s, int(deadline - time.monotonic()))
        result = measure(name, out_dir, timeout_s)
        with open(out_dir / "results.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(result) + "\n")
        brief = {k: result.get(k) for k in ("exit", "wall_s", "ready_s", "weights_gib", "activation_gib", "non_torch_gib",
                                             "cuda_graph_gib", "kv_cache_gib", "kv_cache_tokens", "host_rss_gib", "served",
                                             "serve", "started", "runner", "sampler")}
        print(name, json.dumps(brief), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
