"""Signing and verification primitives shared by every gateway and fake provider.

Providers differ only in *what* bytes they sign and how they lay the result out in a header; the
crypto is one of two kinds (HMAC-SHA256 hex, RSA SHA256withRSA base64), and lives here once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from functools import lru_cache

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def hmac_sha256_hex(key: str | bytes, message: str | bytes) -> str:
    key_bytes = key.encode() if isinstance(key, str) else key
    msg_bytes = message.encode() if isinstance(message, str) else message
    return hmac.new(key_bytes, msg_bytes, hashlib.sha256).hexdigest()


def constant_time_equals(a: str | bytes, b: str | bytes) -> bool:
    a_bytes = a.encode() if isinstance(a, str) else a
    b_bytes = b.encode() if isinstance(b, str) else b
    return hmac.compare_digest(a_bytes, b_bytes)


def _pem(value: str | bytes) -> bytes:
    """Accept a PEM block, or the bare base64 body providers hand out (AliPay's console does)."""
    text = value.decode() if isinstance(value, bytes) else value
    text = text.strip()
    return text.encode()


@lru_cache(maxsize=32)
def load_private_key(pem: str | bytes) -> rsa.RSAPrivateKey:
    data = _pem(pem)
    if not data.startswith(b"-----"):
        data = b"-----BEGIN PRIVATE KEY-----\n" + data + b"\n-----END PRIVATE KEY-----\n"
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("expected an RSA private key")
    return key


@lru_cache(maxsize=64)
def load_public_key(pem: str | bytes) -> rsa.RSAPublicKey:
    """An RSA public key from a PEM public key, an X.509 certificate, or a bare base64 body."""
    data = _pem(pem)
    if b"BEGIN CERTIFICATE" in data:
        from cryptography import x509

        key = x509.load_pem_x509_certificate(data).public_key()
    else:
        if not data.startswith(b"-----"):
            data = b"-----BEGIN PUBLIC KEY-----\n" + data + b"\n-----END PUBLIC KEY-----\n"
        key = serialization.load_pem_public_key(data)
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("expected an RSA public key")
    return key


def rsa_sha256_sign(private_key_pem: str | bytes, message: str | bytes) -> str:
    """SHA256withRSA (PKCS#1 v1.5), base64: the scheme of WeChat Pay v3 and AliPay RSA2."""
    msg = message.encode() if isinstance(message, str) else message
    signature = load_private_key(private_key_pem).sign(msg, padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode()


def rsa_sha256_verify(public_key_pem: str | bytes, message: str | bytes, signature_b64: str) -> bool:
    msg = message.encode() if isinstance(message, str) else message
    try:
        signature = base64.b64decode(signature_b64, validate=True)
        load_public_key(public_key_pem).verify(signature, msg, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def generate_rsa_keypair(bits: int = 2048) -> tuple[str, str]:
    """(private PEM, public PEM): for fake providers and tests."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    return private_pem, public_pem
