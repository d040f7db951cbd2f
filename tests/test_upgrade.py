"""`vllm-fleet upgrade vllm VERSION`: the report is read from the shipped tables (0.33.0 and 0.34.0, both generated from
vLLM's own parser), the stack files are edited in place, and every failure is one line with nothing written. Table
generation is one function (fleet.vllm.table_gen.generate); its failures run against a local package index."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pytest

from fleet.cli import main
from fleet.spec.load import load
from fleet.upgrade import diff_tables, lines, upgrade_vllm
from fleet.versions import FLAG_TABLE_DIR, bundled_vllm_versions, unshipped_tables
from fleet.vllm import table_gen
from fleet.vllm.flags import table
from fleet.yamledit import EditError, replace_scalars
from tests.conftest import PLACEHOLDER_DIGEST, RESOLVED_DIGEST, edit, resolve_prod_digest


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def raw(version: str) -> dict:
    return json.loads((FLAG_TABLE_DIR / f"flags-{version}.json").read_text())


def test_the_shipped_tables_are_generated_by_the_generator_and_0_34_0_is_bundled() -> None:
    assert "0.34.0" in bundled_vllm_versions() and "0.33.0" in bundled_vllm_versions()
    new = raw("0.34.0")
    assert new["vllm_version"] == "0.34.0" and new["generated_by"] == "fleet/vllm/table_gen.py"
    assert (FLAG_TABLE_DIR / "parser-requirements.txt").is_file()


def test_the_diff_of_0_33_0_and_0_34_0_is_what_the_two_tables_say() -> None:
    old, new = raw("0.33.0"), raw("0.34.0")
    a, b = {o["flag"]: o for o in old["options"]}, {o["flag"]: o for o in new["options"]}
    d = diff_tables("0.33.0", "0.34.0")
    assert set(d.added) == set(b) - set(a) and "--max-num-inflight-kv-loads" in d.added
    assert d.removed == {} and d.renamed == {}            # 0.34.0 drops and renames no option of 0.33.0
    assert set(d.defaults) == {f for f in a if f in b and a[f]["default"] != b[f]["default"]}
    assert d.defaults["--gpu-memory-utilization"] == (0.92, None)   # vLLM decides it itself from 0.34
    assert d.metrics_removed == () and d.metrics_added == ()


def on_0_33(project: Path) -> Path:
    """The project's stacks as they were on vLLM 0.33.0 (the bundled ones are on 0.34.0)."""
    for stack in ("dev", "prod"):
        edit(project / "stacks" / f"Pulumi.{stack}.yaml", "    version: 0.34.0\n", "    version: 0.33.0\n")
    edit(project / "stacks" / "Pulumi.prod.yaml", "      tag: 0.34.0-gpu-py312-ec2\n", "      tag: 0.33.0-gpu-py312-ec2\n")
    return project


def test_the_bundled_stacks_are_on_0_34_0(capsys) -> None:
    from tests.conftest import ROOT

    code, out, _ = run(["--root", str(ROOT), "upgrade", "vllm", "0.34.0", "--dry-run"], capsys)
    assert code == 0 and out.count("vllm.version already 0.34.0") == 2 and "FAILS" not in out


def test_upgrade_reports_per_model_and_writes_only_the_version_line(project: Path, capsys) -> None:
    on_0_33(project)
    before = (project / "stacks" / "Pulumi.dev.yaml").read_text()
    code, out, err = run(["--root", str(project), "upgrade", "vllm", "0.34.0", "--stack", "dev"], capsys)
    assert code == 0, out + err
    assert "0.33.0 → 0.34.0: 7 flags added, 0 removed, 0 renamed, 6 defaults changed; metrics 0 removed, 0 added" in out
    assert "    default of --gpu-memory-utilization: 0.92 → null" in out
    assert "    sizing profile v0.26 → v0.26 (unchanged)" in out
    assert "  assistant/llama-8b (stacks/teams/assistant.yaml:5): ok" in out
    # The fit check sizes for the utilisation the pod passes, so 0.34's new default does not move it.
    assert "no effect (passed explicitly): --gpu-memory-utilization" in out
    assert "wrote stacks/Pulumi.dev.yaml" in out
    after = (project / "stacks" / "Pulumi.dev.yaml").read_text()
    assert after == before.replace("    version: 0.33.0\n", "    version: 0.34.0\n", 1)
    assert load("dev", project).config.vllm.version == "0.34.0"
    code, out, _ = run(["--root", str(project), "upgrade", "vllm", "0.34.0", "--stack", "dev"], capsys)
    assert code == 0 and "vllm.version already 0.34.0" in out and "wrote" not in out


def test_a_dry_run_writes_nothing(project: Path, capsys) -> None:
    on_0_33(project)
    before = {p: p.read_text() for p in (project / "stacks").glob("Pulumi.*.yaml")}
    code, out, _ = run(["--root", str(project), "upgrade", "vllm", "0.34.0", "--dry-run"], capsys)
    assert code == 0 and "would write stacks/Pulumi.dev.yaml (dry run)" in out and "would write stacks/Pulumi.prod.yaml" in out
    assert before == {p: p.read_text() for p in (project / "stacks").glob("Pulumi.*.yaml")}


def test_a_pinned_digest_becomes_the_placeholder_and_the_efa_tag_follows(project: Path, capsys) -> None:
    resolve_prod_digest(on_0_33(project))
    path = project / "stacks" / "Pulumi.prod.yaml"
    before = path.read_text()
    code, out, _ = run(["--root", str(project), "upgrade", "vllm", "0.34.0", "--stack", "prod"], capsys)
    assert code == 0 and "wrote stacks/Pulumi.prod.yaml" in out
    assert "note: vllm.digest named the v0.33.0 image: set to the placeholder — resolve it before deploying" in out
    expected = (before.replace("    version: 0.33.0\n", "    version: 0.34.0\n").replace(f"    digest: {RESOLVED_DIGEST}\n", f"    digest: {PLACEHOLDER_DIGEST}\n")
                .replace("      tag: 0.33.0-gpu-py312-ec2\n", "      tag: 0.34.0-gpu-py312-ec2\n"))
    assert path.read_text() == expected     # comments and layout kept, nothing else touched


def _derived_table(directory: Path, version: str) -> Path:
    """0.34.0's table with one flag removed (--tool-call-parser), one renamed (--shutdown-timeout, same dest) and one
    metric gone (vllm:kv_cache_usage_perc), as a future release might ship it."""
    t = raw("0.34.0")
    t["vllm_version"] = version
    t["options"] = [o for o in t["options"] if o["flag"] != "--tool-call-parser"]
    for o in t["options"]:
        if o["flag"] == "--shutdown-timeout":
            o["flag"] = "--graceful-shutdown-timeout"
    t["metrics"] = [m for m in t["metrics"] if m != "vllm:kv_cache_usage_perc"]
    out = directory / f"flags-{version}.json"
    out.write_text(json.dumps(t))
    return out


def test_removed_and_renamed_flags_and_metrics_fail_the_models_that_use_them(project: Path, tmp_path: Path, capsys) -> None:
    before = (project / "stacks" / "Pulumi.dev.yaml").read_text()
    tables = tmp_path / "tables"
    tables.mkdir()
    _derived_table(tables, "0.99.0")
    with unshipped_tables(tables):
        result = upgrade_vllm(project, "0.99.0", ["dev"])
        d = diff_tables("0.34.0", "0.99.0")
    table.cache_clear()
    assert d.removed == {"--tool-call-parser": None} and d.renamed == {"--shutdown-timeout": "--graceful-shutdown-timeout"}
    assert d.metrics_removed == ("vllm:kv_cache_usage_perc",)
    (dev,) = result.stacks
    models = {m.name: m for m in dev.models}
    llama, qwen = models["assistant/llama-8b"], models["search/qwen-3b"]
    assert llama.removed == ["--tool-call-parser"] and llama.renamed == ["--shutdown-timeout → --graceful-shutdown-timeout"]
    assert qwen.removed == [] and qwen.renamed == ["--shutdown-timeout → --graceful-shutdown-timeout"]
    assert "alerts: vllm:kv_cache_usage_perc is not exported by 0.99.0" in llama.metrics
    assert {m.split(":")[0] for m in llama.metrics} == {"alerts", "dashboards"}
    assert any("--tool-call-parser does not exist in vLLM 0.99.0" in p for p in llama.problems)
    assert not dev.passes and not dev.written and not result.passes
    assert (project / "stacks" / "Pulumi.dev.yaml").read_text() == before


def test_a_release_without_a_table_is_generated_then_checked_and_a_dry_run_ships_nothing(project: Path, capsys) -> None:
    calls: list[str] = []

    def generate(version: str, out: Path) -> Path:
        calls.append(version)
        assert out != FLAG_TABLE_DIR   # a dry run generates into a temporary directory
        return _derived_table(out, version)

    before = (project / "stacks" / "Pulumi.dev.yaml").read_text()
    result = upgrade_vllm(project, "0.98.0", ["dev"], dry_run=True, generate=generate)
    table.cache_clear()
    assert calls == ["0.98.0"] and result.generated and not result.passes
    assert next(lines(result, project)) == "vLLM 0.98.0: flag table generated from its parser, not shipped (dry run)"
    assert not (FLAG_TABLE_DIR / "flags-0.98.0.json").exists()
    assert (project / "stacks" / "Pulumi.dev.yaml").read_text() == before


def test_a_stack_bumped_by_hand_to_a_release_without_a_table_is_checked_against_the_generated_one(project: Path) -> None:
    edit(project / "stacks" / "Pulumi.dev.yaml", "    version: 0.34.0\n", "    version: 0.97.0\n")
    result = upgrade_vllm(project, "0.97.0", ["dev"], dry_run=True, generate=lambda v, out: _derived_table(out, v))
    table.cache_clear()
    (dev,) = result.stacks
    # No table of its own to compare with: the errors of the check against the new table, each at its file and line.
    assert dev.current == "0.97.0" and not dev.passes
    assert "stacks/teams/assistant.yaml:" in "\n".join(dev.problems) and any("does not exist in vLLM 0.97.0" in p for p in dev.problems)


# ------------------------------------------------------------------------------------------- failures: one line, nothing written


def _unchanged(project: Path) -> dict[Path, str]:
    return {p: p.read_text() for p in (project / "stacks").rglob("*.yaml")}


def _fake_index(tmp_path: Path) -> str:
    """A package index (PEP 503, as a directory) that holds vllm 0.33.0 only."""
    page = tmp_path / "index" / "vllm"
    page.mkdir(parents=True)
    (page / "index.html").write_text('<a href="vllm-0.33.0-cp38-abi3-manylinux1_x86_64.whl">vllm-0.33.0-cp38-abi3-manylinux1_x86_64.whl</a>\n')
    return (tmp_path / "index").as_uri()


@pytest.fixture
def offline_pip(monkeypatch: pytest.MonkeyPatch) -> None:
    # Only the index under test: no find-links, extra indexes or retries from the machine's pip configuration.
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "5")
    for name in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_INDEX_URL"):
        monkeypatch.delenv(name, raising=False)


def test_a_version_the_index_does_not_have_is_one_line_and_nothing_is_written(project: Path, tmp_path: Path, capsys, offline_pip) -> None:
    before = _unchanged(project)
    code, out, err = run(["--root", str(project), "upgrade", "vllm", "0.96.0", "--index-url", _fake_index(tmp_path)], capsys)
    assert code == 2 and out == ""
    assert err.startswith("vllm-fleet upgrade vllm 0.96.0: vLLM 0.96.0 is not on the package index file://")
    assert "(its newest: 0.33.0) — check the version" in err and "nothing was written" in err and len(err.strip().splitlines()) == 1
    assert _unchanged(project) == before and not (FLAG_TABLE_DIR / "flags-0.96.0.json").exists()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_index_is_one_line_naming_the_fix(project: Path, capsys, offline_pip, monkeypatch) -> None:
    monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{_closed_port()}/simple")
    before = _unchanged(project)
    start = time.monotonic()
    code, out, err = run(["--root", str(project), "upgrade", "vllm", "0.96.0"], capsys)
    assert time.monotonic() - start < 60
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "cannot reach the package index http://127.0.0.1:" in err and "point PIP_INDEX_URL at a mirror" in err
    assert _unchanged(project) == before and not (FLAG_TABLE_DIR / "flags-0.96.0.json").exists()


def test_generate_cleans_up_its_environment_on_failure(tmp_path: Path, offline_pip) -> None:
    with pytest.raises(table_gen.GenerationError, match="is not on the package index"):
        table_gen.generate("0.96.0", tmp_path / "out", index_url=_fake_index(tmp_path), keep=tmp_path / "work")
    assert not (tmp_path / "out").exists()
    with pytest.raises(table_gen.GenerationError, match="is not a vLLM release"):
        table_gen.generate("latest", tmp_path / "out")


def test_nonsense_versions_and_images_are_refused(project: Path, capsys) -> None:
    code, out, err = run(["--root", str(project), "upgrade", "vllm", "latest"], capsys)
    assert code == 2 and out == "" and err.strip() == ("vllm-fleet upgrade vllm: 'latest' is not a vLLM release (like 0.34.0) — "
                                                       "nothing was written")
    with pytest.raises(SystemExit) as stop:
        main(["upgrade", "nginx", "1.0.0"])
    assert stop.value.code == 2 and "argument IMAGE: invalid choice: 'nginx'" in capsys.readouterr().err


def test_a_malformed_or_unknown_stack_is_one_line_and_nothing_is_written(project: Path, capsys) -> None:
    (project / "stacks" / "Pulumi.dev.yaml").write_text("config:\n  vllm-fleet:vllm: [\n")
    before = _unchanged(project)
    code, out, err = run(["--root", str(project), "upgrade", "vllm", "0.34.0"], capsys)
    assert code == 2 and out == "" and err.startswith("stacks/Pulumi.dev.yaml:3: not valid YAML")
    assert _unchanged(project) == before
    code, _, err = run(["--root", str(project), "upgrade", "vllm", "0.34.0", "--stack", "staging"], capsys)
    assert code == 2 and err.strip() == "--stack staging: no stacks/Pulumi.staging.yaml (stacks: dev, prod)"


def test_replace_scalars_keeps_everything_else_and_refuses_what_is_not_a_value() -> None:
    text = "# head\nconfig:\n  a: {b: '1.0'}  # why\n  c: \"x\"\n  d: 0.33.0\n"
    assert replace_scalars(text, {("config", "a", "b"): "2.0", ("config", "c"): "y", ("config", "d"): "20251203"}) == \
        "# head\nconfig:\n  a: {b: '2.0'}  # why\n  c: \"y\"\n  d: '20251203'\n"
    with pytest.raises(EditError):
        replace_scalars(text, {("config", "a"): "x"})
    with pytest.raises(EditError):
        replace_scalars(text, {("config", "zz"): "x"})


def test_the_parser_requirements_are_the_repositorys_own() -> None:
    assert table_gen.REQUIREMENTS == FLAG_TABLE_DIR / "parser-requirements.txt"
    lines = table_gen.REQUIREMENTS.read_text().split()
    assert all("==" in line for line in lines) and any(line.startswith("pydantic==") for line in lines)
