"""The webhook receiver: verification on the raw bytes, one signal per event, the provider's ack only
after Temporal took every signal, and an inbox record of everything received."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.service import RPCError, RPCStatusCode

from api.problems import PROBLEM_CONTENT_TYPE
from tests.api.fakes import FakeStore, FakeWebhooks, make_deps, serve, signed
from tests.workflows.builders import TEST_EVENT_KEYS, payment_input
from workflows.client import workflow_id
from workflows.event_proof import ProofCheck
from workflows.gateway_io import GatewayEvent, GatewayEventKind
from workflows.payment import PaymentWorkflow
from workflows.webhook_inbox import WebhookOutcome


def _event(event_id: str = "evt_1", **fields) -> GatewayEvent:
    return GatewayEvent(
        gateway="mock",
        event_id=event_id,
        kind=GatewayEventKind.PAYMENT_SUCCEEDED,
        provider_type="charge.succeeded",
        **fields,
    )


async def _deliver(deps, body: bytes, headers: dict[str, str], gateway: str = "mock"):
    async with serve(deps) as base, aiohttp.ClientSession() as http:
        async with http.post(f"{base}/webhooks/{gateway}", data=body, headers=headers) as resp:
            return resp.status, resp.headers.get("Content-Type"), await resp.read()


async def test_unknown_gateway_is_404():
    body, headers = signed([_event()])
    status, content_type, _ = await _deliver(make_deps(), body, headers, gateway="paypal")
    assert (status, content_type) == (404, PROBLEM_CONTENT_TYPE)


async def test_oversized_body_is_413_and_not_parsed():
    deps = make_deps()
    body, headers = signed([_event(f"evt_{i}") for i in range(40)])
    assert len(body) > deps.limits.max_body_bytes
    status, content_type, _ = await _deliver(deps, body, headers)
    assert (status, content_type) == (413, PROBLEM_CONTENT_TYPE)
    assert deps.inbox.entries == []


async def test_bad_signature_is_refused_recorded_and_signals_nothing():
    deps = make_deps()  # its Temporal client fails the test if touched
    body, headers = signed([_event(payment_id="pay_" + "a" * 26)])
    forged = body.replace(b"charge.succeeded", b"charge.refunded")
    status, content_type, answer = await _deliver(deps, forged, headers)
    assert (status, content_type) == (400, PROBLEM_CONTENT_TYPE)
    assert b"signature mismatch" not in answer  # which check failed is not a forger's business
    [entry] = deps.inbox.entries
    assert (entry.verified, entry.outcome, entry.payment_id) == (False, WebhookOutcome.REJECTED, None)
    assert entry.event_id.startswith("unverified:")


async def test_event_without_a_payment_of_ours_is_recorded_and_acknowledged():
    deps = make_deps()
    body, headers = signed([_event(provider_payment_id="pi_unknown")])
    status, content_type, answer = await _deliver(deps, body, headers)
    assert (status, content_type, answer) == (200, "application/json", b'{"code":"SUCCESS"}')
    [entry] = deps.inbox.entries
    assert (entry.verified, entry.outcome, entry.event_type) == (
        True,
        WebhookOutcome.UNKNOWN_PAYMENT,
        "charge.succeeded",
    )


class _Unavailable:
    def get_workflow_handle(self, workflow_id: str):
        return self

    async def signal(self, *args, **kwargs):
        raise RPCError("unavailable", RPCStatusCode.UNAVAILABLE, b"")


async def test_temporal_outage_answers_503_so_the_provider_retries():
    deps = make_deps(client=_Unavailable())
    body, headers = signed([_event(payment_id="pay_" + "a" * 26)])
    status, content_type, _ = await _deliver(deps, body, headers)
    assert (status, content_type) == (503, PROBLEM_CONTENT_TYPE)
    # Recorded only once Temporal takes it: the retry's record must not be shadowed by this one.
    assert deps.inbox.entries == []


async def test_event_for_a_payment_without_workflow_is_unknown_payment(temporal_env, unique):
    deps = make_deps(client=temporal_env.client)
    body, headers = signed([_event(payment_id=f"pay_{unique}")])
    status, _, _ = await _deliver(deps, body, headers)
    assert status == 200
    assert [(e.outcome, e.payment_id) for e in deps.inbox.entries] == [
        (WebhookOutcome.UNKNOWN_PAYMENT, f"pay_{unique}")
    ]


async def _signalled_event_ids(handle) -> list[str]:
    ids = []
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            attrs = event.workflow_execution_signaled_event_attributes
            assert attrs.signal_name == "gateway_event"
            ids.append(attrs.input.payloads[0].data.decode())
    return ids


@pytest.mark.parametrize("by_provider_ref", [False, True])
async def test_events_are_signalled_and_duplicates_signalled_again(
    temporal_env, task_queue, unique, by_provider_ref
):
    # No worker: the signals wait in the workflow's history, which is all the receiver is responsible for.
    payment_id = f"pay_{unique}"
    handle = await temporal_env.client.start_workflow(
        PaymentWorkflow.run, payment_input(payment_id), id=workflow_id(payment_id), task_queue=task_queue
    )
    try:
        store = FakeStore(provider_refs={("mock", "pi_123"): payment_id})
        deps = make_deps(client=temporal_env.client, store=store)
        ref = {"provider_payment_id": "pi_123"} if by_provider_ref else {"payment_id": payment_id}
        body, headers = signed([_event("evt_1", **ref), _event("evt_2", **ref)])
        assert (await _deliver(deps, body, headers))[0] == 200
        assert (await _deliver(deps, body, headers))[0] == 200  # the provider delivered it twice
        signalled = await _signalled_event_ids(handle)
        assert len(signalled) == 4
        assert ['"evt_1"' in s for s in signalled] == [True, False, True, False]
        assert [(e.event_id, e.outcome, e.payment_id) for e in deps.inbox.entries] == [
            ("evt_1", WebhookOutcome.SIGNALLED, payment_id),
            ("evt_2", WebhookOutcome.SIGNALLED, payment_id),
        ] * 2
    finally:
        await handle.terminate()


async def test_signalled_events_carry_a_proof_for_their_payment(temporal_env, task_queue, unique):
    """The receiver proves to the workflow that it verified each event (issue #17 item 1): the
    proof checks for the payment it was sent to, and for no other."""
    payment_id = f"pay_{unique}"
    handle = await temporal_env.client.start_workflow(
        PaymentWorkflow.run, payment_input(payment_id), id=workflow_id(payment_id), task_queue=task_queue
    )
    try:
        deps = make_deps(client=temporal_env.client, event_keys=TEST_EVENT_KEYS)
        body, headers = signed([_event("evt_1", payment_id=payment_id)])
        assert (await _deliver(deps, body, headers))[0] == 200
        [payload] = await _signalled_event_ids(handle)
        event = GatewayEvent.model_validate_json(payload)
        assert event.proof is not None and event.proof.key_id == "test"
        assert TEST_EVENT_KEYS.check(event, payment_id) is ProofCheck.VERIFIED
        assert TEST_EVENT_KEYS.check(event, f"{payment_id}-other") is ProofCheck.INVALID
    finally:
        await handle.terminate()


async def test_a_flood_of_forged_bodies_is_counted_but_only_a_sample_is_recorded():
    """Issue #17 item 6: every rejection counts in the metrics; the inbox keeps a bounded sample."""
    deps = make_deps(serve_metrics=True, limits={"rejected_webhook_samples_per_minute": 3})
    async with serve(deps) as base, aiohttp.ClientSession() as http:
        for i in range(20):
            async with http.post(f"{base}/webhooks/mock", data=b'{"forged": %d}' % i) as resp:
                assert resp.status == 400
        async with http.get(f"{base}/metrics") as resp:
            metrics = await resp.text()
    assert 'durapay_webhooks_total{gateway="mock",outcome="rejected"} 20.0' in metrics
    assert [e.outcome for e in deps.inbox.entries] == [WebhookOutcome.REJECTED] * 3


async def test_a_rejection_is_answered_in_the_providers_own_format_when_it_has_one():
    """Issue #17 item 11: WeChat Pay reads a JSON FAIL, AliPay the word `fail`; the receiver answers
    those instead of its problem document (and still records the rejection)."""
    wechat = (400, b'{"code":"FAIL","message":"verification failed"}', "application/json")
    deps = make_deps(webhooks=FakeWebhooks("mock", rejection=wechat))
    body, headers = signed([_event()])
    status, content_type, answer = await _deliver(deps, body.replace(b"evt_1", b"evt_2"), headers)
    assert (status, content_type, answer) == (400, "application/json", wechat[1])
    assert [e.outcome for e in deps.inbox.entries] == [WebhookOutcome.REJECTED]


async def test_an_accepted_delivery_is_logged_once_by_the_receiver_a_refused_one_also_by_the_access_log(
    caplog,
):
    deps = make_deps()
    accepted, accepted_headers = signed([_event(provider_payment_id="pi_unknown")])
    refused, refused_headers = signed([_event(provider_payment_id="pi_unknown")])
    with caplog.at_level(logging.INFO):
        async with serve(deps) as base, aiohttp.ClientSession() as http:
            async with http.post(f"{base}/webhooks/mock", data=accepted, headers=accepted_headers) as resp:
                assert resp.status == 200
            forged = refused.replace(b"charge.succeeded", b"charge.refunded")
            async with http.post(f"{base}/webhooks/mock", data=forged, headers=refused_headers) as resp:
                assert resp.status == 400
            # The access line is written after the response: wait for the refused one's.
            async with asyncio.timeout(10):
                while not any(r.name == "aiohttp.access" for r in caplog.records):  # noqa: ASYNC110 (polls the captured records)
                    await asyncio.sleep(0.01)
    access = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
    assert len(access) == 1 and "POST /webhooks/mock 400" in access[0]
    receiver = [r.getMessage() for r in caplog.records if r.name == "durapay.webhooks"]
    assert any("evt_1" in line and "unknown_payment" in line for line in receiver)
