"""Payment metrics, counted by the `store.record_transition` local activity from the transitions it
stores for the first time, and the waiting-payment gauges read from the store; scraped over real HTTP
and parsed as the exposition format."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest_asyncio
from prometheus_client import start_http_server
from prometheus_client.parser import text_string_to_metric_families
from temporalio.testing import ActivityEnvironment

from activities.metrics import WAITING_STATUSES, PaymentMetrics, failure_reason
from activities.store.db import create_engine, migrate
from activities.store.repository import PaymentStore
from activities.store_activities import StoreActivities
from tests.activities.store.helpers import T0, db_url, engine, make_view, store
from workflows.domain import DisputeView, Failure, PaymentStatus
from workflows.ledger_io import PaymentEventRecord, PaymentTransition

Samples = dict[tuple[str, frozenset], float]


@pytest_asyncio.fixture
async def served() -> AsyncIterator[tuple[PaymentMetrics, str]]:
    metrics = PaymentMetrics()
    server, thread = start_http_server(0, "127.0.0.1", registry=metrics.registry)
    try:
        yield metrics, f"http://127.0.0.1:{server.server_port}/metrics"
    finally:
        await asyncio.to_thread(server.shutdown)
        server.server_close()
        thread.join()


async def scrape(url: str) -> Samples:
    async with httpx.AsyncClient() as http:
        response = await http.get(url)
    assert response.status_code == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def transition(view, *events: str) -> PaymentTransition:
    return PaymentTransition(view=view, events=[PaymentEventRecord(type=e) for e in events])


async def test_each_stored_transition_counts_once(
    served: tuple[PaymentMetrics, str], store: PaymentStore, unique: str
) -> None:
    metrics, url = served
    [record] = StoreActivities(store, metrics).definitions()
    env = ActivityEnvironment()
    paid = make_view(
        f"pay_{unique}_paid", status=PaymentStatus.PAID, version=3, updated_at=T0 + timedelta(seconds=3)
    )
    declined = make_view(
        f"pay_{unique}_declined",
        status=PaymentStatus.FAILED,
        version=2,
        updated_at=T0 + timedelta(seconds=1),
        failure=Failure(code="card_declined", message="declined", decline_code="insufficient_funds"),
    )
    odd = make_view(
        f"pay_{unique}_odd",
        gateway="stripe",
        status=PaymentStatus.FAILED,
        version=2,
        failure=Failure(code=f"expired_card_{unique}", message="no", decline_code="expired_card"),
    )
    cancelled = make_view(
        f"pay_{unique}_cancel",
        status=PaymentStatus.CANCELLED,
        version=2,
        failure=Failure(code=f"whatever_{unique}", message="cancelled"),
    )
    disputed = paid.model_copy(
        update={
            "status": PaymentStatus.DISPUTED,
            "version": 4,
            "disputes": [DisputeView(dispute_id=f"dp_{unique}", status="needs_response")],
        }
    )
    for t in [
        transition(paid, "payment.captured", "order.paid", "payment.completed"),
        transition(paid, "payment.captured", "order.paid", "payment.completed"),  # retried: once
        transition(declined, "payment.failed"),
        transition(odd, "payment.failed"),
        transition(cancelled, "payment.cancelled"),
        transition(paid.model_copy(update={"version": 5}), "refund.pending"),
        transition(paid.model_copy(update={"version": 6}), "refund.succeeded"),
        transition(paid.model_copy(update={"version": 7}), "refund.failed"),
        transition(disputed, "dispute.needs_response"),
        transition(disputed.model_copy(update={"version": 8}), "dispute.warning_closed"),
        transition(disputed.model_copy(update={"version": 9}), "dispute.lost"),
        transition(make_view(f"pay_{unique}_new"), "payment.created"),  # not an end: not counted
    ]:
        await env.run(record, t)

    samples = await scrape(url)
    assert value(samples, "durapay_payments_total", gateway="mock", outcome="paid") == 1
    assert value(samples, "durapay_payments_total", gateway="mock", outcome="failed") == 1
    assert value(samples, "durapay_payments_total", gateway="stripe", outcome="failed") == 1
    assert value(samples, "durapay_payments_total", gateway="mock", outcome="cancelled") == 1
    assert sum(v for (name, _), v in samples.items() if name == "durapay_payments_total") == 4
    paid_labels = {"gateway": "mock", "outcome": "paid"}
    assert value(samples, "durapay_payment_processing_seconds_count", **paid_labels) == 1
    assert value(samples, "durapay_payment_processing_seconds_sum", **paid_labels) == 3.0
    assert value(samples, "durapay_payment_processing_seconds_bucket", **paid_labels, le="2.5") == 0
    assert value(samples, "durapay_payment_processing_seconds_bucket", **paid_labels, le="5.0") == 1
    failures = "durapay_payment_failures_total"
    assert value(samples, failures, gateway="mock", reason="card_declined") == 1
    assert value(samples, failures, gateway="stripe", reason="provider_decline") == 1
    assert value(samples, failures, gateway="mock", reason="other") == 1
    assert value(samples, "durapay_refunds_total", gateway="mock", status="succeeded") == 1
    assert value(samples, "durapay_refunds_total", gateway="mock", status="failed") == 1
    assert sum(v for (name, _), v in samples.items() if name == "durapay_refunds_total") == 2
    for state in ("open", "won", "lost"):
        assert value(samples, "durapay_dispute_updates_total", gateway="mock", state=state) == 1
    # Bounded labels: no payment id, no code a provider made up, no amount.
    labels = {v for (_, pairs) in samples for _, v in pairs}
    assert not any(unique in v for v in labels) and "4999" not in labels


def test_failure_reasons_are_a_fixed_set() -> None:
    assert failure_reason(Failure(code="blocked_by_fraud_check", message="x")) == "blocked_by_fraud_check"
    assert failure_reason(Failure(code="order_already_paid", message="x")) == "order_already_paid"
    assert failure_reason(Failure(code="Anything At All", message="x", decline_code="do_not_honor")) == (
        "provider_decline"
    )
    assert failure_reason(Failure(code="Anything At All", message="x")) == "other"
    assert failure_reason(None) == "other"


async def test_the_store_says_when_it_stored_a_transition(store: PaymentStore, unique: str) -> None:
    view = make_view(f"pay_{unique}", status=PaymentStatus.AUTHORIZED, version=2)
    assert await store.record_transition(transition(view, "payment.authorized")) is True
    assert await store.record_transition(transition(view, "payment.authorized")) is False
    older = view.model_copy(update={"version": 1})
    assert await store.record_transition(transition(older, "payment.created")) is True  # late, first time
    assert await store.record_transition(PaymentTransition(view=view)) is False  # nothing to store
    paid = view.model_copy(update={"version": 3})
    assert await store.record_transition(transition(paid, "payment.captured", "order.paid")) is True
    assert await store.record_transition(transition(paid, "payment.captured", "order.paid")) is False


@pytest_asyncio.fixture
async def own_store(db_url: str) -> AsyncIterator[PaymentStore]:
    """An empty database of its own: the gauges count every payment in it."""
    await migrate(db_url)
    engine = create_engine(db_url)
    yield PaymentStore(engine)
    await engine.dispose()


async def test_waiting_payments_by_status_and_age(
    served: tuple[PaymentMetrics, str], own_store: PaymentStore, unique: str
) -> None:
    metrics, url = served
    views = [
        make_view(f"pay_{unique}_u1", status=PaymentStatus.OUTCOME_UNKNOWN, updated_at=T0),
        make_view(
            f"pay_{unique}_u2", status=PaymentStatus.OUTCOME_UNKNOWN, updated_at=T0 + timedelta(minutes=5)
        ),
        make_view(f"pay_{unique}_a", status=PaymentStatus.AUTHORIZING, updated_at=T0 + timedelta(minutes=9)),
        make_view(f"pay_{unique}_p", status=PaymentStatus.PAID, updated_at=T0),
    ]
    for view in views:
        await own_store.record_transition(transition(view, "step"))

    await metrics.refresh_waiting(own_store, now=T0 + timedelta(minutes=10))
    samples = await scrape(url)
    assert value(samples, "durapay_payments_waiting", status="outcome_unknown") == 2
    assert value(samples, "durapay_payments_waiting", status="authorizing") == 1
    assert value(samples, "durapay_payments_waiting_oldest_seconds", status="outcome_unknown") == 600
    assert value(samples, "durapay_payments_waiting_oldest_seconds", status="authorizing") == 60
    # Every watched status has its series, zero when no payment waits in it.
    assert ("durapay_payments_waiting", frozenset({"status": "pending"}.items())) in samples
    assert value(samples, "durapay_payments_waiting_oldest_seconds", status="pending") == 0
    assert {dict(pairs)["status"] for (name, pairs) in samples if name == "durapay_payments_waiting"} == {
        s.value for s in WAITING_STATUSES
    }
    assert value(samples, "durapay_payments_waiting_refreshed_timestamp_seconds") > 0


async def test_the_gauges_refresh_while_watched_and_survive_a_store_outage(
    own_store: PaymentStore, unique: str
) -> None:
    metrics = PaymentMetrics()
    refreshed = "durapay_payments_waiting_refreshed_timestamp_seconds"

    class Down:
        async def waiting(self, statuses):
            raise ConnectionError("the store is down")

    async with metrics.watching_waiting(Down(), every=0.01):  # type: ignore[arg-type]
        await asyncio.sleep(0.05)
    assert not metrics.registry.get_sample_value(refreshed)  # never read: the timestamp says so

    await own_store.record_transition(
        transition(make_view(f"pay_{unique}", status=PaymentStatus.OUTCOME_UNKNOWN), "step")
    )
    async with metrics.watching_waiting(own_store, every=0.01):
        for _ in range(200):
            if metrics.registry.get_sample_value("durapay_payments_waiting", {"status": "outcome_unknown"}):
                break
            await asyncio.sleep(0.01)
    assert metrics.registry.get_sample_value("durapay_payments_waiting", {"status": "outcome_unknown"}) == 1
    assert (metrics.registry.get_sample_value(refreshed) or 0) > 0
