"""Proof that durapay itself checked a gateway event before signalling it to a payment.

The `gateway_event` signal can be sent by anyone with write access to the Temporal namespace (the
UI, the CLI), so the signal alone proves nothing. The webhook receiver, once it has verified the
provider's signature, and reconciliation, once the provider's lookup has answered, attach an
`EventProof`: an HMAC-SHA256 over the event's canonical fields and the id of the payment it is sent
to, under a key only the API and the worker hold (`[event_proof]` in the configuration). The
payment id is part of the MAC, so a proven event read from one payment's history cannot be replayed
to another.

The worker checks the proof in a local activity (activities/event_verification.py), so the verdict
is recorded in the history and a replay never depends on the keys configured at replay time.

Key rotation: every key has an id, which the proof names. Add the new key to `keys` everywhere,
then make it `active_key` (what new proofs are made with); drop the old key when no signal made
with it can still be waiting in a workflow's inbox. An event whose key is gone is not lost: like
any unproven event, it makes the workflow ask the gateway.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from enum import StrEnum

from workflows.domain import Contract
from workflows.gateway_io import EventProof, GatewayEvent

KEY_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
MIN_KEY_BYTES = 32
_DOMAIN = b"durapay.gateway_event.v1"


class ProofCheck(StrEnum):
    VERIFIED = "verified"
    MISSING = "missing"  # no proof at all (e.g. sent from the Temporal CLI)
    UNKNOWN_KEY = "unknown_key"  # made with a key this worker does not hold (rotated out, or made up)
    INVALID = "invalid"  # the MAC does not match the event and the payment


class EventCheck(Contract):
    """What the verification step is asked: is `event` proven for the payment `payment_id`?"""

    payment_id: str
    event: GatewayEvent


def _message(event: GatewayEvent, payment_id: str) -> bytes:
    # None fields are left out: a field added to GatewayEvent later does not change the MAC of
    # events that do not use it, so an API and a worker one release apart still agree.
    fields = event.model_dump(mode="json", exclude={"proof"}, exclude_none=True)
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return b"\n".join((_DOMAIN, payment_id.encode(), canonical.encode()))


class EventKeys:
    """The event proof keys: `active_key_id` makes new proofs, every key is accepted."""

    def __init__(self, keys: Mapping[str, bytes], active_key_id: str) -> None:
        for key_id, key in keys.items():
            if not KEY_ID_PATTERN.match(key_id):
                raise ValueError(f"event proof key id {key_id!r} must be 1-64 of A-Z a-z 0-9 _ . -")
            if len(key) < MIN_KEY_BYTES:
                raise ValueError(f"event proof key {key_id!r} must be at least {MIN_KEY_BYTES} bytes")
        if active_key_id not in keys:
            raise ValueError(f"the active event proof key {active_key_id!r} is not one of the keys")
        self._keys = dict(keys)
        self._active = active_key_id

    def __repr__(self) -> str:  # key ids only
        return f"EventKeys(active={self._active!r}, keys={sorted(self._keys)!r})"

    def prove(self, event: GatewayEvent, payment_id: str) -> GatewayEvent:
        """`event` with a proof for the payment `payment_id`."""
        mac = hmac.new(self._keys[self._active], _message(event, payment_id), hashlib.sha256).hexdigest()
        return event.model_copy(update={"proof": EventProof(key_id=self._active, mac=mac)})

    def check(self, event: GatewayEvent, payment_id: str) -> ProofCheck:
        proof = event.proof
        if proof is None:
            return ProofCheck.MISSING
        key = self._keys.get(proof.key_id)
        if key is None:
            return ProofCheck.UNKNOWN_KEY
        expected = hmac.new(key, _message(event, payment_id), hashlib.sha256).hexdigest()
        return ProofCheck.VERIFIED if hmac.compare_digest(expected, proof.mac) else ProofCheck.INVALID
