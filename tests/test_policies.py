"""The guardrail pack: per-rule fixtures with exact messages, metadata, harness semantics, the seed sheet."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from fleet.cli import main
from fleet.errors import ConfigError
from fleet.offline.plan import capture, make_plan
from fleet.offline.policy_pack import analyze, policy_config, policy_levels
from fleet.spec.load import load
from policies.rules import RULES
from tests.conftest import ROOT
from tests.policy_fixtures import Case, component_cases, fixture_config, other_cases, pod_cases, prod_spec, routing_cases

ALL_MANDATORY = {r.policy_name: "mandatory" for r in RULES}


@pytest.fixture(scope="module")
def cases() -> list[Case]:
    prod = {c.name: c for c in capture(prod_spec())}
    return pod_cases() + other_cases(prod) + routing_cases(prod) + component_cases(prod)


def findings_of(case: Case) -> list[tuple[str, str]]:
    return [(f.rule_id, f.message) for f in analyze(case.resources, ALL_MANDATORY, fixture_config())]


def test_every_fixture_trips_exactly_its_rules(cases: list[Case]) -> None:
    failures = []
    for case in cases:
        got = findings_of(case)
        targeted = {g for g in got if g[0] not in case.collateral}
        collateral = {g[0] for g in got if g[0] in case.collateral}
        if targeted != case.expected or (case.collateral and not collateral <= case.collateral):
            failures.append((case.name, sorted(targeted ^ case.expected)))
    assert failures == []


def test_every_rule_has_metadata_and_both_kinds_of_fixture(cases: list[Case]) -> None:
    violating = {rid for c in cases for rid, _ in c.expected}
    compliant = {rid for c in cases if not c.expected for rid in c.exercises}
    catalogue = {f"{area}{n}" for area, top in (("A", 6), ("B", 10), ("C", 9), ("D", 19), ("E", 15), ("F", 11), ("G", 8), ("H", 4), ("I", 3))
                 for n in range(1, top + 1)}
    ids = {r.id for r in RULES}
    assert ids == catalogue
    for r in RULES:
        assert r.description and r.remediation and r.sources and r.severity in ("low", "medium", "high", "critical")
        assert r.level in ("mandatory", "advisory")
        assert r.policy.name == r.policy_name and r.policy.remediation_steps == r.remediation
    assert sorted(catalogue - violating) == []
    # compliant fixtures: explicit cases plus the bundled prod plan (test_bundled_plans_are_clean)
    prod_kinds = {c.type for c in capture(prod_spec())}
    covered = compliant | {r.id for r in RULES if r.stack or set(r.kinds) & prod_kinds}
    assert sorted(catalogue - covered) == []


def test_bundled_plans_have_no_mandatory_findings(prod_root: Path) -> None:
    for stack in ("dev", "prod"):
        plan = make_plan(stack, prod_root)
        assert plan.mandatory == [], plan.mandatory
        assert {f.rule_id for f in plan.findings} <= {"F9"}  # the two models whose revision is not pinned


def test_levels_follow_the_stack_and_overrides(project: Path) -> None:
    dev, prod = load("dev", ROOT), load("prod", ROOT)
    d2 = next(r.policy_name for r in RULES if r.id == "D2")
    d11 = next(r.policy_name for r in RULES if r.id == "D11")
    assert policy_levels(dev)[d2] == "advisory" and policy_levels(prod)[d2] == "mandatory"
    assert policy_levels(prod)[d11] == "advisory"
    stack = project / "stacks" / "Pulumi.prod.yaml"
    base = stack.read_text()
    stack.write_text(base + "  vllm-fleet:policy:\n    overrides: {D11: mandatory, D2: {level: disabled, reason: vendor image runs "
                            "privileged until 2027, owner: '@acme/platform'}}\n")
    levels = policy_levels(load("prod", project))
    assert levels[d11] == "mandatory" and levels[d2] == "disabled"
    # weakening a guardrail without saying why is refused
    stack.write_text(base + "  vllm-fleet:policy:\n    overrides: {D2: disabled}\n")
    with pytest.raises(ConfigError, match=r"D2 is set to disabled without a reason"):
        load("prod", project)


def test_harness_applies_levels_disabled_rules_and_unknowns(cases: list[Case]) -> None:
    case = next(c for c in cases if c.name == "D2#0 on Deployment")
    d2 = next(r.policy_name for r in RULES if r.id == "D2")
    found = analyze(case.resources, {**ALL_MANDATORY, d2: "advisory"}, fixture_config())
    assert [(f.rule_id, f.level) for f in found] == [("D2", "advisory")]
    assert analyze(case.resources, {**ALL_MANDATORY, d2: "disabled"}, fixture_config()) == []
    # a value unknown at preview: the SDK reports that the rule could not run, as advisory, instead of passing
    unknown = next(c for c in cases if c.name == "C2 FSx")
    unknown.resources[0].inputs.update(kmsKeyId="arn:aws:kms:us-east-1:1:key/k",
                                       deploymentType="04da6b54-80e4-46f7-96ec-b56ff0331ba9")
    found = analyze(unknown.resources, ALL_MANDATORY, fixture_config())
    assert [(f.rule_id, f.level) for f in found if f.rule_id == "C2"] == [("C2", "advisory")]
    assert "during preview: string value at .deploymentType can't be known during preview" in found[0].message


def test_stack_exemptions_name_exact_objects_with_reasons(project: Path, cases: list[Case], capsys) -> None:
    stack = project / "stacks" / "Pulumi.prod.yaml"
    base = stack.read_text()
    stack.write_text(base + "  vllm-fleet:policy:\n    exemptions:\n      - {rule: D2, resource: Deployment/team-search/m, "
                     "reason: vendor image needs it until 2027, owner: '@acme/platform'}\n")
    case = next(c for c in cases if c.name == "D2#0 on Deployment")
    config = policy_config(load("prod", project))
    # D2 is exempt for this one object; D11 still judges it (the stack exempted only D2)
    assert {f.rule_id for f in analyze(case.resources, ALL_MANDATORY, config)} == {"D11"}
    d2 = next(r.policy_name for r in RULES if r.id == "D2")
    assert config[d2]["exempt_resources"] == {"Deployment/team-search/m": "vendor image needs it until 2027"}
    other = next(c for c in cases if c.name == "D2#0 on StatefulSet")
    assert "D2" in {f.rule_id for f in analyze(other.resources, ALL_MANDATORY, config)}
    # whole namespaces and reasons that say nothing are refused
    for exemption, problem in (("{rule: D2, namespace: team-search, reason: vendor image needs it}", "exempting a whole namespace"),
                               ("{rule: D2, resource: Deployment/team-search/m, reason: '            '}", "the reason must say why"),
                               ("{rule: D2, resource: team-search, reason: vendor image needs it}", "resource")):
        stack.write_text(base + f"  vllm-fleet:policy:\n    exemptions:\n      - {exemption}\n")
        assert main(["--root", str(project), "validate", "--stack", "prod"]) == 2
        assert problem in capsys.readouterr().err


SEED = ROOT / "tests" / "manifests" / "seed-deployment-sheet.yaml"


def test_seed_sheet_is_flagged_for_its_real_defects(capsys) -> None:
    assert main(["check", str(SEED), "--format", "json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    by_rule = Counter(f["rule_id"] for f in doc["findings"])
    # latest image, no security context, no startupProbe, no drain, GPU toleration without GPU nodes, default namespace
    for rule_id in ("D15", "D5", "D6", "D7", "D8", "G1", "G3", "E2", "D13"):
        assert by_rule[rule_id] >= 1, rule_id
    # what it does right is not flagged: GPU limits, ClusterIP service, token from a Secret, scale-down window, schema
    for rule_id in ("E1", "F5", "F6", "E3", "E5", "F3"):
        assert by_rule[rule_id] == 0, rule_id
    assert not any("stabilization" in f["message"] for f in doc["findings"])
    assert doc["schema_problems"] == []
    assert {"rule_id", "level", "resource", "message"} <= set(doc["findings"][0])


def test_check_reads_multi_document_yaml_and_reports_bad_input(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("just: text\n")
    assert main(["check", str(bad)]) == 2
    assert "not a Kubernetes object" in capsys.readouterr().err
    good = tmp_path / "ns.yaml"
    good.write_text("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n  labels:\n"
                    "    pod-security.kubernetes.io/enforce: restricted\n---\n")
    assert main(["check", str(good)]) == 0


def test_shared_view_servicer_gives_the_sdk_servicers_verdicts(cases: list[Case]) -> None:
    """The harness's faster servicer must report exactly what pulumi-policy's own servicer reports."""
    resources = [*capture(prod_spec()), *(r for c in cases[:60] for r in c.resources)]
    config = fixture_config()
    for levels in (ALL_MANDATORY, policy_levels(prod_spec()), policy_levels(load("dev", ROOT))):
        fast = analyze(resources, levels, config)
        sdk = analyze(resources, levels, config, shared_view=False)
        assert sorted(map(repr, fast)) == sorted(map(repr, sdk))
        assert fast  # the comparison is not vacuous


BAD = sorted((ROOT / "tests" / "manifests" / "bad").glob("*.yaml"))


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.name)
def test_bad_manifests_trip_exactly_the_rules_they_target(path: Path, capsys) -> None:
    expected = set(path.read_text().splitlines()[0].removeprefix("# expect:").split())
    assert main(["check", str(path), "--format", "json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert {f["rule_id"] for f in doc["findings"]} == expected
    assert doc["schema_problems"] == []


