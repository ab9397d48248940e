"""The checks of the gateway conformance suite, as plain async functions over a started
`GatewayKit` (activities/gateways/testkit.py): `test_conformance.py` runs each for every plugin, and
`test_conformance_catches.py` runs them against deliberately broken gateways to prove they fail.

Every check drives the gateway through the `Gateway` interface with the calls PaymentWorkflow makes
(ids, idempotency keys: tests/activities/gateways/helpers.py), and proves money movements on the
fake provider's ledger, never on the adapter's own answer.

Capabilities come from the gateway's `GatewayProfile`: where a gateway declares no manual capture,
the checks expect authorize-only and capture to be refused with `NotSupported` and the API's
validation to refuse a manual-capture payment; a partial capture is checked only where declared.

Webhooks: "stale" is a notification signed (validly) at a time outside the provider's window;
"replayed" is a delivery that was accepted, re-sent unchanged once the window has passed. Both are
the signature layer's job where the provider signs a time (Stripe, WeChat Pay, the mock). AliPay
signs no time and resends for about 25 hours, so a re-sent notification verifies forever: there the
check proves it carries the same event id (`notify_id`), because refusing duplicates *inside* a
window - and every duplicate for AliPay - is the workflow's de-duplication on `event_id`, not the
adapter's.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from activities.gateways.base import (
    GatewayInvalidRequest,
    GatewayOutcomeUnknown,
    GatewayTransientError,
    NotSupported,
    WebhookVerificationError,
)
from activities.gateways.testkit import Delivery, GatewayKit, Ledger, MethodKind
from tests.activities.gateways.helpers import GatewayCalls, pid
from workflows.domain import CaptureMethod, PaymentMethod, RefundStatus
from workflows.gateway_io import GatewayEventKind, GatewayPaymentStatus, GatewayResult, RefundCall
from workflows.money import Amount, exponent
from workflows.validation import validate_payment

# The suite's ordinary amount: 100.00 in a two-decimal currency, so partial amounts are easy.
MINOR = 10_000
# An amount per exponent, each a different number so a unit slip cannot pass by coincidence; the
# three-decimal one ends in 0 (Stripe's rule for BHD, JOD, KWD, OMR, TND).
AMOUNT_FOR_EXPONENT = {0: 5_000, 2: 12_345, 3: 12_340}


def calls(kit: GatewayKit, currency: str | None = None, minor: int = MINOR) -> GatewayCalls:
    def method(kind: MethodKind = "success") -> PaymentMethod:
        chosen = kit.method(kind)
        assert chosen is not None, f"{kit.id} has no {kind} payment method"
        return chosen

    return GatewayCalls(
        kit.id, currency or kit.traits.currency, method, minor=minor, refund_reason="requested_by_customer"
    )


def same_outcome(first: GatewayResult, again: GatewayResult) -> None:
    """A repeated call answers what the first did (the provider's ids are compared where both
    answers carry one: a repeat may learn the id the first answer did not have)."""
    assert again.status is first.status
    assert (again.authorized_minor, again.captured_minor) == (first.authorized_minor, first.captured_minor)
    assert again.next_action == first.next_action
    assert (again.failure and again.failure.code) == (first.failure and first.failure.code)
    if first.provider_payment_id and again.provider_payment_id:
        assert again.provider_payment_id == first.provider_payment_id


@contextmanager
def refused_with(*errors: type[BaseException]) -> Iterator[None]:
    """The block must raise one of `errors`; anything else getting through fails the check (with an
    AssertionError, like every other check)."""
    try:
        yield
    except errors:
        return
    raise AssertionError(f"not refused: expected {' or '.join(e.__name__ for e in errors)}")


async def paid(
    kit: GatewayKit,
    c: GatewayCalls,
    payment_id: str,
    minor: int | None = None,
    method: PaymentMethod | None = None,
) -> GatewayResult:
    """A sale, with the customer's action done at the fake where the provider asks for one."""
    gateway = kit.gateway
    chosen = {"method": method} if method else {}
    call = c.authorize(payment_id, minor=minor, **chosen)
    try:
        result = await gateway.authorize(call)
    except GatewayOutcomeUnknown:
        result = await gateway.authorize(call)  # the activity's retry: a method that loses answers
    if result.status is GatewayPaymentStatus.REQUIRES_ACTION:
        action_data = await kit.complete_action(payment_id, result)
        result = await gateway.lookup(
            c.lookup(
                payment_id,
                minor=minor,
                provider_payment_id=result.provider_payment_id,
                action_data=action_data,
                **chosen,
            )
        )
    assert result.status is GatewayPaymentStatus.SUCCEEDED, result
    return result


async def held(kit: GatewayKit, c: GatewayCalls, payment_id: str) -> GatewayResult:
    result = await kit.gateway.authorize(c.authorize(payment_id, capture=False))
    if result.status is GatewayPaymentStatus.REQUIRES_ACTION:
        # The provider holds nothing before the customer acts (PayPal: the payer's approval).
        action_data = await kit.complete_action(payment_id, result)
        result = await kit.gateway.lookup(
            c.lookup(
                payment_id,
                provider_payment_id=result.provider_payment_id,
                action_data=action_data,
                capture_method=CaptureMethod.MANUAL,
            )
        )
    assert result.status is GatewayPaymentStatus.AUTHORIZED, result
    assert kit.ledger(payment_id).holds == [c.amount()]
    assert kit.ledger(payment_id).charges == []
    return result


# -- payments ------------------------------------------------------------------------------------


async def check_sale(kit: GatewayKit, unique: str) -> None:
    c = calls(kit)
    payment_id = pid(unique)
    result = await paid(kit, c, payment_id)
    assert result.captured_minor == MINOR
    assert kit.ledger(payment_id).charges == [c.amount()]


async def check_customer_action(kit: GatewayKit, unique: str) -> None:
    """A payment that waits on the customer moves no money until they act, then exactly once."""
    c = calls(kit)
    payment_id = pid(unique)
    if kit.method("action") is None:
        await check_authentication_refused(kit, unique)
        return
    call = c.authorize(payment_id, "action", return_url="https://shop.example/back")
    result = await kit.gateway.authorize(call)
    assert result.status is GatewayPaymentStatus.REQUIRES_ACTION and result.next_action is not None
    assert kit.ledger(payment_id).charges == []
    waiting = await kit.gateway.lookup(
        c.lookup(payment_id, "action", provider_payment_id=result.provider_payment_id)
    )
    assert waiting.status is GatewayPaymentStatus.REQUIRES_ACTION

    action_data = await kit.complete_action(payment_id, result)
    done = await kit.gateway.lookup(
        c.lookup(
            payment_id, "action", provider_payment_id=result.provider_payment_id, action_data=action_data
        )
    )
    assert done.status is GatewayPaymentStatus.SUCCEEDED
    assert kit.ledger(payment_id).charges == [c.amount()]


async def check_authentication_refused(kit: GatewayKit, unique: str) -> None:
    """Where the customer authenticates before the payment reaches the gateway (client-side 3-D
    Secure: the kit has no "action" method), a payment that asks for 3-D Secure with a method whose
    authentication failed, or that carries none, is declined and moves no money."""
    c = calls(kit)
    failed = kit.unauthenticated_method()
    assert failed is not None, f"{kit.id} has neither a customer action nor an unauthenticated method"
    for n, method in enumerate((failed, c.method("success"))):
        payment_id = pid(f"{unique}a{n}")
        result = await kit.gateway.authorize(c.authorize(payment_id, method=method, request_three_ds=True))
        assert result.status is GatewayPaymentStatus.DECLINED and result.failure is not None, result
        assert kit.ledger(payment_id) == Ledger(holds=[], charges=[], refunds=[])


async def check_decline(kit: GatewayKit, unique: str) -> None:
    """A declined payment (where the provider has a method that declines) moves no money, and its
    retry hears the same decline without trying again."""
    c = calls(kit)
    payment_id = pid(unique)
    if kit.method("decline") is None:
        assert kit.gateway.profile.methods and all(
            m.startswith("wallet:") for m in kit.gateway.profile.methods
        )
        return
    call = c.authorize(payment_id, "decline")
    result = await kit.gateway.authorize(call)
    assert result.status is GatewayPaymentStatus.DECLINED and result.failure is not None
    same_outcome(result, await kit.gateway.authorize(call))
    assert kit.ledger(payment_id).charges == [] and kit.ledger(payment_id).holds == []


async def check_authorize_and_capture(kit: GatewayKit, unique: str) -> None:
    c = calls(kit)
    payment_id = pid(unique)
    if not kit.gateway.profile.supports_manual_capture:
        await check_manual_capture_refused(kit, unique)
        return
    hold = await held(kit, c, payment_id)
    captured = await kit.gateway.capture(c.capture(payment_id, provider_payment_id=hold.provider_payment_id))
    assert captured.status is GatewayPaymentStatus.SUCCEEDED and captured.captured_minor == MINOR
    assert kit.ledger(payment_id).charges == [c.amount()]
    assert kit.ledger(payment_id).holds == []


async def check_partial_capture(kit: GatewayKit, unique: str) -> None:
    c = calls(kit)
    payment_id = pid(unique)
    profile = kit.gateway.profile
    if not profile.supports_manual_capture:
        await check_manual_capture_refused(kit, unique)
        return
    hold = await held(kit, c, payment_id)
    capture = c.capture(payment_id, 6_000, provider_payment_id=hold.provider_payment_id)
    if not profile.supports_partial_capture:
        with refused_with(NotSupported, GatewayInvalidRequest):
            await kit.gateway.capture(capture)
        assert kit.ledger(payment_id).charges == []
        return
    captured = await kit.gateway.capture(capture)
    assert captured.status is GatewayPaymentStatus.SUCCEEDED and captured.captured_minor == 6_000
    assert kit.ledger(payment_id).charges == [c.amount(6_000)]
    assert kit.ledger(payment_id).holds == []  # the rest of the hold is released


async def check_manual_capture_refused(kit: GatewayKit, unique: str) -> None:
    """Declared unsupported: the API's validation refuses a manual-capture payment, and the adapter
    refuses an authorization-only call and a capture clearly rather than pretend."""
    c = calls(kit)
    payment_id = pid(unique)
    profile = kit.gateway.profile
    assert not profile.supports_manual_capture and not profile.supports_partial_capture
    failure = validate_payment(profile, c.amount(), c.method(), CaptureMethod.MANUAL)
    assert failure is not None and failure.code == "manual_capture_not_supported"
    with refused_with(NotSupported):
        await kit.gateway.authorize(c.authorize(payment_id, capture=False))
    pending = await kit.gateway.authorize(c.authorize(payment_id))
    assert pending.status is GatewayPaymentStatus.REQUIRES_ACTION
    with refused_with(NotSupported):
        await kit.gateway.capture(c.capture(payment_id))
    assert kit.ledger(payment_id).charges == [] and kit.ledger(payment_id).holds == []


async def check_void(kit: GatewayKit, unique: str) -> None:
    """A hold (or, without holds, an order the customer has not paid) is released / closed: no
    money moves, and the customer cannot pay it afterwards."""
    c = calls(kit)
    payment_id = pid(unique)
    if kit.gateway.profile.supports_manual_capture:
        first = await held(kit, c, payment_id)
    else:
        first = await kit.gateway.authorize(c.authorize(payment_id))
        assert first.status is GatewayPaymentStatus.REQUIRES_ACTION
    cancel = c.cancel(payment_id, provider_payment_id=first.provider_payment_id)
    voided = await kit.gateway.cancel(cancel)
    assert voided.status is GatewayPaymentStatus.CANCELLED
    same_outcome(voided, await kit.gateway.cancel(cancel))  # the retried void
    looked = await kit.gateway.lookup(c.lookup(payment_id, provider_payment_id=first.provider_payment_id))
    assert looked.status is GatewayPaymentStatus.CANCELLED
    if first.status is GatewayPaymentStatus.REQUIRES_ACTION:
        with refused_with(ValueError):  # the fake refuses to take the customer's money
            await kit.complete_action(payment_id, first)
    assert kit.ledger(payment_id) == Ledger(holds=[], charges=[], refunds=[])


async def check_void_after_payment_answers_paid(kit: GatewayKit, unique: str) -> None:
    """A void that comes too late (the customer paid, the sale went through) is no error and undoes
    nothing: the gateway answers the payment's current state, which PaymentWorkflow then applies."""
    c = calls(kit)
    payment_id = pid(unique)
    sale = await paid(kit, c, payment_id)
    late = await kit.gateway.cancel(c.cancel(payment_id, provider_payment_id=sale.provider_payment_id))
    assert late.status is GatewayPaymentStatus.SUCCEEDED, late
    assert kit.ledger(payment_id) == Ledger(holds=[], charges=[c.amount()], refunds=[])


async def check_lookup_by_our_reference(kit: GatewayKit, unique: str) -> None:
    """Found by our payment id alone (no provider id), and "not found" for a payment never made."""
    c = calls(kit)
    payment_id = pid(unique)
    missing = await kit.gateway.lookup(c.lookup(pid(unique + "x")))
    assert missing.status is GatewayPaymentStatus.NOT_FOUND
    result = await paid(kit, c, payment_id)
    if not kit.traits.finds_by_reference:
        return
    found = await kit.gateway.lookup(c.lookup(payment_id))
    assert found.status is GatewayPaymentStatus.SUCCEEDED and found.captured_minor == MINOR
    if result.provider_payment_id and found.provider_payment_id:
        assert found.provider_payment_id == result.provider_payment_id


async def check_lost_create_answer(kit: GatewayKit, unique: str) -> None:
    """The provider made the payment but its answer was lost: the lookup by our reference finds it,
    the retried create repeats it rather than making another, and the customer is charged once."""
    await _create_retried_after_lost_answer(kit, pid(unique), look_up_first=True)


async def _create_retried_after_lost_answer(kit: GatewayKit, payment_id: str, *, look_up_first: bool) -> None:
    """The create's answer is lost after the provider made the payment; the same call is sent again
    (after a lookup by our reference, or straight away as the activity's retry does). A provider
    without idempotency keys (Braintree) must be searched by our reference before the re-send."""
    method = kit.lose_next_answer("authorize")
    c = calls(kit)
    call = c.authorize(payment_id, method=method)
    with refused_with(GatewayTransientError):  # GatewayOutcomeUnknown, or another transient error
        await kit.gateway.authorize(call)
    found = None
    if look_up_first:
        found = await kit.gateway.lookup(c.lookup(payment_id, method=method))
    again = await kit.gateway.authorize(call)
    if found is not None and kit.traits.finds_by_reference:
        assert found.status is not GatewayPaymentStatus.NOT_FOUND
        assert again.status is found.status
    if again.status is GatewayPaymentStatus.REQUIRES_ACTION:
        action_data = await kit.complete_action(payment_id, again)
        again = await kit.gateway.lookup(c.lookup(payment_id, method=method, action_data=action_data))
    assert again.status is GatewayPaymentStatus.SUCCEEDED
    assert kit.ledger(payment_id).charges == [c.amount()]


async def check_lost_refund_answer(kit: GatewayKit, unique: str) -> None:
    """The provider refunded but its answer was lost: the retried refund repeats it, and the
    customer is refunded once."""
    payment_id = pid(unique)
    method = kit.lose_next_answer("refund")
    c = calls(kit)
    sale = await paid(kit, c, payment_id, method=method)
    refund = c.refund(payment_id, "rf_1", 4_000, provider_payment_id=sale.provider_payment_id)
    with refused_with(GatewayTransientError):
        await kit.gateway.refund(refund)
    assert kit.ledger(payment_id).refunds == [c.amount(4_000)]  # the provider did refund
    again = await kit.gateway.refund(refund)
    assert (again.refund_id, again.status) == ("rf_1", RefundStatus.SUCCEEDED)
    assert kit.ledger(payment_id).refunds == [c.amount(4_000)]


# -- idempotent retries --------------------------------------------------------------------------


async def check_retried_sale_charges_once(kit: GatewayKit, unique: str) -> None:
    c = calls(kit)
    payment_id = pid(unique)
    call = c.authorize(payment_id)
    first = await kit.gateway.authorize(call)
    same_outcome(first, await kit.gateway.authorize(call))
    if first.status is GatewayPaymentStatus.REQUIRES_ACTION:
        action_data = await kit.complete_action(payment_id, first)
        paid_now = await kit.gateway.lookup(c.lookup(payment_id, action_data=action_data))
        assert paid_now.status is GatewayPaymentStatus.SUCCEEDED
        # Retried once more after the customer paid: the provider's current state, not a new order.
        late = await kit.gateway.authorize(call)
        assert late.status in (GatewayPaymentStatus.SUCCEEDED, GatewayPaymentStatus.REQUIRES_ACTION)
    assert kit.ledger(payment_id).charges == [c.amount()]
    # The retry that matters most: the first attempt charged, its answer was lost on the wire.
    await _create_retried_after_lost_answer(kit, pid(unique + "lost"), look_up_first=False)


async def check_retried_capture_captures_once(kit: GatewayKit, unique: str) -> None:
    c = calls(kit)
    payment_id = pid(unique)
    if not kit.gateway.profile.supports_manual_capture:
        await check_manual_capture_refused(kit, unique)
        return
    hold = await held(kit, c, payment_id)
    capture = c.capture(payment_id, 7_000, provider_payment_id=hold.provider_payment_id)
    first = await kit.gateway.capture(capture)
    same_outcome(first, await kit.gateway.capture(capture))
    assert kit.ledger(payment_id).charges == [c.amount(7_000)]


async def check_refund(kit: GatewayKit, unique: str) -> None:
    c = calls(kit)
    payment_id = pid(unique)
    sale = await paid(kit, c, payment_id)
    refund = c.refund(payment_id, "rf_1", MINOR, provider_payment_id=sale.provider_payment_id)
    result = await kit.gateway.refund(refund)
    assert (result.refund_id, result.status) == ("rf_1", RefundStatus.SUCCEEDED)
    assert kit.ledger(payment_id).refunds == [c.amount()]
    looked = await kit.gateway.lookup_refund(
        c.refund_lookup(
            payment_id,
            "rf_1",
            provider_payment_id=sale.provider_payment_id,
            provider_refund_id=result.provider_refund_id,
        )
    )
    assert looked.status is RefundStatus.SUCCEEDED
    # Refunded in full, the payment still happened: it is no void.
    after = await kit.gateway.lookup(c.lookup(payment_id, provider_payment_id=sale.provider_payment_id))
    assert after.status is GatewayPaymentStatus.SUCCEEDED and after.captured_minor == MINOR


async def check_refund_of_an_unpaid_payment_refused(kit: GatewayKit, unique: str) -> None:
    """Nothing was paid (the customer has not acted): a refund is refused and moves nothing."""
    c = calls(kit)
    payment_id = pid(unique)
    if kit.method("action") is None:
        # No customer step at the provider: the unpaid payment is a hold, which only a capture pays.
        hold = await held(kit, c, payment_id)
        refund = c.refund(payment_id, "rf_1", MINOR, provider_payment_id=hold.provider_payment_id)
        await _refused_refund(kit, refund)
        assert kit.ledger(payment_id) == Ledger(holds=[c.amount()], charges=[], refunds=[])
        return
    pending = await kit.gateway.authorize(c.authorize(payment_id, "action"))
    assert pending.status is GatewayPaymentStatus.REQUIRES_ACTION
    refund = c.refund(payment_id, "rf_1", MINOR, provider_payment_id=pending.provider_payment_id)
    await _refused_refund(kit, refund)
    assert kit.ledger(payment_id) == Ledger(holds=[], charges=[], refunds=[])


async def check_partial_refunds(kit: GatewayKit, unique: str) -> None:
    """Several partial refunds each move their own amount; one past what is left is refused and
    moves nothing."""
    c = calls(kit)
    payment_id = pid(unique)
    sale = await paid(kit, c, payment_id)
    parts = [1_000, 2_500, 4_000]
    for n, minor in enumerate(parts):
        refund = c.refund(payment_id, f"rf_{n}", minor, provider_payment_id=sale.provider_payment_id)
        assert (await kit.gateway.refund(refund)).status is RefundStatus.SUCCEEDED
    assert sorted(r.minor for r in kit.ledger(payment_id).refunds) == sorted(parts)
    too_much = c.refund(
        payment_id, "rf_over", MINOR - sum(parts) + 1, provider_payment_id=sale.provider_payment_id
    )
    await _refused_refund(kit, too_much)
    assert sorted(r.minor for r in kit.ledger(payment_id).refunds) == sorted(parts)


async def _refused_refund(kit: GatewayKit, refund: RefundCall) -> None:
    """Refused: an invalid request (the card providers) or a failed refund (the wallets' answer)."""
    try:
        result = await kit.gateway.refund(refund)
    except GatewayInvalidRequest:
        return
    assert result.status is RefundStatus.FAILED, result


async def check_retried_refund_refunds_once(kit: GatewayKit, unique: str) -> None:
    c = calls(kit)
    payment_id = pid(unique)
    sale = await paid(kit, c, payment_id)
    refund = c.refund(payment_id, "rf_1", 3_000, provider_payment_id=sale.provider_payment_id)
    first = await kit.gateway.refund(refund)
    assert first.status is RefundStatus.SUCCEEDED
    again = await kit.gateway.refund(refund)
    assert (again.refund_id, again.status) == (first.refund_id, first.status)
    if first.provider_refund_id and again.provider_refund_id:
        assert again.provider_refund_id == first.provider_refund_id
    assert kit.ledger(payment_id).refunds == [c.amount(3_000)]


# -- amounts -------------------------------------------------------------------------------------


async def check_amounts_in_minor_units(kit: GatewayKit, unique: str) -> None:
    """A sale in a 0-, 2- and 3-decimal currency where the provider takes one: the fake, reading the
    wire with the provider's rules, holds exactly our amount."""
    profile = kit.gateway.profile
    offered = {exponent(code) for code in profile.currencies} & set(AMOUNT_FOR_EXPONENT)
    # A kit that leaves out an exponent the gateway takes would let a unit slip through unseen.
    assert offered <= set(kit.traits.currencies), (offered, kit.traits.currencies)
    for digits, currency in sorted(kit.traits.currencies.items()):
        assert exponent(currency) == digits and currency in profile.currencies
        minor = AMOUNT_FOR_EXPONENT[digits]
        c = calls(kit, currency, minor)
        payment_id = pid(f"{unique}e{digits}")
        result = await paid(kit, c, payment_id)
        assert result.captured_minor == minor
        assert kit.ledger(payment_id).charges == [Amount(minor=minor, currency=currency)]


# -- webhooks ------------------------------------------------------------------------------------


async def _paid_delivery(
    kit: GatewayKit, unique: str, *, timestamp: int | None = None
) -> tuple[str, Delivery]:
    c = calls(kit)
    payment_id = pid(unique)
    await paid(kit, c, payment_id)
    return payment_id, kit.webhook(payment_id, timestamp=timestamp)


async def check_signed_webhook_accepted(kit: GatewayKit, unique: str) -> None:
    payment_id, (headers, body) = await _paid_delivery(kit, unique)
    [event] = kit.gateway.parse_webhook(headers, body)
    assert event.gateway == kit.id and event.kind is GatewayEventKind.PAYMENT_SUCCEEDED
    assert event.payment_id == payment_id and event.event_id
    assert event.amount == calls(kit).amount()
    # The receiver's entry point (awaited on its loop) verifies the same way.
    assert await kit.gateway.receive_webhook(headers, body) == [event]


async def check_tampered_webhook_rejected(kit: GatewayKit, unique: str) -> None:
    _, delivery = await _paid_delivery(kit, unique)
    assert kit.gateway.parse_webhook(*delivery)  # as sent: accepted
    with refused_with(WebhookVerificationError):
        kit.gateway.parse_webhook(*kit.tamper(delivery))
    with refused_with(WebhookVerificationError):
        await kit.gateway.receive_webhook(*kit.tamper(delivery))


async def check_stale_webhook_rejected(kit: GatewayKit, unique: str) -> None:
    window = kit.traits.webhook_window_seconds
    if window is None:
        # Nothing signed tells a stale notification: the workflow de-duplicates on the event id.
        await check_resent_webhook_has_the_same_event_id(kit, unique)
        return
    age = window + 30
    _, (headers, body) = await _paid_delivery(kit, unique, timestamp=int(time.time()) - age)
    with kit.later(-age):
        assert kit.gateway.parse_webhook(headers, body)  # when it was signed: accepted
    with refused_with(WebhookVerificationError):
        kit.gateway.parse_webhook(headers, body)


async def check_replayed_webhook_rejected(kit: GatewayKit, unique: str) -> None:
    window = kit.traits.webhook_window_seconds
    if window is None:
        await check_resent_webhook_has_the_same_event_id(kit, unique)
        return
    _, (headers, body) = await _paid_delivery(kit, unique)
    assert kit.gateway.parse_webhook(headers, body)  # accepted when it was sent
    with kit.later(window + 30), refused_with(WebhookVerificationError):
        kit.gateway.parse_webhook(headers, body)  # the same bytes, re-sent past the window


async def check_resent_webhook_has_the_same_event_id(kit: GatewayKit, unique: str) -> None:
    _, (headers, body) = await _paid_delivery(kit, unique)
    [first] = kit.gateway.parse_webhook(headers, body)
    with kit.later(26 * 3600):  # past AliPay's last resend
        [again] = kit.gateway.parse_webhook(headers, body)
    assert again.event_id == first.event_id


# -- money confirmed out of band -----------------------------------------------------------------

# The checks that hold for a gateway whose money is confirmed out of band (`KitTraits.
# confirmed_out_of_band`): what it declares it does not do. Every other check proves money the
# gateway reports, which such a gateway never does: `check_confirmed_out_of_band` runs instead.
HOLD_OUT_OF_BAND = frozenset({"authorize_and_capture", "partial_capture", "retried_capture_captures_once"})


async def check_confirmed_out_of_band(kit: GatewayKit, unique: str) -> None:
    """A bank transfer: the payer is shown instructions, the same on every retry; once the money
    is at the bank, the gateway still reports nothing paid (only the workflow's validated update,
    from an operator or a statement import, settles it); it refuses gateway refunds and every
    notification (a forged "paid" one included), and a cancel stops the wait."""
    c = calls(kit)
    payment_id = pid(unique)
    call = c.authorize(payment_id, "action")
    first = await kit.gateway.authorize(call)
    assert first.status is GatewayPaymentStatus.REQUIRES_ACTION and first.next_action is not None
    same_outcome(first, await kit.gateway.authorize(call))
    assert kit.ledger(payment_id).charges == []
    await kit.complete_action(payment_id, first)
    assert kit.ledger(payment_id).charges == [c.amount()]  # the money is at the bank
    looked = await kit.gateway.lookup(
        c.lookup(payment_id, "action", provider_payment_id=first.provider_payment_id)
    )
    assert looked.status is GatewayPaymentStatus.REQUIRES_ACTION, looked
    with refused_with(NotSupported):
        await kit.gateway.refund(
            c.refund(payment_id, "rf_1", MINOR, provider_payment_id=first.provider_payment_id)
        )
    with refused_with(WebhookVerificationError):
        kit.gateway.parse_webhook(*kit.webhook(payment_id))
    with refused_with(WebhookVerificationError):
        kit.gateway.parse_webhook(*kit.tamper(kit.webhook(payment_id)))
    cancelled = await kit.gateway.cancel(c.cancel(payment_id, provider_payment_id=first.provider_payment_id))
    assert cancelled.status is GatewayPaymentStatus.CANCELLED
