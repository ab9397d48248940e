from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from activities.gateways.bank_transfer.adapter import build
from activities.gateways.bank_transfer.reference import iban_is_valid, is_valid
from activities.gateways.bank_transfer.settings import BankTransferSettings
from activities.gateways.base import NotSupported, WebhookVerificationError
from tests.activities.gateways.helpers import GatewayCalls, pid
from workflows.domain import BankTransferMethod, NextActionType
from workflows.gateway_io import GatewayPaymentStatus

SECTION = {
    "beneficiary_name": "Shop GmbH",
    "iban": "DE89 3704 0044 0532 0130 00",
    "bic": "cobadeffxxx",
    "bank_name": "Commerzbank",
    "expiry_hours": 48,
    "reference_prefix": "SHOP",
}


def test_iban_check_digits() -> None:
    assert iban_is_valid("DE89370400440532013000") and iban_is_valid("GB82WEST12345698765432")
    assert not iban_is_valid("DE89370400440532013001")


@pytest.mark.parametrize(
    "change",
    [
        {"iban": "DE89370400440532013001"},  # a typo in the IBAN
        {"bic": "COBA"},
        {"iban": None},  # neither IBAN nor account number
        {"account_number": "12345678"},  # both
        {"reference_prefix": "TOO-LONG"},
        {"expiry_hours": 0},
    ],
)
def test_settings_refuse_what_a_payer_could_not_use(change: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        BankTransferSettings.model_validate({**SECTION, **change})


async def test_instructions_and_what_the_gateway_never_does() -> None:
    settings = BankTransferSettings.model_validate(SECTION)
    gateway = build(settings)
    assert gateway.profile.action_timeout_seconds == 48 * 3600
    assert not gateway.profile.supports_manual_capture and gateway.profile.methods == ["bank_transfer"]
    c = GatewayCalls("bank_transfer", "EUR", lambda *how: BankTransferMethod(), minor=4999)
    payment_id = pid("adapter")
    expires = datetime(2026, 12, 9, tzinfo=UTC)
    call = c.authorize(payment_id, expires_at=expires)
    result = await gateway.authorize(call)
    assert result.status is GatewayPaymentStatus.REQUIRES_ACTION
    action = result.next_action
    assert action is not None and action.type is NextActionType.BANK_TRANSFER_INSTRUCTIONS
    assert action.expires_at == expires
    data = action.data
    assert (data["amount"], data["currency"]) == ("49.99", "EUR")
    assert (data["iban"], data["bic"], data["beneficiary_name"]) == (
        "DE89370400440532013000",
        "COBADEFFXXX",
        "Shop GmbH",
    )
    assert (
        data["reference"].startswith("RF")
        and data["reference"][4:8] == "SHOP"
        and is_valid(data["reference"])
    )
    assert result.provider_payment_id == data["reference"]
    assert await gateway.authorize(call) == result  # a retry shows the same instructions
    with pytest.raises(NotSupported):
        await gateway.authorize(c.authorize(payment_id, capture=False))
    with pytest.raises(NotSupported):
        await gateway.refund(c.refund(payment_id, "rf_1", 4999))
    with pytest.raises(WebhookVerificationError):
        gateway.parse_webhook({}, b'{"type": "payment.succeeded"}')


def test_an_account_number_instead_of_an_iban() -> None:
    settings = BankTransferSettings.model_validate({**SECTION, "iban": None, "account_number": "12345678"})
    assert settings.account_number == "12345678"
