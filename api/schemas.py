"""Request and response bodies of the merchant API.

Amounts travel as decimal *strings*: a JSON number may already have been rounded by the caller's
JSON library (0.1 + 0.2), so numbers are refused with a message saying so. Inside, every amount
becomes integer minor units of its currency (`workflows.money`), and an amount with more decimals
than the currency has is an error, never rounded.

Raw card data is refused before validation (`find_card_data`): durapay only ever handles tokens.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from ipaddress import IPv4Address, IPv6Address
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

from workflows.customer_io import CustomerRecord, SavedMethodRecord
from workflows.domain import (
    BankTransferMethod,
    BnplMethod,
    CaptureMethod,
    CardMethod,
    DisputeView,
    Failure,
    NextAction,
    PaymentStatus,
    PaymentView,
    RefundStatus,
    RefundView,
    ReviewDecisionKind,
    RoutingView,
    WalletMethod,
)
from workflows.gateway_io import MERCHANT_METADATA_MAX_KEYS, RESERVED_METADATA_PREFIX
from workflows.money import Amount, MoneyError, from_minor, is_known_currency, to_minor

# ---------------------------------------------------------------------------------------------
# Card data detection
# ---------------------------------------------------------------------------------------------

# A run of digit groups separated by single spaces or dashes, bounded by non-digits.
_DIGIT_RUN = re.compile(r"\d+(?:[ -]\d+)*")
_SEPARATOR = re.compile(r"[ -]")
# Field names that only ever hold card data, compared without case, '_' or '-'.
_CARD_FIELD_NAMES = frozenset(
    {"number", "cardnumber", "cardno", "pan", "cvc", "cvv", "cvc2", "cvv2", "securitycode"}
)


def luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = ord(char) - 48
        if position % 2:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def _looks_like_pan(digits: str) -> bool:
    # No issuer number starts with 0 (ISO/IEC 7812 MII 0 is not a card), which spares zero-padded
    # reference numbers the 1-in-10 chance of passing Luhn by accident.
    return 13 <= len(digits) <= 19 and digits[0] != "0" and luhn_valid(digits)


def contains_card_number(text: str) -> bool:
    """True when `text` holds 13-19 digits (optionally grouped by spaces or dashes) passing Luhn.

    A run of groups is checked as a whole and as every span of consecutive groups, so a number
    typed after other digits ("ref 12 4242 4242 4242 4242") is still caught. An ungrouped run is
    never cut: a 28-digit provider id is not a card number however its digits fall.
    """
    for match in _DIGIT_RUN.finditer(text):
        groups = _SEPARATOR.split(match.group())
        for start in range(len(groups)):
            digits = ""
            for group in groups[start:]:
                digits += group
                if len(digits) > 19:
                    break
                if _looks_like_pan(digits):
                    return True
    return False


def mask_card_numbers(text: str) -> str:
    """`text` with every digit run that holds a card number replaced by `[redacted]`: for logging
    what a caller chose (a path, an id) without ever writing a card number down."""
    return _DIGIT_RUN.sub(lambda m: "[redacted]" if contains_card_number(m.group()) else m.group(), text)


def _pointer_segment(key: str) -> str:
    if contains_card_number(key):
        return "*"  # a key can be card data too; the pointer must not repeat it
    return key.replace("~", "~0").replace("/", "~1")


def find_card_data(value: Any, pointer: str = "") -> Iterator[str]:
    """JSON pointers of every place in a parsed JSON document that holds card data."""
    if isinstance(value, dict):
        for key, item in value.items():
            key_text = str(key)
            here = f"{pointer}/{_pointer_segment(key_text)}"
            normalized = key_text.lower().replace("_", "").replace("-", "")
            if normalized in _CARD_FIELD_NAMES or contains_card_number(key_text):
                yield here
            else:
                yield from find_card_data(item, here)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from find_card_data(item, f"{pointer}/{index}")
    elif isinstance(value, str):
        if contains_card_number(value):
            yield pointer
    elif isinstance(value, int) and not isinstance(value, bool) and _looks_like_pan(str(value)):
        yield pointer


# ---------------------------------------------------------------------------------------------
# Requests
# ---------------------------------------------------------------------------------------------

_DECIMAL_TEXT = re.compile(r"^(0|[1-9]\d{0,17})(\.\d{1,18})?$")


def _decimal_from_string(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(
            'must be a decimal string such as "49.99": JSON numbers are refused because a '
            "JSON library may already have rounded them"
        )
    if not _DECIMAL_TEXT.match(value):
        raise ValueError('must be a plain decimal string such as "49.99" (no sign, exponent or spaces)')
    amount = Decimal(value)
    if amount <= 0:
        raise ValueError("must be greater than zero")
    return amount


DecimalString = Annotated[Decimal, BeforeValidator(_decimal_from_string)]


def _currency_code(value: str) -> str:
    code = value.upper()
    if not is_known_currency(code):
        raise ValueError("must be an ISO 4217 currency code such as USD")
    return code


Currency = Annotated[str, Field(pattern=r"^[A-Za-z]{3}$"), AfterValidator(_currency_code)]


def _no_reserved_keys(metadata: dict[str, str]) -> dict[str, str]:
    reserved = sorted(key for key in metadata if key.startswith(RESERVED_METADATA_PREFIX))
    if reserved:
        raise ValueError(
            f"keys starting with {RESERVED_METADATA_PREFIX!r} are reserved: {', '.join(reserved)}"
        )
    return metadata


# Stripe's limits (40-character keys, 500-character values, 50 keys), less the keys durapay adds.
Metadata = Annotated[
    dict[Annotated[str, Field(min_length=1, max_length=40)], Annotated[str, Field(max_length=500)]],
    Field(max_length=MERCHANT_METADATA_MAX_KEYS),
    AfterValidator(_no_reserved_keys),
]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SavedMethodRef(Request):
    """A payment method saved for a customer (`POST /v1/customers/{id}/payment_methods`)."""

    type: Literal["saved"] = "saved"
    id: str = Field(pattern=r"^spm_[a-z2-7]{26}$")


RequestPaymentMethod = Annotated[
    CardMethod | BankTransferMethod | WalletMethod | BnplMethod | SavedMethodRef, Field(discriminator="type")
]


class CreatePayment(Request):
    order_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/#-]*$")
    # Declared before `amount` so the amount's validator can check its precision against it.
    currency: Currency
    amount: DecimalString
    gateway: str | None = Field(default=None, pattern=r"^[a-z0-9_-]{1,32}$")
    payment_method: RequestPaymentMethod
    capture_method: CaptureMethod | None = None  # None: the server's default ([payment] auto_capture)
    customer_id: str | None = Field(default=None, min_length=1, max_length=128)
    customer_email: str | None = Field(default=None, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    customer_ip: IPv4Address | IPv6Address | None = None
    return_url: AnyHttpUrl | None = Field(default=None)
    description: str | None = Field(default=None, max_length=500)
    metadata: Metadata = Field(default_factory=dict)

    @field_validator("amount")
    @classmethod
    def _fits_currency(cls, amount: Decimal, info: ValidationInfo) -> Decimal:
        currency = info.data.get("currency")
        if currency is not None:  # else the currency error is the one to report
            try:
                to_minor(amount, currency)
            except MoneyError as exc:
                raise ValueError(str(exc)) from exc
        return amount

    def money(self) -> Amount:
        return Amount.of(self.amount, self.currency)


class CapturePayment(Request):
    amount: DecimalString | None = None  # none: everything authorized


class CancelPayment(Request):
    reason: Literal["duplicate", "fraudulent", "requested_by_customer", "abandoned"] = "requested_by_customer"


class ReviewPayment(Request):
    """An operator's decision on a payment held for review (POST /v1/payments/{id}/review)."""

    decision: ReviewDecisionKind
    note: str | None = Field(default=None, max_length=500)


class CreateRefund(Request):
    amount: DecimalString | None = None  # none: everything not yet refunded
    reason: str | None = Field(default=None, max_length=200)


class CompleteAction(Request):
    """What the customer's return carried (3-D Secure result, redirect query): a hint only."""

    data: Annotated[
        dict[Annotated[str, Field(min_length=1, max_length=64)], Annotated[str, Field(max_length=2048)]],
        Field(max_length=50),
    ] = Field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Responses
# ---------------------------------------------------------------------------------------------


class FailureOut(BaseModel):
    code: str
    message: str
    decline_code: str | None = None

    @classmethod
    def of(cls, failure: Failure | None) -> FailureOut | None:
        if failure is None:
            return None
        return cls(code=failure.code, message=failure.message, decline_code=failure.decline_code)


class RefundOut(BaseModel):
    id: str
    payment_id: str
    status: RefundStatus
    amount: str
    currency: str
    reason: str | None = None
    provider_refund_id: str | None = None
    failure: FailureOut | None = None
    created_at: datetime

    @classmethod
    def of(cls, payment_id: str, refund: RefundView) -> RefundOut:
        return cls(
            id=refund.refund_id,
            payment_id=payment_id,
            status=refund.status,
            amount=str(refund.amount.to_decimal()),
            currency=refund.amount.currency,
            reason=refund.reason,
            provider_refund_id=refund.provider_refund_id,
            failure=FailureOut.of(refund.failure),
            created_at=refund.created_at,
        )


class DisputeOut(BaseModel):
    id: str
    status: str
    amount: str | None = None
    currency: str | None = None
    reason: str | None = None

    @classmethod
    def of(cls, dispute: DisputeView) -> DisputeOut:
        return cls(
            id=dispute.dispute_id,
            status=dispute.status,
            amount=str(dispute.amount.to_decimal()) if dispute.amount else None,
            currency=dispute.amount.currency if dispute.amount else None,
            reason=dispute.reason,
        )


class FraudOut(BaseModel):
    score: int
    decision: str


class ReviewOut(BaseModel):
    requested_at: datetime
    deadline: datetime
    decision: ReviewDecisionKind | None = None
    decided_by: str | None = None
    note: str | None = None
    decided_at: datetime | None = None


class PaymentOut(BaseModel):
    id: str
    status: PaymentStatus
    order_id: str
    gateway: str
    amount: str
    currency: str
    captured_amount: str
    refunded_amount: str
    capture_method: CaptureMethod
    # The method's non-sensitive summary (type, brand, last4, wallet); tokens stay inside.
    payment_method: dict[str, Any]
    customer_id: str | None = None
    next_action: NextAction | None = None
    failure: FailureOut | None = None
    fraud: FraudOut | None = None
    review: ReviewOut | None = None
    routing: RoutingView | None = None  # the gateway routing chose and why; None: named or default
    refunds: list[RefundOut] = Field(default_factory=list)
    disputes: list[DisputeOut] = Field(default_factory=list)
    provider_payment_id: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None = None

    @classmethod
    def of(cls, view: PaymentView) -> PaymentOut:
        currency = view.amount.currency
        return cls(
            id=view.id,
            status=view.status,
            order_id=view.order_id,
            gateway=view.gateway,
            amount=str(view.amount.to_decimal()),
            currency=currency,
            captured_amount=str(from_minor(view.captured_minor, currency)),
            refunded_amount=str(from_minor(view.refunded_minor, currency)),
            capture_method=view.capture_method,
            payment_method=view.method.model_dump(
                mode="json", exclude={"token", "fingerprint", "payer_id"}, exclude_none=True
            ),
            customer_id=view.customer_id,
            next_action=view.next_action,
            failure=FailureOut.of(view.failure),
            fraud=FraudOut(score=view.fraud.score, decision=view.fraud.decision) if view.fraud else None,
            review=ReviewOut.model_validate(view.review.model_dump()) if view.review else None,
            routing=view.routing,
            refunds=[RefundOut.of(view.id, refund) for refund in view.refunds],
            disputes=[DisputeOut.of(dispute) for dispute in view.disputes],
            provider_payment_id=view.provider_payment_id,
            metadata=view.metadata,
            created_at=view.created_at,
            updated_at=view.updated_at,
            completed_at=view.completed_at,
        )


class ListOut(BaseModel):
    """Every list this API answers: one page, and whether more follow (`starting_after` the last)."""

    object: Literal["list"] = "list"
    data: list[Any]
    has_more: bool = False


class PaymentList(ListOut):
    data: list[PaymentOut]


class EventOut(BaseModel):
    type: str
    version: int
    data: dict[str, str]
    created_at: datetime


class EventList(ListOut):
    data: list[EventOut]


# --- customers and saved payment methods -----------------------------------------------------------


class CreateCustomer(Request):
    email: str | None = Field(default=None, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    name: str | None = Field(default=None, max_length=255)
    metadata: Metadata = Field(default_factory=dict)


class AttachPaymentMethod(Request):
    """A token or nonce from the gateway's client SDK (Stripe `pm_...` / `tok_...`), to be saved."""

    gateway: str | None = Field(default=None, pattern=r"^[a-z0-9_-]{1,32}$")
    token: str = Field(min_length=1, max_length=255)


class CustomerOut(BaseModel):
    id: str
    object: Literal["customer"] = "customer"
    email: str | None = None
    name: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    created_at: datetime

    @classmethod
    def of(cls, customer: CustomerRecord) -> CustomerOut:
        return cls(
            id=customer.id,
            email=customer.email,
            name=customer.name,
            metadata=customer.metadata,
            created_at=customer.created_at,
        )


class SavedMethodOut(BaseModel):
    """A saved method as the merchant sees it: never a card number, nor the gateway's token."""

    id: str
    object: Literal["payment_method"] = "payment_method"
    customer_id: str
    gateway: str
    type: str
    brand: str | None = None
    last4: str | None = None
    exp_month: int | None = None
    exp_year: int | None = None
    created_at: datetime
    detached: bool = False

    @classmethod
    def of(cls, method: SavedMethodRecord) -> SavedMethodOut:
        return cls(
            id=method.id,
            customer_id=method.customer_id,
            gateway=method.gateway,
            type=method.type,
            brand=method.brand,
            last4=method.last4,
            exp_month=method.exp_month,
            exp_year=method.exp_year,
            created_at=method.created_at,
            detached=method.detached_at is not None,
        )


class SavedMethodList(ListOut):
    data: list[SavedMethodOut]
