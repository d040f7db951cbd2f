"""A benchmark Job a fleet runs against one of its deployed models: `vllm bench serve` against the model's Service.

It uses the model's own image (the same vLLM release, so its `vllm bench serve`) and reads the model's tokenizer
from the shared model cache, offline, as the server does. Each point (a `--max-concurrency` or a Poisson
`--request-rate`, fixed lengths, `--ignore-eos`, the random dataset) prints one `FLEET-BENCH {json}` line with the
keys of fleet/catalog/perf_runs.yaml's `bench` entries; `vllm-fleet benchmark --ingest LOG` adds them to the records,
so the performance model can be scored and refitted on the fleet's own cluster (docs/performance.md).

The pod carries the smoke test's role label: the team's network policies that let smoke tests reach the model's
pods (fleet.render.tenancy) admit it, and nothing else.
"""

from __future__ import annotations

import json
from typing import Any

from fleet.labels import VLLM_PORT
from fleet.render import Manifest, meta, restricted_container, restricted_pod
from fleet.render.cache import CACHE_CLAIM, CACHE_MOUNT, HF_HOME_ON_CACHE, has_cache
from fleet.render.smoke import served_name, smoke_pod_labels
from fleet.spec.resolved import ResolvedModel
from fleet.spec.stack import StackConfig

SCRIPT = """\
import json, os, subprocess, sys
points = json.loads(os.environ["POINTS"])
base = os.environ["MODEL_URL"]
for i, p in enumerate(points):
    argv = ["--backend", "vllm", "--base-url", base, "--model", os.environ["SERVED_MODEL"], "--tokenizer", os.environ["MODEL_ID"],
            "--dataset-name", "random", "--random-input-len", str(p["input_len"]), "--random-output-len", str(p["output_len"]),
            "--num-prompts", str(p["num_prompts"]), "--ignore-eos", "--percentile-metrics", "ttft,tpot,itl,e2el",
            "--metric-percentiles", "50,90,95,99", "--seed", str(100 + i), "--disable-tqdm",
            "--save-result", "--result-dir", "/tmp/bench", "--result-filename", f"p{i}.json"]
    argv += ["--max-concurrency", str(p["concurrency"])] if p.get("concurrency") else ["--request-rate", str(p["request_rate"])]
    done = subprocess.run([sys.executable, "-m", "vllm.entrypoints.cli.main", "bench", "serve", *argv], check=False)
    if done.returncode:
        sys.exit(f"vllm bench serve exited {done.returncode} at point {i}: {p}")
    res = json.load(open(f"/tmp/bench/p{i}.json"))
    out = {k: p.get(k) for k in ("concurrency", "request_rate", "num_prompts", "input_len", "output_len")}
    out["command"] = "vllm bench serve " + " ".join(argv)
    for k, v in res.items():
        if isinstance(v, (int, float)) and (k.endswith("_ms") or k in ("completed", "failed", "duration", "request_throughput",
                                                                        "output_throughput", "total_token_throughput")):
            out[k] = v
    print("FLEET-BENCH " + json.dumps(out), flush=True)
"""


def points(input_tokens: int, output_tokens: int, concurrency: list[int], rates: list[float]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for c in concurrency:
        out.append({"concurrency": c, "num_prompts": max(8, min(4 * c, 512)) if c > 1 else 6,
                    "input_len": input_tokens, "output_len": output_tokens})
    for r in rates:
        out.append({"request_rate": r, "num_prompts": int(max(48, min(r * 25, 800))),
                    "input_len": input_tokens, "output_len": output_tokens})
    return out


def benchmark_job(cfg: StackConfig, model: ResolvedModel, image: str, pts: list[dict[str, Any]],
                  api_key: tuple[str, str] | None, deadline_seconds: int = 3600) -> Manifest:
    if not has_cache(cfg):
        raise ValueError("the benchmark reads the model's tokenizer from the model cache, offline: this stack has none "
                         "(vllm-fleet:model_cache) — run `vllm bench serve` from a machine that reaches the Hub instead")
    if not cfg.smoke_tests:
        raise ValueError("the benchmark pod is admitted by the smoke tests' network policies, which this stack turns off "
                         "(vllm-fleet:smoke_tests: false)")
    labels = smoke_pod_labels(model)
    env: list[dict[str, Any]] = [
        {"name": "MODEL_URL", "value": f"http://{model.name}.{model.namespace}.svc:{VLLM_PORT}"},
        {"name": "SERVED_MODEL", "value": served_name(model)},
        {"name": "MODEL_ID", "value": model.spec.model or ""},
        {"name": "POINTS", "value": json.dumps(pts)},
        {"name": "HOME", "value": "/tmp/home"},
        {"name": "XDG_CACHE_HOME", "value": "/tmp/cache"},
        {"name": "HF_HOME", "value": HF_HOME_ON_CACHE},
        {"name": "HF_HUB_OFFLINE", "value": "1"},
    ]
    if api_key is not None:
        # vllm bench serve sends OPENAI_API_KEY as the bearer token
        env.append({"name": "OPENAI_API_KEY", "valueFrom": {"secretKeyRef": {"name": api_key[0], "key": api_key[1]}}})
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": meta(f"{model.name}-benchmark", model.namespace, labels),
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": deadline_seconds,
            "ttlSecondsAfterFinished": 7 * 24 * 3600,
            "template": {"metadata": {"labels": labels}, "spec": {
                "restartPolicy": "Never",
                "serviceAccountName": model.name,
                "automountServiceAccountToken": False,
                "enableServiceLinks": False,
                "securityContext": restricted_pod(),
                "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
                            {"name": "model-cache", "persistentVolumeClaim": {"claimName": CACHE_CLAIM, "readOnly": True}}],
                "containers": [{
                    "name": "benchmark",
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["python3", "-c", SCRIPT],
                    "env": env,
                    "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"},
                                     {"name": "model-cache", "mountPath": CACHE_MOUNT, "readOnly": True}],
                    "resources": {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"cpu": "4", "memory": "4Gi"}},
                    "securityContext": restricted_container(),
                }],
            }},
        },
    }


def ingest(log: str) -> list[dict[str, Any]]:
    """The benchmark points a Job's log holds (its `FLEET-BENCH` lines)."""
    out = []
    for line in log.splitlines():
        if line.startswith("FLEET-BENCH "):
            point = json.loads(line.split(" ", 1)[1])
            if not isinstance(point, dict):
                raise ValueError("a FLEET-BENCH line holds no object")
            out.append(point)
    return out
