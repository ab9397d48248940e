"""docs/OPERATIONS.md: every operator update it documents names an update PaymentWorkflow has, with a
payload its pydantic model accepts, and every update an operator may send is documented."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError
from temporalio.workflow import _Definition

from workflows.payment import PaymentWorkflow

OPERATIONS = Path(__file__).parents[2] / "docs" / "OPERATIONS.md"
# The API's own handshake of update-with-start: not an operator action.
NOT_FOR_OPERATORS = {"decide"}


def documented_updates() -> list[tuple[str, str, str]]:
    """(workflow id, update name, JSON input) of every `temporal workflow update execute` command in
    the doc's shell blocks."""
    blocks = re.findall(r"```sh\n(.*?)```", OPERATIONS.read_text(), flags=re.DOTALL)
    found = []
    for block in blocks:
        for line in block.splitlines():
            if not line.startswith("temporal workflow update execute"):
                continue
            words = shlex.split(line)
            options = dict(zip(words[4::2], words[5::2], strict=True))
            found.append((options["--workflow-id"], options["--name"], options["--input"]))
    return found


def update_models() -> dict[str, type[BaseModel]]:
    updates = _Definition.must_from_class(PaymentWorkflow).updates
    models = {}
    for name, definition in updates.items():
        assert name is not None and definition.arg_types is not None
        [arg_type] = definition.arg_types
        assert isinstance(arg_type, type) and issubclass(arg_type, BaseModel)
        models[name] = arg_type
    return models


def test_the_doc_documents_every_operator_update() -> None:
    documented = {name for _, name, _ in documented_updates()}
    assert documented == set(update_models()) - NOT_FOR_OPERATORS


@pytest.mark.parametrize("workflow_id,name,payload", documented_updates())
def test_each_documented_payload_validates(workflow_id: str, name: str, payload: str) -> None:
    assert workflow_id == "payment-<id>"
    request = update_models()[name].model_validate_json(payload)  # extra="forbid": a typo fails here
    # Taken as written: no field the model had to coerce (a "2500" string for an amount, say).
    assert request.model_dump(mode="json", exclude_unset=True) == json.loads(payload)


def test_a_wrong_payload_would_be_caught() -> None:
    # The check above is not vacuous: the models refuse what an operator might mistype.
    models = update_models()
    for name, bad in [
        ("capture", '{"amount": 2500}'),
        ("capture", '{"amount_minor": 0}'),
        ("refund", '{"amount_minor": 1000}'),
        ("cancel", '{"reason": 1}'),
    ]:
        with pytest.raises(ValidationError):
            models[name].model_validate_json(bad)
