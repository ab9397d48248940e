"""deploy/: the Kubernetes manifests and scripts agree with the code that reads them."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.workers.observability import (
    ALERTS,
    DASHBOARD,
    alert_queries,
    dashboard_queries,
    exported_durapay_names,
    metric_names,
)
from workers.config import load_config
from workers.worker import fraud_settings, gateway_registry

DEPLOY = Path(__file__).parents[2] / "deploy"
OPERATIONS = DEPLOY.parent / "docs" / "OPERATIONS.md"


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


# The Temporal SDK's Prometheus names (temporalio's core exporter, milliseconds histograms) seen in a
# scrape of a worker that ran one payment; tests/workers/test_metrics.py checks the dashboard's and
# the rules' against a real scrape too.
TEMPORAL_SDK_METRICS = frozenset(
    {
        "temporal_activity_execution_latency_bucket",
        "temporal_activity_schedule_to_start_latency_bucket",
        "temporal_local_activity_execution_latency_bucket",
        "temporal_num_pollers",
        "temporal_request_latency_bucket",
        "temporal_request_total",
        "temporal_sticky_cache_hit_total",
        "temporal_sticky_cache_size",
        "temporal_worker_task_slots_available",
        "temporal_worker_task_slots_used",
        "temporal_workflow_task_execution_latency_bucket",
        "temporal_workflow_task_schedule_to_start_latency_bucket",
    }
)


def test_dashboard_and_rules_query_only_names_the_code_exports() -> None:
    exported = exported_durapay_names() | TEMPORAL_SDK_METRICS
    for source, queries in (("dashboard", dashboard_queries()), ("alerts", alert_queries())):
        names = metric_names(queries)
        assert names, f"the {source} queries no metric at all"
        assert names <= exported, f"{source} queries unknown metrics: {sorted(names - exported)}"


def test_dashboard_covers_every_durapay_metric_and_the_sdk_essentials() -> None:
    shown = metric_names(dashboard_queries())
    missing = {_family(name) for name in exported_durapay_names()} - {_family(name) for name in shown}
    assert not missing, f"not on the dashboard: {sorted(missing)}"
    for essential in (
        "temporal_workflow_task_execution_latency_bucket",
        "temporal_workflow_task_schedule_to_start_latency_bucket",
        "temporal_activity_schedule_to_start_latency_bucket",
        "temporal_worker_task_slots_available",
        "temporal_worker_task_slots_used",
    ):
        assert essential in shown


def _family(sample_name: str) -> str:
    return re.sub(r"_(total|bucket|count|sum)$", "", sample_name)


def test_dashboard_is_importable_grafana_json() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "durapay" and dashboard["schemaVersion"] >= 36
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    for panel in panels:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}" and panel["targets"]
        for target in panel["targets"]:
            for used in re.findall(r"\$(\w+)", target["expr"]):
                assert used.startswith("__") or used in variables, (panel["title"], used)


def test_every_alert_names_its_runbook_section() -> None:
    rules = [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]
    assert {rule["alert"] for rule in rules} >= {
        "DurapayPaymentOutcomeUnknownTooLong",
        "DurapayWebhookRejectionsSpiking",
        "DurapayGatewayErrorRatioHigh",
        "DurapayWorkerTaskSlotsExhausted",
    }
    anchors = {_anchor(line) for line in OPERATIONS.read_text().splitlines() if line.startswith("#")}
    for rule in rules:
        assert rule["annotations"]["runbook_url"] == f"docs/OPERATIONS.md#{rule['alert'].lower()}"
        assert rule["alert"].lower() in anchors, f"docs/OPERATIONS.md has no section {rule['alert']}"
        assert rule["labels"]["severity"] in ("page", "warning")


def _anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    text = heading.lstrip("#").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


@pytest.mark.skipif(
    shutil.which("promtool") is None,
    reason="promtool is not installed (.ci/run installs Debian's prometheus package)",
)
def test_alert_rules_pass_promtool_and_their_unit_tests() -> None:
    for command in (["check", "rules", ALERTS.name], ["test", "rules", "alerts.test.yaml"]):
        result = subprocess.run(
            ["promtool", *command], cwd=ALERTS.parent, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr
