"""Gateway call metrics, counted where gateway errors are mapped (activities/gateway_activities.py) and
scraped through real HTTP: one outcome per kind of answer, latencies, and nothing from the call in the
labels."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from prometheus_client import start_http_server
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.gateway_activities import GatewayActivities, result_outcome
from activities.gateways.mock.adapter import MockGateway
from activities.gateways.mock.settings import MockSettings
from activities.gateways.registry import GatewayRegistry
from activities.metrics import GatewayMetrics, GatewayOutcome
from workflows.domain import CardMethod, RefundStatus
from workflows.gateway_io import AuthorizeCall, RefundResult
from workflows.money import Amount


@pytest.fixture
def mock() -> MockGateway:
    return MockGateway(MockSettings(retry_after_seconds=0.01, webhook_secret=SecretStr("whsec_x")))


@pytest_asyncio.fixture
async def served() -> AsyncIterator[tuple[GatewayMetrics, str]]:
    """Metrics and the URL they are served at, as workers/ serves them (127.0.0.1, ephemeral port)."""
    metrics = GatewayMetrics()
    server, thread = start_http_server(0, "127.0.0.1", registry=metrics.registry)
    try:
        yield metrics, f"http://127.0.0.1:{server.server_port}/metrics"
    finally:
        await asyncio.to_thread(server.shutdown)  # waits out the server's poll interval
        server.server_close()
        thread.join()


def call(unique: str, token: str, gateway: str = "mock") -> AuthorizeCall:
    return AuthorizeCall(
        gateway=gateway,
        payment_id=f"pay_{unique}",
        order_id=f"ord_{unique}",
        amount=Amount(minor=2500, currency="EUR"),
        method=CardMethod(token=token),
        capture=True,
        idempotency_key=f"payment-pay_{unique}:authorize",
    )


async def scrape(url: str) -> dict[tuple[str, frozenset], float]:
    async with httpx.AsyncClient() as http:
        response = await http.get(url)
    assert response.status_code == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


async def test_every_outcome_is_counted_with_its_latency(
    served: tuple[GatewayMetrics, str], mock: MockGateway, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    metrics, url = served
    activities = GatewayActivities(GatewayRegistry([mock]), metrics)
    env = ActivityEnvironment()

    assert (await env.run(activities.authorize, call(f"{unique}a", "tok_visa"))).status == "succeeded"
    assert (
        await env.run(activities.authorize, call(f"{unique}b", "tok_chargeDeclined"))
    ).status == "declined"
    expected_types = [
        (call(f"{unique}c", "tok_transient_1"), "GatewayTransientError"),
        (call(f"{unique}d", "tok_ratelimited_1"), "GatewayRateLimited"),
        (call(f"{unique}e", "tok_timeout"), "GatewayOutcomeUnknown"),
        (call(f"{unique}f", "tok_visa", gateway="paypal"), "GatewayConfigError"),  # not enabled: final
    ]
    for activity_call, error_type in expected_types:
        with pytest.raises(ApplicationError) as raised:
            await env.run(activities.authorize, activity_call)
        assert raised.value.type == error_type

    async def bug(_call: AuthorizeCall) -> None:
        raise KeyError("a bug, not an answer")

    monkeypatch.setattr(mock, "authorize", bug)
    with pytest.raises(KeyError):
        await env.run(activities.authorize, call(f"{unique}g", "tok_visa"))

    samples = await scrape(url)

    def calls(outcome: str, gateway: str = "mock") -> float:
        labels = frozenset({"gateway": gateway, "operation": "authorize", "outcome": outcome}.items())
        return samples.get(("durapay_gateway_calls_total", labels), 0.0)

    assert (calls("ok"), calls("declined"), calls("transient"), calls("unknown"), calls("error")) == (
        1,
        1,
        2,
        1,
        1,
    )
    assert calls("invalid", gateway="paypal") == 1
    duration = frozenset({"gateway": "mock", "operation": "authorize"}.items())
    assert samples[("durapay_gateway_call_duration_seconds_count", duration)] == 6
    # Bounded labels: neither the payment, the order, the key, the token nor the amount is one. Only
    # label values are searched: sample values (latencies) can print any digits.
    label_values = {value for _name, labels in samples for _label, value in labels}
    assert not [value for value in label_values if unique in value or "tok_" in value or "2500" in value]


def test_a_failed_refund_is_a_decline() -> None:
    failed = RefundResult(refund_id="re_1", status=RefundStatus.FAILED)
    assert result_outcome(failed) is GatewayOutcome.DECLINED
    assert result_outcome(failed.model_copy(update={"status": RefundStatus.PENDING})) is GatewayOutcome.OK


async def test_metrics_are_optional(mock: MockGateway, unique: str) -> None:
    # Other workers (bench, tests) build the activities without metrics.
    result = await ActivityEnvironment().run(
        GatewayActivities(GatewayRegistry([mock])).authorize, call(unique, "tok_visa")
    )
    assert result.status == "succeeded"


def test_each_instance_counts_on_its_own() -> None:
    first, second = GatewayMetrics(), GatewayMetrics()
    first.observe("mock", "capture", GatewayOutcome.OK, 0.2)
    labels = {"gateway": "mock", "operation": "capture", "outcome": "ok"}
    assert first.registry.get_sample_value("durapay_gateway_calls_total", labels) == 1
    assert second.registry.get_sample_value("durapay_gateway_calls_total", labels) is None
