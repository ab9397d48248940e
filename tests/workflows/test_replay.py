"""Replay every committed history (tests/workflows/histories/**.json, written by
`python -m tests.workflows.record_histories`) against the current PaymentWorkflow.

A change that makes the workflow issue different commands for an old history fails here: running
payments (open for their whole settlement window) would fail their next workflow task in
production. Such a change goes behind `workflow.patched(...)`; see docs/WORKFLOW_CHANGES.md.
Histories kept from earlier versions live in subfolders and are replayed too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from tests.workflows.record_histories import HISTORIES, SCENARIOS, payment_id_for
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
