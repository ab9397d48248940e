"""The payment reference a payer writes on a bank transfer: an ISO 11649 creditor reference
(`RF` + two check digits + up to 21 letters and digits), derived from our payment id alone, so the
same payment always shows the same reference and nothing has to be stored to make one.

The check digits are ISO 7064 MOD 97-10, the IBAN's: a mistyped reference fails the check and is
never matched to another payment by accident.
"""

from __future__ import annotations

import hashlib
import re

# 12 base-36 characters of a hash of the payment id: ~62 bits, so two payments sharing one is
# not a practical concern, and with a short prefix the reference stays well under 25 characters.
_DIGEST_CHARS = 12
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
MAX_PREFIX = 25 - 4 - _DIGEST_CHARS
_RF_IN_TEXT = re.compile(r"RF\d{2}[0-9A-Z]{1,21}")


def _as_number(text: str) -> int:
    """ISO 7064 digits: 0-9 stay, A-Z become 10-35, read as one integer."""
    return int("".join(str(int(ch, 36)) for ch in text))


def creditor_reference(body: str) -> str:
    """`RF` + check digits + `body` (1-21 ASCII letters or digits)."""
    body = body.replace(" ", "").upper()
    if not (body.isascii() and body.isalnum() and 1 <= len(body) <= 21):
        raise ValueError("a creditor reference holds 1-21 ASCII letters or digits")
    return f"RF{98 - _as_number(body + 'RF00') % 97:02d}{body}"


def is_valid(reference: str) -> bool:
    """A well-formed RF reference whose check digits hold (spaces and case ignored)."""
    ref = reference.replace(" ", "").upper()
    return (
        5 <= len(ref) <= 25
        and ref.startswith("RF")
        and ref[2:4].isdigit()
        and ref.isascii()
        and ref.isalnum()
        and _as_number(ref[4:] + ref[:4]) % 97 == 1
    )


def payment_reference(payment_id: str, prefix: str) -> str:
    """The reference of payment `payment_id`: a pure function of the id and the configured prefix."""
    if len(prefix) > MAX_PREFIX or not (prefix == "" or (prefix.isascii() and prefix.isalnum())):
        raise ValueError(f"reference_prefix must be at most {MAX_PREFIX} ASCII letters or digits")
    number = int.from_bytes(hashlib.sha256(payment_id.encode()).digest()[:8], "big")
    chars = []
    for _ in range(_DIGEST_CHARS):
        number, digit = divmod(number, 36)
        chars.append(_ALPHABET[digit])
    return creditor_reference(prefix.upper() + "".join(chars))


def printed(reference: str) -> str:
    """In groups of four, as banks print it and payers type it."""
    return " ".join(reference[i : i + 4] for i in range(0, len(reference), 4))


def find_reference(*texts: str) -> str | None:
    """The first valid RF reference in remittance text, which banks wrap and space freely: the texts
    are joined and spaces removed before searching."""
    joined = "".join(texts).replace(" ", "").upper()
    for match in _RF_IN_TEXT.finditer(joined):
        # A greedy match may run into the text that follows; the longest valid prefix wins.
        candidate = match.group()
        for end in range(len(candidate), 4, -1):
            if is_valid(candidate[:end]):
                return candidate[:end]
    return None


def iban_is_valid(iban: str) -> bool:
    """ISO 13616 check digits: the same MOD 97-10 over the IBAN with its first four characters
    moved to the end. It catches typing errors; it does not prove the account exists."""
    value = iban.replace(" ", "").upper()
    return (
        15 <= len(value) <= 34
        and value[:2].isalpha()
        and value[2:4].isdigit()
        and value.isascii()
        and value.isalnum()
        and _as_number(value[4:] + value[:4]) % 97 == 1
    )
