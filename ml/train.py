"""Train the scones classifier: a SageMaker script-mode entry point that also runs locally.

SageMaker runs ``python train.py --epochs 50 ...`` in its PyTorch training container with the
``SM_*`` environment variables set; ``scones train`` calls ``main`` in-process with the same
variables pointing at local folders. Self-contained: torch, numpy, Pillow and its siblings in
this folder: ``channels.py`` (reading a channel), ``recipe.py`` (augmentation, schedule, one
member's training loop, the held-out split), ``network.py`` (the CNN, the ensemble's probability
graph, ONNX export), ``calibration.py`` (accuracy, coverage, precision, ECE, risk-coverage,
temperature fit), ``plots.py`` (the reliability/risk-coverage PNG) and ``serving/``
(``inference.py`` and ``requirements.txt``, copied into the model's ``code/``); tqdm and
onnxruntime are used when present (progress bar; ONNX parity check and latency). SageMaker
installs ``requirements.txt`` (beside this file) before running it.

Recipe (issue 15, measured in docs/ml.md): ``--members`` networks (default 3, width 8, 200
epochs, half of the batches CutMix-ed; on a CPU side by side in worker processes,
``workers.py``, under bfloat16 autocast where the CPU has it natively) trained on the training
images minus a held-out ``--holdout`` share (default 10 %, stratified, chosen by the seed); the
temperature ``T`` of ``mean_k softmax(logits_k / T)`` is fitted on the held-out images by log
loss, and the held-out split gives the threshold suggestion and the expected review rate.

Data: each channel folder (``SM_CHANNEL_TRAIN``, ``SM_CHANNEL_TEST``) holds ``<split>.lst``
(index<TAB>label<TAB>path relative to the folder), the PNGs it lists and ``classes.json``: the
layout ``scones etl`` writes, so both channels may point at the same ETL output folder.

Writes to ``SM_MODEL_DIR``: ``model.onnx`` (ONE graph: input "input" float32 [N,3,32,32]
normalized, output "probabilities" [N,C], the members' averaged tempered softmax; with
``--tta 1`` each member also averages the image and its mirror image, off by default),
``classes.json``, ``metrics.json``, ``code/inference.py``, ``code/requirements.txt``; to
``SM_OUTPUT_DATA_DIR``: ``metrics.json``, ``history.json`` and ``reliability.png``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from calibration import (
    classification_report,
    ensemble_probs,
    fit_temperature,
    reliability_bins,
    risk_coverage,
    summary,
)
from channels import TrainingDataError, find_manifest, load_split, read_classes
from network import build_model, export_onnx, make_probability_model, onnx_benchmark
from plots import draw_report_png
from recipe import (
    MemberRecipe,
    holdout_split,
    native_bf16,
    predict_logits,
    progress_bar,
    train_member,
)
from workers import MemberJob, train_in_workers, worker_count

HERE = Path(__file__).resolve().parent
# Copied from serving/ into the model's code/ folder, which SageMaker's inference container loads.
SERVING_FILES = ("inference.py", "requirements.txt")
REPORT_PNG = "reliability.png"  # in the output folder (SageMaker: output.tar.gz), not the model
# the arguments metrics.json records under "hyperparameters"
REPORTED_HYPERPARAMETERS = (
    *("epochs", "batch_size", "lr", "weight_decay", "width", "members", "holdout", "calibrate"),
    *("label_smoothing", "ema", "cutmix", "jitter", "swa", "scale", "sam", "bf16", "seed", "tta"),
)


def parse_args(argv: Sequence[str] | None = None, environ: dict[str, str] | None = None) -> Any:
    """Parse hyperparameters and SageMaker paths (``SM_*`` variables are the defaults)."""
    env = dict(os.environ if environ is None else environ)
    p = argparse.ArgumentParser(
        description="Train the scones bicycle/motorcycle classifier (SageMaker script mode)."
    )
    p.add_argument("--epochs", type=int, default=200, help="passes over the training images")
    p.add_argument("--batch-size", "--batch_size", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3, help="peak AdamW learning rate (one-cycle)")
    p.add_argument(
        "--weight-decay", type=float, default=0.05, help="AdamW decay (not on norm/bias)"
    )
    p.add_argument("--width", type=int, default=8, help="channels of the first ResNet-9 stage")
    p.add_argument(
        "--members", type=int, default=3, help="networks averaged in the one exported graph"
    )
    p.add_argument(
        "--holdout",
        type=float,
        default=0.1,
        help="share of the training images held out to fit the temperature (0: none)",
    )
    p.add_argument("--calibrate", type=int, default=1, help="1: fit the temperature (holdout)")
    p.add_argument("--label-smoothing", "--label_smoothing", type=float, default=0.0)
    p.add_argument("--ema", type=float, default=0.0, help="EMA decay per step (0: off)")
    p.add_argument("--cutmix", type=float, default=0.5, help="share of batches CutMix-ed")
    p.add_argument("--jitter", type=float, default=0.0, help="brightness/contrast jitter +-")
    p.add_argument("--swa", type=float, default=0.0, help="share of last epochs averaged (SWA)")
    p.add_argument(
        "--scale", type=float, default=0.0, help="random zoom +- this instead of crops (0: off)"
    )
    p.add_argument("--sam", type=float, default=0.0, help="SAM radius rho (0: off; 2x the steps)")
    p.add_argument(
        "--bf16",
        type=int,
        default=-1,
        help="1: train under bfloat16 autocast, 0: float32 (-1: where the CPU has it natively)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tta", type=int, default=0, help="1: average the image and its mirror image")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: default)")
    p.add_argument(
        "--workers",
        type=int,
        default=0,
        help="CPU processes training members side by side, one thread each "
        "(0: one per member up to 8, at most --threads when set; 1: members in turn)",
    )
    p.add_argument("--progress", type=int, default=1, help="0: no progress bar")
    p.add_argument("--model-dir", "--model_dir", default=env.get("SM_MODEL_DIR", "/opt/ml/model"))
    p.add_argument("--train", default=env.get("SM_CHANNEL_TRAIN", "/opt/ml/input/data/train"))
    p.add_argument("--test", default=env.get("SM_CHANNEL_TEST", "/opt/ml/input/data/test"))
    p.add_argument(
        "--output-data-dir", default=env.get("SM_OUTPUT_DATA_DIR", "/opt/ml/output/data")
    )
    args, unknown = p.parse_known_args(argv)
    if unknown:
        print(f"ignoring unknown arguments: {' '.join(unknown)}", file=sys.stderr)
    return args


def run(args: Any) -> dict[str, Any]:
    """Train, evaluate and write the model folder; return the report (also in metrics.json)."""
    for channel, split in ((Path(args.train), "train"), (Path(args.test), "test")):
        find_manifest(channel, split)  # fail fast, before importing torch
    read_classes(Path(args.train))
    # Idle OpenMP threads sleep instead of spinning: on a shared CPU, spinning made 2-thread
    # training up to 10x slower (bench/README.md). Only effective before torch is first imported.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    previous = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled())
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    try:
        return _run(args, torch)
    finally:
        torch.set_num_threads(previous[0])
        torch.use_deterministic_algorithms(previous[1])


@dataclass
class TrainingData:
    """Both splits, the images as normalized tensors ``[N, 3, 32, 32]``, and the normalization.
    ``x_train`` holds every training image; ``train_idx``/``held_idx`` split it (see --holdout)."""

    classes: list[str]
    x_train: Any
    y_train: Any
    x_test: Any
    y_test: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    train_idx: Any = None
    held_idx: Any = None


def _seed_and_device(seed: int, torch: Any) -> Any:
    """Seed every generator, make kernels deterministic and pick CUDA when available."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
    return device


def load_data(train_dir: Path, test_dir: Path, torch: Any) -> TrainingData:
    """Read both channels and normalize them with the training set's per-channel mean and std."""
    classes = read_classes(train_dir)
    xtr_u8, ytr_np = load_split(train_dir, "train")
    xte_u8, yte_np = load_split(test_dir, "test")
    if ytr_np.min() < 0 or ytr_np.max() >= len(classes) or yte_np.max() >= len(classes):
        raise TrainingDataError(f"labels outside 0..{len(classes) - 1} for classes {classes}")
    mean = (xtr_u8.reshape(-1, 3).mean(axis=0) / 255.0).astype(np.float32)
    std = (xtr_u8.reshape(-1, 3).std(axis=0) / 255.0).astype(np.float32)

    def to_tensor(images: np.ndarray) -> Any:
        t = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0)
        return (t - torch.from_numpy(mean).view(1, 3, 1, 1)) / torch.from_numpy(std).view(
            1, 3, 1, 1
        )

    return TrainingData(
        classes=classes,
        x_train=to_tensor(xtr_u8),
        y_train=torch.from_numpy(ytr_np),
        x_test=to_tensor(xte_u8),
        y_test=yte_np,
        mean=mean,
        std=std,
    )


@dataclass
class Ensemble:
    """The trained members, their histories and the time training took."""

    nets: list[Any]
    histories: list[list[dict[str, float]]]
    seconds: float
    cpu_seconds: float  # this process's and the workers'
    workers: int = 1


def member_recipe(args: Any) -> MemberRecipe:
    """The per-member recipe from the hyperparameters."""
    return MemberRecipe(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        width=args.width,
        label_smoothing=args.label_smoothing,
        ema=args.ema,
        cutmix=args.cutmix,
        jitter=args.jitter,
        swa=args.swa,
        scale=args.scale,
        sam=args.sam,
        bf16=bool(args.bf16),
    )


def _member_done(args: Any, bar: Any, done: int, history: list[dict[str, float]]) -> None:
    """Without a progress bar (no tqdm), one line per trained member."""
    if bar is None and args.progress:
        print(f"member {done}/{args.members} loss {history[-1]['loss']:.4f}", flush=True)


def train_ensemble(data: TrainingData, args: Any, device: Any, torch: Any) -> Ensemble:
    """Train ``args.members`` networks on the training images outside the held-out split;
    member ``k`` is seeded with ``seed + 1000 k``. On a CPU with several cores the members
    train side by side in worker processes with one thread each (``--workers``)."""
    recipe = member_recipe(args)
    idx = torch.from_numpy(data.train_idx)
    x, y = data.x_train[idx], data.y_train[idx]
    steps = args.members * args.epochs * math.ceil(len(x) / args.batch_size)
    bar = progress_bar(bool(args.progress), steps)
    t0, c0 = time.perf_counter(), time.process_time()
    seeds = [args.seed + 1000 * k for k in range(args.members)]
    nets, histories, worker_cpu = [], [], 0.0
    workers = worker_count(args.workers, args.members, device.type, args.threads)
    if workers > 1:
        jobs = [MemberJob(x, y, len(data.classes), recipe, s) for s in seeds]
        for result in train_in_workers(jobs, workers, bar):
            net = build_model(len(data.classes), recipe.width)
            net.load_state_dict(result.state)
            nets.append(net.to(memory_format=torch.channels_last).eval())
            histories.append(result.history)
            worker_cpu += result.cpu_seconds
            _member_done(args, bar, len(histories), result.history)
    else:
        for seed in seeds:
            member = train_member(x, y, len(data.classes), recipe, seed, device, progress=bar)
            nets.append(member.net)
            histories.append(member.history)
            _member_done(args, bar, len(histories), member.history)
    if bar is not None:
        bar.close()
    cpu_seconds = time.process_time() - c0 + worker_cpu
    return Ensemble(nets, histories, time.perf_counter() - t0, cpu_seconds, workers)


def evaluate(
    trained: Ensemble, data: TrainingData, args: Any, device: Any, torch: Any
) -> tuple[dict[str, Any], Any, np.ndarray]:
    """The report, the probability model that ships and its test probabilities.

    The temperature is fitted on the held-out images (the members never saw them); the report
    scores the test split with it and without it (``uncalibrated``), with the other mirror
    setting (``with_tta`` / ``without_tta``), and each member alone (``members``). The held-out
    split gives ``validation`` (with the threshold that would reach 99 % precision on it) and
    ``expected_review_rate``: the share of held-out images below the 0.93 threshold.
    """
    held = data.x_train[torch.from_numpy(data.held_idx)]
    y_held = data.y_train.numpy()[data.held_idx]
    temperature = 1.0
    if args.calibrate and len(y_held):
        temperature = fit_temperature(predict_logits(trained.nets, held, device), y_held)
    prob_model = make_probability_model(trained.nets, bool(args.tta), temperature)
    probs = predict_probs(prob_model, data.x_test, device)
    raw = predict_probs(make_probability_model(trained.nets, bool(args.tta)), data.x_test, device)
    other = make_probability_model(trained.nets, not args.tta, temperature)
    test_logits = predict_logits(trained.nets, data.x_test, device)
    report: dict[str, Any] = {
        "classes": data.classes,
        **summary(probs, data.y_test),
        "temperature": round(temperature, 4),
        "n_train": int(len(data.train_idx)),
        "n_holdout": int(len(y_held)),
        "train_seconds": round(trained.seconds, 2),
        "train_cpu_seconds": round(trained.cpu_seconds, 2),
        "device": device.type,
        "torch_threads": torch.get_num_threads(),
        "workers": trained.workers,
        "parameters": int(sum(p.numel() for net in trained.nets for p in net.parameters())),
        "hyperparameters": {k: getattr(args, k) for k in REPORTED_HYPERPARAMETERS},
        "final_train_loss": float(np.mean([h[-1]["loss"] for h in trained.histories])),
        "uncalibrated": classification_report(raw, data.y_test),
        ("without_tta" if args.tta else "with_tta"): classification_report(
            predict_probs(other, data.x_test, device), data.y_test
        ),
        "members": [
            classification_report(ensemble_probs(logits[None]), data.y_test)
            for logits in test_logits
        ],
        "risk_coverage": risk_coverage(probs, data.y_test),
        "reliability": reliability_bins(probs, data.y_test),
    }
    if len(y_held):
        val_probs = predict_probs(prob_model, held, device)
        report["validation"] = summary(val_probs, y_held)
        report["expected_review_rate"] = 1.0 - report["validation"]["coverage"]
        report["suggested_threshold"] = report["validation"]["for_99_precision"]
    else:
        report["validation"] = None
        report["expected_review_rate"] = None
        report["suggested_threshold"] = None
    return report, prob_model, probs


def predict_probs(model: Any, x: Any, device: Any, batch_size: int = 256) -> np.ndarray:
    """The probability model's output on ``x`` as a numpy array."""
    import torch

    model.eval().to(device)
    with torch.no_grad():
        outs = [
            model(x[i : i + batch_size].to(device)).cpu().numpy()
            for i in range(0, len(x), batch_size)
        ]
    return np.concatenate(outs) if outs else np.zeros((0, 2), dtype=np.float32)


def export_and_check(
    prob_model: Any, probs: np.ndarray, x_test: Any, onnx_path: Path
) -> dict[str, Any]:
    """Export ``model.onnx``; with onnxruntime, compare it with PyTorch on the test split and
    time it. Returns the report entries (size, largest difference, latency)."""
    export_onnx(prob_model, onnx_path)
    found: dict[str, Any] = {"model_bytes": onnx_path.stat().st_size}
    try:
        import onnxruntime as ort
    except ImportError:
        found["onnx_max_abs_diff"] = None
        return found
    x_np = x_test.numpy().astype(np.float32)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    onnx_probs = sess.run(None, {"input": x_np})[0]
    found["onnx_max_abs_diff"] = float(np.abs(onnx_probs - probs).max())
    found.update(onnx_benchmark(onnx_path, x_np))
    return found


def write_model_folder(
    model_dir: Path,
    data: TrainingData,
    report: dict[str, Any],
    history: list[dict[str, float]],
    output_dir: Path,
) -> None:
    """Write ``classes.json``, ``metrics.json`` and ``code/`` beside ``model.onnx``; the metrics,
    per-epoch history and the reliability/risk-coverage picture (``reliability.png``) also go to
    SageMaker's output folder when it is writable."""
    meta = {
        "classes": data.classes,
        "image_size": 32,
        "mean": [float(v) for v in data.mean],
        "std": [float(v) for v in data.std],
    }
    (model_dir / "classes.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    metrics_text = json.dumps(report, indent=2) + "\n"
    (model_dir / "metrics.json").write_text(metrics_text, encoding="utf-8")
    code = model_dir / "code"
    code.mkdir(exist_ok=True)
    for name in SERVING_FILES:
        shutil.copyfile(HERE / "serving" / name, code / name)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "metrics.json").write_text(metrics_text, encoding="utf-8")
        history_text = json.dumps(history, indent=1) + "\n"
        (output_dir / "history.json").write_text(history_text, encoding="utf-8")
        draw_report_png(
            output_dir / REPORT_PNG,
            report["reliability"],
            report["risk_coverage"],
            report["ece"],
            report["threshold"],
        )
    except OSError:
        pass


def _run(args: Any, torch: Any) -> dict[str, Any]:
    started = time.time()
    device = _seed_and_device(args.seed, torch)
    if args.epochs < 1 or args.batch_size < 1 or args.width < 1 or args.members < 1:
        raise TrainingDataError("epochs, batch size, width and members must be at least 1")
    if not (0.0 <= args.cutmix <= 1.0 and 0.0 <= args.swa <= 1.0 and args.jitter >= 0.0):
        raise TrainingDataError("--cutmix and --swa must be in [0, 1], --jitter at least 0")
    if not 0.0 <= args.scale < 1.0:
        raise TrainingDataError(f"--scale must be in [0, 1), got {args.scale}")
    if not 0.0 <= args.holdout < 1.0:
        raise TrainingDataError(f"--holdout must be in [0, 1), got {args.holdout}")
    if args.sam < 0 or args.bf16 not in (-1, 0, 1) or args.workers < 0:
        raise TrainingDataError("--sam must be at least 0, --bf16 -1, 0 or 1, --workers at least 0")
    if args.bf16 < 0:
        args.bf16 = int(native_bf16(device.type))
    data = load_data(Path(args.train), Path(args.test), torch)
    data.train_idx, data.held_idx = holdout_split(data.y_train.numpy(), args.holdout, args.seed)
    trained = train_ensemble(data, args, device, torch)
    report, prob_model, probs = evaluate(trained, data, args, device, torch)
    model_dir = Path(args.model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    report.update(export_and_check(prob_model, probs, data.x_test, model_dir / "model.onnx"))
    report["total_seconds"] = round(time.time() - started, 2)
    history = [{"member": k, **h} for k, hist in enumerate(trained.histories) for h in hist]
    write_model_folder(model_dir, data, report, history, Path(args.output_data_dir))
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """Script-mode entry point: parse arguments, train, print the report as JSON."""
    args = parse_args(argv)
    try:
        report = run(args)
    except TrainingDataError as exc:
        print(f"train.py: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    bulky = ("hyperparameters", "risk_coverage", "reliability")  # in metrics.json
    print(json.dumps({k: v for k, v in report.items() if k not in bulky}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
