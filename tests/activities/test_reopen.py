"""Reconciliation's repair of a payment whose workflow has closed goes through the reopener (a
fresh run from the stored payment, activities/reopen.py) instead of being dropped."""

from __future__ import annotations

from activities.reconciliation import TemporalPaymentSignals
from workflows.gateway_io import GatewayEvent, GatewayEventKind


class RecordingReopener:
    def __init__(self) -> None:
        self.signalled: list[tuple[str, str]] = []

    async def signal(self, payment_id: str, event: GatewayEvent) -> object:
        self.signalled.append((payment_id, event.event_id))
        return object()  # a handle: the store knew the payment


async def test_a_repair_for_a_closed_payment_reopens_it(temporal_env, unique):
    event = GatewayEvent(
        gateway="mock",
        event_id=f"reconcile:{unique}:succeeded",
        kind=GatewayEventKind.PAYMENT_SUCCEEDED,
        provider_type="reconcile",
    )
    reopener = RecordingReopener()
    closed = f"pay_{unique}"  # no workflow runs under this id
    assert await TemporalPaymentSignals(temporal_env.client, reopener).gateway_event(closed, event)  # type: ignore[arg-type]
    assert reopener.signalled == [(closed, event.event_id)]
    assert not await TemporalPaymentSignals(temporal_env.client).gateway_event(closed, event)
