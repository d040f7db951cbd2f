"""`vllm-fleet check` on manifests written the way public projects write them: vLLM started through a shell or
`python -m`, bare-number GPU quantities, `$(VAR)` and `32k` flag values, GPU nodes picked by other projects' labels,
custom resources without a schema. Each case is a minimal manifest of its own (the shapes, not the projects' files)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleet.cli import main
from policies.commands import int_value, server_args, simple_commands

BASE: dict[str, Any] = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "q", "namespace": "team-a"},
    "spec": {"replicas": 1, "strategy": {"type": "Recreate"}, "selector": {"matchLabels": {"app": "q"}},
             "template": {"metadata": {"labels": {"app": "q"}}, "spec": {
                 "serviceAccountName": "q", "automountServiceAccountToken": False, "terminationGracePeriodSeconds": 60,
                 "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
                 "nodeSelector": {"node.kubernetes.io/instance-type": "g6e.xlarge"},
                 "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                 "containers": [{
                     "name": "vllm", "image": "docker.io/vllm/vllm-openai:v0.33.0",
                     "command": ["vllm", "serve"], "args": ["Qwen/Qwen2.5-7B-Instruct", "--tensor-parallel-size", "1"],
                     "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                     "lifecycle": {"preStop": {"sleep": {"seconds": 10}}},
                     "startupProbe": {"httpGet": {"path": "/health", "port": 8000}, "periodSeconds": 10, "failureThreshold": 90},
                     "readinessProbe": {"httpGet": {"path": "/health", "port": 8000}, "timeoutSeconds": 5},
                     "livenessProbe": {"httpGet": {"path": "/health", "port": 8000}, "timeoutSeconds": 5},
                     "resources": {"limits": {"nvidia.com/gpu": "1", "cpu": "4", "memory": "32Gi"},
                                   "requests": {"nvidia.com/gpu": "1", "cpu": "4", "memory": "32Gi"}}}]}}},
}


def pod(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["spec"]["template"]["spec"]


def server(doc: dict[str, Any]) -> dict[str, Any]:
    return pod(doc)["containers"][0]


def check(tmp_path: Path, capsys, *docs: dict[str, Any], name: str = "m.yaml") -> tuple[int, dict[str, Any]]:
    path = tmp_path / name
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    code = main(["check", str(path), "--format", "json"])
    return code, json.loads(capsys.readouterr().out)


def rules(doc: dict[str, Any]) -> set[str]:
    return {f["rule_id"] for f in doc["findings"] if f["level"] == "mandatory"}


def variant(mutate) -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    mutate(doc)
    return doc


# --- how vLLM is started ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("container", [
    {"command": ["vllm", "serve"], "args": ["org/m", "--port", "8000"]},
    {"command": ["python3", "-m", "vllm.entrypoints.openai.api_server"], "args": ["--model", "org/m", "--port", "8000"]},
    {"command": ["/bin/sh", "-c"], "args": ["vllm serve org/m --port 8000"]},
    {"command": ["bash", "-lc", "ray start --head; exec python3 -m vllm.entrypoints.openai.api_server \\\n --model org/m --port 8000"]},
    {"command": ["sh", "-c", "bash multi-node.sh leader --size=$(LWS_GROUP_SIZE); python3 -m vllm.entrypoints.openai.api_server "
                             "--model org/m --port 8000"]},
    {"image": "docker.io/vllm/vllm-openai:v0.33.0", "args": ["--model", "org/m", "--port", "8000"]},
    {"command": ["env", "VLLM_LOGGING_LEVEL=DEBUG", "vllm", "serve", "org/m", "--port", "8000"]},
])
def test_vllm_is_recognised_however_it_is_started(container: dict[str, Any]) -> None:
    args = server_args(container)
    assert args is not None and "--port" in args
    assert args[0] == "org/m" or args[args.index("--model") + 1] == "org/m"


@pytest.mark.parametrize("container", [
    {"image": "ghcr.io/acme/sidecar:v1", "command": ["python3", "-m", "sidecar"], "args": ["--vllm-url", "http://localhost:8000"]},
    {"image": "docker.io/vllm/vllm-openai:v0.33.0", "command": ["sh", "-c", "bash worker.sh --ray_address=$(LEADER)"]},
    {"image": "docker.io/library/busybox:1", "command": ["sh", "-c", "echo 'vllm serve' > /tmp/x"]},
])
def test_other_containers_are_not_vllm(container: dict[str, Any]) -> None:
    assert server_args(container) is None


def test_shell_scripts_split_at_operators_outside_quotes_and_substitutions() -> None:
    assert simple_commands("a 'x;y' && b $(c; d) | e\nf") == [["a", "x;y"], ["b", "$(c;", "d)"], ["e"], ["f"]]


def test_flag_values_read_as_vllm_reads_them() -> None:
    assert int_value("32k") == 32_000 and int_value("32K") == 32_768 and int_value("4") == 4
    assert int_value("$(TP)") is None and int_value("${TP}") is None and int_value("auto") is None


def test_rules_see_a_server_started_through_python_m(tmp_path: Path, capsys) -> None:
    doc = variant(lambda d: server(d).update(command=["python3", "-m", "vllm.entrypoints.openai.api_server"],
                                             args=["--model", "Qwen/Qwen2.5-7B-Instruct", "--trust-remote-code"],
                                             image="docker.io/vllm/vllm-openai:v0.8.5"))
    code, out = check(tmp_path, capsys, doc)
    assert code == 1 and {"F1", "F2"} <= rules(out)
    f2 = next(f for f in out["findings"] if f["rule_id"] == "F2")
    assert "vLLM 0.8.5 is below the floor" in f2["message"] and f2["remediation"].startswith("Upgrade the image")


def test_a_version_inside_a_longer_tag_is_read() -> None:
    from policies.rules.vllm import image_version
    assert image_version("rocm/vllm:rocm6.2_mi300_ubuntu20.04_py3.9_vllm_0.6.4") == "0.6.4"
    assert image_version("lmcache/vllm-openai:2025-05-05-v1") is None


# --- numbers ------------------------------------------------------------------------------------------------------

def test_bare_number_gpu_quantities_count(tmp_path: Path, capsys) -> None:
    def bare(d: dict[str, Any]) -> None:
        for k in ("limits", "requests"):
            server(d)["resources"][k]["nvidia.com/gpu"] = 2
        server(d)["args"][-1] = "2"
        d["spec"]["template"]["spec"]["nodeSelector"] = {"node.kubernetes.io/instance-type": "g6e.12xlarge"}
    _, out = check(tmp_path, capsys, variant(bare))
    assert not {"E3", "E4"} & rules(out)
    assert "E5" in rules(out)   # two GPUs: now it needs its /dev/shm, which a 0-GPU reading missed


def test_amd_gpus_count(tmp_path: Path, capsys) -> None:
    def amd(d: dict[str, Any]) -> None:
        for k in ("limits", "requests"):
            server(d)["resources"][k].pop("nvidia.com/gpu")
            server(d)["resources"][k]["amd.com/gpu"] = "1"
    _, out = check(tmp_path, capsys, variant(amd))
    assert "E4" not in rules(out) and "E3" not in rules(out)


@pytest.mark.parametrize("args", [["org/m", "--tensor-parallel-size=$(TP)"], ["meta-llama/Llama-3.1-8B-Instruct", "--max-model-len", "32k"],
                                  ["org/m", "--max_model_len", "${LEN}", "--gpu-memory-utilization", "NaN"]])
def test_values_filled_in_at_run_time_or_human_readable_never_crash(tmp_path: Path, capsys, args: list[str]) -> None:
    code, out = check(tmp_path, capsys, variant(lambda d: server(d).update(args=args)))
    assert code in (0, 1) and "cannot judge" not in json.dumps(out)


def test_a_malformed_field_is_a_finding_not_a_crash(tmp_path: Path, capsys) -> None:
    doc = variant(lambda d: pod(d).update(tolerations="everything", containers=[{**server(d), "resources": ["x"]}]))
    code, out = check(tmp_path, capsys, doc)
    assert code == 1
    assert any("cannot judge this resource" in f["message"] for f in out["findings"])


# --- placement, probes, drain, autoscaling --------------------------------------------------------------------------

@pytest.mark.parametrize("selector", [{"nvidia.com/gpu.product": "NVIDIA-L40S"}, {"cloud.google.com/gke-accelerator": "nvidia-l4"},
                                      {"karpenter.sh/nodepool": "gpu"}, {"karpenter.k8s.aws/instance-gpu-name": "l40s"}])
def test_gpu_nodes_selected_by_well_known_labels(tmp_path: Path, capsys, selector: dict[str, str]) -> None:
    _, out = check(tmp_path, capsys, variant(lambda d: pod(d).update(nodeSelector=selector)))
    assert not any(f["rule_id"] == "E2" for f in out["findings"])


def test_gpu_nodes_selected_by_a_vendor_label_in_node_affinity(tmp_path: Path, capsys) -> None:
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [
        {"key": "machine.cluster.example.com/gpu-name", "operator": "In", "values": ["NVIDIA-L20"]}]}]}}}
    _, out = check(tmp_path, capsys, variant(lambda d: (pod(d).pop("nodeSelector"), pod(d).update(affinity=affinity))))
    assert not any(f["rule_id"] == "E2" for f in out["findings"])
    _, out = check(tmp_path, capsys, variant(lambda d: pod(d).pop("nodeSelector")))
    assert any(f["message"].endswith("selects no GPU nodes by label") for f in out["findings"])


def test_probes_and_drain_written_other_ways(tmp_path: Path, capsys) -> None:
    def other_ways(d: dict[str, Any]) -> None:
        c = server(d)
        c["startupProbe"] = {"httpGet": {"path": "/v1/models", "port": 8000}, "periodSeconds": 15, "failureThreshold": 240}
        c["livenessProbe"] = {"exec": {"command": ["curl", "-sf", "localhost:8000/health"]}, "timeoutSeconds": 5}
        c["lifecycle"] = {"preStop": {"exec": {"command": ["/bin/sh", "-c", "sleep 10"]}}}
    _, out = check(tmp_path, capsys, variant(other_ways))
    assert not {"G1", "G2", "G3"} & rules(out)
    # a drain loop is not a preStop sleep; a short budget is still short
    loop = {"preStop": {"exec": {"command": ["/bin/sh", "-c", "while curl -s localhost:8000/metrics | grep -q running; do sleep 1; done"]}}}
    _, out = check(tmp_path, capsys, variant(lambda d: (server(d).update(lifecycle=loop),
                                                        server(d)["startupProbe"].update(failureThreshold=10))))
    assert {"G1", "G3"} <= rules(out)


def test_an_hpa_without_behavior_has_the_default_300_s_window(tmp_path: Path, capsys) -> None:
    hpa = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "q", "namespace": "team-a"},
           "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "q"}, "minReplicas": 1, "maxReplicas": 2,
                    "metrics": [{"type": "Pods", "pods": {"metric": {"name": "vllm:num_requests_waiting"},
                                                          "target": {"type": "AverageValue", "averageValue": "5"}}}]}}
    _, out = check(tmp_path, capsys, hpa)
    assert "G6" not in rules(out)
    hpa["spec"]["behavior"] = {"scaleDown": {"stabilizationWindowSeconds": 60}}
    _, out = check(tmp_path, capsys, hpa)
    assert "G6" in rules(out)


def test_a_leaderworkerset_is_a_workload_for_disruption_budgets(tmp_path: Path, capsys) -> None:
    template = copy.deepcopy(BASE["spec"]["template"])
    template["spec"]["containers"][0]["args"] = ["Qwen/Qwen2.5-7B-Instruct", "--tensor-parallel-size", "2"]
    lws = {"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet", "metadata": {"name": "big", "namespace": "team-a"},
           "spec": {"replicas": 2, "leaderWorkerTemplate": {"size": 2, "workerTemplate": template}}}
    _, out = check(tmp_path, capsys, lws)
    assert any(f["rule_id"] == "G5" and "LeaderWorkerSet team-a/big has 2 replicas" in f["message"] for f in out["findings"])
    assert "E4" not in rules(out)   # TP 2 over a group of 2 one-GPU pods
    pdb = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "big", "namespace": "team-a"},
           "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"leaderworkerset.sigs.k8s.io/name": "big"}}}}
    _, out = check(tmp_path, capsys, lws, pdb)
    assert "G5" not in rules(out)


def test_a_public_service_is_found_by_its_selector(tmp_path: Path, capsys) -> None:
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api", "namespace": "team-a"},
           "spec": {"type": "LoadBalancer", "selector": {"app": "q"}, "ports": [{"port": 80, "targetPort": 8000}]}}
    _, out = check(tmp_path, capsys, BASE, svc)
    assert any(f["rule_id"] == "F5" and "exposes vLLM (Deployment/team-a/q)" in f["message"] for f in out["findings"])


# --- schemas --------------------------------------------------------------------------------------------------------

def test_custom_resources_without_a_schema_are_not_validated_not_invalid(tmp_path: Path, capsys) -> None:
    isvc = {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService", "metadata": {"name": "m", "namespace": "team-a"},
            "spec": {"predictor": {"model": {"modelFormat": {"name": "huggingface"}}}}}
    code, out = check(tmp_path, capsys, isvc)
    assert code == 0 and out["schema_problems"] == []
    assert out["not_validated"] == [{"resource": "team-a/m", "kind": "InferenceService", "apiVersion": "serving.kserve.io/v1beta1",
                                     "reason": "custom resource without a vendored schema"}]
    typo = {"apiVersion": "apps/v1", "kind": "Deploymnet", "metadata": {"name": "m", "namespace": "team-a"}}
    code, out = check(tmp_path, capsys, typo)
    assert code == 1 and out["schema_problems"][0]["message"].startswith("no schema for apps/v1 Deploymnet")


def test_secret_data_must_be_base64(tmp_path: Path, capsys) -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "hf", "namespace": "team-a"}, "type": "Opaque",
              "data": {"token": "$HF_TOKEN"}}
    code, out = check(tmp_path, capsys, secret)
    assert code == 1 and out["schema_problems"][0]["path"] == "data.token"
    assert "not base64" in out["schema_problems"][0]["message"]
    secret["data"] = {"token": "aGZfeHh4"}
    assert check(tmp_path, capsys, secret)[0] == 0


def test_remediation_is_in_the_table_too(tmp_path: Path, capsys) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(variant(lambda d: server(d).pop("startupProbe"))))
    main(["check", str(path)])
    out = capsys.readouterr().out
    assert "G1" in out and "fix: Add startupProbe" in out


def test_an_unreadable_file_among_readable_ones_is_exit_2(tmp_path: Path, capsys) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(BASE))
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    assert main(["check", str(good), str(bad), "--format", "json"]) == 2
    out = json.loads(capsys.readouterr().out)
    assert out["summary"]["unreadable_files"] == 1 and "bad.yaml line" in out["errors"][0]
    assert out["summary"]["objects"] == 1   # the readable file was still checked
