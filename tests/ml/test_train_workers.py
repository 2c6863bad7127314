"""Members trained side by side in worker processes, bfloat16 autocast and SAM: the real script
on tiny synthetic data."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from scones.training.local import train_local
from scones.training.script import load_train_script, source_dir

train = load_train_script()
BASE = ["--width", "4", "--members", "2", "--batch-size", "8"]


def workers_module() -> Any:
    sys.path.insert(0, str(source_dir()))
    try:
        import workers
    finally:
        sys.path.remove(str(source_dir()))
    return workers


@pytest.mark.parametrize(
    ("requested", "members", "device", "threads", "cores", "expected"),
    [
        (0, 3, "cpu", 0, 2, 3),  # one per member, sharing the 2 cores
        (0, 3, "cpu", 0, 16, 3),
        (0, 12, "cpu", 0, 2, 8),  # at most MAX_AUTO_WORKERS
        (0, 3, "cpu", 0, 1, 1),  # one core: members in turn
        (0, 3, "cpu", 1, 16, 1),  # --threads 1: members in turn
        (0, 4, "cpu", 3, 16, 3),  # never more than --threads
        (2, 3, "cpu", 1, 16, 2),  # --workers wins over --threads
        (5, 3, "cpu", 0, 2, 3),  # never more than the members
        (0, 3, "cuda", 0, 16, 1),  # a GPU trains members in turn
        (0, 1, "cpu", 0, 16, 1),
    ],
)
def test_worker_count(
    monkeypatch: pytest.MonkeyPatch,
    requested: int,
    members: int,
    device: str,
    threads: int,
    cores: int,
    expected: int,
) -> None:
    workers = workers_module()
    monkeypatch.setattr(workers.os, "sched_getaffinity", lambda _pid: set(range(cores)))
    assert workers.worker_count(requested, members, device, threads) == expected


def test_workers_train_the_same_members_as_one_thread(tiny_data: Path, tmp_path: Path) -> None:
    """Two worker processes give bit-for-bit the members one thread trains in turn."""
    reports = {}
    for name, extra in (("turn", ["--threads", "1"]), ("workers", ["--workers", "2"])):
        reports[name] = train_local(
            tiny_data, tmp_path / name, epochs=2, seed=5, extra=[*BASE, *extra], progress=False
        )
    assert (reports["turn"]["workers"], reports["workers"]["workers"]) == (1, 2)
    for key in ("nll", "final_train_loss", "risk_coverage", "members"):
        assert reports["turn"][key] == reports["workers"][key], key
    assert reports["workers"]["train_cpu_seconds"] > 0  # the workers' CPU time is counted


def test_a_failing_worker_is_named() -> None:
    """A worker that cannot train (no images) fails the run with its traceback's tail."""
    workers = workers_module()
    job = workers.MemberJob(x=None, y=None, num_classes=2, recipe=None, seed=0)
    with pytest.raises(workers.WorkerError, match="exited with 1"):
        workers.train_in_workers([job, job], 2)


def test_bf16_and_sam_train_and_are_reported(tiny_data: Path, tmp_path: Path) -> None:
    report = train_local(
        tiny_data,
        tmp_path,
        epochs=2,
        seed=0,
        extra=[*BASE, "--threads", "1", "--bf16", "1", "--sam", "0.05"],
        progress=False,
    )
    hp = report["hyperparameters"]
    assert (hp["bf16"], hp["sam"]) == (1, 0.05)
    assert report["onnx_max_abs_diff"] < 1e-4  # the exported graph is float32 whatever trained
    plain = train_local(
        tiny_data, tmp_path / "plain", epochs=2, seed=0, extra=[*BASE, "--threads", "1"]
    )
    assert plain["final_train_loss"] != report["final_train_loss"]


def test_an_interrupt_stops_every_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C while waiting for the first member: no worker process is left running."""
    workers = workers_module()
    started: list[Any] = []
    real_init = workers._Worker.__init__

    def init(self: Any, *args: Any) -> None:
        real_init(self, *args)
        started.append(self.proc)

    def interrupted(self: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(workers._Worker, "__init__", init)
    monkeypatch.setattr(workers._Worker, "result", interrupted)
    job = workers.MemberJob(x=None, y=None, num_classes=2, recipe=None, seed=0)
    with pytest.raises(KeyboardInterrupt):
        workers.train_in_workers([job, job, job], 2)
    assert len(started) == 2 and all(proc.returncode is not None for proc in started)


@pytest.mark.parametrize(
    "flag", [("--sam", "-0.1"), ("--bf16", "2"), ("--bf16", "-2"), ("--workers", "-1")]
)
def test_new_option_out_of_range_is_named(
    tiny_data: Path, tmp_path: Path, flag: tuple[str, str]
) -> None:
    with pytest.raises(train.TrainingDataError, match="--sam must be at least 0, --bf16 -1, 0"):
        train_local(tiny_data, tmp_path, epochs=1, extra=[*BASE, *flag], progress=False)


def test_member_lines_without_a_progress_bar(
    tiny_data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """No tqdm: one line per member, whether members train in workers or in turn."""
    monkeypatch.setattr(train, "progress_bar", lambda enabled, total: None)
    for name, extra in (("turn", ["--threads", "1"]), ("workers", ["--workers", "2"])):
        train_local(tiny_data, tmp_path / name, epochs=1, extra=[*BASE, *extra], progress=True)
        lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("member ")]
        assert [ln.split(" loss ")[0] for ln in lines] == ["member 1/2", "member 2/2"], name


def test_scones_train_passes_workers_on(tiny_data: Path, tmp_path: Path) -> None:
    from test_train import cli

    model = tmp_path / "model"
    argv = ["--data", str(tiny_data), "--model-dir", str(model), "--epochs", "1", "--quiet"]
    assert cli(*argv, "--width", "4", "--members", "2", "--workers", "2") == 0
    report = json.loads((model / "metrics.json").read_text())
    assert report["workers"] == 2
