"""The provider webhook receiver: `POST /webhooks/{gateway}`.

Thin on purpose: verify the raw bytes, turn each event into a signal to its payment's workflow, and
answer the provider's acknowledgement only once Temporal has accepted every signal. The workflow
applies each event id once, so duplicates are simply signalled again: cheap, and the right thing
when an earlier delivery failed half way. A Temporal outage answers 503 so the provider retries.
"""

from __future__ import annotations

import hashlib
import logging

from aiohttp import web
from temporalio.service import RPCError

from api.payments import DEPS
from api.ports import ApiDeps, WebhookRejected
from api.problems import Problem, temporal_unavailable
from workflows.client import PaymentNotRunning
from workflows.gateway_io import GatewayEvent
from workflows.webhook_inbox import WebhookOutcome

log = logging.getLogger("durapay.webhooks")


async def _our_payment_id(deps: ApiDeps, gateway: str, event: GatewayEvent) -> str | None:
    if event.payment_id:
        return event.payment_id
    if event.provider_payment_id:
        return await deps.provider_refs.payment_id_for_provider_ref(gateway, event.provider_payment_id)
    return None


async def _signal(deps: ApiDeps, payment_id: str, event: GatewayEvent) -> WebhookOutcome:
    if deps.event_keys is not None:
        # Verified above: say so in a way the workflow can check (anyone can send it the signal).
        event = deps.event_keys.prove(event, payment_id)
    try:
        await deps.workflows.gateway_event(payment_id, event)
    except PaymentNotRunning:  # never started, or closed after its window: reopened if stored
        return await _signal_closed(deps, payment_id, event)
    except RPCError as exc:
        # Nothing recorded: the provider's retry must find the inbox as if this never happened.
        log.warning("signal %s to %s failed: %s; answering 503", event.event_id, payment_id, exc.status.name)
        raise temporal_unavailable() from None
    return WebhookOutcome.SIGNALLED


async def _signal_closed(deps: ApiDeps, payment_id: str, event: GatewayEvent) -> WebhookOutcome:
    if deps.reopener is None:
        return WebhookOutcome.UNKNOWN_PAYMENT
    try:
        reopened = await deps.reopener.signal(payment_id, event)
    except RPCError as exc:
        log.warning(
            "reopening %s for %s failed: %s; answering 503", payment_id, event.event_id, exc.status.name
        )
        raise temporal_unavailable() from None
    return WebhookOutcome.SIGNALLED if reopened else WebhookOutcome.UNKNOWN_PAYMENT


async def receive(request: web.Request) -> web.Response:
    deps = request.config_dict[DEPS]
    gateway = request.match_info["gateway"]
    if not deps.webhooks.known(gateway):
        raise Problem(404, "unknown_gateway", "Unknown gateway", f"No webhook endpoint for {gateway!r}.")
    if request.content_length is not None and request.content_length > deps.limits.max_body_bytes:
        raise Problem(
            413, "payload_too_large", "Request body too large", f"At most {deps.limits.max_body_bytes} bytes."
        )
    body = await request.read()

    try:
        # On the loop: a signature check takes microseconds; a provider that verifies over HTTP
        # (PayPal) awaits its answer without blocking the loop (Gateway.receive_webhook).
        events = await deps.webhooks.parse(gateway, request.headers, body)
    except WebhookRejected as exc:
        # Recorded under a digest of the body: there is no trustworthy event id in a forged payload.
        await deps.inbox.record(
            gateway=gateway,
            event_id="unverified:" + hashlib.sha256(body).hexdigest()[:32],
            payment_id=None,
            verified=False,
            outcome=WebhookOutcome.REJECTED,
            event_type="unverified",
        )
        log.warning("rejected %s webhook: %s", gateway, exc)
        answer = deps.webhooks.reject(gateway)
        if answer is not None:  # the provider's own rejection format (WeChat Pay, AliPay)
            status, reject_body, content_type = answer
            return web.Response(status=status, body=reject_body, headers={"Content-Type": content_type})
        raise Problem(
            400,
            "webhook_signature_invalid",
            "Webhook verification failed",
            "The notification could not be verified.",
        ) from None

    for event in events:
        payment_id = await _our_payment_id(deps, gateway, event)
        outcome = await _signal(deps, payment_id, event) if payment_id else WebhookOutcome.UNKNOWN_PAYMENT
        first_time = await deps.inbox.record(
            gateway=gateway,
            event_id=event.event_id,
            payment_id=payment_id,
            verified=True,
            outcome=outcome,
            event_type=event.provider_type,
        )
        log.info(
            "%s webhook %s (%s) for %s: %s%s",
            gateway,
            event.event_id,
            event.provider_type,
            payment_id,
            outcome.value,
            "" if first_time else " (again)",
        )

    status, ack_body, content_type = deps.webhooks.ack(gateway)
    return web.Response(status=status, body=ack_body, headers={"Content-Type": content_type})


async def challenge(request: web.Request) -> web.Response:
    """`GET /webhooks/{gateway}`: a provider checking the endpoint before it sends to it
    (Braintree's `?bt_challenge=`), answered by the gateway; nothing is recorded."""
    deps = request.config_dict[DEPS]
    gateway = request.match_info["gateway"]
    if not deps.webhooks.known(gateway):
        raise Problem(404, "unknown_gateway", "Unknown gateway", f"No webhook endpoint for {gateway!r}.")
    try:
        answer = deps.webhooks.challenge(gateway, request.query)
    except WebhookRejected:
        raise Problem(
            400, "webhook_challenge_invalid", "Invalid endpoint check", "Malformed challenge."
        ) from None
    if answer is None:  # this provider checks no endpoint by GET: as if the route were POST only
        raise web.HTTPMethodNotAllowed("GET", ["POST"])
    status, body, content_type = answer
    return web.Response(status=status, body=body, headers={"Content-Type": content_type})


def routes() -> web.RouteTableDef:
    table = web.RouteTableDef()
    table.post("/{gateway}")(receive)
    table.get("/{gateway}", allow_head=False)(challenge)
    return table
