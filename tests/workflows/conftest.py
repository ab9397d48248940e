"""A worker with the fake activities on the real dev server, for message tests.

Every test that uses `dev` also checks, on teardown, the rule the store relies on: each payment's
transitions carry strictly increasing versions (the store ignores a version it has already passed)."""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError
from temporalio.worker import Worker

from tests.workflows.builders import start_and_decide
from tests.workflows.fake_activities import FakeWorld
from workflows.domain import PaymentInput, PaymentView
from workflows.payment import PaymentWorkflow


@dataclass
class DevRun:
    client: Client
    task_queue: str
    world: FakeWorld = field(default_factory=FakeWorld)
    handles: list[WorkflowHandle] = field(default_factory=list)

    def worker(self) -> Worker:
        return Worker(
            self.client,
            task_queue=self.task_queue,
            workflows=[PaymentWorkflow],
            activities=self.world.activities(),
        )

    async def start(self, inp: PaymentInput) -> tuple[PaymentView, WorkflowHandle]:
        view, handle = await start_and_decide(self.client, self.task_queue, inp)
        self.handles.append(handle)
        return view, handle


def assert_versions_increase(world: FakeWorld) -> None:
    by_payment: dict[str, list[int]] = defaultdict(list)
    for transition in world.transitions:
        by_payment[transition.view.id].append(transition.view.version)
    for payment_id, versions in by_payment.items():
        assert versions == sorted(set(versions)), f"{payment_id}: versions recorded as {versions}"


@pytest.fixture
async def dev(temporal_env, task_queue) -> AsyncIterator[DevRun]:
    run = DevRun(temporal_env.client, task_queue)
    async with run.worker():
        yield run
    # The payments wait out their settlement window; nothing needs them after the test.
    for handle in run.handles:
        with contextlib.suppress(RPCError):  # already closed
            await handle.terminate()
    assert_versions_increase(run.world)
