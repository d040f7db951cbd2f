"""`vllm-fleet guard`: preview documents in the engine's `pulumi preview --json` format (apitype.PreviewDigest)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleet.cli import main
from tests.conftest import ROOT, edit

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


def _preview(tmp_path: Path, steps: object) -> Path:
    path = tmp_path / "preview.json"
    path.write_text(json.dumps({"steps": steps}))
    return path


PVC = {"type": "kubernetes:core/v1:PersistentVolumeClaim", "inputs": {"metadata": {"name": "model-cache", "namespace": "team-a"}}}


@pytest.mark.parametrize("op", ["delete", "DELETE", "Replace", "create-replacement", "delete-replaced", "discard",
                                "discard-replaced", "read-replacement", "import-replacement", "remove-pending-replace"])
def test_every_destructive_spelling_is_blocked_case_insensitively(tmp_path: Path, capsys, op: str) -> None:
    path = _preview(tmp_path, [{"op": op, "urn": "urn:pulumi:prod::p::kubernetes:core/v1:PersistentVolumeClaim::c", "oldState": PVC}])
    assert main(["guard", str(path)]) == 1
    assert "stateful" in capsys.readouterr().out


def test_an_unknown_operation_fails_closed(tmp_path: Path, capsys) -> None:
    path = _preview(tmp_path, [{"op": "obliterate", "urn": "urn:pulumi:prod::p::kubernetes:core/v1:ConfigMap::c",
                                "oldState": {"type": "kubernetes:core/v1:ConfigMap"}}])
    assert main(["guard", str(path)]) == 1
    assert "unknown operation 'obliterate': treated as destructive" in capsys.readouterr().out
    path = _preview(tmp_path, [{"op": "update", "urn": "urn:pulumi:prod::p::kubernetes:core/v1:PersistentVolumeClaim::c",
                                "oldState": PVC, "newState": PVC}])
    assert main(["guard", str(path)]) == 0


@pytest.mark.parametrize("step", [{"op": "delete"}, {"op": "Replace", "urn": ""}, {"op": "delete", "urn": "x"}])
def test_a_destructive_step_that_does_not_say_what_it_deletes_is_blocked(tmp_path: Path, capsys, step: dict) -> None:
    assert main(["guard", str(_preview(tmp_path, [step]))]) == 1
    assert "no urn or type to tell what it is: treated as stateful" in capsys.readouterr().out


def test_an_fsx_association_that_would_delete_the_cached_files_is_blocked(tmp_path: Path, capsys) -> None:
    dra = {"type": "aws:fsx/dataRepositoryAssociation:DataRepositoryAssociation",
           "inputs": {"fileSystemId": "fs-1", "dataRepositoryPath": "s3://b", "deleteDataInFilesystem": True}}
    path = _preview(tmp_path, [{"op": "delete", "urn": "urn:pulumi:prod::p::aws:fsx/dataRepositoryAssociation:DataRepositoryAssociation::d",
                                "oldState": dra}])
    assert main(["guard", str(path)]) == 1
    assert "deleteDataInFilesystem: the cached files go with it" in capsys.readouterr().out
    path = _preview(tmp_path, [{"op": "update", "urn": "urn:pulumi:prod::p::x::d", "oldState": {**dra, "inputs": {}}, "newState": dra}])
    assert main(["guard", str(path)]) == 1
    assert "set it to false" in capsys.readouterr().out


MALFORMED = {
    "steps null": (None, "steps: is null"),
    "steps an object": ({"a": 1}, "steps: expected a list, got an object"),
    "steps a string": ("delete everything", "steps: expected a list, got a string"),
    "a step a string": (["op"], "steps[0]: expected an object, got a string"),
    "no op": ([{"urn": "urn:pulumi:prod::p::kubernetes:core/v1:PersistentVolumeClaim::c"}], "steps[0].op: is missing"),
    "op a number": ([{"op": 3, "urn": None}], "steps[0].op: expected a string, got a number"),
    "urn a list": ([{"op": "Replace", "urn": ["not", "a", "string"]}], "steps[0].urn: expected a string, got a list"),
    "oldState a string": ([{"op": "delete", "oldState": "x"}], "steps[0].oldState: expected an object, got a string"),
    "type a list": ([{"op": "delete", "oldState": {"type": ["x"]}}], "steps[0].oldState.type: expected a string, got a list"),
    "protect a string": ([{"op": "update", "oldState": {"protect": "yes"}}], "steps[0].oldState.protect: expected true or false"),
    "inputs a list": ([{"op": "delete", "oldState": {"inputs": []}}], "steps[0].oldState.inputs: expected an object, got a list"),
    "reasons not strings": ([{"op": "replace", "replaceReasons": [None]}], "steps[0].replaceReasons[0]: expected a string, got null"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_preview_is_exit_2_naming_the_field_never_a_preview_of_nothing(tmp_path: Path, capsys, case: str) -> None:
    steps, problem = MALFORMED[case]
    path = tmp_path / "preview.json"
    # as the engine prints it: indented, one key a line, so the line names the step
    path.write_text(json.dumps({"config": {}, "steps": steps}, indent=1))
    code = main(["guard", str(path)])
    out, err = capsys.readouterr()
    assert code == 2 and out == "", (out, err)
    assert "not a `pulumi preview --json` document" in err and f"{path}:" in err and problem in err, err


def test_the_line_of_a_malformed_step_is_named(tmp_path: Path, capsys) -> None:
    path = tmp_path / "preview.json"
    path.write_text('{\n "steps": [\n  {"op": "same"},\n  {"op": "delete",\n   "oldState": {"type": 7}}\n ]\n}\n')
    assert main(["guard", str(path)]) == 2
    assert f"{path}:5 steps[1].oldState.type: expected a string, got a number" in capsys.readouterr().err


def test_an_empty_preview_is_a_list_of_no_steps(tmp_path: Path, capsys) -> None:
    assert main(["guard", str(_preview(tmp_path, []))]) == 0
    assert "0 steps" in capsys.readouterr().out


def test_the_stack_sets_delete_data_in_filesystem_false(project: Path) -> None:
    from fleet.offline.plan import capture
    from fleet.spec.load import load

    edit(project / "stacks" / "Pulumi.prod.yaml", "    throughput_mibps: 500\n",
         "    throughput_mibps: 500\n    fsx_import_path: s3://acme-models/hf\n")
    (dra,) = [c for c in capture(load("prod", project)) if c.type == "aws:fsx/dataRepositoryAssociation:DataRepositoryAssociation"]
    assert dra.inputs["deleteDataInFilesystem"] is False
