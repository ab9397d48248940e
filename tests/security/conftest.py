"""`json_log`: everything logged during a test, as `durapay --log-format json` writes it."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from workers.logging_setup import log_handler


class JsonLog:
    def __init__(self) -> None:
        self.stream = io.StringIO()

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def entries(self) -> list[dict[str, Any]]:
        """Every line as its object; a line that is not one JSON object fails the test."""
        entries = [json.loads(line) for line in self.text.splitlines()]
        assert all(isinstance(entry, dict) for entry in entries)
        return entries


@pytest.fixture
def json_log() -> Iterator[JsonLog]:
    log = JsonLog()
    handler = log_handler("json", log.stream)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield log
    finally:
        root.removeHandler(handler)
