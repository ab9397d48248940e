"""The metric names deploy/grafana/durapay.json and deploy/prometheus/alerts.yaml query, and the names
durapay's own registries export: shared by tests/deploy (names agree with the code) and the metrics
test (the Temporal SDK names appear in a real scrape)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry

from activities.metrics import GatewayMetrics, PaymentMetrics
from api.metrics import ApiMetrics

DEPLOY = Path(__file__).parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "durapay.json"
ALERTS = DEPLOY / "prometheus" / "alerts.yaml"
OPERATIONS = DEPLOY.parent / "docs" / "OPERATIONS.md"

_METRIC = re.compile(r"\b((?:durapay|temporal)_[a-z0-9_]+)\b")
# What a family of each type is scraped as (prometheus-client's exposition).
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def dashboard_queries() -> Iterator[str]:
    def walk(node: object) -> Iterator[str]:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("expr", "definition") and isinstance(value, str):
                    yield value
                else:
                    yield from walk(value)
        elif isinstance(node, list):
            for item in node:
                yield from walk(item)

    yield from walk(json.loads(DASHBOARD.read_text()))


def alert_queries() -> Iterator[str]:
    for group in yaml.safe_load(ALERTS.read_text())["groups"]:
        for rule in group["rules"]:
            yield rule["expr"]


def metric_names(queries: Iterator[str]) -> set[str]:
    return {name for query in queries for name in _METRIC.findall(query)}


def exported_durapay_names() -> set[str]:
    """Every sample name durapay's registries can export: the worker's (gateway and payment metrics,
    one registry) and the API's."""
    worker = CollectorRegistry()
    GatewayMetrics(worker)
    PaymentMetrics(worker)
    names = set()
    for registry in (worker, ApiMetrics().registry):
        for family in registry.collect():
            names |= {family.name + suffix for suffix in _SUFFIXES[family.type]}
    return names
