"""Tenancy and privilege: no trust by name, images pinned and allow-listed everywhere, secrets per team, validated RBAC
groups, flags that cannot be smuggled, literal secrets that never reach output, quotas a team cannot approve itself."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from fleet.cli import main
from fleet.offline.plan import make_plan
from fleet.offline.policy_pack import policy_config
from fleet.spec.load import load
from policies.framework import object_ref


def test_a_privileged_workload_in_the_gpu_system_namespace_is_judged_like_any_other(tmp_path: Path, capsys) -> None:
    evil = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "miner", "namespace": "gpu-system"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "m"}}, "template": {"metadata": {"labels": {"app": "m"}}, "spec": {
                "hostNetwork": True,
                "containers": [{"name": "m", "image": "evil.example.com/miner:latest", "securityContext": {"privileged": True},
                                "volumeMounts": [{"name": "root", "mountPath": "/host"}]}],
                "volumes": [{"name": "root", "hostPath": {"path": "/"}}]}}}}
    path = tmp_path / "evil.yaml"
    path.write_text(yaml.safe_dump(evil))
    assert main(["check", str(path), "--format", "json"]) == 1
    found = {f["rule_id"] for f in json.loads(capsys.readouterr().out)["findings"] if f["level"] == "mandatory"}
    assert {"D1", "D2", "D3", "D15"} <= found


def test_gpu_system_images_come_from_allowed_registries_pinned_by_digest(prod_root: Path, tmp_path: Path) -> None:
    from tests.conftest import copy_project

    project = copy_project(tmp_path / "p")
    (project / "stacks").joinpath("Pulumi.prod.yaml").write_text((prod_root / "stacks" / "Pulumi.prod.yaml").read_text())
    stack = project / "stacks" / "Pulumi.prod.yaml"
    text = stack.read_text()
    start = text.index("    dcgm_image: ")
    end = text.index("\n", start)
    stack.write_text(text[:start] + "    dcgm_image: evil.example.com/dcgm:latest" + text[end:])
    plan = make_plan("prod", project)
    d15 = [f for f in plan.mandatory if f.rule_id == "D15"]
    assert {f.message.split(".image ", 1)[1] for f in d15} == {
        "evil.example.com/dcgm:latest is not from an allowed registry (docker.io/vllm, nvcr.io/nvidia, public.ecr.aws/eks, "
        "763104351884.dkr.ecr.us-east-1.amazonaws.com/vllm)", "evil.example.com/dcgm:latest is latest"}
    assert all(f.name == "daemonset-gpu-system-dcgm-exporter" for f in d15)


def test_platform_exemptions_name_exact_rendered_objects_with_reasons(prod_root: Path) -> None:
    spec = load("prod", prod_root)
    plan = make_plan("prod", prod_root)
    rendered = {object_ref(c.inputs) for c in plan.kubernetes_objects()}
    exempted = {ref: reason for conf in policy_config(spec).values() for ref, reason in conf["exempt_resources"].items()}
    assert exempted, "the prod stack renders objects that need exemptions"
    assert set(exempted) <= rendered          # no exemption for an object that does not exist
    assert all(len(reason) > 30 for reason in exempted.values())
    assert not any(ref.startswith("Namespace/team-") for ref in exempted)
    # and they are exactly enough: the bundled plan is clean
    assert plan.mandatory == []
