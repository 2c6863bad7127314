"""Soak: 10,000 uniquely tagged images through the workflow on a private twin, with one fault of
each kind injected along the way (issue 14), then the accounting.

Faults, each once, when the given share of the batch has ended:
  10 % S3 (SeaweedFS) restart, down 5 s      40 % sfn server restart (classify rides it out)
  25 % kill -9 of one endpoint worker         55 % SIGTERM of the endpoint while S3 is down
  33 % endpoint restart                       70 % sfn server stopped for longer than
                                                   classify waits (WAIT_S): it stops early with
                                                   a report; the sfn server is started again
                                                   and the same classify resumes
Prints images in, outcomes out, executions started (and restarted after the sfn server lost
them), results reused on resume, Data Capture records on S3 (and answered images without one,
against the endpoint's pending/lost counts). Speed is printed, never asserted.

Usage: .venv/bin/python bench/soak.py [--images 10000] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "stack"))  # faults_helpers: shared with the fault suite

from scones.settings import Settings, ensure_secret  # noqa: E402 - after the path above

#: How long classify waits for the sfn server: longer than a restart (10-22 s measured here).
WAIT_S = 45.0


def _faults(settings: Settings) -> list[tuple[float, str, Callable[[], object]]]:
    from faults_helpers import kill_one_worker, restart, service, wait_healthy

    from scones.twin import services

    def s3_down_endpoint_sigterm() -> None:
        assert services.stop_service(settings, service("s3"))
        restart(settings, "endpoint")
        time.sleep(2)
        services.start_service(settings, service("s3"))
        wait_healthy(settings, "s3")

    def sfn_gone() -> None:
        services.stop_service(settings, service("sfn"))
        time.sleep(WAIT_S + 10)  # classify gives up after WAIT_S; main() starts it again

    return [
        (0.10, "S3 restart (down 5 s)", lambda: restart(settings, "s3", down_s=5)),
        (0.25, "endpoint worker kill -9", lambda: kill_one_worker(settings)),
        (0.33, "endpoint restart", lambda: restart(settings, "endpoint")),
        (0.40, "sfn server restart", lambda: restart(settings, "sfn", down_s=2)),
        (0.55, "endpoint SIGTERM with S3 down", s3_down_endpoint_sigterm),
        (0.70, "sfn server gone (resume)", sfn_gone),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=10000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()

    from scones.twin import ports, services

    work = Path(tempfile.mkdtemp(prefix="soak-"))
    os.environ.update(
        {"SCONES_HOME": str(work / "home"), "SCONES_CAPTURE_FLUSH_SECONDS": "1"}
        | ports.free_ports()
    )
    os.chdir(ROOT)
    from faults_helpers import capture_counts, capture_records, service, upload_batch, wait_healthy

    from scones.cli import main as scones
    from scones.training.tiny import build_tiny_model
    from scones.twin.classify import ImageResult, classify
    from scones.twin.clients import twin_clients
    from scones.twin.deploy import read_deployed

    ensure_secret(Settings.from_env().home)  # what `scones up` would write: read it before up
    settings = Settings.from_env()
    os.environ.update(settings.aws_env())
    try:
        if scones(["up"]) != 0:
            print("scones up failed", file=sys.stderr)
            return 1
        model = build_tiny_model(work / "tiny")
        overrides = ["--parameter-overrides", "ConfidenceThreshold=0.5"]
        assert scones(["deploy", "--local", "--model", str(model), *overrides]) == 0
        deployed = read_deployed(settings)
        (s3,) = twin_clients(settings, "s3")
        t0 = time.monotonic()
        tags = upload_batch(s3, deployed["bucket"], "soak/", args.images, "soak")
        print(f"uploaded {args.images} tagged images in {time.monotonic() - t0:.0f}s", flush=True)

        faults = _faults(settings)
        fired: list[tuple[str, int, float]] = []  # name, images ended when it began, seconds
        lock = threading.Lock()
        seen = [0]
        threads: list[threading.Thread] = []

        def on_result(_result: ImageResult) -> None:
            with lock:
                seen[0] += 1
                while faults and seen[0] >= faults[0][0] * args.images:
                    share, name, inject = faults.pop(0)

                    def run(name: str = name, inject: Callable[[], object] = inject) -> None:
                        start, at = time.monotonic(), seen[0]
                        inject()
                        fired.append((name, at, time.monotonic() - start))
                        print(f"fault: {name} at {at} images ({time.monotonic() - start:.1f}s)")

                    threads.append(threading.Thread(target=run, daemon=True))
                    threads[-1].start()

        source = f"s3://{deployed['bucket']}/soak/"
        t0 = time.monotonic()
        first = classify(
            settings,
            source,
            concurrency=args.concurrency,
            progress=True,
            on_result=on_result,
            wait_s=WAIT_S,
        )
        for thread in threads:
            thread.join(timeout=120)
        runs = [first]
        if first.stopped:
            print(f"classify stopped early: {first.stopped}; {first.unfinished} left", flush=True)
            services.start_service(settings, service("sfn"))
            wait_healthy(settings, "sfn")
            runs.append(
                classify(
                    settings,
                    source,
                    concurrency=args.concurrency,
                    progress=True,
                    on_result=on_result,
                    wait_s=WAIT_S,
                )
            )
        seconds = time.monotonic() - t0
        final = runs[-1]
        counts = final.counts()
        answered = {r.key for r in final.results if r.outcome in ("classified", "review")}
        prefix = f"data_capture/{deployed['endpoint_name']}/"
        deadline = time.monotonic() + 90
        while True:
            records = capture_records(s3, deployed["bucket"], prefix)
            tagged = [tags[d] for d in records if d in tags]
            missing = answered - set(tagged)
            if not missing or time.monotonic() > deadline:
                break
            time.sleep(3)
        status = capture_counts(settings) or {}
        keys = [r.key for r in final.results]
        rows = [
            ("images in", f"{args.images}"),
            ("outcomes out (final report)", f"{len(keys)} ({len(set(keys))} distinct images)"),
            ("classified", f"{sum(counts['classified'].values())} {counts['classified']}"),
            ("sent to review", f"{counts['review']}"),
            ("failed", f"{sum(counts['failed'].values())} {counts['failed']}"),
            ("faults injected", f"{len(fired)}: " + "; ".join(f"{n} @{a}" for n, a, _ in fired)),
            ("classify runs", f"{len(runs)} (first stopped: {first.stopped or 'no'})"),
            ("executions started", " + ".join(str(r.started) for r in runs)),
            ("  of those, restarted (lost by sfn)", " + ".join(str(r.restarted) for r in runs)),
            ("results reused on resume", " + ".join(str(r.resumed) for r in runs)),
            ("capture records on S3 (batch)", f"{len(tagged)} for {len(set(tagged))} images"),
            ("answered images without a record", f"{len(missing)}"),
            ("endpoint capture counts", f"{status}"),
            ("wall time", f"{seconds:.0f}s ({args.images / seconds:.1f} images/s)"),
        ]
        width = max(len(name) for name, _ in rows)
        print()
        for name, value in rows:
            print(f"{name:<{width}}  {value}")
        return 0
    finally:
        scones(["down"])


if __name__ == "__main__":
    sys.exit(main())
