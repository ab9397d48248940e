"""The demo against tests/stack.py with the fake providers: every flow ends as expected, and the
table says so."""

from __future__ import annotations

from contextlib import AsyncExitStack
from decimal import Decimal

from temporalio.testing import WorkflowEnvironment

from activities.gateways.airwallex.fake import FakeAirwallex
from activities.gateways.alipay.fake import FakeAlipay
from activities.gateways.bank_transfer.fake import FakeBank
from activities.gateways.braintree.fake import FakeBraintree
from activities.gateways.plugins import PLUGINS
from activities.gateways.stripe.fake import FakeStripe
from activities.gateways.wechat_pay.fake import FakeWechatPay
from api.auth import Scope
from tests.stack import API_KEY_ID, deep_merge, running_stack
from workers.config import load_config
from workers.demo import Outcome, demo_defaults, format_table, run_demo
from workers.demo_review import FLOWS as REVIEW_FLOWS
from workers.demo_routing import OUTAGE_FAILURES, routing_defaults
from workers.fake_providers.local import running_fake_providers
from workflows.client import workflow_id

# The 3-D Secure timeout flow waits this long: short, to keep the test fast, yet long enough for the
# AliPay page flow's customer to open the cashier before the trade expires on a busy machine.
ACTION_TIMEOUT = {"payment": {"action_timeout_seconds": 4}}


async def test_demo_flows_end_as_expected(
    temporal_env: WorkflowEnvironment, task_queue: str, sqlite_url: str
) -> None:
    async with AsyncExitStack() as running:
        # Every plugin's fake, as `durapay dev` starts them for a configuration naming no gateway.
        _, fakes = await running.enter_async_context(
            running_fake_providers(load_config(environ={}, use_default_file=False))
        )
        stripe, wechat_pay, alipay = (fakes.running[g] for g in ("stripe", "wechat_pay", "alipay"))
        assert isinstance(stripe, FakeStripe) and isinstance(wechat_pay, FakeWechatPay)
        assert isinstance(alipay, FakeAlipay)
        # Stripe's fake runs, so the routing flow's rule is in, as `durapay dev` adds it.
        overrides = deep_merge(
            deep_merge(deep_merge(demo_defaults(), routing_defaults()), ACTION_TIMEOUT),
            {"payment": fakes.sections()},
        )
        # Every scope, as `durapay dev`'s key has: the review decision and the statement import (ops).
        overrides["api_key_scopes"] = {API_KEY_ID: [scope.value for scope in Scope]}
        stack = await running.enter_async_context(
            running_stack(
                temporal_env.client, task_queue=task_queue, db_url=sqlite_url, config_overrides=overrides
            )
        )
        fakes.deliver_webhooks_to(stack.webhook_url)
        outcomes = await run_demo(stack.base_url, stack.api_key, stack.gateway("mock"), fakes)
        table = format_table(outcomes, stack.config.temporal.workflow_url)
        await stripe.wait_for_webhooks()
    assert [o for o in outcomes if not o.ok] == [], table
    # Every plugin's fake runs; then the manual review flow (workers/demo_review.py) and the
    # routing one (workers/demo_routing.py).
    flows = sum(len(plugin.load_demo_flows()) for plugin in PLUGINS.values()) + len(REVIEW_FLOWS) + 1
    assert len(outcomes) == flows
    assert all(o.payment_id and o.payment_id.startswith("pay_") for o in outcomes)
    assert f"{flows}/{flows} flows as expected" in table
    assert (
        f"http://127.0.0.1:8233/namespaces/default/workflows/{workflow_id(outcomes[0].payment_id)}" in table
    )

    by_flow = {o.flow: o for o in outcomes}
    on_fakes = {
        "Stripe card success": "paid captured 25.00",
        "Stripe 3-D Secure completed": "paid captured 140.00",
        "WeChat Pay Native QR + notification": "paid captured 88.88",
        "AliPay page + notification": "paid captured 66.60",
        "PayPal approval completed": "paid captured 42.50",
        "Braintree sale + settlement notification": "paid captured 30.00",
        "Braintree partial capture": "paid captured 50.00",
        "Airwallex card success": "paid captured 32.50",
        "Airwallex 3-D Secure completed": "paid captured 120.00",
        "bank transfer + statement import": "paid captured 49.99",
        "review approved by the operator": "paid captured 30.00",
        "routed around a failing gateway": "paid captured 21.00 via mock (routed: stripe circuit open)",
    }
    # Named, not by position: every plugin's flows follow the mock's eight, in plugin order.
    assert {flow: by_flow[flow].actual for flow in on_fakes} == on_fakes
    # The money moved at the fake providers, once each: the payments really went through them.
    for flow in ("Stripe card success", "Stripe 3-D Secure completed"):
        assert len(stripe.charges_for(by_flow[flow].payment_id)) == 1
    assert [status for _, status in stripe.deliveries if status != 200] == []
    # The routed payment never reached Stripe: its circuit was open.
    routed = by_flow["routed around a failing gateway"].payment_id
    assert routed is not None and stripe.intents_for(routed) == []
    assert sum(r.status == 503 for r in stripe.requests) == OUTAGE_FAILURES
    assert (
        wechat_pay.trades[by_flow["WeChat Pay Native QR + notification"].payment_id].trade_state == "SUCCESS"
    )
    assert alipay.trades[by_flow["AliPay page + notification"].payment_id].trade_status == "TRADE_SUCCESS"
    [paypal_order] = fakes.running["paypal"].orders_for(by_flow["PayPal approval completed"].payment_id)
    assert [c["status"] for c in paypal_order["purchase_units"][0]["payments"]["captures"]] == ["COMPLETED"]
    braintree = fakes.running["braintree"]
    assert isinstance(braintree, FakeBraintree)
    [sale] = braintree.sales_for(by_flow["Braintree sale + settlement notification"].payment_id)
    assert (sale.status, sale.amount) == ("settled", Decimal("30.00"))
    [held] = braintree.sales_for(by_flow["Braintree partial capture"].payment_id)
    assert held.status in ("submitted_for_settlement", "settled") and held.amount == Decimal("50.00")
    airwallex = fakes.running["airwallex"]
    assert isinstance(airwallex, FakeAirwallex)
    for flow in ("Airwallex card success", "Airwallex 3-D Secure completed"):
        [intent] = airwallex.intents_for(by_flow[flow].payment_id)
        assert intent.status == "SUCCEEDED" and intent.captured_amount == intent.amount
    bank = fakes.running["bank_transfer"]
    assert isinstance(bank, FakeBank) and [line.amount.minor for line in bank.credits] == [4999]


def test_table_marks_a_differing_outcome() -> None:
    outcomes = [
        Outcome("decline", "failed (card_declined)", "paid captured 12.00", "pay_x", ok=False),
        Outcome("instant success", "paid captured 49.99", "paid captured 49.99", None, ok=True),
    ]
    table = format_table(outcomes, lambda workflow_id: f"ui/{workflow_id}")
    lines = table.splitlines()
    assert (
        lines[2].startswith("FAIL  decline")
        and "failed (card_declined)" in lines[2]
        and f"ui/{workflow_id('pay_x')}" in lines[2]
    )
    assert lines[3].startswith("ok") and lines[3].endswith("-")
    assert "failed (card_declined)" not in lines[3]
    assert lines[-1] == "1/2 flows as expected"


async def test_an_unreachable_api_is_reported_per_flow() -> None:
    import socket

    from activities.gateways.mock.adapter import MockGateway
    from activities.gateways.mock.settings import MockSettings

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    outcomes = await run_demo(f"http://127.0.0.1:{port}", "k" * 20, MockGateway(MockSettings(enabled=True)))
    assert len(outcomes) == 8 + len(REVIEW_FLOWS)
    assert all(not o.ok and o.actual.startswith("error: ConnectError") for o in outcomes)
