"""Benchmark ``scones monitor`` on generated Data Capture: records/s and peak memory.

Generates SageMaker-layout capture folders (a real 32x32 PNG per request, base64, as the endpoint
captures it; two-class JSON probabilities) and runs ``scones monitor`` on each in a fresh process,
so peak RSS is that run's own. Prints one table; the figures and report are part of every run.

Usage: .venv/bin/python bench/bench_monitor.py [--sizes 10000,100000] [--per-file 50] [--keep DIR]
       [--hostile]     also time the issue-14 hostile inputs (a 1970 record, year 9999, 100,000
                       probabilities, 100,000-deep JSON, a 17 MiB line), each among 5 good records
       [--s3 BUCKET]   also upload each generated folder to s3://BUCKET/bench-monitor/ (boto3's
                       standard settings: after `eval "$(scones env)"` the twin's SeaweedFS) and
                       run the monitor on that prefix; the objects are deleted afterwards
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from shared_data import DATA_CAPTURE

ROOT = Path(__file__).resolve().parents[1]
SHARED_CAPTURE = DATA_CAPTURE


def png_payloads(count: int, seed: int) -> list[bytes]:
    """A few distinct random 32x32 PNGs (about 3 KB each)."""
    from PIL import Image

    rng = random.Random(seed)
    payloads = []
    for _ in range(count):
        image = Image.frombytes("RGB", (32, 32), rng.randbytes(32 * 32 * 3))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        payloads.append(buffer.getvalue())
    return payloads


def generate(root: Path, records: int, per_file: int, seed: int = 7) -> int:
    """Write ``records`` captures over 48 hours in ``per_file``-record files; return file count.

    Records and paths are made by the endpoint's Data Capture writer, as the twin writes them.
    """
    from scones.endpoint.capture import capture_key, encode_record

    rng = random.Random(seed)
    payloads = png_payloads(32, seed)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    step = timedelta(hours=48) / records
    files = 0
    for first in range(0, records, per_file):
        when = start + first * step
        file_id = str(uuid.UUID(int=rng.getrandbits(128)))
        path = root / capture_key("", "scones-image-classifier", "AllTraffic", when, file_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as handle:
            for i in range(first, min(first + per_file, records)):
                handle.write(
                    encode_record(_record(rng, payloads[i % len(payloads)], start + i * step))
                )
        files += 1
    return files


def _record(rng: random.Random, payload: bytes, when: datetime) -> dict[str, object]:
    from scones.endpoint.capture import capture_record

    p = min(max(rng.betavariate(0.4, 0.4), 0.0), 1.0)  # confidences spread over 0.5..1
    return capture_record(
        input_data=payload,
        input_content_type="image/png",
        output_data=json.dumps([p, 1.0 - p]).encode(),
        output_content_type="application/json",
        event_id=str(uuid.UUID(int=rng.getrandbits(128))),
        inference_time=when,
    )


def _good(k: int) -> dict[str, object]:
    from scones.endpoint.capture import capture_record

    return capture_record(
        input_data=b"png",
        input_content_type="image/png",
        output_data=b"[0.97, 0.03]",
        output_content_type="application/json",
        event_id=f"good-{k}",
        inference_time=datetime(2026, 11, 27, 10, k, tzinfo=UTC),
    )


def hostile_cases(work: Path) -> list[tuple[str, Path]]:
    """One folder per hostile input of issue 14: the bad line first, then 5 good records."""
    from scones.endpoint.capture import capture_record

    def output(probabilities: list[float], when: datetime) -> bytes:
        record = capture_record(
            input_data=b"png",
            input_content_type="image/png",
            output_data=json.dumps(probabilities).encode(),
            output_content_type="application/json",
            event_id="bad",
            inference_time=when,
        )
        return json.dumps(record).encode()

    ok = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    bad_lines = {
        "a record dated 1970": output([0.9, 0.1], datetime(1970, 1, 1, tzinfo=UTC)),
        "a record in year 9999": output([0.9, 0.1], datetime(9999, 12, 31, tzinfo=UTC)),
        "100,000 probabilities": output([1e-5] * 100_000, ok),
        "100,000-deep JSON": b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
        "a 17 MiB line": b'{"x": "' + b"a" * (17 << 20) + b'"}',
    }
    cases = []
    for number, (label, bad) in enumerate(bad_lines.items()):
        folder = work / f"hostile-{number}"
        folder.mkdir(parents=True, exist_ok=True)
        good = b"".join(json.dumps(_good(k)).encode() + b"\n" for k in range(5))
        (folder / "captures.jsonl").write_bytes(bad + b"\n" + good)
        cases.append((label, folder))
    return cases


def run_hostile(work: Path) -> None:
    """Time each hostile case and print a table (seconds, peak RSS, parse errors, exit)."""
    print()
    print("hostile inputs (issue 14), each with 5 good records: one run each")
    print(f"{'input':<24} {'seconds':>8} {'peak RSS MiB':>13} {'parse errors':>13} {'exit':>5}")
    for label, folder in hostile_cases(work):
        out = work / "out-hostile"
        shutil.rmtree(out, ignore_errors=True)
        seconds, peak, code = run_monitor(str(folder), out)
        errors_csv = out / "parse_errors.csv"
        errors = len(errors_csv.read_text().splitlines()) - 1 if errors_csv.exists() else -1
        print(f"{label:<24} {seconds:>8.2f} {peak:>13.0f} {errors:>13} {code:>5}")


def run_monitor(source: str, output: Path) -> tuple[float, float, int]:
    """Run ``scones monitor`` in a fresh process; return (seconds, peak RSS MiB, exit code)."""
    command = [
        sys.executable, "-m", "scones.cli", "monitor", source, "--output", str(output),
        "--no-progress", "--classes", "bicycle,motorcycle",
    ]  # fmt: skip
    started = time.perf_counter()
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _pid, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        err = proc.stderr.read().decode() if proc.stderr else ""
        print(f"scones monitor failed ({code}) on {source}: {err[-500:]}", file=sys.stderr)
    if proc.stderr:
        proc.stderr.close()
    return seconds, usage.ru_maxrss / 1024, code


def upload(folder: Path, bucket: str, prefix: str) -> float:
    """Upload a capture folder under ``prefix`` with 8 threads; return seconds."""
    from concurrent.futures import ThreadPoolExecutor

    import boto3

    client = boto3.client("s3")
    paths = sorted(folder.rglob("*.jsonl"))
    started = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        list(
            pool.map(
                lambda p: client.upload_file(
                    str(p), bucket, f"{prefix}{p.relative_to(folder).as_posix()}"
                ),
                paths,
            )
        )
    return time.perf_counter() - started


def delete_prefix(bucket: str, prefix: str) -> None:
    import boto3

    client = boto3.client("s3")
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes", default="10000,100000", help="record counts (default %(default)s)"
    )
    parser.add_argument(
        "--per-file", type=int, default=50, help="records per capture file (default %(default)s)"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs per size; the median is shown (default %(default)s)",
    )
    parser.add_argument("--keep", type=Path, help="generate into this folder and keep it")
    parser.add_argument("--hostile", action="store_true", help="also time the hostile inputs")
    parser.add_argument(
        "--s3", metavar="BUCKET", help="also run on an S3 copy in this (existing) bucket"
    )
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    print(
        "load average (1, 5, 15 min) at the start: "
        + ", ".join(f"{x:.2f}" for x in os.getloadavg())
    )
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-monitor-"))
    rows = []
    try:
        cases: list[tuple[str, Path, int, int]] = []
        if SHARED_CAPTURE.is_dir():
            real = SHARED_CAPTURE.resolve()
            cases.append(("real captures", real, 22, len(list(real.glob("*.jsonl")))))
        for size in sizes:
            for per_file in sorted({args.per_file, 10} if size == max(sizes) else {args.per_file}):
                folder = work / f"captures-{size}-{per_file}"
                if not folder.exists():
                    t0 = time.perf_counter()
                    files = generate(folder, size, per_file)
                    print(
                        f"generated {size:,} records in {files:,} files in {time.perf_counter() - t0:.1f} s",
                        flush=True,
                    )
                files = sum(1 for _ in folder.rglob("*.jsonl"))
                cases.append((f"generated, {per_file}/file", folder, size, files))
        if args.s3:
            for label, folder, size, files in list(cases):
                if label.startswith("generated"):
                    prefix = f"bench-monitor/{folder.name}/"
                    seconds = upload(folder, args.s3, prefix)
                    print(
                        f"uploaded {files:,} files to s3://{args.s3}/{prefix} in {seconds:.1f} s",
                        flush=True,
                    )
                    cases.append((label.replace("generated", "S3"), folder, size, files))
        for label, folder, size, files in cases:
            mb = sum(p.stat().st_size for p in folder.rglob("*.jsonl")) / 2**20
            source = (
                f"s3://{args.s3}/bench-monitor/{folder.name}"
                if label.startswith("S3")
                else str(folder)
            )
            runs = []
            for _ in range(args.repeat):
                out = work / "out"
                shutil.rmtree(out, ignore_errors=True)
                runs.append(run_monitor(source, out))
            runs.sort()
            seconds, _rss, code = runs[len(runs) // 2]
            peak = max(r[1] for r in runs)
            rows.append((label, size, files, mb, seconds, size / seconds, peak, code))
    finally:
        if args.s3:
            delete_prefix(args.s3, "bench-monitor/")
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print(
        "load average (1, 5, 15 min) at the end: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())
    )
    print(
        f"scones monitor, median of {args.repeat} runs (whole command: start-up, read, CSV, figures, report)"
    )
    print(
        f"{'source':<22} {'records':>9} {'files':>7} {'MiB':>7} {'seconds':>8} {'records/s':>10} {'peak RSS MiB':>13} {'exit':>5}"
    )
    for label, size, files, mb, seconds, rate, peak, code in rows:
        print(
            f"{label:<22} {size:>9,} {files:>7,} {mb:>7.1f} {seconds:>8.2f} {rate:>10,.0f} {peak:>13.0f} {code:>5}"
        )
    if args.hostile:
        hostile_work = Path(tempfile.mkdtemp(prefix="bench-monitor-hostile-"))
        try:
            run_hostile(hostile_work)
        finally:
            shutil.rmtree(hostile_work, ignore_errors=True)
    return 0 if all(r[-1] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
