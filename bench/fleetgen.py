"""Generate synthetic fleets (a stack plus team files) of N model services for benchmarks."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
MODELS_PER_TEAM = 10
# A digest as `crane digest` prints one (the generated fleets are planned, never deployed).
BENCH_DIGEST = "sha256:f37a065c3054b79499c744271d8b22e5e19482b4042eb8dde641ac738ae5c985"

SHAPES = [  # (model, pool, tensor parallel, autoscaling)
    ("meta-llama/Llama-3.1-8B-Instruct", "l40s", 1, True),
    ("Qwen/Qwen2.5-3B-Instruct", "l40s", 1, False),
    ("meta-llama/Llama-3.1-70B-Instruct", "h100", 4, True),
    ("BAAI/bge-m3", "l40s", 1, False),
]


def generate(root: Path, models: int) -> Path:
    """Write Pulumi.yaml, stacks/Pulumi.bench.yaml and ceil(models/10) team files under `root`."""
    if root.exists():
        shutil.rmtree(root)
    (root / "stacks" / "teams").mkdir(parents=True)
    shutil.copy(ROOT / "Pulumi.yaml", root / "Pulumi.yaml")
    teams = (models + MODELS_PER_TEAM - 1) // MODELS_PER_TEAM
    stack = {"config": {
        "aws:region": "us-east-1",
        "vllm-fleet:tier": "prod",
        "vllm-fleet:cluster": {"name": "bench"},
        "vllm-fleet:kubernetes_version": "1.33",
        "vllm-fleet:gpu_pools": [
            {"name": "h100", "instance_types": ["p5.48xlarge"], "min_size": 1, "max_size": 100000,
             "subnet_ids": ["subnet-0be0c001"]},
            {"name": "l40s", "instance_types": ["g6e.12xlarge"], "min_size": 1, "max_size": 100000,
             "subnet_ids": ["subnet-0be0c001"]},
        ],
        "vllm-fleet:allowed_instance_types": ["p5.48xlarge", "g6e.12xlarge"],
        "vllm-fleet:vllm": {"version": "0.33.0", "digest": BENCH_DIGEST},
        "vllm-fleet:spare_gpus": 8,
        "vllm-fleet:device_plugin": {"image": f"nvcr.io/nvidia/k8s-device-plugin:v0.17.4@{BENCH_DIGEST}",
                                     "dcgm_image": f"nvcr.io/nvidia/k8s/dcgm-exporter:4.4.1-4.6.0-ubuntu22.04@{BENCH_DIGEST}"},
        "vllm-fleet:node_autoscaler": {"image": f"registry.k8s.io/autoscaling/cluster-autoscaler:v1.33.6@{BENCH_DIGEST}"},
        "vllm-fleet:allowed_registries": ["docker.io/vllm", "nvcr.io/nvidia", "registry.k8s.io/autoscaling"],
        "vllm-fleet:secrets": {"bench-api-key": {"secure": "v1:bench"}},
    }}
    (root / "stacks" / "Pulumi.bench.yaml").write_text(yaml.safe_dump(stack, sort_keys=False))
    n = 0
    for t in range(teams):
        entries = []
        for j in range(min(MODELS_PER_TEAM, models - n)):
            model, pool, tp, auto = SHAPES[(n + j) % len(SHAPES)]
            entry: dict = {"name": f"m{j}", "model": model, "pool": pool, "max_model_len": 8192,
                           "api_key": {"secret": "bench-api-key"}}
            if tp > 1:
                entry["tensor_parallel_size"] = tp
            if model == "BAAI/bge-m3":
                entry["runner"] = "pooling"
            if auto:
                entry["autoscaling"] = {"min_replicas": 2, "max_replicas": 3}
            else:
                entry["replicas"] = 2
            entries.append(entry)
        n += len(entries)
        team = {"name": f"team{t:04d}", "owners": ["@bench/owners"], "models": entries}
        (root / "stacks" / "teams" / f"team{t:04d}.yaml").write_text(yaml.safe_dump(team, sort_keys=False))
    # The platform team's grants: each team's GPU quota and the secret its models use.
    tenancy = {"teams": {f"team{t:04d}": {"gpu_quota": {"bench": 1000}, "secrets": ["bench-api-key"]} for t in range(teams)}}
    (root / "stacks" / "tenancy.yaml").write_text(yaml.safe_dump(tenancy, sort_keys=False))
    return root
