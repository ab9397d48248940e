"""Where a leaked secret or card number would end up, as searchable text: the whole database, every
Temporal history on a task queue (raw payload bytes, search attributes included), and the search
attributes and details each workflow shows in the UI.

Every search also looks for a value known to be there (`present`), so a scan that read nothing can
never pass for a clean one.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from temporalio.client import Client

from activities.store.db import create_engine
from activities.store.tables import metadata


async def database_text(db_url: str) -> str:
    """Every row of every table, as text."""
    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            rows = [
                repr(tuple(row))
                for table in metadata.sorted_tables
                for row in (await conn.execute(select(table))).all()
            ]
    finally:
        await engine.dispose()
    return "\n".join(rows)


async def temporal_bytes(client: Client, task_queue: str) -> bytes:
    """The serialized history of every workflow that ran on `task_queue`, plus what `describe`
    shows of it (search attributes, summary, details). Payloads are the raw bytes the data converter
    wrote, so JSON inside them is searchable as is."""
    chunks: list[bytes] = []
    async for execution in client.list_workflows(f"TaskQueue = '{task_queue}'"):
        handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
        history = await handle.fetch_history()
        chunks.extend(event.SerializeToString() for event in history.events)
        described = await handle.describe()
        chunks.append(described.raw_description.SerializeToString())
        chunks.append(repr(described.typed_search_attributes).encode())
    return b"\n".join(chunks)


def variants(card_number: str) -> set[str]:
    """A card number as typed: its digits alone, and grouped by spaces or dashes as given."""
    digits = "".join(ch for ch in card_number if ch.isdigit())
    return {digits, card_number}


def found(needles: Iterable[str], haystack: str | bytes) -> list[str]:
    """The needles that occur in `haystack`."""
    if isinstance(haystack, bytes):
        return [n for n in needles if n.encode() in haystack]
    return [n for n in needles if n in haystack]
