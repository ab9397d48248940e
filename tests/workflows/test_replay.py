"""Replay every committed history (tests/workflows/histories/**.json, written by
`python -m tests.workflows.record_histories`) against the current PaymentWorkflow.

A change that makes the workflow issue different commands for an old history fails here: running
payments (open for their whole settlement window) would fail their next workflow task in
production. Such a change goes behind `workflow.patched(...)`; see docs/WORKFLOW_CHANGES.md.
Histories kept from earlier versions live in subfolders and are replayed too.

The patch registry (workflows/patches.py) is held to the histories and to docs/WORKFLOW_CHANGES.md
here as well: each patch's new branch is reached by a current history, its kept histories take the
old one, and the docs list exactly the registered ids."""

from __future__ import annotations

import ast
import base64
import json
import re
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from tests.workflows.record_histories import HISTORIES, SCENARIOS, payment_id_for
from workflows import patches
from workflows.client import workflow_id
from workflows.payment import PaymentWorkflow

ALL_HISTORIES = sorted(HISTORIES.rglob("*.json"))


def test_every_scenario_has_a_current_history():
    assert sorted(p.stem for p in HISTORIES.glob("*.json")) == sorted(s.name for s in SCENARIOS)


@pytest.mark.parametrize("path", ALL_HISTORIES, ids=lambda p: str(p.relative_to(HISTORIES)))
async def test_history_replays(path: Path):
    text = path.read_text()  # noqa: ASYNC240 (a small local file)
    history = WorkflowHistory.from_json(workflow_id(payment_id_for(path.stem)), json.loads(text))
    # A whole life, from start to completion, not a prefix of one.
    assert history.events[-1].HasField("workflow_execution_completed_event_attributes")
    replayer = Replayer(workflows=[PaymentWorkflow], data_converter=pydantic_data_converter)
    await replayer.replay_workflow(history)


# ---------------------------------------------------------------- the patch registry


def _patches_in(path: Path) -> set[str]:
    """The ids of the patches a history went through (`workflow.patched` records a marker)."""
    ids = set()
    for event in json.loads(path.read_text())["events"]:
        marker = event.get("markerRecordedEventAttributes")
        if marker and marker["markerName"] == "core_patch":
            for payload in marker["details"]["patch-data"]["payloads"]:
                ids.add(json.loads(base64.b64decode(payload["data"]))["id"])
    return ids


@pytest.mark.parametrize("patch", patches.ALL, ids=lambda p: p.id)
def test_a_current_history_goes_through_each_patch(patch: patches.Patch):
    """The replay test holds a patch's new branch only if some history reaches it."""
    assert any(patch.id in _patches_in(path) for path in HISTORIES.glob("*.json")), (
        f"no history in {HISTORIES} reaches `{patch.id}`: add a scenario to record_histories.py"
    )


@pytest.mark.parametrize("patch", [p for p in patches.ALL if p.kept_histories], ids=lambda p: p.id)
def test_histories_kept_from_before_a_patch_take_its_old_branch(patch: patches.Patch):
    kept = sorted((HISTORIES / str(patch.kept_histories)).glob("*.json"))
    assert kept
    assert not [path.name for path in kept if patch.id in _patches_in(path)]


def test_histories_know_only_registered_patches_and_folders_are_patches():
    registered = {p.id for p in patches.ALL}
    assert {path.name: _patches_in(path) - registered for path in ALL_HISTORIES} == {
        path.name: set() for path in ALL_HISTORIES
    }
    folders = {path.name for path in HISTORIES.iterdir() if path.is_dir()}
    assert folders == {p.kept_histories for p in patches.ALL if p.kept_histories}


def test_workflow_changes_doc_lists_the_registry():
    doc = (Path(__file__).parents[2] / "docs" / "WORKFLOW_CHANGES.md").read_text()
    listed = set(re.findall(r"^\| `([a-z0-9-]+)` \| (\d{4}-\d{2}-\d{2}) \|", doc, flags=re.MULTILINE))
    assert listed == {(p.id, p.since.isoformat()) for p in patches.ALL}


def test_workflow_code_names_patches_through_the_registry():
    """`workflow.patched("...")` with a literal would be a patch the registry, the docs and the
    tests above do not know of."""
    literal_ids = []
    for path in sorted((Path(__file__).parents[2] / "workflows").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "attr", None) or getattr(node.func, "id", "")
            # `workflow.patched`, and the state machine's `self._patched` handed that function
            if name.lstrip("_") in ("patched", "deprecate_patch") and any(
                isinstance(arg, ast.Constant) for arg in node.args
            ):
                literal_ids.append(f"{path.name}:{node.lineno}")
    assert literal_ids == []
