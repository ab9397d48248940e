from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import workflow
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import Worker

from activities.fraud import FraudActivities, FraudSettings
from activities.orders import OrderActivities, SqlOrderLedger
from activities.store.repository import PaymentStore
from activities.store_activities import StoreActivities
from tests.activities.store.helpers import T0, engine, make_view, store
from workflows import activity_names as act
from workflows.domain import FraudDecision, FraudPolicy, FraudResult, PaymentStatus, PaymentView
from workflows.ledger_io import (
    FraudCheckRequest,
    OrderRelease,
    OrderReservation,
    PaymentEventRecord,
    PaymentTransition,
    ReservationResult,
)


async def test_record_transition_activity_writes_the_projection(store: PaymentStore, unique: str) -> None:
    activities = StoreActivities(store)
    [record] = activities.definitions()
    assert record.__temporal_activity_definition.name == act.RECORD_TRANSITION

    view = make_view(f"pay_{unique}", status=PaymentStatus.AUTHORIZED, version=2)
    transition = PaymentTransition(view=view, events=[PaymentEventRecord(type="payment.authorized")])
    env = ActivityEnvironment()
    await env.run(record, transition)
    await env.run(record, transition)  # Temporal may run a local activity again: harmless

    assert await store.get(view.id) == view
    assert [e.type for e in await store.events(view.id)] == ["payment.authorized"]


_LOCAL = dict(start_to_close_timeout=timedelta(seconds=10))


@workflow.defn(sandboxed=False)
class LocalStepsWorkflow:
    """The local steps as PaymentWorkflow calls them: by name, pydantic payloads both ways."""

    @workflow.run
    async def run(self, view: PaymentView) -> list[str]:
        reservation = OrderReservation(order_id=view.order_id, payment_id=view.id, amount=view.amount)
        reserved: ReservationResult = await workflow.execute_local_activity(
            act.RESERVE_ORDER, reservation, result_type=ReservationResult, **_LOCAL
        )
        fraud: FraudResult = await workflow.execute_local_activity(
            act.CHECK_FRAUD,
            FraudCheckRequest(payment_id=view.id, amount=view.amount, customer_id=view.customer_id),
            result_type=FraudResult,
            **_LOCAL,
        )
        await workflow.execute_local_activity(
            act.CONFIRM_ORDER, OrderRelease(order_id=view.order_id, payment_id=view.id), **_LOCAL
        )
        paid = view.model_copy(update={"status": PaymentStatus.PAID, "fraud": fraud, "version": 2})
        await workflow.execute_local_activity(
            act.RECORD_TRANSITION,
            PaymentTransition(view=paid, events=[PaymentEventRecord(type="order.paid")]),
            **_LOCAL,
        )
        again: ReservationResult = await workflow.execute_local_activity(
            act.RESERVE_ORDER,
            reservation.model_copy(update={"payment_id": view.id + "_second"}),
            result_type=ReservationResult,
            **_LOCAL,
        )
        return [str(reserved.accepted), fraud.decision.value, again.refusal.value if again.refusal else "-"]


async def test_the_local_steps_work_through_temporal_by_name(
    time_skipping_env: WorkflowEnvironment,
    task_queue: str,
    engine: AsyncEngine,
    store: PaymentStore,
    unique: str,
) -> None:
    activities = [
        *OrderActivities(SqlOrderLedger(engine)).definitions(),
        *FraudActivities(store, FraudSettings()).definitions(),
        *StoreActivities(store).definitions(),
    ]
    view = make_view(f"pay_{unique}", created_at=T0, updated_at=T0)
    async with Worker(
        time_skipping_env.client,
        task_queue=task_queue,
        workflows=[LocalStepsWorkflow],
        activities=activities,
    ):
        outcome = await time_skipping_env.client.execute_workflow(
            LocalStepsWorkflow.run, view, id=f"local-steps-{unique}", task_queue=task_queue
        )

    assert outcome == ["True", FraudDecision.ALLOW.value, "already_paid"]
    stored = await store.get(view.id)
    assert stored.status is PaymentStatus.PAID and stored.fraud == FraudResult(
        score=0, decision=FraudDecision.ALLOW, policy=FraudPolicy()
    )
