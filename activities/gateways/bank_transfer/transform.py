"""What the payer is shown: the bank transfer instructions of a payment (pure)."""

from __future__ import annotations

from datetime import datetime

from activities.gateways.bank_transfer.reference import payment_reference, printed
from activities.gateways.bank_transfer.settings import BankTransferSettings
from workflows.domain import NextAction, NextActionType
from workflows.money import Amount


def instructions(
    settings: BankTransferSettings, payment_id: str, amount: Amount, expires_at: datetime | None
) -> NextAction:
    reference = payment_reference(payment_id, settings.reference_prefix)
    account = {"iban": settings.iban} if settings.iban else {"account_number": settings.account_number or ""}
    return NextAction(
        type=NextActionType.BANK_TRANSFER_INSTRUCTIONS,
        data={
            "beneficiary_name": settings.beneficiary_name,
            **account,
            "bic": settings.bic,
            "bank_name": settings.bank_name,
            "amount": str(amount.to_decimal()),
            "currency": amount.currency,
            "reference": reference,
            "reference_printed": printed(reference),
        },
        expires_at=expires_at,
    )
