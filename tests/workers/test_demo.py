"""The demo against tests/stack.py: every flow ends as expected, and the table says so."""

from __future__ import annotations

from temporalio.testing import WorkflowEnvironment

from tests.stack import deep_merge, running_stack
from workers.demo import Outcome, demo_defaults, format_table, run_demo

# The 3-D Secure timeout flow waits this long: short, to keep the test fast.
ACTION_TIMEOUT = {"payment": {"action_timeout_seconds": 2}}


async def test_demo_flows_end_as_expected(temporal_env: WorkflowEnvironment, task_queue: str, sqlite_url: str) -> None:
    async with running_stack(
        temporal_env.client, task_queue=task_queue, db_url=sqlite_url, config_overrides=deep_merge(demo_defaults(), ACTION_TIMEOUT)
    ) as stack:
        outcomes = await run_demo(stack.base_url, stack.api_key, stack.gateway("mock"))
        table = format_table(outcomes, stack.config.temporal.workflow_url)
    assert [o for o in outcomes if not o.ok] == [], table
    assert len(outcomes) == 8
    assert all(o.payment_id and o.payment_id.startswith("pay_") for o in outcomes)
    assert "8/8 flows as expected" in table
    assert f"http://127.0.0.1:8233/namespaces/default/workflows/payment-{outcomes[0].payment_id}" in table


def test_table_marks_a_differing_outcome() -> None:
    outcomes = [
        Outcome("decline", "failed (card_declined)", "paid captured 12.00", "pay_x", ok=False),
        Outcome("instant success", "paid captured 49.99", "paid captured 49.99", None, ok=True),
    ]
    table = format_table(outcomes, lambda workflow_id: f"ui/{workflow_id}")
    lines = table.splitlines()
    assert lines[2].startswith("FAIL  decline") and "failed (card_declined)" in lines[2] and "ui/payment-pay_x" in lines[2]
    assert lines[3].startswith("ok") and lines[3].endswith("-")
    assert "failed (card_declined)" not in lines[3]
    assert lines[-1] == "1/2 flows as expected"


async def test_an_unreachable_api_is_reported_per_flow() -> None:
    import socket

    from activities.gateways.mock import MockGateway, MockSettings

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    outcomes = await run_demo(f"http://127.0.0.1:{port}", "k" * 20, MockGateway(MockSettings(enabled=True)))
    assert len(outcomes) == 8
    assert all(not o.ok and o.actual.startswith("error: ConnectError") for o in outcomes)
