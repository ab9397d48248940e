"""Manual bank transfer end to end: real HTTP into the real API, a real worker running
PaymentWorkflow on the Temporal dev server, the PostgreSQL store, the fake bank booking the payers'
transfers and serving the camt.053 statement that the import (`POST /v1/bank_transfer/statements`,
the same code as `durapay bank import`) matches to payments.

One stack and one fake bank serve the whole module (each test has its own ids). Payers have
EXPIRY_SECONDS to pay here."""

from __future__ import annotations

import argparse
import io
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest_asyncio

from activities.gateways.bank_transfer.fake import FakeBank
from tests.activities.gateways.helpers import serving
from tests.e2e.helpers import event_types, eventually, payment_view, post, until_status
from tests.stack import API_KEY_ID, Stack, running_stack
from workers.bank import run_bank
from workflows.money import Amount

EXPIRY_SECONDS = 18
OPS_KEY_ID = "ops-test"
OPS_SECRET = secrets.token_urlsafe(24)

bank = serving(FakeBank, scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stack(temporal_env, pg_url, bank: FakeBank) -> AsyncIterator[Stack]:
    section = {**bank.gateway_section(), "expiry_hours": EXPIRY_SECONDS / 3600}
    overrides = {
        "payment": {"default_gateway": "bank_transfer", "bank_transfer": section},
        # The test key may create payments only; a second key is the operator's.
        "api": {"api_keys": {OPS_KEY_ID: OPS_SECRET}},
        "api_key_scopes": {OPS_KEY_ID: ["payments:read", "ops"]},
    }
    async with running_stack(
        temporal_env.client,
        task_queue=f"tq-bank-e2e-{secrets.token_hex(4)}",
        db_url=pg_url,
        config_overrides=overrides,
    ) as running:
        yield running


def ops_headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {OPS_SECRET}", "Idempotency-Key": key}


async def new_payment(
    http: httpx.AsyncClient, stack: Stack, unique: str, amount: str = "49.99"
) -> dict[str, Any]:
    body = {
        "order_id": f"order-{unique}",
        "amount": amount,
        "currency": "EUR",
        "gateway": "bank_transfer",
        "payment_method": {"type": "bank_transfer"},
    }
    created = await post(http, stack, "/v1/payments", body, f"create-{unique}")
    assert created.status_code == 202, created.text
    payment = created.json()
    assert payment["status"] == "authorizing"
    # The import finds a payment by the reference on its stored record: wait until it is written.
    reference = payment["next_action"]["data"]["reference"]

    async def recorded() -> bool | None:
        return (
            True
            if (await payment_view(http, stack, payment["id"])).get("provider_payment_id") == reference
            else None
        )

    assert await eventually(recorded)
    return payment


async def import_statement(http: httpx.AsyncClient, bank: FakeBank, name: str) -> dict[str, Any]:
    statement = bank.statement()
    answer = await http.post(
        "/v1/bank_transfer/statements",
        json={"name": name, "content": statement.decode()},
        headers=ops_headers(f"import-{name}-{secrets.token_hex(4)}"),
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def outcome_of(report: dict[str, Any], entry_reference: str) -> dict[str, Any]:
    [line] = [line for line in report["lines"] if line["entry_reference"] == entry_reference]
    return line


async def cli(stack: Stack, *argv: str) -> str:
    out = io.StringIO()
    parser = argparse.ArgumentParser()
    from workers.bank import add_arguments

    add_arguments(parser)
    assert await run_bank(stack.config, parser.parse_args(list(argv)), out=out) == 0
    return out.getvalue()


async def test_instructions_then_an_operator_confirms(
    http: httpx.AsyncClient, stack: Stack, unique: str
) -> None:
    payment = await new_payment(http, stack, unique)
    action = payment["next_action"]
    assert action["type"] == "bank_transfer_instructions"
    shown = action["data"]
    assert (shown["amount"], shown["currency"], shown["iban"], shown["bic"]) == (
        "49.99",
        "EUR",
        "DE89370400440532013000",
        "COBADEFFXXX",
    )
    assert shown["reference"].startswith("RF") and shown["reference"] == payment["provider_payment_id"]
    expires = datetime.fromisoformat(action["expires_at"])
    assert timedelta(0) < expires - datetime.now(UTC) <= timedelta(seconds=EXPIRY_SECONDS)

    path = f"/v1/payments/{payment['id']}/bank_transfer/confirm"
    body = {"amount": "49.99", "bank_reference": f"BANK-{unique}", "received_at": "2026-12-06T09:00:00Z"}
    refused = await post(http, stack, path, body, f"confirm-{unique}")  # the merchant's key: no ops
    assert refused.status_code == 403, refused.text
    assert (await payment_view(http, stack, payment["id"]))["status"] == "authorizing"

    confirmed = await http.post(path, json=body, headers=ops_headers(f"confirm-{unique}"))
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["status"] == "paid" and confirmed.json()["captured_amount"] == "49.99"
    events = await stack.store.events(payment["id"])
    [received] = [e for e in events if e.type == "bank_transfer.received"]
    assert received.data["confirmed_by"] == f"api key {OPS_KEY_ID}" and received.data["source"] == "operator"
    assert "order.paid" in [e.type for e in events]

    again = await http.post(path, json=body, headers=ops_headers(f"confirm-again-{unique}"))
    assert again.status_code == 200 and again.json()["status"] == "paid"
    assert len(await stack.store.events(payment["id"])) == len(events)  # the same credit: nothing new
    second = await http.post(
        path, json={**body, "bank_reference": f"BANK2-{unique}"}, headers=ops_headers(f"confirm-2-{unique}")
    )
    assert second.status_code == 409, second.text

    # Money goes back by a manual payout, never through the gateway: a refund is refused, recorded.
    refund = await post(
        http, stack, f"/v1/payments/{payment['id']}/refunds", {"amount": "10.00"}, f"rf-{unique}"
    )
    assert refund.status_code == 201, refund.text
    assert refund.json()["status"] == "failed" and refund.json()["failure"]["code"] == "not_supported"
    assert (await payment_view(http, stack, payment["id"]))["refunded_amount"] == "0.00"


async def test_a_signal_cannot_pay_a_bank_transfer(
    http: httpx.AsyncClient, stack: Stack, unique: str
) -> None:
    """A forged notification is refused at the door, and the gateway's events never carry money."""
    payment = await new_payment(http, stack, unique)
    answer = await http.post(
        f"{stack.webhook_url}/bank_transfer",
        json={"type": "payment.succeeded", "payment_id": payment["id"], "amount": "49.99"},
    )
    assert answer.status_code == 400
    assert (await payment_view(http, stack, payment["id"]))["status"] == "authorizing"


async def test_camt053_import_settles_and_a_second_import_changes_nothing(
    http: httpx.AsyncClient, stack: Stack, bank: FakeBank, unique: str
) -> None:
    payment = await new_payment(http, stack, unique)
    reference = payment["next_action"]["data"]["reference"]
    paid_line = bank.transfer(Amount.of("49.99", "EUR"), reference, payer_name="Jane Payer")
    stray = bank.transfer(
        Amount.of("12.34", "EUR"), None, payer_name="Who Knows", remittance=f"stray {unique}"
    )
    report = await import_statement(http, bank, f"stmt-{unique}.xml")
    assert outcome_of(report, paid_line.entry_reference)["outcome"] == "matched"
    assert outcome_of(report, paid_line.entry_reference)["payment_id"] == payment["id"]
    assert outcome_of(report, stray.entry_reference)["outcome"] == "unmatched"
    view = await payment_view(http, stack, payment["id"])
    assert view["status"] == "paid" and view["captured_amount"] == "49.99"
    events = await event_types(stack, payment["id"])

    again = await import_statement(http, bank, f"stmt-{unique}.xml")
    assert {line["outcome"] for line in again["lines"]} == {"already_imported"}
    assert await event_types(stack, payment["id"]) == events
    assert await payment_view(http, stack, payment["id"]) == view

    # The payer pays twice: the paid payment refuses the second credit, which stays listed.
    twice = bank.transfer(Amount.of("49.99", "EUR"), reference, payer_name="Jane Payer")
    third = await import_statement(http, bank, f"stmt-{unique}-2.xml")
    assert outcome_of(third, twice.entry_reference)["outcome"] == "unmatched"
    assert "already received a bank transfer" in outcome_of(third, twice.entry_reference)["reason"]
    assert (await payment_view(http, stack, payment["id"]))["captured_amount"] == "49.99"

    listed = await cli(stack, "unmatched")
    assert stray.entry_reference in listed and f"stray {unique}" in listed and "Who Knows" in listed
    assert twice.entry_reference in listed
    assert paid_line.entry_reference not in listed

    # The merchant's key cannot import, and a file that is no statement changes nothing.
    refused = await post(
        http, stack, "/v1/bank_transfer/statements", {"name": "x", "content": "x"}, f"i-{unique}"
    )
    assert refused.status_code == 403
    broken = await http.post(
        "/v1/bank_transfer/statements",
        json={"name": "bad.xml", "content": "<Document xmlns='urn:other'/>"},
        headers=ops_headers(f"bad-{unique}"),
    )
    assert broken.status_code == 422 and broken.json()["code"] == "invalid_statement"


async def test_underpaid_is_held_for_review_then_accepted(
    http: httpx.AsyncClient, stack: Stack, bank: FakeBank, unique: str
) -> None:
    payment = await new_payment(http, stack, unique)
    line = bank.transfer(Amount.of("40.00", "EUR"), payment["next_action"]["data"]["reference"])
    report = await import_statement(http, bank, f"stmt-{unique}.xml")
    assert outcome_of(report, line.entry_reference)["outcome"] == "held_for_review"
    view = await payment_view(http, stack, payment["id"])
    assert view["status"] == "requires_review" and view["captured_amount"] == "0.00"
    assert view["failure"] == {
        "code": "amount_mismatch",
        "message": "received 40.00 EUR, expected 49.99 EUR",
        "decline_code": None,
    }

    resolve = f"/v1/payments/{payment['id']}/bank_transfer/resolve"
    accepted = await http.post(resolve, json={"decision": "accept"}, headers=ops_headers(f"accept-{unique}"))
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "paid" and accepted.json()["captured_amount"] == "40.00"
    assert "review.accepted" in await event_types(stack, payment["id"])
    late = await http.post(resolve, json={"decision": "refund"}, headers=ops_headers(f"refund-{unique}"))
    assert late.status_code == 409


async def test_overpaid_is_refunded_by_a_manual_payout(
    http: httpx.AsyncClient, stack: Stack, bank: FakeBank, unique: str
) -> None:
    payment = await new_payment(http, stack, unique)
    bank.transfer(
        Amount.of("60.00", "EUR"),
        payment["next_action"]["data"]["reference"],
        payer_name="Over Payer",
        payer_iban="DE89370400440532013000",
    )
    await import_statement(http, bank, f"stmt-{unique}.xml")
    view = await payment_view(http, stack, payment["id"])
    assert view["status"] == "requires_review"
    assert view["failure"]["message"] == "received 60.00 EUR, expected 49.99 EUR"

    resolve = f"/v1/payments/{payment['id']}/bank_transfer/resolve"
    refunded = await http.post(resolve, json={"decision": "refund"}, headers=ops_headers(f"refund-{unique}"))
    assert refunded.status_code == 200, refunded.text
    assert (
        refunded.json()["status"] == "cancelled" and refunded.json()["failure"]["code"] == "amount_mismatch"
    )

    payouts = await cli(stack, "payouts")
    [task] = [row for row in payouts.splitlines() if row.startswith(payment["id"])]
    assert "60.00 EUR to Over Payer DE89370400440532013000" in task and task.endswith("OPEN")
    assert "done by" in await cli(stack, "payout-done", payment["id"], "--by", "alice")
    [task] = [row for row in (await cli(stack, "payouts")).splitlines() if row.startswith(payment["id"])]
    assert "done by alice" in task


async def test_expiry_cancels_and_money_after_it_is_held_not_lost(
    http: httpx.AsyncClient, stack: Stack, bank: FakeBank, unique: str
) -> None:
    payment = await new_payment(http, stack, unique)
    cancelled = await eventually(
        until_status(http, stack, payment["id"], "cancelled"), timeout=EXPIRY_SECONDS + 30
    )
    assert cancelled is not None and cancelled["failure"]["code"] == "action_timeout"
    assert "payment.cancelled" in await event_types(stack, payment["id"])

    line = bank.transfer(Amount.of("49.99", "EUR"), payment["next_action"]["data"]["reference"])
    report = await import_statement(http, bank, f"stmt-{unique}.xml")
    assert outcome_of(report, line.entry_reference)["outcome"] == "held_for_review"
    view = await payment_view(http, stack, payment["id"])
    assert view["status"] == "requires_review" and view["failure"]["code"] == "late_payment"
    resolve = f"/v1/payments/{payment['id']}/bank_transfer/resolve"
    accepted = await http.post(resolve, json={"decision": "accept"}, headers=ops_headers(f"accept-{unique}"))
    assert accepted.status_code == 200 and accepted.json()["status"] == "paid"
