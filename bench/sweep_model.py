"""Recipe sweep for the confidence filter (issue 15): train many ensemble members, keep their
logits, then score ensembles and calibration offline.

``train``: every (recipe, ensemble seed, member) job of ``RECIPES`` trains one network with
``ml/recipe.py`` (CUDA when available; ``--workers`` processes in parallel) on an ETL folder,
holding out ``holdout`` of the training images (a split chosen by the ensemble seed), and saves
the held-out and test logits into one ``.npz``. Distillation recipes run second, with the first
four members of their teacher recipe (same ensemble seed) as the teacher.

``score``: for each recipe, ensemble size and ensemble seed, the members' softmax averaged (as
the exported graph does), with T = 1 and with the temperature fitted on the held-out logits;
prints the medians over the ensemble seeds.

Usage: python bench/sweep_model.py train --data DIR --out sweep.npz [--workers 14]
       python bench/sweep_model.py score sweep.npz
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "ml"))

from calibration import (  # noqa: E402
    classification_report,
    ensemble_probs,
    fit_temperature,
    risk_coverage,
    threshold_for_precision,
)
from recipe import MemberRecipe  # noqa: E402

SEEDS: tuple[int, ...] = (0, 1, 2)
MEMBERS = 8
# name: (recipe, holdout fraction, teacher recipe or None)
RECIPES: dict[str, tuple[MemberRecipe, float, str | None]] = {
    "w8": (MemberRecipe(width=8), 0.1, None),
    "w16": (MemberRecipe(width=16), 0.1, None),
    "w8-full": (MemberRecipe(width=8), 0.0, None),
    "w16-full": (MemberRecipe(width=16), 0.0, None),
    "w8-ls0.1": (MemberRecipe(width=8, label_smoothing=0.1), 0.1, None),
    "w8-ema": (MemberRecipe(width=8, ema=0.98), 0.1, None),
    "w8-e30": (MemberRecipe(width=8, epochs=30), 0.1, None),
    "w8-e100": (MemberRecipe(width=8, epochs=100), 0.1, None),
    "w8-e100-ema": (MemberRecipe(width=8, epochs=100, ema=0.99), 0.1, None),
    "w16-distill": (MemberRecipe(width=16, distill=0.7), 0.1, "w8"),
    "w8-distill": (MemberRecipe(width=8, distill=0.7), 0.1, "w8"),
}
DISTILL_MEMBERS = 2  # students per ensemble seed
if os.environ.get("SWEEP_SMOKE"):  # a seconds-long run of the same code, to check it works
    MEMBERS, SEEDS = 4, (0,)
    RECIPES = {n: (replace(r, epochs=1), h, t) for n, (r, h, t) in RECIPES.items()}


def load(data: Path) -> dict[str, Any]:
    """Both splits, normalized as train.py does."""
    from channels import load_split, read_classes

    xtr, ytr = load_split(data, "train")
    xte, yte = load_split(data, "test")
    mean = xtr.reshape(-1, 3).mean(axis=0) / 255.0
    std = xtr.reshape(-1, 3).std(axis=0) / 255.0

    def norm(x: np.ndarray) -> np.ndarray:
        return (
            (x.transpose(0, 3, 1, 2) / 255.0 - mean[:, None, None]) / std[:, None, None]
        ).astype(np.float32)

    return {
        "classes": read_classes(data),
        "xtr": norm(xtr),
        "ytr": ytr,
        "xte": norm(xte),
        "yte": yte,
    }


_DATA: dict[str, Any] = {}


def _init(data: str) -> None:
    import torch

    torch.set_num_threads(1)
    _DATA.update(load(Path(data)))


def _job(job: tuple[str, int, int, str]) -> dict[str, Any]:
    import torch
    from recipe import holdout_split, predict_logits, train_member

    name, seed, member, ckpt_dir = job
    recipe, holdout, teacher_name = RECIPES[name]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    d = _DATA
    tr, ho = holdout_split(d["ytr"], holdout, seed)
    x = torch.from_numpy(d["xtr"][tr])
    y = torch.from_numpy(d["ytr"][tr])
    teacher = None
    if teacher_name:
        from network import build_model

        nets = []
        for k in range(4):
            net = build_model(len(d["classes"]), RECIPES[teacher_name][0].width)
            net.load_state_dict(torch.load(f"{ckpt_dir}/{teacher_name}-{seed}-{k}.pt"))
            nets.append(net.to(device).eval())

        def teacher(xb: Any) -> Any:
            return torch.stack([torch.softmax(n(xb), 1) for n in nets]).mean(0)

    trained = train_member(x, y, len(d["classes"]), recipe, seed * 100 + member, device, teacher)
    if name == "w8" and member < 4:
        torch.save(trained.net.state_dict(), f"{ckpt_dir}/{name}-{seed}-{member}.pt")
    nets = [trained.net]
    return {
        "key": f"{name}|{seed}|{member}",
        "hold": predict_logits(nets, torch.from_numpy(d["xtr"][ho]), device)[0],
        "hold_y": d["ytr"][ho],
        "test": predict_logits(nets, torch.from_numpy(d["xte"]), device)[0],
        "seconds": trained.seconds,
    }


def _save(args: argparse.Namespace, results: list[dict[str, Any]]) -> None:
    arrays: dict[str, Any] = {"test_y": load(args.data)["yte"]}
    for r in results:
        for part in ("hold", "hold_y", "test"):
            arrays[f"{r['key']}|{part}"] = r[part]
        arrays[f"{r['key']}|seconds"] = np.array(r["seconds"])
    np.savez_compressed(args.out, **arrays)


def train_all(args: argparse.Namespace) -> int:
    import multiprocessing as mp
    import tempfile

    ckpt = tempfile.mkdtemp(prefix="sweep-ckpt-")
    first = [
        (n, s, m, ckpt)
        for n, r in RECIPES.items()
        if not r[2]
        for s in SEEDS
        for m in range(MEMBERS)
    ]
    second = [
        (n, s, m, ckpt)
        for n, r in RECIPES.items()
        if r[2]
        for s in SEEDS
        for m in range(DISTILL_MEMBERS)
    ]
    t0 = time.perf_counter()
    results = []
    ctx = mp.get_context("spawn")
    with ctx.Pool(args.workers, initializer=_init, initargs=(str(args.data),)) as pool:
        for phase in (first, second):
            for i, r in enumerate(pool.imap_unordered(_job, phase)):
                results.append(r)
                if i % 20 == 0:
                    print(f"{len(results)} jobs, {time.perf_counter() - t0:.0f} s", flush=True)
                    _save(args, results)  # partial results survive a time limit
    _save(args, results)
    recipes = {n: {**asdict(r[0]), "holdout": r[1], "teacher": r[2]} for n, r in RECIPES.items()}
    print(recipes)
    print(f"{len(results)} members in {time.perf_counter() - t0:.0f} s -> {args.out}")
    return 0


def score(args: argparse.Namespace) -> int:
    z = np.load(args.npz)
    yte = z["test_y"]
    keys = sorted({k.rsplit("|", 1)[0] for k in z.files if k.count("|") == 3})
    names = sorted({k.split("|")[0] for k in keys}, key=list(RECIPES).index)
    rows: list[tuple[str, dict[str, float]]] = []
    for name in names:
        for size in (1, 2, 3, 4, 6, 8):
            cells: dict[str, list[float]] = {}
            for seed in SEEDS:
                members = [k for k in keys if k.startswith(f"{name}|{seed}|")]
                members = sorted(members, key=lambda k: int(k.rsplit("|", 1)[1]))[:size]
                if len(members) < size:
                    continue
                test = np.stack([z[f"{k}|test"] for k in members])
                hold = np.stack([z[f"{k}|hold"] for k in members])
                hold_y = z[f"{members[0]}|hold_y"]
                temp = fit_temperature(hold, hold_y) if len(hold_y) else 1.0
                for tag, t in (("T1", 1.0), ("Tfit", temp)):
                    p = ensemble_probs(test, t)
                    r = classification_report(p, yte)
                    best = threshold_for_precision(p, yte)
                    for k, v in (
                        ("acc", r["accuracy"]),
                        ("cov", r["coverage"]),
                        ("prec", r["precision_covered"] or float("nan")),
                        ("ece", r["ece"]),
                        ("nll", r["nll"]),
                        ("aurc", risk_coverage(p, yte)["aurc"]),
                        ("cov@99", best["coverage"] or 0.0),
                    ):
                        cells.setdefault(f"{tag} {k}", []).append(v)
                cells.setdefault("T", []).append(temp)
                secs = [float(z[f"{k}|seconds"]) for k in members]
                cells.setdefault("gpu s", []).append(sum(secs))
            if cells:
                rows.append(
                    (f"{name} x{size}", {k: statistics.median(v) for k, v in cells.items()})
                )
    cols = list(rows[0][1])
    print("recipe".ljust(18) + "".join(c.rjust(10) for c in cols))
    for label, medians in rows:
        print(label.ljust(18) + "".join(f"{medians.get(c, float('nan')):10.3f}" for c in cols))
    print(f"medians over ensemble seeds {SEEDS}; test split n={len(yte)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--data", type=Path, required=True)
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--workers", type=int, default=14)
    t.set_defaults(func=train_all)
    s = sub.add_parser("score")
    s.add_argument("npz", type=Path)
    s.set_defaults(func=score)
    args = p.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
