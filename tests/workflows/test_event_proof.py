"""Event proofs (workflows/event_proof.py): what a proof binds, key ids and rotation."""

from __future__ import annotations

import pytest

from tests.workflows.builders import gateway_event
from workflows.event_proof import EventKeys, ProofCheck
from workflows.gateway_io import GatewayEventKind
from workflows.money import Amount

OLD = b"o" * 32
NEW = b"n" * 32
EVENT = gateway_event("evt_1", GatewayEventKind.PAYMENT_SUCCEEDED, amount=Amount(minor=4999, currency="USD"))


def test_a_proof_binds_every_field_and_the_payment():
    keys = EventKeys({"k1": OLD}, "k1")
    proven = keys.prove(EVENT, "pay_1")
    assert keys.check(proven, "pay_1") is ProofCheck.VERIFIED
    assert keys.check(proven, "pay_2") is ProofCheck.INVALID
    bigger = proven.model_copy(update={"amount": Amount(minor=5000, currency="USD")})
    assert keys.check(bigger, "pay_1") is ProofCheck.INVALID
    failed = proven.model_copy(update={"kind": GatewayEventKind.PAYMENT_FAILED})
    assert keys.check(failed, "pay_1") is ProofCheck.INVALID
    assert keys.check(EVENT, "pay_1") is ProofCheck.MISSING


def test_rotation_accepts_every_held_key_and_proves_with_the_active_one():
    before = EventKeys({"k1": OLD}, "k1").prove(EVENT, "pay_1")
    rotated = EventKeys({"k1": OLD, "k2": NEW}, "k2")
    assert rotated.check(before, "pay_1") is ProofCheck.VERIFIED
    after = rotated.prove(EVENT, "pay_1")
    assert after.proof is not None and after.proof.key_id == "k2"
    assert EventKeys({"k2": NEW}, "k2").check(before, "pay_1") is ProofCheck.UNKNOWN_KEY


def test_keys_are_checked_and_never_shown():
    with pytest.raises(ValueError, match="at least 32 bytes"):
        EventKeys({"k1": b"short"}, "k1")
    with pytest.raises(ValueError, match="not one of the keys"):
        EventKeys({"k1": OLD}, "k2")
    assert "ooo" not in repr(EventKeys({"k1": OLD}, "k1"))
