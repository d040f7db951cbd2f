#!/usr/bin/env python3
"""The sampling step's memory, native against FlashInfer's, on a real GPU: what the profile of a vLLM release before
0.26 adds per dummy request × vocabulary entry with each sampler (fleet.capacity.memory PROFILES `v1-native-sampler` and
`v1-flashinfer-sampler`). Only torch and flashinfer are needed (no vLLM: releases before 0.26 pin an older torch than
the lent machine's), so the steps are written out as those releases ran them:

- native: the fp32 logits, vLLM's sort-based top-k/top-p (`apply_top_k_top_p_pytorch`, which releases before 0.26
  ran at every batch size), softmax, exponential noise and argmax;
- flashinfer: the fp32 logits and `flashinfer.sampling.top_k_top_p_sampling_from_logits` (vLLM's `flashinfer_sample`
  with both top-k and top-p set, as the profile's dummy requests are); and its older form, softmax then
  `top_k_top_p_sampling_from_probs`.

Each step starts from 16-bit logits already allocated (the model's output) and records the allocator's peak above
them, in bytes per logit. Results: OUT_DIR/sampler_peak.json.

    python3 scripts/h200_sampler_peak.py OUT_DIR
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

SHAPES = [(256, 128256), (1024, 128256), (1024, 151936), (512, 262208), (1024, 262208)]


def top_k_top_p_sort(logits: torch.Tensor, k: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """vLLM's sort-based top-k/top-p (v1/sample/ops/topk_topp_sampler.py, apply_top_k_top_p_pytorch)."""
    logits_sort, logits_idx = logits.sort(dim=-1, descending=False)
    top_k_mask = logits_sort.size(1) - k.to(torch.long)
    top_k_mask = logits_sort.gather(1, top_k_mask.unsqueeze(dim=1))
    top_k_mask = logits_sort < top_k_mask
    logits_sort.masked_fill_(top_k_mask, -float("inf"))
    probs_sort = logits_sort.softmax(dim=-1, dtype=torch.float32)
    probs_sum = torch.cumsum(probs_sort, dim=-1, out=probs_sort)
    top_p_mask = probs_sum <= 1 - p.unsqueeze(dim=1)
    top_p_mask[:, -1] = False
    logits_sort.masked_fill_(top_p_mask, -float("inf"))
    return logits.scatter_(dim=-1, index=logits_idx, src=logits_sort)


def native(raw: torch.Tensor, k: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    logits = top_k_top_p_sort(raw.to(torch.float32), k, p)
    probs = logits.softmax(dim=-1, dtype=torch.float32)
    q = torch.empty_like(probs).exponential_()
    return probs.div_(q).argmax(dim=-1)


def flashinfer_logits(raw: torch.Tensor, k: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    import flashinfer.sampling
    return flashinfer.sampling.top_k_top_p_sampling_from_logits(raw.to(torch.float32).contiguous(), k, p, deterministic=True)


def flashinfer_probs(raw: torch.Tensor, k: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    import flashinfer.sampling
    probs = raw.to(torch.float32).softmax(dim=-1, dtype=torch.float32)
    return flashinfer.sampling.top_k_top_p_sampling_from_probs(probs, k, p, deterministic=True)


def peak_per_logit(step, rows: int, vocab: int) -> float:
    raw = torch.randn(rows, vocab, device="cuda", dtype=torch.bfloat16)
    k = torch.full((rows,), vocab - 1, device="cuda", dtype=torch.int32)   # the profile's dummy top-k and top-p
    p = torch.full((rows,), 0.9, device="cuda", dtype=torch.float32)
    step(raw, k, p)                                  # kernels loaded (and FlashInfer's compiled) before measuring
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    out = step(raw, k, p)
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - before
    del out, raw, k, p
    torch.cuda.empty_cache()
    return peak / (rows * vocab)


def main(argv: list[str]) -> int:
    out_dir = Path(argv[0])
    out_dir.mkdir(parents=True, exist_ok=True)
    steps = {"native": native, "flashinfer_logits": flashinfer_logits, "flashinfer_probs": flashinfer_probs}
    result: dict = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "shapes": []}
    try:
        import flashinfer
        result["flashinfer"] = flashinfer.__version__
    except ImportError as e:
        result["flashinfer"] = f"not importable: {e}"
        steps = {"native": native}
    t = time.monotonic()
    for rows, vocab in SHAPES:
        row: dict[str, float] = {"rows": rows, "vocab": vocab}
        for name, step in steps.items():
            row[f"{name}_bytes_per_logit"] = round(peak_per_logit(step, rows, vocab), 2)
        result["shapes"].append(row)
        print(json.dumps(row), flush=True)
    result["seconds"] = round(time.monotonic() - t, 1)
    (out_dir / "sampler_peak.json").write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
