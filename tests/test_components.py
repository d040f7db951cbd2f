"""The component contract catalogue (docs/components.md): every image any stack renders has a contract entry citing
its source, the generated flag tables parse as their releases do, and each deploy-breaking defect of issue 25 put back
into the rendering makes `plan` exit 1 with a finding that names it."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import components.fleet as fleet_component
from fleet.catalog.contracts import COMPONENTS_DIR, FLAGS_DIR, components, flag_table, lookup, matrix, parse_args
from fleet.cli import main
from fleet.offline.plan import make_plan
from fleet.render import gateway, gpu_system
from policies.framework import containers, pod_specs
from tests.conftest import copy_project, edit, karpenter_l40s, keda_scale_to_zero, no_cache, resolve_prod_digest, s3_cache

SOURCE = re.compile(r"^(?:[\w.-]+/[\w.-]+@[\w.+-]+:[\w./-]+|pypi:\S+==\S+ .+)")


def pod_images(plan: Any) -> Iterator[tuple[str, str]]:
    for c in plan.kubernetes_objects():
        typ = f"kubernetes:{c.inputs['apiVersion'] if '/' in c.inputs['apiVersion'] else 'core/' + c.inputs['apiVersion']}:{c.inputs['kind']}"
        for pod in pod_specs(typ, c.inputs):
            for path, container in containers(pod):
                yield f"{c.inputs['kind']}/{c.inputs['metadata']['name']} {path}", str(container.get("image"))


VARIANTS: dict[str, Callable[[Path], None]] = {"karpenter": karpenter_l40s, "keda": keda_scale_to_zero, "s3-cache": s3_cache,
                                              "no-cache": no_cache}


@pytest.fixture(scope="module")
def rendered_plans(tmp_path_factory: pytest.TempPathFactory) -> list[Any]:
    """Both bundled stacks (prod: gateway, P/D, KV offload, EFA and LWS, FSx) and the dev variants that turn on
    Karpenter, KEDA and the other caches."""
    prod = resolve_prod_digest(copy_project(tmp_path_factory.mktemp("prod")))
    plans = [make_plan("prod", prod), make_plan("dev", prod)]
    for name, change in VARIANTS.items():
        root = copy_project(tmp_path_factory.mktemp(name))
        change(root)
        plans.append(make_plan("dev", root))
    return plans


def test_every_rendered_image_has_a_contract_entry(rendered_plans: list[Any]) -> None:
    missing, seen = [], set()
    for plan in rendered_plans:
        for where, image in pod_images(plan):
            comp, release = lookup(image)
            seen.add(comp.name if comp else image)
            if release is None:
                missing.append(f"{where}: {image}")
    assert missing == []
    assert {"vllm", "endpoint-picker", "body-based-router", "inference-scheduler", "routing-sidecar", "nvidia-device-plugin",
            "dcgm-exporter", "efa-device-plugin"} <= seen


def test_every_rendered_custom_resource_is_served_by_a_catalogued_release(rendered_plans: list[Any]) -> None:
    served = {(c["apiVersion"], c["kind"]) for comp in components().values() for rel in comp.releases.values()
              for c in rel.get("crds") or []}
    served = {(v.replace("{pool-group}", "inference.networking.k8s.io"), k) for v, k in served}
    kinds = {(c.inputs["apiVersion"], c.inputs["kind"]) for plan in rendered_plans for c in plan.kubernetes_objects()
             if c.inputs["kind"] in ("InferencePool", "InferenceObjective", "LeaderWorkerSet", "NodePool", "EC2NodeClass", "ScaledObject")}
    assert {k for _, k in kinds} >= {"InferencePool", "LeaderWorkerSet", "NodePool", "EC2NodeClass", "ScaledObject"}
    assert kinds <= served


def test_the_catalogue_covers_the_issue_list_and_cites_every_fact() -> None:
    comps = components()
    assert {"endpoint-picker", "inference-scheduler", "body-based-router", "routing-sidecar", "nvidia-device-plugin",
            "dcgm-exporter", "efa-device-plugin", "leaderworkerset", "karpenter", "keda", "prometheus-adapter", "hf-cli",
            "istio", "cluster-autoscaler", "vllm"} <= set(comps)

    def sources(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            for k, v in node.items():
                if k.endswith("source") and isinstance(v, str):
                    yield v
                yield from sources(v)
        elif isinstance(node, list):
            for v in node:
                yield from sources(v)

    for comp in comps.values():
        for rel in comp.releases.values():
            cited = list(sources(rel.data))
            assert cited, rel.label
            assert all(SOURCE.match(s) for s in cited), (rel.label, cited)
    for path in FLAGS_DIR.glob("*.json"):
        table = json.loads(path.read_text())
        assert table["generated_by"].startswith("scripts/component_flags.py") and table["flags"]
        assert all(SOURCE.match(f["source"]) for f in table["flags"]), path.name
    assert matrix() and (COMPONENTS_DIR / "matrix.yaml").exists()


def test_flags_parse_as_each_release_parses_them() -> None:
    old, new = flag_table("epp-v1.0.1"), flag_table("epp-v1.3.1")
    args = ["--pool-name", "p", "--metrics-endpoint-auth=false", "--tracing=false", "--v", "1", "--zap-encoder", "json"]
    assert parse_args(old, args).errors == ["flag provided but not defined: -metrics-endpoint-auth",
                                            "flag provided but not defined: -tracing"]
    parsed = parse_args(new, args)
    assert parsed.errors == [] and parsed.values["metrics-endpoint-auth"] is False and parsed.values["pool-name"] == "p"
    assert new.flags["kv-cache-usage-percentage-metric"].default == "vllm:kv_cache_usage_perc"
    assert old.flags["kv-cache-usage-percentage-metric"].default == "vllm:gpu_cache_usage_perc"
    assert parse_args(new, ["--grpc-port", "x"]).errors == ["invalid value 'x' for flag -grpc-port: parse error"]
    assert parse_args(flag_table("bbr-v1.3.1"), ["--streaming"]).values == {"streaming": True}
    assert parse_args(flag_table("hf-cli-1.31.0"), ["org/m", "--revision", "abc", "--exclude", "original/*", "--local"]).errors == [
        "No such option: --local"]


def _plan_json(root: Path, capsys: Any) -> tuple[int, list[dict[str, Any]]]:
    code = main(["--root", str(root), "plan", "--stack", "prod", "--format", "json"])
    doc = json.loads(capsys.readouterr().out)
    return code, [f for f in doc["findings"] if f["level"] == "mandatory"]


def test_the_fixed_prod_stack_plans_clean_with_every_container_on_its_contract(prod_root: Path, capsys: Any) -> None:
    code, mandatory = _plan_json(prod_root, capsys)
    assert (code, mandatory) == (0, [])


def test_item_1_picker_flags_the_pinned_release_lacks_fail_the_plan(project: Path, capsys: Any) -> None:
    resolve_prod_digest(project)
    edit(project / "stacks" / "Pulumi.prod.yaml", "gateway-api-inference-extension/epp:v1.3.1@", "gateway-api-inference-extension/epp:v1.0.1@")
    code, mandatory = _plan_json(project, capsys)
    assert code == 1
    messages = [f["message"] for f in mandatory if f["rule_id"] == "I1"]
    assert any("Deployment/team-search/qwen-3b-epp" in m and 'exits with "flag provided but not defined: -metrics-endpoint-auth"' in m
               and "gateway-api-inference-extension@v1.0.1:cmd/epp/runner/runner.go" in m for m in messages)
    # the renderer passes the metric names from the pinned vLLM table, so the old release's default
    # (vllm:gpu_cache_usage_perc) never reaches it; the pairing is still outside every row of the matrix
    assert not any("reads vllm:gpu_cache_usage_perc" in f["message"] for f in mandatory)
    assert any(f["rule_id"] == "I3" and "endpoint-picker v1.0.1" in f["message"]
               and "which no combination of the compatibility matrix holds" in f["message"] for f in mandatory)


def _without(manifests: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [m for m in manifests if not (m["kind"] == kind and m["metadata"]["name"] == gateway.BBR_NAME)]


def _bbr_without_token(cfg: Any) -> list[dict[str, Any]]:
    out = gateway.gateway_manifests(cfg)
    for m in out:
        if m["kind"] == "Deployment":
            pod = m["spec"]["template"]["spec"]
            pod.pop("volumes")
            pod["containers"][0].pop("volumeMounts")
    return out


@pytest.mark.parametrize(("item", "render", "rule_id", "needle"), [
    ("2", _bbr_without_token, "I2", "Deployment/gateway/body-based-router spec.template.spec.containers[0]: body-based-router v1.3.1 "
                                    "needs the API token"),
    ("3", lambda cfg: _without(gateway.gateway_manifests(cfg), "DestinationRule"), "I2",
     "Service/gateway/body-based-router: body-based-router v1.3.1 serves TLS on 9004 but no DestinationRule"),
])
def test_items_2_and_3_the_routers_token_and_tls_fail_the_plan(prod_root: Path, capsys: Any, monkeypatch: Any, item: str,
                                                                render: Any, rule_id: str, needle: str) -> None:
    monkeypatch.setattr(fleet_component, "gateway_manifests", render)
    code, mandatory = _plan_json(prod_root, capsys)
    assert code == 1
    assert [f["rule_id"] for f in mandatory if needle in f["message"]] == [rule_id], item


def test_item_5_the_efa_plugin_without_infiniband_fails_the_plan(prod_root: Path, capsys: Any, monkeypatch: Any) -> None:
    real = gpu_system.efa_device_plugin

    def without_infiniband(settings: Any, pools: Any) -> list[dict[str, Any]]:
        out = real(settings, pools)
        pod = out[1]["spec"]["template"]["spec"]
        pod["volumes"] = [v for v in pod["volumes"] if v["name"] != "infiniband"]
        pod["containers"][0]["volumeMounts"] = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] != "infiniband"]
        return out

    monkeypatch.setattr(gpu_system, "efa_device_plugin", without_infiniband)
    code, mandatory = _plan_json(prod_root, capsys)
    assert code == 1
    assert [f["message"] for f in mandatory] == [
        "DaemonSet/gpu-system/aws-efa-k8s-device-plugin spec.template.spec.containers[0].volumeMounts: efa-device-plugin v0.5.6 "
        "needs the host path /dev/infiniband — the EFA devices it advertises as vpc.amazonaws.com/efa; without them it finds none "
        "(aws/eks-charts@2a91e36:stable/aws-efa-k8s-device-plugin/templates/daemonset.yaml)"]


def test_the_router_streams_bodies_and_the_picker_is_scraped(prod_root: Path) -> None:
    plan = make_plan("prod", prod_root)
    objs = {(c.inputs["kind"], c.inputs["metadata"].get("namespace"), c.inputs["metadata"]["name"]): c.inputs for c in plan.kubernetes_objects()}
    bbr = objs[("Deployment", "gateway", "body-based-router")]["spec"]["template"]["spec"]["containers"][0]
    assert "--streaming" in bbr["args"] and bbr["env"][0]["name"] == "NAMESPACE"
    mode = objs[("EnvoyFilter", "gateway", "body-based-router")]["spec"]["configPatches"][0]["patch"]["value"]["typed_config"]["processing_mode"]
    assert (mode["request_body_mode"], mode["request_trailer_mode"]) == ("FULL_DUPLEX_STREAMED", "SEND")
    assert objs[("DestinationRule", "gateway", "body-based-router")]["spec"]["trafficPolicy"]["tls"]["mode"] == "SIMPLE"
    assert objs[("Role", "gateway", "body-based-router")]["rules"] == gateway.BBR_ROLE_RULES
    svc = objs[("Service", "team-search", "qwen-3b-epp")]["spec"]["ports"]
    assert {"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"} in svc
    monitor = objs[("ServiceMonitor", "team-search", "qwen-3b-epp")]["spec"]
    assert monitor["endpoints"][0]["port"] == "metrics"


def test_the_prefetch_job_is_judged_by_the_hf_cli_its_vllm_release_requires() -> None:
    from policies.rules.components import hf_release

    versions = {v: hf_release(lookup(f"docker.io/vllm/vllm-openai:v{v}")[1]).version for v in ("0.32.0", "0.33.0", "0.34.0")}
    assert versions == {"0.32.0": "1.31.0", "0.33.0": "1.31.0", "0.34.0": "2.0.0"}   # vllm.yaml `ships` (its Requires-Dist)
    assert hf_release(lookup("docker.io/vllm/vllm-openai:v0.99.0")[1]).version == "1.31.0"
    assert parse_args(flag_table("hf-cli-2.0.0"), ["org/m", "--revision", "abc", "--exclude", "original/*", "--local"]).errors == [
        "No such option: --local"]
