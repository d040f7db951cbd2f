"""The bundled stack, tenancy and team files, mutated the way a hurried user or a hostile pull request would (a value
of another type, a key or item deleted, huge numbers and strings, unicode), through `validate` and `plan`: never a
traceback or a hang (10 s), a config error (exit 2) or a clean result, and every mutation `validate` accepts renders
objects the schema validator accepts (`plan --no-policies` exit 0, no schema problem).

Deterministic in CI (derandomized, no example database); VLLM_FLEET_FUZZ_EXAMPLES=2000 runs a longer search."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleet.cli import main
from tests.conftest import ROOT, copy_project

# The files `vllm-fleet plan --stack S` reads, as the project ships them, and the examples each stack gets (the prod
# plan renders three times the objects).
TEAMS = ("stacks/teams/search.yaml", "stacks/teams/assistant.yaml", "stacks/teams/research.yaml")
STACKS = {"dev": (("stacks/Pulumi.dev.yaml", "stacks/tenancy.yaml", *TEAMS[:2]), 1.0),
          "prod": (("stacks/Pulumi.prod.yaml", "stacks/tenancy.yaml", *TEAMS), 0.4)}
ALL_FILES = sorted({f for files, _ in STACKS.values() for f in files})
ORIGINAL = {f: yaml.safe_load((ROOT / f).read_text()) for f in ALL_FILES}
HANG_SECONDS = 10
EXAMPLES = int(os.environ.get("VLLM_FLEET_FUZZ_EXAMPLES", "120"))

HUGE = [10**30, -(10**30), 2**63, 1e308, float("inf"), float("nan"), "x" * 70_000, ["a"] * 5_000]
UNICODE = ["ｑｗｅｎ", "İstanbul", "K", "名前", "qwen\u202e", "é", "🤖", "a\u0301", "ﬁ", "x\u200by", "\u00a0", "ß",
           "Ⅻ", "١٢٣", "pool\n", " l40s"]
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=False, width=32), st.sampled_from(HUGE),
                    st.sampled_from(UNICODE), st.text(max_size=12))
WRONG_TYPES = st.one_of(SCALARS, st.lists(SCALARS, max_size=3), st.dictionaries(st.sampled_from([*UNICODE, "name", "x"]), SCALARS,
                                                                                 max_size=2))


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path of a YAML document: mapping keys and list items, nested."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield (*prefix, k)
            yield from paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield (*prefix, i)
            yield from paths(v, (*prefix, i))


PATHS = {f: sorted(paths(doc), key=repr) for f, doc in ORIGINAL.items()}


def _parent(doc: Any, path: tuple[Any, ...]) -> Any:
    for part in path[:-1]:
        doc = doc[part]
    return doc


@st.composite
def mutation(draw: st.DrawFn, files: tuple[str, ...]) -> tuple[str, str, str]:
    """(file, what was done, the mutated file's text)."""
    file = draw(st.sampled_from(files))
    doc = copy.deepcopy(ORIGINAL[file])
    path = draw(st.sampled_from(PATHS[file]))
    parent, last = _parent(doc, path), path[-1]
    kind = draw(st.sampled_from(["type swap", "delete", "huge", "unicode", "unicode key", "duplicate", "empty"]))
    if kind == "delete":
        del parent[last]
    elif kind == "type swap":
        parent[last] = draw(WRONG_TYPES)
    elif kind == "huge":
        parent[last] = draw(st.sampled_from(HUGE))
    elif kind == "unicode":
        value = parent[last]
        mark = draw(st.sampled_from(UNICODE))
        parent[last] = (value + mark if draw(st.booleans()) else mark + value) if isinstance(value, str) else mark
    elif kind == "unicode key" and isinstance(parent, dict):
        parent[draw(st.sampled_from(UNICODE))] = parent.pop(last)
    elif kind == "duplicate" and isinstance(parent, list):
        parent.append(copy.deepcopy(parent[last]))
    else:
        parent[last] = draw(st.sampled_from(["", [], {}]))
    text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=draw(st.booleans()), width=10_000)
    return file, f"{kind} at {list(path)}", text


class Hang(Exception):
    pass


def _alarm(signum: int, frame: object) -> None:
    raise Hang(f"no answer within {HANG_SECONDS} s")


def run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(HANG_SECONDS)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.skipif(not hasattr(signal, "SIGALRM"), reason="needs SIGALRM to bound each run")
@pytest.mark.parametrize("stack", sorted(STACKS))
def test_mutated_config_files_end_in_a_config_error_or_a_plan_the_schemas_accept(tmp_path: Path, stack: str) -> None:
    root = copy_project(tmp_path / "project")
    files, share = STACKS[stack]
    examples = max(10, int(EXAMPLES * share))
    seen = {"accepted": 0, "refused": 0}

    @settings(max_examples=examples, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    @given(mutation(files))
    def check(case: tuple[str, str, str]) -> None:
        file, what, text = case
        for f in files:
            (root / f).write_text((ROOT / f).read_text(encoding="utf-8"), encoding="utf-8")
        (root / file).write_text(text, encoding="utf-8")
        code, out, err = run(["--root", str(root), "validate", "--stack", stack])
        assert "Traceback" not in out + err, (file, what, err)
        assert code in (0, 2), (file, what, code, out, err)
        if code == 2:
            seen["refused"] += 1
            lines = err.splitlines()
            assert lines and lines[0].endswith(":") and len(lines) > 1, (file, what, err)
            assert all(line.startswith("  stacks/") for line in lines[1:]), (file, what, err)
            return
        seen["accepted"] += 1
        code, out, err = run(["--root", str(root), "plan", "--stack", stack, "--no-policies", "--format", "json"])
        assert "Traceback" not in out + err, (file, what, err)
        problems = json.loads(out)["schema_problems"] if out.strip() else None
        assert code == 0 and problems == [], (file, what, code, problems, err)

    check()
    # both outcomes are exercised: the mutations are neither all harmless nor all fatal
    assert seen["accepted"] >= 2 and seen["refused"] >= examples // 3, seen
