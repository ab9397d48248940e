from temporalio.worker import Worker

from tests.workflows.builders import payment_input, start_and_decide
from tests.workflows.fake_activities import FakeWorld
from workflows.client import workflow_id
from workflows.domain import PaymentStatus
from workflows.payment import PaymentWorkflow


async def test_happy_path_on_dev_server(temporal_env, task_queue, unique):
    world = FakeWorld()
    async with Worker(
        temporal_env.client, task_queue=task_queue, workflows=[PaymentWorkflow], activities=world.activities()
    ):
        view, handle = await start_and_decide(temporal_env.client, task_queue, payment_input(unique))
        assert view.status is PaymentStatus.PAID
        assert view.captured_minor == 4999
        assert world.calls["authorize"][0].idempotency_key == f"{workflow_id(unique)}:authorize"
        assert world.calls["authorize"][0].capture is True
        assert len(world.calls["confirm"]) == 1
        await handle.terminate()
