"""Each speed and memory fix of ``scones.twin.moto_fixes``: every test fails without its fix.

The fixes are applied by the production ``start_server`` (the ``moto_server`` fixture).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sample_deploy import deploy_sample, run, start, wait

from scones.twin import moto_binding, moto_fixes


def test_the_server_applies_every_fix(moto_server: Any) -> None:
    assert moto_fixes.applied() == frozenset(moto_fixes.FIXES)


def test_lambda_tasks_run_in_process_not_over_http(
    app_root: Path, settings_for: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, sfn, _, machine = deploy_sample(settings_for(app_root))
    calls = {"invoke": 0, "run_bound": 0}
    backend_class = moto_binding.BoundLambdaBackend
    for name in calls:
        moto_method = getattr(backend_class, name)

        def counted(*args: Any, _name: str = name, _method: Any = moto_method, **kw: Any) -> Any:
            calls[_name] += 1
            return _method(*args, **kw)

        monkeypatch.setattr(backend_class, name, counted)
    out = run(sfn, machine, {"counter": str(tmp_path / "c")}, "direct-tasks")
    assert out["status"] == "SUCCEEDED"
    assert calls == {"invoke": 0, "run_bound": 2}  # two Lambda tasks, no HTTP Invoke


def test_clients_are_reused_per_region_service_and_endpoint(moto_server: Any) -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_sqs,
    )
    from moto.stepfunctions.parser.asl.utils import boto_client

    client_for = boto_client.boto_client_for
    first = client_for(region="us-east-1", service="sqs")
    assert client_for(region="us-east-1", service="sqs") is first
    assert client_for(region="eu-west-1", service="sqs") is not first
    assert state_task_service_sqs.boto_client_for is client_for  # an importer sees it too
    assert client_for("us-east-1", "sqs", state_credentials=object()) is not first


def test_jsonpath_expressions_are_parsed_once(moto_server: Any) -> None:
    from moto.stepfunctions.parser.asl.component.common.path import result_path
    from moto.stepfunctions.parser.asl.utils import json_path

    assert json_path.parse("$.Payload.label") is json_path.parse("$.Payload.label")
    assert result_path.parse("$.result") is result_path.parse("$.result")


def test_program_pool_never_hands_one_program_to_two_takers() -> None:
    definition = json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
    pool = moto_fixes.ProgramPool(per_definition=2)
    first, second = pool.take(definition), pool.take(definition)
    assert first is not second
    pool.give(definition, first)
    assert pool.take(definition) is first  # reused once given back
    other = json.dumps({"StartAt": "Q", "States": {"Q": {"Type": "Pass", "End": True}}})
    assert pool.take(other) is not first


def test_executions_reuse_parsed_programs(
    app_root: Path, settings_for: Any, tmp_path: Path
) -> None:
    _, sfn, _, machine = deploy_sample(settings_for(app_root))
    reused = moto_fixes.pool.reused
    for i in range(2):
        out = run(sfn, machine, {"counter": str(tmp_path / str(i))}, f"pooled-{i}")
        assert out["status"] == "SUCCEEDED"
    assert moto_fixes.pool.reused > reused


def test_flask_debug_is_off_and_backends_per_host_are_remembered(
    moto_server: Any, app_root: Path, settings_for: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto import backends

    lam = deploy_sample(settings_for(app_root))[0]
    apps = moto_server.server.dispatcher.app_instances
    assert apps and not any(app.debug for app in apps.values())
    listings = [0]
    moto_listing = backends.list_of_moto_modules

    def counted() -> Any:
        listings[0] += 1
        return moto_listing()

    monkeypatch.setattr(backends, "list_of_moto_modules", counted)
    for _ in range(3):
        lam.list_functions()
    assert listings[0] == 0  # moto would list its package folder on each request


def test_finished_threads_are_pruned() -> None:
    from moto.stepfunctions.parser.utils import TMP_THREADS

    done = threading.Thread(target=lambda: None)
    done.start()
    done.join()
    TMP_THREADS.append(done)
    assert moto_fixes.prune_finished_threads() >= 1
    assert done not in TMP_THREADS


class _Execution:
    def __init__(self, status: str) -> None:
        self.status = status


class _Machine:
    def __init__(self, statuses: list[str]) -> None:
        self.executions = [_Execution(s) for s in statuses]


def test_evict_executions_keeps_running_and_newest() -> None:
    machine = _Machine(["SUCCEEDED", "RUNNING", "FAILED", "SUCCEEDED", "RUNNING"])
    newest = machine.executions[-2:]
    assert moto_fixes.evict_executions(machine, 3) == 2
    assert [e.status for e in machine.executions] == ["RUNNING", "SUCCEEDED", "RUNNING"]
    assert machine.executions[-2:] == newest
    assert moto_fixes.evict_executions(machine, 3) == 0


def _dead_threads(count: int) -> list[threading.Thread]:
    threads = [threading.Thread(target=lambda: None) for _ in range(count)]
    for thread in threads:
        thread.start()
        thread.join()
    return threads


def test_executions_kept_threads_and_copies_are_bounded(
    app_root: Path, settings_for: Any, tmp_path: Path
) -> None:
    from moto.stepfunctions.models import StateMachine
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends
    from moto.stepfunctions.parser.utils import TMP_THREADS

    _, sfn, _, machine = deploy_sample(settings_for(app_root))
    tracked_before = len(StateMachine.instances_tracked)  # type: ignore[attr-defined]
    dead = _dead_threads(100)
    TMP_THREADS.extend(dead)
    for i in range(moto_fixes.PRUNE_EVERY + 6):  # the fixture keeps 50; one prune at least
        arn = start(sfn, machine, {"counter": str(tmp_path / str(i))}, f"bound-{i}")
        wait(sfn, arn)
    backend = stepfunctions_parser_backends["123456789012"]["us-east-1"]
    kept = backend.describe_state_machine(machine).executions
    assert len(kept) <= 51
    assert kept[-1].execution_arn == arn
    assert not any(thread in TMP_THREADS for thread in dead)
    # moto's per-execution copies of the state machine are not kept by its instance tracker
    assert len(StateMachine.instances_tracked) <= tracked_before + 1  # type: ignore[attr-defined]


def test_starts_are_serialised(app_root: Path, settings_for: Any, tmp_path: Path) -> None:
    _, sfn, _, machine = deploy_sample(settings_for(app_root))
    started: list[str] = []
    payload = {"counter": str(tmp_path / "c")}
    worker = threading.Thread(target=lambda: started.append(start(sfn, machine, payload, "one")))
    with moto_fixes.start_lock:
        worker.start()
        time.sleep(0.3)
        assert not started  # waits while another start holds the lock
    worker.join(10)
    assert started and wait(sfn, started[0])["status"] == "SUCCEEDED"
