"""The gateway conformance suite: every plugin in `PLUGINS`, with its fake provider, passes the same
checks (tests/activities/gateways/conformance.py says what each proves and how capabilities,
stale and replayed notifications are defined). A plugin without a testkit fails here."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import pytest_asyncio

from activities.gateways.base import GatewayConfigError
from activities.gateways.plugins import PLUGINS
from activities.gateways.testkit import GatewayKit
from tests.activities.gateways import conformance

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")

Check = Callable[[GatewayKit, str], Awaitable[None]]


@pytest_asyncio.fixture(scope="module", loop_scope="session", params=sorted(PLUGINS))
async def kit(request: pytest.FixtureRequest) -> AsyncIterator[GatewayKit]:
    try:
        kit_class = PLUGINS[request.param].testkit_class()
    except GatewayConfigError as exc:  # no testkit, or not a GatewayKit: the gateway fails the suite
        pytest.fail(str(exc))
    async with kit_class() as started:
        yield started


CHECKS: dict[str, Check] = {
    "sale": conformance.check_sale,
    "customer_action": conformance.check_customer_action,
    "decline": conformance.check_decline,
    "authorize_and_capture": conformance.check_authorize_and_capture,
    "partial_capture": conformance.check_partial_capture,
    "void": conformance.check_void,
    "void_after_payment_answers_paid": conformance.check_void_after_payment_answers_paid,
    "refund": conformance.check_refund,
    "partial_refunds": conformance.check_partial_refunds,
    "refund_of_an_unpaid_payment_refused": conformance.check_refund_of_an_unpaid_payment_refused,
    "lookup_by_our_reference": conformance.check_lookup_by_our_reference,
    "lost_create_answer": conformance.check_lost_create_answer,
    "lost_refund_answer": conformance.check_lost_refund_answer,
    "retried_sale_charges_once": conformance.check_retried_sale_charges_once,
    "retried_capture_captures_once": conformance.check_retried_capture_captures_once,
    "retried_refund_refunds_once": conformance.check_retried_refund_refunds_once,
    "amounts_in_minor_units": conformance.check_amounts_in_minor_units,
    "signed_webhook_accepted": conformance.check_signed_webhook_accepted,
    "tampered_webhook_rejected": conformance.check_tampered_webhook_rejected,
    "stale_webhook_rejected": conformance.check_stale_webhook_rejected,
    "replayed_webhook_rejected": conformance.check_replayed_webhook_rejected,
}


@pytest.mark.parametrize("check", list(CHECKS))
async def test_conformance(kit: GatewayKit, unique: str, check: str) -> None:
    if kit.traits.confirmed_out_of_band and check not in conformance.HOLD_OUT_OF_BAND:
        await conformance.check_confirmed_out_of_band(kit, unique)
        return
    await CHECKS[check](kit, unique)


def test_conformance_covers_every_plugin() -> None:
    missing = [gateway_id for gateway_id, plugin in PLUGINS.items() if plugin.testkit is None]
    assert missing == [], f"plugins without a conformance testkit: {missing}"
