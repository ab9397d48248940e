"""The manual bank transfer gateway. There is no provider to call: a payment answers the
instructions (our account and the payment's RF reference) and waits. The money's proof never comes
through this interface - no lookup, no notification can say a transfer arrived - but through the
workflow's `confirm_bank_transfer` update, sent by an operator or by the statement import
(workers/bank_import.py), each saying who vouches for it."""

from __future__ import annotations

from collections.abc import Mapping

from activities.gateways.bank_transfer import GATEWAY_ID
from activities.gateways.bank_transfer.reference import payment_reference
from activities.gateways.bank_transfer.settings import BankTransferSettings
from activities.gateways.bank_transfer.transform import instructions
from activities.gateways.base import Gateway, NotSupported, WebhookVerificationError
from workflows.domain import BankTransferMethod, GatewayProfile, NextActionType
from workflows.gateway_io import (
    AuthorizeCall,
    CancelCall,
    CaptureCall,
    GatewayEvent,
    GatewayPaymentStatus,
    GatewayResult,
    LookupCall,
    RefundCall,
    RefundLookupCall,
    RefundResult,
)

REFUND_BY_PAYOUT = "a bank transfer is given back by a manual bank payout, not through the gateway"


def build(settings: BankTransferSettings) -> BankTransferGateway:
    return BankTransferGateway(settings)


class BankTransferGateway(Gateway):
    def __init__(self, settings: BankTransferSettings) -> None:
        self._settings = settings
        self._profile = GatewayProfile(
            id=GATEWAY_ID,
            name="Bank transfer",
            methods=["bank_transfer"],
            currencies=list(settings.currencies),
            min_minor=settings.min_minor,
            max_minor=settings.max_minor,
            # Nothing is held: the payer sends the money or does not.
            supports_partial_capture=False,
            supports_manual_capture=False,
            action_timeout_seconds=max(1, round(settings.expiry_hours * 3600)),
            # The bank cannot be asked (`lookup` learns nothing): the receipt update is the news.
            notified_actions=[NextActionType.BANK_TRANSFER_INSTRUCTIONS],
        )

    @property
    def profile(self) -> GatewayProfile:
        return self._profile

    def reference(self, payment_id: str) -> str:
        return payment_reference(payment_id, self._settings.reference_prefix)

    async def authorize(self, call: AuthorizeCall) -> GatewayResult:
        if not call.capture:
            raise NotSupported("a bank transfer cannot be authorized and captured later")
        if not isinstance(call.method, BankTransferMethod):
            raise NotSupported(f"the bank transfer gateway takes bank transfers, not {call.method.type}")
        # A pure function of the call: a retried authorize answers exactly the same instructions.
        return GatewayResult(
            status=GatewayPaymentStatus.REQUIRES_ACTION,
            provider_payment_id=self.reference(call.payment_id),
            next_action=instructions(self._settings, call.payment_id, call.amount, call.expires_at),
            provider_response={"reference": self.reference(call.payment_id)},
        )

    async def capture(self, call: CaptureCall) -> GatewayResult:
        raise NotSupported("a bank transfer has nothing held to capture")

    async def cancel(self, call: CancelCall) -> GatewayResult:
        # Nothing to close at the bank: the payment stops waiting. Money that arrives anyway is
        # held for review by the workflow, never lost.
        return GatewayResult(
            status=GatewayPaymentStatus.CANCELLED, provider_payment_id=self.reference(call.payment_id)
        )

    async def lookup(self, call: LookupCall) -> GatewayResult:
        # The bank cannot be asked: the payment waits for its receipt (the instructions it showed
        # stay as they are).
        return GatewayResult(
            status=GatewayPaymentStatus.REQUIRES_ACTION, provider_payment_id=self.reference(call.payment_id)
        )

    async def refund(self, call: RefundCall) -> RefundResult:
        raise NotSupported(REFUND_BY_PAYOUT)

    async def lookup_refund(self, call: RefundLookupCall) -> RefundResult:
        raise NotSupported(REFUND_BY_PAYOUT)

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[GatewayEvent]:
        raise WebhookVerificationError(
            "bank transfers have no notifications: an operator or a statement import confirms them"
        )
