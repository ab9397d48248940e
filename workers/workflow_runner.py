"""The workflow sandbox durapay's worker runs its workflows in: the SDK's, with two costs taken out.

1. The `workflows` package is passed through. By default the sandbox imports the workflow's own
   module afresh for every workflow run and applies `workflow.defn` to a new class each time
   (measured: ~5% of the worker's CPU per payment, and a module and a class of their own held by every
   cached workflow). Every other module of the package was already passed through
   (`workflow.unsafe.imports_passed_through()` in each). Safe because the package has no mutable
   module state and does no I/O (workflows/__init__.py; `client.py` is imported by no workflow): one
   shared copy cannot carry one run's state into another. What this gives up is the sandbox's
   runtime check of calls such as `datetime.now()` made from `workflows/payment.py`; the workflow
   tests still run every workflow under the SDK's default sandbox, which makes that check, and
   replay the recorded histories.
2. No trip into the sandbox per payload. The SDK (1.35) asks the sandboxed workflow for the
   serialization context of every payload sequence it encodes or decodes, six times per local
   activity, each time by compiling and `exec`-ing a snippet with the sandbox's import hooks
   applied: measured at 13% of the worker's CPU per payment. The context is read from the workflow
   instance's pending commands by SDK code (passed through, as `temporalio` always is), not by
   workflow code, so it is asked for directly; the answer is the same object.

Both lean on the sandbox's internals (`_Instance`), hence the exact temporalio pin in pyproject.toml
and tests/workers/test_workflow_runner.py, which fails if an upgrade moves them.
"""

from __future__ import annotations

from typing import cast

from temporalio.converter import SerializationContext, StorageDriverStoreContext
from temporalio.worker import WorkflowInstance, WorkflowInstanceDetails
from temporalio.worker._command_aware_visitor import CommandInfo
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions
from temporalio.worker.workflow_sandbox._in_sandbox import InSandbox
from temporalio.worker.workflow_sandbox._runner import _Instance

# Where the SDK's `_Instance` keeps the object that lives inside the sandbox.
_IN_SANDBOX = "__temporal_in_sandbox"


class _DirectContextInstance(_Instance):
    """A sandboxed workflow run that answers the payload converter's questions without entering
    the sandbox (see the module docstring, 2)."""

    @property
    def _in_sandbox(self) -> InSandbox:
        return cast(InSandbox, self.globals_and_locals[_IN_SANDBOX])

    def get_serialization_context(self, command_info: CommandInfo | None) -> SerializationContext | None:
        return self._in_sandbox.get_serialization_context(command_info)

    def get_external_store_context(self, command_info: CommandInfo | None) -> StorageDriverStoreContext:
        return self._in_sandbox.get_external_store_context(command_info)


class DurapayWorkflowRunner(SandboxedWorkflowRunner):
    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        return _DirectContextInstance(det, self.runner_class, self.restrictions)


def workflow_runner() -> DurapayWorkflowRunner:
    return DurapayWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules("workflows")
    )
