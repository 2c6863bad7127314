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
MEMBERS = 6
# name: (recipe, holdout fraction, teacher recipe or None). The first sweep's recipes (docs/ml.md:
# full, w16, label smoothing, EMA, 30/100 epochs, distillation) are in git history; this one
# (issue 15, second round) adds CutMix, colour jitter, SWA, batch 128 and mirror averaging (every
# member's logits on the mirrored images are kept, so every ensemble is also scored with TTA).
B128 = {"batch_size": 128, "lr": 4e-3}
RECIPES: dict[str, tuple[MemberRecipe, float, str | None]] = {
    "w8": (MemberRecipe(width=8), 0.1, None),
    "w8-cutmix": (MemberRecipe(width=8, cutmix=0.5), 0.1, None),
    "w8-jitter": (MemberRecipe(width=8, jitter=0.2), 0.1, None),
    "w8-swa": (MemberRecipe(width=8, swa=0.3), 0.1, None),
    "w8-b128-e100": (MemberRecipe(width=8, epochs=100, **B128), 0.1, None),  # type: ignore[arg-type]
    "w8-cutmix-jitter": (MemberRecipe(width=8, cutmix=0.5, jitter=0.2), 0.1, None),
    "w8-cutmix-e100": (MemberRecipe(width=8, cutmix=0.5, epochs=100), 0.1, None),
    "w8-b128-e100-cutmix": (
        MemberRecipe(width=8, epochs=100, cutmix=0.5, **B128),  # type: ignore[arg-type]
        0.1,
        None,
    ),
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
    xho, xte = torch.from_numpy(d["xtr"][ho]), torch.from_numpy(d["xte"])
    return {
        "key": f"{name}|{seed}|{member}",
        "hold": predict_logits(nets, xho, device)[0],
        "hold_flip": predict_logits(nets, torch.flip(xho, dims=[3]), device)[0],
        "hold_y": d["ytr"][ho],
        "test": predict_logits(nets, xte, device)[0],
        "test_flip": predict_logits(nets, torch.flip(xte, dims=[3]), device)[0],
        "seconds": trained.seconds,
    }


def _save(args: argparse.Namespace, results: list[dict[str, Any]]) -> None:
    arrays: dict[str, Any] = {"test_y": load(args.data)["yte"]}
    for r in results:
        for part in ("hold", "hold_flip", "hold_y", "test", "test_flip"):
            arrays[f"{r['key']}|{part}"] = r[part]
        arrays[f"{r['key']}|seconds"] = np.array(r["seconds"])
    np.savez_compressed(args.out, **arrays)


def train_all(args: argparse.Namespace) -> int:
    import multiprocessing as mp
    import tempfile

    ckpt = tempfile.mkdtemp(prefix="sweep-ckpt-")
    global SEEDS, MEMBERS, RECIPES
    if args.seeds:
        SEEDS = tuple(int(v) for v in args.seeds.split(","))
    MEMBERS = args.members or MEMBERS
    if args.recipes:
        RECIPES = {n: RECIPES[n] for n in args.recipes.split(",")}
    first = [  # member-major: a run cut short still has a few members of every recipe and seed
        (n, s, m, ckpt)
        for m in range(MEMBERS)
        for s in SEEDS
        for n, r in RECIPES.items()
        if not r[2]
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
                if i % 10 == 0:
                    print(f"{len(results)} jobs, {time.perf_counter() - t0:.0f} s", flush=True)
                    _save(args, results)  # partial results survive a time limit
    _save(args, results)
    recipes = {n: {**asdict(r[0]), "holdout": r[1], "teacher": r[2]} for n, r in RECIPES.items()}
    print(recipes)
    print(f"{len(results)} members in {time.perf_counter() - t0:.0f} s -> {args.out}")
    return 0


def _cells(z: Any, members: list[str], yte: np.ndarray, tta: bool) -> dict[str, float]:
    """One ensemble's numbers, with T = 1 and with T fitted on the held-out logits; with
    ``tta`` each member's mirrored logits join the average (what ``--tta 1`` exports)."""
    parts = ("test", "test_flip") if tta else ("test",)
    test = np.stack([z[f"{k}|{p}"] for k in members for p in parts])
    hold = np.stack([z[f"{k}|{p.replace('test', 'hold')}"] for k in members for p in parts])
    hold_y = z[f"{members[0]}|hold_y"]
    temp = fit_temperature(hold, hold_y) if len(hold_y) else 1.0
    out: dict[str, float] = {"T": temp}
    for tag, t in (("T1", 1.0), ("Tfit", temp)):
        p = ensemble_probs(test, t)
        r = classification_report(p, yte)
        out[f"{tag} acc"] = r["accuracy"] or 0.0
        out[f"{tag} cov"] = r["coverage"] or 0.0
        out[f"{tag} prec"] = r["precision_covered"] or float("nan")
        out[f"{tag} ece"] = r["ece"] or 0.0
        out[f"{tag} aurc"] = risk_coverage(p, yte)["aurc"]
        out[f"{tag} cov@99"] = threshold_for_precision(p, yte)["coverage"] or 0.0
    return out


def score(args: argparse.Namespace) -> int:
    """Print the medians over ensemble seeds for every recipe, ensemble size and mirror setting
    (``+flip``: each member also sees the mirror image; twice the inference cost)."""
    z = np.load(args.npz)
    yte = z["test_y"]
    keys = sorted({k.rsplit("|", 1)[0] for k in z.files if k.count("|") == 3})
    names = sorted({k.split("|")[0] for k in keys}, key=lambda n: list(RECIPES).index(n))
    seeds = sorted({int(k.split("|")[1]) for k in keys})
    rows: list[tuple[str, dict[str, float]]] = []
    for name in names:
        for size in (1, 2, 3, 4, 6):
            for tta in (False, True):
                cells: dict[str, list[float]] = {}
                for seed in seeds:
                    members = [k for k in keys if k.startswith(f"{name}|{seed}|")]
                    members = sorted(members, key=lambda k: int(k.rsplit("|", 1)[1]))[:size]
                    if len(members) < size:
                        continue
                    for k, v in _cells(z, members, yte, tta).items():
                        cells.setdefault(k, []).append(v)
                    secs = [float(z[f"{k}|seconds"]) for k in members]
                    cells.setdefault("gpu s", []).append(sum(secs))
                    cells.setdefault("n", []).append(1)
                if cells:
                    meds = {k: statistics.median(v) for k, v in cells.items()}
                    meds["n"] = len(cells["n"])
                    rows.append((f"{name} x{size}{'+flip' if tta else ''}", meds))
    if not rows:
        print("no complete ensembles in", args.npz)
        return 1
    cols = [c for c in rows[0][1] if c != "n"] + ["n"]
    print("recipe".ljust(26) + "".join(c.rjust(10) for c in cols))
    for label, medians in rows:
        print(label.ljust(26) + "".join(f"{medians.get(c, float('nan')):10.3f}" for c in cols))
    print(f"medians over ensemble seeds {seeds} (n: how many); test split n={len(yte)}")
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
    t.add_argument("--seeds", default="", help="ensemble seeds, e.g. 3,4,5 (default 0,1,2)")
    t.add_argument("--members", type=int, default=0, help="members per seed (default 6)")
    t.add_argument("--recipes", default="", help="names from RECIPES (default all)")
    t.set_defaults(func=train_all)
    s = sub.add_parser("score")
    s.add_argument("npz", type=Path)
    s.set_defaults(func=score)
    args = p.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
