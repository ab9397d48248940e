"""deploy/grafana/durapay.json and deploy/prometheus/: the dashboard and the alert rules query only
metrics the code exports, cover durapay's, pass promtool (rules, their unit tests, the compose stack's
Prometheus configuration) and point at the runbook."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
import yaml

from tests.deploy.observability import (
    ALERTS,
    DASHBOARD,
    OPERATIONS,
    alert_queries,
    dashboard_queries,
    exported_durapay_names,
    metric_names,
)

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
