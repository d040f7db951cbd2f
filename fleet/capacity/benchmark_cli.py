"""`vllm-fleet benchmark`: the Job that measures a deployed model with `vllm bench serve`, and reading its results
back into the performance model's records."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from fleet.capacity.calibrate import PERF_RUNS


def _ints(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of whole numbers") from None
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: every value must be a positive whole number")
    return values


def _floats(text: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from None
    if any(not v > 0 or v == float("inf") for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: every rate must be a positive number")
    return values


def add_parser(sub: Any) -> None:
    from fleet.argtypes import positive_int

    p = sub.add_parser("benchmark", help="a Job that runs vllm bench serve against a deployed model, or --ingest its log "
                                         "into the performance model's records",
                       description="Print a Kubernetes Job (YAML) for the model's namespace: its own vLLM image runs `vllm "
                                   "bench serve --dataset-name random --ignore-eos` against the model's Service at each "
                                   "--concurrency and --request-rates point, the tokenizer read offline from the model cache. "
                                   "`kubectl logs job/<model>-benchmark > LOG`, then `vllm-fleet benchmark --ingest LOG ...` "
                                   "adds the points to fleet/catalog/perf_runs.yaml (bench/perf_accuracy scores them).")
    p.add_argument("--stack", required=True)
    p.add_argument("--model", required=True, metavar="TEAM/NAME", help="the model as the plan names it (team/model)")
    p.add_argument("--input-tokens", type=positive_int, default=1024)
    p.add_argument("--output-tokens", type=positive_int, default=256)
    p.add_argument("--concurrency", type=_ints, default=[1, 16, 64], help="closed-loop points (default 1,16,64)")
    p.add_argument("--request-rates", type=_floats, default=[], help="Poisson points, requests per second")
    p.add_argument("--ingest", type=Path, metavar="LOG", help="read the Job's log and add its points to the records")
    p.add_argument("--run-name", help="with --ingest: the record's name (default <team>-<model>-<stack>)")
    p.add_argument("--held-out", action="store_true", help="with --ingest: keep the run out of the fit (scored only)")
    p.add_argument("--records", type=Path, default=PERF_RUNS, help="with --ingest: the records file (default the catalog's)")


def run(args: argparse.Namespace, root: Path) -> int:
    from fleet.errors import ConfigError
    from fleet.render.benchmark import benchmark_job, ingest, points
    from fleet.render.workload import image, secret_name
    from fleet.spec.load import load

    try:
        spec = load(args.stack, root)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    model = next((m for m in spec.models if f"{m.team}/{m.name}" == args.model), None)
    if model is None:
        known = ", ".join(sorted(f"{m.team}/{m.name}" for m in spec.models))
        print(f"--model {args.model}: not a model of stack {args.stack} ({known})", file=sys.stderr)
        return 2
    if args.ingest is None:
        key = secret_name(model.spec.api_key) if model.spec.api_key is not None else None
        try:
            job = benchmark_job(spec.config, model, image(spec.config, model),
                                points(args.input_tokens, args.output_tokens, args.concurrency, args.request_rates), key)
        except ValueError as exc:
            print(f"benchmark: {exc}", file=sys.stderr)
            return 2
        print(yaml.safe_dump(job, sort_keys=False), end="")
        return 0
    try:
        text = args.ingest.read_text(encoding="utf-8", errors="replace")
        pts = ingest(text)
    except (OSError, ValueError) as exc:
        print(f"--ingest {args.ingest}: {exc}", file=sys.stderr)
        return 2
    if not pts:
        print(f"--ingest {args.ingest}: no FLEET-BENCH line — is it the benchmark Job's log?", file=sys.stderr)
        return 2
    if model.sizing is None or model.arch is None:
        print(f"--model {args.model}: its architecture is unknown, so its runs cannot be modelled", file=sys.stderr)
        return 2
    name = args.run_name or f"{model.team}-{model.name}-{args.stack}"
    s = model.spec
    record = {"name": name, "model": model.arch.id, "gpu_model": model.instance.gpu_model,
              "server": {"max_model_len": model.sizing.max_model_len,
                         "max_num_seqs": s.max_num_seqs or 256, "max_num_batched_tokens": s.max_num_batched_tokens or 8192,
                         "tensor_parallel_size": s.tensor_parallel_size or model.gpus_per_replica,
                         **({"quantization": s.quantization} if s.quantization else {})},
              "kv_cache_tokens": model.sizing.kv_cache_tokens, "held_out": bool(args.held_out),
              "source": f"vllm-fleet benchmark Job against {args.model} in stack {args.stack} ({model.instance.instance_type}); "
                        "KV cache from the fit check", "grid": {}, "bench": pts}
    doc = yaml.safe_load(args.records.read_text(encoding="utf-8")) if args.records.exists() else None
    doc = doc or {"runs": []}
    doc["runs"] = [r for r in doc["runs"] if r["name"] != name] + [record]
    header = "".join(line + "\n" for line in (args.records.read_text().splitlines() if args.records.exists() else [])
                     if line.startswith("#"))
    args.records.write_text(header + yaml.safe_dump(doc, sort_keys=False, width=200), encoding="utf-8")
    print(json.dumps({"records": str(args.records), "run": name, "points": len(pts)}))
    return 0
