"""The Temporal connection's security from `[temporal]`: TLS, mTLS and API keys.

`client_security` turns the configuration into `Client.connect` arguments; `check_security` reads the
certificates the way the TLS handshake will (parse, key against certificate, validity dates) so that
`durapay config check` and process start fail on a bad file with its name, not with a handshake
error from the Rust core later.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from temporalio.service import TLSConfig

from workers.config import ConfigError, TemporalConfig


@dataclass(frozen=True)
class ClientSecurity:
    """`Client.connect(..., tls=..., api_key=...)`."""

    tls: TLSConfig | bool
    api_key: str | None


def client_security(temporal: TemporalConfig) -> ClientSecurity:
    check_security(temporal)
    api_key = temporal.api_key.get_secret_value() if temporal.api_key is not None else None
    if not temporal.uses_tls:
        return ClientSecurity(tls=False, api_key=None)
    key = temporal.tls_client_key.get_secret_value() if temporal.tls_client_key is not None else None
    tls = TLSConfig(
        server_root_ca_cert=_encoded(temporal.tls_ca_cert),
        domain=temporal.tls_server_name,
        client_cert=_encoded(temporal.tls_client_cert),
        client_private_key=_encoded(key),
    )
    return ClientSecurity(tls=tls, api_key=api_key)


def _encoded(pem: str | None) -> bytes | None:
    return pem.encode() if pem is not None else None


def check_security(temporal: TemporalConfig, *, now: dt.datetime | None = None) -> list[str]:
    """Validate the TLS material; returns lines describing it for `config check`. Raises
    `ConfigError` for unparsable PEM, a key that does not belong to the client certificate, or a
    client certificate outside its validity period."""
    now = now or dt.datetime.now(dt.UTC)
    lines = [f"temporal connection: {_mode(temporal)}"]
    if temporal.tls_ca_cert is not None:
        cas = _certificates(temporal.tls_ca_cert, "temporal.tls_ca_cert")
        lines.extend(f"temporal.tls_ca_cert: {_describe(cert)}" for cert in cas)
    if temporal.tls_client_cert is not None and temporal.tls_client_key is not None:
        cert = _certificates(temporal.tls_client_cert, "temporal.tls_client_cert")[0]
        try:
            key = serialization.load_pem_private_key(
                temporal.tls_client_key.get_secret_value().encode(), password=None
            )
        except (ValueError, TypeError) as exc:
            # Never quote the key: the message is about its shape only.
            raise ConfigError(
                f"temporal.tls_client_key: not an unencrypted PEM private key ({type(exc).__name__})"
            ) from None
        public = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        expected = cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        if public != expected:
            raise ConfigError(
                "temporal.tls_client_key does not belong to temporal.tls_client_cert "
                f"({cert.subject.rfc4514_string()})"
            )
        if now > cert.not_valid_after_utc:
            raise ConfigError(
                f"temporal.tls_client_cert expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
            )
        if now < cert.not_valid_before_utc:
            raise ConfigError(
                f"temporal.tls_client_cert is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
            )
        lines.append(f"temporal.tls_client_cert: {_describe(cert)}; key matches")
    return lines


def _mode(temporal: TemporalConfig) -> str:
    if not temporal.uses_tls:
        return "plaintext (no TLS)"
    parts = ["TLS"]
    parts.append("CA from tls_ca_cert" if temporal.tls_ca_cert else "system CAs")
    if temporal.tls_client_cert is not None:
        parts.append("client certificate (mTLS)")
    if temporal.api_key is not None:
        parts.append("API key")
    if temporal.tls_server_name:
        parts.append(f"server name {temporal.tls_server_name}")
    return ", ".join(parts)


def _certificates(pem: str, key: str) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(pem.encode())
    except ValueError as exc:
        raise ConfigError(f"{key}: not a PEM certificate ({exc})") from None
    return certs


def _describe(cert: x509.Certificate) -> str:
    return (
        f"{cert.subject.rfc4514_string()}, valid {cert.not_valid_before_utc:%Y-%m-%d} "
        f"to {cert.not_valid_after_utc:%Y-%m-%d}"
    )
