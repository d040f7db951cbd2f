"""The policy pack started the way the Pulumi CLI starts it: its analyzer plugin shim reads PulumiPolicy.yaml's
runtime options and runs `<virtualenv>/bin/python -u -m pulumi.policy <engine address> <pack dir>` in the pack's
directory; the pack prints its port and serves the Analyzer gRPC service. The engine then asks for its info,
configures it from `--policy-pack-config` (the JSON `vllm-fleet policy-config` writes), sends Analyze for every
resource and AnalyzeStack once. Its findings must be the ones `plan` reports."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import yaml
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import analyzer_pb2 as proto
from pulumi.runtime.proto import analyzer_pb2_grpc

from fleet.cli import main
from fleet.offline.plan import make_plan
from fleet.offline.policy_pack import LEVELS, PACK_NAME, PACK_VERSION, analyze_request, analyze_stack_request, findings_of
from policies.rules import RULES
from tests.conftest import ROOT

PACK = ROOT / "policies"


def cli_command(pack: Path) -> list[str]:
    """What the CLI's `pulumi-analyzer-policy-python` shim runs for a pack: the virtualenv its runtime options name,
    relative to the pack's directory, or a bare python3 without one."""
    runtime = yaml.safe_load((pack / "PulumiPolicy.yaml").read_text())["runtime"]
    virtualenv = (runtime.get("options") or {}).get("virtualenv")
    assert virtualenv, "without runtime.options.virtualenv the CLI runs a bare python3 that has no pulumi_policy"
    python = (pack / virtualenv).resolve() / "bin" / "python"
    assert python.is_file(), f"{python}: the virtualenv PulumiPolicy.yaml names does not exist (./scripts/setup.sh creates it)"
    return [str(python), "-u", "-m", "pulumi.policy", "127.0.0.1:1", str(pack)]


@pytest.fixture(scope="module")
def analyzer() -> Iterator[analyzer_pb2_grpc.AnalyzerStub]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PULUMI_", "PYTHON"))}
    command = cli_command(PACK)
    env["PATH"] = f"{Path(command[0]).parent}:{env.get('PATH', '')}"
    proc = subprocess.Popen(command, cwd=PACK, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = proc.stdout.readline().strip() if proc.stdout else ""
        if not port.isdigit():
            proc.kill()
            raise AssertionError(f"the pack printed no port: {proc.communicate(timeout=10)[1]}")
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=30)
            yield analyzer_pb2_grpc.AnalyzerStub(channel)
    finally:
        proc.kill()
        proc.communicate(timeout=10)


def configure_from_policy_pack_config(document: dict[str, dict[str, object]]) -> proto.ConfigureAnalyzerRequest:
    """`--policy-pack-config FILE` as the CLI sends it: per policy, `enforcementLevel` and the other keys as properties."""
    request = proto.ConfigureAnalyzerRequest()
    for name, entry in document.items():
        props = struct_pb2.Struct()
        props.update({k: v for k, v in entry.items() if k != "enforcementLevel"})
        request.policyConfig[name].CopyFrom(proto.PolicyConfig(enforcementLevel=LEVELS[str(entry["enforcementLevel"])], properties=props))
    return request


def test_the_pack_describes_itself_like_the_catalogue(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty())
    assert info.name == PACK_NAME
    by_name = {p.name: p for p in info.policies}
    assert set(by_name) == {r.policy_name for r in RULES}
    for r in RULES:
        policy = by_name[r.policy_name]
        assert policy.remediation_steps == r.remediation and r.id in list(policy.tags)
    assert yaml.safe_load((PACK / "PulumiPolicy.yaml").read_text())["version"] == PACK_VERSION


def test_the_pack_over_grpc_finds_what_plan_finds(analyzer: analyzer_pb2_grpc.AnalyzerStub, prod_root: Path, capsys) -> None:
    assert main(["--root", str(prod_root), "policy-config", "--stack", "prod"]) == 0
    analyzer.ConfigureStack(proto.AnalyzerStackConfigureRequest(stack="prod", project="vllm-fleet", organization="acme", dry_run=True))
    analyzer.Configure(configure_from_policy_pack_config(json.loads(capsys.readouterr().out)))
    # a compliant prod plan, and the same plan with the bundled placeholder digest (D15, mandatory in prod)
    for root in (prod_root, ROOT):
        plan = make_plan("prod", root)
        judged = sorted((c for c in plan.resources if c.analyzed), key=lambda c: c.urn)
        found = [f for c in judged for f in findings_of(analyzer.Analyze(analyze_request(c)), c.urn, c.name)]
        found += findings_of(analyzer.AnalyzeStack(analyze_stack_request(judged)))
        assert sorted(found, key=repr) == sorted(plan.findings, key=repr)
    assert {f.rule_id for f in found if f.level == "mandatory"} == {"D15"}
