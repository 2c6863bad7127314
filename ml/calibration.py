"""How good and how honest the model's confidence is: accuracy, coverage and precision at the
workflow's threshold, expected calibration error, log loss, the risk-coverage curve, the
reliability bins, the temperature that calibrates an ensemble and the threshold that reaches a
target precision. A sibling of ``train.py`` in the SageMaker source directory; imports nothing
from scones. numpy only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

CONFIDENCE_THRESHOLD = 0.93  # the workflow's filter (template.yaml ConfidenceThreshold)
ECE_BINS = 15
TARGET_PRECISION = 0.99


def reliability_bins(
    probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS
) -> list[dict[str, float]]:
    """Equal-width confidence bins ``(lo, hi]``: count, mean confidence, accuracy (empty bins
    are left out)."""
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    out = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        in_bin = (conf > lo) & (conf <= hi)
        if in_bin.any():
            out.append(
                {
                    "lo": float(lo),
                    "hi": float(hi),
                    "count": int(in_bin.sum()),
                    "confidence": float(conf[in_bin].mean()),
                    "accuracy": float(correct[in_bin].mean()),
                }
            )
    return out


def expected_calibration_error(
    probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS
) -> float:
    """ECE: the count-weighted mean of |accuracy - confidence| over the reliability bins."""
    n = len(labels)
    return float(
        sum(
            b["count"] / n * abs(b["accuracy"] - b["confidence"])
            for b in reliability_bins(probs, labels, bins)
        )
    )


def classification_report(probs: np.ndarray, labels: np.ndarray) -> dict[str, float | None]:
    """Accuracy, coverage/precision at the confidence threshold, ECE and NLL."""
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    covered = conf >= CONFIDENCE_THRESHOLD
    nll = -np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, 1.0)).mean()
    return {
        "accuracy": float(correct.mean()),
        "coverage": float(covered.mean()),
        "precision_covered": float(correct[covered].mean()) if covered.any() else None,
        "threshold": CONFIDENCE_THRESHOLD,
        "ece": expected_calibration_error(probs, labels),
        "nll": float(nll),
        "n_test": int(len(labels)),
    }


def risk_coverage(probs: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """The risk-coverage curve: images sorted by confidence, highest first; after each distinct
    confidence ``t``: ``coverage`` (share with confidence >= t) and ``precision`` (accuracy
    among them), plus ``aurc`` (mean risk over the curve, lower is better)."""
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    order = np.argsort(-conf, kind="stable")
    conf_sorted, right = conf[order], correct[order]
    cum_right = np.cumsum(right)
    n = np.arange(1, len(conf) + 1)
    last = np.r_[conf_sorted[1:] != conf_sorted[:-1], True]  # end of each run of equal confidence
    precision = cum_right / n
    return {
        "threshold": [float(v) for v in conf_sorted[last]],
        "coverage": [float(v) for v in (n / len(conf))[last]],
        "precision": [float(v) for v in precision[last]],
        "aurc": float((1.0 - precision).mean()) if len(conf) else 0.0,
    }


def threshold_for_precision(
    probs: np.ndarray, labels: np.ndarray, target: float = TARGET_PRECISION
) -> dict[str, float | None]:
    """The lowest confidence threshold whose covered images reach ``target`` precision, and the
    coverage it keeps. ``threshold`` is None when no threshold reaches it."""
    curve = risk_coverage(probs, labels)
    best: dict[str, float | None] = {"threshold": None, "coverage": 0.0, "precision": None}
    for t, cov, prec in zip(curve["threshold"], curve["coverage"], curve["precision"], strict=True):
        if prec >= target:
            best = {"threshold": t, "coverage": cov, "precision": prec}
    return {"target_precision": target, **best}


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, computed stably."""
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def ensemble_probs(member_logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """What the exported graph computes: the mean over members of softmax(logits / T).
    ``member_logits`` is ``[K, N, C]``; returns ``[N, C]``."""
    return softmax(np.asarray(member_logits, dtype=np.float64) / temperature).mean(axis=0)


def nll(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of the true labels."""
    return float(-np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, 1.0)).mean())


def fit_temperature(
    member_logits: np.ndarray, labels: np.ndarray, lo: float = 0.5, hi: float = 10.0
) -> float:
    """The temperature T minimizing the NLL of ``ensemble_probs(member_logits, T)`` on held-out
    images: a log-spaced grid, then golden-section refinement around its best point. T stays
    in ``[lo, hi]``: when every held-out image is right the NLL falls without bound as T -> 0,
    and a few held-out images must not make the model arbitrarily sure of itself."""
    grid = np.geomspace(lo, hi, 61)
    losses = [nll(ensemble_probs(member_logits, t), labels) for t in grid]
    i = int(np.argmin(losses))
    a, b = np.log(grid[max(0, i - 1)]), np.log(grid[min(len(grid) - 1, i + 1)])
    ratio = (np.sqrt(5) - 1) / 2

    def f(log_t: float) -> float:
        return nll(ensemble_probs(member_logits, float(np.exp(log_t))), labels)

    for _ in range(40):
        c, d = b - ratio * (b - a), a + ratio * (b - a)
        if f(c) < f(d):
            b = d
        else:
            a = c
    return float(np.exp((a + b) / 2))


def summary(probs: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """The report of one split plus its 99 %-precision threshold and AURC."""
    curve = risk_coverage(probs, labels)
    return {
        **classification_report(probs, labels),
        "aurc": curve["aurc"],
        "for_99_precision": threshold_for_precision(probs, labels),
    }
