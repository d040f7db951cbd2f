"""The compiled schema validator gives jsonschema's answers: the same problems (path, message) in the same
order, on every object the bundled stacks render and on thousands of mutations of them."""

from __future__ import annotations

import copy
import random
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from fleet.checks import strip_unknowns
from fleet.engine import k8s_schema
from fleet.engine.compiled_schema import CompiledValidator, Unsupported, _regex
from fleet.plan import capture
from fleet.render.workload import model_manifests
from fleet.spec.loader import load
from tests.conftest import ROOT, copy_project, keda_scale_to_zero
from tests.policy_fixtures import karpenter_objects

VERSION = "1.33"


def keda_objects(project: Path) -> list[dict[str, Any]]:
    keda_scale_to_zero(project)
    spec = load("dev", project)
    return [m for model in spec.models for m in model_manifests(spec, model)]


@pytest.fixture(scope="module")
def objects(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[dict[str, Any], frozenset[str]]]:
    out = []
    for stack in ("dev", "prod"):
        for c in capture(load(stack, ROOT)):
            if c.is_kubernetes:
                unknown: list[str] = []
                out.append((strip_unknowns(c.inputs, "", unknown), frozenset(unknown)))
    project = copy_project(tmp_path_factory.mktemp("keda"))
    out += [(o, frozenset()) for o in [*karpenter_objects(), *keda_objects(project)]]
    return out


def both(obj: dict[str, Any], unknown: frozenset[str] = frozenset()) -> tuple[list[str], list[str]]:
    fast = [str(p) for p in k8s_schema.validate(obj, VERSION, unknown)]
    slow = [str(p) for p in k8s_schema.validate(obj, VERSION, unknown, reference=True)]
    return fast, slow


def test_every_rendered_kind_uses_the_compiled_validator_in_every_supported_version(objects) -> None:
    kinds = {(o["apiVersion"], o["kind"]) for o, _ in objects}
    assert {"Deployment", "LeaderWorkerSet", "ScaledObject", "NodePool", "EC2NodeClass", "PrometheusRule"} <= {k for _, k in kinds}
    for version in [f"1.{minor}" for minor in range(25, 38)]:
        for api_version, kind in kinds:
            validator = k8s_schema._validator(version, api_version, kind)
            assert isinstance(validator, CompiledValidator), (version, api_version, kind)


def test_bundled_objects_are_judged_the_same(objects) -> None:
    for obj, unknown in objects:
        fast, slow = both(obj, unknown)
        assert fast == slow == []


def _nodes(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _nodes(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _nodes(v, (*path, i))
    return out


WRONG = [None, 7, 2.5, True, "text", [], {}, ["x"], {"k": "v"}, "NotAnAllowedValue", -1, 0, ""]


def mutate(obj: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """One to three random edits: add an unknown key, drop a key, or put a value of another type or an
    unlisted string anywhere in the object."""
    out = copy.deepcopy(obj)
    for _ in range(rng.randint(1, 3)):
        path = rng.choice(_nodes(out)[1:])
        parent = out
        for key in path[:-1]:
            parent = parent[key]
        key = path[-1]
        action = rng.random()
        target = parent[key]
        if action < 0.25 and isinstance(target, dict):
            target[rng.choice(["bogus", "replicass", "x-extra"])] = copy.deepcopy(rng.choice(WRONG))
        elif action < 0.5 and isinstance(parent, dict):
            del parent[key]
        else:
            parent[key] = copy.deepcopy(rng.choice(WRONG))
    return out


def test_thousands_of_mutations_are_judged_the_same(objects) -> None:
    rng = random.Random(20261128)
    differing, invalid = [], 0
    for i in range(2400):
        obj, unknown = objects[i % len(objects)]
        bad = mutate(obj, rng)
        if not isinstance(bad.get("apiVersion"), str) or not isinstance(bad.get("kind"), str):
            continue
        fast, slow = both(bad, unknown)
        invalid += bool(slow)
        if fast != slow:
            differing.append((bad.get("kind"), fast, slow))
    assert not differing, differing[:3]
    assert invalid > 1000  # the mutations do break objects, so the comparison covers the error paths


def test_keywords_outside_the_subset_fall_back_to_jsonschema(monkeypatch) -> None:
    schema = {"type": "object", "patternProperties": {"^x-": {"type": "string"}}, "additionalProperties": False}
    for unsupported in (schema, {"properties": {"a": {"type": "any"}}}, {"items": {"$anchor": "x"}}):
        with pytest.raises(Unsupported):
            CompiledValidator(unsupported, jsonschema.validators.Draft202012Validator(unsupported)._resolver)
    monkeypatch.setattr(k8s_schema, "_schema", lambda *a: (schema, k8s_schema._definitions(VERSION)))
    k8s_schema._validator.cache_clear()
    try:
        validator = k8s_schema._validator(VERSION, "example.com/v1", "Widget")
        assert isinstance(validator, jsonschema.protocols.Validator)
        problems = k8s_schema.validate({"apiVersion": "example.com/v1", "kind": "Widget", "x-a": 1}, VERSION)
        assert [(p.path, p.message) for p in problems] == [
            ("", "'apiVersion', 'kind' do not match any of the regexes: '^x-'"), ("x-a", "1 is not of type 'string'")]
    finally:
        k8s_schema._validator.cache_clear()


def test_go_patterns_with_leading_inline_flags_compile() -> None:
    assert _regex("^(?i)(abort|warn)?$").search("ABORT")
    assert not _regex("^(?i)(abort|warn)?$").search("retry")


def test_crd_keywords_are_judged_the_same(objects) -> None:
    """minItems, minLength (inside anyOf), anyOf, pattern, minimum: edits that hit each, compared with jsonschema."""
    by_kind = {o["kind"]: o for o, _ in objects}
    node_class = copy.deepcopy(by_kind["EC2NodeClass"])
    node_class["spec"]["subnetSelectorTerms"] = []                                      # minItems
    monitor = copy.deepcopy(by_kind["ServiceMonitor"])
    monitor["spec"]["scrapeClass"] = ""                                                 # anyOf over minLength
    monitor["spec"]["endpoints"][0]["oauth2"] = {"tokenUrl": "", "clientId": {}, "clientSecret": {}}  # minLength
    pool = copy.deepcopy(by_kind["NodePool"])
    pool["spec"]["weight"] = 0                                                          # minimum
    pool["spec"]["disruption"]["consolidateAfter"] = "soon"                             # pattern
    for obj in (node_class, monitor, pool):
        fast, slow = both(obj)
        assert fast == slow and fast, obj["kind"]
    messages = " | ".join(both(node_class)[0] + both(monitor)[0] + both(pool)[0])
    for expected in ("[] should be non-empty", "is not valid under any of the given schemas", "does not match",
                     "is less than the minimum of 1"):
        assert expected in messages, (expected, messages)
