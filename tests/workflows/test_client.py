"""workflows/client.py: the workflow id format, and that the workflow never loads client code."""

from __future__ import annotations

import subprocess
import sys

import pytest

from workflows.client import PaymentNotRunning, PaymentWorkflows, payment_id_from, workflow_id
from workflows.messages import ActionCompleted, CaptureRequest, RefundRequest


def test_a_payment_id_round_trips_through_its_workflow_id():
    assert workflow_id("pay_abc") == "payment-pay_abc"
    assert payment_id_from(workflow_id("pay_abc")) == "pay_abc"


@pytest.mark.parametrize("other", ["reconcile-2026", "payment-", "pay_abc", ""])
def test_a_workflow_id_of_something_else_is_refused(other):
    with pytest.raises(ValueError, match="not a payment workflow id"):
        payment_id_from(other)


def test_the_workflow_module_does_not_load_the_client():
    # A fresh interpreter: what importing the workflow pulls in is what the sandbox loads for
    # every run. The client (I/O through a Temporal Client) must not be part of it.
    probe = "import sys, workflows.payment; print('workflows.client' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


async def test_a_payment_without_a_running_workflow_is_one_clear_error(temporal_env, unique):
    # Temporal answers NOT_FOUND to each of these in its own way; callers see one exception.
    workflows = PaymentWorkflows(temporal_env.client)
    payment_id = f"pay_{unique}"
    calls = [
        workflows.view(payment_id),
        workflows.action_completed(payment_id, ActionCompleted()),
        workflows.capture(payment_id, CaptureRequest(), idempotency_token="t1"),
        workflows.refund(payment_id, RefundRequest(refund_id="re_1")),
    ]
    for call in calls:
        with pytest.raises(PaymentNotRunning) as caught:
            await call
        assert caught.value.payment_id == payment_id
