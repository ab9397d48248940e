"""`WorkflowCodeCache`: the workflow sandbox's fresh import of the `workflows` package per run reuses
the code compiled once, while each run still gets modules of its own."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import workflows
from workers.worker import WorkflowCodeCache, cache_workflow_code


def load_fresh(finder: WorkflowCodeCache, name: str):
    spec = finder.find_spec(name, workflows.__path__)  # a submodule is looked for in its package
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return spec, module


def test_workflow_modules_are_compiled_once_and_still_imported_apart(monkeypatch):
    finder = WorkflowCodeCache()
    compiled: list[str] = []
    real_compile = importlib.machinery.SourceFileLoader.source_to_code

    def counting(self, data, path, *args, **kwargs):
        compiled.append(path)
        return real_compile(self, data, path, *args, **kwargs)

    monkeypatch.setattr(importlib.machinery.SourceFileLoader, "source_to_code", counting)
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # no .pyc to fall back on, as here
    first_spec, first = load_fresh(finder, "workflows.money")
    second_spec, second = load_fresh(finder, "workflows.money")
    assert first is not second and first.Amount is not second.Amount  # separate modules per run
    assert first_spec.loader.get_code("workflows.money") is second_spec.loader.get_code("workflows.money")
    assert [Path(p).name for p in compiled] == ["money.py"]


def test_only_the_workflows_package_is_handled_and_the_finder_is_installed_once():
    finder = WorkflowCodeCache()
    assert finder.find_spec("api.app", None) is None
    assert finder.find_spec("workflowsextra", None) is None
    cache_workflow_code()
    cache_workflow_code()
    assert sum(isinstance(f, WorkflowCodeCache) for f in sys.meta_path) == 1
