"""The training recipe of ``train.py``: augmentation, schedule, one member's training loop
(optional label smoothing, EMA weights, distillation from a teacher) and the held-out split.

A sibling of ``train.py`` in the SageMaker source directory; imports nothing from scones.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class MemberRecipe:
    """How one ensemble member is trained."""

    epochs: int = 50
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 0.05
    width: int = 8
    label_smoothing: float = 0.0
    ema: float = 0.0  # EMA decay per step (0: off); the EMA weights are the ones kept
    distill: float = 0.0  # weight of the teacher's soft targets in the loss (0: off)
    cutmix: float = 0.0  # probability that a batch is CutMix-ed (0: off)
    jitter: float = 0.0  # per-image brightness shift and contrast scale, +- this (0: off)
    swa: float = 0.0  # share of the last epochs whose end-of-epoch weights are averaged (0: off)
    scale: float = 0.0  # random zoom in [1 - scale, 1 + scale] with shift and flip (0: crops)
    sam: float = 0.0  # sharpness-aware minimization radius rho (0: off; doubles the step cost)
    bf16: bool = False  # forward/backward under bfloat16 autocast (AMX on recent x86 CPUs)
    channels_last: bool = True  # NHWC layout of weights and batches (faster on CPUs)


@dataclass
class TrainedMember:
    """One trained network, its per-epoch history and the time its training took."""

    net: Any
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    cpu_seconds: float = 0.0


def augment(batch: Any, gen: Any) -> Any:
    """Random crop (reflect-pad 4) and horizontal flip of a float batch ``[B, 3, 32, 32]``."""
    import torch
    import torch.nn.functional as F

    b, c, h, w = batch.shape
    padded = F.pad(batch, (4, 4, 4, 4), mode="reflect")
    dx = torch.randint(0, 9, (b,), generator=gen)
    dy = torch.randint(0, 9, (b,), generator=gen)
    flip = torch.rand(b, generator=gen) < 0.5
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None]
    cols = dx[:, None] + torch.arange(w)
    cols = torch.where(flip[:, None], cols.flip(1), cols)[:, None, None, :]
    return padded[
        torch.arange(b)[:, None, None, None], torch.arange(c)[None, :, None, None], rows, cols
    ]


def scale_augment(batch: Any, scale: float, gen: Any) -> Any:
    """Random zoom (uniform in ``1 +- scale``), shift (up to 4 pixels each way) and horizontal
    flip of a float batch ``[B, 3, 32, 32]`` in one resampling; borders are reflected."""
    import torch
    import torch.nn.functional as F

    b, _, h, w = batch.shape
    zoom = 1.0 + scale * (2 * torch.rand(b, generator=gen) - 1)
    flip = torch.where(torch.rand(b, generator=gen) < 0.5, -1.0, 1.0)
    shift = (2 * torch.rand(b, 2, generator=gen) - 1) * (8.0 / w)  # 4 px in [-1, 1] units
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = flip / zoom
    theta[:, 1, 1] = 1.0 / zoom
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(batch.shape), align_corners=False)
    return F.grid_sample(batch, grid, padding_mode="reflection", align_corners=False)


def color_jitter(batch: Any, strength: float, gen: Any) -> Any:
    """Per-image contrast scale and brightness shift, both uniform in +-``strength`` (on the
    normalized batch, so a shift of 0.2 is a fifth of a channel's standard deviation)."""
    import torch

    b = batch.shape[0]
    scale = 1.0 + strength * (2 * torch.rand(b, 1, 1, 1, generator=gen) - 1)
    shift = strength * (2 * torch.rand(b, 1, 1, 1, generator=gen) - 1)
    mean = batch.mean(dim=(1, 2, 3), keepdim=True)
    return (batch - mean) * scale + mean + shift


def cutmix(batch: Any, labels: Any, gen: Any) -> tuple[Any, Any, float]:
    """CutMix: a box (area share drawn uniformly) of each image replaced by the same box of
    another image of the batch. Returns the mixed batch, the other images' labels and the
    share ``lam`` of each image that is still its own."""
    import torch

    b, _, h, w = batch.shape
    perm = torch.randperm(b, generator=gen)
    cut = math.sqrt(1.0 - float(torch.rand(1, generator=gen)))
    ch, cw = int(h * cut), int(w * cut)
    cy = int(torch.randint(0, h, (1,), generator=gen))
    cx = int(torch.randint(0, w, (1,), generator=gen))
    y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
    x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
    mixed = batch.clone()
    mixed[:, :, y0:y1, x0:x1] = batch[perm, :, y0:y1, x0:x1]
    lam = 1.0 - (y1 - y0) * (x1 - x0) / (h * w)
    return mixed, labels[perm], lam


def native_bf16(device_type: str) -> bool:
    """Whether this CPU computes bfloat16 natively (AMX or AVX-512 BF16): there bfloat16
    autocast trains a member about 2x faster; elsewhere (older CPUs, GPUs) training stays fp32."""
    if device_type != "cpu":
        return False
    try:
        import torch.cpu

        return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def one_cycle(step: int, total: int, warmup: float = 0.25, floor: float = 0.04) -> float:
    """Learning-rate factor: linear warm-up to 1 over ``warmup`` of the steps, then cosine down."""
    rise = max(1, round(total * warmup))
    if step < rise:
        return floor + (1.0 - floor) * (step + 1) / rise
    progress = min(1.0, (step - rise + 1) / max(1, total - rise))
    return floor / 10 + (1.0 - floor / 10) * 0.5 * (1.0 + math.cos(math.pi * progress))


def param_groups(net: Any, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: decay on weights, none on norm parameters and biases."""
    decay: list[Any] = []
    no_decay: list[Any] = []
    for name, param in net.named_parameters():
        (no_decay if param.ndim <= 1 or name.endswith(".bias") else decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def holdout_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, held_out)``: ``fraction`` of each class held out, chosen by ``seed``."""
    rng = np.random.default_rng(seed)
    held: list[int] = []
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        n = int(round(len(idx) * fraction))
        if 0 < n < len(idx):
            held.extend(rng.choice(idx, size=n, replace=False).tolist())
    held_out = np.sort(np.asarray(held, dtype=np.int64))
    train = np.setdiff1d(np.arange(len(labels)), held_out)
    return train, held_out


def _loss(logits: Any, yb: Any, recipe: MemberRecipe, soft: Any) -> Any:
    import torch.nn.functional as F

    loss = F.cross_entropy(logits, yb, label_smoothing=recipe.label_smoothing)
    if soft is not None and recipe.distill > 0:
        kl = F.kl_div(F.log_softmax(logits, dim=1), soft, reduction="batchmean")
        loss = (1 - recipe.distill) * loss + recipe.distill * kl
    return loss


def train_member(
    x: Any,
    y: Any,
    num_classes: int,
    recipe: MemberRecipe,
    seed: int,
    device: Any,
    teacher: Callable[[Any], Any] | None = None,
    progress: Any = None,
) -> TrainedMember:
    """Train one network on ``x`` ``[N,3,32,32]`` / ``y`` ``[N]``: AdamW on the one-cycle
    schedule, seeded by ``seed``. ``teacher(xb)`` (probabilities) enables distillation;
    ``progress`` is a tqdm bar (updated per step) or None."""
    import torch
    from network import build_model

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    layout = torch.channels_last if recipe.channels_last else torch.contiguous_format
    net = build_model(num_classes, recipe.width).to(device, memory_format=layout)
    total = max(1, recipe.epochs * math.ceil(len(x) / recipe.batch_size))
    optimizer = torch.optim.AdamW(param_groups(net, recipe.weight_decay), lr=recipe.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: one_cycle(s, total))
    ema = None
    if recipe.ema > 0:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        ema = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(recipe.ema), use_buffers=True)
    swa = None
    swa_from = recipe.epochs - max(1, round(recipe.epochs * recipe.swa)) if recipe.swa > 0 else 0
    history = []
    t0, c0 = time.perf_counter(), time.process_time()
    for epoch in range(recipe.epochs):
        net.train()
        order = torch.randperm(len(x), generator=gen)
        loss_sum, n_right = 0.0, 0
        for i in range(0, len(order), recipe.batch_size):
            idx = order[i : i + recipe.batch_size]
            xb = scale_augment(x[idx], recipe.scale, gen) if recipe.scale else augment(x[idx], gen)
            if recipe.jitter > 0:
                xb = color_jitter(xb, recipe.jitter, gen)
            yb = y[idx]
            other, lam = None, 1.0
            if recipe.cutmix > 0 and float(torch.rand(1, generator=gen)) < recipe.cutmix:
                xb, other, lam = cutmix(xb, yb, gen)
                other = other.to(device)
            xb, yb = xb.to(device), yb.to(device)
            soft = None
            if teacher is not None:
                with torch.no_grad():
                    soft = teacher(xb)
            xb = xb.contiguous(memory_format=layout)

            def closure(
                xb: Any = xb, yb: Any = yb, other: Any = other, lam: float = lam, soft: Any = soft
            ) -> Any:
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=recipe.bf16):
                    logits = net(xb).float()
                loss = _loss(logits, yb, recipe, soft)
                if other is not None:
                    loss = lam * loss + (1 - lam) * _loss(logits, other, recipe, soft)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                return logits, loss

            logits, loss = closure()
            if recipe.sam > 0:
                _sam_second_step(net, recipe.sam, closure)
            optimizer.step()
            scheduler.step()
            if ema is not None:
                ema.update_parameters(net)
            loss_sum += loss.item() * len(idx)
            n_right += int((logits.argmax(1) == yb).sum())
            if progress is not None:
                progress.update(1)
        history.append(
            {"epoch": epoch + 1, "loss": loss_sum / len(x), "train_accuracy": n_right / len(x)}
        )
        if progress is not None:
            progress.set_postfix(loss=f"{history[-1]['loss']:.3f}", refresh=False)
        if recipe.swa > 0 and epoch >= swa_from:
            swa = _swa_update(swa, net)
    kept = net if ema is None else ema.module
    if swa is not None:
        kept = swa[1]
    return TrainedMember(
        net=kept.eval(),
        history=history,
        seconds=time.perf_counter() - t0,
        cpu_seconds=time.process_time() - c0,
    )


def _sam_second_step(net: Any, rho: float, closure: Callable[[], Any]) -> None:
    """Sharpness-aware minimization: move the weights ``rho`` along the normalized gradient,
    take the gradient there (``closure``), and move back; the optimizer then steps with it."""
    import torch

    params = [p for p in net.parameters() if p.grad is not None]
    with torch.no_grad():
        norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params]))
        shifts = [p.grad * (rho / (norm + 1e-12)) for p in params]
        for p, e in zip(params, shifts, strict=True):
            p.add_(e)
    closure()
    with torch.no_grad():
        for p, e in zip(params, shifts, strict=True):
            p.sub_(e)


def _swa_update(swa: Any, net: Any) -> Any:
    """Add ``net``'s weights and float buffers (BatchNorm statistics) to the running
    equal-weight average; ``swa`` is ``(count, averaged copy of net)`` or None."""
    import copy

    import torch

    if swa is None:
        return (1, copy.deepcopy(net))
    count, avg = swa
    with torch.no_grad():
        for mine, theirs in zip(avg.state_dict().values(), net.state_dict().values(), strict=True):
            if mine.is_floating_point():
                mine.mul_(count / (count + 1)).add_(theirs, alpha=1 / (count + 1))
            else:
                mine.copy_(theirs)
    return (count + 1, avg)


def progress_bar(enabled: bool, total: int) -> Any:
    """A tqdm bar on stderr when ``enabled`` and tqdm is installed, else None."""
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    # on a terminal a live bar; in a log (CI, SageMaker's CloudWatch) one line every 30 s
    interval = 0.1 if sys.stderr.isatty() else 30.0
    return tqdm(total=total, unit="step", desc="train", file=sys.stderr, mininterval=interval)


def predict_logits(nets: list[Any], x: Any, device: Any, batch_size: int = 256) -> np.ndarray:
    """Logits of every network on ``x``: ``[K, N, C]`` (eval mode, no gradients)."""
    import torch

    out = []
    with torch.no_grad():
        for net in nets:
            net.eval()
            parts = [
                net(x[i : i + batch_size].to(device)).float().cpu().numpy()
                for i in range(0, len(x), batch_size)
            ]
            if not parts:  # no images (an empty held-out split)
                classes = net(torch.zeros(1, 3, 32, 32, device=device)).shape[1]
                parts = [np.zeros((0, classes), dtype=np.float32)]
            out.append(np.concatenate(parts))
    return np.stack(out)
