#!/usr/bin/env python3
"""Turn scripts/gpu_perf_measure.py's output into the performance model's records.

    python scripts/perf_records.py OUT_DIR [--held-out NAME ...] [--date YYYY-MM-DD]

Appends every configuration of OUT_DIR/perf.jsonl to fleet/catalog/perf_runs.yaml (a run already there by name is
replaced) and keeps its server log as fleet/catalog/perf_logs/<name>.txt (the log is cut to its start-up lines and
its end). Runs named with --held-out are kept out of the fit (fleet/capacity/calibrate.py) and scored on.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
CATALOG = ROOT / "fleet" / "catalog"
GPU_NAMES = (("H200", "H200"), ("H100", "H100"), ("A100", "A100-80GB"), ("L40S", "L40S"), ("L4", "L4"), ("A10G", "A10G"))


def gpu_model(nvidia_smi: str) -> str:
    for needle, name in GPU_NAMES:
        if needle in nvidia_smi:
            return name
    raise SystemExit(f"unknown GPU {nvidia_smi!r}: add it to GPU_NAMES")


def logs_by_name(text: str) -> dict[str, str]:
    parts = re.split(r"^===== (\S+) ", text, flags=re.M)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--held-out", nargs="*", default=[])
    ap.add_argument("--date", required=True)
    args = ap.parse_args(argv)
    results = [json.loads(line) for line in (args.out_dir / "perf.jsonl").read_text().splitlines() if line.strip()]
    logs = logs_by_name((args.out_dir / "perf_logs.txt").read_text(errors="replace"))
    path = CATALOG / "perf_runs.yaml"
    doc = yaml.safe_load(path.read_text()) if path.exists() else None
    doc = doc or {"runs": []}
    by_name = {r["name"]: r for r in doc["runs"]}
    (CATALOG / "perf_logs").mkdir(exist_ok=True)
    for res in results:
        name = res["name"]
        target = res.get("sweep_settings", {}).get("bench_of")
        if res.get("error") or not res.get("bench" if target else "grid"):
            print(f"{name}: not recorded ({res.get('error', 'no bench points' if target else 'no grid')})", file=sys.stderr)
            continue
        run = by_name.get(target) if target else None
        if target and (run is None or run["model"] != res["model"] or run["server"] != res["server"]):
            raise SystemExit(f"{name}: bench_of {target!r} is not a recorded run of {res['model']} with "
                             f"the same server settings")
        (CATALOG / "perf_logs" / f"{name}.txt").write_text(logs.get(name, ""))
        if run is not None:  # a bench-only result: its points join the run whose step grid is recorded
            run["bench"] = res["bench"]
            run["bench_source"] = (f"measured {args.date} on {res['gpu']} by a second server of the same settings "
                                   f"(KV cache {res.get('kv_cache_tokens')} tokens); log fleet/catalog/perf_logs/{name}.txt")
            continue
        by_name[name] = {
            "name": name, "model": res["model"], "gpu_model": gpu_model(res["gpu"]), "server": res["server"],
            "kv_cache_tokens": res["kv_cache_tokens"], "held_out": name in args.held_out,
            "source": f"measured {args.date} on {res['gpu']}, vLLM 0.26.0, dummy weights, stand-in tokenizer "
                      f"(round trip {res['tokenizer']['round_trip']}); server: {res['server_command']}; "
                      f"log fleet/catalog/perf_logs/{name}.txt; scripts/gpu_perf_measure.py",
            "ready_s": res.get("ready_s"), "runner": res.get("runner"),
            "grid": res["grid"], "bench": res.get("bench", []),
        }
    doc["runs"] = sorted(by_name.values(), key=lambda r: r["name"])
    header = ("# vLLM serving speed measured on the lent GPU (scripts/gpu_perf_measure.py, records by scripts/perf_records.py):\n"
              "# per run the server's settings, the KV cache it reported, a step grid (prefill: B prompts of P tokens at once,\n"
              "# one output token, wall ms; decode: B streams after C-token prompts, the median gap between tokens while all\n"
              "# decode) and `vllm bench serve` points (each with its command). held_out runs are never fitted.\n")
    path.write_text(header + yaml.safe_dump(doc, sort_keys=False, width=200))
    print(f"wrote {path} ({len(doc['runs'])} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
