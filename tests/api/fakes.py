"""In-memory implementations of api.ports for API tests, and a server on a real ephemeral port."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import SecretStr

from activities.gateways.signing import constant_time_equals, hmac_sha256_hex
from api.app import AccessLogger, create_app
from api.limits import ApiLimits
from api.ports import ApiDeps, PaymentEvent, WebhookRejected
from workflows.domain import CaptureMethod, CardMethod, GatewayProfile, PaymentStatus, PaymentView
from workflows.gateway_io import GatewayEvent
from workflows.money import Amount
from workflows.webhook_inbox import WebhookOutcome

API_KEY_ID = "key_test"
API_SECRET = "sk_test_0123456789abcdef"
AUTH = {"Authorization": f"Bearer {API_SECRET}"}
WEBHOOK_SECRET = "whsec_test"
SIGNATURE_HEADER = "X-Fake-Signature"

PROFILE = GatewayProfile(
    id="mock",
    name="Mock",
    methods=["card", "wallet:wechat_pay"],
    currencies=["USD", "EUR", "JPY", "KWD"],
    min_minor=50,
    max_minor=1_000_000,
    supports_manual_capture=True,
)
AUTO_ONLY = GatewayProfile(
    id="autoonly", name="Auto Only", methods=["card"], currencies=["USD"], supports_manual_capture=False
)


class UnreachableTemporal:
    """Stands in for the Temporal client where a request must be refused before anything starts."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the API touched Temporal ({name}) for a request it should have refused")


@dataclass
class FakeStore:
    views: dict[str, PaymentView] = field(default_factory=dict)
    provider_refs: dict[tuple[str, str], str] = field(default_factory=dict)

    async def recorded(self, payment_ids: Collection[str]) -> set[str]:
        return {payment_id for payment_id in payment_ids if payment_id in self.views}

    async def get(self, payment_id: str) -> PaymentView | None:
        return self.views.get(payment_id)

    async def page(
        self, merchant_id: str, *, after: tuple[datetime, str] | None = None, limit: int = 10, **filters: Any
    ) -> tuple[list[PaymentView], bool]:
        def matches(view: PaymentView) -> bool:
            if view.merchant_id != merchant_id or (after and (view.created_at, view.id) >= after):
                return False
            for name, value in filters.items():
                if value is None:
                    continue
                if name == "created_gte" and view.created_at < value:
                    return False
                if name == "created_lt" and view.created_at >= value:
                    return False
                if not name.startswith("created_") and getattr(view, name) != value:
                    return False
            return True

        found = sorted(filter(matches, self.views.values()), key=lambda v: (v.created_at, v.id), reverse=True)
        return found[:limit], len(found) > limit

    async def position(self, merchant_id: str, payment_id: str) -> tuple[datetime, str] | None:
        view = self.views.get(payment_id)
        return (view.created_at, view.id) if view and view.merchant_id == merchant_id else None

    async def events(self, payment_id: str) -> list[PaymentEvent]:
        return []

    async def payment_id_for_provider_ref(self, gateway: str, provider_payment_id: str) -> str | None:
        return self.provider_refs.get((gateway, provider_payment_id))


@dataclass
class InboxEntry:
    gateway: str
    event_id: str
    payment_id: str | None
    verified: bool
    outcome: WebhookOutcome
    event_type: str


@dataclass
class FakeInbox:
    entries: list[InboxEntry] = field(default_factory=list)

    async def record(self, **entry: Any) -> bool:
        first = not any(
            e.gateway == entry["gateway"] and e.event_id == entry["event_id"] for e in self.entries
        )
        self.entries.append(InboxEntry(**entry))
        return first


class FakeProfiles:
    def __init__(self, *profiles: GatewayProfile) -> None:
        self._profiles = {p.id: p for p in profiles}

    def get(self, gateway_id: str) -> GatewayProfile | None:
        return self._profiles.get(gateway_id)


class FakeWebhooks:
    """A provider that signs the raw body with HMAC-SHA256 and posts `{"events": [GatewayEvent...]}`."""

    def __init__(self, *gateways: str, rejection: tuple[int, bytes, str] | None = None) -> None:
        self._gateways = set(gateways)
        self._rejection = rejection  # None: like Stripe, any non-2xx will do

    def known(self, gateway_id: str) -> bool:
        return gateway_id in self._gateways

    async def parse(self, gateway_id: str, headers: Mapping[str, str], body: bytes) -> list[GatewayEvent]:
        signature = headers.get(SIGNATURE_HEADER, "")
        if not constant_time_equals(signature, hmac_sha256_hex(WEBHOOK_SECRET, body)):
            raise WebhookRejected("signature mismatch")
        return [GatewayEvent.model_validate(event) for event in json.loads(body)["events"]]

    def ack(self, gateway_id: str) -> tuple[int, bytes, str]:
        return 200, b'{"code":"SUCCESS"}', "application/json"

    def reject(self, gateway_id: str) -> tuple[int, bytes, str] | None:
        return self._rejection

    def challenge(self, gateway_id: str, query: Mapping[str, str]) -> tuple[int, bytes, str] | None:
        return None


def signed(events: list[GatewayEvent]) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"events": [e.model_dump(mode="json") for e in events]}).encode()
    return body, {SIGNATURE_HEADER: hmac_sha256_hex(WEBHOOK_SECRET, body), "Content-Type": "application/json"}


class CountingRateLimiter:
    def __init__(self) -> None:
        self.hits: dict[str, int] = {}
        self.rounds = 0  # calls of hit_many: each one round of writes

    async def hit(self, key: str, window_s: int, limit: int) -> tuple[bool, float]:
        self.hits[key] = self.hits.get(key, 0) + 1
        return self.hits[key] <= limit, 2.5

    async def hit_many(self, hits: Sequence[tuple[str, int, int]]) -> list[tuple[bool, float]]:
        self.rounds += 1
        return [await self.hit(key, window_s, limit) for key, window_s, limit in hits]


def make_deps(client: Any = None, **overrides: Any) -> ApiDeps:
    """`limits` is a mapping of `ApiLimits` fields, over this module's small body limit."""
    store = overrides.pop("store", FakeStore())
    limits = ApiLimits(**{"max_body_bytes": 4096, **overrides.pop("limits", {})})
    deps = ApiDeps(
        client=client if client is not None else UnreachableTemporal(),
        task_queue="unused",
        api_keys={API_KEY_ID: SecretStr(API_SECRET), "key_other": SecretStr("sk_test_other")},
        payments=store,
        provider_refs=store,
        webhooks=FakeWebhooks("mock"),
        inbox=FakeInbox(),
        profiles=FakeProfiles(PROFILE, AUTO_ONLY),
        supported_currencies=frozenset({"USD", "EUR", "JPY", "KWD", "GBP"}),
        limits=limits,
    )
    return replace(deps, **overrides)


@asynccontextmanager
async def serve(deps: ApiDeps) -> AsyncIterator[str]:
    """The app on 127.0.0.1 with an ephemeral port; yields its base URL."""
    runner = web.AppRunner(create_app(deps), access_log_class=AccessLogger)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


def a_view(payment_id: str = "pay_" + "a" * 26, **overrides: Any) -> PaymentView:
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    fields: dict[str, Any] = dict(
        id=payment_id,
        order_id="o-1",
        gateway="mock",
        status=PaymentStatus.PAID,
        amount=Amount(minor=4999, currency="USD"),
        captured_minor=4999,
        capture_method=CaptureMethod.AUTOMATIC,
        method=CardMethod(token="pm_secret_token", last4="4242", brand="visa", fingerprint="fp_x"),
        created_at=now,
        updated_at=now,
        completed_at=now,
    )
    fields.update(overrides)
    return PaymentView(**fields)
