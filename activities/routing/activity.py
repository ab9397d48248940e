"""Routing as a local activity: it reads this worker's in-process circuits, so it must run in the
worker that makes the gateway calls, and it is quick. The workflow calls it once, before the first
money-moving call, and only for a request that named no gateway."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import activity

from activities.routing.health import GatewayHealth
from activities.routing.rules import RoutingSettings, choose
from workflows import activity_names
from workflows.domain import GatewayProfile
from workflows.routing_io import RoutingCall, RoutingDecision


class RoutingActivities:
    def __init__(
        self, settings: RoutingSettings, profiles: dict[str, GatewayProfile], health: GatewayHealth
    ) -> None:
        self._settings = settings
        self._profiles = profiles
        self._health = health

    @activity.defn(name=activity_names.ROUTE_PAYMENT)
    async def route(self, call: RoutingCall) -> RoutingDecision:
        return choose(call, self._settings, self._profiles, self._health.admit)

    def definitions(self) -> list[Callable[..., Any]]:
        return [self.route]
