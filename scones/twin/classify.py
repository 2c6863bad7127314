"""``scones classify``: one execution of the deployed workflow per image, many in flight.

The images come from an S3 prefix, or from a local folder uploaded first under the incoming
prefix. Each execution is started exactly as the S3 bridge starts it (same name, same input),
so an image the bridge already ran is reported, not run again. Every image ends in one
``ImageResult``: classified, sent to review, or failed.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scones.errors import CommandError
from scones.settings import Settings
from scones.twin.clients import twin_clients, unreachable
from scones.twin.deploy import read_deployed
from scones.twin.workflow import ExecutionOutcome, describe_outcome, error_message

IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".heic", ".heif"}
)
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


def local_images(folder: Path) -> tuple[list[Path], int]:
    """The image files under ``folder`` (sorted) and how many other files were skipped."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    return images, len(files) - len(images)


def upload_images(
    s3: Any, bucket: str, prefix: str, folder: Path, files: list[Path], progress: bool
) -> None:
    """Upload ``files`` (under ``folder``) to ``s3://bucket/prefix``, keeping relative paths."""
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    def put(path: Path) -> None:
        s3.put_object(
            Bucket=bucket, Key=prefix + path.relative_to(folder).as_posix(), Body=path.read_bytes()
        )

    with (
        ThreadPoolExecutor(max_workers=8) as pool,
        tqdm(
            total=len(files), desc="upload", unit="img", disable=not progress, file=sys.stderr
        ) as bar,
    ):
        for _ in pool.map(put, files):
            bar.update(1)


def _source_prefix(
    s3: Any, deployed: dict[str, Any], source: str, progress: bool
) -> tuple[str, str, int]:
    """(bucket, prefix, skipped files) of ``source``; a local folder is uploaded first."""
    if source.startswith("s3://"):
        bucket, _, prefix = source[5:].partition("/")
        if not bucket:
            raise CommandError(f"not an S3 URI: {source!r} (expected s3://bucket/prefix)")
        return bucket, prefix, 0
    folder = Path(source).expanduser()
    if not folder.is_dir():
        raise CommandError(f"not a folder or s3:// URI: {source}")
    files, skipped = local_images(folder)
    if not files:
        raise CommandError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {folder}")
    bucket = deployed["bucket"]
    run_id = f"{datetime.now(tz=UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    prefix = f"{deployed['incoming_prefix']}{run_id}/"
    upload_images(s3, bucket, prefix, folder, files, progress)
    return bucket, prefix, skipped


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


class _InFlight:
    """The executions started and not yet reported, oldest first."""

    def __init__(self, sfn: Any, run_config: Any, suffix: str, timeout_s: float) -> None:
        self.sfn, self.run_config, self.suffix, self.timeout_s = sfn, run_config, suffix, timeout_s
        self.started: dict[str, tuple[str, float]] = {}  # arn -> (key, monotonic start)
        self.describe_calls = 0

    def start(self, obj: Any) -> None:
        """Start (or find) the execution for ``obj``."""
        from scones.twin import bridge

        arn, _ = bridge.start_for_object(self.sfn, self.run_config, obj, self.suffix)
        if arn is None:  # cannot happen: the pattern is empty
            raise CommandError(f"no rule matches s3://{obj.bucket}/{obj.key}")
        self.started[arn] = (obj.key, time.monotonic())

    def ended(self) -> list[tuple[str, ExecutionOutcome]]:
        """(key, outcome) of the executions that ended (or ran past the timeout).

        Executions end roughly in start order: describe the oldest first and stop at the first
        one still running (about one DescribeExecution per image).
        """
        done = []
        for arn, (key, since) in list(self.started.items()):
            outcome = describe_outcome(self.sfn, arn)
            self.describe_calls += 1
            if outcome.status == "RUNNING":
                if time.monotonic() - since <= self.timeout_s:
                    break
                outcome = ExecutionOutcome(
                    arn,
                    "TIMED_OUT",
                    error="ClassifyTimeout",
                    cause=f"still running after {self.timeout_s:.0f}s",
                )
            del self.started[arn]
            done.append((key, outcome))
        return done


def _run_all(
    flight: _InFlight,
    objects: list[Any],
    classes: list[str],
    concurrency: int,
    progress: bool,
    on_result: Callable[[ImageResult], None] | None,
) -> list[ImageResult]:
    """Keep ``concurrency`` executions in flight until every object has a result."""
    from tqdm import tqdm

    results: list[ImageResult] = []
    pending = list(objects)
    with tqdm(
        total=len(objects), desc="classify", unit="img", disable=not progress, file=sys.stderr
    ) as bar:
        while pending or flight.started:
            while pending and len(flight.started) < concurrency:
                flight.start(pending.pop(0))
            time.sleep(0.005)
            for key, outcome in flight.ended():
                result = interpret(key, outcome, classes)
                results.append(result)
                if on_result:
                    on_result(result)
                bar.update(1)
    return results


def classify(
    settings: Settings,
    source: str,
    *,
    concurrency: int = 32,
    timeout_s: float = 600.0,
    progress: bool = True,
    rerun: bool = False,
    on_result: Callable[[ImageResult], None] | None = None,
) -> ClassifyReport:
    """Run one execution per image under ``source`` (s3://bucket/prefix or a local folder).

    Each object version runs once: an execution that already exists for it (started by the
    bridge or an earlier classify) is reported, not repeated, unless ``rerun`` is set.
    """
    from botocore.exceptions import EndpointConnectionError

    from scones.twin import bridge

    deployed = read_deployed(settings)
    config = bridge.read_config(settings)
    if config is None:
        raise CommandError("the bridge configuration is missing: run `scones deploy --local` again")
    s3, sfn = twin_clients(settings, "s3", "stepfunctions")
    started_at = time.perf_counter()
    try:
        bucket, prefix, skipped = _source_prefix(s3, deployed, source, progress)
        objects = [o for o in bridge.list_objects(s3, bucket, prefix) if not o.key.endswith("/")]
        if not objects:
            raise CommandError(f"no objects under s3://{bucket}/{prefix}")
        report = ClassifyReport(source=source, bucket=bucket, prefix=prefix, skipped_files=skipped)
        classes = load_classes(settings, deployed["endpoint_name"])
        run_config = _run_config(deployed, config, bucket, prefix)
        flight = _InFlight(sfn, run_config, uuid.uuid4().hex[:8] if rerun else "", timeout_s)
        report.results = _run_all(flight, objects, classes, concurrency, progress, on_result)
        report.describe_calls = flight.describe_calls
    except EndpointConnectionError as exc:
        raise unreachable(exc, settings) from None
    report.seconds = time.perf_counter() - started_at
    _check_counts(report, len(objects))
    return report


def _check_counts(report: ClassifyReport, images: int) -> None:
    """Every image ended in exactly one row (else a ``CommandError``)."""
    counts = report.counts()
    ended = sum(counts["classified"].values()) + counts["review"] + sum(counts["failed"].values())
    if ended != images or len(report.results) != images:
        raise CommandError(f"count check failed: {images} images, {ended} outcomes")
