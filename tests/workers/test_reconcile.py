"""`durapay reconcile` as an operator runs it: its own process state (the command builds its own store,
gateway client and Temporal connection from a config file), against a real stack whose Stripe is the
fake Stripe, with drift made on purpose by withholding Stripe's webhooks. Then the Temporal Schedule:
created, updated in place, and a scheduled run repairing drift through the workflows."""

from __future__ import annotations

import argparse
import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from temporalio.client import ScheduleActionStartWorkflow

from activities.gateways.stripe.fake import FakeStripe
from tests.stack import Stack, running_stack
from workers.cli import EXIT_CONFIG, EXIT_FAILED, EXIT_OK, main
from workers.reconcile import parse_duration, parse_moment, positive_duration
from workflows.domain import PaymentStatus
from workflows.reconcile_io import ReconcileReport, ReconcileWindow

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)


# ------------------------------------------------------------------------------ options


def test_durations_and_moments() -> None:
    assert parse_duration("90m") == timedelta(minutes=90)
    assert parse_duration("7d") == timedelta(days=7)
    assert parse_duration("0s") == timedelta(0)
    assert parse_moment("24h", now=NOW) == NOW - timedelta(hours=24)
    assert parse_moment("2030-01-01T08:00+08:00") == datetime(2030, 1, 1, 0, 0, tzinfo=UTC)
    assert parse_moment("2030-01-01T00:00Z") == datetime(2030, 1, 1, tzinfo=UTC)
    for bad in ("1.5h", "h", "-2h", "tomorrow"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_moment(bad)
    with pytest.raises(argparse.ArgumentTypeError, match="no UTC offset"):
        parse_moment("2030-01-01T00:00")
    with pytest.raises(argparse.ArgumentTypeError, match="longer than zero"):
        positive_duration("0m")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["reconcile"], "--since is required"),
        (
            ["reconcile", "--since", "2030-01-02T00:00Z", "--until", "2030-01-01T00:00Z"],
            "is not before --until",
        ),
        (["reconcile", "--schedule", "--since", "1h"], "--since / --until do not apply"),
        (["reconcile", "--since", "1h", "--concurrency", "0"], "--concurrency must be positive"),
    ],
)
def test_usage_errors_exit_2(
    argv: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)  # no ./durapay.toml; the defaults need nothing reachable for these
    monkeypatch.delenv("DURAPAY_CONFIG", raising=False)
    assert main(argv) == EXIT_CONFIG
    assert message in capsys.readouterr().err


# ------------------------------------------------------------------------------ against a stack


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def fake() -> AsyncIterator[FakeStripe]:
    # No webhook_url: Stripe's notifications are never delivered, so what happens at Stripe after
    # the API answered stays unknown to durapay until something asks.
    async with FakeStripe() as server:
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stack(temporal_env, tmp_path_factory, fake: FakeStripe) -> AsyncIterator[Stack]:
    db = tmp_path_factory.mktemp("reconcile-cli") / "durapay.db"
    overrides = {
        "payment": {
            "default_gateway": "stripe",
            # Far out: the workflows must not resolve the drift by their own polling mid-test.
            "status_poll_seconds": 3600,
            "stripe": fake.gateway_section(),
        }
    }
    async with running_stack(
        temporal_env.client,
        task_queue=f"tq-reconcile-cli-{uuid.uuid4().hex[:8]}",
        db_url=f"sqlite+aiosqlite:///{db}",
        config_overrides=overrides,
    ) as running:
        yield running


def _toml(value: Any) -> str:
    # JSON strings, numbers, booleans and arrays of them are TOML too.
    return json.dumps(value)


@pytest.fixture
def config_file(stack: Stack, temporal_env, fake: FakeStripe, tmp_path: Path) -> Path:
    """The operator's config: the same database, Stripe account and Temporal as the stack."""
    stripe = fake.gateway_section()
    lines = [
        "[payment]",
        'default_gateway = "stripe"',
        "[payment.stripe]",
        *(f"{key} = {_toml(value)}" for key, value in stripe.items()),
        "[database]",
        f"url = {_toml(stack.config.database.url.get_secret_value())}",
        "[temporal]",
        f"address = {_toml(temporal_env.client.service_client.config.target_host)}",
        f"task_queue = {_toml(stack.task_queue)}",
    ]
    path = tmp_path / "durapay.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


async def durapay(*argv: str) -> int:
    """`durapay ...` in a thread: it runs its own event loop, as the real command does."""
    return await asyncio.to_thread(main, list(argv))


async def post(stack: Stack, path: str, body: dict | None, key: str) -> httpx.Response:
    async with stack.http() as http:
        return await http.post(path, json=body, headers=stack.headers(key))


async def waiting_for_three_ds(stack: Stack, fake: FakeStripe, unique: str) -> tuple[dict, str]:
    body = {
        "order_id": f"order-{unique}",
        "amount": "49.99",
        "currency": "USD",
        "payment_method": {"type": "card", "token": "pm_card_threeDSecure2Required"},
        "return_url": "https://shop.example/return",
    }
    created = await post(stack, "/v1/payments", body, unique)
    assert created.status_code == 202, created.text
    [intent] = fake.intents_for(created.json()["id"])
    return created.json(), intent["id"]


async def eventually_status(stack: Stack, payment_id: str, status: PaymentStatus, timeout: float = 15) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        view = await stack.store.get(payment_id)
        if (view is not None and view.status is status) or asyncio.get_running_loop().time() > deadline:
            return view
        await asyncio.sleep(0.1)


def around(view: dict) -> list[str]:
    created = datetime.fromisoformat(view["created_at"])
    return [
        "--since",
        (created - timedelta(seconds=1)).isoformat(),
        "--until",
        (created + timedelta(seconds=1)).isoformat(),
        "--grace",
        "0s",
    ]


async def test_report_then_repair_a_payment_completed_at_stripe(
    stack: Stack,
    fake: FakeStripe,
    config_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    unique: str,
) -> None:
    waiting, intent_id = await waiting_for_three_ds(stack, fake, unique)
    fake.complete_three_ds(intent_id)  # the customer finished; the webhook saying so is lost
    report_file = tmp_path / "report.json"

    assert (
        await durapay("--config", str(config_file), "reconcile", *around(waiting), "--json", str(report_file))
        == EXIT_FAILED
    )

    table = capsys.readouterr().out
    [row] = [line for line in table.splitlines() if line.startswith(waiting["id"])]
    assert row.split()[:6] == [waiting["id"], "stripe", "authorizing", "succeeded", "status", "reported"]
    assert "checked 1, consistent 0, drift 1 (repaired 0)" in table
    report = json.loads(report_file.read_text())
    assert report["needs_attention"] is True
    assert [(d["payment_id"], d["repair"], d["event_id"]) for d in report["drifts"]] == [
        (waiting["id"], "payment.succeeded", f"reconcile:{waiting['id']}:succeeded")
    ]
    assert (await stack.store.get(waiting["id"])).status is PaymentStatus.AUTHORIZING

    assert await durapay("--config", str(config_file), "reconcile", *around(waiting), "--repair") == EXIT_OK

    assert capsys.readouterr().out.count("signalled") == 1
    paid = await eventually_status(stack, waiting["id"], PaymentStatus.PAID)
    assert (paid.status, paid.captured_minor, paid.provider_payment_id) == (
        PaymentStatus.PAID,
        4999,
        intent_id,
    )
    assert len(fake.charges_for(waiting["id"])) == 1  # repairing charged nothing

    assert (
        await durapay("--config", str(config_file), "reconcile", *around(waiting), "--json", "-") == EXIT_OK
    )
    document = json.loads(capsys.readouterr().out)  # JSON only: no table around it
    assert (document["checked"], document["consistent"], document["drifts"]) == (1, 1, [])


async def test_a_refund_settled_at_stripe_is_repaired(
    stack: Stack, fake: FakeStripe, config_file: Path, capsys: pytest.CaptureFixture[str], unique: str
) -> None:
    paid = await post(
        stack,
        "/v1/payments",
        {
            "order_id": f"order-{unique}",
            "amount": "49.99",
            "currency": "USD",
            "payment_method": {"type": "card", "token": "pm_card_visa"},
        },
        unique,
    )
    assert paid.status_code == 201, paid.text
    fake.refund_status = "pending"  # Stripe takes its time over this one
    try:
        refund = await post(
            stack, f"/v1/payments/{paid.json()['id']}/refunds", {"amount": "10.00"}, f"{unique}-r"
        )
    finally:
        fake.refund_status = "succeeded"
    assert (refund.status_code, refund.json()["status"]) == (202, "pending"), refund.text
    fake.settle_refund(refund.json()["provider_refund_id"])

    assert (
        await durapay("--config", str(config_file), "reconcile", *around(paid.json()), "--repair") == EXIT_OK
    )

    assert "refund" in capsys.readouterr().out

    async def refunded() -> Any:
        view = await stack.store.get(paid.json()["id"])
        return view if view.status is PaymentStatus.PARTIALLY_REFUNDED else None

    deadline = asyncio.get_running_loop().time() + 15
    while (view := await refunded()) is None and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110 (polls the store)
        await asyncio.sleep(0.1)
    assert view is not None
    assert (view.refunded_minor, [r.status.value for r in view.refunds]) == (1000, ["succeeded"])


async def test_schedule_is_created_updated_in_place_and_repairs(
    stack: Stack, fake: FakeStripe, config_file: Path, capsys: pytest.CaptureFixture[str], unique: str
) -> None:
    schedule_id = f"reconcile-{unique}"
    base = [
        "--config",
        str(config_file),
        "reconcile",
        "--schedule",
        "--schedule-id",
        schedule_id,
        "--grace",
        "0s",
    ]
    handle = stack.client.get_schedule_handle(schedule_id)
    try:
        assert await durapay(*base, "--every", "1h", "--window", "2h") == EXIT_OK
        assert f"schedule {schedule_id} created" in capsys.readouterr().out
        assert await durapay(*base, "--every", "30m", "--window", "1h", "--repair") == EXIT_OK
        assert f"schedule {schedule_id} updated" in capsys.readouterr().out

        described = await handle.describe()
        assert [spec.every for spec in described.schedule.spec.intervals] == [timedelta(minutes=30)]
        action = described.schedule.action
        assert isinstance(action, ScheduleActionStartWorkflow)
        assert action.task_queue == stack.task_queue
        [window] = await stack.client.data_converter.decode(action.args, [ReconcileWindow])
        assert window == ReconcileWindow(window_seconds=3600, repair=True, grace_seconds=0)
        listed = [s.id async for s in await stack.client.list_schedules() if s.id == schedule_id]
        assert listed == [schedule_id]

        waiting, intent_id = await waiting_for_three_ds(stack, fake, unique)
        fake.complete_three_ds(intent_id)
        await handle.trigger()
        run_id = None
        deadline = asyncio.get_running_loop().time() + 15
        while run_id is None and asyncio.get_running_loop().time() < deadline:
            recent = (await handle.describe()).info.recent_actions
            run_id = recent[-1].action.workflow_id if recent else None
            await asyncio.sleep(0.1)
        assert run_id is not None
        report = await stack.client.get_workflow_handle(run_id, result_type=ReconcileReport).result()

        repaired = [d for d in report.drifts if d.payment_id == waiting["id"]]
        assert [(d.kind.value, d.action.value) for d in repaired] == [("status", "signalled")]
        assert (
            await eventually_status(stack, waiting["id"], PaymentStatus.PAID)
        ).status is PaymentStatus.PAID
    finally:
        await handle.delete()
