"""The `durapay` command line: parsing, `config check` (masked), `migrate`, exit codes."""

from __future__ import annotations

import socket
import sqlite3
from pathlib import Path

import pytest

from activities.gateways.plugins import PLUGINS
from workers.cli import EXIT_CONFIG, EXIT_FAILED, EXIT_OK, build_parser, main

SECRETS = ("apikey-secret-0123456789", "whsec_mock_secret_value_1", "db-password-4242")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No DURAPAY_* variable and no ./durapay.toml from the developer's shell leaks in."""
    import os

    for name in list(os.environ):
        if name.upper().startswith("DURAPAY_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["dev"], {"command": "dev", "exit_after_demo": False, "no_demo": False}),
        (["dev", "--exit-after-demo"], {"command": "dev", "exit_after_demo": True}),
        (["dev", "--no-wait", "--no-demo"], {"command": "dev", "exit_after_demo": True, "no_demo": True}),
        (["worker"], {"command": "worker"}),
        (["api"], {"command": "api"}),
        (["demo"], {"command": "demo"}),
        (["migrate"], {"command": "migrate"}),
        (["config", "check"], {"command": "config", "config_command": "check"}),
        (
            ["bench", "--server", "tuned", "--scale-n", "50"],
            {"command": "bench", "server": "tuned", "scale_n": 50},
        ),
        (
            ["--config", "x.toml", "--secrets-dir", "s", "--log-level", "debug", "worker"],
            {"config": "x.toml", "secrets_dir": "s", "log_level": "DEBUG", "command": "worker"},
        ),
    ],
)
def test_parsing(argv: list[str], expected: dict[str, object]) -> None:
    args = vars(build_parser().parse_args(argv))
    assert {key: args[key] for key in expected} == expected


@pytest.mark.parametrize("argv", [[], ["config"], ["bogus"], ["dev", "--frobnicate"]])
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(argv)
    assert info.value.code == 2


def test_config_check_prints_the_effective_config_without_secrets(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "prod.toml"
    config.write_text(
        '[payment]\ndefault_gateway = "mock"\n\n'
        f'[payment.mock]\nenabled = true\nwebhook_secret = "{SECRETS[1]}"\n\n'
        "[fraud_detection]\nblock_threshold = 80\n"
    )
    clean_env.setenv("DURAPAY_API_KEYS", f"merchant1:{SECRETS[0]}")
    clean_env.setenv("DURAPAY_DATABASE__URL", f"postgresql+psycopg://durapay:{SECRETS[2]}@db:5432/durapay")
    assert main(["--config", str(config), "config", "check"]) == EXIT_OK
    captured = capsys.readouterr()
    output = captured.out + captured.err
    for secret in SECRETS:
        assert secret not in output
    lines = captured.out.splitlines()
    assert 'api.api_keys.merchant1 = "**********"' in lines
    assert 'payment.gateways.mock.webhook_secret = "**********"' in lines
    assert 'database.url = "postgresql+psycopg://durapay:**********@db:5432/durapay"' in lines
    assert "fraud_detection.block_threshold = 80" in lines  # validated, defaults filled in
    assert "fraud_detection.review_threshold = 50" in lines
    assert lines[-3:] == [
        "# enabled gateways: mock",
        f"# known gateways: {', '.join(sorted(PLUGINS))}",
        "# configuration OK",
    ]


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[payment]\ndefault_gateway = "mock"\n', "payment.default_gateway 'mock' is not an enabled gateway"),
        ("[payment.mock]\nenabled = true\n[fraud_detection]\nreview_threshold = 95\n", "review_threshold"),
        ("[payment.nopay]\nenabled = true\n", "unknown gateway 'nopay'"),
        ("[payment.mock]\nenabled = true\nlatency_ms = -1\n", "[payment.mock] is invalid: latency_ms"),
        ("[payment]\nrisk_threshold = 200\n", "payment.risk_threshold"),
    ],
)
def test_config_check_rejects_bad_config_with_exit_2(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str], toml: str, message: str
) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(toml)
    assert main(["--config", str(config), "config", "check"]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert err.startswith("durapay: ") and message in err


def test_migrate_creates_the_schema(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "nested" / "dir" / "durapay.db"  # the directory does not exist yet
    clean_env.setenv("DURAPAY_DATABASE__URL", f"sqlite+aiosqlite:///{db}")
    assert main(["migrate"]) == EXIT_OK
    assert "is up to date" in capsys.readouterr().out
    with sqlite3.connect(db) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"payments", "alembic_version"} <= tables
    assert main(["migrate"]) == EXIT_OK  # again: nothing to do, no error


def test_unreachable_temporal_is_a_clear_error(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    clean_env.setenv("DURAPAY_TEMPORAL__ADDRESS", f"127.0.0.1:{port}")
    clean_env.setenv("DURAPAY_PAYMENT__MOCK__ENABLED", "true")
    clean_env.setenv("DURAPAY_DATABASE__URL", f"sqlite+aiosqlite:///{tmp_path / 'd.db'}")
    assert main(["worker"]) == EXIT_FAILED
    assert f"durapay: cannot reach Temporal at 127.0.0.1:{port} (temporal.address)" in capsys.readouterr().err
