"""``scones classify``: one execution of the deployed workflow per image, many in flight.

The images come from an S3 prefix, or from a local folder uploaded first under the incoming
prefix. Each execution is started exactly as the S3 bridge starts it (same name, same input),
so an image the bridge already ran is reported, not run again. Every image ends in one
``ImageResult``: classified, sent to review, or failed.

A run is resumable: each image that ends is written to the run's journal
(``scones.twin.classify_journal``) at once. When the run stops early (the sfn server gone for
longer than ``wait_s``, Ctrl-C) the report holds what ended and says how many did not; running
the same command again skips the images that were classified or sent to review, adopts
executions still running, and runs the failed ones again under a new name (``-r2``, ...).
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from scones.errors import CommandError
from scones.settings import Settings
from scones.twin.classify_journal import FINAL_OUTCOMES, Journal, JournalEntry, journal_path
from scones.twin.classify_source import IMAGE_SUFFIXES as IMAGE_SUFFIXES
from scones.twin.classify_source import Progress, source_prefix
from scones.twin.classify_source import local_images as local_images
from scones.twin.classify_source import upload_images as upload_images
from scones.twin.clients import twin_clients, unreachable
from scones.twin.deploy import read_deployed
from scones.twin.workflow import ExecutionOutcome, describe_outcome, error_message

REVIEW_ERROR = "LowConfidenceError"


@dataclass
class ImageResult:
    """The fate of one image: classified (label), review, or failed (error)."""

    key: str
    outcome: str  # "classified" | "review" | "failed"
    label: int | None = None
    class_name: str | None = None
    confidence: float | None = None
    error: str | None = None
    cause: str | None = None
    execution_arn: str | None = None


@dataclass
class ClassifyReport:
    """Everything ``scones classify`` found, with the per-outcome counts."""

    source: str
    bucket: str
    prefix: str
    results: list[ImageResult] = field(default_factory=list)
    skipped_files: int = 0
    seconds: float = 0.0
    describe_calls: int = 0
    images: int = 0  # objects found under the prefix
    started: int = 0  # executions this run started (the others were found or resumed)
    resumed: int = 0  # results taken from the journal of an earlier run
    restarted: int = 0  # executions started again after the sfn server lost them
    stopped: str | None = None  # why the run ended before every image did

    @property
    def unfinished(self) -> int:
        """Images without a result (a run that stopped early)."""
        return self.images - len(self.results)

    @property
    def all_succeeded(self) -> bool:
        """Every image ended, classified or sent to review (the designed outcome)."""
        return not self.unfinished and all(r.outcome != "failed" for r in self.results)

    def counts(self) -> dict[str, Any]:
        """Images per class name, sent to review, failed per error name, and the total."""
        classified = Counter(
            r.class_name or str(r.label) for r in self.results if r.outcome == "classified"
        )
        failed = Counter(r.error or "unknown" for r in self.results if r.outcome == "failed")
        review = sum(1 for r in self.results if r.outcome == "review")
        return {
            "classified": dict(sorted(classified.items())),
            "review": review,
            "failed": dict(sorted(failed.items())),
            "total": len(self.results),
        }

    def to_json(self) -> dict[str, Any]:
        """The report ``scones classify --json`` prints (counts and one item per image)."""
        counts = self.counts()
        return {
            "source": self.source,
            "bucket": self.bucket,
            "prefix": self.prefix,
            "seconds": round(self.seconds, 3),
            "executions_per_s": round(len(self.results) / self.seconds, 2)
            if self.seconds
            else None,
            "skipped_files": self.skipped_files,
            "describe_calls": self.describe_calls,
            "images": self.images,
            "started": self.started,
            "resumed": self.resumed,
            "restarted": self.restarted,
            "unfinished": self.unfinished,
            "stopped": self.stopped,
            **counts,
            "items": [r.__dict__ for r in self.results],
        }


def interpret(key: str, outcome: ExecutionOutcome, classes: list[str]) -> ImageResult:
    """How the image ``key`` ended, read from its execution's outcome."""
    result = ImageResult(key=key, outcome="failed", execution_arn=outcome.arn)
    if outcome.status == "SUCCEEDED":
        out = outcome.output if isinstance(outcome.output, dict) else {}
        error = out.get("error") or out.get("Error")
        if error == REVIEW_ERROR or out.get("review") or out.get("status") == "review":
            result.outcome, result.error = "review", REVIEW_ERROR
            result.cause = out.get("cause") or out.get("Cause")
        elif "label" in out:
            result.outcome = "classified"
            result.label = int(out["label"])
            result.class_name = classes[result.label] if 0 <= result.label < len(classes) else None
            result.confidence = float(out.get("confidence", 0.0))
        else:
            result.error, result.cause = "UnexpectedOutput", json.dumps(out)[:200]
    elif outcome.error == REVIEW_ERROR:
        result.outcome, result.error, result.cause = "review", REVIEW_ERROR, outcome.cause
    else:
        result.error = outcome.error or outcome.status
        result.cause = outcome.cause
    if result.outcome == "review" and result.cause is None:
        result.cause = outcome.cause
    result.cause = error_message(result.cause)
    return result


def load_classes(settings: Settings, endpoint_name: str) -> list[str]:
    """Class names of the model registered under ``endpoint_name`` (empty if unknown)."""
    path = settings.endpoints_dir / endpoint_name / "model" / "classes.json"
    try:
        return list(json.loads(path.read_text(encoding="utf-8"))["classes"])
    except (FileNotFoundError, KeyError, json.JSONDecodeError):
        return []


def _run_config(deployed: dict[str, Any], config: Any, bucket: str, prefix: str) -> Any:
    """The bridge configuration classify starts executions with: the deployed rule's input, but
    an empty pattern (classify may name another bucket or prefix)."""
    from scones.twin import bridge

    return bridge.BridgeConfig(
        bucket=bucket,
        prefix=prefix,
        state_machine_arn=deployed["state_machine_arn"],
        region=config.region,
        rules=[dict(r, pattern={}) for r in config.rules[:1]]
        or [{"name": "classify", "pattern": {}}],
        since=config.since,
    )


@dataclass
class _Started:
    obj: Any
    since: float
    attempt: int
    suffix: str


class _InFlight:
    """The executions started and not yet reported, oldest first."""

    def __init__(self, sfn: Any, run_config: Any, suffix: str, timeout_s: float) -> None:
        self.sfn, self.run_config, self.suffix, self.timeout_s = sfn, run_config, suffix, timeout_s
        self.started: dict[str, _Started] = {}  # arn -> what it runs
        self.describe_calls = 0
        self.new = 0  # executions this run started
        self.restarted = 0  # of those, started again after the server lost them

    def start(self, obj: Any, attempt: int = 1) -> None:
        """Start (or find) the execution for ``obj``; attempt n > 1 runs under ``-r<n>``."""
        from scones.twin import bridge

        suffix = self.suffix or (f"r{attempt}" if attempt > 1 else "")
        arn, new = bridge.start_for_object(self.sfn, self.run_config, obj, suffix)
        if arn is None:  # cannot happen: the pattern is empty
            raise CommandError(f"no rule matches s3://{obj.bucket}/{obj.key}")
        self.new += int(new)
        self.started[arn] = _Started(obj, time.monotonic(), attempt, suffix)

    def ended(self) -> list[tuple[_Started, ExecutionOutcome]]:
        """(what ran, outcome) of the executions that ended (or ran past the timeout).

        Executions end roughly in start order: describe the oldest first and stop at the first
        one still running (about one DescribeExecution per image). An execution the server no
        longer knows (it restarted and lost it) is started again under the same name.
        """
        done = []
        for arn, item in list(self.started.items()):
            try:
                outcome = describe_outcome(self.sfn, arn)
            except self.sfn.exceptions.ExecutionDoesNotExist:
                del self.started[arn]
                self.start(item.obj, item.attempt)
                self.restarted += 1
                continue
            self.describe_calls += 1
            if outcome.status == "RUNNING":
                if time.monotonic() - item.since <= self.timeout_s:
                    break
                outcome = ExecutionOutcome(
                    arn,
                    "TIMED_OUT",
                    error="ClassifyTimeout",
                    cause=f"still running after {self.timeout_s:.0f}s",
                )
            del self.started[arn]
            done.append((item, outcome))
        return done


def _run_all(
    flight: _InFlight,
    objects: list[Any],
    classes: list[str],
    concurrency: int,
    progress: bool,
    on_result: Callable[[ImageResult], None] | None,
    journal: Journal | None = None,
    results: list[ImageResult] | None = None,
) -> list[ImageResult]:
    """Keep ``concurrency`` executions in flight until every object has a result.

    Images the ``journal`` holds as classified or sent to review are reported from it; ones it
    holds as failed run again (next attempt). ``results`` (if given) fills as images end, so
    a caller still has them when this stops early.
    """
    results = [] if results is None else results
    pending: list[tuple[Any, int]] = []
    for obj in objects:
        entry = journal.get(obj.bucket, obj.key, obj.etag) if journal else None
        if entry is not None and entry.result.get("outcome") in FINAL_OUTCOMES:
            known = {k: v for k, v in entry.result.items() if k in ImageResult.__dataclass_fields__}
            results.append(ImageResult(**known))
        else:
            pending.append((obj, entry.attempt + 1 if entry else 1))
    pending.reverse()  # pop() from the end: start in listing order
    bar = Progress(len(objects), "classify", progress)
    bar.update(len(results))
    try:
        while pending or flight.started:
            while pending and len(flight.started) < concurrency:
                flight.start(*pending.pop())
            time.sleep(0.005)
            for item, outcome in flight.ended():
                result = interpret(item.obj.key, outcome, classes)
                results.append(result)
                if journal is not None:
                    obj = item.obj
                    entry = JournalEntry(
                        obj.bucket, obj.key, obj.etag, result.__dict__, item.attempt
                    )
                    journal.append(entry)
                if on_result:
                    on_result(result)
                bar.update(1)
    finally:
        bar.close()
    return results


def _sfn_gone() -> tuple[type[BaseException], ...]:
    """The errors that mean the Step Functions server stopped answering."""
    from botocore.exceptions import ConnectionError, HTTPClientError

    return (ConnectionError, HTTPClientError)


def _run_resiliently(
    flight: _InFlight,
    objects: list[Any],
    classes: list[str],
    options: dict[str, Any],
    journal: Journal,
    results: list[ImageResult],
) -> str | None:
    """``_run_all`` riding out the sfn server being away for up to ``wait_s`` (executions it
    lost are started again); return why it stopped early, or None when every image ended."""
    gone_since: float | None = None
    while True:
        try:
            done = {r.key for r in results} | {i.obj.key for i in flight.started.values()}
            _run_all(
                flight,
                [o for o in objects if o.key not in done],
                classes,
                options["concurrency"],
                options["progress"] and gone_since is None,
                options["on_result"],
                journal,
                results,
            )
            return None
        except KeyboardInterrupt:
            return "interrupted (Ctrl-C)"
        except _sfn_gone() as exc:
            now = time.monotonic()
            gone_since = gone_since or now
            if now - gone_since > options["wait_s"]:
                return f"the Step Functions server stopped answering ({type(exc).__name__})"
            time.sleep(0.5)


def classify(
    settings: Settings,
    source: str,
    *,
    concurrency: int = 32,
    timeout_s: float = 600.0,
    progress: bool = True,
    rerun: bool = False,
    on_result: Callable[[ImageResult], None] | None = None,
    wait_s: float = 30.0,
) -> ClassifyReport:
    """Run one execution per image under ``source`` (s3://bucket/prefix or a local folder).

    Each object version runs once: an execution that already exists for it (started by the
    bridge or an earlier classify) is reported, not repeated, and so is a result in the
    journal of an earlier run (see the module docstring), unless ``rerun`` is set. When the
    sfn server is away for longer than ``wait_s`` (or on Ctrl-C) the report comes back with
    ``stopped`` set and the images that ended so far.
    """
    from botocore.exceptions import EndpointConnectionError

    from scones.twin import bridge

    if concurrency < 1:
        raise CommandError(f"concurrency must be at least 1, got {concurrency}")
    deployed = read_deployed(settings)
    config = bridge.read_config(settings)
    if config is None:
        raise CommandError("the bridge configuration is missing: run `scones deploy --local` again")
    s3, sfn = twin_clients(settings, "s3", "stepfunctions")
    started_at = time.perf_counter()
    try:
        bucket, prefix, skipped = source_prefix(s3, deployed, source, progress)
        objects = [o for o in bridge.list_objects(s3, bucket, prefix) if not o.key.endswith("/")]
    except EndpointConnectionError as exc:
        raise unreachable(exc, settings) from None
    if not objects:
        raise CommandError(f"no objects under s3://{bucket}/{prefix}")
    report = ClassifyReport(source=source, bucket=bucket, prefix=prefix, skipped_files=skipped)
    report.images = len(objects)
    journal = Journal(journal_path(settings, bucket, prefix)).load()
    if rerun:
        journal.clear()
    report.resumed = sum(
        1
        for o in objects
        if (e := journal.get(o.bucket, o.key, o.etag)) and e.result.get("outcome") in FINAL_OUTCOMES
    )
    classes = load_classes(settings, deployed["endpoint_name"])
    run_config = _run_config(deployed, config, bucket, prefix)
    flight = _InFlight(sfn, run_config, uuid.uuid4().hex[:8] if rerun else "", timeout_s)
    options = {
        "concurrency": concurrency,
        "progress": progress,
        "on_result": on_result,
        "wait_s": wait_s,
    }
    try:
        report.stopped = _run_resiliently(
            flight, objects, classes, options, journal, report.results
        )
    finally:
        journal.close()
    report.describe_calls = flight.describe_calls
    report.started, report.restarted = flight.new, flight.restarted
    report.seconds = time.perf_counter() - started_at
    if report.stopped is None:
        _check_counts(report, len(objects))
    return report


def _check_counts(report: ClassifyReport, images: int) -> None:
    """Every image ended in exactly one row (else a ``CommandError``)."""
    counts = report.counts()
    ended = sum(counts["classified"].values()) + counts["review"] + sum(counts["failed"].values())
    keys = {r.key for r in report.results}
    if ended != images or len(report.results) != images or len(keys) != images:
        raise CommandError(f"count check failed: {images} images, {ended} outcomes")
