"""Group commit: concurrent writes share a statement, and each caller gets its own row's answer."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from activities.store.group_commit import GroupCommit


class _Table:
    """A write that takes a moment, refuses rows named "bad", and remembers its statements."""

    def __init__(self) -> None:
        self.statements: list[list[str]] = []

    async def write(self, rows: Sequence[str]) -> list[str]:
        self.statements.append(list(rows))
        await asyncio.sleep(0.01)
        if "bad" in rows:
            raise ValueError("bad row")
        return [f"{row}:ok" for row in rows]


async def test_one_at_a_time_each_write_is_its_own_statement() -> None:
    table = _Table()
    commit = GroupCommit(table.write)
    assert await commit.submit("a") == "a:ok"
    assert await commit.submit("b") == "b:ok"
    assert table.statements == [["a"], ["b"]]


async def test_writes_arriving_while_one_is_in_flight_share_the_next_statement() -> None:
    table = _Table()
    commit = GroupCommit(table.write, max_batch=3)
    first = asyncio.create_task(commit.submit("a"))
    await asyncio.sleep(0.001)  # "a" is being written
    rest = [asyncio.create_task(commit.submit(row)) for row in "bcde"]
    assert await asyncio.gather(first, *rest) == ["a:ok", "b:ok", "c:ok", "d:ok", "e:ok"]
    assert table.statements == [["a"], ["b", "c", "d"], ["e"]]


async def test_a_bad_row_fails_only_its_own_caller() -> None:
    table = _Table()
    commit = GroupCommit(table.write)
    results = await asyncio.gather(*(commit.submit(row) for row in ("a", "bad", "c")), return_exceptions=True)
    assert results[0] == "a:ok" and results[2] == "c:ok"
    assert isinstance(results[1], ValueError)
    # Together first; once that failed, each alone.
    assert table.statements == [["a", "bad", "c"], ["a"], ["bad"], ["c"]]


async def test_a_failed_write_reaches_its_caller() -> None:
    commit = GroupCommit(_Table().write)
    with pytest.raises(ValueError, match="bad row"):
        await commit.submit("bad")
    assert await commit.submit("after") == "after:ok"  # and the next write goes on
