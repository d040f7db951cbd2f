#!/usr/bin/env python3
"""Fit the step model per GPU board on the recorded runs and write fleet/catalog/perf_calibration.yaml.

    .venv/bin/python scripts/perf_fit.py            # after scripts/perf_records.py added runs

A test checks the shipped constants name only runs that are not held out; a refit takes about 2.5 minutes on 2 cores.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, cast

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fleet.capacity.calibrate import FITTED, FRONTEND, MOE_FITTED, accuracy, fit, fit_frontend, held_out_sigma, runs
from fleet.capacity.calibration_data import PERF_CALIBRATION
from fleet.capacity.perf import StepConstants


def main() -> int:
    boards = sorted({r.gpu_model for r in runs() if not r.held_out})
    fits = {}
    constants: dict[str, StepConstants] = {}
    for board in boards:
        c = fit_frontend(board, fit(board))
        rounded = {k: float(f"{v:.6g}") for k, v in asdict(c).items() if k in (*FITTED, *MOE_FITTED, *FRONTEND)}
        fits[board] = rounded | {"allreduce_latency_s": c.allreduce_latency_s, "source": c.source}
        # the spread is computed with the constants as written (rounded): near saturation a tail moves with the sixth digit
        constants[board] = replace(c, **cast(dict[str, Any], rounded))
        print(board, fits[board])
    header = ("# The step model's constants per GPU board (fleet/capacity/perf.py), fitted by scripts/perf_fit.py on the\n"
              "# step grids of fleet/catalog/perf_runs.yaml that are not held out, and the API server's costs (frontend_*) on their\n"
              "# vllm bench serve points. piecewise_layer_s / eager_layer_s: the host's kernel launches per layer outside a\n"
              "# FULL CUDA graph (the launch term of perf.py). allreduce_latency_s is not fitted yet\n"
              "# (no multi-GPU runs): a literature value for NVLink all-reduce of small messages. held_out_sigma: per\n"
              "# target metric, the RMS log error of the held-out runs' points under these constants (recommend's P(meet)).\n")
    sigma = held_out_sigma(accuracy(constants))
    print("held-out sigma", sigma)
    PERF_CALIBRATION.write_text(header + yaml.safe_dump({"fits": fits, "held_out_sigma": sigma}, sort_keys=False, width=200))
    return 0


if __name__ == "__main__":
    sys.exit(main())
