"""Benchmark one member's training epoch on this CPU: float32 or bfloat16 autocast, NCHW or
channels-last, 1 or 2 torch threads, and two one-thread processes side by side (what
``ml/workers.py`` does). Tells whether ``--bf16`` pays on a given CPU.

Uses ``ml/recipe.py``'s own ``train_member`` on random images (the cost does not depend on the
pixels), width 8, batch 64, CutMix on half the batches, as ``train.py`` trains. Prints a table:
median seconds per epoch over ``--repeats`` runs of ``--epochs`` epochs.

Usage: .venv/bin/python bench/bench_train_speed.py [--images 720] [--epochs 8] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ML = Path(__file__).resolve().parents[1] / "ml"


def one_run(images: int, epochs: int, bf16: bool, channels_last: bool, threads: int) -> float:
    """Seconds per epoch of one member trained by ``recipe.train_member``."""
    sys.path.insert(0, str(ML))
    import torch
    from recipe import MemberRecipe, train_member

    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(images, 3, 32, 32, generator=gen)
    y = torch.randint(0, 2, (images,), generator=gen)
    warm = MemberRecipe(epochs=1, cutmix=0.5, bf16=bf16, channels_last=channels_last)
    train_member(x, y, 2, warm, seed=1, device=torch.device("cpu"))  # kernels chosen, caches warm
    recipe = MemberRecipe(epochs=epochs, cutmix=0.5, bf16=bf16, channels_last=channels_last)
    t0 = time.perf_counter()
    train_member(x, y, 2, recipe, seed=0, device=torch.device("cpu"))
    return (time.perf_counter() - t0) / epochs


def child(argv: list[str]) -> int:
    images, epochs, bf16, cl, threads = (int(a) for a in argv)
    print(f"{one_run(images, epochs, bool(bf16), bool(cl), threads):.4f}")
    return 0


def measure(args: argparse.Namespace, bf16: int, cl: int, threads: int, procs: int) -> float:
    """Median seconds per epoch per member (after a warm-up epoch); with ``procs`` > 1, that
    many processes at once, each one's time divided by ``procs`` (a member's share of the cores
    when they train side by side)."""
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    cmd = [sys.executable, __file__, "--child"]
    cmd += [str(v) for v in (args.images, args.epochs, bf16, cl, threads)]
    results = []
    for _ in range(args.repeats):
        running = [
            subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env) for _ in range(procs)
        ]
        per_epoch = [float(p.communicate()[0].strip().splitlines()[-1]) for p in running]
        results.append(max(per_epoch) / procs)
    return statistics.median(results)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        return child(argv[1:])
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=720, help="images per epoch (default 720)")
    parser.add_argument("--epochs", type=int, default=8, help="timed epochs (default 8)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    rows = [
        ("float32, NCHW", 0, 0, 1, 1),
        ("float32, channels-last", 0, 1, 1, 1),
        ("bfloat16, NCHW", 1, 0, 1, 1),
        ("bfloat16, channels-last", 1, 1, 1, 1),
        ("bfloat16, channels-last, 2 threads", 1, 1, 2, 1),
        ("bfloat16, channels-last, 2 processes x 1 thread", 1, 1, 1, 2),
        ("float32, channels-last, 2 processes x 1 thread", 0, 1, 1, 2),
    ]
    print(f"one width-8 member, {args.images} images, batch 64, CutMix 0.5; load {os.getloadavg()}")
    print(f"{'setting':50s} {'s/epoch':>8s} {'vs float32 NCHW':>16s}")
    base = None
    for name, bf16, cl, threads, procs in rows:
        sec = measure(args, bf16, cl, threads, procs)
        base = base or sec
        print(f"{name:50s} {sec:8.3f} {base / sec:15.2f}x", flush=True)
    print("2 processes: the slower one's time per epoch / 2 (a member's share of the cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
