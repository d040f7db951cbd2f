"""`vllm-fleet plan`: bundled stacks plan clean; bad manifests and bad config fail with the right exit code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from fleet.cli import main
from fleet.offline.manifest_schema import validate
from fleet.offline.plan import make_plan
from fleet.render.workload import model_manifests
from fleet.spec.load import load
from tests.conftest import ROOT


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_bundled_stacks_plan_clean_and_every_object_validates(stack: str, prod_root: Path) -> None:
    plan = make_plan(stack, prod_root)  # the prod image digest resolved, as before a first deploy
    assert plan.exit_code == 0
    assert plan.schema_problems == []
    assert plan.mandatory == []
    kinds = {c.inputs["kind"] for c in plan.kubernetes_objects()}
    assert {"Namespace", "ResourceQuota", "NetworkPolicy", "Deployment", "Service", "ServiceAccount"} <= kinds
    if stack == "prod":
        assert {"LeaderWorkerSet", "HorizontalPodAutoscaler", "PodDisruptionBudget"} <= kinds


def test_the_bundled_prod_stack_fails_until_its_placeholder_digest_is_resolved(capsys) -> None:
    assert main(["--root", str(ROOT), "plan", "--stack", "prod", "--format", "json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    mandatory = {(f["rule_id"], f["message"].split(".image ", 1)[-1].split(" — ")[0]) for f in doc["findings"] if f["level"] == "mandatory"}
    assert mandatory == {("D15", "is pinned to the placeholder digest sha256:00000000…, which no registry serves")}
    # every image the stack pins to a placeholder: vLLM's, the EFA image and the three GPU system images
    messages = " ".join(f["message"] for f in doc["findings"] if f["rule_id"] == "D15")
    for image in ("docker.io/vllm/vllm-openai:v0.34.0", "763104351884.dkr.ecr.us-east-1.amazonaws.com/vllm:0.34.0-gpu-py312-ec2",
                  "nvcr.io/nvidia/k8s-device-plugin:v0.17.4", "nvcr.io/nvidia/k8s/dcgm-exporter:4.4.1-4.6.0-ubuntu22.04",
                  "public.ecr.aws/eks/aws-efa-k8s-device-plugin:v0.5.6"):
        assert f"crane digest {image}" in messages, image


def test_json_report_has_the_documented_keys(capsys, prod_root: Path) -> None:
    assert main(["--root", str(prod_root), "plan", "--stack", "prod", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {"resources", "findings", "summary"} <= set(doc)
    assert {"urn", "type", "name", "team"} <= set(doc["resources"][0])
    summary = doc["summary"]
    assert summary["models"] == 8 and summary["teams"] == 3 and summary["exit_code"] == 0  # qwen3-32b counts as its two roles
    assert summary["gpus_min"] == sum(t["gpus_min"] for t in doc["teams"])
    teams = {r["team"] for r in doc["resources"]}
    assert {"search", "assistant", "research", None} == teams
    lws = [m for m in doc["models"] if m["workload"] == "LeaderWorkerSet"]
    assert [m["model"] for m in lws] == ["llama-405b"]


def test_out_writes_one_manifest_per_object_and_plan_json(tmp_path: Path) -> None:
    assert main(["--root", str(ROOT), "plan", "--stack", "dev", "--out", str(tmp_path), "--format", "json"]) == 0
    doc = json.loads((tmp_path / "plan.json").read_text())
    files = sorted((tmp_path / "manifests").rglob("*.yaml"))
    assert len(files) == doc["summary"]["kubernetes_objects"]
    deploy = yaml.safe_load((tmp_path / "manifests" / "team-search" / "deployment-qwen-3b.yaml").read_text())
    assert deploy["kind"] == "Deployment" and deploy["spec"]["template"]["spec"]["containers"][0]["command"] == ["vllm", "serve"]


def test_markdown_and_table_formats(capsys) -> None:
    assert main(["--root", str(ROOT), "plan", "--stack", "dev", "--format", "markdown"]) == 0
    md = capsys.readouterr().out
    assert md.startswith("### ✅ vllm-fleet plan `dev`")
    assert "| search | 2 | 2-2 | 2 | 0 | 2-2 | $3.72 | $3.72 |" in md and "$5.58–$5.58/h in us-west-2" in md
    assert main(["--root", str(ROOT), "plan", "--stack", "dev"]) == 0
    table = capsys.readouterr().out
    assert "search/bge-m3" in table and "clean" in table.splitlines()[-1]


def test_a_config_error_exits_2_without_a_traceback(project: Path, capsys) -> None:
    team = project / "stacks" / "teams" / "search.yaml"
    team.write_text(team.read_text().replace("max_model_len: 16384", "max_model_len: lots"))
    assert main(["--root", str(project), "plan", "--stack", "dev"]) == 2
    err = capsys.readouterr().err
    assert "stacks/teams/search.yaml:9 models[0].max_model_len: 'lots' — Input should be a valid integer" in err
    assert "Traceback" not in err


def test_schema_validation_catches_an_invalid_manifest_and_the_plan_exits_1(monkeypatch) -> None:
    import fleet.render.workload as workload

    original = workload.service

    def broken_service(model):  # a typo'd field, as a hand edit might introduce
        svc = original(model)
        svc["spec"]["clusterIp"] = "None"
        return svc

    monkeypatch.setattr(workload, "service", broken_service)
    plan = make_plan("dev", ROOT, policies=False)
    assert plan.exit_code == 1
    problems = {(p.kind, p.path) for _, p in plan.schema_problems}
    assert ("Service", "spec") in problems
    assert any("clusterIp" in p.message for _, p in plan.schema_problems)


def test_schema_validation_is_strict_for_the_vendored_leaderworkerset_schema() -> None:
    spec = load("prod", ROOT)
    model = next(m for m in spec.models if m.multi_node)
    lws = next(m for m in model_manifests(spec.config, model) if m["kind"] == "LeaderWorkerSet")
    assert validate(lws, "1.33") == []
    lws["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]["containers"][0]["gpus"] = 8
    lws["spec"]["leaderWorkerTemplate"]["sizee"] = 2
    messages = [str(p) for p in validate(lws, "1.33")]
    assert any("sizee" in m for m in messages), messages
    # the pod template is checked against the upstream strict PodSpec
    assert any("workerTemplate.spec.containers[0]" in m and "'gpus' was unexpected" in m for m in messages), messages


def test_a_kind_without_a_schema_is_an_error_not_a_pass() -> None:
    problems = validate({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}, "1.33")
    assert [p.message for p in problems] == [
        "no schema for example.com/v1 Widget in Kubernetes 1.33 (and none vendored under fleet/catalog/crds/)"]
