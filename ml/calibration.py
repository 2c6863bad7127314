"""How good and how honest the model's confidence is: accuracy, coverage and precision at the
workflow's threshold, expected calibration error and log loss. A sibling of ``train.py`` in the
SageMaker source directory; imports nothing from scones.
"""

from __future__ import annotations

import numpy as np

CONFIDENCE_THRESHOLD = 0.93  # the workflow's filter (template.yaml ConfidenceThreshold)
ECE_BINS = 15


def classification_report(probs: np.ndarray, labels: np.ndarray) -> dict[str, float | None]:
    """Accuracy, coverage/precision at the confidence threshold, ECE and NLL."""
    pred = probs.argmax(axis=1)
    conf = probs.max(axis=1)
    correct = pred == labels
    covered = conf >= CONFIDENCE_THRESHOLD
    ece = 0.0
    edges = np.linspace(0.0, 1.0, ECE_BINS + 1)
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        in_bin = (conf > lo) & (conf <= hi)
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - conf[in_bin].mean())
    nll = -np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, 1.0)).mean()
    return {
        "accuracy": float(correct.mean()),
        "coverage": float(covered.mean()),
        "precision_covered": float(correct[covered].mean()) if covered.any() else None,
        "threshold": CONFIDENCE_THRESHOLD,
        "ece": float(ece),
        "nll": float(nll),
        "n_test": int(len(labels)),
    }
