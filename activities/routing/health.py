"""Per-gateway circuit breakers fed by the gateway call outcomes this worker process counts.

A circuit opens when, among the last `window_calls` calls (at least `min_calls` of them), the share
of transient outcomes (unavailable, rate limited, answer lost, not a gateway answer at all) reaches
`failure_ratio`. While open, routing passes the gateway over. After `open_seconds` one payment is
let through as a probe: its first call's outcome closes the circuit (any real answer, a decline
included: the gateway is up) or opens it again. A probe whose call never comes (the payment went
nowhere) frees the next probe after another `open_seconds`.

In-process and in memory: each worker judges from its own calls, which is what it can vouch for,
and a restarted worker starts with every circuit closed.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from activities.metrics import GatewayOutcome

_TRANSIENT = frozenset({GatewayOutcome.TRANSIENT, GatewayOutcome.UNKNOWN, GatewayOutcome.ERROR})


class CircuitSettings(BaseModel):
    """`[payment.routing.circuit]`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window_calls: int = Field(default=20, ge=1)
    min_calls: int = Field(default=10, ge=1)
    failure_ratio: float = Field(default=0.5, gt=0, le=1)
    open_seconds: float = Field(default=30, gt=0)


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"  # a probe is out


class CircuitBreaker:
    def __init__(self, settings: CircuitSettings, clock: Callable[[], float]) -> None:
        self._settings = settings
        self._clock = clock
        self._outcomes: deque[bool] = deque(maxlen=settings.window_calls)  # True: transient
        self.state = CircuitState.CLOSED
        self._since = 0.0  # when it opened, or when the probe went out

    def record(self, outcome: GatewayOutcome) -> None:
        transient = outcome in _TRANSIENT
        if self.state is not CircuitState.CLOSED:
            if self.state is CircuitState.HALF_OPEN and not transient:
                self.state = CircuitState.CLOSED
                self._outcomes.clear()
            elif transient:
                self._open()
            return
        self._outcomes.append(transient)
        s = self._settings
        if (
            len(self._outcomes) >= s.min_calls
            and sum(self._outcomes) / len(self._outcomes) >= s.failure_ratio
        ):
            self._open()

    def _open(self) -> None:
        self.state = CircuitState.OPEN
        self._since = self._clock()
        self._outcomes.clear()

    def admit(self) -> bool:
        """May a new payment go to this gateway? Claims the probe when one is due."""
        if self.state is CircuitState.CLOSED:
            return True
        if self._clock() - self._since < self._settings.open_seconds:
            return False
        self.state, self._since = CircuitState.HALF_OPEN, self._clock()
        return True


class GatewayHealth:
    """The circuits of every gateway this process calls; thread-safe (the metrics server thread
    never writes, but activities may run in threads)."""

    def __init__(
        self, settings: CircuitSettings | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._settings = settings or CircuitSettings()
        self._clock = clock
        self._circuits: dict[str, CircuitBreaker] = {}
        self._lock = threading.Lock()

    def _circuit(self, gateway: str) -> CircuitBreaker:
        circuit = self._circuits.get(gateway)
        if circuit is None:
            circuit = self._circuits[gateway] = CircuitBreaker(self._settings, self._clock)
        return circuit

    def record(self, gateway: str, outcome: GatewayOutcome) -> None:
        with self._lock:
            self._circuit(gateway).record(outcome)

    def admit(self, gateway: str) -> bool:
        with self._lock:
            return self._circuit(gateway).admit()

    def state(self, gateway: str) -> CircuitState:
        with self._lock:
            return self._circuit(gateway).state
