"""The engine scenarios' activities: each step does no work, so a measurement is the engine's cost
(task dispatch, history writes, payload conversion) and nothing else."""

from __future__ import annotations

from collections.abc import Callable

from temporalio import activity

from workers.bench.engine_workflows import AFTER_DECISION, AUTHORIZE, BEFORE_DECISION


def _step(name: str) -> Callable[[str], object]:
    async def step(payment_id: str) -> str:
        return payment_id

    return activity.defn(name=name)(step)


ACTIVITIES = [_step(name) for name in (*BEFORE_DECISION, AUTHORIZE, *AFTER_DECISION)]
