"""VllmService: the rendered workload per feature, field by field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from fleet.errors import ConfigError
from fleet.offline.plan import make_plan
from fleet.render.observability import adapter_rules, dashboard
from fleet.render.workload import model_manifests
from fleet.spec.load import load
from fleet.vllm.compiler import check_args
from fleet.vllm.flags import MetricError, metric
from tests.conftest import ROOT, edit, keda_scale_to_zero, write


def objects(stack: str, model: str, root: Path = ROOT) -> dict[str, dict]:
    """The model's own objects by kind: the one named after the model, else the first of its kind (the workload before
    its endpoint picker's, which has a ServiceMonitor of its own)."""
    spec = load(stack, root)
    m = next(x for x in spec.models if x.name == model)
    out: dict[str, dict] = {}
    for o in model_manifests(spec.config, m):
        if o["kind"] not in out or (o["metadata"]["name"] == model and out[o["kind"]]["metadata"]["name"] != model):
            out[o["kind"]] = o
    return out


def container(obj: dict) -> dict:
    return obj["spec"]["template"]["spec"]["containers"][0]


def test_single_node_deployment_shape() -> None:
    objs = objects("prod", "llama-70b")
    deploy = objs["Deployment"]
    pod = deploy["spec"]["template"]["spec"]
    c = container(deploy)
    assert c["command"] == ["vllm", "serve"] and c["args"][0] == "meta-llama/Llama-3.1-70B-Instruct"
    assert check_args(c["args"][1:], "0.34.0") == []
    assert c["image"] == "docker.io/vllm/vllm-openai:v0.34.0@sha256:" + "0" * 64
    assert c["resources"]["limits"] == c["resources"]["requests"] == {"cpu": "95", "memory": "899Gi", "nvidia.com/gpu": "4"}
    shm = next(v for v in pod["volumes"] if v["name"] == "dshm")
    assert shm == {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "10Gi"}}
    env = {e["name"]: e for e in c["env"]}
    assert env["VLLM_API_KEY"] == {"name": "VLLM_API_KEY", "valueFrom": {"secretKeyRef": {"name": "assistant-api-key", "key": "value"}}}
    assert env["HF_HOME"]["value"] == "/models/hf" and env["HF_HUB_OFFLINE"]["value"] == "1"
    for writable in ("HOME", "XDG_CACHE_HOME", "TRITON_CACHE_DIR", "VLLM_CACHE_ROOT"):
        assert env[writable]["value"].startswith("/scratch/")
    assert c["startupProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert c["startupProbe"]["periodSeconds"] * c["startupProbe"]["failureThreshold"] >= 600
    assert c["lifecycle"] == {"preStop": {"exec": {"command": ["sleep", "15"]}}}
    assert "--shutdown-timeout" in c["args"] and pod["terminationGracePeriodSeconds"] == 60
    assert c["securityContext"] == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": True,
                                    "runAsUser": 1000, "readOnlyRootFilesystem": False}
    assert pod["automountServiceAccountToken"] is False and pod["serviceAccountName"] == "llama-70b"
    assert pod["nodeSelector"] == {"vllm-fleet.io/pool": "h100"}
    assert [t["topologyKey"] for t in pod["topologySpreadConstraints"]] == ["kubernetes.io/hostname", "topology.kubernetes.io/zone"]
    # 4 GPUs per pod fit the prod stack's 8 spare GPUs: surge one pod
    assert deploy["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    assert objs["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 1


def test_dev_single_replica_recreates_and_has_no_pdb() -> None:
    objs = objects("dev", "qwen-3b")
    assert objs["Deployment"]["spec"]["strategy"] == {"type": "Recreate"}
    assert "PodDisruptionBudget" not in objs and "topologySpreadConstraints" not in objs["Deployment"]["spec"]["template"]["spec"]


def test_multi_node_model_is_a_leaderworkerset_with_ray_efa_and_shm() -> None:
    lws = objects("prod", "llama-405b")["LeaderWorkerSet"]
    lwt = lws["spec"]["leaderWorkerTemplate"]
    assert lwt["size"] == 2 and lwt["restartPolicy"] == "RecreateGroupOnPodRestart"
    leader, worker = lwt["leaderTemplate"]["spec"], lwt["workerTemplate"]["spec"]
    script = leader["containers"][0]["args"][0]
    assert script.startswith("bash /vllm-workspace/examples/online_serving/multi-node-serving.sh leader --ray_cluster_size=$(LWS_GROUP_SIZE) && exec vllm serve meta-llama/Llama-3.1-405B-Instruct")
    assert "--tensor-parallel-size 8 --pipeline-parallel-size 2" in script and script.endswith("--distributed-executor-backend ray")
    assert worker["containers"][0]["args"] == ["exec bash /vllm-workspace/examples/online_serving/multi-node-serving.sh worker --ray_address=$(LWS_LEADER_ADDRESS)"]
    for pod in (leader, worker):
        limits = pod["containers"][0]["resources"]["limits"]
        assert limits["nvidia.com/gpu"] == "8" and limits["vpc.amazonaws.com/efa"] == "32"
        assert any(v["name"] == "dshm" and v["emptyDir"]["medium"] == "Memory" for v in pod["volumes"])
        assert {"name": "FI_PROVIDER", "value": "efa"} in pod["containers"][0]["env"]
    service = objects("prod", "llama-405b")["Service"]
    assert service["spec"]["selector"]["vllm-fleet.io/role"] == "leader"


def test_hpa_scales_on_the_renamed_queue_metric_with_slow_scale_down() -> None:
    hpa = objects("prod", "qwen-3b")["HorizontalPodAutoscaler"]
    (m,) = hpa["spec"]["metrics"]
    assert m == {"type": "Pods", "pods": {"metric": {"name": "vllm_num_requests_waiting"},
                                          "target": {"type": "AverageValue", "averageValue": "8"}}}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)
    behavior = hpa["spec"]["behavior"]
    assert behavior["scaleUp"]["stabilizationWindowSeconds"] == 60
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] >= 600  # ≥ 300 s and ≥ the startup budget
    rules = yaml.safe_load(adapter_rules(load("prod", ROOT).config)["data"]["config.yaml"])["rules"][0]
    assert rules["name"] == {"matches": "^vllm:num_requests_waiting$", "as": "vllm_num_requests_waiting"}


def test_an_autoscaler_owns_the_replica_count(project: Path) -> None:
    """Server-side apply: once the HPA or KEDA has scaled a workload, an update that sets spec.replicas conflicts with
    the autoscaler's field manager (pulumi-kubernetes #2569, #3312). Fixed-size workloads keep their count."""
    hpa = objects("prod", "qwen-3b")
    assert hpa["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["name"] == "qwen-3b"
    assert "replicas" not in hpa["Deployment"]["spec"]
    assert objects("prod", "bge-m3")["Deployment"]["spec"]["replicas"] == 2
    keda_scale_to_zero(project)
    keda = objects("dev", "qwen-3b", project)
    assert keda["ScaledObject"]["spec"]["scaleTargetRef"]["name"] == "qwen-3b"
    assert "replicas" not in keda["Deployment"]["spec"]
    for stack, root in (("prod", ROOT), ("dev", project)):  # and nowhere in a whole plan
        plan = make_plan(stack, root)
        targets = {(c.inputs["metadata"]["namespace"], c.inputs["spec"]["scaleTargetRef"]["name"]) for c in plan.kubernetes_objects()
                   if c.inputs["kind"] in ("HorizontalPodAutoscaler", "ScaledObject")}
        assert targets
        for c in plan.kubernetes_objects():
            if (c.inputs["metadata"].get("namespace"), c.inputs["metadata"]["name"]) in targets and c.inputs["kind"] != "ScaledObject":
                assert "replicas" not in c.inputs.get("spec", {}), c.urn


def test_keda_backend_with_scale_to_zero(project: Path) -> None:
    keda_scale_to_zero(project)
    so = objects("dev", "qwen-3b", project)["ScaledObject"]
    assert so["spec"]["minReplicaCount"] == 0 and so["spec"]["maxReplicaCount"] == 2
    queue, wake = so["spec"]["triggers"]
    assert queue["type"] == "prometheus" and queue["metadata"]["threshold"] == "5"
    assert queue["metadata"]["query"] == 'sum(vllm:num_requests_waiting{namespace="team-search",service="qwen-3b"})'
    # at zero replicas no vllm: series exist: the ingress controller's request count wakes the model
    assert wake["metadata"]["activationThreshold"] == "0"
    assert wake["metadata"]["query"] == (
        'sum(rate(nginx_ingress_controller_requests{namespace="team-search",ingress="qwen-3b"}[2m])) or '
        'sum(rate(nginx_ingress_controller_requests{exported_namespace="team-search",ingress="qwen-3b"}[2m]))')
    assert so["spec"]["cooldownPeriod"] >= 300
    assert "qwen-3b" in {o["metadata"]["name"] for o in objects("dev", "qwen-3b", project).values() if o["kind"] == "Ingress"}


def test_scale_to_zero_without_a_wake_signal_is_refused(project: Path) -> None:
    keda_scale_to_zero(project)
    edit(project / "stacks" / "Pulumi.dev.yaml", "    kind: ingress\n", "    kind: none\n")
    with pytest.raises(ConfigError, match="min_replicas 0 could never wake up: at zero replicas the pods' own vllm: metrics do not exist"):
        load("dev", project)


def test_ingress_routes_only_the_openai_api_with_tls(project: Path) -> None:
    keda_scale_to_zero(project)
    ing = objects("dev", "qwen-3b", project)["Ingress"]
    assert ing["spec"]["tls"] == [{"hosts": ["qwen-3b.search.llm.dev.example.com"], "secretName": "llm-dev-tls"}]
    (path,) = ing["spec"]["rules"][0]["http"]["paths"]
    assert path == {"path": "/v1", "pathType": "Prefix", "backend": {"service": {"name": "qwen-3b", "port": {"name": "http"}}}}


def test_monitoring_objects_use_metrics_of_the_pinned_version() -> None:
    objs = objects("prod", "llama-8b")
    assert objs["ServiceMonitor"]["spec"]["endpoints"] == [{"port": "http", "path": "/metrics", "interval": "15s"}]
    alerts = {r["alert"]: r["expr"] for r in objs["PrometheusRule"]["spec"]["groups"][0]["rules"]}
    assert set(alerts) == {"VllmQueueGrowing", "VllmKvCacheSaturated", "VllmPreempting", "VllmNoReadyReplicas"}
    assert "vllm:kv_cache_usage_perc" in alerts["VllmKvCacheSaturated"]
    board = json.loads(next(iter(dashboard(load("prod", ROOT).config, load("prod", ROOT).teams[0])["data"].values())))
    assert "vllm:gpu_cache_usage_perc" not in json.dumps(board) and len(board["panels"]) == 7
    with pytest.raises(MetricError, match="use vllm:kv_cache_usage_perc"):
        metric("vllm:gpu_cache_usage_perc", "0.33.0")


@pytest.mark.parametrize(("fields", "flags"), [
    ("    quantization: fp8\n", ["--quantization", "fp8"]),
    ("    quantization: bitsandbytes\n", ["--quantization", "bitsandbytes", "--load-format", "bitsandbytes"]),
    ("    chat_template: /models/templates/chat.jinja\n    served_model_name: [qwen]\n",
     ["--served-model-name", "qwen", "--chat-template", "/models/templates/chat.jinja"]),
    ("    speculative: {method: ngram, num_speculative_tokens: 4, prompt_lookup_max: 3}\n",
     ["--speculative-config", '{"method":"ngram","num_speculative_tokens":4,"prompt_lookup_max":3}']),
])
def test_seed_features_reach_the_arguments(project: Path, fields: str, flags: list[str]) -> None:
    if "bitsandbytes" in fields:  # from vLLM 0.32 only an image with vllm-bnb-plugin serves it (model_rules)
        stack = project / "stacks" / "Pulumi.dev.yaml"
        stack.write_text(stack.read_text().replace("    version: 0.34.0\n", "    repository: docker.io/vllm/acme-vllm-bnb\n"
                                                   "    version: 0.34.0\n", 1))
    team = project / "stacks" / "teams" / "search.yaml"
    team.write_text(team.read_text().replace("    profile: throughput\n", "    profile: throughput\n" + fields, 1))
    args = container(objects("dev", "qwen-3b", project)["Deployment"])["args"]
    joined = " ".join(args)
    assert " ".join(flags) in joined
    assert check_args(args[1:], "0.34.0") == []


def test_disaggregated_prefill_as_a_switch_says_what_it_became(project: Path) -> None:
    team = project / "stacks" / "teams" / "search.yaml"
    team.write_text(team.read_text().replace("    profile: throughput\n", "    profile: throughput\n    disaggregated_prefill: true\n", 1))
    with pytest.raises(ConfigError) as info:
        load("dev", project)
    assert ("stacks/teams/search.yaml:11 models[0].disaggregated_prefill: disaggregated_prefill is an object now: "
            "`{prefill: {replicas, tensor_parallel_size}, decode: {...}}`") in str(info.value)


def test_gateway_needs_tls(project: Path) -> None:
    stack = project / "stacks" / "Pulumi.prod.yaml"
    stack.write_text(stack.read_text().replace("    tls_secret_name: llm-example-com-tls\n", ""))
    with pytest.raises(ConfigError, match="kind inference needs hostname_suffix and tls_secret_name"):
        load("prod", project)


def test_team_file_writes(project: Path) -> None:  # the helper used above edits a copy, never the bundled files
    assert write(project / "x.txt", "y").read_text() == "y"
