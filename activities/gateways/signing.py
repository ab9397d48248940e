"""Signing and verification primitives shared by every gateway and fake provider.

Providers differ only in *what* bytes they sign and how they lay the result out in a header; the
crypto is one of two kinds (HMAC-SHA256 hex, RSA SHA256withRSA base64), and lives here once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import string
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from cryptography import x509
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID


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
    key: PublicKeyTypes
    if b"BEGIN CERTIFICATE" in data:
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
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private_pem, public_pem


# --- What gets signed: the two canonical layouts RSA providers use -----------------------------


def line_message(*parts: str) -> str:
    """Each part followed by a newline, the last one included: WeChat Pay v3 signs
    `METHOD\nURL\nts\nnonce\nbody\n` (requests) and `ts\nnonce\nbody\n` (responses, notifications)."""
    return "".join(f"{part}\n" for part in parts)


def sorted_params_content(params: Mapping[str, str], exclude: Iterable[str] = ()) -> str:
    """`k=v&k=v` over the keys in ASCII order, empty values dropped, values as given (decoded):
    AliPay's `getSignContent` (requests: without `sign`; notifications: without `sign` and `sign_type`)."""
    skip = set(exclude)
    return "&".join(f"{k}={params[k]}" for k in sorted(params) if k not in skip and params[k] != "")


_NONCE_ALPHABET = string.ascii_uppercase + string.digits


def random_nonce(length: int = 32) -> str:
    """A fresh nonce for a signature (not an idempotency key: those are derived, never random)."""
    return "".join(secrets.choice(_NONCE_ALPHABET) for _ in range(length))


# --- AEAD_AES_256_GCM: WeChat Pay v3 notification resources and platform certificates --------


class DecryptionError(ValueError):
    """The ciphertext, its tag, nonce or associated data do not match the key."""


def _aes_key(key: str | bytes) -> AESGCM:
    key_bytes = key.encode() if isinstance(key, str) else key
    if len(key_bytes) != 32:
        raise ValueError("AEAD_AES_256_GCM needs a 32-byte key")
    return AESGCM(key_bytes)


def aes_256_gcm_encrypt(
    key: str | bytes, nonce: str | bytes, associated_data: str | bytes, plaintext: str | bytes
) -> str:
    """base64(ciphertext || 16-byte tag), RFC 5116: the layout WeChat Pay puts in `ciphertext`."""
    nonce_bytes = nonce.encode() if isinstance(nonce, str) else nonce
    aad = associated_data.encode() if isinstance(associated_data, str) else associated_data
    data = plaintext.encode() if isinstance(plaintext, str) else plaintext
    return base64.b64encode(_aes_key(key).encrypt(nonce_bytes, data, aad or None)).decode()


def aes_256_gcm_decrypt(
    key: str | bytes, nonce: str | bytes, associated_data: str | bytes, ciphertext_b64: str
) -> bytes:
    nonce_bytes = nonce.encode() if isinstance(nonce, str) else nonce
    aad = associated_data.encode() if isinstance(associated_data, str) else associated_data
    try:
        data = base64.b64decode(ciphertext_b64, validate=True)
        return _aes_key(key).decrypt(nonce_bytes, data, aad or None)
    except (InvalidTag, ValueError, TypeError) as exc:
        raise DecryptionError("AEAD_AES_256_GCM decryption failed") from exc


# --- X.509: WeChat Pay platform certificates are keyed by their serial number ---------------


def certificate_serial_hex(certificate_pem: str | bytes) -> str:
    """The serial number as WeChat Pay writes it (`Wechatpay-Serial`): upper-case hex."""
    cert = x509.load_pem_x509_certificate(_pem(certificate_pem))
    return format(cert.serial_number, "X")


def certificate_validity(certificate_pem: str | bytes) -> tuple[datetime, datetime]:
    cert = x509.load_pem_x509_certificate(_pem(certificate_pem))
    return cert.not_valid_before_utc, cert.not_valid_after_utc


def self_signed_certificate(
    private_key_pem: str | bytes, common_name: str, *, serial_number: int | None = None, days: int = 365
) -> str:
    """A certificate for a fake provider's platform key (tests only: nothing trusts it but a fake)."""
    key = load_private_key(private_key_pem)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial_number or x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()
