"""Train the scones classifier: a SageMaker script-mode entry point that also runs locally.

SageMaker runs ``python train.py --epochs 30 ...`` in its PyTorch training container with the
``SM_*`` environment variables set; ``scones train`` calls ``main`` in-process with the same
variables pointing at local folders. Self-contained: torch, numpy, Pillow and its siblings in
this folder: ``channels.py`` (reading a channel), ``network.py`` (the CNN and its ONNX export),
``calibration.py`` (the report's accuracy, coverage, precision and ECE) and ``serving/``
(``inference.py`` and ``requirements.txt``, copied into the model's ``code/``); tqdm and onnxruntime are used when present (progress bar; ONNX parity check and latency).
SageMaker installs ``requirements.txt`` (beside this file) before running it.

Data: each channel folder (``SM_CHANNEL_TRAIN``, ``SM_CHANNEL_TEST``) holds ``<split>.lst``
(index<TAB>label<TAB>path relative to the folder), the PNGs it lists and ``classes.json``: the
layout ``scones etl`` writes, so both channels may point at the same ETL output folder.

Writes to ``SM_MODEL_DIR``: ``model.onnx`` (input "input" float32 [N,3,32,32] normalized, output
"probabilities" [N,C]; with ``--tta 1`` the graph averages the image and its mirror image;
off by default: it did not raise accuracy in bench/bench_model.py and doubles inference cost),
``classes.json``, ``metrics.json``, ``code/inference.py``, ``code/requirements.txt``.
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
from calibration import classification_report
from channels import TrainingDataError, find_manifest, load_split, read_classes
from network import build_model, export_onnx, make_probability_model, onnx_benchmark

HERE = Path(__file__).resolve().parent
# Copied from serving/ into the model's code/ folder, which SageMaker's inference container loads.
SERVING_FILES = ("inference.py", "requirements.txt")


def parse_args(argv: Sequence[str] | None = None, environ: dict[str, str] | None = None) -> Any:
    """Parse hyperparameters and SageMaker paths (``SM_*`` variables are the defaults)."""
    env = dict(os.environ if environ is None else environ)
    p = argparse.ArgumentParser(
        description="Train the scones bicycle/motorcycle classifier (SageMaker script mode)."
    )
    p.add_argument("--epochs", type=int, default=50, help="passes over the training images")
    p.add_argument("--batch-size", "--batch_size", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3, help="peak AdamW learning rate (one-cycle)")
    p.add_argument(
        "--weight-decay", type=float, default=0.05, help="AdamW decay (not on norm/bias)"
    )
    p.add_argument("--width", type=int, default=16, help="channels of the first ResNet-9 stage")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tta", type=int, default=0, help="1: average the image and its mirror image")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: default)")
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


def _augment(batch: Any, gen: Any) -> Any:
    """Random crop (reflect-pad 4) and horizontal flip of a uint8->float batch [B,3,32,32]."""
    import torch
    import torch.nn.functional as F

    b = batch.shape[0]
    padded = F.pad(batch, (4, 4, 4, 4), mode="reflect")
    dx = torch.randint(0, 9, (b,), generator=gen)
    dy = torch.randint(0, 9, (b,), generator=gen)
    flip = torch.rand(b, generator=gen) < 0.5
    out = torch.empty_like(batch)
    for i in range(b):
        crop = padded[i, :, int(dy[i]) : int(dy[i]) + 32, int(dx[i]) : int(dx[i]) + 32]
        out[i] = crop.flip(2) if bool(flip[i]) else crop
    return out


def one_cycle(step: int, total: int, warmup: float = 0.25, floor: float = 0.04) -> float:
    """Learning-rate factor: linear warm-up to 1 over ``warmup`` of the steps, then cosine down."""
    rise = max(1, round(total * warmup))
    if step < rise:
        return floor + (1.0 - floor) * (step + 1) / rise
    progress = min(1.0, (step - rise + 1) / max(1, total - rise))
    return floor / 10 + (1.0 - floor / 10) * 0.5 * (1.0 + math.cos(math.pi * progress))


def _param_groups(net: Any, weight_decay: float) -> list[dict[str, Any]]:
    decay: list[Any] = []
    no_decay: list[Any] = []
    for name, param in net.named_parameters():
        (no_decay if param.ndim <= 1 or name.endswith(".bias") else decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def _predict(model: Any, x: Any, device: Any, batch_size: int = 256) -> np.ndarray:
    import torch

    model.eval()
    outs = []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            outs.append(model(x[i : i + batch_size].to(device)).cpu().numpy())
    return np.concatenate(outs)


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
    """Both splits, the images as normalized tensors ``[N, 3, 32, 32]``, and the normalization."""

    classes: list[str]
    x_train: Any
    y_train: Any
    x_test: Any
    y_test: np.ndarray
    mean: np.ndarray
    std: np.ndarray


@dataclass
class TrainingRun:
    """What the training loop produced: the network, per-epoch history and the time it took."""

    net: Any
    history: list[dict[str, float]]
    seconds: float
    cpu_seconds: float


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


def _progress_bar(enabled: bool, total: int) -> Any:
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="step", desc="train", file=sys.stderr)


def train_epoch(
    net: Any,
    data: TrainingData,
    step: Any,
    gen: Any,
    batch_size: int,
    device: Any,
    bar: Any = None,
) -> dict[str, float]:
    """One pass over the shuffled, augmented training set; ``step(loss)`` updates the weights.
    Returns the epoch's mean loss and training accuracy."""
    import torch
    import torch.nn.functional as F

    net.train()
    order = torch.randperm(len(data.x_train), generator=gen)
    loss_sum, n_seen, n_right = 0.0, 0, 0
    for i in range(0, len(order), batch_size):
        idx = order[i : i + batch_size]
        xb = _augment(data.x_train[idx], gen).to(device)
        yb = data.y_train[idx].to(device)
        logits = net(xb)
        loss = F.cross_entropy(logits, yb)
        step(loss)
        loss_sum += loss.item() * len(idx)
        n_seen += len(idx)
        n_right += int((logits.argmax(1) == yb).sum())
        if bar is not None:
            bar.update(1)
    return {"loss": loss_sum / n_seen, "train_accuracy": n_right / n_seen}


def train_network(data: TrainingData, args: Any, device: Any, torch: Any) -> TrainingRun:
    """Build the network and train it: AdamW on the one-cycle schedule, seeded by ``args.seed``."""
    gen = torch.Generator().manual_seed(args.seed)
    net = build_model(len(data.classes), args.width).to(device)
    total_steps = max(1, args.epochs * math.ceil(len(data.x_train) / args.batch_size))
    optimizer = torch.optim.AdamW(_param_groups(net, args.weight_decay), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: one_cycle(step, total_steps)
    )

    def step(loss: Any) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()

    bar = _progress_bar(bool(args.progress), total_steps)
    t_train = time.perf_counter()
    cpu_train = time.process_time()
    history = []
    for epoch in range(args.epochs):
        stats = train_epoch(net, data, step, gen, args.batch_size, device, bar)
        history.append({"epoch": epoch + 1, **stats})
        if bar is not None:
            bar.set_postfix(loss=f"{stats['loss']:.3f}", acc=f"{stats['train_accuracy']:.3f}")
        elif args.progress:
            print(f"epoch {epoch + 1}/{args.epochs} loss {stats['loss']:.4f}", flush=True)
    if bar is not None:
        bar.close()
    return TrainingRun(
        net=net,
        history=history,
        seconds=time.perf_counter() - t_train,
        cpu_seconds=time.process_time() - cpu_train,
    )


def evaluate(
    run: TrainingRun, data: TrainingData, args: Any, device: Any, torch: Any
) -> tuple[dict[str, Any], Any, np.ndarray]:
    """The report on the test split, the probability model that ships and its test probabilities.

    The report also scores the other test-time setting (``with_tta`` / ``without_tta``), to show
    what mirror averaging does.
    """
    prob_model = make_probability_model(run.net, bool(args.tta))
    probs = _predict(prob_model, data.x_test, device)
    other = _predict(make_probability_model(run.net, not args.tta), data.x_test, device)
    report: dict[str, Any] = {
        "classes": data.classes,
        **classification_report(probs, data.y_test),
        "n_train": int(len(data.x_train)),
        "train_seconds": round(run.seconds, 2),
        "train_cpu_seconds": round(run.cpu_seconds, 2),
        "device": device.type,
        "torch_threads": torch.get_num_threads(),
        "parameters": int(sum(p.numel() for p in run.net.parameters())),
        "hyperparameters": {
            k: getattr(args, k)
            for k in ("epochs", "batch_size", "lr", "weight_decay", "width", "seed", "tta")
        },
        "final_train_loss": run.history[-1]["loss"] if run.history else None,
        ("without_tta" if args.tta else "with_tta"): classification_report(other, data.y_test),
    }
    return report, prob_model, probs


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
    """Write ``classes.json``, ``metrics.json`` and ``code/`` beside ``model.onnx``; the metrics
    and per-epoch history also go to SageMaker's output folder when it is writable."""
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
    except OSError:
        pass


def _run(args: Any, torch: Any) -> dict[str, Any]:
    started = time.time()
    device = _seed_and_device(args.seed, torch)
    if args.epochs < 1 or args.batch_size < 1 or args.width < 1:
        raise TrainingDataError("epochs, batch size and width must be at least 1")
    data = load_data(Path(args.train), Path(args.test), torch)
    trained = train_network(data, args, device, torch)
    report, prob_model, probs = evaluate(trained, data, args, device, torch)
    model_dir = Path(args.model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    report.update(export_and_check(prob_model, probs, data.x_test, model_dir / "model.onnx"))
    report["total_seconds"] = round(time.time() - started, 2)
    write_model_folder(model_dir, data, report, trained.history, Path(args.output_data_dir))
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """Script-mode entry point: parse arguments, train, print the report as JSON."""
    args = parse_args(argv)
    try:
        report = run(args)
    except TrainingDataError as exc:
        print(f"train.py: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({k: v for k, v in report.items() if k != "hyperparameters"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
