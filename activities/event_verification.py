"""The worker's check of a gateway event's proof (workflows/event_proof.py), run by PaymentWorkflow
as a local activity before an event may move money: the keys stay in the worker, and the verdict is
recorded in the history, so a replay does not depend on the keys configured at replay time."""

from __future__ import annotations

from collections.abc import Callable

from temporalio import activity

from workflows import activity_names as names
from workflows.event_proof import EventCheck, EventKeys, ProofCheck


class EventVerification:
    """`keys` None (none configured): no event is proven, so each one is confirmed by a lookup."""

    def __init__(self, keys: EventKeys | None) -> None:
        self._keys = keys

    @activity.defn(name=names.VERIFY_EVENT)
    async def verify_event(self, check: EventCheck) -> ProofCheck:
        if self._keys is None:
            return ProofCheck.MISSING if check.event.proof is None else ProofCheck.UNKNOWN_KEY
        return self._keys.check(check.event, check.payment_id)

    def definitions(self) -> list[Callable[..., object]]:
        return [self.verify_event]
