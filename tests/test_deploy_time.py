"""Await timeouts and startup budgets from the bytes each pod reads (pulumi-kubernetes waits 10 minutes by default)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from fleet.cli import main
from fleet.deploy_time import deploy_time, pod_read_gib
from fleet.offline.plan import make_plan
from fleet.render.workload import model_manifests
from fleet.spec.load import load
from tests.conftest import ROOT, no_cache

DEFAULT_AWAIT_SECONDS = 600


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_awaited_job_and_gpu_workload_waits_at_least_its_estimate(stack: str) -> None:
    plan = make_plan(stack, ROOT)
    models = {(m.namespace, m.name): m for m in plan.spec.models}
    awaited = 0
    for c in plan.kubernetes_objects():
        md = c.inputs["metadata"]
        kind = c.inputs["kind"]
        if kind == "Job" and md["labels"].get("vllm-fleet.io/role") == "prefetch":
            model = models[(md["namespace"], md["labels"]["vllm-fleet.io/for-model"])]
            times = deploy_time(plan.spec.config, model)
            assert c.custom_timeouts["create"] >= times.download and c.custom_timeouts["update"] >= times.download
            # Kubernetes fails the Job at its deadline before pulumi-kubernetes gives up on it.
            assert times.download <= c.inputs["spec"]["activeDeadlineSeconds"] < c.custom_timeouts["create"]
            awaited += 1
        elif kind == "Job" and md["labels"].get("vllm-fleet.io/role") == "smoke":
            # the smoke test waits for /health (a LeaderWorkerSet's whole rollout, which the provider does not await)
            model = models[(md["namespace"], md["labels"]["vllm-fleet.io/for-model"])]
            deadline = c.inputs["spec"]["activeDeadlineSeconds"]
            if model.multi_node:
                assert deadline > deploy_time(plan.spec.config, model).rollout_create_timeout
            assert deadline < c.custom_timeouts["create"] == c.custom_timeouts["update"]
            awaited += 1
        elif kind == "Deployment" and (md["namespace"], md["name"]) in models:
            times = deploy_time(plan.spec.config, models[(md["namespace"], md["name"])])
            assert c.custom_timeouts["create"] >= times.first_deploy - times.download > DEFAULT_AWAIT_SECONDS
            assert c.custom_timeouts["update"] >= c.custom_timeouts["create"]
            awaited += 1
        elif kind == "Service" and (md["namespace"], md["name"]) in models:
            # a Service would wait for ready endpoints while the model loads: the workload's await covers that
            assert md["annotations"]["pulumi.com/skipAwait"] == "true"
    # every model's prefetch Job (EFS and FSx caches), workload (the 405B's LeaderWorkerSet is not awaited: its smoke
    # test is) and smoke test
    assert awaited == 3 * len(models) - (1 if stack == "prod" else 0)


def test_the_405b_prefetch_waits_hours_and_its_pods_read_their_pipeline_stage() -> None:
    spec = load("prod", ROOT)
    big = next(m for m in spec.models if m.name == "llama-405b")
    times = deploy_time(spec.config, big)
    # ~760 GiB of BF16 weights; TP 8 × PP 2 over two 8-GPU nodes: each pod reads one stage, half the checkpoint
    assert 740 < pod_read_gib(big) * 2 < 780
    assert times.prefetch_timeout is not None and times.prefetch_timeout >= 3600
    job = next(m for m in model_manifests(spec.config, big) if m["kind"] == "Job")
    assert job["spec"]["activeDeadlineSeconds"] >= 3600
    # the startupProbe covers reading ~380 GiB, not the 600 s floor the per-GPU division gave
    lws = next(m for m in model_manifests(spec.config, big) if m["kind"] == "LeaderWorkerSet")
    probe = lws["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["spec"]["containers"][0]["startupProbe"]
    assert probe["periodSeconds"] * probe["failureThreshold"] == times.startup_probe_budget > DEFAULT_AWAIT_SECONDS


def test_tensor_parallel_pods_read_the_whole_replica_and_quantized_checkpoints_read_less() -> None:
    spec = load("prod", ROOT)
    seventy = next(m for m in spec.models if m.name == "llama-70b")     # TP 4 inside one pod
    assert seventy.gpus_per_pod == seventy.gpus_per_replica == 4
    assert 125 < pod_read_gib(seventy) < 135                            # all 70B BF16 weights, not a quarter
    assert seventy.arch is not None
    awq = replace(seventy, arch=replace(seventy.arch, default_dtype="awq"))
    assert pod_read_gib(awq) < pod_read_gib(seventy) / 3                # 4-bit checkpoint
    # a slower cache makes the load, the probe and the rollout timeout longer
    slow = spec.config.model_copy(update={"model_cache": spec.config.model_cache.model_copy(update={"throughput_mibps": 125, "size_gib": 1200})})
    assert deploy_time(slow, seventy).load > deploy_time(spec.config, seventy).load
    assert deploy_time(slow, seventy).rollout_create_timeout >= deploy_time(spec.config, seventy).rollout_create_timeout


def test_plan_prints_the_estimates_and_json_resources_carry_their_timeouts(capsys, project: Path) -> None:
    assert main(["--root", str(ROOT), "plan", "--stack", "dev"]) == 0
    table = capsys.readouterr().out
    assert "First deploy" in table and "assistant/llama-8b" in table.split("First deploy")[1]
    assert main(["--root", str(ROOT), "plan", "--stack", "dev", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    timed = {r["name"]: r["custom_timeouts"] for r in doc["resources"] if r["custom_timeouts"]}
    assert set(timed["deployment-team-search-qwen-3b"]) == {"create", "update"}
    assert all(m["deploy_time"]["first_deploy"] > 0 for m in doc["models"])
    # no cache: no prefetch Job, each pod downloads its weights
    no_cache(project)
    spec = load("dev", project)
    times = deploy_time(spec.config, spec.models[0])
    assert times.prefetch_timeout is None and times.download == 0
