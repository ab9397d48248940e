"""An optional AES-256-GCM payload codec: what the Temporal server keeps of a payment (customer email
and IP address, metadata, provider references) becomes ciphertext that only this deployment's keys open.

Each encrypted payload names its key in its metadata (`encryption-key-id`), so keys rotate without
rewriting history: add a key, make it the active one (new payloads), and keep the old one for as long
as histories encrypted under it are retained. The key id is also the cipher's associated data, so a
payload relabelled with another key's id fails authentication instead of decrypting under that key.

Payloads without the `binary/encrypted` encoding pass through `decode` unchanged: turning the codec on
leaves the histories written before it (and the committed replay histories) readable.

A data converter that uses it: `dataclasses.replace(pydantic_data_converter, payload_codec=codec)`
(see `workers.worker.data_converter`). `api/codec_server.py` serves the same codec to the Temporal UI.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

ENCODING = b"binary/encrypted"
KEY_ID_METADATA = "encryption-key-id"
KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # GCM's standard nonce; random per payload, so one key must not seal ~2**32 payloads
KEY_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class CodecError(ValueError):
    """A payload this codec cannot open (unknown key, tampered, truncated), or an unusable key."""


def decode_key(text: str) -> bytes:
    """A key as configured (standard base64 of 32 random bytes, e.g. `openssl rand -base64 32`)."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise CodecError("not standard base64") from None  # never echo the text: it is the key
    if len(key) != KEY_BYTES:
        raise CodecError(f"an AES-256 key is {KEY_BYTES} bytes, this one is {len(key)}")
    return key


class AesGcmCodec(PayloadCodec):
    """Encrypts every payload under the active key; decrypts under whichever known key sealed it."""

    def __init__(self, keys: Mapping[str, bytes], active_key_id: str) -> None:
        for key_id, key in keys.items():
            if not KEY_ID_PATTERN.match(key_id):
                raise CodecError(f"key id {key_id!r} must be 1-64 of A-Z a-z 0-9 _ . -")
            if len(key) != KEY_BYTES:
                raise CodecError(
                    f"key {key_id!r}: an AES-256 key is {KEY_BYTES} bytes, this one is {len(key)}"
                )
        if active_key_id not in keys:
            raise CodecError(f"the active key {active_key_id!r} is not one of the keys")
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self._active = active_key_id

    @property
    def active_key_id(self) -> str:
        return self._active

    @property
    def key_ids(self) -> list[str]:
        return sorted(self._ciphers)

    def __repr__(self) -> str:  # key ids only: the keys stay inside the ciphers
        return f"AesGcmCodec(active={self._active!r}, keys={self.key_ids!r})"

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        cipher = self._ciphers[self._active]
        key_id = self._active.encode()
        encoded = []
        for payload in payloads:
            nonce = os.urandom(NONCE_BYTES)
            sealed = cipher.encrypt(nonce, payload.SerializeToString(), key_id)
            encoded.append(
                Payload(metadata={"encoding": ENCODING, KEY_ID_METADATA: key_id}, data=nonce + sealed)
            )
        return encoded

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._open(payload) for payload in payloads]

    def _open(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        raw_id = payload.metadata.get(KEY_ID_METADATA, b"")
        key_id = raw_id.decode("utf-8", errors="replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            # The known key ids stay out of it: the message reaches logs and, once, the codec
            # server's answers.
            raise CodecError(f"payload encrypted under unknown key {key_id[:64]!r}")
        try:
            plain = cipher.decrypt(payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:], raw_id)
        except InvalidTag:
            raise CodecError(
                f"payload under key {key_id!r} failed authentication: altered or truncated"
            ) from None
        return Payload.FromString(plain)
