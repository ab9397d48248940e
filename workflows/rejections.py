"""Error types an update validator or handler rejects with (`ApplicationError.type`). The API maps
each to an HTTP problem: see api/problems.py."""

from enum import StrEnum


class Rejection(StrEnum):
    IDEMPOTENCY_KEY_REUSED = "IdempotencyKeyReused"  # 422: same key, other request
    INVALID_STATE = "InvalidState"  # 409: e.g. capture of a payment not authorized
    AMOUNT_EXCEEDS = "AmountExceeds"  # 422: capture over authorized, refund over what is left
    NOT_SUPPORTED = "NotSupported"  # 422: e.g. partial capture on a gateway without it
