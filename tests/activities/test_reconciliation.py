"""Reconciliation: the comparison table, then drift made on purpose between a real store and the mock
provider (report, repair, paging, failures), then repairs through real payment workflows: the
synthetic event moves the payment by the workflow's own rules, once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest
import pytest_asyncio
from temporalio.api.enums.v1 import EventType

from activities.gateways.mock.adapter import MockGateway
from activities.gateways.mock.settings import MockSettings
from activities.gateways.registry import GatewayRegistry
from activities.reconciliation import (
    Reconciler,
    TemporalPaymentSignals,
    classify,
    refund_event,
    status_event,
)
from activities.store.db import create_engine, migrate
from activities.store.repository import PaymentStore
from tests.activities.store.helpers import T0, make_view
from tests.stack import Stack, running_stack
from workflows.client import workflow_id
from workflows.domain import (
    CardMethod,
    Failure,
    PaymentStatus,
    PaymentView,
    RefundStatus,
    RefundView,
)
from workflows.gateway_io import (
    AuthorizeCall,
    CaptureCall,
    GatewayEvent,
    GatewayEventKind,
    GatewayPaymentStatus,
    GatewayResult,
    RefundCall,
    RefundResult,
)
from workflows.ledger_io import PaymentTransition
from workflows.money import Amount
from workflows.reconcile_io import DriftKind, ReconcileRequest, RepairAction

G = GatewayPaymentStatus
S = PaymentStatus
USD = Amount(minor=4999, currency="USD")
LONG_AGO = T0 - timedelta(days=1)  # "updated" well before the grace period of a run at T0


# ------------------------------------------------------------------------------ the comparison


@pytest.mark.parametrize(
    ("ours", "theirs", "expected"),
    [
        # still open here: the provider being ahead is repaired by the matching event
        (S.AUTHORIZING, G.SUCCEEDED, (DriftKind.STATUS, GatewayEventKind.PAYMENT_SUCCEEDED)),
        (S.AUTHORIZING, G.AUTHORIZED, (DriftKind.STATUS, GatewayEventKind.PAYMENT_AUTHORIZED)),
        (S.OUTCOME_UNKNOWN, G.DECLINED, (DriftKind.STATUS, GatewayEventKind.PAYMENT_FAILED)),
        (S.PENDING, G.CANCELLED, (DriftKind.STATUS, GatewayEventKind.PAYMENT_CANCELLED)),
        (S.AUTHORIZING, G.REQUIRES_ACTION, None),
        (S.AUTHORIZING, G.PROCESSING, None),
        (S.PENDING, G.NOT_FOUND, None),  # not sent yet
        (S.OUTCOME_UNKNOWN, G.NOT_FOUND, None),  # the workflow is asking itself
        (S.AUTHORIZING, G.NOT_FOUND, (DriftKind.CONTRADICTION, None)),
        # authorized here
        (S.AUTHORIZED, G.AUTHORIZED, None),
        (S.AUTHORIZED, G.SUCCEEDED, (DriftKind.STATUS, GatewayEventKind.PAYMENT_SUCCEEDED)),
        (S.AUTHORIZED, G.CANCELLED, (DriftKind.STATUS, GatewayEventKind.PAYMENT_CANCELLED)),
        (S.AUTHORIZED, G.NOT_FOUND, (DriftKind.CONTRADICTION, None)),
        # money moved here: nothing may move it back, a contradiction is for a person
        (S.PAID, G.SUCCEEDED, None),
        (S.REFUNDED, G.SUCCEEDED, None),
        (S.PAID, G.NOT_FOUND, (DriftKind.CONTRADICTION, None)),
        (S.DISPUTED, G.DECLINED, (DriftKind.CONTRADICTION, None)),
        (S.PARTIALLY_REFUNDED, G.AUTHORIZED, (DriftKind.CONTRADICTION, None)),
        # given up here
        (S.FAILED, G.DECLINED, None),
        (S.CANCELLED, G.CANCELLED, None),
        (S.FAILED, G.NOT_FOUND, None),
        (S.CANCELLED, G.SUCCEEDED, (DriftKind.STATUS, GatewayEventKind.PAYMENT_SUCCEEDED)),
        (S.FAILED, G.AUTHORIZED, (DriftKind.CONTRADICTION, None)),
        (S.FAILED, G.REQUIRES_ACTION, (DriftKind.CONTRADICTION, None)),
    ],
)
def test_classify(ours: PaymentStatus, theirs: GatewayPaymentStatus, expected) -> None:
    view = make_view("pay_c", status=ours, captured_minor=4999 if ours in (S.PAID, S.REFUNDED) else 0)
    finding = classify(
        view, GatewayResult(status=theirs, captured_minor=4999 if theirs is G.SUCCEEDED else None)
    )
    assert (None if finding is None else (finding.kind, finding.repair)) == expected


def test_classify_amount_and_late_payment_already_given_back() -> None:
    paid = make_view("pay_a", status=S.PAID, captured_minor=4999)
    finding = classify(paid, GatewayResult(status=G.SUCCEEDED, captured_minor=2000))
    assert finding is not None and (finding.kind, finding.repair) == (DriftKind.AMOUNT, None)
    assert "49.99 USD here, 20.00 USD at the provider" in finding.detail

    late = RefundView(
        refund_id="late",
        amount=USD,
        status=RefundStatus.PENDING,
        created_at=T0,
        reason="payment completed after it was closed",
    )
    given_back = make_view("pay_l", status=S.FAILED, captured_minor=4999, refunds=[late])
    assert classify(given_back, GatewayResult(status=G.SUCCEEDED, captured_minor=4999)) is None


def test_events_carry_the_providers_amount_and_deterministic_ids() -> None:
    view = make_view("pay_e", status=S.AUTHORIZING, provider_payment_id="pi_1")
    partial = status_event(
        view, GatewayResult(status=G.SUCCEEDED, captured_minor=2000), GatewayEventKind.PAYMENT_SUCCEEDED
    )
    assert (partial.event_id, partial.amount, partial.provider_payment_id) == (
        "reconcile:pay_e:succeeded",
        Amount(minor=2000, currency="USD"),
        "pi_1",
    )
    declined = Failure(
        code="card_declined", message="Your card was declined.", decline_code="generic_decline"
    )
    failed = status_event(
        view, GatewayResult(status=G.DECLINED, failure=declined), GatewayEventKind.PAYMENT_FAILED
    )
    assert (failed.event_id, failed.amount, failed.failure) == ("reconcile:pay_e:declined", None, declined)

    refund = RefundView(
        refund_id="re_1", amount=USD.with_minor(500), status=RefundStatus.PENDING, created_at=T0
    )
    settled = refund_event(
        view, refund, RefundResult(refund_id="re_1", status=RefundStatus.SUCCEEDED, provider_refund_id="rf_9")
    )
    assert (settled.event_id, settled.kind, settled.refund_id, settled.provider_refund_id) == (
        "reconcile:pay_e:refund:re_1:succeeded",
        GatewayEventKind.REFUND_SUCCEEDED,
        "re_1",
        "rf_9",
    )


# ------------------------------------------------------------------------------ drift made on purpose


class RecordingSignals:
    """`PaymentSignals` that records events; payments in `closed` have no open workflow."""

    def __init__(self, closed: frozenset[str] = frozenset()) -> None:
        self.events: list[tuple[str, GatewayEvent]] = []
        self.closed = closed

    async def gateway_event(self, payment_id: str, event: GatewayEvent) -> bool:
        self.events.append((payment_id, event))
        return payment_id not in self.closed


@pytest_asyncio.fixture
async def store(sqlite_url: str) -> AsyncIterator[PaymentStore]:
    await migrate(sqlite_url)
    engine = create_engine(sqlite_url)
    yield PaymentStore(engine)
    await engine.dispose()


@pytest.fixture
def mock() -> MockGateway:
    return MockGateway(MockSettings(enabled=True))


def card(token: str) -> CardMethod:
    return CardMethod(token=token, last4="4242", brand="visa")


async def charge(mock: MockGateway, payment_id: str, token: str, *, capture: bool = True) -> GatewayResult:
    return await mock.authorize(
        AuthorizeCall(
            gateway="mock",
            payment_id=payment_id,
            order_id=f"ord_{payment_id}",
            amount=USD,
            method=card(token),
            capture=capture,
            idempotency_key=f"{workflow_id(payment_id)}:authorize",
        )
    )


async def record(store: PaymentStore, view: PaymentView) -> PaymentView:
    await store.record_transition(PaymentTransition(view=view))
    return view


async def test_drift_made_on_purpose_is_reported_then_repaired(
    store: PaymentStore, mock: MockGateway
) -> None:
    ids = {
        name: f"pay_{name}_{uuid.uuid4().hex[:6]}"
        for name in ("ahead", "ok", "declined", "ghost", "partial", "busy", "stripe", "refund", "closed")
    }

    # The provider says paid, we still wait for the customer (its webhook was lost).
    ahead = await charge(mock, ids["ahead"], "tok_async_webhook")
    mock.settle(ids["ahead"])
    await record(
        store,
        make_view(
            ids["ahead"],
            status=S.AUTHORIZING,
            provider_payment_id=ahead.provider_payment_id,
            updated_at=LONG_AGO,
        ),
    )
    # Both say paid.
    ok = await charge(mock, ids["ok"], "tok_visa")
    await record(
        store,
        make_view(
            ids["ok"],
            status=S.PAID,
            captured_minor=4999,
            provider_payment_id=ok.provider_payment_id,
            updated_at=LONG_AGO,
        ),
    )
    # The provider declined, we still wait.
    declined = await charge(mock, ids["declined"], "tok_async_webhook")
    mock.settle(ids["declined"], succeeded=False)
    await record(
        store,
        make_view(
            ids["declined"],
            status=S.AUTHORIZING,
            provider_payment_id=declined.provider_payment_id,
            updated_at=LONG_AGO,
        ),
    )
    # We say paid; the provider never heard of it.
    await record(store, make_view(ids["ghost"], status=S.PAID, captured_minor=4999, updated_at=LONG_AGO))
    # Both say paid, not the same amount.
    partial = await charge(mock, ids["partial"], "tok_visa", capture=False)
    await mock.capture(
        CaptureCall(
            gateway="mock",
            payment_id=ids["partial"],
            provider_payment_id=partial.provider_payment_id,
            amount=USD.with_minor(2000),
            idempotency_key=f"{workflow_id(ids['partial'])}:capture",
        )
    )
    await record(
        store,
        make_view(
            ids["partial"],
            status=S.PAID,
            captured_minor=4999,
            provider_payment_id=partial.provider_payment_id,
            updated_at=LONG_AGO,
        ),
    )
    # Still in flight: skipped, whatever the provider says.
    await record(store, make_view(ids["busy"], status=S.PENDING, updated_at=T0 - timedelta(seconds=5)))
    # A gateway this process does not have.
    await record(store, make_view(ids["stripe"], gateway="stripe", status=S.AUTHORIZING, updated_at=LONG_AGO))
    # Our refund is pending; the provider made it.
    paid = await charge(mock, ids["refund"], "tok_visa")
    refunded = await mock.refund(
        RefundCall(
            gateway="mock",
            payment_id=ids["refund"],
            provider_payment_id=paid.provider_payment_id,
            refund_id="re_1",
            amount=USD.with_minor(1000),
            idempotency_key=f"{workflow_id(ids['refund'])}:refund:re_1",
        )
    )
    pending = RefundView(
        refund_id="re_1", amount=USD.with_minor(1000), status=RefundStatus.PENDING, created_at=T0
    )
    await record(
        store,
        make_view(
            ids["refund"],
            status=S.PAID,
            captured_minor=4999,
            provider_payment_id=paid.provider_payment_id,
            refunds=[pending],
            updated_at=LONG_AGO,
        ),
    )
    # The provider says paid, and the workflow has closed meanwhile.
    closed = await charge(mock, ids["closed"], "tok_async_webhook")
    mock.settle(ids["closed"])
    await record(
        store,
        make_view(
            ids["closed"],
            status=S.AUTHORIZING,
            provider_payment_id=closed.provider_payment_id,
            updated_at=LONG_AGO,
        ),
    )
    # Outside the range: never looked at.
    await record(
        store,
        make_view(
            f"pay_old_{uuid.uuid4().hex[:6]}",
            status=S.PAID,
            created_at=T0 - timedelta(days=30),
            updated_at=LONG_AGO,
        ),
    )

    signals = RecordingSignals(closed=frozenset({ids["closed"]}))
    reconciler = Reconciler(store, GatewayRegistry([mock]), signals, page_size=3)
    request = ReconcileRequest(since=T0 - timedelta(hours=1), until=T0 + timedelta(hours=1), grace_seconds=60)

    report = await reconciler.run(request, now=T0)

    drifts = {(d.payment_id, d.kind): d for d in report.drifts}
    assert sorted((name, kind.value) for name, pid in ids.items() for (p, kind) in drifts if p == pid) == [
        ("ahead", "status"),
        ("closed", "status"),
        ("declined", "status"),
        ("ghost", "contradiction"),
        ("partial", "amount"),
        ("refund", "refund"),
        ("stripe", "lookup_failed"),
    ]
    assert (report.checked, report.consistent, report.skipped_recent) == (8, 1, 1)
    assert all(d.action is RepairAction.REPORTED for d in report.drifts)
    assert signals.events == [] and report.needs_attention
    ahead_drift = drifts[(ids["ahead"], DriftKind.STATUS)]
    assert (ahead_drift.ours, ahead_drift.theirs, ahead_drift.repair, ahead_drift.event_id) == (
        S.AUTHORIZING,
        "succeeded",
        GatewayEventKind.PAYMENT_SUCCEEDED,
        f"reconcile:{ids['ahead']}:succeeded",
    )
    assert "not enabled" in drifts[(ids["stripe"], DriftKind.LOOKUP_FAILED)].detail
    # A report changes nothing: the store still says what it said.
    assert (await store.get(ids["ahead"])).status is S.AUTHORIZING

    repaired = await reconciler.run(request.model_copy(update={"repair": True}), now=T0)

    actions = {d.payment_id: d.action for d in repaired.drifts}
    assert actions[ids["ahead"]] is RepairAction.SIGNALLED
    assert actions[ids["declined"]] is RepairAction.SIGNALLED
    assert actions[ids["refund"]] is RepairAction.SIGNALLED
    assert actions[ids["closed"]] is RepairAction.WORKFLOW_CLOSED
    for unrepairable in ("ghost", "partial", "stripe"):
        assert actions[ids[unrepairable]] is RepairAction.REPORTED
    sent = dict(signals.events)
    assert set(sent) == {ids["ahead"], ids["declined"], ids["refund"], ids["closed"]}
    assert (sent[ids["ahead"]].kind, sent[ids["ahead"]].amount) == (GatewayEventKind.PAYMENT_SUCCEEDED, USD)
    assert sent[ids["declined"]].kind is GatewayEventKind.PAYMENT_FAILED
    assert (sent[ids["refund"]].refund_id, sent[ids["refund"]].provider_refund_id) == (
        "re_1",
        refunded.provider_refund_id,
    )
    # Repairs go through the workflows only: the store is untouched by the reconciler itself.
    assert (await store.get(ids["ahead"])).status is S.AUTHORIZING

    # Run again: the same events, under the same ids, for the workflows to de-duplicate.
    await reconciler.run(request.model_copy(update={"repair": True}), now=T0)
    assert sorted(e.event_id for _, e in signals.events[len(sent) :]) == sorted(
        e.event_id for e in sent.values()
    )


async def test_paging_visits_every_payment_once(store: PaymentStore, mock: MockGateway) -> None:
    """The store pages by creation time only; a page boundary inside a run of payments created at
    the same instant must neither skip nor repeat any of them."""
    ids = [f"pay_p{i:02d}_{uuid.uuid4().hex[:4]}" for i in range(11)]
    for index, payment_id in enumerate(ids):
        created = T0 if index < 7 else T0 + timedelta(seconds=index)
        # Paid here, unknown to the provider: every one of them is a drift, so each shows up.
        await record(
            store,
            make_view(
                payment_id, status=S.PAID, captured_minor=4999, created_at=created, updated_at=LONG_AGO
            ),
        )
    await record(
        store,
        make_view(
            f"pay_at_until_{uuid.uuid4().hex[:4]}",
            status=S.PAID,
            created_at=T0 + timedelta(minutes=5),
            updated_at=LONG_AGO,
        ),
    )

    for page_size in (1, 2, 3, 50):
        reconciler = Reconciler(store, GatewayRegistry([mock]), page_size=page_size, concurrency=2)
        report = await reconciler.run(
            ReconcileRequest(since=T0, until=T0 + timedelta(minutes=5), grace_seconds=0),
            now=T0 + timedelta(days=2),
        )
        assert sorted(d.payment_id for d in report.drifts) == sorted(ids), page_size
        assert report.checked == 11


async def test_the_listed_drifts_are_bounded(store: PaymentStore, mock: MockGateway) -> None:
    for index in range(5):
        await record(
            store, make_view(f"pay_b{index}_{uuid.uuid4().hex[:4]}", status=S.PAID, updated_at=LONG_AGO)
        )
    reconciler = Reconciler(store, GatewayRegistry([mock]))
    report = await reconciler.run(
        ReconcileRequest(
            since=T0 - timedelta(hours=1), until=T0 + timedelta(hours=1), grace_seconds=0, max_listed=2
        ),
        now=T0,
    )
    assert (len(report.drifts), report.unlisted_drifts, report.unlisted_signalled) == (2, 3, 0)
    assert report.needs_attention


async def test_repairing_needs_a_way_to_the_workflows(store: PaymentStore, mock: MockGateway) -> None:
    with pytest.raises(ValueError, match="PaymentSignals"):
        await Reconciler(store, GatewayRegistry([mock])).run(
            ReconcileRequest(since=T0, until=T0 + timedelta(hours=1), repair=True)
        )


# ------------------------------------------------------------------------------ through real workflows


@pytest_asyncio.fixture(scope="module")
async def reconcile_stack(temporal_env, tmp_path_factory) -> AsyncIterator[Stack]:
    db = tmp_path_factory.mktemp("reconcile") / "durapay.db"
    # The workflows' own status poll is pushed far out: the drift made here must last until the
    # reconciler repairs it, not be resolved by the workflow asking the provider first.
    overrides = {"payment": {"status_poll_seconds": 3600}}
    async with running_stack(
        temporal_env.client,
        task_queue=f"tq-reconcile-{uuid.uuid4().hex[:8]}",
        db_url=f"sqlite+aiosqlite:///{db}",
        config_overrides=overrides,
    ) as stack:
        yield stack


async def create(stack: Stack, unique: str, token: str, **fields) -> dict:
    body = {
        "order_id": f"order-{unique}",
        "amount": "49.99",
        "currency": "USD",
        "payment_method": {"type": "card", "token": token},
        **fields,
    }
    async with stack.http() as http:
        response = await http.post("/v1/payments", json=body, headers=stack.headers(unique))
    assert response.status_code in (201, 202), response.text
    return response.json()


async def eventually_status(
    stack: Stack, payment_id: str, status: PaymentStatus, timeout: float = 10
) -> PaymentView:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        view = await stack.store.get(payment_id)
        if (view is not None and view.status is status) or asyncio.get_running_loop().time() > deadline:
            return view
        await asyncio.sleep(0.05)


def window_around(view: dict, *, repair: bool) -> ReconcileRequest:
    created = datetime.fromisoformat(view["created_at"])
    return ReconcileRequest(
        since=created, until=created + timedelta(seconds=1), repair=repair, grace_seconds=0
    )


async def received_events(stack: Stack, payment_id: str, event_id: str) -> int:
    return sum(
        1
        for e in await stack.store.events(payment_id)
        if e.type == "webhook.received" and e.data.get("event_id") == event_id
    )


async def test_a_lost_success_webhook_is_repaired_through_the_workflow_once(
    reconcile_stack: Stack, unique: str
) -> None:
    stack = reconcile_stack
    waiting = await create(stack, unique, "tok_async_webhook")
    assert waiting["status"] == "authorizing"
    stack.gateway("mock").settle(waiting["id"])  # paid at the provider; its webhook never arrives

    reconciler = Reconciler(
        stack.store,
        stack.registry,
        TemporalPaymentSignals(stack.client, keys=stack.config.event_proof.event_keys()),
    )
    report = await reconciler.run(window_around(waiting, repair=False))
    [drift] = report.drifts
    assert (drift.payment_id, drift.kind, drift.action) == (
        waiting["id"],
        DriftKind.STATUS,
        RepairAction.REPORTED,
    )
    assert (await stack.store.get(waiting["id"])).status is S.AUTHORIZING

    # Two repairs racing each other (two operators, or a retried run): the workflow applies one.
    first, second = await asyncio.gather(
        reconciler.run(window_around(waiting, repair=True)),
        reconciler.run(window_around(waiting, repair=True)),
    )
    assert [d.action for d in first.drifts + second.drifts] == [RepairAction.SIGNALLED] * 2

    paid = await eventually_status(stack, waiting["id"], S.PAID)
    assert (paid.status, paid.captured_minor) == (S.PAID, 4999)
    assert await received_events(stack, waiting["id"], drift.event_id) == 1
    # The repair carried reconciliation's proof: the workflow took it as is, not as a forgery.
    assert "webhook.unverified" not in [e.type for e in await stack.store.events(waiting["id"])]
    assert (await reconciler.run(window_around(waiting, repair=True))).drifts == []


async def test_a_decline_the_workflow_missed_fails_the_payment(reconcile_stack: Stack, unique: str) -> None:
    stack = reconcile_stack
    waiting = await create(stack, unique, "tok_async_webhook")
    stack.gateway("mock").settle(waiting["id"], succeeded=False)

    reconciler = Reconciler(
        stack.store,
        stack.registry,
        TemporalPaymentSignals(stack.client, keys=stack.config.event_proof.event_keys()),
    )
    [drift] = (await reconciler.run(window_around(waiting, repair=True))).drifts
    assert (drift.theirs, drift.repair, drift.action) == (
        "declined",
        GatewayEventKind.PAYMENT_FAILED,
        RepairAction.SIGNALLED,
    )

    failed = await eventually_status(stack, waiting["id"], S.FAILED)
    assert failed.status is S.FAILED and failed.failure.code == "payment_failed"
    assert failed.captured_minor == 0
    # The order the payment held is free again, as after any failed payment.
    retry = await create(stack, unique + "-retry", "tok_visa", order_id=f"order-{unique}")
    assert retry["status"] == "paid"


async def test_a_paid_payment_is_never_moved_back(reconcile_stack: Stack, unique: str) -> None:
    """A contradiction (paid here, unknown at the provider) is reported, never 'repaired'."""
    stack = reconcile_stack
    paid = await create(stack, unique, "tok_visa")
    mock = stack.gateway("mock")
    forgetful = MockGateway(mock.settings)  # a provider that lost the record
    reconciler = Reconciler(
        stack.store,
        GatewayRegistry([forgetful]),
        TemporalPaymentSignals(stack.client, keys=stack.config.event_proof.event_keys()),
    )

    [drift] = (await reconciler.run(window_around(paid, repair=True))).drifts

    assert (drift.kind, drift.theirs, drift.action, drift.repair) == (
        DriftKind.CONTRADICTION,
        "not_found",
        RepairAction.REPORTED,
        None,
    )
    handle = stack.client.get_workflow_handle(workflow_id(paid["id"]))
    signals = [
        e
        async for e in handle.fetch_history_events()
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    ]
    assert signals == []
    assert (await stack.store.get(paid["id"])).status is S.PAID
