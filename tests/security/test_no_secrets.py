"""No configured secret and no card number leaves its place: with every gateway plugin configured
(the mock, and every other one on its fake) and a database URL holding a password, payments run on
each gateway (the mock's here, the others' demo flows), webhooks are verified with each gateway's
secret, refunds are made, a card number is sent; then the logs, every table, every Temporal history
(payloads, search attributes, details) and `durapay config check` are searched for every secret
field of every plugin's settings.

Private keys are searched line by line (64 base64 characters each): a key written out in any
wrapping or escaping still shows its lines.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import make_url

from activities.gateways.plugin import PushesWebhooks
from activities.gateways.plugins import PLUGINS
from api.auth import Scope
from tests.security.conftest import JsonLog
from tests.security.leaks import database_text, found, temporal_bytes, variants
from tests.stack import API_KEY_ID, Stack, running_stack
from workers.cli import config_check
from workers.demo import Demo
from workers.fake_providers.local import FakeProviders

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")

CARD = "4111 1111 1111 1111"  # a published test number


@pytest_asyncio.fixture(scope="module")
async def fakes() -> AsyncIterator[FakeProviders]:
    async with AsyncExitStack() as running:
        yield FakeProviders(
            {
                plugin.id: await running.enter_async_context(plugin.start_fake())
                for plugin in PLUGINS.values()
                if plugin.fake is not None
            }
        )


async def webhooks_delivered(fakes: FakeProviders) -> None:
    for fake in fakes.running.values():
        if isinstance(fake, PushesWebhooks):
            await fake.wait_for_webhooks()


@pytest.fixture(scope="module")
def db_password() -> str:
    return f"db-pass-{uuid.uuid4().hex}"


@pytest_asyncio.fixture(scope="module")
async def stack(temporal_env, pg_url, fakes: FakeProviders, db_password: str) -> AsyncIterator[Stack]:
    # The test server trusts local connections, so any password works; what matters is that the
    # URL carries one, as a production URL does.
    db_url = make_url(pg_url).set(password=db_password).render_as_string(hide_password=False)
    overrides = {
        "payment": fakes.sections(),
        "api": {"rate_limiting": True},
        # Every scope, as `durapay dev`'s key has: a demo flow takes operator steps (the bank
        # transfer's statement import).
        "api_key_scopes": {API_KEY_ID: [scope.value for scope in Scope]},
    }
    async with running_stack(
        temporal_env.client,
        task_queue=f"tq-no-secrets-{uuid.uuid4().hex[:8]}",
        db_url=db_url,
        config_overrides=overrides,
    ) as running:
        fakes.deliver_webhooks_to(running.webhook_url)
        yield running
        await webhooks_delivered(fakes)


def pem_lines(pem: str) -> set[str]:
    return {line.strip() for line in pem.splitlines() if line.strip() and not line.startswith("-----")}


def secret_values(section: dict[str, Any], field: str) -> set[str]:
    """The values of a settings secret field (dotted), as configured; a PEM key by its lines."""
    value: Any = section
    for part in field.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    values = value if isinstance(value, list) else [value]
    return {needle for one in values if one for needle in (pem_lines(one) if "-----BEGIN" in one else {one})}


def gateway_secrets(stack: Stack) -> dict[str, set[str]]:
    """Every secret field of every plugin, by `<gateway>.<field>`, as configured in the stack."""
    gateways = stack.config.payment.gateways
    return {
        f"{plugin.id}.{field}": values
        for plugin in PLUGINS.values()
        for field in plugin.secret_fields
        if (values := secret_values(gateways[plugin.id], field))
    }


def every_secret(stack: Stack, db_password: str) -> dict[str, set[str]]:
    return {
        "api key": {stack.api_key},
        **gateway_secrets(stack),
        "database password": {db_password},
        "card number": variants(CARD),
    }


async def eventually_status(
    http: httpx.AsyncClient, stack: Stack, payment_id: str, status: str
) -> dict | None:
    deadline = asyncio.get_running_loop().time() + 15
    while asyncio.get_running_loop().time() < deadline:
        view = (await http.get(f"/v1/payments/{payment_id}", headers=stack.headers())).json()
        if view["status"] == status:
            return view
        await asyncio.sleep(0.1)
    return None


def card_payment(unique: str, gateway: str, token: str) -> dict:
    return {
        "order_id": f"order-{unique}-{gateway}",
        "amount": "49.99",
        "currency": "USD",
        "gateway": gateway,
        "payment_method": {"type": "card", "token": token},
        "customer_id": f"cus-{unique}",
    }


async def test_no_secret_leaves_its_place(
    stack: Stack,
    fakes: FakeProviders,
    db_password: str,
    unique: str,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    json_log: JsonLog,
) -> None:
    caplog.set_level(logging.DEBUG)
    paid: dict[str, str] = {}
    async with stack.http() as http:

        async def post(path: str, body: dict | None, key: str) -> httpx.Response:
            return await http.post(path, json=body, headers=stack.headers(key))

        # mock: a sale, a refund, and its signed notification.
        created = await post("/v1/payments", card_payment(unique, "mock", "tok_visa"), f"{unique}-mock")
        assert created.status_code == 201, created.text
        paid["mock"] = created.json()["id"]
        mock = stack.gateway("mock")
        headers, body = mock.build_webhook(mock.webhook_for(paid["mock"], "payment.succeeded"))  # type: ignore[attr-defined]
        assert (await http.post("/webhooks/mock", content=body, headers=headers)).status_code == 200

        # Every other gateway: its demo flows on its fake (sales, the provider's signed notifications).
        demo = Demo(http, stack.api_key, webhook_url=stack.webhook_url)
        for gateway, fake in fakes.running.items():
            for flow in PLUGINS[gateway].load_demo_flows():
                payment = await flow.run(demo, fake)
                paid[f"{gateway}: {flow.name}"] = payment["id"]
        assert {name.split(":")[0] for name in paid} == set(PLUGINS)
        views = []
        for gateway, payment_id in paid.items():
            view = await eventually_status(http, stack, payment_id, "paid")
            assert view is not None, gateway
            views.append(view)
            refund = await post(
                f"/v1/payments/{payment_id}/refunds", {"amount": "1.00"}, f"{unique}-{payment_id}-r"
            )
            assert refund.status_code == 201, (gateway, refund.text)

        refused = await post(
            "/v1/payments",
            {**card_payment(unique, "mock", CARD), "order_id": f"o-{unique}"},
            f"{unique}-card",
        )
        assert (refused.status_code, refused.json()["code"]) == (422, "card_data_not_allowed")
        await webhooks_delivered(fakes)

    await asyncio.to_thread(config_check, stack.config)
    shown = capsys.readouterr().out
    secret_fields = list(gateway_secrets(stack))
    # every gateway with secret settings has them set (the bank transfer's settings are all public)
    assert {key.split(".")[0] for key in secret_fields} == {g for g, p in PLUGINS.items() if p.secret_fields}
    for key in secret_fields:
        assert any(
            line.startswith(f"payment.gateways.{key} = ") and "**********" in line
            for line in shown.splitlines()
        ), key
    assert 'api.api_keys.test = "**********"' in shown.splitlines()
    assert f"# enabled gateways: {', '.join(sorted(PLUGINS))}" in shown

    logs = caplog.text
    json_logs = json_log.text
    # Every JSON line carries the context keys; lines logged inside a payment's activities name it.
    entries = json_log.entries()
    assert all({"payment_id", "workflow_id", "merchant_id", "trace_id"} <= entry.keys() for entry in entries)
    in_activities = [entry for entry in entries if entry["logger"] == "temporalio.activity"]
    assert {entry["payment_id"] for entry in in_activities} >= set(paid.values())
    assert all(entry["workflow_id"] == f"payment-{entry['payment_id']}" for entry in in_activities)
    database = await database_text(stack.config.database.url.get_secret_value())
    histories = await temporal_bytes(stack.client, stack.task_queue)
    # Each search must see what is really there, or a clean result means nothing.
    control = [view["order_id"] for view in views]
    assert found(control, database) == control
    assert found(control, histories) == control
    assert found(paid.values(), logs) == list(paid.values())
    assert found(paid.values(), json_logs) == list(paid.values())
    assert "payment.gateways.stripe.api_base" in shown

    leaks = {
        (name, place)
        for name, needles in every_secret(stack, db_password).items()
        for place, haystack in (
            ("logs", logs),
            ("json logs", json_logs),
            ("database", database),
            ("temporal", histories),
            ("config check", shown),
        )
        if found(needles, haystack)
    }
    assert leaks == set()
