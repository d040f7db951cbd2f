"""`vllm-fleet guard`: preview documents in the engine's `pulumi preview --json` format (apitype.PreviewDigest)."""

from __future__ import annotations

from pathlib import Path

from fleet.cli import main
from tests.conftest import ROOT

PREVIEWS = ROOT / "tests" / "previews"


def test_replacing_a_cache_claim_because_its_storage_class_changed_is_blocked(capsys) -> None:
    assert main(["guard", str(PREVIEWS / "replace-pvc-storage-class.json")]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == ("BLOCKED replace urn:pulumi:prod::vllm-fleet::vllm-fleet:index:Fleet$vllm-fleet:platform:ModelCache$"
                      "kubernetes:core/v1:PersistentVolumeClaim::persistentvolumeclaim-team-search-model-cache "
                      "(kubernetes:core/v1:PersistentVolumeClaim; protected, stateful) because spec.storageClassName changed")
    assert len([line for line in out if line.startswith("BLOCKED")]) == 1


def test_deleting_a_namespace_that_holds_the_cache_claim_is_blocked(capsys) -> None:
    assert main(["guard", str(PREVIEWS / "delete-namespace-with-claim.json")]) == 1
    out = capsys.readouterr().out
    assert "(kubernetes:core/v1:Namespace; holds the model-cache claim of team-search)" in out
    assert "PersistentVolumeClaim; stateful)" in out


def test_ordinary_rollouts_pass(capsys) -> None:
    assert main(["guard", str(PREVIEWS / "safe-rollout.json")]) == 0
    assert "no protected or stateful resource is deleted or replaced" in capsys.readouterr().out


def test_unreadable_documents_are_config_errors(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "x.json"
    bad.write_text("{not json")
    assert main(["guard", str(bad)]) == 2
    (tmp_path / "y.json").write_text('{"changeSummary": {}}')
    assert main(["guard", str(tmp_path / "y.json")]) == 2
    assert "no `steps`" in capsys.readouterr().err
