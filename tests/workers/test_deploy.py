"""deploy/: the Kubernetes manifests and scripts agree with the code that reads them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from workers.config import load_config
from workers.worker import fraud_settings, gateway_registry

DEPLOY = Path(__file__).parents[2] / "deploy"


def manifests() -> dict[str, list[dict]]:
    return {
        path.name: list(yaml.safe_load_all(path.read_text()))
        for path in sorted((DEPLOY / "k8s").glob("*.yaml"))
    }


def test_configmap_and_secret_layout_make_a_valid_configuration(tmp_path: Path) -> None:
    docs = manifests()
    [configmap] = docs["configmap.yaml"]
    [secret] = docs["secret.example.yaml"]
    config_file = tmp_path / "durapay.toml"
    config_file.write_text(configmap["data"]["durapay.toml"])
    secrets_dir = tmp_path / "secrets"  # what the Secret volume mount looks like
    secrets_dir.mkdir()
    for key, value in secret["stringData"].items():
        (secrets_dir / key).write_text(value)
    config = load_config(config_file, environ={"DURAPAY_SECRETS_DIR": str(secrets_dir)})
    assert config.api.api_keys["merchant1"].get_secret_value() == "CHANGE-ME-to-a-long-random-secret"
    assert config.database.url.get_secret_value().startswith("postgresql+psycopg://")
    assert config.payment.gateways["stripe"]["secret_key"] == "sk_live_CHANGE-ME"
    fraud_settings(config)
    assert gateway_registry(config).ids() == ["stripe"]


def test_every_process_mounts_the_config_and_the_secrets() -> None:
    docs = manifests()
    commands = {}
    for name in ("api.yaml", "worker.yaml", "migrate-job.yaml"):
        workload = next(doc for doc in docs[name] if doc["kind"] in ("Deployment", "Job"))
        [container] = workload["spec"]["template"]["spec"]["containers"]
        commands[name] = container["args"]
        env = {item["name"]: item["value"] for item in container["env"]}
        mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
        assert Path(env["DURAPAY_CONFIG"]).parent.as_posix() in mounts
        assert env["DURAPAY_SECRETS_DIR"] in mounts
    assert commands == {"api.yaml": ["api"], "worker.yaml": ["worker"], "migrate-job.yaml": ["migrate"]}


@pytest.mark.parametrize("script", ["deploy/local.sh", ".ci/run"])
def test_scripts_are_valid_bash(script: str) -> None:
    path = DEPLOY.parent / script
    assert path.stat().st_mode & 0o111, f"{script} is not executable"
    subprocess.run(["bash", "-n", str(path)], check=True)


def test_local_sh_refuses_an_unknown_command() -> None:
    result = subprocess.run([str(DEPLOY / "local.sh"), "frobnicate"], capture_output=True, text=True)
    assert result.returncode == 2 and "usage: deploy/local.sh dev" in result.stderr
