"""The inference gateway (docs/gateway.md): pools, pickers and routes in prod, Services in dev, KV-cache offload,
prefill/decode disaggregation, and the config errors that refuse what cannot work."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import threading
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from fleet.errors import ConfigError
from fleet.offline.plan import make_plan
from fleet.render.gateway import ROUTE_RULES_MAX, team_routes
from fleet.render.smoke import SCRIPT
from fleet.spec.load import load
from fleet.spec.model_rules import ModelContext, disaggregation_is_safe
from fleet.spec.team import ModelSpec
from tests.conftest import edit, resolve_prod_digest


def by_kind(plan, kind: str, namespace: str | None = None) -> dict[str, dict]:
    return {c.inputs["metadata"]["name"]: c.inputs for c in plan.kubernetes_objects()
            if c.inputs["kind"] == kind and namespace in (None, c.inputs["metadata"].get("namespace"))}


def team_file(project: Path, team: str) -> Path:
    return project / "stacks" / "teams" / f"{team}.yaml"


def test_prod_routes_chat_models_through_pools_and_embeddings_to_their_service(prod_root: Path) -> None:
    plan = make_plan("prod", prod_root)
    assert plan.mandatory == []
    gateway = by_kind(plan, "Gateway")["inference-gateway"]
    listener = gateway["spec"]["listeners"][0]
    assert gateway["spec"]["gatewayClassName"] == "istio" and listener["hostname"] == "*.llm.example.com"
    assert listener["tls"]["certificateRefs"] == [{"kind": "Secret", "name": "llm-example-com-tls"}]
    assert listener["allowedRoutes"]["namespaces"]["selector"] == {"matchExpressions": [{"key": "vllm-fleet.io/team", "operator": "Exists"}]}
    route = by_kind(plan, "HTTPRoute", "team-search")["openai"]["spec"]
    assert route["hostnames"] == ["search.llm.example.com"]
    assert route["parentRefs"][0] | {"name": "inference-gateway", "namespace": "gateway"} == route["parentRefs"][0]
    backends = {rule["name"]: rule["backendRefs"] for rule in route["rules"]}
    assert backends == {"qwen-3b": [{"group": "inference.networking.k8s.io", "kind": "InferencePool", "name": "qwen-3b"}],
                        "bge-m3": [{"kind": "Service", "name": "bge-m3", "port": 8000}]}
    for rule in route["rules"]:   # only /v1, only the model's own names
        assert all(m["path"] == {"type": "PathPrefix", "value": "/v1"} for m in rule["matches"])
    assistant = by_kind(plan, "HTTPRoute", "team-assistant")["openai"]["spec"]["rules"]
    llama = next(r for r in assistant if r["name"] == "llama-8b")
    assert [m["headers"][0]["value"] for m in llama["matches"]] == ["meta-llama/Llama-3.1-8B-Instruct", "support-tone"]
    # the pool selects exactly the model's serving pods, and its picker is the Service it names
    pool = by_kind(plan, "InferencePool", "team-search")["qwen-3b"]["spec"]
    deploy = by_kind(plan, "Deployment", "team-search")["qwen-3b"]
    labels = deploy["spec"]["template"]["metadata"]["labels"]
    assert pool["selector"]["matchLabels"].items() <= labels.items() and pool["targetPorts"] == [{"number": 8000}]
    assert pool["endpointPickerRef"] == {"kind": "Service", "name": "qwen-3b-epp", "port": {"number": 9002}, "failureMode": "FailOpen"}
    assert "bge-m3" not in by_kind(plan, "InferencePool", "team-search")


def test_the_picker_is_least_privilege(prod_root: Path) -> None:
    plan = make_plan("prod", prod_root)
    assert not any(c.inputs["kind"] in ("ClusterRole", "ClusterRoleBinding") and "epp" in c.inputs["metadata"]["name"]
                   for c in plan.kubernetes_objects())
    role = by_kind(plan, "Role", "team-search")["qwen-3b-epp"]
    assert all(set(rule["verbs"]) == {"get", "list", "watch"} for rule in role["rules"])
    assert {r for rule in role["rules"] for r in rule["resources"]} == {"pods", "inferencepools", "inferenceobjectives", "inferencemodelrewrites"}
    picker = by_kind(plan, "Deployment", "team-search")["qwen-3b-epp"]["spec"]["template"]
    pod, (c,) = picker["spec"], picker["spec"]["containers"]
    assert pod["automountServiceAccountToken"] is False
    token = next(v for v in pod["volumes"] if v["name"] == "api-token")
    assert token["projected"]["sources"][0] == {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}}
    assert c["resources"]["limits"] == {"cpu": "2", "memory": "2Gi"} and c["securityContext"]["readOnlyRootFilesystem"] is True
    assert "--metrics-endpoint-auth=false" in c["args"] and c["args"][c["args"].index("--pool-name") + 1] == "qwen-3b"
    config = yaml.safe_load(by_kind(plan, "ConfigMap", "team-search")["qwen-3b-epp"]["data"]["epp.yaml"])
    assert [p["pluginRef"] for p in config["schedulingProfiles"][0]["plugins"]] == [
        "prefix-cache-scorer", "queue-scorer", "kv-cache-utilization-scorer", "max-score-picker"]
    policies = by_kind(plan, "NetworkPolicy", "team-search")
    assert policies["allow-gateway-to-pickers"]["spec"]["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 9002}]
    quota = by_kind(plan, "ResourceQuota", "team-search")["team-quota"]["spec"]["hard"]
    assert quota["requests.cpu"] == str(4 + 2 + sum(int(d["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"])
                                                   * n for d, n in ((by_kind(plan, "Deployment", "team-search")["qwen-3b"], 6),
                                                                    (by_kind(plan, "Deployment", "team-search")["bge-m3"], 2))))


def test_dev_keeps_plain_services() -> None:
    plan = make_plan("dev")
    kinds = {c.inputs["kind"] for c in plan.kubernetes_objects()}
    assert not kinds & {"Gateway", "HTTPRoute", "InferencePool", "InferenceObjective", "EnvoyFilter"}
    assert all(c.inputs["spec"]["type"] == "ClusterIP" for c in plan.kubernetes_objects() if c.inputs["kind"] == "Service")


def test_gateway_routing_needs_the_inference_gateway(project: Path) -> None:
    edit(team_file(project, "search"), "    profile: throughput\n", "    profile: throughput\n    routing: gateway\n")
    edit(team_file(project, "search"), "    runner: pooling\n", "    runner: pooling\n    priority: 5\n")
    with pytest.raises(ConfigError) as info:
        load("dev", project)
    assert str(info.value).splitlines()[1:] == [
        "  stacks/teams/search.yaml:11 models[0].routing: routing gateway needs the inference gateway, and stack dev's gateway kind is "
        "none — set vllm-fleet:gateway.kind inference in the stack (docs/gateway.md), or `routing: service`",
        "  stacks/teams/search.yaml:22 models[1].priority: priority is the InferenceObjective of a gateway-routed model — it needs "
        "`routing: gateway`"]


def test_priority_renders_an_inference_objective(prod_root: Path, project: Path) -> None:
    resolve_prod_digest(project)
    edit(team_file(project, "search"), "    profile: throughput\n", "    profile: throughput\n    priority: 10\n")
    objective = by_kind(make_plan("prod", project), "InferenceObjective", "team-search")["qwen-3b"]
    assert objective["spec"] == {"priority": 10, "poolRef": {"group": "inference.networking.k8s.io", "kind": "InferencePool", "name": "qwen-3b"}}


def test_routes_split_at_sixteen_rules() -> None:
    spec = load("prod")
    team = next(t for t in spec.teams if t.name == "search")
    model = next(m for m in team.models if m.name == "qwen-3b")
    many = tuple(replace(model, spec=model.spec.model_copy(update={"name": f"m{i}", "served_model_name": [f"m{i}"]})) for i in range(17))
    routes = team_routes(spec.config, replace(team, models=many))
    assert [len(r["spec"]["rules"]) for r in routes] == [ROUTE_RULES_MAX, 1]
    assert [r["metadata"]["name"] for r in routes] == ["openai", "openai-2"]


def test_kv_offload_native_and_lmcache(project: Path) -> None:
    args = {m.name: m for m in load("prod").models}
    from fleet.render.workload import vllm_args
    spec = load("prod")
    llama = next(m for m in spec.models if m.name == "llama-8b")
    assert vllm_args(spec.config, llama)[-4:-2] == ["--kv-offloading-size", "64"]
    assert args["llama-8b"].spec.kv_offload is not None
    edit(team_file(project, "assistant"), "kv_offload: {backend: native, cpu_gib: 64}", "kv_offload: {backend: lmcache, cpu_gib: 64}")
    resolve_prod_digest(project)
    plan = make_plan("prod", project)
    pod = by_kind(plan, "Deployment", "team-assistant")["llama-8b"]["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["args"][c["args"].index("--kv-transfer-config") + 1] == '{"kv_connector":"LMCacheConnectorV1","kv_role":"kv_both"}'
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["LMCACHE_LOCAL_CPU"] == "True" and env["LMCACHE_MAX_LOCAL_CPU_SIZE"] == "64"
    assert plan.mandatory == []


def test_kv_offload_that_does_not_fit_the_pod_is_refused(project: Path) -> None:
    edit(team_file(project, "assistant"), "kv_offload: {backend: native, cpu_gib: 64}", "kv_offload: {backend: native, cpu_gib: 80}")
    with pytest.raises(ConfigError) as info:
        load("prod", project)
    assert ("models[0].stacks.prod.kv_offload.cpu_gib: 80 GiB does not fit: a pod with 1 of the 4 GPUs of g6e.12xlarge gets 83 GiB of "
            "host memory, and the server and /dev/shm keep 9 GiB of it — use at most 74 GiB, or a pool whose instances have more "
            "memory per GPU") in str(info.value)


def test_kv_offload_on_an_embedding_model_is_refused(project: Path) -> None:
    edit(team_file(project, "search"), "    runner: pooling\n", "    runner: pooling\n    kv_offload: {cpu_gib: 8}\n")
    with pytest.raises(ConfigError, match="a pooling \\(embedding\\) model keeps no KV cache between requests"):
        load("dev", project)


def test_disaggregated_model_runs_two_roles_behind_one_pool(prod_root: Path) -> None:
    plan = make_plan("prod", prod_root)
    assert plan.mandatory == []
    deploys = by_kind(plan, "Deployment", "team-assistant")
    prefill, decode = deploys["qwen3-32b-prefill"]["spec"]["template"], deploys["qwen3-32b-decode"]["spec"]["template"]
    nixl = '{"kv_connector":"NixlConnector","kv_role":"kv_both"}'
    for role, t in (("prefill", prefill), ("decode", decode)):
        assert t["metadata"]["labels"]["llm-d.ai/role"] == role
        assert t["metadata"]["labels"]["vllm-fleet.io/inference-pool"] == "qwen3-32b"
        args = t["spec"]["containers"][0]["args"]
        assert args[args.index("--kv-transfer-config") + 1] == nixl and args[args.index("--tensor-parallel-size") + 1] == "2"
        assert {"name": "VLLM_NIXL_SIDE_CHANNEL_PORT", "value": "5600"} in t["spec"]["containers"][0]["env"]
    vllm, sidecar = decode["spec"]["containers"]
    assert vllm["args"][-2:] == ["--port", "8200"] and vllm["startupProbe"]["httpGet"]["port"] == 8200
    assert sidecar["name"] == "routing-sidecar" and sidecar["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    assert [c["name"] for c in prefill["spec"]["containers"]] == ["vllm"]
    hpas = by_kind(plan, "HorizontalPodAutoscaler", "team-assistant")
    assert {"qwen3-32b-prefill", "qwen3-32b-decode"} <= set(hpas)
    assert hpas["qwen3-32b-prefill"]["spec"]["metrics"][0]["pods"]["target"]["averageValue"] == "4"
    assert set(by_kind(plan, "InferencePool", "team-assistant")) == {"llama-8b", "llama-70b", "qwen3-32b"}
    config = yaml.safe_load(by_kind(plan, "ConfigMap", "team-assistant")["qwen3-32b-epp"]["data"]["epp.yaml"])
    assert [p["name"] for p in config["schedulingProfiles"]] == ["prefill", "decode"]
    assert by_kind(plan, "Deployment", "team-assistant")["qwen3-32b-epp"]["spec"]["template"]["spec"]["containers"][0]["image"].startswith(
        "ghcr.io/llm-d/llm-d-inference-scheduler:v0.5.1@sha256:")
    assert "qwen3-32b-pd" in by_kind(plan, "NetworkPolicy", "team-assistant")


PD = """        disaggregated_prefill:
          prefill: {tensor_parallel_size: 2, autoscaling: {min_replicas: 1, max_replicas: 2, target_queue_per_pod: 4}}
          decode: {tensor_parallel_size: 2, autoscaling: {min_replicas: 1, max_replicas: 2}}
"""


@pytest.mark.parametrize(("extra", "message"), [
    ("        routing: service\n", "prefill/decode disaggregation needs `routing: gateway`"),
    ("        replicas: 2\n", "replicas and autoscaling are set per role"),
    ("        pipeline_parallel_size: 2\n", "vLLM's NIXL connector does not support pipeline parallelism on the decode side"),
    ("        kv_offload: {cpu_gib: 16}\n", "a server takes one --kv-transfer-config"),
    ("        speculative: {method: ngram, num_speculative_tokens: 3}\n", "speculative decoding with disaggregated prefill is refused"),
])
def test_disaggregation_refuses_what_cannot_work(project: Path, extra: str, message: str) -> None:
    edit(team_file(project, "assistant"), PD, PD + extra)
    with pytest.raises(ConfigError, match=message):
        load("prod", project)


def test_disaggregation_needs_tensor_parallel_sizes_that_divide() -> None:
    spec = load("prod")
    model = ModelSpec.model_validate({"name": "m", "model": "Qwen/Qwen3-32B", "pool": "h100",
                                      "disaggregated_prefill": {"prefill": {"tensor_parallel_size": 2},
                                                                "decode": {"tensor_parallel_size": 3}}})
    problems = list(disaggregation_is_safe(ModelContext("prod", spec.config, model, Path("x.yaml"))))
    assert problems == [(("disaggregated_prefill",), "tensor parallel sizes 2 (prefill) and 3 (decode): the NIXL connector maps "
                         "KV heads between roles only when one size is a multiple of the other")]


# --- the smoke test's path through the gateway, run for real against a fake server and a fake TLS gateway ----------

class _Fake(BaseHTTPRequestHandler):
    seen: list[tuple[str, str, str | None]] = []
    gateway_status = 200

    def log_message(self, *args: object) -> None:
        pass

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._answer(200, {"data": [{"id": "org/m"}]} if self.path == "/v1/models" else {})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        tls = isinstance(self.connection, ssl.SSLSocket)
        self.seen.append(("gateway" if tls else "service", self.headers.get("Host", ""), self.headers.get("Authorization")))
        status = self.gateway_status if tls else 200
        self._answer(status, {"choices": [{"text": "!"}]} if status == 200 else {"error": "no route"})


def _serve(tls_dir: Path | None) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Fake)
    if tls_dir is not None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(tls_dir / "cert.pem", tls_dir / "key.pem")
        names: list[str | None] = []
        ctx.sni_callback = lambda sock, name, _ctx: names.append(name)   # type: ignore[assignment]
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
        server.sni = names   # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _run_smoke(tmp_path: Path, status: int) -> tuple[subprocess.CompletedProcess, list, list]:
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=search.llm.example.com",
                    "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem")], check=True, capture_output=True)
    _Fake.seen, _Fake.gateway_status = [], status
    service, gateway = _serve(None), _serve(tmp_path)
    env = {"PATH": os.environ["PATH"], "MODEL_URL": f"http://127.0.0.1:{service.server_port}", "SERVED_MODEL": "org/m",
           "PROBE": "completions", "WAIT_SECONDS": "0", "TIMEOUT": "5", "VLLM_API_KEY": "k",
           "GATEWAY_ADDRESS": f"127.0.0.1:{gateway.server_port}", "GATEWAY_HOST": "search.llm.example.com"}
    try:
        done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=60)
    finally:
        service.shutdown()
        gateway.shutdown()
    return done, list(_Fake.seen), gateway.sni   # type: ignore[attr-defined]


def test_the_smoke_test_calls_the_team_endpoint_through_the_gateway(tmp_path: Path) -> None:
    done, seen, sni = _run_smoke(tmp_path, 200)
    assert done.returncode == 0, done.stderr
    assert seen == [("service", f"127.0.0.1:{seen[0][1].split(':')[1]}", "Bearer k"), ("gateway", "search.llm.example.com", "Bearer k")]
    assert sni == ["search.llm.example.com"]
    assert done.stdout.splitlines()[-1] == "org/m: https://search.llm.example.com/v1/completions answered through the gateway"


def test_a_route_the_gateway_does_not_serve_fails_the_smoke_test(tmp_path: Path) -> None:
    done, _, _ = _run_smoke(tmp_path, 404)
    assert done.returncode == 1
    assert done.stderr.strip().endswith("https://search.llm.example.com/v1/completions through 127.0.0.1:"
                                        f"{done.stderr.split('127.0.0.1:')[1].split()[0]} did not answer before the deadline: "
                                        "HTTP 404: b'{\"error\": \"no route\"}'")


def test_gateway_routed_models_smoke_test_through_the_gateway(prod_root: Path) -> None:
    plan = make_plan("prod", prod_root)
    jobs = {n: j for n, j in by_kind(plan, "Job", "team-assistant").items() if "-smoke-" in n}
    targets = {n.rsplit("-smoke-", 1)[0]: {e["name"]: e.get("value") for e in j["spec"]["template"]["spec"]["containers"][0]["env"]}
               for n, j in jobs.items()}
    assert targets["llama-8b"]["GATEWAY_ADDRESS"] == "inference-gateway-istio.gateway.svc.cluster.local:443"
    assert targets["llama-8b"]["GATEWAY_HOST"] == "assistant.llm.example.com"
    assert "GATEWAY_ADDRESS" in targets["qwen3-32b-decode"] and "GATEWAY_ADDRESS" not in targets["qwen3-32b-prefill"]
    egress = by_kind(plan, "NetworkPolicy", "team-assistant")["smoke-tests-egress"]["spec"]["egress"]
    assert egress[1] == {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "gateway"}}}],
                         "ports": [{"protocol": "TCP", "port": 443}]}


def test_the_picker_neither_waits_for_the_weights_nor_takes_the_models_timeouts(prod_root: Path) -> None:
    """The picker's Deployment is not the model's workload: it does not wait for the prefetch Job, gets the provider's
    default await, and the smoke test still follows the model's own workload."""
    plan = make_plan("prod", prod_root)
    by_name = {c.name: c for c in plan.resources}
    picker, server = by_name["deployment-team-search-qwen-3b-epp"], by_name["deployment-team-search-qwen-3b"]
    prefetch = next(c for c in plan.resources if c.name.startswith("job-team-search-qwen-3b-prefetch-"))
    smoke = next(c for c in plan.resources if c.name.startswith("job-team-search-qwen-3b-smoke-"))
    assert prefetch.urn in server.dependencies and server.custom_timeouts
    assert prefetch.urn not in picker.dependencies and not picker.custom_timeouts
    assert smoke.dependencies == [server.urn]


def test_the_picker_reads_the_metrics_the_pinned_vllm_exports(prod_root: Path) -> None:
    # The Inference Extension's default KV-cache metric is vllm:gpu_cache_usage_perc (v1.0.x), which vLLM no longer
    # exports: without the flag the picker's kv-cache-utilization scorer would see no value for any pod.
    from fleet.render.gateway import endpoint_picker
    from fleet.vllm.flags import table

    spec = load("prod", prod_root)
    model = next(m for m in spec.models if m.name == "qwen-3b")
    args = next(o for o in endpoint_picker(spec.config, model) if o["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    read = {flag: args[args.index(flag) + 1] for flag in ("--total-queued-requests-metric", "--kv-cache-usage-percentage-metric", "--lora-info-metric")}
    assert read == {"--total-queued-requests-metric": "vllm:num_requests_waiting",
                    "--kv-cache-usage-percentage-metric": "vllm:kv_cache_usage_perc", "--lora-info-metric": "vllm:lora_requests_info"}
    assert set(read.values()) <= table(spec.config.vllm.version).metrics
