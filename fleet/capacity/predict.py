"""`vllm-fleet predict`: one serving configuration and one load → the latencies `vllm bench serve` would measure."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from typing import Any

from fleet.argtypes import positive_float, positive_int
from fleet.capacity.calibration_data import calibrated
from fleet.capacity.lengths import LengthError, check_lengths, longest
from fleet.capacity.memory import (
    Arch,
    Settings,
    batch_limits_problem,
    default_batched_tokens,
    engine_profile_for,
    model_catalog,
    size,
)
from fleet.capacity.perf import gpu_models, model_cost
from fleet.capacity.simulate import Engine, Load, summary, typical
from fleet.catalog import InstanceType, gpu_instance_types

CALIBRATED_VLLM = "0.26.0"     # the release the step constants were measured with
BENCH_DEFAULT_PROMPTS = 1000   # `vllm bench serve --num-prompts` default


class PredictError(ValueError):
    """Bad input: the message names the option and the fix (exit 2)."""


@dataclass(frozen=True)
class Prediction:
    metrics: dict[str, Any]
    fits: bool
    reason: str
    engine: Engine | None


def add_parser(sub: Any, vllm_version_type: Any, newest: str) -> None:
    p = sub.add_parser(
        "predict", help="predicted TTFT, ITL, TPOT and throughput of one configuration under one load",
        description="Simulate vLLM's scheduler with the calibrated step model (fleet/capacity) for a closed-loop "
                    "(--concurrency) or Poisson (--request-rate) load of fixed lengths (or log-normal ones with --*-tokens-p95), as `vllm bench serve "
                    "--dataset-name random --ignore-eos` measures it. Exit 1 when the model does not fit the GPU, 2 on bad input.")
    p.add_argument("--model", required=True, help="Hugging Face id from fleet/catalog/models.yaml")
    p.add_argument("--gpu", required=True, help="instance type from fleet/catalog/gpus.yaml (p5.48xlarge, g6e.xlarge...)")
    p.add_argument("--tp", type=positive_int, default=1, help="tensor parallel size (default 1)")
    p.add_argument("--max-num-seqs", type=positive_int, default=None, help="default: vLLM's for the GPU")
    p.add_argument("--max-num-batched-tokens", type=positive_int, default=None, help="default: vLLM's for the GPU")
    p.add_argument("--max-model-len", type=positive_int, default=None, help="default: the model's context")
    p.add_argument("--quantization", default=None, choices=("fp8",), help="fp8 weights (default: the checkpoint's dtype)")
    p.add_argument("--input-tokens", type=positive_int, required=True, help="prompt tokens per request")
    p.add_argument("--output-tokens", type=positive_int, required=True, help="output tokens per request (ignore-eos)")
    p.add_argument("--input-tokens-p95", type=positive_int, default=None,
                   help="lengths vary: 95th percentile of the prompt tokens (log-normal with --input-tokens as its mean)")
    p.add_argument("--output-tokens-p95", type=positive_int, default=None, help="95th percentile of the output tokens, likewise")
    load = p.add_mutually_exclusive_group(required=True)
    load.add_argument("--concurrency", type=positive_int, help="closed loop: requests in flight (--max-concurrency)")
    load.add_argument("--request-rate", type=positive_float, help="open loop: Poisson arrivals, requests per second")
    p.add_argument("--num-prompts", type=positive_int, default=BENCH_DEFAULT_PROMPTS,
                   help=f"requests in the run (default {BENCH_DEFAULT_PROMPTS}, as vllm bench serve)")
    p.add_argument("--vllm-version", type=vllm_version_type, default=None, help=f"default: the newest bundled ({newest})")
    p.add_argument("--json", action="store_true", help="print JSON: ttft_ms {p50,p95,p99}, itl_ms {p50,p95}, tpot_ms {p50}, "
                                                       "output_tokens_per_s, requests_per_s")


def instance(name: str) -> InstanceType:
    inst = gpu_instance_types().get(name)
    if inst is None:
        raise PredictError(f"--gpu {name}: not an instance type of fleet/catalog/gpus.yaml — e.g. "
                           f"{', '.join(sorted(gpu_instance_types())[:4])}, ...")
    if inst.gpu_model not in gpu_models():
        raise PredictError(f"--gpu {name}: its {inst.gpu_model} has no performance facts in fleet/catalog/gpus.yaml gpu_models")
    return inst


def parallelism_problem(arch: Arch, inst: InstanceType, tp: int) -> str | None:
    if tp > inst.gpus:
        return f"tensor parallel {tp} needs {tp} GPUs; {inst.instance_type} has {inst.gpus}"
    heads = arch.attention_heads or arch.kv_heads
    if heads % tp:
        return f"tensor parallel {tp} does not divide the {heads} attention heads"
    return None


def engine(arch: Arch, inst: InstanceType, *, tp: int = 1, max_model_len: int | None = None, max_num_seqs: int | None = None,
           max_num_batched_tokens: int | None = None, quantization: str | None = None,
           vllm_version: str | None = None) -> tuple[Engine | None, str]:
    """The simulated engine of one replica, or None and why it cannot start. Limits vLLM refuses at startup (a token
    budget, given or the GPU's default, below a given max_num_seqs) are bad input: PredictError."""
    problem = parallelism_problem(arch, inst, tp)
    if problem:
        return None, problem
    settings = Settings(gpu_memory_gib=inst.gpu_usable_memory_gib, gpus_per_node=inst.gpus, tensor_parallel_size=tp,
                        max_model_len=max_model_len or arch.max_context, max_num_seqs=max_num_seqs,
                        max_num_batched_tokens=max_num_batched_tokens, quantization=quantization, gpu_model=inst.gpu_model,
                        engine_profile=engine_profile_for(vllm_version or CALIBRATED_VLLM))
    limits = batch_limits_problem(settings)
    if limits:
        raise PredictError(f"--max-num-batched-tokens / --max-num-seqs on {inst.instance_type}: {limits}")
    sized = size(arch, settings, explain=False)
    if not sized.fits:
        return None, sized.reason
    batched, seqs = default_batched_tokens(settings)
    constants, _ = calibrated(inst.gpu_model)
    cost = model_cost(arch, settings, gpu_models()[inst.gpu_model], constants)
    return Engine(cost=cost, max_num_seqs=seqs, max_num_batched_tokens=batched,
                  kv_tokens=sized.kv_cache_tokens), sized.reason


def run(args: argparse.Namespace) -> int:
    try:
        arch = model_catalog().get(args.model)
        if arch is None:
            raise PredictError(f"--model {args.model}: not in fleet/catalog/models.yaml")
        inst = instance(args.gpu)
        max_len = args.max_model_len or arch.max_context
        if max_len and args.input_tokens + args.output_tokens > max_len:
            raise PredictError(f"--input-tokens {args.input_tokens} + --output-tokens {args.output_tokens} exceed "
                               f"--max-model-len {max_len}: vLLM rejects such requests — raise --max-model-len or shorten them")
        lengths = (args.input_tokens, args.input_tokens_p95, args.output_tokens, args.output_tokens_p95)
        try:
            check_lengths(*lengths)
        except LengthError as exc:
            raise PredictError(f"--{exc.field.replace('_', '-')}: {exc.message}") from None
        tokens = sum(longest(*lengths))
        if max_len and tokens > max_len:
            raise PredictError(f"the 95th-percentile request ({tokens} tokens) exceeds --max-model-len {max_len}: vLLM "
                               "rejects the longest requests — raise --max-model-len or lower the p95")
        eng, reason = engine(arch, inst, tp=args.tp, max_model_len=args.max_model_len, max_num_seqs=args.max_num_seqs,
                             max_num_batched_tokens=args.max_num_batched_tokens, quantization=args.quantization,
                             vllm_version=args.vllm_version)
    except PredictError as exc:
        print(f"predict: {exc}", file=sys.stderr)
        return 2
    if eng is None:
        print(f"predict: {args.model} cannot be served on {args.gpu} at TP {args.tp}: {reason}", file=sys.stderr)
        return 1
    load = Load(args.input_tokens, args.output_tokens, concurrency=args.concurrency, request_rate=args.request_rate,
                num_prompts=args.num_prompts, input_p95=args.input_tokens_p95, output_p95=args.output_tokens_p95,
                max_model_len=args.max_model_len or arch.max_context or 0)
    out: dict[str, Any] = summary(typical(eng, load))
    _, board = calibrated(inst.gpu_model)
    out["calibration"] = {"gpu_model": board, "vllm": CALIBRATED_VLLM, "same_board": board == inst.gpu_model}
    out["engine"] = {"max_num_seqs": eng.max_num_seqs, "max_num_batched_tokens": eng.max_num_batched_tokens,
                     "kv_cache_tokens": eng.kv_tokens}
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        what = f"{args.concurrency} in flight" if args.concurrency else f"{args.request_rate} req/s (Poisson)"
        print(f"{args.model} on {args.gpu} TP {args.tp}: {args.input_tokens} in / {args.output_tokens} out, {what}")
        print(f"  TTFT ms   p50 {out['ttft_ms']['p50']:>9,.1f}  p95 {out['ttft_ms']['p95']:>9,.1f}  p99 {out['ttft_ms']['p99']:>9,.1f}")
        print(f"  ITL ms    p50 {out['itl_ms']['p50']:>9,.2f}  p95 {out['itl_ms']['p95']:>9,.2f}")
        print(f"  TPOT ms   p50 {out['tpot_ms']['p50']:>9,.2f}")
        print(f"  output tokens/s {out['output_tokens_per_s']:,.0f}, requests/s {out['requests_per_s']:,.2f}, "
              f"mean batch {out['mean_batch']}, preemptions {out['preemptions']}")
        note = "" if board == inst.gpu_model else f" (no runs on {inst.gpu_model}: {board}'s efficiencies on its datasheet)"
        print(f"  step constants calibrated on {board}, vLLM {CALIBRATED_VLLM}{note}")
    return 0
