"""Train ensemble members side by side in worker processes (CPU only).

Small networks use CPU cores poorly through torch's intra-op threads (two threads made a
width-8 member about 1.2x faster than one). Members are independent, so on a CPU with several
cores each member trains in its own process with one thread instead: the same code
(``recipe.train_member``) and seed, so the same weights as a one-thread member trained in the
parent process. Workers are plain child processes running this file (``python workers.py JOB
RESULT``), so nothing depends on how the parent was started (a script without a
``__main__`` guard, a notebook, SageMaker). A sibling of ``train.py`` in the SageMaker source
directory; imports nothing from scones.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


class WorkerError(RuntimeError):
    """A worker process training a member failed (its last output is in the message)."""


@dataclass
class MemberJob:
    """What a worker needs to train one member (tensors travel pickled)."""

    x: Any
    y: Any
    num_classes: int
    recipe: Any
    seed: int


@dataclass
class MemberResult:
    """A trained member as a worker returns it."""

    state: dict[str, Any]
    history: list[dict[str, float]]
    seconds: float
    cpu_seconds: float


MAX_AUTO_WORKERS = 8  # worker processes started without --workers, at most


def worker_count(requested: int, members: int, device_type: str, threads: int = 0) -> int:
    """How many worker processes train the members. 1 means none: the members train in turn in
    this process (on a GPU, with one member, or with one core).

    ``requested`` (above 0) is taken as given. With ``threads`` (above 0) at most that many run.
    Otherwise, on a CPU with several cores, one per member up to ``MAX_AUTO_WORKERS``, even
    beyond the cores: 3 members on 2 cores then share them and end together (150 s measured)
    instead of the third training alone on one core after the first two (196 s)."""
    if device_type != "cpu" or members < 2:
        return 1
    if requested > 0:
        return min(requested, members)
    if threads > 0:
        return min(members, threads)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if (cores or 1) < 2:
        return 1
    return min(members, MAX_AUTO_WORKERS)


class _StepPrinter:
    """The tqdm-like object ``train_member`` updates: one line per step on stdout."""

    def update(self, n: int = 1) -> None:
        sys.stdout.write(f"{n}\n")
        sys.stdout.flush()

    def set_postfix(self, **_: Any) -> None:
        return None


def run_member(job: MemberJob) -> MemberResult:
    """Train one member in this process with one torch thread."""
    import torch
    from recipe import train_member

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True, warn_only=True)
    device = torch.device("cpu")
    member = train_member(
        job.x, job.y, job.num_classes, job.recipe, job.seed, device, progress=_StepPrinter()
    )
    state = {k: v.detach().clone() for k, v in member.net.state_dict().items()}
    return MemberResult(state, member.history, member.seconds, member.cpu_seconds)


class _Worker:
    """One child process training one member; a thread turns its step lines into progress."""

    def __init__(self, job: MemberJob, folder: Path, index: int, progress: Any, lock: Any):
        self.job_path = folder / f"job{index}.pkl"
        self.result_path = folder / f"result{index}.pkl"
        self.job_path.write_bytes(pickle.dumps(job))
        env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "workers.py"), str(self.job_path), str(self.result_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.err: list[str] = []
        self.threads = [
            threading.Thread(target=self._steps, args=(progress, lock), daemon=True),
            threading.Thread(target=self._errors, daemon=True),
        ]
        for t in self.threads:
            t.start()

    def _steps(self, progress: Any, lock: Any) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if progress is not None and line.strip().isdigit():
                with lock:
                    progress.update(int(line))

    def _errors(self) -> None:
        assert self.proc.stderr is not None
        self.err.extend(self.proc.stderr)

    def result(self) -> MemberResult:
        code = self.proc.wait()
        for t in self.threads:
            t.join()
        if code != 0 or not self.result_path.is_file():
            tail = "".join(self.err[-20:]).strip() or "no output"
            raise WorkerError(f"member training worker exited with {code}: {tail}")
        result: MemberResult = pickle.loads(self.result_path.read_bytes())
        return result


def train_in_workers(jobs: list[MemberJob], workers: int, progress: Any = None) -> list[Any]:
    """Run ``jobs`` in at most ``workers`` child processes at a time; returns their
    ``MemberResult`` in the jobs' order. ``progress`` (a tqdm bar or None) advances per step."""
    lock = threading.Lock()
    results: list[Any] = [None] * len(jobs)
    with tempfile.TemporaryDirectory(prefix="scones-members-") as tmp:
        running: list[tuple[int, _Worker]] = []
        try:
            for index, job in enumerate(jobs):
                if len(running) >= workers:
                    results[running[0][0]] = running[0][1].result()
                    running.pop(0)
                running.append((index, _Worker(job, Path(tmp), index, progress, lock)))
            while running:
                results[running[0][0]] = running[0][1].result()
                running.pop(0)
        finally:
            for _, worker in running:  # an error or an interrupt above: stop the others
                worker.proc.kill()
                worker.proc.wait()
    return results


def _main(argv: list[str]) -> int:
    import workers  # this file by its module name, so the result unpickles as workers.*

    job = pickle.loads(Path(argv[0]).read_bytes())
    result = workers.run_member(job)
    Path(argv[1]).write_bytes(pickle.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
