"""Inputs that used to end in a wrongful accept: blank secrets, team files that are not mappings under every command
that reads them. Each case is refused with exit 2 naming the file, the line and the field."""

from __future__ import annotations

import json
from pathlib import Path

import pulumi
import pytest

from components.program import engine_config
from fleet.cli import main
from fleet.errors import ConfigError
from fleet.offline import codeowners
from fleet.spec.load import load_from_engine
from fleet.spec.stack_file import read_stack_file
from tests.conftest import edit, write


@pytest.mark.parametrize("value", ['""', '"   "', '"\\t\\n"'])
def test_a_blank_secure_value_is_refused_like_a_missing_secret(project: Path, capsys, value: str) -> None:
    edit(project / "stacks" / "Pulumi.dev.yaml", "      secure: v1:devSearchApiKeyCiphertextPlaceholder\n", f"      secure: {value}\n")
    assert main(["--root", str(project), "validate", "--stack", "dev"]) == 2
    err = capsys.readouterr().err
    line = next(i for i, text in enumerate((project / "stacks" / "Pulumi.dev.yaml").read_text().splitlines(), 1) if "search-api-key:" in text)
    assert f"stacks/Pulumi.dev.yaml:{line} config.vllm-fleet:secrets.search-api-key: the secret is empty" in err, err
    assert "pulumi config set --stack dev --secret --path 'vllm-fleet:secrets.search-api-key'" in err


@pytest.mark.parametrize("value", ["", "  ", None])
def test_a_blank_secret_from_the_engine_is_refused(project: Path, monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
    engine, _, _ = read_stack_file(project, "dev")
    assert engine is not None
    values = {**engine.values, "vllm-fleet:secrets": json.dumps({"hf-token": "hf_x", "search-api-key": value, "assistant-api-key": "k2"})}
    pulumi.runtime.set_all_config({}, [])
    monkeypatch.setenv("PULUMI_CONFIG", json.dumps(values))
    monkeypatch.setenv("PULUMI_CONFIG_SECRET_KEYS", json.dumps(["vllm-fleet:secrets"]))
    got, secret_keys = engine_config()
    with pytest.raises(ConfigError) as exc:
        load_from_engine("dev", project, got, secret_keys)
    assert "config.vllm-fleet:secrets: secret 'search-api-key' is empty" in str(exc.value)
    assert "hf_x" not in str(exc.value)


NOT_A_MAPPING = {"a list": "- name: evil\n- owners: ['@acme/evil']\n", "a string": "just some text\n", "a number": "42\n"}


@pytest.mark.parametrize("case", sorted(NOT_A_MAPPING))
def test_every_command_that_reads_team_files_refuses_one_that_is_not_a_mapping(project: Path, capsys, case: str) -> None:
    (project / ".github").mkdir()
    (project / ".github" / "CODEOWNERS").write_text(codeowners.render(project))
    write(project / "stacks" / "teams" / "evil.yaml", NOT_A_MAPPING[case])
    for argv in (["validate", "--stack", "dev"], ["policy-config", "--stack", "dev"], ["codeowners", "--check"], ["codeowners"],
                 ["plan", "--stack", "dev", "--no-policies"]):
        code = main(["--root", str(project), *argv])
        err = capsys.readouterr().err
        assert code == 2, (argv, err)
        assert "stacks/teams/evil.yaml:1: is a" in err and "expected a mapping with name, owners and models" in err, (argv, err)


def test_codeowners_refuses_a_team_file_that_validate_refuses(project: Path, capsys) -> None:
    edit(project / "stacks" / "teams" / "search.yaml", "owners:", "ownrs:")
    assert main(["--root", str(project), "codeowners", "--check"]) == 2
    err = capsys.readouterr().err
    assert "stacks/teams/search.yaml:" in err and "unknown key 'ownrs'" in err
    assert main(["--root", str(project), "validate", "--stack", "dev"]) == 2
    assert "unknown key 'ownrs'" in capsys.readouterr().err


# apimachinery's own cases (kubernetes/apimachinery@v0.33.0:pkg/util/validation/validation_test.go), run through the
# one module every config field uses.
APIMACHINERY_CASES = {
    "qualified_name": (["simple", "now-with-dashes", "1-starts-with-num", "1234", "simple/simple", "now-with-dashes/simple",
                        "now.with.dots/simple", "1-num.2-num/3-num", "1.2.3.4/5678", "Uppercase_Is_OK_123",
                        "example.com/Uppercase_Is_OK_123", "requests.storage-foo", "a" * 63, "a" * 253 + "/" + "b" * 63],
                       ["nospecialchars%^=@", "cantendwithadash-", "-cantstartwithadash-", "only/one/slash", "Example.com/abc",
                        "example_com/abc", "example.com/", "/simple", "a" * 64, "a" * 254 + "/abc", "simple\n"]),
    "label_value": (["simple", "now-with-dashes", "1-starts-with-num", "end-with-num-1", "1234", "a" * 63, ""],
                    ["nospecialchars%^=@", "Tama-nui-te-rā.is.Māori.sun", "\\backslashes\\are\\bad", "-starts-with-dash",
                     "ends-with-dash-", ".starts.with.dot", "ends.with.dot.", "a" * 64, "x\n"]),
    "config_map_key": (["a", "good", "good-good", "still.good", "this.is.also.good", ".so.is.this", "THIS_IS_GOOD", "so_is_this_17"],
                       [".", "..", "..bad", "b*d", "bad!&bad", "a/b", "/etc/x", "../../../etc/x", "", "k" * 254, "key\n"]),
    "dns1123_label": (["a", "ab", "abc", "a1", "a-1", "a--1--2--b", "0", "01", "1-2", "a" * 63],
                      ["", "A", "ABC", "aBc", "A1", "A-1", "1-A", "-", "a-", "-a", "1-", "-1", "_", "a_", "_a", "a_b", "1_", "_1",
                       "1_2", ".", "a.", ".a", "a.b", "1.", ".1", "1.2", " ", "a ", " a", "a b", "1 ", " 1", "1 2", "a" * 64]),
    "dns1123_subdomain": (["a", "ab", "abc", "a1", "a-1", "a--1--2--b", "0", "01", "1-2", "a.a", "ab.a", "a-1.a", "0.a",
                           "a.b.c.d.e", "aaaaaaaaaa.bbbbbbbbbb.cccccccccc", ("a" * 63 + ".") * 3 + "a" * 61],
                          ["", "A", "ABC", "a-", "-a", "_a", "a..b", "a.", ".a", "a.-b", "a-.b", "a_b", "a b",
                           ("a" * 63 + ".") * 3 + "a" * 62]),
}


@pytest.mark.parametrize("rule", sorted(APIMACHINERY_CASES))
def test_names_are_checked_as_the_api_server_checks_them(rule: str) -> None:
    from fleet import k8s_names

    check = getattr(k8s_names, rule)
    good, bad = APIMACHINERY_CASES[rule]
    assert [v for v in good if check(v)] == []
    assert [v for v in bad if not check(v)] == []


# Every config field whose value becomes a Kubernetes name, key, path or label: (file, old text, new text, field path,
# the rule's words).
K8S_NAMES = {
    "secret key a relative path": ("stacks/teams/search.yaml", "    api_key: {secret: search-api-key}\n    structured_outputs",
                                   "    api_key: {secret: search-api-key, key: ../../../etc/x}\n    structured_outputs",
                                   "models[0].api_key.key", "not valid as a Secret key"),
    "secret key absolute": ("stacks/teams/search.yaml", "    api_key: {secret: search-api-key}\n    structured_outputs",
                            "    api_key: {secret: search-api-key, key: /etc/passwd}\n    structured_outputs",
                            "models[0].api_key.key", "no '/', so not a path"),
    "secret key with a slash": ("stacks/teams/search.yaml", "    api_key: {secret: search-api-key}\n    structured_outputs",
                                "    api_key: {secret: search-api-key, key: keys/api}\n    structured_outputs",
                                "models[0].api_key.key", "no '/', so not a path"),
    "secret key dot-dot": ("stacks/teams/search.yaml", "    api_key: {secret: search-api-key}\n    structured_outputs",
                           "    api_key: {secret: search-api-key, key: ..data}\n    structured_outputs",
                           "models[0].api_key.key", "must not start with '..'"),
    "existing secret with an empty part": ("stacks/teams/search.yaml", "    api_key: {secret: search-api-key}\n    structured_outputs",
                                           "    api_key: {existing_secret: api..key}\n    structured_outputs",
                                           "models[0].api_key.existing_secret", "not valid as a Secret name"),
    "existing secret too long": ("stacks/teams/search.yaml", "    api_key: {secret: search-api-key}\n    structured_outputs",
                                 "    api_key: {existing_secret: " + "a" * 254 + "}\n    structured_outputs",
                                 "models[0].api_key.existing_secret", "must be no more than 253 characters"),
    "stack secret ending in a dash": ("stacks/Pulumi.dev.yaml", "    search-api-key:\n", "    search-api-key-:\n",
                                      "config.vllm-fleet:secrets.search-api-key-", "not valid as a secret name"),
    "gateway namespace too long": ("stacks/Pulumi.dev.yaml", "    namespace: gateway\n", "    namespace: " + "g" * 64 + "\n",
                                   "config.vllm-fleet:gateway.namespace", "must be no more than 63 characters"),
    "adapter namespace with a dot": ("stacks/Pulumi.dev.yaml", "    backend: hpa\n", "    backend: hpa\n    adapter_namespace: mon.itoring\n",
                                     "config.vllm-fleet:autoscaling.adapter_namespace", "must not contain dots"),
    "ingress class in capitals": ("stacks/Pulumi.dev.yaml", "    namespace: gateway\n", "    namespace: gateway\n    ingress_class: NGINX\n",
                                  "config.vllm-fleet:gateway.ingress_class", "not valid as an object name"),
    "tls secret with an underscore": ("stacks/Pulumi.dev.yaml", "    namespace: gateway\n",
                                      "    namespace: gateway\n    tls_secret_name: llm_tls\n",
                                      "config.vllm-fleet:gateway.tls_secret_name", "not valid as a Secret name"),
    "hostname suffix starting with a dot": ("stacks/Pulumi.dev.yaml", "    namespace: gateway\n",
                                            "    namespace: gateway\n    hostname_suffix: .example.com\n",
                                            "config.vllm-fleet:gateway.hostname_suffix", "not valid as a host name suffix"),
    "gateway name too long for its Service": ("stacks/Pulumi.dev.yaml", "    namespace: gateway\n",
                                              "    namespace: gateway\n    gateway_name: " + "g" * 60 + "\n",
                                              "config.vllm-fleet:gateway.gateway_name", "must be no more than 57 characters here"),
    "pool label key with two slashes": ("stacks/Pulumi.dev.yaml", "      desired_size: 2\n",
                                        "      desired_size: 2\n      labels: {a/b/c: x}\n",
                                        "config.vllm-fleet:gpu_pools[0].labels.a/b/c", "not valid as a label key"),
    "pool label value too long": ("stacks/Pulumi.dev.yaml", "      desired_size: 2\n",
                                  "      desired_size: 2\n      labels: {tier: " + "v" * 64 + "}\n",
                                  "config.vllm-fleet:gpu_pools[0].labels.tier", "not valid as a label value"),
    "pool label key prefix in capitals": ("stacks/Pulumi.dev.yaml", "      desired_size: 2\n",
                                          "      desired_size: 2\n      labels: {Example.com/tier: a}\n",
                                          "config.vllm-fleet:gpu_pools[0].labels.Example.com/tier", "prefix part"),
    "exemption of an object with an empty name part": ("stacks/Pulumi.dev.yaml", "  vllm-fleet:spare_gpus: 1\n",
                                                       "  vllm-fleet:spare_gpus: 1\n  vllm-fleet:policy:\n    exemptions:\n"
                                                       "      - {rule: D11, resource: Deployment/team-search/a..b, reason: the runtime hook writes}\n",
                                                       "config.vllm-fleet:policy.exemptions[0].resource", "not an object name"),
}


@pytest.mark.parametrize("case", sorted(K8S_NAMES))
def test_a_name_the_api_server_refuses_is_a_config_error_at_its_line(project: Path, capsys, case: str) -> None:
    file, old, new, field, words = K8S_NAMES[case]
    edit(project / file, old, new)
    # the value is on the last line the edit adds
    line = max(i for i, text in enumerate((project / file).read_text().splitlines(), 1) if text.rstrip() and text in new.splitlines()
               and text not in old.splitlines())
    assert main(["--root", str(project), "validate", "--stack", "dev"]) == 2
    err = capsys.readouterr().err
    assert f"{file}:{line} {field}: " in err and words in err, err
    assert "Traceback" not in err


def _size(capsys, *argv: str) -> tuple[int, dict]:
    code = main(["size", *argv, "--json"])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, json.loads(out)


def test_size_refuses_a_tensor_parallel_size_that_does_not_split_the_kv_heads(capsys) -> None:
    # 48 query heads divide by 4 and 8, the 6 KV heads neither divide by 4 nor divide 8: vLLM's QKVParallelLinear refuses both
    arch = ["--params-b", "13", "--layers", "40", "--kv-heads", "6", "--attention-heads", "48", "--head-dim", "128",
            "--hidden-size", "6144", "--gpu", "H100"]
    for tp in ("4", "8"):
        code, d = _size(capsys, *arch, "--tp", tp)
        assert code == 1 and not d["fits"], d
        assert f"tensor parallel size {tp} and the 6 KV heads" in d["reason"] and d["reason"].endswith("use 1, 2, 3, 6, 12, 24, 48"), d
        assert d["fixes"] == ["set tensor_parallel_size to 1 or 2 or 3 or 6"], d
    code, d = _size(capsys, *arch, "--tp", "2")
    assert code == 0 and d["fits"], d


def test_size_refuses_a_tensor_parallel_size_that_does_not_divide_the_attention_heads(capsys) -> None:
    code, d = _size(capsys, "--model", "Qwen/Qwen2.5-7B-Instruct", "--gpu", "H100", "--tp", "8")
    assert code == 1 and "tensor parallel size 8 does not divide the 28 attention heads: vLLM refuses it at start — use 1, 2, 4" in d["reason"]
    code, d = _size(capsys, "--params-b", "7", "--layers", "28", "--kv-heads", "4", "--attention-heads", "28", "--head-dim", "128",
                    "--gpu", "H100", "--tp", "8")
    assert code == 1 and "does not divide the 28 attention heads" in d["reason"]


def test_size_refuses_more_ranks_than_the_instance_has_gpus(capsys) -> None:
    code, d = _size(capsys, "--model", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "g6e.xlarge", "--tp", "2")
    assert code == 1 and "= 2 is more than the 1 GPUs of g6e.xlarge" in d["reason"] and d["fixes"] == ["set tensor_parallel_size to 1"]
    code, d = _size(capsys, "--model", "meta-llama/Llama-3.1-70B-Instruct", "--gpu", "H100", "--tp", "8", "--pp", "2")
    assert code == 1 and "8 × 2 = 16 is more than the 8 GPUs of the largest H100 instance (p5.48xlarge)" in d["reason"]


def test_recommend_offers_no_shape_vllm_refuses_for_the_heads() -> None:
    from fleet.capacity.memory import LATEST_PROFILE, Arch, parallelism_problems
    from fleet.capacity.recommend import recommend

    arch = Arch(id="acme/custom-13b", params_b=13, layers=40, kv_heads=6, head_dim=128, hidden_size=6144, vocab_size=32000,
                attention_heads=48, max_context=32768)
    options = recommend(arch, 8192, 8, "us-east-1", engine_profile=LATEST_PROFILE)
    assert any(o.fits for o in options)
    assert all(not parallelism_problems(arch, o.tp) for o in options if o.fits)
    refused = [o for o in options if o.tp in (4, 8)]
    assert refused and all(not o.fits and "and the 6 KV heads" in o.reason for o in refused)


def test_a_team_file_with_a_tensor_parallel_size_the_kv_heads_refuse_is_a_config_error(project: Path, capsys) -> None:
    team = project / "stacks" / "teams" / "research.yaml"
    team.write_text(team.read_text() + """  - name: custom
    model: acme/custom-13b
    pool: l40s
    tensor_parallel_size: 4
    max_model_len: 8192
    architecture: {params_b: 13, layers: 40, kv_heads: 6, attention_heads: 48, head_dim: 128, hidden_size: 6144}
    api_key: {secret: research-api-key}
""")
    line = team.read_text().splitlines().index("    tensor_parallel_size: 4") + 1
    assert main(["--root", str(project), "validate", "--stack", "prod"]) == 2
    err = capsys.readouterr().err
    assert (f"stacks/teams/research.yaml:{line} models[2].tensor_parallel_size: acme/custom-13b: tensor parallel size 4 and the "
            "6 KV heads") in err, err


def test_an_issue_stays_one_line_whatever_was_typed_into_a_key(project: Path, capsys) -> None:
    # found by tests/test_fuzz_config.py: a key with a newline split the error over two lines
    edit(project / "stacks" / "Pulumi.dev.yaml", "  vllm-fleet:spare_gpus: 1\n", "  ? \"vllm-fleet:pool\\n\\u202e\"\n  : 1\n")
    assert main(["--root", str(project), "validate", "--stack", "dev"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and lines[1].startswith("  stacks/Pulumi.dev.yaml:"), lines
    assert "unknown key 'vllm-fleet:pool\\n\\u202e'" in lines[1], lines


def test_a_team_file_without_models_is_a_team_without_models(project: Path, capsys) -> None:
    # found by tests/test_fuzz_config.py: a KeyError once the team validated
    write(project / "stacks" / "teams" / "search.yaml", "name: search\nowners: ['@acme/search-ml']\n")
    assert main(["--root", str(project), "validate", "--stack", "dev"]) == 0
    assert "config valid" in capsys.readouterr().out
