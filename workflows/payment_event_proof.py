"""How PaymentWorkflow decides whether a provider event may take effect (patch
`verified-gateway-events`). Anyone who can signal the workflow, the Temporal UI or CLI included, can
send a `gateway_event`; only the receiver and reconciliation hold the key that proves they verified
it. Kept beside the workflow class, which inherits it, so that module stays small."""

from __future__ import annotations

from abc import abstractmethod

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows import activity_names as act
    from workflows.activity_options import LOCAL_STEP
    from workflows.domain import PaymentInput, PaymentStatus
    from workflows.event_proof import EventCheck, ProofCheck
    from workflows.gateway_io import GatewayEvent, GatewayResult
    from workflows.ledger_io import PaymentEventRecord
    from workflows.payment_effects import Effect
    from workflows.payment_gateway import PaymentGateway
    from workflows.payment_state import INERT_EVENTS, PAYMENT_EVENTS, PaymentState


class EventProofChecks:
    """The proof check and what an unproven event still does: a reason to ask the gateway."""

    _input: PaymentInput
    _state: PaymentState
    _gateway: PaymentGateway
    _carried: list[PaymentEventRecord]

    @abstractmethod
    async def _transition(
        self, status: PaymentStatus | None, *events: str, data: dict[str, str] | None = None
    ) -> None: ...

    @abstractmethod
    async def _apply_result(self, result: GatewayResult) -> None: ...

    @abstractmethod
    async def _run(self, effects: list[Effect]) -> None: ...

    async def _event_proven(self, event: GatewayEvent, received: PaymentEventRecord) -> bool:
        """May `event` take effect? Anyone who can signal the workflow (the Temporal UI or CLI) can
        send one, so an event that would change the payment needs the proof the receiver or
        reconciliation attach once they have verified it. Without a valid one it is only a reason
        to ask the gateway, whose answer is applied instead (False: handled here)."""
        refusal = self._state.event_refusal(event)
        if refusal is not None:
            finding = PaymentEventRecord(
                type="webhook.refused", data={"event_id": event.event_id, "reason": refusal}
            )
            self._carried += [received, finding]
            await self._transition(None)
            return False
        if event.kind in INERT_EVENTS:
            return True
        check: ProofCheck = await workflow.execute_local_activity(
            act.VERIFY_EVENT,
            EventCheck(payment_id=self._input.payment_id, event=event),
            result_type=ProofCheck,
            **LOCAL_STEP,
        )
        if check is ProofCheck.VERIFIED:
            return True
        finding = PaymentEventRecord(
            type="webhook.unverified", data={"event_id": event.event_id, "proof": check.value}
        )
        self._carried += [received, finding]
        if event.kind in PAYMENT_EVENTS:
            await self._apply_result(await self._gateway.lookup())
        elif (refund := self._state.refund_to_confirm(event)) is not None:
            looked = await self._gateway.lookup_refund(refund)
            if looked is not None:
                await self._run(self._state.refund_looked_up(refund, looked))
        # A dispute cannot be looked up: an unproven one stays on the record only.
        if self._carried:
            await self._transition(None)
        return False
