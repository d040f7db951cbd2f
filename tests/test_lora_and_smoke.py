"""LoRA adapters that exist (declared by Hugging Face id or S3 URI, prefetched into the cache; runtime loading behind
the API key) and the smoke-test Job that ends `pulumi up` with proof that each model serves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleet.errors import ConfigError
from fleet.labels import FOR_MODEL_LABEL, MODEL_LABEL, ROLE_LABEL
from fleet.offline.engine import Captured
from fleet.offline.plan import capture, make_plan
from fleet.render.workload import model_manifests, smoke
from fleet.spec.load import load
from tests.conftest import ASSISTANT_LORA, ROOT, edit, keda_scale_to_zero, no_cache

TEAM = Path("stacks") / "teams" / "assistant.yaml"


@pytest.fixture(scope="module")
def dev() -> dict[str, Captured]:
    return {c.name: c for c in capture(load("dev", ROOT))}


def jobs(resources: dict[str, Captured], role: str) -> dict[str, Captured]:
    return {c.inputs["metadata"]["name"]: c for c in resources.values()
            if c.type == "kubernetes:batch/v1:Job" and c.inputs["metadata"]["labels"].get(ROLE_LABEL) == role}


def env_of(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container["env"]}


def set_lora(project: Path, lora: str) -> None:
    edit(project / TEAM, ASSISTANT_LORA, lora)


# --- LoRA -----------------------------------------------------------------------------------------------------------

def test_a_hugging_face_adapter_is_prefetched_at_its_revision_where_the_server_loads_it(dev) -> None:
    (job,) = [j for name, j in jobs(dev, "prefetch").items() if name.startswith("llama-8b-")]
    script = job.inputs["spec"]["template"]["spec"]["containers"][0]["args"][0]
    assert ("hf download acme-ml/llama-3.1-8b-support-tone-lora --revision 5b2c8e1f0a9d4c7e8b3a6f1d2e9c0b7a4d8f5e21 "
            "--local-dir /models/adapters/llama-8b/support-tone") in script
    args = dev["deployment-team-assistant-llama-8b"].inputs["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--lora-modules") + 1] == "support-tone=/models/adapters/llama-8b/support-tone"
    # the Deployment waits for the Job that puts the adapter there
    assert job.urn in dev["deployment-team-assistant-llama-8b"].dependencies


def test_a_local_adapter_path_nothing_creates_is_a_config_error(project: Path) -> None:
    set_lora(project, "    lora:\n      modules: [{name: support-tone, path: /models/adapters/support-tone}]\n")
    with pytest.raises(ConfigError) as err:
        load("dev", project)
    text = str(err.value)
    assert "stacks/teams/assistant.yaml" in text and "models[0].lora.modules[0].path" in text
    assert "is a local path nothing creates" in text and "Hugging Face id (with `revision`) or s3:// URI" in text


def test_adapters_need_a_cache_the_stack_fills(project: Path) -> None:
    edit(project / "stacks" / "Pulumi.dev.yaml", "    backend: efs", "    backend: none")
    with pytest.raises(ConfigError, match=r"models\[0\]\.lora: LoRA adapters are prefetched into the model cache"):
        load("dev", project)


def test_an_s3_adapter_is_copied_under_an_irsa_role_that_reads_only_its_prefix(project: Path) -> None:
    set_lora(project, "    lora:\n      modules: [{name: support-tone, path: s3://acme-adapters/assistant/support-tone}]\n")
    caps = {c.name: c for c in capture(load("dev", project))}
    role = caps["assistant-llama-8b-adapters"]
    trust = json.loads(role.inputs["assumeRolePolicy"])
    (statement,) = trust["Statement"]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert any(v == "system:serviceaccount:team-assistant:llama-8b" for cond in statement["Condition"].values() for v in cond.values())
    policy = json.loads(caps["assistant-llama-8b-adapters-read"].inputs["policy"])
    resources = {r for s in policy["Statement"] for r in s["Resource"]}
    assert resources == {"arn:aws:s3:::acme-adapters", "arn:aws:s3:::acme-adapters/assistant/support-tone/*"}
    (listing,) = [s for s in policy["Statement"] if s["Action"] == ["s3:ListBucket"]]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["assistant/support-tone/", "assistant/support-tone/*"]}}
    assert {a for s in policy["Statement"] for a in s["Action"]} == {"s3:ListBucket", "s3:GetObject"}
    sa = caps["serviceaccount-team-assistant-llama-8b"].inputs["metadata"]
    assert "eks.amazonaws.com/role-arn" in sa["annotations"]
    (job,) = [j for name, j in jobs(caps, "prefetch").items() if name.startswith("llama-8b-")]
    script = job.inputs["spec"]["template"]["spec"]["containers"][0]["args"][0]
    assert "s3://acme-adapters/assistant/support-tone/ /models/adapters/llama-8b/support-tone" in script
    assert "boto3" in script


def test_an_s3_adapter_takes_no_revision(project: Path) -> None:
    set_lora(project, "    lora:\n      modules: [{name: t, path: s3://acme-adapters/t, revision: main}]\n")
    with pytest.raises(ConfigError, match="`revision` pins a Hugging Face adapter"):
        load("dev", project)


def test_runtime_loading_is_behind_the_api_key_and_reads_the_adapters_directory(project: Path) -> None:
    set_lora(project, "    lora:\n      runtime_updating: true\n")
    spec = load("dev", project)
    model = next(m for m in spec.models if m.name == "llama-8b")
    workload = next(m for m in model_manifests(spec.config, model) if m["kind"] == "Deployment")
    env = env_of(workload["spec"]["template"]["spec"]["containers"][0])
    assert env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"]["value"] == "True"
    assert env["VLLM_PLUGINS"]["value"] == "lora_filesystem_resolver"
    assert env["VLLM_LORA_RESOLVER_CACHE_DIR"]["value"] == "/models/adapters/llama-8b"
    assert env["VLLM_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "assistant-api-key"
    # without the key: a config error at the field, and policy F10 on what reaches the engine
    text = (project / TEAM).read_text().replace("    api_key: {secret: assistant-api-key}\n", "", 1)
    (project / TEAM).write_text(text)
    with pytest.raises(ConfigError, match=r"models\[0\]\.lora\.runtime_updating: runtime_updating lets whoever reaches"):
        load("dev", project)


def test_lora_needs_adapters_or_runtime_loading(project: Path) -> None:
    set_lora(project, "    lora: {max_rank: 32}\n")
    with pytest.raises(ConfigError, match="lora needs `modules`, or `runtime_updating: true`"):
        load("dev", project)


# --- smoke tests ----------------------------------------------------------------------------------------------------

def test_each_model_gets_a_smoke_test_after_its_workload_through_its_service_with_its_key(dev) -> None:
    tests = jobs(dev, "smoke")
    assert sorted(n.rsplit("-", 1)[0] for n in tests) == ["bge-m3-smoke", "llama-8b-smoke", "qwen-3b-smoke"]
    job = next(j for n, j in tests.items() if n.startswith("llama-8b-"))
    assert dev["deployment-team-assistant-llama-8b"].urn in job.dependencies
    pod = job.inputs["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    env = env_of(c)
    assert env["MODEL_URL"]["value"] == "http://llama-8b.team-assistant.svc:8000"
    assert env["SERVED_MODEL"]["value"] == "meta-llama/Llama-3.1-8B-Instruct"
    assert env["PROBE"]["value"] == "completions"
    assert env["VLLM_API_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "assistant-api-key", "key": "value"}
    # awaited by the provider past its own deadline
    deadline = job.inputs["spec"]["activeDeadlineSeconds"]
    assert job.custom_timeouts == {"create": deadline + 300, "update": deadline + 300}
    # the same restricted security as everything else, and no serving label: the model's Service never selects it
    assert c["securityContext"] == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                                    "runAsNonRoot": True, "runAsUser": 1000, "readOnlyRootFilesystem": True}
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"} and pod["automountServiceAccountToken"] is False
    labels = job.inputs["spec"]["template"]["metadata"]["labels"]
    assert MODEL_LABEL not in labels and labels[FOR_MODEL_LABEL] == "llama-8b"
    # a pooling model is probed with an embedding
    bge = next(j for n, j in tests.items() if n.startswith("bge-m3-"))
    assert env_of(bge.inputs["spec"]["template"]["spec"]["containers"][0])["PROBE"]["value"] == "embeddings"


def test_the_team_network_policy_lets_the_smoke_test_reach_the_models_and_nothing_else(dev) -> None:
    ingress = dev["networkpolicy-team-assistant-allow-smoke-tests"].inputs["spec"]
    assert ingress["ingress"][0]["from"] == [{"podSelector": {"matchLabels": {ROLE_LABEL: "smoke"}}}]
    egress = dev["networkpolicy-team-assistant-smoke-tests-egress"].inputs["spec"]
    assert egress["podSelector"] == {"matchLabels": {ROLE_LABEL: "smoke"}}
    assert egress["egress"][0]["ports"] == [{"protocol": "TCP", "port": 8000}]


def test_the_smoke_test_runs_again_when_the_model_revision_or_flags_change(project: Path) -> None:
    def name() -> str:
        spec = load("dev", project)
        test = smoke(spec.config, next(m for m in spec.models if m.name == "llama-8b"))
        assert test is not None
        return str(test["metadata"]["name"])

    first = name()
    assert name() == first   # stable: an unchanged model keeps its completed Job
    edit(project / TEAM, "0e9e39f249a16976918f6564b8830bc894c89659", "a" * 40)
    second = name()
    edit(project / TEAM, "    max_model_len: 32768\n    profile: latency\n", "    max_model_len: 16384\n    profile: latency\n")
    assert len({first, second, name()}) == 3


def test_smoke_tests_are_opt_out_per_stack_and_skip_models_that_scale_to_zero(project: Path) -> None:
    keda_scale_to_zero(project)
    spec = load("dev", project)
    names = {m.name: m for m in spec.models}
    assert smoke(spec.config, names["qwen-3b"]) is None          # at zero it has no endpoint to call
    assert smoke(spec.config, names["llama-8b"]) is not None
    edit(project / "stacks" / "Pulumi.dev.yaml", "  aws:region: us-west-2\n",
         "  aws:region: us-west-2\n  vllm-fleet:smoke_tests: \"false\"\n")
    plan = make_plan("dev", project)
    assert not [c for c in plan.resources if c.type == "kubernetes:batch/v1:Job" and "smoke" in c.name]
    assert not [c for c in plan.resources if "smoke-tests" in c.name]   # nor their network policies


def test_no_cache_still_smoke_tests(project: Path) -> None:
    no_cache(project)
    caps = {c.name: c for c in capture(load("dev", project))}
    assert len(jobs(caps, "smoke")) == 3 and not jobs(caps, "prefetch")
