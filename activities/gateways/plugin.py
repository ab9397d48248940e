"""The descriptor of one gateway plugin: everything the rest of durapay needs to know about a
provider, in one value, exported as `PLUGIN` by the provider's folder (`activities/gateways/<id>/`)
and listed in `activities.gateways.plugins.PLUGINS`.

Light on purpose: the settings model, the adapter and the fake are named by import path and
imported only when used, so a provider whose optional dependency (an SDK) is missing breaks only
itself, and only where it is used.
"""

from __future__ import annotations

import importlib
import types
import typing
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, SecretStr

from activities.gateways.base import Gateway, GatewayConfigError

if TYPE_CHECKING:
    from activities.gateways.demo_flow import DemoFlow
    from activities.gateways.testkit import GatewayKit


class FakeProvider(Protocol):
    """A running fake provider server (`async with` starts and stops it)."""

    @property
    def url(self) -> str:
        """Where the fake listens, as shown in `durapay dev`'s banner."""
        ...

    def gateway_section(self) -> dict[str, Any]:
        """The `[payment.<id>]` section that points the gateway at this fake."""
        ...


@runtime_checkable
class PushesWebhooks(Protocol):
    """A fake that sends its notifications by itself, as its provider does (Stripe): it needs the
    receiver's URL, known only once the API listens. The others' notifications are sent by the demo."""

    def deliver_webhooks_to(self, url: str) -> None:
        """Send every later event to `url` (`POST /webhooks/<id>` of our receiver)."""
        ...

    async def wait_for_webhooks(self) -> None:
        """Return once the deliveries in flight are done."""
        ...


@dataclass(frozen=True)
class WebhookNeeds:
    """How this provider's notifications reach `POST /webhooks/<id>`. The receiver itself needs
    nothing per provider: it hands the raw bytes, whatever their format, to the gateway, which
    verifies and parses them and renders the acknowledgement (`Gateway.webhook_ack`,
    `Gateway.webhook_reject`), all under the receiver's one body limit (`api.max_body_bytes`, no
    provider sends more). So these fields describe the protocol for readers and the docs."""

    body_format: Literal["json", "form"]
    acknowledgement: str


@dataclass(frozen=True)
class GatewayPlugin:
    """One gateway. `settings`, `builder` and `fake` are `"module:attribute"` import paths."""

    id: str  # the `[payment.<id>]` section name and the webhook route segment
    settings: str  # the pydantic settings model of `[payment.<id>]`
    builder: str  # `build(settings) -> Gateway`
    webhook: WebhookNeeds
    # A callable returning an async context manager that yields a `FakeProvider`; None when the
    # gateway needs no server (the mock is in-process).
    fake: str | None = None
    # A sequence of `activities.gateways.demo_flow.DemoFlow`: this gateway's flows in the demo, run
    # when its fake is running (the mock's: always).
    demo_flows: str | None = None
    # `"module:Kit"`, a `activities.gateways.testkit.GatewayKit`: the conformance suite's control
    # over this gateway's fake provider.
    testkit: str | None = None

    def settings_model(self) -> type[BaseModel]:
        model = _load(self.settings)
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise GatewayConfigError(f"{self.settings} is not a pydantic model")
        return model

    def build(self, settings: BaseModel) -> Gateway:
        build: Callable[[BaseModel], Gateway] = _load(self.builder)
        gateway = build(settings)
        if gateway.id != self.id:
            raise GatewayConfigError(f"{self.builder} built gateway {gateway.id!r} for [payment.{self.id}]")
        return gateway

    def start_fake(self) -> AbstractAsyncContextManager[FakeProvider]:
        if self.fake is None:
            raise GatewayConfigError(f"gateway {self.id!r} has no fake provider server")
        start: Callable[[], AbstractAsyncContextManager[FakeProvider]] = _load(self.fake)
        return start()

    def load_demo_flows(self) -> Sequence[DemoFlow]:
        return () if self.demo_flows is None else tuple(_load(self.demo_flows))

    def testkit_class(self) -> type[GatewayKit]:
        if self.testkit is None:
            raise GatewayConfigError(f"gateway {self.id!r} has no conformance testkit")
        # Imported here: test machinery stays out of a production import of the descriptors.
        from activities.gateways.testkit import GatewayKit

        kit = _load(self.testkit)
        if not (isinstance(kit, type) and issubclass(kit, GatewayKit)):
            raise GatewayConfigError(f"{self.testkit} is not a GatewayKit")
        return kit

    @property
    def secret_fields(self) -> tuple[str, ...]:
        """Dotted names of the settings fields that hold secrets (typed SecretStr, alone, optional
        or in a list), read from the settings model so they cannot drift from it."""
        return tuple(_secret_fields(self.settings_model(), prefix=""))


def _load(path: str) -> Any:
    module_name, _, attribute = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise GatewayConfigError(f"cannot import {module_name}: {exc}") from exc
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise GatewayConfigError(f"{module_name} has no {attribute!r}") from None


def _secret_fields(model: type[BaseModel], prefix: str) -> list[str]:
    names: list[str] = []
    for name, field in model.model_fields.items():
        if _mentions(field.annotation, SecretStr):
            names.append(prefix + name)
        for nested in _models_in(field.annotation):
            names.extend(_secret_fields(nested, prefix=f"{prefix}{name}."))
    return names


def _mentions(annotation: Any, wanted: type) -> bool:
    if annotation is wanted:
        return True
    return any(_mentions(arg, wanted) for arg in typing.get_args(annotation))


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and not isinstance(annotation, types.GenericAlias):
        return [annotation] if issubclass(annotation, BaseModel) else []
    return [model for arg in typing.get_args(annotation) for model in _models_in(arg)]
