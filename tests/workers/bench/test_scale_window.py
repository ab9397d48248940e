"""The `scale` scenario's customer window: long enough that no payment is checked or expires while
the run still starts or completes the others (see `scale_action_timeout_s`)."""

from __future__ import annotations

from dataclasses import replace

from pydantic import SecretStr

from tests.workers.bench.builders import bench_settings
from workers.bench.durapay import scale_action_timeout_s
from workers.bench.stack_host import StackSpec, config_for
from workflows.domain import PaymentPolicy

SETTINGS = bench_settings(scenarios=("scale",), scale_n=10_000, batch_concurrency=32, batch_timeout_s=900)


def test_the_window_outlasts_both_phases_with_its_halfway_check() -> None:
    for batch_timeout in (60, 900, 1800):
        window = scale_action_timeout_s(replace(SETTINGS, batch_timeout_s=batch_timeout))
        # A run is at most two phases; the notified wait's one check comes at half the window.
        assert window / 2 >= 2 * batch_timeout
        assert window >= 3600


def _spec(action_timeout_s: int | None) -> StackSpec:
    return StackSpec(
        address="127.0.0.1:7233",
        namespace="default",
        task_queue="q",
        database_url=SecretStr("sqlite+aiosqlite:///unused.db"),
        api_key=SecretStr("k" * 24),
        webhook_secret=SecretStr("s" * 32),
        event_proof_key=SecretStr("p" * 32),
        decide_timeout_s=60,
        action_timeout_s=action_timeout_s,
    )


def test_the_stack_takes_the_window_and_keeps_the_default_without_one() -> None:
    assert config_for(_spec(7200)).payment.action_timeout_seconds == 7200
    default = PaymentPolicy.model_fields["action_timeout_seconds"].default
    assert config_for(_spec(None)).payment.action_timeout_seconds == default
