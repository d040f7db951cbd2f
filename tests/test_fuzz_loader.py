"""Thousands of generated malformed team files: each ends in a config error (exit 2) with a field path."""

from __future__ import annotations

import contextlib
import io
import re
import shutil
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleet.cli import main
from tests.conftest import ROOT

VALID_MODEL: dict[str, Any] = {
    "name": "m", "model": "meta-llama/Llama-3.1-8B-Instruct", "pool": "l40s", "max_model_len": 8192,
    "api_key": {"secret": "search-api-key"}, "autoscaling": {"min_replicas": 1, "max_replicas": 2},
}
VALID_TEAM: dict[str, Any] = {"name": "fuzz", "owners": ["@acme/fuzz"], "models": [VALID_MODEL]}
TENANCY = "teams:\n  fuzz: {gpu_quota: {prod: 16}, secrets: [search-api-key]}\n"
SECRET_VALUES = ("sk-literal-secret", "hf_FuzzTokenValue123")

# Each mutation turns the valid team into an invalid one, at a known path.
WRONG_TYPES = st.one_of(st.integers(-5, 5), st.floats(allow_nan=False), st.lists(st.integers(), min_size=1, max_size=2),
                        st.dictionaries(st.text(max_size=3), st.integers(), min_size=1, max_size=2), st.booleans())
FIELDS = ["name", "owners", "models"]
MODEL_FIELDS = ["name", "model", "pool", "replicas", "tensor_parallel_size", "gpu_memory_utilization",
                "max_model_len", "dtype", "quantization", "enable_prefix_caching", "lora", "speculative",
                "tool_calling", "multimodal", "extra_args", "stacks", "api_key", "autoscaling", "runner"]
BAD_VALUES: dict[str, list[Any]] = {
    "name": ["Not_A_Label", "", "-x", "a" * 41, 7, None],
    "model": ["no-slash", "a/b/c", "", 3, None],
    "pool": ["h10", "gpu", "", None, 9],
    "replicas": [0, -1, 1001, "two", 1.5],
    "tensor_parallel_size": [0, 3, 5, 65, "8", 2.5],
    "gpu_memory_utilization": [0.0, 1.2, 0.99, "high", -0.5],
    "max_model_len": [0, 8, "long", 1e12],
    "dtype": ["int4", "bf16", 16, True],
    "quantization": ["int3", "GPTQ", 4],
    "enable_prefix_caching": ["yes please", 3, [True]],
    "lora": [{"modules": []}, {"modules": [{"name": "a"}]}, {"max_rank": 7, "modules": [{"name": "a", "path": "/x"}]}, "on"],
    "speculative": [{"method": "eagle"}, {"method": "ngram", "model": "a/b", "num_speculative_tokens": 2},
                    {"method": "medusa", "num_speculative_tokens": 99}, "fast"],
    "tool_calling": [{"parser": "Bad Parser"}, {}, "hermes"],
    "multimodal": [{"limit_per_prompt": {"smell": 1}}, {}, {"limit_per_prompt": {"image": "many"}}],
    "extra_args": [["--speculative-model", "x/y"], ["--task", "embed"], ["--max-model", "4"], ["--bogus-flag"],
                   ["--api-key", "k"], "--enforce-eager", [""], ["--guided-decoding-backend", "xgrammar"]],
    "stacks": [{"prod": {"replicas": 0}}, {"prod": {"nme": 1}}, {"Prod!": {}}, {"prod": "yes"}, {"staging": {"replicas": 1}}],
    "api_key": ["sk-literal-secret", {"secret": "not-set-here"}, {"secret": "a", "existing_secret": "b"}, {},
                {"secret": "sk-literal-secret"}, ["hf_FuzzTokenValue123"], {"secret": ["hf_FuzzTokenValue123"]}],
    "hf_token": [["hf_FuzzTokenValue123"], {"secret": "hf_FuzzTokenValue123"}, "hf_FuzzTokenValue123"],
    "autoscaling": [{"min_replicas": 3, "max_replicas": 2}, {"max_replicas": 0}, {"min_replicas": 0, "max_replicas": 2},
                    {"max_replicas": 100}, "auto"],
    "runner": ["embed", "pool", 1],
}


@st.composite
def malformed_team(draw: st.DrawFn) -> str:
    import copy

    team = copy.deepcopy(VALID_TEAM)
    model = team["models"][0]
    kind = draw(st.sampled_from(["team_type", "team_unknown", "team_missing", "model_value", "model_unknown",
                                 "model_missing", "model_conflict", "yaml_garbage", "quota"]))
    if kind == "team_type":
        team[draw(st.sampled_from(FIELDS))] = draw(WRONG_TYPES)
    elif kind == "team_unknown":
        team[draw(st.sampled_from(["owner", "quota", "model", "namespace", "gpu_quotas"]))] = draw(WRONG_TYPES)
    elif kind == "team_missing":
        del team[draw(st.sampled_from(["name", "owners"]))]
    elif kind == "model_value":
        field = draw(st.sampled_from(sorted(BAD_VALUES)))
        model[field] = draw(st.sampled_from(BAD_VALUES[field]))
        if field == "replicas":
            model.pop("autoscaling")
    elif kind == "model_unknown":
        model[draw(st.sampled_from(["replica", "tp", "image", "maxModelLen", "gpu", "quantisation", "env"]))] = draw(WRONG_TYPES)
    elif kind == "model_missing":
        del model[draw(st.sampled_from(["name", "model", "pool"]))]
    elif kind == "model_conflict":
        model["replicas"] = 2
    elif kind == "quota":
        # what stacks/tenancy.yaml grants, typed into the team's own file
        team[draw(st.sampled_from(["gpu_quota", "rbac_group", "secrets"]))] = {"prod": draw(st.sampled_from([0, 1, 99, "lots"]))}
    if kind == "yaml_garbage":
        text = yaml.safe_dump(team, sort_keys=False)
        cut = draw(st.integers(5, len(text) - 5))
        return text[:cut] + draw(st.sampled_from([": [", "\n  - {", "\n\t x: y", "\n: :", " ]]"])) + text[cut:]
    return yaml.safe_dump(team, sort_keys=False)


PATH = r"(?:[A-Za-z0-9_\-:.@/]+|\[\d+\]|\['[^']*'\]|\[\"[^\"]*\"\])+"
ERROR_LINE = re.compile(rf"^  stacks/teams/fuzz\.yaml:\d+( {PATH})?: .+")


def test_malformed_team_files_always_end_in_a_config_error(tmp_path: Path) -> None:
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    (tmp_path / "stacks" / "teams").mkdir(parents=True)
    shutil.copy(ROOT / "stacks" / "Pulumi.prod.yaml", tmp_path / "stacks" / "Pulumi.prod.yaml")
    (tmp_path / "stacks" / "tenancy.yaml").write_text(TENANCY)
    team_file = tmp_path / "stacks" / "teams" / "fuzz.yaml"
    seen = {"with_path": 0}

    @settings(max_examples=2000, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(malformed_team())
    def check(text: str) -> None:
        team_file.write_text(text)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["--root", str(tmp_path), "validate", "--stack", "prod"])
        lines = err.getvalue().splitlines()
        assert code == 2, (text, out.getvalue(), err.getvalue())
        assert lines and re.match(r"^\d+ config errors?:$", lines[0]), err.getvalue()
        assert all(ERROR_LINE.match(line) for line in lines[1:]), err.getvalue()
        assert "Traceback" not in err.getvalue()
        assert not any(value in err.getvalue() for value in SECRET_VALUES), err.getvalue()
        if any(re.match(r"^  \S+:\d+ \S+: ", line) for line in lines[1:]):
            seen["with_path"] += 1

    check()
    # YAML syntax errors have a line but no field path; everything else names its field.
    assert seen["with_path"] > 1500
