"""The adapters from activities' objects to the API's ports, and the ApiDeps built from config."""

from __future__ import annotations

import pytest
from temporalio.testing import WorkflowEnvironment

from activities.gateways.mock.adapter import MockWebhook
from api.ports import WebhookRejected
from workers.api_server import RegistryPorts, StorePorts, api_deps
from workers.config import load_config
from workers.worker import Runtime
from workflows.webhook_inbox import WebhookOutcome

SECRET = "whsec_adapter_test_secret"


def config_for(sqlite_url: str, **payment: object):
    overrides = {
        "payment": {"mock": {"enabled": True, "webhook_secret": SECRET}, **payment},
        "api": {
            "api_keys": {"m1": "k" * 20},
            "rate_limit_per_minute": 7,
            "order_attempts_per_hour": 2,
            "customer_attempts_per_hour": 3,
            "ip_attempts_per_hour": 4,
            "decide_timeout_seconds": 3,
        },
        "database": {"url": sqlite_url},
    }
    return load_config(environ={}, use_default_file=False, overrides=overrides)


@pytest.fixture
async def runtime(sqlite_url: str):
    async with await Runtime.open(config_for(sqlite_url), migrate_database=True) as opened:
        yield opened


async def test_registry_ports(runtime: Runtime) -> None:
    ports = RegistryPorts(runtime.registry)
    assert ports.known("mock") and not ports.known("stripe")
    assert ports.get("mock").id == "mock" and ports.get("stripe") is None
    assert ports.ack("mock") == (200, b"", "text/plain")
    with pytest.raises(WebhookRejected):
        await ports.parse("mock", {"Mock-Signature": "t=1,v1=00"}, b"{}")
    mock = runtime.registry.get("mock")
    headers, body = mock.build_webhook(
        MockWebhook(
            type="payment.succeeded",
            payment_id="pay_x",
            provider_payment_id="pi_x",
            amount_minor=100,
            currency="USD",
        )
    )
    [event] = await ports.parse("mock", headers, body)
    assert event.payment_id == "pay_x"


async def test_store_ports(runtime: Runtime) -> None:
    ports = StorePorts(runtime.store)
    assert await ports.get("pay_missing") is None
    assert await ports.page("default", order_id="order_missing") == ([], False)
    assert await ports.payment_id_for_provider_ref("mock", "pi_missing") is None
    first = await ports.record(
        gateway="mock",
        event_id="evt_1",
        payment_id=None,
        verified=True,
        outcome=WebhookOutcome.UNKNOWN_PAYMENT,
        event_type="payment.succeeded",
    )
    again = await ports.record(
        gateway="mock",
        event_id="evt_1",
        payment_id=None,
        verified=True,
        outcome=WebhookOutcome.UNKNOWN_PAYMENT,
        event_type="payment.succeeded",
    )
    assert (first, again) == (True, False)
    assert await runtime.store.webhook_outcome("mock", "evt_1") is WebhookOutcome.UNKNOWN_PAYMENT
    for outcome in (WebhookOutcome.SIGNALLED, WebhookOutcome.REJECTED):
        assert await ports.record(
            gateway="mock",
            event_id=f"evt_{outcome.value}",
            payment_id="pay_y",
            verified=outcome is WebhookOutcome.SIGNALLED,
            outcome=outcome,
            event_type="x",
        )
    assert await runtime.store.webhook_outcome("mock", "evt_signalled") is WebhookOutcome.SIGNALLED
    assert await ports.hit("k", 60, 1) == (True, 0)
    allowed, retry_after = await ports.hit("k", 60, 1)
    assert not allowed and retry_after > 0


async def test_api_deps_from_config(temporal_env: WorkflowEnvironment, sqlite_url: str) -> None:
    config = config_for(sqlite_url, tds_threshold="50", supported_currencies=["EUR", "USD"])
    async with await Runtime.open(config, migrate_database=True) as runtime:
        deps = api_deps(temporal_env.client, config, runtime, task_queue="q-x")
    assert deps.task_queue == "q-x"
    assert deps.api_keys["m1"].get_secret_value() == "k" * 20
    assert deps.default_gateway == "mock" and deps.supported_currencies == {"EUR", "USD"}
    # The 3-D Secure threshold is read in each payment's own currency.
    assert deps.settings_for("USD").tds_threshold_minor == 5000
    assert deps.settings_for("JPY").tds_threshold_minor == 50
    assert deps.limits.api_rate_limit.limit == 7 and deps.limits.decide_timeout_seconds == 3
    assert (
        deps.limits.order_attempt_limit.limit,
        deps.limits.customer_attempt_limit.limit,
        deps.limits.ip_attempt_limit.limit,
    ) == (2, 3, 4)
    assert deps.limits.order_attempt_limit.window_s == 3600
    assert deps.rate_limiter is not None
