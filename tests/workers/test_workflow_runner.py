"""The worker's workflow sandbox (workers/workflow_runner.py): the `workflows` package is shared, not
re-imported per run, and the serialization contexts asked for outside the sandbox are the ones
the SDK's own sandbox gives. Built on the sandbox's internals: these fail if an upgrade moves them."""

from __future__ import annotations

import dataclasses

from temporalio.api.common.v1 import Payloads
from temporalio.api.enums.v1 import CommandType
from temporalio.api.failure.v1 import Failure
from temporalio.converter import DataConverter, WorkflowSerializationContext
from temporalio.worker import WorkflowInstanceDetails
from temporalio.worker._command_aware_visitor import CommandInfo
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner
from temporalio.worker.workflow_sandbox._runner import _fake_info
from temporalio.workflow import _Definition

from workers.workflow_runner import workflow_runner
from workflows.payment import PaymentWorkflow


def details(workflow_id: str) -> WorkflowInstanceDetails:
    return WorkflowInstanceDetails(
        payload_converter_factory=DataConverter.default._new_payload_converter,
        failure_converter_class=DataConverter.default.failure_converter_class,
        interceptor_classes=[],
        defn=_Definition.must_from_class(PaymentWorkflow),
        info=dataclasses.replace(_fake_info, workflow_id=workflow_id, namespace="runner-test"),
        randomness_seed=1,
        extern_functions={},
        disable_eager_activity_execution=False,
        worker_level_failure_exception_types=[],
        patch_activation_callback=None,
        last_completion_result=Payloads(),
        last_failure=Failure(),
    )


def sandboxed_class(instance) -> type:
    return instance.globals_and_locals["__temporal_workflow_class"]


async def test_the_workflow_class_is_shared_by_runs_instead_of_imported_for_each():
    ours = workflow_runner()
    first = ours.create_instance(details("payment-runner-1"))
    second = ours.create_instance(details("payment-runner-2"))
    assert sandboxed_class(first) is PaymentWorkflow and sandboxed_class(second) is PaymentWorkflow
    # The SDK's default: a fresh module and class per run (what the runner saves).
    sdk = SandboxedWorkflowRunner().create_instance(details("payment-runner-3"))
    assert sandboxed_class(sdk) is not PaymentWorkflow


async def test_serialization_contexts_are_those_of_the_sdk_sandbox():
    ours = workflow_runner().create_instance(details("payment-runner-ctx"))
    sdk = SandboxedWorkflowRunner().create_instance(details("payment-runner-ctx"))
    activity = CommandInfo(command_type=CommandType.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK, command_seq=1)
    for command in (None, activity):
        assert ours.get_serialization_context(command) == sdk.get_serialization_context(command)
        assert ours.get_external_store_context(command) == sdk.get_external_store_context(command)
    assert ours.get_serialization_context(None) == WorkflowSerializationContext(
        namespace="runner-test", workflow_id="payment-runner-ctx"
    )
