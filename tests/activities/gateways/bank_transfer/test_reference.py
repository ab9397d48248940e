from __future__ import annotations

import pytest

from activities.gateways.bank_transfer.reference import (
    creditor_reference,
    find_reference,
    is_valid,
    payment_reference,
    printed,
)


def test_worked_example_of_iso_11649() -> None:
    # INV2024000123 + RF00 -> 1823312024000123271500 mod 97 = 94 -> check digits 98 - 94 = 04
    assert creditor_reference("INV2024000123") == "RF04INV2024000123"
    assert creditor_reference("inv2024 000123") == "RF04INV2024000123"


def test_mod_97_check() -> None:
    assert is_valid("RF18539007547034")
    assert is_valid("rf18 5390 0754 7034")
    assert not is_valid("RF19539007547034")  # one check digit off
    assert not is_valid("RF18539007547035")  # one body digit off
    assert not is_valid("RF04")  # too short
    assert not is_valid("XX04INV2024000123")
    assert not is_valid("RF04INV2024000123" + "A" * 9)  # longer than 25


def test_payment_reference_is_a_pure_valid_function_of_the_id() -> None:
    ref = payment_reference("pay_abc", "DP")
    assert ref == payment_reference("pay_abc", "DP")
    assert ref != payment_reference("pay_abd", "DP")
    assert ref.startswith("RF") and ref[4:6] == "DP" and len(ref) == 4 + 2 + 12
    assert is_valid(ref)
    # every transposition or single change of the body is caught by the check digits
    body = ref[4:]
    swapped = body[1] + body[0] + body[2:]
    assert swapped == body or not is_valid(ref[:4] + swapped)


@pytest.mark.parametrize("prefix", ["DURAPAY123", "D-P", "É"])
def test_a_prefix_that_cannot_fit_is_refused(prefix: str) -> None:
    with pytest.raises(ValueError):
        payment_reference("pay_abc", prefix)


def test_many_ids_give_distinct_valid_references() -> None:
    refs = {payment_reference(f"pay_{n}", "") for n in range(5000)}
    assert len(refs) == 5000 and all(is_valid(r) for r in refs)


def test_printed_in_groups_of_four() -> None:
    assert printed("RF04INV2024000123") == "RF04 INV2 0240 0012 3"


def test_found_in_wrapped_remittance_text() -> None:
    ref = payment_reference("pay_abc", "DP")
    spaced = printed(ref)
    assert find_reference("Order 17, ref ", spaced[:7], spaced[7:] + " thanks") == ref
    assert find_reference("no reference here") is None
    assert find_reference("RF19539007547034") is None
