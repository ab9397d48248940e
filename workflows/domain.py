"""The payment as the workflow, the API and the store all see it.

A payment method here is always a token or a non-sensitive summary of one: the models have no field
that could hold a card number or a CVV, and `extra="forbid"` keeps one from slipping in.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from workflows.money import Amount

# The merchant of API keys no `[merchants.<id>]` lists, and of every payment made before merchants.
DEFAULT_MERCHANT_ID = "default"


class Contract(BaseModel):
    """Base of every contract model: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


class PaymentStatus(StrEnum):
    PENDING = "pending"  # accepted, checks running
    AUTHORIZING = "authorizing"  # waiting for the customer (3-D Secure, redirect, QR) or the provider
    OUTCOME_UNKNOWN = "outcome_unknown"  # a gateway call was sent but its result is not known yet
    # Held for an operator: by the fraud check (a card is authorized, not captured; other methods
    # have nothing at the provider yet), or because money arrived that the payment cannot take as is
    # (a bank transfer of another amount, or after it expired; `failure` says why, both amounts).
    REQUIRES_REVIEW = "requires_review"
    AUTHORIZED = "authorized"
    PAID = "paid"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    DISPUTED = "disputed"


# Statuses of a payment not decided yet: nothing has moved, or the provider's answer is awaited.
OPEN_STATUSES = frozenset({PaymentStatus.PENDING, PaymentStatus.AUTHORIZING, PaymentStatus.OUTCOME_UNKNOWN})

# Statuses from which the money can no longer move without a new payment.
FINAL_FAILURE_STATUSES = frozenset({PaymentStatus.FAILED, PaymentStatus.CANCELLED})


class CaptureMethod(StrEnum):
    AUTOMATIC = "automatic"
    MANUAL = "manual"


class ThreeDSResult(StrEnum):
    NOT_REQUIRED = "not_required"
    AUTHENTICATED = "authenticated"
    FAILED = "failed"
    ABANDONED = "abandoned"


class CardMethod(Contract):
    type: Literal["card"] = "card"
    token: str = Field(min_length=1, max_length=255, description="gateway token or payment method id")
    last4: str | None = Field(default=None, pattern=r"^\d{4}$")
    brand: str | None = None
    exp_month: int | None = Field(default=None, ge=1, le=12)
    exp_year: int | None = Field(default=None, ge=2000, le=2100)
    country: str | None = Field(default=None, min_length=2, max_length=2)
    fingerprint: str | None = Field(default=None, max_length=128)
    three_ds: ThreeDSResult | None = None


class BankTransferMethod(Contract):
    type: Literal["bank_transfer"] = "bank_transfer"
    bank_country: str | None = Field(default=None, min_length=2, max_length=2)


class WalletMethod(Contract):
    type: Literal["wallet"] = "wallet"
    wallet: Literal["wechat_pay", "alipay", "apple_pay", "google_pay", "paypal"]
    # How the customer pays: a QR code (native / precreate), a redirect (page / wap / h5), in an app.
    flow: Literal["native", "jsapi", "h5", "app", "page", "wap", "precreate"] | None = None
    payer_id: str | None = Field(default=None, max_length=128, description="e.g. a WeChat openid")
    token: str | None = Field(default=None, max_length=255)


class BnplMethod(Contract):
    type: Literal["bnpl"] = "bnpl"
    provider: str = Field(min_length=1, max_length=64)
    token: str | None = Field(default=None, max_length=255)


PaymentMethod = Annotated[
    CardMethod | BankTransferMethod | WalletMethod | BnplMethod, Field(discriminator="type")
]


class NextActionType(StrEnum):
    REDIRECT_TO_URL = "redirect_to_url"
    USE_SDK = "use_sdk"  # e.g. Stripe's use_stripe_sdk / a WeChat JSAPI prepay
    DISPLAY_QR_CODE = "display_qr_code"
    BANK_TRANSFER_INSTRUCTIONS = "bank_transfer_instructions"


class NextAction(Contract):
    type: NextActionType
    url: str | None = None
    qr_code: str | None = None
    data: dict[str, str] = Field(default_factory=dict)
    expires_at: datetime | None = None


class Failure(Contract):
    code: str  # ours: card_declined, blocked_by_fraud_check, order_conflict, action_timeout, ...
    message: str
    decline_code: str | None = None  # the provider's, when it gave one


class FraudDecision(StrEnum):
    ALLOW = "allow"
    REVIEW = "review"
    BLOCK = "block"


class FraudPolicy(Contract):
    """How a payment's fraud check goes on after the rules, fixed when the rules ran (the worker's
    `[fraud_detection]` at that moment): the workflow cannot read configuration itself."""

    # The screening service to ask next; None: the rules decided alone.
    provider: str | None = None
    # What a provider that stays unreachable past its short retry budget counts as.
    on_provider_error: FraudDecision = FraudDecision.REVIEW
    # How long a payment held for review waits for an operator before it is rejected.
    review_timeout_seconds: int = Field(default=24 * 3600, gt=0)


class FraudResult(Contract):
    score: int = Field(ge=0, le=100)  # 0-100, higher is riskier, whoever scored it
    decision: FraudDecision
    reasons: list[str] = Field(default_factory=list)
    source: str = "rules"  # who decided: rules, or the screening service (sift, signifyd, kount)
    # The screening service's own id for this payment (Sift run id, signifydId, Kount orderId).
    reference: str | None = None
    policy: FraudPolicy | None = None  # None: recorded before screening services existed


class ReviewDecisionKind(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"


class ReviewView(Contract):
    """A manual review: asked for when the fraud check said `review`, decided by an operator (the
    API key id, or whoever sent the update from the Temporal UI) or by the clock."""

    requested_at: datetime
    deadline: datetime  # no decision by then: rejected
    decision: ReviewDecisionKind | None = None
    decided_by: str | None = None  # API key id, "temporal-ui", or "timeout"
    note: str | None = None
    decided_at: datetime | None = None


class RefundStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class RefundView(Contract):
    refund_id: str
    amount: Amount
    reason: str | None = None
    status: RefundStatus
    provider_refund_id: str | None = None
    failure: Failure | None = None
    created_at: datetime


class DisputeView(Contract):
    dispute_id: str
    status: str  # the provider's word: needs_response, won, lost, ...
    amount: Amount | None = None
    reason: str | None = None


class GatewayProfile(Contract):
    """What a gateway accepts; the API validates against it and the workflow re-checks it."""

    id: str
    name: str
    methods: list[str]  # PaymentMethod.type values, and "wallet:<name>" for wallets
    currencies: list[str]
    min_minor: int = 1  # per payment, in the payment currency's minor units
    max_minor: int = 10**12
    supports_partial_capture: bool = True
    supports_manual_capture: bool = True
    # How long after its creation the provider still refunds a payment and may still report a
    # dispute or a refund on it: the payment's workflow lives that long (PaymentSettings can set
    # a deployment-wide value instead). A plugin declares its own; a year covers the card networks'
    # chargeback windows and WeChat Pay's refund year.
    payment_window_seconds: int = Field(default=365 * 24 * 3600, gt=0)
    # How long the customer has to act (pay) with this gateway when it is not the payment policy's
    # `action_timeout_seconds`: a bank transfer takes days, not minutes.
    action_timeout_seconds: int | None = Field(default=None, gt=0)
    # The customer actions whose outcome reaches a waiting payment without it asking: the provider
    # notifies it (a webhook; a bank transfer's receipt update) and a customer who comes back says
    # so (`action_completed`, which makes the workflow ask). A payment waiting on one of these is
    # asked about once, halfway to its deadline, instead of on a poll backoff (see
    # `PaymentWorkflow._await_customer`). Any other action (a QR code the customer scans elsewhere,
    # a provider that does not notify failures or whose approval needs our call) is polled: the
    # default, so a gateway that declares nothing keeps the safe behaviour.
    notified_actions: list[NextActionType] = Field(default_factory=list)


class PaymentPolicy(Contract):
    """The rules every payment follows, whatever its currency. The configuration's `[payment]`
    section extends this model (workers/config.py), so these are also its keys."""

    capture_delay_seconds: int = Field(default=0, ge=0)
    action_timeout_seconds: int = Field(default=900, gt=0)
    authorization_ttl_seconds: int = Field(default=7 * 24 * 3600, gt=0)
    # How long one run of the payment's workflow covers before it continues as new with the
    # payment's state (payments started before `long-lived-payments` closed at its end); 0: one run.
    settlement_window_seconds: int = Field(default=30 * 24 * 3600, ge=0)
    # How long the payment takes refunds, disputes and late events; None: the gateway's declared
    # `GatewayProfile.payment_window_seconds`.
    payment_window_seconds: int | None = Field(default=None, ge=0)
    # A run continues as new once its history is this long, whatever the period (bounded replay).
    max_history_events: int = Field(default=5000, ge=100)
    enable_fraud_check: bool = True
    risk_threshold: int = Field(default=75, ge=0, le=100)
    # First re-check of a payment waiting on a provider, for an action its gateway does not notify.
    status_poll_seconds: int = Field(default=30, gt=0)


class PaymentSettings(PaymentPolicy):
    """The part of the configuration a payment is started with; fixed for its whole life."""

    tds_threshold_minor: int | None = None  # ask the gateway for 3-D Secure at or above this amount
    # `[payment.routing]` has rules: a request naming no gateway is routed by the worker.
    routing_rules: bool = False


class RoutingRequest(Contract):
    """Sent by the API when the request names no gateway: the worker's routing rules choose one
    (by currency, method, amount, merchant) among the healthy candidates, before any money moves."""

    merchant: str  # the merchant whose API key created the payment


class RoutingView(Contract):
    """Which gateway routing chose for the payment, and why."""

    gateway: str
    reason: str  # e.g. "rule 1: first healthy candidate", "rule 1: stripe unhealthy, next candidate"
    skipped: list[str] = Field(default_factory=list)  # candidates passed over (circuit open)


class PaymentInput(Contract):
    """How a payment is started: everything the workflow needs, decided once by the API."""

    payment_id: str
    order_id: str
    gateway: GatewayProfile
    amount: Amount
    method: PaymentMethod
    capture_method: CaptureMethod = CaptureMethod.AUTOMATIC
    customer_id: str | None = None
    customer_ip: str | None = None
    customer_email: str | None = None
    return_url: str | None = None
    description: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    request_fingerprint: str  # hash of the API request, to tell a replay from a key reused for another
    settings: PaymentSettings = Field(default_factory=PaymentSettings)
    # Set on a later run of the payment's workflow: the state it takes up (workflows/payment_resume.py).
    resume: PaymentResume | None = None
    # Defaults, so that histories started before merchants existed still deserialize.
    merchant_id: str = DEFAULT_MERCHANT_ID  # the merchant whose API key created the payment
    # The gateway's own customer, for a saved payment method (which the gateway only charges
    # together with the customer it was saved for); `customer_id` stays the merchant's.
    provider_customer_id: str | None = None
    # None: the request named its gateway (never rerouted), or it was started before routing.
    routing: RoutingRequest | None = None


class PaymentView(Contract):
    """A payment's current state: the workflow's query result, the API's answer, the store's row."""

    id: str
    merchant_id: str = DEFAULT_MERCHANT_ID
    order_id: str
    gateway: str
    status: PaymentStatus
    amount: Amount
    captured_minor: int = 0
    refunded_minor: int = 0
    capture_method: CaptureMethod
    method: PaymentMethod
    customer_id: str | None = None
    customer_ip: str | None = None  # as the merchant sent it; the store indexes it for fraud velocity
    provider_payment_id: str | None = None
    provider_response: dict[str, str] = Field(default_factory=dict)
    next_action: NextAction | None = None
    failure: Failure | None = None
    fraud: FraudResult | None = None
    review: ReviewView | None = None
    routing: RoutingView | None = None
    refunds: list[RefundView] = Field(default_factory=list)
    disputes: list[DisputeView] = Field(default_factory=list)
    metadata: dict[str, str] = Field(default_factory=dict)
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None = None
    version: int = 0  # bumps on every transition; the store never applies an older one

    @property
    def decided(self) -> bool:
        """True once the caller of `POST /v1/payments` has an answer to act on."""
        return self.status not in (PaymentStatus.PENDING, PaymentStatus.OUTCOME_UNKNOWN)


class PaymentResume(Contract):
    """What a later run of a payment's workflow starts from: the state carried over a
    continue-as-new, or rebuilt from the store's projection for a payment whose workflow closed
    (see docs/ARCHITECTURE.md, "Long-lived payments"). Runs continue as new only with every
    received event applied, so there is no inbox to carry."""

    view: PaymentView
    authorized_minor: int = 0
    seen_event_ids: list[str] = Field(default_factory=list)  # the most recent provider event ids
    # Started on demand after the payment's workflow closed: a short run for one refund or event.
    reopened: bool = False


PaymentInput.model_rebuild()
