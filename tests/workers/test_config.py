"""Configuration: TOML + environment + secret files, validation messages, masking."""

from __future__ import annotations

import base64
import json
import re
from decimal import Decimal
from pathlib import Path

import pytest

from activities.gateways.plugins import PLUGINS
from workers import config as config_module
from workers.config import MASK, ConfigError, flatten, load_config, parse_api_keys

SECRETS = {
    "api": "k1-secret-0123456789",
    "stripe": "sk_test_supersecret42",
    "webhook": "whsec_from_env_var_77",
    "merchant_webhook": "whsec_" + base64.b64encode(b"merchant-webhook-secret-0123").decode(),
    "db": "db-password-9876",
    "filesecret": "file-secret-value-55",
    "dirsecret": "dir-secret-value-66",
}

TOML = f"""
[payment]
default_gateway = "mock"
tds_threshold = "50.005"
supported_currencies = ["usd", "JPY", "KWD"]
action_timeout_seconds = 120

[payment.mock]
enabled = true

[payment.stripe]
secret_key = "{SECRETS["stripe"]}"

[fraud_detection]
max_amount = "5000"

[api]
port = 9000

[temporal]
task_queue = "q1"
"""


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "durapay.toml"
    path.write_text(TOML)
    return path


def test_defaults_without_any_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no ./durapay.toml here
    config = load_config(environ={})
    assert config.api.host == "127.0.0.1" and config.api.port == 8080
    assert config.temporal.address == "127.0.0.1:7233" and config.temporal.ui_port == 8233
    assert config.payment.action_timeout_seconds == 900
    assert config.database.url.get_secret_value() == "sqlite+aiosqlite:///.durapay/durapay.db"
    assert config.api.api_keys == {}


def test_toml_sections_and_gateway_tables(config_file: Path) -> None:
    config = load_config(config_file, environ={})
    assert config.payment.supported_currencies == ["USD", "JPY", "KWD"]
    assert config.payment.gateways == {"mock": {"enabled": True}, "stripe": {"secret_key": SECRETS["stripe"]}}
    assert config.fraud_detection == {"max_amount": "5000"}
    assert config.api.port == 9000
    assert config.temporal.task_queue == "q1"


def test_payment_settings_convert_threshold_per_currency(config_file: Path) -> None:
    payment = load_config(config_file, environ={}).payment
    # 50.005 in a 2-decimal currency: 5001 is the smallest whole amount at or above it.
    assert payment.settings_for("USD").tds_threshold_minor == 5001
    assert payment.settings_for("JPY").tds_threshold_minor == 51
    assert payment.settings_for("KWD").tds_threshold_minor == 50005
    settings = payment.settings_for("USD")
    assert settings.action_timeout_seconds == 120
    assert settings.enable_fraud_check is True and settings.risk_threshold == 75


def test_environment_overrides_toml(config_file: Path) -> None:
    env = {
        "DURAPAY_API__PORT": "9100",
        "DURAPAY_PAYMENT__RISK_THRESHOLD": "40",
        "DURAPAY_PAYMENT__SUPPORTED_CURRENCIES": "eur, gbp",
        "DURAPAY_PAYMENT__STRIPE__WEBHOOK_SECRET": SECRETS["webhook"],
        "DURAPAY_PAYMENT__TDS_THRESHOLD": "10",
        "DURAPAY_DATABASE__URL": f"postgresql+psycopg://app:{SECRETS['db']}@db:5432/durapay",
        "UNRELATED": "ignored",
    }
    config = load_config(config_file, environ=env)
    assert config.api.port == 9100
    assert config.payment.risk_threshold == 40
    assert config.payment.supported_currencies == ["EUR", "GBP"]
    assert config.payment.tds_threshold == Decimal("10")
    # Deep merge: the env adds a key to the TOML's stripe table without dropping secret_key.
    assert config.payment.gateways["stripe"] == {
        "secret_key": SECRETS["stripe"],
        "webhook_secret": SECRETS["webhook"],
    }
    assert config.database.display_url == f"postgresql+psycopg://app:{MASK}@db:5432/durapay"


def test_api_keys_shorthand_and_file_indirection(tmp_path: Path, config_file: Path) -> None:
    keys_file = tmp_path / "keys"
    keys_file.write_text(f"k1:{SECRETS['api']}\nk2:{SECRETS['filesecret']}\n")
    secret_file = tmp_path / "stripe-key"
    secret_file.write_text(SECRETS["filesecret"] + "\n")
    env = {
        "DURAPAY_API_KEYS_FILE": str(keys_file),
        "DURAPAY_PAYMENT__STRIPE__SECRET_KEY_FILE": str(secret_file),
    }
    config = load_config(config_file, environ=env)
    assert {k: v.get_secret_value() for k, v in config.api.api_keys.items()} == {
        "k1": SECRETS["api"],
        "k2": SECRETS["filesecret"],
    }
    assert config.payment.gateways["stripe"]["secret_key"] == SECRETS["filesecret"]


def test_secrets_directory(tmp_path: Path, config_file: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "payment__stripe__secret_key").write_text(SECRETS["dirsecret"])
    (secrets / "database__url").write_text("sqlite+aiosqlite:///x.db")
    (secrets / "api_keys").write_text(f"k1:{SECRETS['api']}\n")
    config = load_config(config_file, environ={"DURAPAY_SECRETS_DIR": str(secrets)})
    assert config.payment.gateways["stripe"]["secret_key"] == SECRETS["dirsecret"]
    assert config.database.url.get_secret_value() == "sqlite+aiosqlite:///x.db"
    assert config.api.api_keys["k1"].get_secret_value() == SECRETS["api"]
    # The environment still wins over the directory.
    config = load_config(
        config_file, secrets_dir=secrets, environ={"DURAPAY_PAYMENT__STRIPE__SECRET_KEY": "from-env"}
    )
    assert config.payment.gateways["stripe"]["secret_key"] == "from-env"


def test_overrides_win(config_file: Path) -> None:
    config = load_config(
        config_file,
        environ={"DURAPAY_API__PORT": "9100"},
        overrides={"api": {"port": 0}, "payment": {"mock": {"enabled": False}}},
    )
    assert config.api.port == 0
    assert config.payment.gateways["mock"] == {"enabled": False}


@pytest.mark.parametrize(
    ("toml", "env", "expected"),
    [
        (
            "[payment]\nrisk_threshold = 101\n",
            {},
            "payment.risk_threshold: Input should be less than or equal to 100",
        ),
        ("[payment]\ntds_threshold = 50.5\n", {}, 'write money as a string, e.g. tds_threshold = "50.5"'),
        ("[payment]\nsupported_currencies = ['USD', 'XYZ']\n", {}, "unknown ISO 4217 currency code(s): XYZ"),
        ("[api]\nprot = 1\n", {}, "api.prot: unknown key (a typo?)"),
        ("[api]\n", {"DURAPAY_API_KEYS": "k1:short"}, "API key 'k1' is shorter than 16 characters"),
        ("[api]\n", {"DURAPAY_API_KEYS": "no-colon-here-0123456789"}, "expected id:secret pairs"),
        ("[api]\n", {"DURAPAY_API__PORT": "eighty"}, "api.port: Input should be a valid integer"),
        ("[api\n", {}, "durapay.toml"),
    ],
)
def test_invalid_configuration_has_a_clear_message(
    tmp_path: Path, toml: str, env: dict[str, str], expected: str
) -> None:
    path = tmp_path / "durapay.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as info:
        load_config(path, environ=env)
    assert expected in str(info.value)
    assert "no-colon-here" not in str(info.value)


def test_missing_file_and_both_value_and_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", environ={})
    with pytest.raises(ConfigError, match="keep one"):
        load_config(
            None,
            environ={"DURAPAY_API__PORT": "1", "DURAPAY_API__PORT_FILE": str(tmp_path / "x")},
        )


def test_masked_view_and_repr_hold_no_secret(tmp_path: Path, config_file: Path) -> None:
    env = {
        "DURAPAY_API_KEYS": f"k1:{SECRETS['api']}",
        "DURAPAY_PAYMENT__STRIPE__WEBHOOK_SECRET": SECRETS["webhook"],
        "DURAPAY_DATABASE__URL": f"postgresql+psycopg://app:{SECRETS['db']}@db/durapay",
    }
    config = load_config(config_file, environ=env)
    shown = "\n".join(f"{k} = {v}" for k, v in flatten(config.masked())) + repr(config) + str(config)
    for secret in SECRETS.values():
        assert secret not in shown
    masked = dict(flatten(config.masked()))
    assert masked["api.api_keys.k1"] == MASK
    assert masked["payment.gateways.stripe.secret_key"] == MASK
    assert masked["payment.gateways.mock.enabled"] is True  # non-secrets stay readable
    assert masked["api.port"] == 9000


def test_every_plugin_secret_field_is_masked_by_its_descriptor(monkeypatch: pytest.MonkeyPatch) -> None:
    # Without the key-name net: the descriptors alone must mask every secret field.
    monkeypatch.setattr(config_module, "_SECRET_KEY_PATTERN", re.compile(r"(?!)"))
    sections = {
        plugin.id: {field: f"s3cr3t-{plugin.id}-{field}" for field in plugin.secret_fields}
        | {"enabled": True}
        for plugin in PLUGINS.values()
    }
    config = load_config(None, environ={}, use_default_file=False, overrides={"payment": sections})
    masked = dict(flatten(config.masked()))
    for plugin in PLUGINS.values():
        # Every gateway but the bank transfer holds secrets (its settings are what payers are shown).
        assert bool(plugin.secret_fields) == (plugin.id != "bank_transfer"), plugin.id
        for field in plugin.secret_fields:
            assert masked[f"payment.gateways.{plugin.id}.{field}"] == MASK
        assert masked[f"payment.gateways.{plugin.id}.enabled"] is True


def test_parse_api_keys() -> None:
    assert parse_api_keys("a:1234, b:5678 ,\n") == {"a": "1234", "b": "5678"}
    with pytest.raises(ConfigError, match="twice"):
        parse_api_keys("a:1,a:2")


def test_defaults_lose_to_every_source(config_file: Path) -> None:
    defaults = {"payment": {"action_timeout_seconds": 15, "capture_delay_seconds": 3}, "api": {"port": 1}}
    config = load_config(config_file, environ={"DURAPAY_API__PORT": "9100"}, defaults=defaults)
    assert config.payment.action_timeout_seconds == 120  # the file's
    assert config.payment.capture_delay_seconds == 3  # only the defaults set it
    assert config.api.port == 9100  # the environment's


def test_default_file_lookup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "durapay.toml").write_text("[api]\nport = 9300\n")
    assert load_config(environ={}).api.port == 9300
    assert load_config(environ={}, use_default_file=False).api.port == 8080
    other = tmp_path / "other.toml"
    other.write_text("[api]\nport = 9400\n")
    assert load_config(environ={"DURAPAY_CONFIG": str(other)}).api.port == 9400


def test_the_example_file_is_valid_and_matches_the_defaults() -> None:
    from activities.fraud import FraudSettings
    from workers.worker import gateway_registry

    example = Path(__file__).parents[2] / "deploy" / "durapay.example.toml"
    config = load_config(example, environ={})
    assert gateway_registry(config).ids() == ["mock"]
    assert FraudSettings.model_validate(config.fraud_detection) == FraudSettings()
    defaults = load_config(environ={}, use_default_file=False)
    # Apart from its examples, the file documents the defaults rather than changing them.
    for section in ("api", "temporal", "worker", "database"):
        assert getattr(config, section) == getattr(defaults, section), section
    assert config.payment.model_dump(exclude={"gateways"}) == defaults.payment.model_dump(
        exclude={"gateways"}
    )


def test_event_proof_keys_are_secrets_with_ids() -> None:
    key = "event-proof-key-" + "x" * 32
    config = load_config(
        None,
        environ={
            "DURAPAY_EVENT_PROOF__KEYS": json.dumps({"k1": key}),
            "DURAPAY_EVENT_PROOF__ACTIVE_KEY": "k1",
        },
    )
    keys = config.event_proof.event_keys()
    assert keys is not None and "k1" in repr(keys) and key not in repr(keys)
    assert dict(flatten(config.masked()))["event_proof.keys.k1"] == MASK
    assert key not in repr(config) + str(config.masked())
    assert load_config(None, environ={}).event_proof.event_keys() is None
    short = {
        "DURAPAY_EVENT_PROOF__KEYS": json.dumps({"k1": "tooshort-secret"}),
        "DURAPAY_EVENT_PROOF__ACTIVE_KEY": "k1",
    }
    with pytest.raises(ConfigError, match="at least 32 bytes") as info:
        load_config(None, environ=short)
    assert "tooshort-secret" not in str(info.value)
    with pytest.raises(ConfigError, match="must name one of keys"):
        load_config(None, environ={"DURAPAY_EVENT_PROOF__KEYS": json.dumps({"k1": key})})


def test_an_integer_tds_threshold_is_refused_with_both_readings(tmp_path: Path) -> None:
    """Issue #17 item 10: the design writes `tds_threshold = 3000  # $30.00` (minor units); read as
    an amount it would be 3,000.00. Neither guess is safe: the message shows both."""
    path = tmp_path / "durapay.toml"
    path.write_text("[payment]\ntds_threshold = 3000\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    message = str(info.value)
    assert 'tds_threshold = "30.00"' in message and 'tds_threshold = "3000.00"' in message
    path.write_text('[payment]\ntds_threshold = "30.00"\n')
    assert load_config(path, environ={}).payment.settings_for("USD").tds_threshold_minor == 3000


def test_the_designs_wechatpay_section_name_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "durapay.toml"
    path.write_text("[payment.wechatpay]\nenabled = false\n")
    assert load_config(path, environ={}).payment.gateways == {"wechat_pay": {"enabled": False}}
    path.write_text("[payment.wechatpay]\nenabled = false\n[payment.wechat_pay]\nenabled = true\n")
    with pytest.raises(ConfigError, match=re.escape("[payment.wechat_pay] and [payment.wechatpay]")):
        load_config(path, environ={})


MERCHANTS_TOML = """
[merchants.acme]
api_keys = ["acme-live", "acme-ops"]
webhook_url = "https://acme.example/hooks/durapay"
allowed_gateways = ["stripe", "mock"]
default_gateway = "stripe"

[api_key_scopes]
acme-ops = ["ops", "payments:read"]
"""


def test_merchants_own_keys_and_keys_carry_scopes(tmp_path: Path) -> None:
    path = tmp_path / "durapay.toml"
    path.write_text(MERCHANTS_TOML)
    hashed = "sha256:" + "ab" * 32
    env = {
        "DURAPAY_API_KEYS": f"acme-live:{SECRETS['api']},acme-ops:{hashed},legacy:{SECRETS['filesecret']}",
        "DURAPAY_MERCHANTS__ACME__WEBHOOK_SECRET": SECRETS["merchant_webhook"],
    }
    config = load_config(path, environ=env)
    # A key no merchant lists is the default merchant's, so older configurations keep working.
    assert config.merchant_of_key() == {"acme-live": "acme", "acme-ops": "acme", "legacy": "default"}
    scopes = config.scopes_of_key()
    assert scopes["acme-ops"] == {"ops", "payments:read"}
    assert scopes["acme-live"] == scopes["legacy"] == {"payments:write", "payments:read"}
    acme = config.merchants["acme"]
    assert (acme.default_gateway, acme.allowed_gateways) == ("stripe", ["stripe", "mock"])
    # The merchant's webhook secret and a hashed key are secrets like any other.
    shown = "\n".join(f"{k} = {v}" for k, v in flatten(config.masked())) + repr(config)
    assert SECRETS["merchant_webhook"] not in shown and hashed not in shown
    assert dict(flatten(config.masked()))["merchants.acme.webhook_secret"] == MASK


@pytest.mark.parametrize(
    ("toml", "env", "expected"),
    [
        ("[api_key_scopes]\nk1 = ['admin']\n", {}, "unknown scope(s) admin"),
        (
            "[merchants.a]\napi_keys = ['k1']\n[merchants.b]\napi_keys = ['k1']\n",
            {},
            "API key 'k1' is listed under merchants 'a' and 'b'",
        ),
        ("[merchants.Acme]\n", {}, "merchant id 'Acme' must be"),
        (
            "[merchants.a]\nallowed_gateways = ['mock']\ndefault_gateway = 'stripe'\n",
            {},
            "default_gateway 'stripe' is not in allowed_gateways",
        ),
        ("", {"DURAPAY_API_KEYS": "k1:sha256:abc"}, "sha256: must be followed by 64 hex digits"),
    ],
)
def test_invalid_merchants_and_scopes_have_a_clear_message(
    tmp_path: Path, toml: str, env: dict[str, str], expected: str
) -> None:
    path = tmp_path / "durapay.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as info:
        load_config(path, environ=env)
    assert expected in str(info.value)
