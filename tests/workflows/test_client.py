"""workflows/client.py: the workflow id format, and that the workflow never loads client code."""

from __future__ import annotations

import subprocess
import sys

import pytest

from workflows.client import payment_id_from, workflow_id


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
