"""The durapay scenarios, each on a stack of its own (see `stack`: a fresh database and task
queue, the real API and worker in the processes of a layout), on the mock gateway with no added
latency unless said otherwise.

- `durapay`: `POST /v1/payments`, card success with automatic capture, fraud check and order
  confirmation on; the answer comes once the payment is decided.
- `durapay_stripe`: the same through the real Stripe gateway against the fake Stripe server
  answering after `--provider-latency-ms` (see `provider`), at concurrency 1.
- `webhooks`: signed mock-gateway webhooks through the receiver into signals, against raw client
  signals of the same event to as many payments waiting for 3-D Secure; one at a time (`sequential`:
  the receiver's own latency) and `--batch-concurrency` at a time (the rate each path sustains).
- `scale`: N payments waiting for 3-D Secure at once, then all completed by the customer's return.

Every result carries what its payments wrote to the store (`store_writes`, see `capacity`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from activities.gateways.mock.adapter import MockWebhook
from workers.bench import capacity, history, load, procstats, provider
from workers.bench.server import Server
from workers.bench.settings import BenchSettings
from workers.bench.stack import (
    ONE,
    Stack,
    StackOptions,
    UnexpectedAnswer,
    running_stack,
    scenario_name,
    store_choice,
)
from workflows.domain import PaymentStatus
from workflows.gateway_io import GatewayEvent, GatewayEventKind
from workflows.messages import ActionCompleted
from workflows.money import Amount

SUCCESS_TOKEN = "tok_visa"
THREE_DS_TOKEN = "tok_threeDSecure2Required"
# The provider scenario is slow per payment (a realistic latency per call): it gets this many
# times the measured window of a sweep level, at concurrency 1 only, to have enough payments.
PROVIDER_DURATION_FACTOR = 3

Scenario = Callable[[Server, BenchSettings, str, Path], Awaitable[dict[str, Any]]]


def _common(stack: Stack, layout: str) -> dict[str, Any]:
    return {
        "store": store_choice(),
        "layout": layout,
        "processes": sorted(stack.pids),
        "store_cpu_s": stack.store_cpu_used(),
    }


def _with_writes(result: dict[str, Any], stack: Stack) -> dict[str, Any]:
    """Once the stack has stopped: what its payments wrote to the store, per payment."""
    result["store_writes"] = capacity.per_payment(stack.store_writes, len(stack.payments))
    return result


async def _sweep(
    stack: Stack,
    settings: BenchSettings,
    layout: str,
    create: load.Op,
    levels: tuple[int, ...],
    duration_s: float,
) -> dict[str, Any]:
    """The closed-loop sweep, then the history probe's payments one at a time."""
    swept = await load.sweep(
        create,
        levels=levels,
        warmup_s=settings.warmup_s,
        duration_s=duration_s,
        op_timeout_s=settings.op_timeout_s,
        cpu_probe=stack.cpu,
    )
    await history.probe(create)
    probed = [p["id"] for p in stack.payments[-history.SAMPLES :]]
    return {
        **_common(stack, layout),
        "levels": swept,
        "history_events_per_payment": await stack.histories(probed),
    }


def payments(layout: str = ONE) -> Scenario:
    """`POST /v1/payments` in a closed loop at each concurrency: card success, auto-capture."""

    async def run(server: Server, settings: BenchSettings, run_id: str, log_dir: Path) -> dict[str, Any]:
        name = scenario_name("durapay", layout)
        async with running_stack(server, settings, run_id, name, log_dir, StackOptions(layout)) as stack:

            async def create(index: int) -> load.OpTiming:
                # The workflow stays open for its settlement window: the answer is the measurement.
                return load.OpTiming(answer_s=await stack.create(index, SUCCESS_TOKEN, PaymentStatus.PAID))

            result = await _sweep(stack, settings, layout, create, settings.levels, settings.duration_s)
        return _with_writes(result, stack)

    return run


def stripe_payments(layout: str = ONE) -> Scenario:
    """`POST /v1/payments` at concurrency 1 through the real Stripe gateway, the fake Stripe
    answering each call after `provider_latency_ms`."""

    async def run(server: Server, settings: BenchSettings, run_id: str, log_dir: Path) -> dict[str, Any]:
        name = scenario_name("durapay_stripe", layout)
        latency_ms = settings.provider_latency_ms
        duration_s = settings.duration_s * PROVIDER_DURATION_FACTOR
        async with provider.fake_stripe(latency_ms) as fake:
            options = StackOptions(
                layout, gateways={provider.GATEWAY: fake.gateway_section()}, default_gateway=provider.GATEWAY
            )
            async with running_stack(server, settings, run_id, name, log_dir, options) as stack:
                # The payments the sweep measures: started after its warm-up, before its end.
                window_start = time.monotonic() + settings.warmup_s
                times = provider.ProviderTimes(window_start, window_start + duration_s)

                async def create(index: int) -> load.OpTiming:
                    started = time.monotonic()
                    answer_s, payment = await stack.create_payment(
                        index, provider.SUCCESS_METHOD, PaymentStatus.PAID
                    )
                    times.add(fake, payment["id"], started, answer_s)
                    return load.OpTiming(answer_s=answer_s)

                result = await _sweep(stack, settings, layout, create, (1,), duration_s)
                result["provider"] = times.summary(latency_ms, fake.unkeyed_requests)
        return _with_writes(result, stack)

    return run


def _batch_options(stack: Stack, settings: BenchSettings) -> dict[str, Any]:
    return {
        "concurrency": settings.batch_concurrency,
        "timeout_s": settings.batch_timeout_s,
        "cpu_probe": stack.cpu,
    }


async def _start_waiting(stack: Stack, settings: BenchSettings, count: int) -> dict[str, Any]:
    """Create `count` payments that end up waiting for 3-D Secure (202, authorizing)."""

    async def create(index: int) -> float:
        return await stack.create(index, THREE_DS_TOKEN, PaymentStatus.AUTHORIZING)

    return await load.measured_batch(create, count=count, **_batch_options(stack, settings))


async def _signal_phase(
    stack: Stack, settings: BenchSettings, count: int, op: Callable[[int], Awaitable[float]], paid_before: int
) -> dict[str, Any]:
    """`count` signals (or webhooks), each timed to its acceptance, then wait until they have made
    their payments paid, so that the CPU per payment covers the work the signals caused too."""

    async def paid(signalled: int, remaining_s: float) -> int:
        reached = await stack.wait_for(PaymentStatus.PAID, paid_before + signalled, remaining_s)
        return reached - paid_before

    return await load.measured_batch(op, count=count, settle=paid, **_batch_options(stack, settings))


def _succeeded(payment: dict[str, Any]) -> MockWebhook:
    amount = Amount.of(payment["amount"], payment["currency"])
    return MockWebhook(
        type=GatewayEventKind.PAYMENT_SUCCEEDED.value,
        payment_id=payment["id"],
        provider_payment_id=payment["provider_payment_id"],
        amount_minor=amount.minor,
        currency=amount.currency,
    )


def webhooks(layout: str = ONE) -> Scenario:
    """`signal_n` payments get a signed `payment.succeeded` through the receiver, `signal_n` others
    the same event as a raw client signal; each phase drains before the next starts."""

    async def run(server: Server, settings: BenchSettings, run_id: str, log_dir: Path) -> dict[str, Any]:
        name = scenario_name("webhooks", layout)
        async with running_stack(server, settings, run_id, name, log_dir, StackOptions(layout)) as stack:
            result = await _webhooks(stack, settings, layout)
        return _with_writes(result, stack)

    return run


async def _webhooks(stack: Stack, settings: BenchSettings, layout: str) -> dict[str, Any]:
    """Both paths one at a time (each call's latency is then its own, no queueing) and then
    `--batch-concurrency` at a time (the rate each path sustains), each on payments of its own."""
    n = settings.signal_n
    started = await _start_waiting(stack, settings, 4 * n)
    sequential = await _webhook_paths(stack, settings, stack.payments[: 2 * n], 1, paid_before=0)
    paid = sequential["webhooks"]["completed"] + sequential["raw_signals"]["completed"]
    concurrent = await _webhook_paths(
        stack, settings, stack.payments[2 * n :], settings.batch_concurrency, paid_before=paid
    )
    return {
        **_common(stack, layout),
        "count": n,
        "concurrency": settings.batch_concurrency,
        "start": started,
        **concurrent,
        "sequential": {"concurrency": 1, **sequential},
    }


async def _webhook_paths(
    stack: Stack, settings: BenchSettings, payments: list[dict[str, Any]], concurrency: int, paid_before: int
) -> dict[str, Any]:
    """The first half of `payments` paid by signed webhooks through the receiver, the second half by
    raw client signals of the same event, `concurrency` calls in flight."""
    half = len(payments) // 2
    by_webhook, by_signal = payments[:half], payments[half:]
    options = replace(settings, batch_concurrency=concurrency)

    async def deliver(index: int) -> float:
        headers, body = stack.signer.build_webhook(_succeeded(by_webhook[index]))
        begun = time.monotonic()
        async with stack.hooks.post("/webhooks/mock", data=body, headers=headers) as response:
            answer = await response.read()
        elapsed = time.monotonic() - begun
        if response.status != 200:
            raise UnexpectedAnswer(f"receiver answered {response.status}: {answer[:200]!r}")
        return elapsed

    async def signal(index: int) -> float:
        payment = by_signal[index]
        webhook = _succeeded(payment)
        event = GatewayEvent(
            gateway="mock",
            event_id=webhook.event_id(),
            kind=GatewayEventKind.PAYMENT_SUCCEEDED,
            provider_type=webhook.type,
            payment_id=payment["id"],
            provider_payment_id=payment["provider_payment_id"],
            amount=Amount.of(payment["amount"], payment["currency"]),
        )
        begun = time.monotonic()
        await stack.workflows.gateway_event(payment["id"], stack.event_keys.prove(event, payment["id"]))
        return time.monotonic() - begun

    webhook_stats = await _signal_phase(stack, options, len(by_webhook), deliver, paid_before=paid_before)
    signal_stats = await _signal_phase(
        stack, options, len(by_signal), signal, paid_before=paid_before + webhook_stats["completed"]
    )
    return {"webhooks": webhook_stats, "raw_signals": signal_stats}


def scale_action_timeout_s(settings: BenchSettings) -> int:
    """The customer's window in `scale`: past the whole run, checks included.

    Every customer here returns only once the last payment has started, minutes later at 10,000
    (real customers finish 3-D Secure in a minute or two). Under durapay's default window (900 s,
    checked halfway, workflows/customer_wait.py) the first payments would be checked and then
    voided for timing out while the last ones still start: the scenario would measure payments
    expiring, not waiting. A phase takes at most `batch_timeout_s`, the run two of them, so a
    window of four (at least an hour) keeps the check and the deadline out of it; what a check
    costs is measured on its own (`workers/bench/waiting_cost.py`)."""
    return max(3600, math.ceil(4 * settings.batch_timeout_s))


def scale(layout: str = ONE) -> Scenario:
    """`scale_n` payments waiting for 3-D Secure at once, then every customer returns."""

    async def run(server: Server, settings: BenchSettings, run_id: str, log_dir: Path) -> dict[str, Any]:
        name = scenario_name("scale", layout)
        options = StackOptions(layout, action_timeout_s=scale_action_timeout_s(settings))
        async with running_stack(server, settings, run_id, name, log_dir, options) as stack:
            result = await _scale(stack, settings, layout)
        result["action_timeout_s"] = options.action_timeout_s
        if server.pid is not None:
            result["server_rss_mb"] = round(procstats.rss_bytes(server.pid) / 2**20, 1)
        return _with_writes(result, stack)

    return run


async def _scale(stack: Stack, settings: BenchSettings, layout: str) -> dict[str, Any]:
    n = settings.scale_n
    rss_idle = stack.worker_rss_bytes()
    started = await _start_waiting(stack, settings, n)
    rss_waiting = stack.worker_rss_bytes()

    async def customer_returns(index: int) -> float:
        # The signal the API's /actions/complete sends; here straight from a client so that
        # the measured time is the workflows', not the endpoint's polling for the outcome.
        begun = time.monotonic()
        await stack.workflows.action_completed(
            stack.payments[index]["id"], ActionCompleted(data={"three_ds_result": "authenticated"})
        )
        return time.monotonic() - begun

    completed = await _signal_phase(stack, settings, len(stack.payments), customer_returns, paid_before=0)
    return {
        **_common(stack, layout),
        "count": n,
        "concurrency": settings.batch_concurrency,
        "start": started,
        "complete_by_signal": completed,
        # The processes that run workflows (the app, or the workers of a split layout).
        "worker_memory": procstats.memory_while_waiting(
            stack.worker_pids, rss_idle, rss_waiting, started["done"]
        ),
        "history_events_per_payment": await stack.histories(
            [p["id"] for p in stack.payments[: history.SAMPLES]]
        ),
    }
