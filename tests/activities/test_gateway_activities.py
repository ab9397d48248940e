"""Gateway activities: dispatch by gateway id, and the one mapping of gateway errors to Temporal
retry behaviour, first in an ActivityEnvironment, then through a real dev server's retries."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import timedelta

import pytest
from pydantic import SecretStr
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowFailureError
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.testing import ActivityEnvironment
from temporalio.worker import Worker

from activities.gateway_activities import GatewayActivities, safe_message, to_application_error
from activities.gateways.base import (
    Gateway,
    GatewayConfigError,
    GatewayError,
    GatewayInvalidRequest,
    GatewayOutcomeUnknown,
    GatewayRateLimited,
    GatewayTransientError,
    NotSupported,
)
from activities.gateways.mock.adapter import MockGateway
from activities.gateways.mock.settings import MockSettings
from activities.gateways.registry import GatewayRegistry
from workflows import activity_names as names
from workflows.domain import CardMethod, GatewayProfile, RefundStatus
from workflows.gateway_io import (
    AuthorizeCall,
    CancelCall,
    CaptureCall,
    GatewayEvent,
    GatewayPaymentStatus,
    GatewayResult,
    LookupCall,
    RefundCall,
    RefundLookupCall,
    RefundResult,
)
from workflows.money import Amount

CARD = "4242424242424242"


class RaisingGateway(Gateway):
    """A provider whose every call raises the error it is given."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    @property
    def profile(self) -> GatewayProfile:
        return GatewayProfile(id="raising", name="Raising", methods=["card"], currencies=["USD"])

    async def authorize(self, call: AuthorizeCall) -> GatewayResult:
        raise self.error

    async def capture(self, call: CaptureCall) -> GatewayResult:
        raise self.error

    async def cancel(self, call: CancelCall) -> GatewayResult:
        raise self.error

    async def lookup(self, call: LookupCall) -> GatewayResult:
        raise self.error

    async def refund(self, call: RefundCall) -> RefundResult:
        raise self.error

    async def lookup_refund(self, call: RefundLookupCall) -> RefundResult:
        raise self.error

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[GatewayEvent]:
        raise self.error


class StripeStyleDecline(GatewayInvalidRequest):
    """An adapter's own subclass: reported under the base name the workflow knows."""


def authorize_call(unique: str, token: str = "tok_visa", gateway: str = "mock") -> AuthorizeCall:
    return AuthorizeCall(
        gateway=gateway,
        payment_id=f"pay_{unique}",
        order_id=f"ord_{unique}",
        amount=Amount(minor=2500, currency="EUR"),
        method=CardMethod(token=token),
        capture=True,
        idempotency_key=f"payment-pay_{unique}:authorize",
    )


@pytest.fixture
def mock() -> MockGateway:
    return MockGateway(MockSettings(retry_after_seconds=0.4, webhook_secret=SecretStr("whsec_x")))


@pytest.fixture
def activities(mock: MockGateway) -> GatewayActivities:
    return GatewayActivities(GatewayRegistry([mock]))


async def raised(activities: GatewayActivities, call: AuthorizeCall) -> ApplicationError:
    with pytest.raises(ApplicationError) as err:
        await ActivityEnvironment().run(activities.authorize, call)
    return err.value


# -- dispatch ----------------------------------------------------------------------------------


def test_definitions_are_registered_under_the_contract_names(activities: GatewayActivities) -> None:
    defined = {fn.__temporal_activity_definition.name for fn in activities.definitions()}  # type: ignore[attr-defined]
    assert defined == {
        names.AUTHORIZE,
        names.CAPTURE,
        names.CANCEL,
        names.LOOKUP,
        names.REFUND,
        names.LOOKUP_REFUND,
    }


async def test_every_activity_reaches_the_gateway(activities: GatewayActivities, unique: str) -> None:
    env = ActivityEnvironment()
    auth = authorize_call(unique).model_copy(update={"capture": False})
    held = await env.run(activities.authorize, auth)
    assert held.status == GatewayPaymentStatus.AUTHORIZED
    common = {
        "gateway": "mock",
        "payment_id": auth.payment_id,
        "provider_payment_id": held.provider_payment_id,
    }
    captured = await env.run(
        activities.capture,
        CaptureCall(
            **common, amount=auth.amount.with_minor(2000), idempotency_key=f"{auth.payment_id}:capture"
        ),
    )
    assert captured.captured_minor == 2000
    lookup = LookupCall(gateway="mock", payment_id=auth.payment_id, amount=auth.amount)
    looked = await env.run(activities.lookup, lookup)
    assert looked == captured
    refund = await env.run(
        activities.refund,
        RefundCall(
            **common, refund_id="ref_1", amount=auth.amount.with_minor(500), idempotency_key="k:refund"
        ),
    )
    assert refund.status == RefundStatus.SUCCEEDED
    assert await env.run(activities.lookup_refund, RefundLookupCall(**common, refund_id="ref_1")) == refund
    other = authorize_call(unique + "c").model_copy(update={"capture": False})
    await env.run(activities.authorize, other)
    cancelled = await env.run(
        activities.cancel,
        CancelCall(
            gateway="mock",
            payment_id=other.payment_id,
            provider_payment_id=None,
            reason="abandoned",
            idempotency_key=f"{other.payment_id}:cancel",
        ),
    )
    assert cancelled.status == GatewayPaymentStatus.CANCELLED


async def test_a_decline_is_a_result_not_an_error(activities: GatewayActivities, unique: str) -> None:
    result = await ActivityEnvironment().run(
        activities.authorize, authorize_call(unique, "tok_chargeDeclined")
    )
    assert result.status == GatewayPaymentStatus.DECLINED


# -- error mapping -------------------------------------------------------------------------------


async def test_invalid_request_is_final(activities: GatewayActivities, unique: str) -> None:
    error = await raised(activities, authorize_call(unique, "tok_nonsense"))
    assert (error.type, error.non_retryable) == ("GatewayInvalidRequest", True)
    assert error.details == ("resource_missing",)
    assert error.__cause__ is None  # nothing but the vetted message reaches the history


async def test_unknown_gateway_is_a_final_config_error(activities: GatewayActivities, unique: str) -> None:
    error = await raised(activities, authorize_call(unique, gateway="stripe"))
    assert (error.type, error.non_retryable) == ("GatewayConfigError", True)
    assert "not enabled" in error.message


async def test_transient_is_retried(activities: GatewayActivities, unique: str) -> None:
    error = await raised(activities, authorize_call(unique, "tok_transient_1"))
    assert (error.type, error.non_retryable, error.next_retry_delay) == ("GatewayTransientError", False, None)


async def test_outcome_unknown_is_retried_and_the_retry_finds_the_charge(
    activities: GatewayActivities, unique: str
) -> None:
    call = authorize_call(unique, "tok_timeout")
    error = await raised(activities, call)
    assert (error.type, error.non_retryable) == ("GatewayOutcomeUnknown", False)
    retried = await ActivityEnvironment().run(activities.authorize, call)
    assert retried.status == GatewayPaymentStatus.SUCCEEDED


async def test_rate_limit_sets_the_next_retry_delay(activities: GatewayActivities, unique: str) -> None:
    error = await raised(activities, authorize_call(unique, "tok_ratelimited_1"))
    assert (error.type, error.non_retryable) == ("GatewayRateLimited", False)
    assert error.next_retry_delay == timedelta(seconds=0.4)


@pytest.mark.parametrize(
    ("exc", "expected_type", "non_retryable"),
    [
        (NotSupported("raising does not keep customers"), "NotSupported", True),
        (GatewayConfigError("bad key"), "GatewayConfigError", True),
        (StripeStyleDecline("no such token", code="resource_missing"), "GatewayInvalidRequest", True),
        (GatewayOutcomeUnknown("read timeout"), "GatewayOutcomeUnknown", False),
        (GatewayRateLimited("slow down"), "GatewayRateLimited", False),
        (GatewayTransientError("down"), "GatewayTransientError", False),
        (GatewayError("something else"), "GatewayError", False),
    ],
)
async def test_mapping_table(unique: str, exc: GatewayError, expected_type: str, non_retryable: bool) -> None:
    activities = GatewayActivities(GatewayRegistry([RaisingGateway(exc)]))
    error = await raised(activities, authorize_call(unique, gateway="raising"))
    assert (error.type, error.non_retryable) == (expected_type, non_retryable)
    assert error.details == (exc.code,)
    assert error.next_retry_delay is None  # a rate limit without Retry-After: the policy's backoff


async def test_other_exceptions_propagate_unchanged(unique: str) -> None:
    # A bug is not a gateway answer: Temporal retries it as any failed activity.
    activities = GatewayActivities(GatewayRegistry([RaisingGateway(KeyError("oops"))]))
    with pytest.raises(KeyError):
        await ActivityEnvironment().run(
            activities.refund,
            RefundCall(
                gateway="raising",
                payment_id="p",
                provider_payment_id=None,
                refund_id="r",
                amount=Amount(minor=1, currency="USD"),
                idempotency_key="k",
            ),
        )


async def test_card_numbers_are_masked_and_messages_bounded(unique: str) -> None:
    leaky = GatewayInvalidRequest(
        f"card {CARD} / 4242 4242 4242 4242 / 4242-4242-4242-4242 rejected " + "x" * 500
    )
    activities = GatewayActivities(GatewayRegistry([RaisingGateway(leaky)]))
    error = await raised(activities, authorize_call(unique, gateway="raising"))
    assert "4242" not in error.message and error.message.count("[redacted]") == 3
    assert len(error.message) <= 300


def test_long_provider_ids_are_not_mistaken_for_cards() -> None:
    # WeChat transaction ids are 28 digits; short numbers are not card-shaped either.
    message = "transaction 4200001234202011111234567890 amount 1999"
    assert safe_message(message) == message


def test_rate_limit_delay_is_exact() -> None:
    error = to_application_error(GatewayRateLimited("slow", retry_after=2.5))
    assert error.next_retry_delay == timedelta(seconds=2.5)


# -- through a real server's retries -------------------------------------------------------------


@workflow.defn(sandboxed=False)
class AuthorizeProbe:
    """Calls the authorize activity by name, like PaymentWorkflow does."""

    @workflow.run
    async def run(self, call: AuthorizeCall) -> GatewayResult:
        return await workflow.execute_activity(
            names.AUTHORIZE,
            call,
            result_type=GatewayResult,
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=50), maximum_attempts=4),
        )


async def run_probe(
    temporal_env, task_queue: str, activities: GatewayActivities, call: AuthorizeCall
) -> tuple[GatewayResult | WorkflowFailureError, int]:
    """The workflow's result (or failure) and the attempt the activity finished on."""
    async with Worker(
        temporal_env.client,
        task_queue=task_queue,
        workflows=[AuthorizeProbe],
        activities=activities.definitions(),
    ):
        handle = await temporal_env.client.start_workflow(
            AuthorizeProbe.run, call, id=f"probe-{call.payment_id}", task_queue=task_queue
        )
        try:
            outcome: GatewayResult | WorkflowFailureError = await handle.result()
        except WorkflowFailureError as exc:
            outcome = exc
        history = await handle.fetch_history()
    started = [
        event for event in history.events if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
    ]
    return outcome, started[-1].activity_task_started_event_attributes.attempt


async def test_dropped_response_is_retried_once_and_charges_once(
    temporal_env, task_queue: str, activities: GatewayActivities, mock: MockGateway, unique: str
) -> None:
    call = authorize_call(unique, "tok_timeout")
    result, attempts = await run_probe(temporal_env, task_queue, activities, call)
    assert isinstance(result, GatewayResult)
    assert (result.status, attempts) == (GatewayPaymentStatus.SUCCEEDED, 2)
    assert (
        result.provider_payment_id
        == (
            await mock.lookup(LookupCall(gateway="mock", payment_id=call.payment_id, amount=call.amount))
        ).provider_payment_id
    )


async def test_rate_limit_waits_as_asked(
    temporal_env, task_queue: str, activities: GatewayActivities, unique: str
) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    call = authorize_call(unique, "tok_ratelimited_1")
    result, attempts = await run_probe(temporal_env, task_queue, activities, call)
    assert isinstance(result, GatewayResult)
    assert (result.status, attempts) == (GatewayPaymentStatus.SUCCEEDED, 2)
    assert loop.time() - started >= 0.4  # not the policy's 50 ms


async def test_refusal_is_not_retried(
    temporal_env, task_queue: str, activities: GatewayActivities, unique: str
) -> None:
    failure, attempts = await run_probe(
        temporal_env, task_queue, activities, authorize_call(unique, "tok_bogus")
    )
    assert isinstance(failure, WorkflowFailureError) and attempts == 1
    activity_error = failure.cause
    assert isinstance(activity_error, ActivityError)
    cause = activity_error.cause
    assert isinstance(cause, ApplicationError)
    assert (cause.type, cause.non_retryable, cause.details) == (
        "GatewayInvalidRequest",
        True,
        ("resource_missing",),
    )


class SlowGateway(RaisingGateway):
    """Answers authorize after a pause, like a provider that thinks for a while."""

    def __init__(self, pause_s: float) -> None:
        super().__init__(RuntimeError("not called"))
        self.pause_s = pause_s

    async def authorize(self, call: AuthorizeCall) -> GatewayResult:
        await asyncio.sleep(self.pause_s)
        return GatewayResult(status=GatewayPaymentStatus.SUCCEEDED, captured_minor=call.amount.minor)


async def test_a_slow_call_heartbeats_while_it_waits(unique: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("activities.gateway_activities.HEARTBEAT_EVERY_S", 0.05)
    slow = SlowGateway(pause_s=0.5)
    env = ActivityEnvironment()
    beats: list[tuple] = []
    env.on_heartbeat = lambda *details: beats.append(details)
    activities = GatewayActivities(GatewayRegistry([slow]))
    result = await env.run(activities.authorize, authorize_call(unique, gateway="raising"))
    assert result.status is GatewayPaymentStatus.SUCCEEDED
    # A worker that dies mid-call stops these: the workflow's heartbeat timeout then notices.
    assert len(beats) >= 5
