"""Benchmark: the whole workflow on the offline twin (real handlers, SeaweedFS, endpoint).

Starts a private twin (temporary SCONES_HOME, free loopback ports), deploys template.yaml with
a model, and measures:

1. executions/s end to end for N real CIFAR images (``scones classify s3://...``, 32 in
   flight): each execution runs the three real handlers (S3 GET, InvokeEndpoint, filter);
2. the full user path ``scones classify <folder>`` (upload under incoming/ + bridge + runs);
3. where the sfn server's CPU goes (py-spy samples of the server process during one run);
4. the sfn server's RSS over many executions (it must stay flat: finished executions beyond
   SCONES_SFN_KEEP_EXECUTIONS are evicted).

Usage: .venv/bin/python bench/bench_workflow.py [--images 1000] [--rss-executions 10000]
       [--model PATH] [--repeats 3]
Data: ../shared/data/cifar-100-python-vehicles.tar.gz (1000 bicycle/motorcycle images).
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from shared_data import VEHICLES_ARCHIVE

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
ARCHIVE = VEHICLES_ARCHIVE

# Profile categories: the first pattern found in a sampled stack (innermost-first order) wins.
CATEGORIES = [
    ("handler SerializeImage (S3 GET + checks)", "functions/serialize_image"),
    ("handler ClassifyImage (InvokeEndpoint)", "functions/classify_image"),
    ("handler FilterInferences", "functions/filter_inferences"),
    ("S3 bridge (polling)", "scones/twin/bridge"),
    ("ASL interpreter (moto stepfunctions)", "moto/stepfunctions"),
    ("Lambda binding (scones)", "scones/twin/"),
    ("HTTP API: Start/DescribeExecution (werkzeug + moto core)", "werkzeug"),
    ("HTTP API: Start/DescribeExecution (werkzeug + moto core)", "moto/core"),
]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# py-spy counts some blocked threads as active; drop samples whose innermost frame waits.
WAITING = (
    "Condition.wait",
    "Event.wait",
    "select (",
    "readinto (",
    "_wait_for_tstate_lock",
    "do_poll",
)


def profile_breakdown(raw: Path) -> list[tuple[str, float]]:
    """Share of sampled CPU stacks per category, from py-spy's raw (collapsed) output."""
    counts: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        samples = int(n)
        frames = stack.split(";")[::-1]  # innermost first
        if any(w in frames[0] for w in WAITING):
            continue
        total += samples
        name = "other (threading, json, logging, ...)"
        for frame in frames:
            hit = next((label for label, pattern in CATEGORIES if pattern in frame), None)
            if hit:
                name = hit
                break
        counts[name] += samples
    return [(k, v / total) for k, v in counts.most_common()] if total else []


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--rss-executions", type=int, default=10000)
    parser.add_argument("--repeats", type=int, default=3, help="timed classify runs (median)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--model", type=Path, help="model.tar.gz (default: a tiny model built now)")
    parser.add_argument(
        "--threshold",
        default=None,
        help="ConfidenceThreshold override (default: 0.5 with the tiny model, which is rarely"
        " 0.93 sure on real images; the template's value with --model)",
    )
    args = parser.parse_args()
    if not ARCHIVE.is_file():
        print(f"missing {ARCHIVE}", file=sys.stderr)
        return 2

    from scones.twin import ports, services

    work = Path(tempfile.mkdtemp(prefix="bench-workflow-"))
    os.environ.update(
        {
            "SCONES_HOME": str(work / "home"),
            **ports.free_ports(),
        }
    )
    os.chdir(ROOT)
    from scones.cli import main as scones
    from scones.settings import Settings, ensure_secret
    from scones.twin.classify import classify, upload_images
    from scones.twin.clients import twin_clients
    from scones.twin.deploy import read_deployed

    ensure_secret(Settings.from_env().home)  # what `scones up` would write: read it before up
    settings = Settings.from_env()
    os.environ.update(settings.aws_env())
    rows: list[tuple[str, str]] = []
    try:
        if scones(["up"]) != 0:
            print("scones up failed", file=sys.stderr)
            return 1
        model = args.model
        if model is None:
            from scones.training.tiny import build_tiny_model

            model = build_tiny_model(work / "tiny")
        threshold = args.threshold or (None if args.model else "0.5")
        overrides = (
            ["--parameter-overrides", f"ConfidenceThreshold={threshold}"] if threshold else []
        )
        assert scones(["deploy", "--local", "--model", str(model), *overrides]) == 0
        sfn_service = next(s for s in services.available_services() if s.name == "sfn")
        sfn_pid = services.running_pid(settings, sfn_service)
        assert sfn_pid, "sfn server not running"

        from scones.data.etl import extract

        extract(ARCHIVE, work / "data", ["bicycle", "motorcycle"], progress=False)
        images = sorted((work / "data").rglob("*.png"))[: args.images]
        folder = work / "images"
        folder.mkdir()
        for path in images:
            shutil.copy(path, folder / f"{path.parent.name}-{path.name}")
        n = len(images)
        deployed = read_deployed(settings)
        bucket = deployed["bucket"]
        (s3,) = twin_clients(settings, "s3")
        t0 = time.perf_counter()
        upload_images(s3, bucket, "bench/", folder, sorted(folder.iterdir()), progress=False)
        upload_s = time.perf_counter() - t0
        source = f"s3://{bucket}/bench/"
        print(
            f"{n} images uploaded in {upload_s:.1f}s; rss after deploy {rss_mib(sfn_pid):.0f} MiB",
            flush=True,
        )

        rates: list[float] = []
        describes: list[float] = []
        counts = None
        profile = work / "profile.txt"
        for i in range(args.repeats):
            spy = None
            if i == 1 and shutil.which("py-spy", path=str(ROOT / ".venv/bin")):
                spy = subprocess.Popen(
                    [
                        str(ROOT / ".venv/bin/py-spy"),
                        "record",
                        "--pid",
                        str(sfn_pid),
                        "--format",
                        "raw",
                        "--output",
                        str(profile),
                        "--rate",
                        "200",
                        "--nonblocking",
                        "--full-filenames",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                time.sleep(1.0)
            report = classify(
                settings, source, concurrency=args.concurrency, progress=False, rerun=True
            )
            if spy is not None:
                spy.send_signal(2)
                spy.wait(timeout=60)
            rates.append(n / report.seconds)
            describes.append(report.describe_calls / n)
            counts = report.counts()
            print(
                f"run {i + 1}: {n / report.seconds:.1f} executions/s  {counts['classified']} review={counts['review']} failed={counts['failed']}",
                flush=True,
            )
        rows.append(
            (
                f"executions/s, {n} images, s3 source, {args.concurrency} in flight (median of {len(rates)})",
                f"{statistics.median(rates):.1f}",
            )
        )
        rows.append(("  runs", ", ".join(f"{r:.1f}" for r in rates)))
        rows.append(("  DescribeExecution calls per image", f"{statistics.median(describes):.2f}"))
        rows.append(
            (
                "  load average (1 min) at the end, from others on the machine",
                os.getloadavg()[0].__format__(".1f"),
            )
        )
        if counts:
            rows.append(
                (
                    "  outcomes (last run)",
                    f"classified {counts['classified']}, review {counts['review']}, failed {counts['failed']}",
                )
            )

        t0 = time.perf_counter()
        report = classify(settings, str(folder), concurrency=args.concurrency, progress=False)
        full_s = time.perf_counter() - t0
        rows.append(
            (
                f"scones classify <folder> ({n} images: upload under incoming/ + bridge + runs)",
                f"{n / full_s:.1f} images/s ({full_s:.1f}s)",
            )
        )

        breakdown = profile_breakdown(profile) if profile.exists() else []

        print(f"load average: {os.getloadavg()}", flush=True)
        rss = [(0, rss_mib(sfn_pid))]
        done = 0
        while done < args.rss_executions:
            report = classify(
                settings, source, concurrency=args.concurrency, progress=False, rerun=True
            )
            done += n
            rss.append((done, rss_mib(sfn_pid)))
            print(
                f"rss after {done} more executions: {rss[-1][1]:.0f} MiB ({n / report.seconds:.1f}/s)",
                flush=True,
            )
    finally:
        scones(["down"])
        shutil.rmtree(work, ignore_errors=True)

    print("\n| measure | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    if breakdown:
        print(
            "\nWhere the sfn server's CPU goes (py-spy samples of one run, waiting frames removed):\n"
        )
        print("| part | share |\n|---|---|")
        for name, share in breakdown:
            print(f"| {name} | {share:.0%} |")
    if len(rss) < 2:
        return 0
    print("\nsfn server RSS over executions (finished executions beyond 1000 are evicted):\n")
    print("| executions (after the timed runs) | RSS MiB |\n|---|---|")
    for count, mib in rss:
        print(f"| {count} | {mib:.0f} |")
    if len(rss) > 3:
        later = [m for c, m in rss if c >= rss[-1][0] // 2]
        print(f"\nsecond half growth: {max(later) - min(later):.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
