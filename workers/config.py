"""durapay's configuration: one TOML file, overridable from the environment, validated at start.

Sources, strongest first:

1. explicit overrides (tests, the dev stack);
2. environment variables `DURAPAY_<SECTION>__<KEY>` (nested delimiter `__`), plus the shorthand
   `DURAPAY_API_KEYS=id1:secret1,id2:secret2`; any of them may instead be read from a file named by
   the same variable with `_FILE` appended (`DURAPAY_PAYMENT__STRIPE__SECRET_KEY_FILE=/run/...`);
3. a secrets directory (`DURAPAY_SECRETS_DIR`, e.g. a mounted Kubernetes secret): one file per key,
   named like the variable without its prefix, lower-case (`payment__stripe__secret_key`), and
   `api_keys` with the same `id:secret` pairs as `DURAPAY_API_KEYS`;
4. the TOML file (`--config`, else `DURAPAY_CONFIG`, else `./durapay.toml` when it exists);
5. the defaults below.

Gateway sections (`[payment.<gateway>]`) stay raw mappings here: each gateway module owns its
settings model and `activities.gateways.registry` validates them, so this module never has to learn
a provider's keys.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    InitSettingsSource,
    NestedSecretsSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from activities.gateways.plugins import PLUGINS
from activities.merchant_webhooks import MerchantEndpoint, secret_key
from api.auth import DEFAULT_MERCHANT, DEFAULT_SCOPES, SHA256_PREFIX, Scope
from api.limits import ApiLimits
from workers.codec import CodecError, decode_key
from workflows.domain import CaptureMethod, PaymentPolicy, PaymentSettings
from workflows.event_proof import EventKeys
from workflows.merchant_events import MerchantEventType
from workflows.money import exponent, is_known_currency

ENV_PREFIX = "DURAPAY_"
CONFIG_ENV = "DURAPAY_CONFIG"
SECRETS_DIR_ENV = "DURAPAY_SECRETS_DIR"
API_KEYS_ENV = "DURAPAY_API_KEYS"
DEFAULT_CONFIG_FILE = "durapay.toml"
MASK = "**********"

# Keys of raw mappings whose values are treated as secrets when displayed. A known gateway's secret
# fields come from its plugin (`GatewayPlugin.secret_fields`); this is the net under them, for a
# section no plugin claims (refused by the registry, yet shown) and for fraud_detection.
_SECRET_KEY_PATTERN = re.compile(
    r"secret|password|passphrase|private|token|credential|api_?key|apiv3|cert|signing", re.I
)
_API_KEY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
MIN_API_KEY_LENGTH = 16
# `id:sha256:<hex>` in DURAPAY_API_KEYS: the key's SHA-256 instead of the key (api/auth.py).
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


class ConfigError(Exception):
    """The configuration cannot be used; the message says which key and why."""


def parse_bind(value: str) -> tuple[str, int]:
    """`"127.0.0.1:9464"` -> `("127.0.0.1", 9464)`; `"[::1]:9464"` -> `("::1", 9464)`."""
    host, sep, port = value.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f'{value!r} is not host:port (e.g. "127.0.0.1:9464")')
    return host, int(port)


def _valid_bind(value: str | None) -> str | None:
    if value is not None:
        parse_bind(value)
    return value


def _usable_webhook_secret(value: SecretStr | None) -> SecretStr | None:
    if value is not None:
        secret_key(value)  # MerchantSecretError is a ValueError: reported against the key
    return value


class _Section(BaseModel):
    # A typo in a key must fail loudly at start, not silently fall back to a default.
    model_config = ConfigDict(extra="forbid")


# Other names a gateway section may be written under: the design's `[payment.wechatpay]`.
GATEWAY_ALIASES = {"wechatpay": "wechat_pay"}


class PaymentConfig(PaymentPolicy):
    """`[payment]`: the policy every payment starts with (its fields are declared once, in
    `workflows.domain.PaymentPolicy`), what the deployment accepts, and the gateway sections."""

    default_gateway: str = "mock"
    # Ask for 3-D Secure at or above this amount, read in each payment's own currency.
    tds_threshold: Decimal | None = Field(default=None, gt=0)
    # The capture method of a payment request that names none: automatic, or manual (hold funds
    # until POST /capture).
    auto_capture: bool = True
    # NoDecode: from the environment "USD,EUR" is more natural than JSON (see _split_currencies).
    supported_currencies: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["USD", "EUR", "GBP", "JPY", "CNY"]
    )
    # `[payment.<gateway>]` tables, validated by the gateway registry. Hidden from repr: they hold
    # provider secrets as plain strings until the registry turns them into SecretStr.
    gateways: dict[str, dict[str, Any]] = Field(default_factory=dict, repr=False)
    # `[payment.routing]`: validated against `activities.routing.rules.RoutingSettings` by the
    # worker (`routing_settings()`), like [fraud_detection]; not a gateway section.
    routing: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _collect_gateway_sections(cls, data: Any) -> Any:
        """TOML nests `[payment.stripe]` inside `[payment]`: every table-valued key but `routing`
        is a gateway."""
        if not isinstance(data, Mapping):
            return data
        data = dict(data)
        gateways = dict(data.pop("gateways", None) or {})
        for key in [k for k, v in data.items() if isinstance(v, Mapping) and k != "routing"]:
            gateways[key] = {**gateways.get(key, {}), **data.pop(key)}
        data["gateways"] = gateways
        return data

    @field_validator("tds_threshold", mode="before")
    @classmethod
    def _no_float_money(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            # The design wrote `tds_threshold = 3000  # $30.00`, in minor units; as an amount it
            # would be 3,000.00. Guessing either way asks for 3-D Secure at 100 times the wrong
            # amount, so neither is guessed.
            as_minor = Decimal(value).scaleb(-2)
            raise ValueError(
                f"tds_threshold = {value} is ambiguous: write it as an amount, "
                f'tds_threshold = "{as_minor:.2f}" if you meant {value} minor units (cents), or '
                f'tds_threshold = "{value}.00" for {value:,}.00'
            )
        if isinstance(value, float):
            raise ValueError(
                f'write money as a string, e.g. tds_threshold = "{value}": a TOML float '
                "is binary and cannot hold every decimal amount exactly"
            )
        if isinstance(value, str):
            try:
                return Decimal(value)
            except InvalidOperation:
                raise ValueError(f"{value!r} is not a decimal amount") from None
        return value

    @field_validator("supported_currencies", mode="before")
    @classmethod
    def _split_currencies(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value.lstrip().startswith("["):
                return json.loads(value)
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("supported_currencies")
    @classmethod
    def _known_currencies(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one currency is required")
        codes = [code.upper() for code in value]
        unknown = [code for code in codes if not is_known_currency(code)]
        if unknown:
            raise ValueError(f"unknown ISO 4217 currency code(s): {', '.join(unknown)}")
        return list(dict.fromkeys(codes))

    @field_validator("gateways")
    @classmethod
    def _gateway_names(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        named: dict[str, dict[str, Any]] = {}
        written_as: dict[str, str] = {}
        for written, section in value.items():
            name = GATEWAY_ALIASES.get(written.lower(), written.lower())
            if name in named:
                both = " and ".join(f"[payment.{w}]" for w in sorted((written_as[name], written)))
                raise ValueError(f"{both} are one gateway: keep one")
            named[name], written_as[name] = section, written
        return named

    @property
    def default_capture_method(self) -> CaptureMethod:
        return CaptureMethod.AUTOMATIC if self.auto_capture else CaptureMethod.MANUAL

    def tds_threshold_minor(self, currency: str) -> int | None:
        """The threshold in `currency`'s minor units, rounded *up*: amounts are whole minor units,
        so `amount >= ceil(threshold)` holds exactly when `amount >= threshold`."""
        if self.tds_threshold is None:
            return None
        return math.ceil(self.tds_threshold.scaleb(exponent(currency)))

    def settings_for(self, currency: str) -> PaymentSettings:
        """The settings a payment in `currency` starts with (fixed for its whole life)."""
        policy = {name: getattr(self, name) for name in PaymentPolicy.model_fields}
        return PaymentSettings(
            **policy,
            tds_threshold_minor=self.tds_threshold_minor(currency),
            routing_rules=bool(self.routing.get("rules")),
        )


class ApiConfig(ApiLimits):
    """`[api]`: where the API listens, its keys, and its limits (declared once, in
    `api.ports.ApiLimits`)."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)  # 0: an ephemeral port (tests)
    api_keys: dict[str, SecretStr] = Field(default_factory=dict)
    # Fixed-window limits shared by every API process through the database (per API key, payment
    # attempts), and webhook flood protection per instance in memory; off for benchmarks.
    rate_limiting: bool = True
    # GET /metrics (Prometheus, no API key) on this listener. Off by default: the listener faces
    # providers' webhooks, and traffic counts are nobody's business outside; turn it on where the
    # ingress keeps /metrics internal.
    metrics: bool = False

    @field_validator("api_keys")
    @classmethod
    def _strong_keys(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for key_id, secret in value.items():
            if not _API_KEY_ID.match(key_id):
                raise ValueError(f"API key id {key_id!r} must be 1-64 of A-Z a-z 0-9 _ . -")
            text = secret.get_secret_value()
            if text.startswith(SHA256_PREFIX):
                # A hash stands in for the secret: it must be one, or no key could ever match it.
                if not _SHA256_HEX.match(text.removeprefix(SHA256_PREFIX)):
                    raise ValueError(f"API key {key_id!r}: sha256: must be followed by 64 hex digits")
            elif len(text) < MIN_API_KEY_LENGTH:
                raise ValueError(f"API key {key_id!r} is shorter than {MIN_API_KEY_LENGTH} characters")
        return value


class MerchantWebhooksConfig(_Section):
    """`[merchant_webhooks]`: where the merchant's events are sent (Standard Webhooks). No `url`:
    events are only recorded (GET /v1/events lists them)."""

    url: str | None = Field(default=None, pattern=r"^https?://")
    # `whsec_` + base64 of at least 24 random bytes; env DURAPAY_MERCHANT_WEBHOOKS__SECRET.
    secret: SecretStr | None = None
    enabled_events: list[MerchantEventType] = Field(default_factory=lambda: list(MerchantEventType))

    _usable_secret = field_validator("secret")(_usable_webhook_secret)

    @model_validator(mode="after")
    def _secret_with_url(self) -> MerchantWebhooksConfig:
        if self.url and self.secret is None:
            raise ValueError("merchant_webhooks.url needs merchant_webhooks.secret to sign with")
        return self

    def endpoint(self) -> MerchantEndpoint | None:
        """The global endpoint: where the events of a merchant without its own go."""
        if self.url is None or self.secret is None:
            return None
        return MerchantEndpoint(self.url, self.secret, frozenset(self.enabled_events))


_PEM_KEYS = ("tls_ca_cert", "tls_client_cert", "tls_client_key")


class TemporalConfig(_Section):
    address: str = "127.0.0.1:7233"
    namespace: str = "default"
    task_queue: str = "durapay-payments"
    ui_port: int = Field(default=8233, ge=1, le=65535)
    # Where `durapay dev` keeps the dev server's database and logs.
    data_dir: Path = Path(".durapay")
    # The Temporal SDK's own metrics (workflow and activity task latencies, polls, slots) served by
    # `durapay worker` as Prometheus text on host:port. None: not exported.
    metrics_bind: str | None = None
    # Payload encryption (workers/codec.py): key id -> standard base64 of 32 random bytes. Secrets:
    # from the environment or the secrets directory, never the file. Empty: payloads in the clear.
    codec_keys: dict[str, SecretStr] = Field(default_factory=dict)
    codec_active_key: str | None = None  # the key new payloads are sealed with; required with keys
    # Browser origins allowed to call the codec server (/codec on the API); empty: the UI at
    # ui_base_url.
    codec_cors_origins: list[str] = Field(default_factory=list)

    # --- the connection's security (workers/temporal_tls.py): all off by default (the dev server).
    # TLS with the system's roots; implied by any key below and by api_key.
    tls: bool = False
    # PEM text. In this file name a path instead with `<key>_file` (`tls_ca_cert_file = "..."`);
    # from the environment `DURAPAY_TEMPORAL__TLS_CLIENT_KEY_FILE`, or a secrets-directory file
    # `temporal__tls_client_key`. The private key and the API key are secrets.
    tls_ca_cert: str | None = Field(default=None, repr=False)  # CA of the server's certificate
    tls_client_cert: str | None = Field(default=None, repr=False)  # mTLS, with tls_client_key
    tls_client_key: SecretStr | None = None
    tls_server_name: str | None = None  # the name the server's certificate carries, when not the host
    api_key: SecretStr | None = None  # Temporal Cloud API key, sent as "Authorization: Bearer"

    _bind = field_validator("metrics_bind")(_valid_bind)

    @model_validator(mode="before")
    @classmethod
    def _read_pem_files(cls, data: Any) -> Any:
        """`tls_*_file = "path"` in the TOML file -> the file's text in `tls_*`."""
        if not isinstance(data, Mapping):
            return data
        data = dict(data)
        for key in _PEM_KEYS:
            path = data.pop(f"{key}_file", None)
            if path is None:
                continue
            if data.get(key) is not None:
                raise ValueError(f"both {key} and {key}_file are set: keep one")
            try:
                data[key] = Path(path).read_text(encoding="utf-8")
            except OSError as exc:
                raise ValueError(f"{key}_file: cannot read {path}: {exc.strerror}") from None
        return data

    @model_validator(mode="after")
    def _client_cert_with_key(self) -> TemporalConfig:
        if (self.tls_client_cert is None) != (self.tls_client_key is None):
            raise ValueError("mTLS needs both tls_client_cert and tls_client_key (or neither)")
        return self

    @property
    def uses_tls(self) -> bool:
        return self.tls or any(
            value is not None
            for value in (self.tls_ca_cert, self.tls_client_cert, self.tls_server_name, self.api_key)
        )

    @field_validator("codec_keys")
    @classmethod
    def _usable_codec_keys(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for key_id, key in value.items():
            try:
                decode_key(key.get_secret_value())
            except CodecError as exc:
                raise ValueError(f"codec key {key_id!r}: {exc}") from None
        return value

    @model_validator(mode="after")
    def _active_codec_key(self) -> TemporalConfig:
        if self.codec_keys and self.codec_active_key not in self.codec_keys:
            raise ValueError(
                f"codec_active_key {self.codec_active_key!r} must name one of codec_keys "
                f"({', '.join(sorted(self.codec_keys))})"
            )
        if not self.codec_keys and self.codec_active_key is not None:
            raise ValueError("codec_active_key is set but codec_keys is empty")
        return self

    @property
    def codec_origins(self) -> list[str]:
        return self.codec_cors_origins or [self.ui_base_url]

    @property
    def ui_base_url(self) -> str:
        host = self.address.rsplit(":", 1)[0]
        return f"http://{host}:{self.ui_port}"

    def workflow_url(self, workflow_id: str) -> str:
        return f"{self.ui_base_url}/namespaces/{self.namespace}/workflows/{workflow_id}"


class WorkerConfig(_Section):
    """Worker tuning. The defaults suit one worker process (one core); scale out with processes.
    What the defaults cost and when to change them: docs/OPERATIONS.md, "Worker tuning"."""

    max_concurrent_activities: int = Field(default=100, gt=0)
    max_concurrent_local_activities: int = Field(default=200, gt=0)
    max_concurrent_workflow_tasks: int = Field(default=100, gt=0)
    max_cached_workflows: int = Field(default=1000, ge=0)
    graceful_shutdown_seconds: float = Field(default=10, ge=0)
    # Gateway call counts and latencies (prometheus-client) as Prometheus text on host:port, from
    # the process that runs the worker. None: not served.
    metrics_bind: str | None = None

    # /livez and /readyz of the worker process (workers/health.py) on host:port. None: not served.
    health_bind: str | None = None

    _bind = field_validator("metrics_bind", "health_bind")(_valid_bind)


class TelemetryConfig(_Section):
    """OpenTelemetry tracing (workers/telemetry.py). Off unless an endpoint is set."""

    # OTLP over HTTP, e.g. "http://otel-collector:4318" (the /v1/traces path is added).
    otlp_endpoint: str | None = None
    service_name: str = "durapay"


class LoggingConfig(_Section):
    # "text": for people; "json": one object per line for a log pipeline (workers/logging_setup.py).
    format: Literal["text", "json"] = "text"


class DatabaseConfig(_Section):
    # A secret: a production URL carries the database password.
    url: SecretStr = SecretStr("sqlite+aiosqlite:///.durapay/durapay.db")

    @property
    def display_url(self) -> str:
        """The URL with its password masked: safe for logs and `config check`."""
        raw = self.url.get_secret_value()
        return re.sub(r"(?<=://)([^:/@]+):[^@]*@", rf"\1:{MASK}@", raw)


class EventProofConfig(_Section):
    """`[event_proof]`: the keys that prove a gateway event was verified by durapay before it was
    signalled to a payment (workflows/event_proof.py). The API (webhook receiver) and the worker
    (reconciliation, and the check) need the same keys. Secrets: from the environment or the
    secrets directory. Empty: no event is proven, so every webhook is confirmed by a gateway
    lookup before it takes effect (slower, never unsafe)."""

    # key id -> at least 32 random characters (e.g. `openssl rand -base64 32`)
    keys: dict[str, SecretStr] = Field(default_factory=dict)
    active_key: str | None = None  # the key new proofs are made with; required with keys

    @model_validator(mode="after")
    def _usable(self) -> EventProofConfig:
        if self.keys and self.active_key not in self.keys:
            raise ValueError(
                f"active_key {self.active_key!r} must name one of keys ({', '.join(sorted(self.keys))})"
            )
        if not self.keys and self.active_key is not None:
            raise ValueError("active_key is set but keys is empty")
        self.event_keys()  # key ids and lengths; its messages never carry a key
        return self

    def event_keys(self) -> EventKeys | None:
        if not self.keys or self.active_key is None:
            return None
        keys = {key_id: key.get_secret_value().encode() for key_id, key in self.keys.items()}
        return EventKeys(keys, self.active_key)


# --- merchants and API key scopes ----------------------------------------------------------

_MERCHANT_ID = re.compile(r"^[a-z0-9_-]{1,64}$")


class MerchantConfig(_Section):
    """`[merchants.<merchant id>]`: who the merchant is to durapay. Its keys' secrets stay in
    DURAPAY_API_KEYS; only their ids are listed here."""

    api_keys: list[str] = Field(default_factory=list)
    # Where durapay sends this merchant's events (instead of the global [merchant_webhooks] url);
    # the secret signs them: DURAPAY_MERCHANTS__<ID>__WEBHOOK_SECRET, never the file.
    webhook_url: AnyHttpUrl | None = None
    webhook_secret: SecretStr | None = None
    # Gateways this merchant may use; empty: every enabled gateway.
    allowed_gateways: list[str] = Field(default_factory=list)
    # The gateway of a request that names none; None: [payment] default_gateway.
    default_gateway: str | None = None

    _usable_secret = field_validator("webhook_secret")(_usable_webhook_secret)

    @model_validator(mode="after")
    def _secret_with_url(self) -> MerchantConfig:
        if self.webhook_url and self.webhook_secret is None:
            raise ValueError("webhook_url needs webhook_secret to sign with")
        return self

    @model_validator(mode="after")
    def _default_allowed(self) -> MerchantConfig:
        if (
            self.default_gateway
            and self.allowed_gateways
            and self.default_gateway not in self.allowed_gateways
        ):
            raise ValueError(f"default_gateway {self.default_gateway!r} is not in allowed_gateways")
        return self


def _check_merchants(merchants: dict[str, MerchantConfig]) -> dict[str, MerchantConfig]:
    owners: dict[str, str] = {}
    for merchant_id, merchant in merchants.items():
        if not _MERCHANT_ID.match(merchant_id):
            raise ValueError(f"merchant id {merchant_id!r} must be 1-64 of a-z 0-9 _ -")
        for key_id in merchant.api_keys:
            if key_id in owners and owners[key_id] != merchant_id:
                raise ValueError(
                    f"API key {key_id!r} is listed under merchants {owners[key_id]!r} and {merchant_id!r}"
                )
            owners[key_id] = merchant_id
    return merchants


def _check_scopes(scopes: dict[str, list[str]]) -> dict[str, list[str]]:
    for key_id, granted in scopes.items():
        unknown = [scope for scope in granted if scope not in set(Scope)]
        if unknown:
            known = ", ".join(scope.value for scope in Scope)
            raise ValueError(f"API key {key_id!r}: unknown scope(s) {', '.join(unknown)} (known: {known})")
    return scopes


class DurapayConfig(BaseSettings):
    """The effective configuration of one durapay process."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    payment: PaymentConfig = Field(default_factory=PaymentConfig)
    # Validated against `activities.fraud.FraudSettings` by `fraud_settings()`; raw here so that
    # reading the configuration never needs the fraud engine's import.
    fraud_detection: dict[str, Any] = Field(default_factory=dict)
    api: ApiConfig = Field(default_factory=ApiConfig)
    temporal: TemporalConfig = Field(default_factory=TemporalConfig)
    worker: WorkerConfig = Field(default_factory=WorkerConfig)
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    event_proof: EventProofConfig = Field(default_factory=EventProofConfig)
    merchant_webhooks: MerchantWebhooksConfig = Field(default_factory=MerchantWebhooksConfig)
    telemetry: TelemetryConfig = Field(default_factory=TelemetryConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    # `[merchants.<id>]`; a key listed under none belongs to the `default` merchant.
    merchants: dict[str, MerchantConfig] = Field(default_factory=dict)
    # `[api_key_scopes]` `<key id> = ["ops", ...]`; a key not listed: payments:write + payments:read.
    api_key_scopes: dict[str, list[str]] = Field(default_factory=dict)

    _merchants = field_validator("merchants")(_check_merchants)
    _scopes = field_validator("api_key_scopes")(_check_scopes)

    def merchant_of_key(self) -> dict[str, str]:
        """API key id -> merchant id, for every configured key."""
        owners = {key_id: merchant_id for merchant_id, m in self.merchants.items() for key_id in m.api_keys}
        return {key_id: owners.get(key_id, DEFAULT_MERCHANT) for key_id in self.api.api_keys}

    def merchant_endpoint(self, merchant_id: str) -> MerchantEndpoint | None:
        """Where a merchant's events go: its own `[merchants.<id>]` webhook_url when it has one,
        else the global `[merchant_webhooks]` endpoint (the event types enabled there, for both)."""
        merchant = self.merchants.get(merchant_id)
        if merchant is None or merchant.webhook_url is None or merchant.webhook_secret is None:
            return self.merchant_webhooks.endpoint()
        enabled = frozenset(self.merchant_webhooks.enabled_events)
        return MerchantEndpoint(str(merchant.webhook_url), merchant.webhook_secret, enabled)

    def scopes_of_key(self) -> dict[str, frozenset[str]]:
        """API key id -> its scopes, for every configured key."""
        return {
            key_id: frozenset(self.api_key_scopes.get(key_id, DEFAULT_SCOPES)) for key_id in self.api.api_keys
        }

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        spec = _LOAD_SPEC.get() or _LoadSpec()
        sources: list[PydanticBaseSettingsSource] = [
            init_settings,
            _DurapayEnvSource(settings_cls, spec.environ),
        ]
        if spec.secrets_dir is not None:
            sources.append(
                _SecretsDirSource(
                    # The source pydantic-settings built (its settings class and init state), with
                    # the directory and naming chosen here.
                    file_secret_settings,
                    secrets_dir=spec.secrets_dir,
                    secrets_dir_missing="error",
                    secrets_prefix="",
                    secrets_nested_delimiter="__",
                )
            )
        if spec.config_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=spec.config_file))
        if spec.defaults:
            sources.append(InitSettingsSource(settings_cls, dict(spec.defaults)))
        return tuple(sources)

    def masked(self) -> dict[str, Any]:
        """The effective configuration as plain data, every secret replaced by a mask."""
        data = self.model_dump(mode="json", exclude={"database"})
        data["payment"]["gateways"] = {
            name: _mask_mapping(_mask_gateway_secrets(name, section))
            for name, section in self.payment.gateways.items()
        }
        data["fraud_detection"] = _mask_mapping(self.fraud_detection)
        data["database"] = {"url": self.database.display_url}
        for key in ("tls_ca_cert", "tls_client_cert"):  # long; `config check` summarises them
            if data["temporal"][key] is not None:
                data["temporal"][key] = "(PEM)"
        return data


def _mask_gateway_secrets(gateway_id: str, section: Mapping[str, Any]) -> dict[str, Any]:
    """The section with the secret fields its plugin declares masked (dotted names)."""
    masked = dict(section)
    plugin = PLUGINS.get(gateway_id)
    for field_name in plugin.secret_fields if plugin else ():
        *parents, leaf = field_name.split(".")
        table: Any = masked
        for parent in parents:
            if not isinstance(table.get(parent), Mapping):
                break
            nested = dict(table[parent])  # a copy: the configuration itself stays as it is
            table[parent] = nested
            table = nested
        else:
            if table.get(leaf) not in (None, "", []):
                table[leaf] = [MASK] * len(table[leaf]) if isinstance(table[leaf], list) else MASK
    return masked


def _mask_mapping(value: Any, key: str = "") -> Any:
    if isinstance(value, Mapping):
        return {k: _mask_mapping(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_mapping(v, key) for v in value]
    if isinstance(value, SecretStr):
        return MASK
    if key and _SECRET_KEY_PATTERN.search(key) and value not in (None, "", False, True):
        return MASK
    return value


def flatten(data: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """`{"api": {"port": 8080}}` -> `("api.port", 8080)`: the shape `config check` prints."""
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            yield from flatten(value, path)
        else:
            yield path, value


# --- loading ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _LoadSpec:
    config_file: Path | None = None
    secrets_dir: Path | None = None
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    defaults: Mapping[str, Any] = field(default_factory=dict)


# pydantic-settings builds sources inside the settings class; this carries the per-load choices
# (which file, which environment) there without making them class-wide state.
# None: a plain `DurapayConfig()`, which reads the environment and no file.
_LOAD_SPEC: ContextVar[_LoadSpec | None] = ContextVar("durapay_config_load", default=None)


@contextmanager
def _loading(spec: _LoadSpec) -> Iterator[None]:
    token = _LOAD_SPEC.set(spec)
    try:
        yield
    finally:
        _LOAD_SPEC.reset(token)


class _DurapayEnvSource(EnvSettingsSource):
    """`DURAPAY_*` variables, with `*_FILE` indirection and the `DURAPAY_API_KEYS` shorthand."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        # Lower-cased, as the base class does for case-insensitive matching.
        return {k.lower(): v for k, v in _resolve_env(self._environ).items()}


class _SecretsDirSource(NestedSecretsSettingsSource):
    """A secrets directory; its `api_keys` file holds `id:secret` pairs like `DURAPAY_API_KEYS`."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        secrets = dict(super()._load_env_vars())
        api_keys = secrets.pop("api_keys", None)
        if api_keys is not None:
            secrets["api__api_keys"] = json.dumps(parse_api_keys(api_keys))
        return secrets


def _resolve_env(environ: Mapping[str, str]) -> dict[str, str]:
    """Apply `_FILE` indirection and expand `DURAPAY_API_KEYS` into the nested variable."""
    env = {k.upper(): v for k, v in environ.items() if k.upper().startswith(ENV_PREFIX)}
    for name in [n for n in env if n.endswith("_FILE")]:
        target = name[: -len("_FILE")]
        if target in env:
            raise ConfigError(f"both {target} and {name} are set: keep one")
        path = Path(env.pop(name))
        try:
            env[target] = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{name}: cannot read {path}: {exc.strerror}") from None
    if API_KEYS_ENV in env:
        env[f"{ENV_PREFIX}API__API_KEYS"] = json.dumps(parse_api_keys(env.pop(API_KEYS_ENV)))
    return env


def parse_api_keys(spec: str) -> dict[str, str]:
    """`id1:secret1,id2:secret2` (commas or newlines) -> `{"id1": "secret1", ...}`."""
    keys: dict[str, str] = {}
    for item in re.split(r"[,\n]", spec):
        item = item.strip()
        if not item:
            continue
        key_id, sep, secret = item.partition(":")
        if not sep or not key_id.strip() or not secret.strip():
            # Never echo the item: it may be a secret pasted without its id.
            raise ConfigError(f"{API_KEYS_ENV}: expected id:secret pairs separated by commas")
        if key_id.strip() in keys:
            raise ConfigError(f"{API_KEYS_ENV}: API key id {key_id.strip()!r} appears twice")
        keys[key_id.strip()] = secret.strip()
    return keys


def default_config_file(environ: Mapping[str, str] | None = None) -> Path | None:
    environ = os.environ if environ is None else environ
    if environ.get(CONFIG_ENV):
        return Path(environ[CONFIG_ENV])
    candidate = Path(DEFAULT_CONFIG_FILE)
    return candidate if candidate.exists() else None


def load_config(
    config_file: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    secrets_dir: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    defaults: Mapping[str, Any] | None = None,
    use_default_file: bool = True,
) -> DurapayConfig:
    """Load and validate the configuration; raises `ConfigError` with every problem listed.

    `config_file` None means the default lookup (`DURAPAY_CONFIG`, then ./durapay.toml) unless
    `use_default_file` is False; `environ` defaults to `os.environ`. `overrides` (nested
    sections) win over every source; `defaults` lose to every source (e.g. `durapay dev`'s).
    """
    environ = os.environ if environ is None else environ
    if config_file is not None:
        path: Path | None = Path(config_file)
    else:
        path = default_config_file(environ) if use_default_file else None
    if path is not None and not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    if secrets_dir is None and environ.get(SECRETS_DIR_ENV):
        secrets_dir = environ[SECRETS_DIR_ENV]
    secrets_path = Path(secrets_dir) if secrets_dir is not None else None
    if secrets_path is not None and not secrets_path.is_dir():
        raise ConfigError(f"secrets directory {secrets_path} does not exist")
    # DURAPAY_CONFIG / DURAPAY_SECRETS_DIR choose the sources; they are not settings themselves.
    settings_env = {k: v for k, v in environ.items() if k.upper() not in (CONFIG_ENV, SECRETS_DIR_ENV)}
    spec = _LoadSpec(
        config_file=path, secrets_dir=secrets_path, environ=settings_env, defaults=dict(defaults or {})
    )
    try:
        with _loading(spec):
            return DurapayConfig(**dict(overrides or {}))
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path)) from None
    except ValueError as exc:  # a malformed TOML file or JSON-in-env value
        cause = f": {exc.__cause__}" if exc.__cause__ else ""
        raise ConfigError(f"{path or 'environment'}: {exc}{cause}") from None


def _describe(exc: ValidationError, path: Path | None) -> str:
    source = f" (file {path} and DURAPAY_* environment)" if path else " (DURAPAY_* environment)"
    lines = [f"invalid configuration{source}:"]
    for error in exc.errors(include_input=False, include_url=False):
        loc = ".".join(str(part) for part in error["loc"]) or "(root)"
        msg = error["msg"]
        if error["type"] == "extra_forbidden":
            msg = "unknown key (a typo?)"
        lines.append(f"  {loc}: {msg}")
    return "\n".join(lines)
