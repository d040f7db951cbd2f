#!/usr/bin/env python3
"""Turn the logs of `scripts/h200_measure.py` into calibration records (YAML on stdout) for
fleet/catalog/calibration.yaml: the settings each configuration ran with, the numbers vLLM printed, and the
log lines they were read from.

    python3 scripts/h200_records.py logs.txt [logs.txt ...] > records.yaml
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).parent))
from h200_measure import PATTERNS, RECIPES, SCRIPT_KEYS, parse

HEADER = re.compile(r"^===== (\S+) \((\S+), (\{.*\})\) exit (\S+) in (\d+) s$", re.M)
# vLLM's offline LLM class on a GPU of 70 GiB or more batches 16,384 tokens (its log: "Chunked prefill is enabled
# with max_num_batched_tokens=16384").
LLM_CLASS_BATCHED_TOKENS = 16384
# Constants of fleet/capacity/memory.py fitted on these runs (the rest are held out).
FITTED = {"llama8b-u90-8k-s256", "llama8b-u50-32k-s64", "qwen7b-u90-32k-s256", "qwen3moe-u90-32k-s256",
          "qwen3moe-u90-8k-s256-eager", "llama8b-tp2-u90-8k-s256", "qwen7b-tp2-u90-32k-s256", "gemma3-4b-u90-8k-b4k-img4",
          "gemma3-4b-u90-8k-img4-serve", "gemma3-4b-u90-8k-b4k-img4-serve", "llama8b-u90-8k-s256-eager-free",
          "llama8b-u90-8k-s1024-eager-free", "gemma3-4b-u90-8k-img4-s256-serve-eager", "llama8b-u90-8k-s256-eager-free-fi",
          "llama8b-u90-8k-s1024-eager-free-fi", "gemma3-4b-u90-8k-img4-s256-serve-eager-fi"}
LINES = re.compile("|".join(p.pattern for p in PATTERNS.values()) + r"|ValueError: (?:To serve|No available memory)"
                   r"|Chunked prefill is enabled|torch.OutOfMemoryError: .*|CUDA error .*out of memory|Using V2 Model Runner"
                   r"|Using FlashInfer for top-p & top-k sampling")


def records(text: str, results: dict[str, dict] | None = None) -> list[dict]:
    """`results`: results.jsonl by configuration, whose numbers were parsed from the whole log (logs.txt keeps its
    head and tail: a long error dump can push the start-up lines out)."""
    out = []
    heads = list(HEADER.finditer(text))
    for i, head in enumerate(heads):
        body = text[head.end(): heads[i + 1].start() if i + 1 < len(heads) else len(text)]
        name, model, given, code = head.group(1), head.group(2), json.loads(head.group(3)), head.group(4)
        whole = (results or {}).get(name, {})
        args = {k: v for k, v in given.items() if k not in SCRIPT_KEYS}
        if "recipe" in given:       # the checkpoint's quantization_config, as its config.json carried it
            args["checkpoint_quantization"] = RECIPES[given["recipe"]]["quantization_config"]
        found = {**{k: whole[k] for k in whole if k not in ("name", "model", "settings", "exit", "served")}, **parse(body)}
        ready = re.search(r'FLEET-RESULT (\{.*\})', body)
        result = json.loads(ready.group(1)) if ready else {}
        served = result.get("generated") == 8
        batched = re.search(r"max_num_batched_tokens=(\d+)", body)
        flashinfer = given.get("sampler") == "flashinfer"
        installed = "FlashInfer autotune" in body       # vLLM's kernel warm-up names FlashInfer's autotune cache
        settings = {"gpu_memory_gib": found.get("gpu_memory_gib", 139.8), "tensor_parallel_size": 1, **args,
                    "max_num_batched_tokens": args.get("max_num_batched_tokens",
                                                       int(batched.group(1)) if batched else LLM_CLASS_BATCHED_TOKENS),
                    "flashinfer_installed": installed, "flashinfer_sampler": flashinfer}
        observed = {k: found[k] for k in ("weights_gib", "activation_gib", "non_torch_gib", "cuda_graph_gib", "kv_cache_gib",
                                          "kv_cache_tokens") if k in found}
        observed["fits"] = served and code == "0"
        if "ready_s" in result:
            observed["startup_s"] = result["ready_s"]
        if "host_rss_gib" in result:
            observed["host_rss_gib"] = result["host_rss_gib"]   # the process tree's resident host memory, serving
        if "Using V2 Model Runner" in body or "runner" in whole:
            observed["runner"] = "v2" if "Using V2 Model Runner" in body else whole["runner"]   # the model runner vLLM chose
        if "started" in result:
            observed["started"] = result["started"]   # what the started server held and what the device had free
        if "serve" in result:
            # serving images: the allocator's peak beyond what the engine held once started, and what the device had free
            observed["serve"] = result["serve"]
        elif "serve_images" in given and "torch.OutOfMemoryError" in body:
            requests, per_request = given["serve_images"]
            observed["serve"] = {"requests": requests, "images_per_request": per_request, "served": 0, "out_of_memory": True}
        seen, lines = set(), []
        for line in body.splitlines():
            m = LINES.search(line)
            if m and m.group(0) not in seen:
                seen.add(m.group(0))
                lines.append(re.sub(r"^.*?\] ", "", line.strip())[:400])
        out.append({"id": f"h200-{name}", "source": f"measured on H200, vLLM 0.26.0, dummy weights (scripts/h200_measure.py {name})",
                    "engine": "v1", "vllm": "0.26.0", "model": model, "gpu": "H200", "fitted": name in FITTED,
                    **({"machine": "nvidia-h200-x2 (2 H200 of one host)"} if args.get("tensor_parallel_size", 1) > 1 else {}),
                    "note": ("flashinfer-python 0.6.14 installed, as in vLLM's image (on Hopper vLLM's kernel warm-up then autotunes "
                             "its kernels with a forward pass of max_num_batched_tokens after the KV cache is allocated); "
                             if installed else "flashinfer not installed; ")
                            + ("FlashInfer sampler on (VLLM_USE_FLASHINFER_SAMPLER=1, its kernels compiled before the run)"
                               if flashinfer else "FlashInfer sampler off (VLLM_USE_FLASHINFER_SAMPLER=0)")
                            + "; vLLM's offline LLM class; startup_s is from the start of the Python process to a ready engine "
                              "(no weights read)",
                    "settings": settings, "observed": observed, "log": lines})
    return out


def main(paths: list[str]) -> int:
    recs = []
    for p in paths:
        beside = Path(p).with_name("results.jsonl")
        results = {r["name"]: r for r in map(json.loads, beside.read_text().splitlines())} if beside.exists() else {}
        recs += records(Path(p).read_text(encoding="utf-8"), results)
    yaml.safe_dump(recs, sys.stdout, sort_keys=False, width=200, allow_unicode=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
