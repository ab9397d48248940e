"""No configured secret and no card number leaves its place: with every gateway configured (mock,
fake Stripe, fake WeChat Pay, fake AliPay) and a database URL holding a password, payments run on
each gateway, webhooks are verified with each gateway's secret, refunds are made, a card number is
sent; then the logs, every table, every Temporal history (payloads, search attributes, details) and
`durapay config check` are searched for every secret.

Private keys are searched line by line (64 base64 characters each): a key written out in any
wrapping or escaping still shows its lines.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import make_url

from tests.security.conftest import JsonLog
from tests.security.leaks import database_text, found, temporal_bytes, variants
from tests.stack import Stack, running_stack
from workers.cli import config_check
from workers.fake_providers.alipay import FakeAlipay
from workers.fake_providers.stripe import FakeStripe, gateway_section
from workers.fake_providers.wechatpay import FakeWechatPay, post_to

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")

CARD = "4111 1111 1111 1111"  # a published test number


@dataclass(frozen=True)
class Fakes:
    stripe: FakeStripe
    wechat: FakeWechatPay
    alipay: FakeAlipay


@pytest_asyncio.fixture(scope="module")
async def fakes() -> AsyncIterator[Fakes]:
    async with FakeStripe() as stripe, FakeWechatPay() as wechat, FakeAlipay() as alipay:
        yield Fakes(stripe, wechat, alipay)


@pytest.fixture(scope="module")
def db_password() -> str:
    return f"db-pass-{uuid.uuid4().hex}"


@pytest_asyncio.fixture(scope="module")
async def stack(temporal_env, pg_url, fakes: Fakes, db_password: str) -> AsyncIterator[Stack]:
    # The test server trusts local connections, so any password works; what matters is that the
    # URL carries one, as a production URL does.
    db_url = make_url(pg_url).set(password=db_password).render_as_string(hide_password=False)
    overrides = {
        "payment": {
            "stripe": gateway_section(fakes.stripe),
            "wechat_pay": fakes.wechat.gateway_section(),
            "alipay": fakes.alipay.gateway_section(),
        },
        "api": {"rate_limiting": True},
    }
    async with running_stack(
        temporal_env.client,
        task_queue=f"tq-no-secrets-{uuid.uuid4().hex[:8]}",
        db_url=db_url,
        config_overrides=overrides,
    ) as running:
        fakes.stripe.webhook_url = f"{running.webhook_url}/stripe"
        yield running
        await fakes.stripe.wait_for_webhooks()


def pem_lines(pem: str) -> set[str]:
    return {line.strip() for line in pem.splitlines() if line.strip() and not line.startswith("-----")}


def every_secret(stack: Stack, fakes: Fakes, db_password: str) -> dict[str, set[str]]:
    mock = stack.config.payment.gateways["mock"]
    return {
        "api key": {stack.api_key},
        "mock webhook secret": {mock["webhook_secret"]},
        "stripe secret key": {fakes.stripe.secret_key},
        "stripe webhook secret": set(fakes.stripe.webhook_secrets),
        "wechat merchant private key": pem_lines(fakes.wechat.merchant_private_key),
        "wechat apiv3 key": {fakes.wechat.apiv3_key},
        "alipay app private key": pem_lines(fakes.alipay.app_private_key),
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


def wallet_payment(unique: str, wallet: str, flow: str) -> dict:
    return {
        "order_id": f"order-{unique}-{wallet}",
        "amount": "88.88",
        "currency": "CNY",
        "gateway": wallet,
        "payment_method": {"type": "wallet", "wallet": wallet, "flow": flow},
        "description": "secret-free tea",
    }


async def test_no_secret_leaves_its_place(
    stack: Stack,
    fakes: Fakes,
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

        # Stripe: a sale whose events Stripe signs and delivers to the receiver.
        created = await post(
            "/v1/payments", card_payment(unique, "stripe", "pm_card_visa"), f"{unique}-stripe"
        )
        assert created.status_code == 201, created.text
        paid["stripe"] = created.json()["id"]

        # WeChat Pay and AliPay: a QR code, paid, and the provider's signed notification.
        for wallet, fake, flow in (
            ("wechat_pay", fakes.wechat, "native"),
            ("alipay", fakes.alipay, "precreate"),
        ):
            created = await post("/v1/payments", wallet_payment(unique, wallet, flow), f"{unique}-{wallet}")
            assert created.status_code == 202, created.text
            paid[wallet] = created.json()["id"]
            fake.pay(paid[wallet])
            notification = (
                fakes.wechat.payment_notification(paid[wallet])
                if wallet == "wechat_pay"
                else fakes.alipay.trade_notification(paid[wallet])
            )
            status, _ = await post_to(f"{stack.webhook_url}/{wallet}", *notification)
            assert status in (200, 204)

        for gateway, payment_id in paid.items():
            assert await eventually_status(http, stack, payment_id, "paid") is not None, gateway
            refund = await post(
                f"/v1/payments/{payment_id}/refunds", {"amount": "1.00"}, f"{unique}-{gateway}-r"
            )
            assert refund.status_code == 201, (gateway, refund.text)

        refused = await post(
            "/v1/payments",
            {**card_payment(unique, "mock", CARD), "order_id": f"o-{unique}"},
            f"{unique}-card",
        )
        assert (refused.status_code, refused.json()["code"]) == (422, "card_data_not_allowed")
        await fakes.stripe.wait_for_webhooks()
    assert [status for _, status in fakes.stripe.deliveries if status != 200] == []

    await asyncio.to_thread(config_check, stack.config)
    shown = capsys.readouterr().out
    for key in (
        "stripe.secret_key",
        "stripe.webhook_secret",
        "wechat_pay.private_key",
        "wechat_pay.apiv3_key",
        "alipay.app_private_key",
    ):
        assert any(
            line.startswith(f"payment.gateways.{key} = ") and "**********" in line
            for line in shown.splitlines()
        ), key
    assert 'api.api_keys.test = "**********"' in shown.splitlines()
    assert "# enabled gateways: alipay, mock, stripe, wechat_pay" in shown

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
    control = [f"order-{unique}-{gateway}" for gateway in paid]
    assert found(control, database) == control
    assert found(control, histories) == control
    assert found(paid.values(), logs) == list(paid.values())
    assert found(paid.values(), json_logs) == list(paid.values())
    assert "payment.gateways.stripe.api_base" in shown

    leaks = {
        (name, place)
        for name, needles in every_secret(stack, fakes, db_password).items()
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
