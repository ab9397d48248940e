"""A fake Braintree gateway (the XML API the official SDK calls) on 127.0.0.1.

It checks what Braintree checks: Basic auth with the configured public / private key, the merchant
id in the path (`/merchants/<id>/...`), the API version header, XML bodies, amounts as decimals with
no more places than the currency has, the merchant account's currency, single-use nonces, vault
tokens and customer ids that must be free, refunds only of settled sales and never beyond what is
left, settlement only of authorized sales and never above the authorization, voids only of what is
not settled yet, and 3-D Secure when the sale asks for it (`options.three_d_secure.required`).

Braintree's sandbox nonces are understood: `fake-valid-nonce` (and `fake-valid-visa-nonce`,
`fake-valid-mastercard-nonce`), `fake-processor-declined-visa-nonce` (2000 Do Not Honor),
`fake-gateway-rejected-fraud-nonce`, `fake-three-d-secure-visa-full-authentication-nonce` and
`fake-three-d-secure-visa-failed-authentication-nonce`.

Duplicate checking as Braintree does it by default: the same amount, payment method and order id
within 30 s is gateway rejected (`duplicate`).

Settlement: a sale submitted for settlement settles the next time anyone reads it (`auto_settle`;
off: `settle(id)` does it), which emits `transaction_settled`. Notifications are signed exactly as
Braintree signs them (`notification(kind, subject)`), never pushed: tests and the demo deliver them.

Fault knobs (`faults`, a FaultPlan over operations named after their handlers: "create_transaction",
"search_ids", "search", "find_transaction", "submit_for_settlement", "void", "refund",
"create_customer", "create_payment_method", ...): 5xx, 429, latency and answers dropped after the work.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from activities.gateways.braintree.settings import BraintreeSettings
from activities.gateways.fake_server import FakeServer, FaultPlan
from workflows.money import exponent

MERCHANT_ID = "durapay_fake_merchant"
PUBLIC_KEY = "durapay_fake_public"
PRIVATE_KEY = "durapay_fake_private_0123456789abcdef"
# Merchant accounts and the one currency each settles in; the first is the default.
MERCHANT_ACCOUNTS = {"durapay_usd": "USD", "durapay_eur": "EUR", "durapay_jpy": "JPY", "durapay_kwd": "KWD"}

_CARD = {
    "card_type": "Visa",
    "last_4": "1111",
    "bin": "411111",
    "expiration_month": "12",
    "expiration_year": "2030",
}
NONCES: dict[str, dict[str, Any]] = {
    "fake-valid-nonce": {"card": _CARD},
    "fake-valid-visa-nonce": {"card": _CARD},
    "fake-valid-mastercard-nonce": {
        "card": {**_CARD, "card_type": "MasterCard", "last_4": "4444", "bin": "555555"}
    },
    "fake-processor-declined-visa-nonce": {
        "card": {**_CARD, "last_4": "0002"},
        "decline": ("2000", "Do Not Honor"),
    },
    "fake-gateway-rejected-fraud-nonce": {"card": {**_CARD, "last_4": "0019"}, "reject": "fraud"},
    "fake-three-d-secure-visa-full-authentication-nonce": {
        "card": {**_CARD, "last_4": "0002"},
        "three_d_secure": {"status": "authenticate_successful", "liability_shifted": True},
    },
    "fake-three-d-secure-visa-failed-authentication-nonce": {
        "card": {**_CARD, "last_4": "0028"},
        "three_d_secure": {"status": "authenticate_failed", "liability_shifted": False},
    },
}
DUPLICATE_WINDOW_SECONDS = 30
_PASSED_3DS = {"authenticate_successful", "authenticate_attempt_successful"}
_UNSETTLED = {"authorized", "submitted_for_settlement", "settlement_pending"}
_CAPTURED = {"submitted_for_settlement", "settling", "settled", "settlement_pending"}


class ValidationFailure(Exception):
    """Braintree's 422 `api-error-response` with one validation error."""

    def __init__(self, code: str, message: str, obj: str = "transaction", attribute: str = "base") -> None:
        super().__init__(message)
        self.code, self.message, self.obj, self.attribute = code, message, obj, attribute


# ---------------------------------------------------------------------------- XML


def _value(node: ET.Element) -> Any:
    kind = node.get("type")
    if node.get("nil") == "true":
        return None
    if kind == "array":
        return [_value(child) for child in node]
    if len(node):
        return {child.tag.replace("-", "_"): _value(child) for child in node}
    text = (node.text or "").strip()
    if kind == "boolean":
        return text == "true"
    if kind == "integer":
        return int(text)
    return text


def parse_xml(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    root = ET.fromstring(body)
    return {root.tag.replace("-", "_"): _value(root)}


def _node(tag: str, value: Any) -> str:
    name = tag.replace("_", "-")
    if value is None:
        return f'<{name} nil="true"/>'
    if isinstance(value, bool):
        return f'<{name} type="boolean">{str(value).lower()}</{name}>'
    if isinstance(value, int):
        return f'<{name} type="integer">{value}</{name}>'
    if isinstance(value, datetime):
        return f'<{name} type="datetime">{value.strftime("%Y-%m-%dT%H:%M:%SZ")}</{name}>'
    if isinstance(value, tuple):  # repeated elements, as in a search page
        return "".join(_node(tag, v) for v in value)
    if isinstance(value, list):
        return f'<{name} type="array">' + "".join(_node(_item_tag(tag), v) for v in value) + f"</{name}>"
    if isinstance(value, dict):
        return f"<{name}>" + "".join(_node(k, v) for k, v in value.items()) + f"</{name}>"
    text = str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return f"<{name}>{text}</{name}>"


def _item_tag(tag: str) -> str:
    return {"credit_cards": "credit_card", "errors": "error"}.get(tag, "item")


def render_xml(tag: str, value: Any) -> str:
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + _node(tag, value)


# ---------------------------------------------------------------------------- state


@dataclass
class FakeTransaction:
    id: str
    type: str  # sale | credit
    status: str
    amount: Decimal
    currency: str
    merchant_account_id: str
    order_id: str | None
    card: dict[str, Any]
    created_at: datetime
    three_d_secure: dict[str, Any] | None = None
    processor_response: tuple[str, str] = ("1000", "Approved")
    gateway_rejection_reason: str | None = None
    refund_ids: list[str] = field(default_factory=list)
    refunded_transaction_id: str | None = None
    paid_with: str = ""  # the nonce or vault token, for Braintree's duplicate check

    def to_xml(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "status": self.status,
            "amount": str(self.amount),
            "currency_iso_code": self.currency,
            "merchant_account_id": self.merchant_account_id,
            "order_id": self.order_id,
            "created_at": self.created_at,
            "updated_at": self.created_at,
            "processor_response_code": self.processor_response[0],
            "processor_response_text": self.processor_response[1],
            "gateway_rejection_reason": self.gateway_rejection_reason,
            "refund_ids": list(self.refund_ids),
            "refunded_transaction_id": self.refunded_transaction_id,
            "credit_card": dict(self.card),
            "three_d_secure_info": dict(self.three_d_secure) if self.three_d_secure else None,
        }


class FakeBraintree(FakeServer):
    def __init__(
        self,
        *,
        merchant_id: str = MERCHANT_ID,
        public_key: str = PUBLIC_KEY,
        private_key: str = PRIVATE_KEY,
        auto_settle: bool = True,
    ) -> None:
        super().__init__()
        self.merchant_id, self.public_key, self.private_key = merchant_id, public_key, private_key
        self.auto_settle = auto_settle
        self.faults = FaultPlan()
        self.transactions: dict[str, FakeTransaction] = {}
        self.customers: dict[str, dict[str, Any]] = {}
        self.cards: dict[str, dict[str, Any]] = {}  # vault token -> card with customer_id
        self.used_nonces: set[str] = set()
        self.notifications: list[tuple[str, dict[str, Any]]] = []  # (kind, subject) as emitted
        self.requests: list[str] = []  # operations, in order
        prefix = "/merchants/{merchant}"
        for method, path, handler in (
            ("POST", "/transactions", self._create_transaction),
            ("POST", "/transactions/advanced_search_ids", self._search_ids),
            ("POST", "/transactions/advanced_search", self._search),
            ("GET", "/transactions/{id}", self._find_transaction),
            ("PUT", "/transactions/{id}/submit_for_settlement", self._submit_for_settlement),
            ("PUT", "/transactions/{id}/void", self._void),
            ("POST", "/transactions/{id}/refund", self._refund),
            ("POST", "/customers", self._create_customer),
            ("GET", "/customers/{id}", self._find_customer),
            ("POST", "/payment_methods", self._create_payment_method),
            ("GET", "/payment_methods/any/{token}", self._find_payment_method),
            ("DELETE", "/payment_methods/any/{token}", self._delete_payment_method),
        ):
            self.app.router.add_route(method, prefix + path, self._handler(handler))

    async def start(self) -> FakeBraintree:  # type: ignore[override]
        await super().start()
        return self

    async def __aenter__(self) -> FakeBraintree:
        return await self.start()

    # -- configuration ----------------------------------------------------------------------------

    def settings(self, **overrides: Any) -> BraintreeSettings:
        values: dict[str, Any] = {
            "enabled": True,
            "merchant_id": self.merchant_id,
            "public_key": self.public_key,
            "private_key": self.private_key,
            "api_base": self.base_url,
            "currencies": list(MERCHANT_ACCOUNTS.values()),
            "merchant_accounts": {c: a for a, c in list(MERCHANT_ACCOUNTS.items())[1:]},
            "timeout_seconds": 5.0,
            "connect_timeout_seconds": 2.0,
            **overrides,
        }
        return BraintreeSettings.model_validate(values)

    def gateway_section(self, **overrides: Any) -> dict[str, Any]:
        """The raw `[payment.braintree]` config section for a running stack."""
        section = self.settings(**overrides).model_dump(mode="json", exclude_none=True)
        section["private_key"] = self.private_key
        return section

    # -- what tests read --------------------------------------------------------------------------

    def sales_for(self, payment_id: str) -> list[FakeTransaction]:
        return [t for t in self.transactions.values() if t.type == "sale" and t.order_id == payment_id]

    def refunds_of(self, sale: FakeTransaction) -> list[FakeTransaction]:
        return [self.transactions[r] for r in sale.refund_ids]

    def settle(self, transaction_id: str) -> None:
        txn = self.transactions[transaction_id]
        if txn.status in ("submitted_for_settlement", "settling", "settlement_pending"):
            txn.status = "settled"
            self.notifications.append(("transaction_settled", {"transaction": txn.to_xml()}))

    def decline_settlement(self, transaction_id: str) -> None:
        txn = self.transactions[transaction_id]
        txn.status = "settlement_declined"
        self.notifications.append(("transaction_settlement_declined", {"transaction": txn.to_xml()}))

    # -- notifications ----------------------------------------------------------------------------

    def sign(self, payload: str) -> str:
        key = hashlib.sha1(self.private_key.encode()).digest()
        return f"{self.public_key}|{hmac.new(key, payload.encode(), hashlib.sha1).hexdigest()}"

    def notification(
        self, kind: str, subject: dict[str, Any], *, timestamp: datetime | None = None
    ) -> tuple[dict[str, str], bytes]:
        """A signed delivery (headers, form body) of a notification, as Braintree posts it."""
        stamp = timestamp or datetime.now(UTC)
        xml = render_xml("notification", {"timestamp": stamp, "kind": kind, "subject": subject})
        payload = base64.encodebytes(xml.encode()).decode()
        body = urlencode({"bt_signature": self.sign(payload), "bt_payload": payload})
        return {"Content-Type": "application/x-www-form-urlencoded"}, body.encode()

    def emitted(self, kind: str, transaction_id: str) -> tuple[dict[str, str], bytes]:
        """The signed delivery of the `kind` notification emitted about `transaction_id`."""
        for emitted_kind, subject in self.notifications:
            if emitted_kind == kind and subject.get("transaction", {}).get("id") == transaction_id:
                return self.notification(kind, subject, timestamp=subject["transaction"]["created_at"])
        raise KeyError(f"no {kind} notification for {transaction_id}")

    def dispute(
        self, kind: str, sale: FakeTransaction, *, dispute_id: str | None = None
    ) -> tuple[dict[str, str], bytes]:
        status = {"dispute_opened": "open", "dispute_won": "won", "dispute_lost": "lost"}[kind]
        subject = {
            "dispute": {
                "id": dispute_id or f"dp_{secrets.token_hex(4)}",
                "amount_disputed": str(sale.amount),
                "currency_iso_code": sale.currency,
                "kind": "chargeback",
                "reason": "fraud",
                "status": status,
                "transaction": {"id": sale.id, "amount": str(sale.amount), "order_id": sale.order_id},
            }
        }
        return self.notification(kind, subject)

    def refund_failed(self, refund: FakeTransaction) -> tuple[dict[str, str], bytes]:
        refund.status = "processor_declined"
        return self.notification("refund_failed", {"transaction": refund.to_xml()})

    # -- the HTTP layer ---------------------------------------------------------------------------

    def _handler(self, handler: Any) -> Any:
        async def handle(request: web.Request) -> web.StreamResponse:
            operation = handler.__name__.lstrip("_")
            self.requests.append(operation)
            denied = self._authenticate(request)
            if denied is not None:
                return denied
            body = parse_xml(await request.read()) if request.can_read_body else {}

            async def work() -> web.StreamResponse:
                try:
                    status, tag, value = handler(request, body)
                except _Declined as declined:
                    return self._error_response(declined, declined.transaction)
                except ValidationFailure as failure:
                    return self._error_response(failure)
                if tag is None:
                    return web.Response(status=status)
                return web.Response(
                    status=status, text=render_xml(tag, value), content_type="application/xml"
                )

            return await self.faults.run(request, operation, work, lambda status: web.Response(status=status))

        return handle

    def _authenticate(self, request: web.Request) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        expected = "Basic " + base64.b64encode(f"{self.public_key}:{self.private_key}".encode()).decode()
        if not hmac.compare_digest(header.encode(), expected.encode()):
            return web.Response(status=401)
        if request.match_info["merchant"] != self.merchant_id:
            return web.Response(status=403)  # a key pair only works for its own merchant
        if not request.headers.get("X-ApiVersion"):
            return web.Response(status=426)
        return None

    def _error_response(
        self, failure: ValidationFailure, transaction: FakeTransaction | None = None
    ) -> web.Response:
        errors: dict[str, Any] = {"errors": []}
        if transaction is None:
            error = {"code": failure.code, "attribute": failure.attribute, "message": failure.message}
            errors[failure.obj] = {"errors": [error]}
        value: dict[str, Any] = {"errors": errors, "message": failure.message}
        if transaction is not None:
            value["transaction"] = transaction.to_xml()
        return web.Response(
            status=422, text=render_xml("api_error_response", value), content_type="application/xml"
        )

    # -- transactions -----------------------------------------------------------------------------

    def _transaction(self, transaction_id: str) -> FakeTransaction:
        txn = self.transactions.get(transaction_id)
        if txn is None:
            raise web.HTTPNotFound()
        if self.auto_settle and txn.status == "submitted_for_settlement":
            self.settle(txn.id)
        return txn

    def _amount(self, value: Any, currency: str, obj: str = "transaction") -> Decimal:
        try:
            amount = Decimal(str(value))
        except InvalidOperation:
            raise ValidationFailure("81503", "Amount is an invalid format.", obj, "amount") from None
        if not amount.is_finite() or amount.as_tuple().exponent < -exponent(currency):  # type: ignore[operator]
            raise ValidationFailure("81503", "Amount is an invalid format.", obj, "amount")
        if amount <= 0:
            raise ValidationFailure("81531", "Amount must be greater than zero.", obj, "amount")
        return amount

    def _create_transaction(self, request: web.Request, body: dict[str, Any]) -> tuple[int, str, Any]:
        params = body.get("transaction") or {}
        if params.get("type") != "sale":
            raise ValidationFailure("91523", "Transaction type is invalid.", attribute="type")
        if params.get("amount") is None:
            raise ValidationFailure("81502", "Amount is required.", attribute="amount")
        account = params.get("merchant_account_id") or next(iter(MERCHANT_ACCOUNTS))
        if account not in MERCHANT_ACCOUNTS:
            raise ValidationFailure(
                "91513", "Merchant account ID is invalid.", attribute="merchant_account_id"
            )
        currency = MERCHANT_ACCOUNTS[account]
        amount = self._amount(params["amount"], currency)
        order_id = params.get("order_id")
        if order_id is not None and len(order_id) > 255:
            raise ValidationFailure("91501", "Order ID is too long.", attribute="order_id")
        nonce, token = params.get("payment_method_nonce"), params.get("payment_method_token")
        if bool(nonce) == bool(token):
            raise ValidationFailure("91508", "Cannot determine payment method.")
        if token:
            vaulted = self.cards.get(token)
            if vaulted is None:
                raise ValidationFailure(
                    "91518", "Payment method token is invalid.", attribute="payment_method_token"
                )
            behaviour: dict[str, Any] = {"card": {k: vaulted[k] for k in _CARD}}
        else:
            behaviour = self._consume(str(nonce), "91565", "transaction")
        options = params.get("options") or {}
        duplicate = self._duplicate_of(amount, order_id, str(nonce or token))
        txn = FakeTransaction(
            id=secrets.token_hex(4),
            type="sale",
            status="authorized",
            amount=amount,
            currency=currency,
            merchant_account_id=account,
            order_id=order_id,
            card={**behaviour["card"], **({"token": token} if token else {})},
            created_at=datetime.now(UTC).replace(microsecond=0),
            three_d_secure=behaviour.get("three_d_secure"),
            paid_with=str(nonce or token),
        )
        self.transactions[txn.id] = txn
        required = (options.get("three_d_secure") or {}).get("required") is True
        passed = (txn.three_d_secure or {}).get("status") in _PASSED_3DS
        if duplicate:
            txn.status, txn.gateway_rejection_reason = "gateway_rejected", "duplicate"
        elif required and not passed:
            txn.status, txn.gateway_rejection_reason = "gateway_rejected", "three_d_secure"
        elif behaviour.get("reject"):
            txn.status, txn.gateway_rejection_reason = "gateway_rejected", behaviour["reject"]
        elif behaviour.get("decline"):
            txn.status, txn.processor_response = "processor_declined", behaviour["decline"]
        elif options.get("submit_for_settlement") is True:
            txn.status = "submitted_for_settlement"
        if txn.status in ("gateway_rejected", "processor_declined"):
            message = (
                "Gateway Rejected: " + str(txn.gateway_rejection_reason)
                if txn.gateway_rejection_reason
                else txn.processor_response[1]
            )
            raise _Declined(txn, message)
        return 201, "transaction", txn.to_xml()

    def _duplicate_of(self, amount: Decimal, order_id: str | None, paid_with: str) -> bool:
        """Braintree's duplicate transaction checking (on by default): a sale with the same amount,
        payment method and order id within the window is gateway rejected. Not idempotency: past
        the window the same sale goes through again."""
        now = datetime.now(UTC)
        return any(
            t.type == "sale"
            and t.status != "gateway_rejected"
            and (t.amount, t.order_id, t.paid_with) == (amount, order_id, paid_with)
            and (now - t.created_at).total_seconds() < DUPLICATE_WINDOW_SECONDS
            for t in self.transactions.values()
        )

    def _consume(self, nonce: str, consumed_code: str, obj: str) -> dict[str, Any]:
        if nonce not in NONCES:
            raise ValidationFailure("91565", "Unknown payment_method_nonce.", obj, "payment_method_nonce")
        if nonce in self.used_nonces and not nonce.startswith("fake-"):
            raise ValidationFailure(consumed_code, "Cannot use a payment_method_nonce more than once.", obj)
        # Braintree's sandbox `fake-*` nonces are reusable test values; a real nonce is single use.
        self.used_nonces.add(nonce)
        return NONCES[nonce]

    def _find_transaction(self, request: web.Request, body: dict[str, Any]) -> tuple[int, str, Any]:
        return 200, "transaction", self._transaction(request.match_info["id"]).to_xml()

    def _submit_for_settlement(self, request: web.Request, body: dict[str, Any]) -> tuple[int, str, Any]:
        txn = self._transaction(request.match_info["id"])
        if txn.status != "authorized":
            raise ValidationFailure("91507", "Cannot submit for settlement unless status is authorized.")
        amount = (body.get("transaction") or {}).get("amount")
        if amount is not None:
            settled = self._amount(amount, txn.currency)
            if settled > txn.amount:
                raise ValidationFailure("91522", "Settlement amount is too large.", attribute="amount")
            txn.amount = settled  # the rest of the authorization is released
        txn.status = "submitted_for_settlement"
        return 200, "transaction", txn.to_xml()

    def _void(self, request: web.Request, body: dict[str, Any]) -> tuple[int, str, Any]:
        txn = self._transaction(request.match_info["id"])
        if txn.status not in ("authorized", "submitted_for_settlement"):
            raise ValidationFailure(
                "91504",
                "Transaction can only be voided if status is authorized, submitted_for_settlement, or - for PayPal - settlement_pending.",
            )
        txn.status = "voided"
        return 200, "transaction", txn.to_xml()

    def _refund(self, request: web.Request, body: dict[str, Any]) -> tuple[int, str, Any]:
        sale = self._transaction(request.match_info["id"])
        params = body.get("transaction") or {}
        if sale.type != "sale":
            raise ValidationFailure("91505", "Cannot refund credit")
        if sale.status not in ("settled", "settling"):
            raise ValidationFailure("91506", "Cannot refund transaction unless it is settled.")
        left = sale.amount - sum(
            r.amount for r in self.refunds_of(sale) if r.status in _CAPTURED | {"authorized"}
        )
        amount = self._amount(params["amount"], sale.currency) if params.get("amount") is not None else left
        if amount > left:
            raise ValidationFailure("91521", "Refund amount is too large.", attribute="amount")
        refund = FakeTransaction(
            id=secrets.token_hex(4),
            type="credit",
            status="submitted_for_settlement",
            amount=amount,
            currency=sale.currency,
            merchant_account_id=sale.merchant_account_id,
            order_id=params.get("order_id"),
            card=dict(sale.card),
            created_at=datetime.now(UTC).replace(microsecond=0),
            refunded_transaction_id=sale.id,
        )
        self.transactions[refund.id] = refund
        sale.refund_ids.append(refund.id)
        return 201, "transaction", refund.to_xml()

    def _matching(self, search: dict[str, Any]) -> list[FakeTransaction]:
        found = list(self.transactions.values())
        for name, criterion in search.items():
            if name == "order_id":
                found = [t for t in found if t.order_id == criterion.get("is")]
            elif name == "type":
                found = [t for t in found if t.type in criterion]
            elif name == "ids":
                found = [t for t in found if t.id in criterion]
            else:
                raise ValidationFailure("91600", f"Unsupported search field {name}.", "search")
        return found

    def _search_ids(self, request: web.Request, body: dict[str, Any]) -> tuple[int, str, Any]:
        ids = [t.id for t in self._matching(body.get("search") or {})]
        return 200, "search_results", {"page_size": 50, "ids": ids}

    def _search(self, request: web.Request, body: dict[str, Any]) -> tuple[int, str, Any]:
        found = [self._transaction(t.id).to_xml() for t in self._matching(body.get("search") or {})]
        return 200, "credit_card_transactions", {"transaction": tuple(found)}

    # -- the vault --------------------------------------------------------------------------------

    def _create_customer(self, request: web.Request, body: dict[str, Any]) -> tuple[int, str, Any]:
        params = body.get("customer") or {}
        customer_id = params.get("id") or secrets.token_hex(4)
        if customer_id in self.customers:
            raise ValidationFailure("91609", "Customer ID has already been taken.", "customer", "id")
        self.customers[customer_id] = {
            "id": customer_id,
            "email": params.get("email"),
            "first_name": params.get("first_name"),
        }
        return 201, "customer", self._customer_xml(customer_id)

    def _customer_xml(self, customer_id: str) -> dict[str, Any]:
        cards = [self._card_xml(t) for t, c in self.cards.items() if c["customer_id"] == customer_id]
        return {**self.customers[customer_id], "credit_cards": cards}

    def _card_xml(self, token: str) -> dict[str, Any]:
        return {"token": token, **self.cards[token]}

    def _find_customer(self, request: web.Request, body: dict[str, Any]) -> tuple[int, str, Any]:
        customer_id = request.match_info["id"]
        if customer_id not in self.customers:
            raise web.HTTPNotFound()
        return 200, "customer", self._customer_xml(customer_id)

    def _create_payment_method(self, request: web.Request, body: dict[str, Any]) -> tuple[int, str, Any]:
        params = body.get("payment_method") or {}
        customer_id = params.get("customer_id")
        if customer_id not in self.customers:
            raise ValidationFailure("93105", "Customer ID is invalid.", "payment_method", "customer_id")
        token = params.get("token") or secrets.token_hex(4)
        if token in self.cards:
            raise ValidationFailure("91719", "Token is in use.", "credit_card", "token")
        behaviour = self._consume(params.get("payment_method_nonce") or "", "93107", "payment_method")
        self.cards[token] = {**behaviour["card"], "customer_id": customer_id}
        return 201, "credit_card", self._card_xml(token)

    def _find_payment_method(self, request: web.Request, body: dict[str, Any]) -> tuple[int, str, Any]:
        token = request.match_info["token"]
        if token not in self.cards:
            raise web.HTTPNotFound()
        return 200, "credit_card", self._card_xml(token)

    def _delete_payment_method(
        self, request: web.Request, body: dict[str, Any]
    ) -> tuple[int, str | None, Any]:
        if self.cards.pop(request.match_info["token"], None) is None:
            raise web.HTTPNotFound()
        return 200, None, None


class _Declined(ValidationFailure):
    """A sale Braintree made and refused: 422 with the transaction in the error response."""

    def __init__(self, transaction: FakeTransaction, message: str) -> None:
        super().__init__("", message)
        self.transaction = transaction
