"""Benchmark: SerializeImage on phone photos (time, peak memory) and the workflow with them.

1. The handler's image work (``serialize``: Pillow decode, EXIF orientation, reduced PNG) on a
   12 MP JPEG (a phone photo with EXIF orientation 6), a 50 MP PNG (the largest accepted
   image), a 50 MP RGBA PNG (the costliest mode: converted to RGB at full size), a 12 MP HEIC,
   a 60 MP decompression bomb and a CIFAR-size PNG. Each run is a fresh process that first
   imports boto3, Pillow and the handler and creates an S3 client (what a Lambda execution
   environment holds), then reads the file and times ``serialize`` once; the table shows the
   median time and the median peak RSS (``VmHWM``) of ``--runs`` such processes.
2. The workflow's executions/s on a private offline twin (as ``bench_workflow.py`` starts one):
   ``scones classify s3://...`` over ``--photos`` 12 MP JPEGs, then over as many CIFAR-size
   PNGs, ``--concurrency`` in flight, median of ``--repeats``.

Usage: .venv/bin/python bench/bench_serialize.py [--runs 5] [--photos 40] [--repeats 3]
       [--skip-workflow]
The images are made here (CIFAR-like synthetic pictures upscaled, with sensor-like noise).
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
HANDLER = ROOT / "functions" / "serialize_image" / "app.py"
LAYER = ROOT / "functions" / "common"


def picture(label: int, size: tuple[int, int], noise: float, seed: int) -> Any:
    """A CIFAR-like 32x32 synthetic picture upscaled to ``size`` with Gaussian noise."""
    import numpy as np
    from PIL import Image

    from scones.data.synthetic import synthetic_images

    rng = np.random.default_rng(seed)
    row = synthetic_images(label, 1, rng)[0].reshape(3, 32, 32).transpose(1, 2, 0)
    big = Image.fromarray(row).resize(size, Image.Resampling.BICUBIC)
    if noise <= 0:
        return big
    pixels = np.asarray(big, dtype=np.int16)
    for y in range(0, size[1], 512):  # in strips: a 50 MP float array would need 1.2 GB
        strip = pixels[y : y + 512]
        strip += rng.normal(0, noise, strip.shape).round().astype(np.int16)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def encode(image: Any, fmt: str, orientation: int = 1, **save: Any) -> bytes:
    """``image`` stored as a camera would: turned so that EXIF ``orientation`` makes it upright."""
    from PIL import Image

    undo = {
        6: Image.Transpose.ROTATE_90,
        8: Image.Transpose.ROTATE_270,
        3: Image.Transpose.ROTATE_180,
    }
    stored = image.transpose(undo[orientation]) if orientation in undo else image
    if orientation != 1:
        exif = Image.Exif()
        exif[0x0112] = orientation
        save["exif"] = exif.tobytes()
    buffer = io.BytesIO()
    stored.save(buffer, fmt, **save)
    return buffer.getvalue()


def make_images(folder: Path) -> dict[str, Path]:
    """The benchmark's images, written once into ``folder``."""
    from PIL import Image

    made: dict[str, tuple[Any, str, dict[str, Any]]] = {
        "12 MP JPEG (4000x3000, q90, EXIF 6)": (
            lambda: picture(1, (4000, 3000), 4, 1),
            "JPEG",
            {"quality": 90, "orientation": 6},
        ),
        "50 MP PNG (8192x6144 RGB)": (
            lambda: picture(0, (8192, 6144), 0, 2),
            "PNG",
            {"compress_level": 1},
        ),
        "50 MP PNG (8192x6144 RGBA)": (
            lambda: picture(0, (8192, 6144), 0, 3).convert("RGBA"),
            "PNG",
            {"compress_level": 1},
        ),
        "12 MP HEIC (4032x3024)": (lambda: picture(1, (4032, 3024), 4, 4), "HEIF", {"quality": 80}),
        "60 MP bomb (10000x6000 PNG, 1 bit)": (lambda: Image.new("1", (10000, 6000)), "PNG", {}),
        "CIFAR-size PNG (32x32)": (lambda: picture(0, (32, 32), 0, 5), "PNG", {}),
    }
    import pillow_heif

    pillow_heif.register_heif_opener()
    paths = {}
    for index, (name, (make, fmt, save)) in enumerate(made.items()):
        path = folder / f"image{index}.{fmt.lower()}"
        path.write_bytes(encode(make(), fmt, save.pop("orientation", 1), **save))
        paths[name] = path
    return paths


def memory_mib(field: str) -> float:
    """``VmRSS`` or ``VmHWM`` (the peak) of this process, in MiB (a fresh count after exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(path: Path) -> None:
    """One measured run in this process (see the module docstring); prints JSON."""
    import boto3

    sys.path.insert(0, str(LAYER))
    spec = importlib.util.spec_from_file_location("serialize_app", HANDLER)
    assert spec and spec.loader
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    boto3.session.Session().client("s3", region_name="us-east-1")
    app.heif_supported()
    from PIL import Image  # noqa: F401 - imported by the handler on its first image

    data = path.read_bytes()
    before = memory_mib("VmRSS")
    start = time.perf_counter()
    try:
        out, keys = app.serialize(data)
        result = {"reduced": keys["reduced"], "out_bytes": len(out)}
    except (app.NotAnImageError, app.ImageTooLargeError) as exc:
        result = {"error": type(exc).__name__}
    seconds = time.perf_counter() - start
    peak = memory_mib("VmHWM")
    print(json.dumps({**result, "seconds": seconds, "before_mib": before, "peak_mib": peak}))


def measure(paths: dict[str, Path], runs: int) -> list[str]:
    """Table rows: median time and peak RSS of ``runs`` fresh processes per image."""
    rows = []
    for name, path in paths.items():
        results = []
        for _ in range(runs):
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(path)],
                capture_output=True,
                text=True,
                check=True,
            )
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        seconds = statistics.median(r["seconds"] for r in results)
        peak = statistics.median(r["peak_mib"] for r in results)
        before = statistics.median(r["before_mib"] for r in results)
        outcome = results[0].get("error") or (
            f"reduced PNG {results[0]['out_bytes'] / 1000:.0f} kB"
            if results[0]["reduced"]
            else "sent as it is"
        )
        rows.append(
            f"| {name} | {path.stat().st_size / 1e6:.2f} | {seconds * 1000:.0f} | "
            f"{before:.0f} | {peak:.0f} | {outcome} |"
        )
        print(rows[-1], flush=True)
    return rows


def workflow_rates(photos: int, repeats: int, concurrency: int, work: Path) -> list[str]:
    """executions/s of the deployed workflow for 12 MP photos and for CIFAR-size PNGs."""
    from scones.twin import ports

    os.environ.update({"SCONES_HOME": str(work / "home"), **ports.free_ports()})
    os.chdir(ROOT)
    from scones.cli import main as scones
    from scones.settings import Settings, ensure_secret
    from scones.twin.classify import classify, upload_images
    from scones.twin.clients import twin_clients
    from scones.twin.deploy import read_deployed

    ensure_secret(Settings.from_env().home)  # what `scones up` would write: read it before up
    settings = Settings.from_env()
    os.environ.update(settings.aws_env())
    rows = []
    try:
        if scones(["up"]) != 0:
            raise SystemExit("scones up failed")
        from scones.training.tiny import build_tiny_model

        model = build_tiny_model(work / "tiny")
        argv = ["deploy", "--local", "--model", str(model)]
        assert scones([*argv, "--parameter-overrides", "ConfidenceThreshold=0.5"]) == 0
        bucket = read_deployed(settings)["bucket"]
        (s3,) = twin_clients(settings, "s3")
        kinds = {
            "12 MP JPEG photos (4000x3000, EXIF 6)": lambda i: encode(
                picture(i % 2, (4000, 3000), 4, 100 + i), "JPEG", 6, quality=90
            ),
            "CIFAR-size PNGs (32x32)": lambda i: encode(
                picture(i % 2, (32, 32), 0, 100 + i), "PNG"
            ),
        }
        for index, (name, make) in enumerate(kinds.items()):
            folder = work / f"kind{index}"
            folder.mkdir()
            for i in range(photos):
                suffix = ".jpg" if "JPEG" in name else ".png"
                (folder / f"img{i:04d}{suffix}").write_bytes(make(i))
            size = sum(p.stat().st_size for p in folder.iterdir()) / photos / 1e6
            prefix = f"bench{index}/"
            upload_images(s3, bucket, prefix, folder, sorted(folder.iterdir()), progress=False)
            rates, counts = [], {}
            for _ in range(repeats):
                report = classify(
                    settings,
                    f"s3://{bucket}/{prefix}",
                    concurrency=concurrency,
                    progress=False,
                    rerun=True,
                )
                rates.append(photos / report.seconds)
                counts = report.counts()
            rows.append(
                f"| {name} | {photos} | {size:.2f} | **{statistics.median(rates):.1f}** "
                f"({', '.join(f'{r:.1f}' for r in rates)}) | {counts.get('failed') or 'none'} |"
            )
            print(rows[-1], flush=True)
    finally:
        scones(["down"])
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5, help="fresh processes per image")
    parser.add_argument("--photos", type=int, default=40, help="images per workflow run")
    parser.add_argument("--repeats", type=int, default=3, help="timed workflow runs (median)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--skip-workflow", action="store_true")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return 0
    work = Path(tempfile.mkdtemp(prefix="bench-serialize-"))
    try:
        print(f"making images in {work} ...", flush=True)
        paths = make_images(work)
        header = "| image | MB | ms (median) | RSS before MiB | peak RSS MiB | result |"
        print(f"\n{header}\n|---|---:|---:|---:|---:|---|", flush=True)
        rows = measure(paths, args.runs)
        flows = []
        if not args.skip_workflow:
            flows = workflow_rates(args.photos, args.repeats, args.concurrency, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
    print(f"\n{header}\n|---|---:|---:|---:|---:|---|")
    print("\n".join(rows))
    if flows:
        print("\n| workflow input | images | MB each | executions/s (runs) | failed |")
        print("|---|---:|---:|---:|---|")
        print("\n".join(flows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
