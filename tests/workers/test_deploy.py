"""deploy/: the configuration the Kubernetes manifests and the compose stack carry is valid for the
code that reads it, and the scripts are sound."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.files import DEPLOY, K8S, ROOT, load_deploy_config
from workers.config import parse_bind
from workers.worker import fraud_settings, gateway_registry


def test_configmap_and_secret_layout_make_a_valid_configuration(tmp_path: Path) -> None:
    [configmap] = yaml.safe_load_all((K8S / "base" / "configmap.yaml").read_text())
    [secret] = yaml.safe_load_all((K8S / "secret.example.yaml").read_text())
    secrets_dir = tmp_path / "secrets"  # what the Secret volume mount looks like
    secrets_dir.mkdir()
    for key, value in secret["stringData"].items():
        (secrets_dir / key).write_text(value)
    config = load_deploy_config(
        configmap["data"]["durapay.toml"], tmp_path, {"DURAPAY_SECRETS_DIR": str(secrets_dir)}
    )
    assert config.api.api_keys["merchant1"].get_secret_value() == "CHANGE-ME-to-a-long-random-secret"
    assert config.database.url.get_secret_value().startswith("postgresql+psycopg://")
    assert config.payment.gateways["stripe"]["secret_key"] == "sk_live_CHANGE-ME"
    fraud_settings(config)
    assert gateway_registry(config).ids() == ["stripe"]
    # The ports the manifests expose are the ones the processes bind.
    assert config.api.port == 8080 and config.api.metrics
    assert config.temporal.metrics_bind is not None and parse_bind(config.temporal.metrics_bind)[1] == 9464
    assert config.worker.metrics_bind is not None and parse_bind(config.worker.metrics_bind)[1] == 9465
    assert 'health_bind = "0.0.0.0:8081"' in configmap["data"]["durapay.toml"]


def test_compose_configuration_is_valid_and_matches_the_scrape_targets(tmp_path: Path) -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    api = compose["services"]["api"]
    environ = {k: v for k, v in api["environment"].items() if k != "DURAPAY_CONFIG"}
    # The stack takes its secrets from the caller's environment; stand-ins here.
    environ["DURAPAY_DATABASE__URL"] = "postgresql+psycopg://postgres:pw@postgresql:5432/durapay"
    environ["DURAPAY_API_KEYS"] = "merchant1:a-long-random-secret"
    config = load_deploy_config((DEPLOY / "compose" / "durapay.toml").read_text(), tmp_path, environ)
    assert gateway_registry(config).ids() == ["mock"]
    assert config.temporal.address == "temporal:7233"
    prometheus = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = {
        (job["job_name"], sd["names"][0], sd["port"])
        for job in prometheus["scrape_configs"]
        for sd in job["dns_sd_configs"]
    }
    assert config.temporal.metrics_bind is not None and config.worker.metrics_bind is not None
    assert targets == {
        ("durapay-api", "api", config.api.port),
        ("durapay-worker", "worker", parse_bind(config.worker.metrics_bind)[1]),
        ("temporal-sdk", "worker", parse_bind(config.temporal.metrics_bind)[1]),
    }


@pytest.mark.parametrize("script", ["deploy/local.sh", ".ci/run"])
def test_scripts_are_valid_bash(script: str) -> None:
    path = ROOT / script
    assert path.stat().st_mode & 0o111, f"{script} is not executable"
    subprocess.run(["bash", "-n", str(path)], check=True)


def test_ci_checks_the_rules_before_running_the_readme_test_command() -> None:
    lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    commands = [line for line in lines if line and not line.startswith("#")]
    assert commands[-1] == "deploy/local.sh test"
    promtool = commands.index("promtool check rules deploy/prometheus/alerts.yaml")
    assert promtool < len(commands) - 1
    assert "(cd deploy/prometheus && promtool test rules alerts.test.yaml)" in commands


def test_local_sh_refuses_an_unknown_command() -> None:
    result = subprocess.run([str(DEPLOY / "local.sh"), "frobnicate"], capture_output=True, text=True)
    assert result.returncode == 2 and "usage: deploy/local.sh dev" in result.stderr
