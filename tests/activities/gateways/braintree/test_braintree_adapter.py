"""The Braintree adapter against the fake Braintree: the thread pool and its deadlines, transport
failures mapped to the gateway errors, the vault, refunds of unsettled sales, and broken variants of
the adapter that the conformance suite must catch."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from activities.gateways.base import (
    GatewayConfigError,
    GatewayInvalidRequest,
    GatewayOutcomeUnknown,
    GatewayRateLimited,
    GatewayTransientError,
)
from activities.gateways.braintree.adapter import BraintreeGateway
from activities.gateways.braintree.fake import FakeBraintree
from activities.gateways.braintree.testkit import Kit
from activities.gateways.braintree.transform import transaction_result
from tests.activities.gateways import conformance
from tests.activities.gateways.helpers import GatewayCalls, pid
from workflows.domain import CardMethod, RefundStatus
from workflows.gateway_io import AuthorizeCall, CancelCall, GatewayPaymentStatus, GatewayResult

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest_asyncio.fixture(loop_scope="session")
async def fake() -> AsyncIterator[FakeBraintree]:
    async with FakeBraintree() as server:
        yield server


def gateway_for(fake: FakeBraintree, **overrides: Any) -> BraintreeGateway:
    return BraintreeGateway(fake.settings(**overrides))


@pytest_asyncio.fixture(loop_scope="session")
async def gateway(fake: FakeBraintree) -> AsyncIterator[BraintreeGateway]:
    gateway = gateway_for(fake, timeout_seconds=1.0, connect_timeout_seconds=1.0)
    yield gateway
    await gateway.aclose()


def calls(nonce: str = "fake-valid-nonce") -> GatewayCalls:
    return GatewayCalls("braintree", "USD", lambda *_: CardMethod(token=nonce), minor=2_500)


async def test_a_5xx_on_create_is_an_unknown_outcome_and_the_retry_charges_once(fake, gateway, unique):
    fake.faults.fail_next(500, match="create_transaction")
    c = calls()
    # A 500 from Braintree after the request arrived: it may have acted.
    with pytest.raises(GatewayOutcomeUnknown):
        await gateway.authorize(c.authorize(pid(unique)))
    assert fake.sales_for(pid(unique)) == []  # this fake's 500 did no work: the retry makes the sale
    result = await gateway.authorize(c.authorize(pid(unique)))
    assert result.status is GatewayPaymentStatus.SUCCEEDED and len(fake.sales_for(pid(unique))) == 1


async def test_rate_limits_outages_and_reads_that_fail_are_retryable(fake, gateway, unique):
    c = calls()
    fake.faults.rate_limit_next(match="search_ids")
    with pytest.raises(GatewayRateLimited):
        await gateway.authorize(c.authorize(pid(unique)))
    fake.faults.fail_next(503, match="search_ids")
    with pytest.raises(GatewayTransientError) as outage:
        await gateway.authorize(c.authorize(pid(unique)))
    assert not isinstance(outage.value, GatewayOutcomeUnknown)
    fake.faults.fail_next(500, match="search_ids")
    with pytest.raises(GatewayTransientError) as read:  # a failed search changed nothing
        await gateway.lookup(c.lookup(pid(unique)))
    assert not isinstance(read.value, GatewayOutcomeUnknown)
    assert fake.sales_for(pid(unique)) == []


async def test_an_answer_past_the_read_timeout_is_an_unknown_outcome(fake, gateway, unique):
    fake.faults.delay_next(2.5, match="create_transaction")
    started = time.monotonic()
    with pytest.raises(GatewayOutcomeUnknown):
        await gateway.authorize(calls().authorize(pid(unique)))
    assert time.monotonic() - started < 2.4  # the SDK's read timeout (1 s), not the fake's delay
    assert len(fake.sales_for(pid(unique))) == 1  # it did charge: only a lookup can tell


async def test_wrong_credentials_and_merchant_are_configuration_errors(fake, unique):
    for overrides in ({"private_key": "not-the-private-key"}, {"merchant_id": "someone_else"}):
        gateway = gateway_for(fake, **overrides)
        with pytest.raises(GatewayConfigError):
            await gateway.lookup(calls().lookup(pid(unique)))
        await gateway.aclose()


async def test_sdk_calls_run_off_the_event_loop_in_a_bounded_pool(fake, unique):
    gateway = gateway_for(fake, max_threads=2)
    fake.faults.latency = 0.3
    threads: set[str] = set()
    ticks = 0

    async def ticking() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    original = gateway._sdk.transaction.search

    def recording(*args: Any) -> Any:
        threads.add(threading.current_thread().name)
        return original(*args)

    gateway._sdk.transaction.search = recording  # type: ignore[method-assign]
    ticker = asyncio.create_task(ticking())
    try:
        started = time.monotonic()
        await asyncio.gather(*(gateway.lookup(calls().lookup(pid(f"{unique}{n}"))) for n in range(4)))
        elapsed = time.monotonic() - started
    finally:
        ticker.cancel()
        fake.faults.clear()
        await gateway.aclose()
    assert len(threads) == 2 and all(name.startswith("braintree") for name in threads)
    assert elapsed >= 0.55  # four 0.3 s calls, two at a time
    assert ticks >= 30  # the loop kept running while the SDK blocked


async def test_a_refund_waits_for_settlement_and_never_exceeds_the_sale(unique):
    async with FakeBraintree(auto_settle=False) as fake:
        gateway = gateway_for(fake)
        c = calls()
        sale = await gateway.authorize(c.authorize(pid(unique)))
        refund = c.refund(pid(unique), "rf_1", 1_000, provider_payment_id=sale.provider_payment_id)
        with pytest.raises(GatewayTransientError):  # Braintree: "cannot refund unless settled"
            await gateway.refund(refund)
        assert sale.provider_payment_id is not None
        fake.settle(sale.provider_payment_id)
        assert (await gateway.refund(refund)).status is RefundStatus.SUCCEEDED
        too_much = c.refund(pid(unique), "rf_2", 2_000, provider_payment_id=sale.provider_payment_id)
        with pytest.raises(GatewayInvalidRequest):
            await gateway.refund(too_much)
        await gateway.aclose()


async def test_vault_a_card_and_pay_with_its_token(fake, gateway, unique):
    customer = await gateway.create_customer(email="a@example.com", name="Ada", idempotency_key=f"k-{unique}")
    again = await gateway.create_customer(email="a@example.com", name="Ada", idempotency_key=f"k-{unique}")
    assert again == customer and len(fake.customers) >= 1 and customer.id.startswith("dpc_")

    saved = await gateway.attach_payment_method(
        customer_id=customer.id, payment_method="fake-valid-visa-nonce"
    )
    repeated = await gateway.attach_payment_method(
        customer_id=customer.id, payment_method="fake-valid-visa-nonce"
    )
    assert repeated == saved and (saved.brand, saved.last4) == ("Visa", "1111")
    assert await gateway.list_payment_methods(customer_id=customer.id) == [saved]

    c = GatewayCalls("braintree", "USD", lambda *_: CardMethod(token=saved.id), minor=1_500)
    paid = await gateway.authorize(c.authorize(pid(unique), customer_id=customer.id))
    assert paid.status is GatewayPaymentStatus.SUCCEEDED
    [sale] = fake.sales_for(pid(unique))
    assert sale.card["token"] == saved.id

    assert (await gateway.detach_payment_method(payment_method=saved.id)) == saved
    assert await gateway.list_payment_methods(customer_id=customer.id) == []
    with pytest.raises(GatewayInvalidRequest):
        await gateway.attach_payment_method(customer_id="nobody", payment_method="fake-valid-nonce")


# -- broken adapters the conformance suite must catch ------------------------------------------------


class SkipsTheSearch(BraintreeGateway):
    """Sends every create, trusting Braintree's duplicate check instead of searching first."""

    async def authorize(self, call: AuthorizeCall) -> GatewayResult:
        result = await self._call(lambda: self._sdk.transaction.sale(_params(self, call)), mutating=True)
        return transaction_result(result.transaction)


def _params(gateway: BraintreeGateway, call: AuthorizeCall) -> dict[str, Any]:
    from activities.gateways.braintree.transform import sale_params

    return sale_params(call, gateway._settings)


class VoidsWhatWasPaid(BraintreeGateway):
    """Voids whatever Braintree still lets it void, a sale submitted for settlement included."""

    async def cancel(self, call: CancelCall) -> GatewayResult:
        assert call.provider_payment_id is not None
        voided = await self._call(lambda: self._sdk.transaction.void(call.provider_payment_id), mutating=True)
        return transaction_result(voided.transaction)


@pytest.mark.parametrize(
    ("broken", "check"),
    [
        (SkipsTheSearch, conformance.check_retried_sale_charges_once),
        (SkipsTheSearch, conformance.check_lost_create_answer),
        (VoidsWhatWasPaid, conformance.check_void_after_payment_answers_paid),
    ],
)
async def test_the_conformance_suite_catches_a_broken_braintree_adapter(broken, check, unique):
    async with Kit(build=broken) as kit:
        with pytest.raises(AssertionError):
            await check(kit, unique)


async def test_the_fake_rejects_a_duplicate_sale_as_braintree_does(fake, gateway, unique):
    params = {"amount": "10.00", "order_id": pid(unique), "payment_method_nonce": "fake-valid-nonce"}
    first = await asyncio.to_thread(gateway.sdk.transaction.sale, dict(params))
    second = await asyncio.to_thread(gateway.sdk.transaction.sale, dict(params))
    other_order = await asyncio.to_thread(
        gateway.sdk.transaction.sale, {**params, "order_id": pid(unique + "b")}
    )
    assert first.is_success and other_order.is_success
    assert (second.is_success, second.transaction.status, second.transaction.gateway_rejection_reason) == (
        False,
        "gateway_rejected",
        "duplicate",
    )
