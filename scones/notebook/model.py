"""Step 3 of the walkthrough: train (``scones train``: ``ml/train.py`` in this process) and the
model report, recomputed by serving every test image through the model's own
``code/inference.py`` (``model_fn``, ``input_fn``, ``predict_batch_fn``), as the endpoint will.

``ModelReport`` renders as the training report's table plus a reliability diagram and a
risk-coverage curve; it also picks the two images step 6 sends through the state machine: one
the model is sure of, and one it is not (``pick_confident``, ``pick_for_review``).
"""

from __future__ import annotations

import importlib.util
import io
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scones.errors import CommandError
from scones.notebook import display

THRESHOLD = 0.93  # the workflow's CONFIDENCE_THRESHOLD (template.yaml's default)
ECE_BINS = 15  # ml/train.py's ECE bins over [0, 1]
_BINS = 10  # the reliability diagram's bins over [1/C, 1]


def load_predictor(model_tar: Path, into: Path) -> tuple[list[str], Callable[[list[bytes]], Any]]:
    """Extract ``model_tar`` into ``into`` and load its ``code/inference.py``; returns the class
    names and a function from PNG bytes to probabilities ``[N, C]``."""
    from scones.archive import safe_extract

    safe_extract(model_tar, into)  # checks every member; never trusts extractall's filter
    name = f"scones_notebook_inference_{uuid.uuid4().hex[:8]}"
    spec = importlib.util.spec_from_file_location(name, into / "code" / "inference.py")
    if spec is None or spec.loader is None:
        raise CommandError(f"{model_tar} has no loadable code/inference.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    model = module.model_fn(str(into))

    def predict(pngs: list[bytes]) -> Any:
        arrays = [module.input_fn(png, "image/png") for png in pngs]
        return module.predict_batch_fn(arrays, model)

    return list(model.classes), predict


@dataclass
class Candidate:
    """An image chosen for step 6, with what the model says about it."""

    name: str
    png: bytes = field(repr=False)
    probabilities: list[float]
    classes: list[str]
    why: str

    @property
    def confidence(self) -> float:
        """The top probability."""
        return max(self.probabilities)

    def _repr_html_(self) -> str:
        rows = [[c, f"{p:.4f}"] for c, p in zip(self.classes, self.probabilities, strict=True)]
        return (
            display.heading(f"{self.name}: {self.why}")
            + display.png_img(self.png, self.name, width=96, what="candidate")
            + display.table(rows, ["class", "probability (this model, here)"], what="candidate")
        )


@dataclass
class ModelReport:
    """The training report and the model's predictions on the test images."""

    model_tar: Path
    metrics: dict[str, Any]
    classes: list[str]
    files: list[Path] = field(repr=False)
    labels: list[int] = field(repr=False)
    probabilities: Any = field(repr=False)  # numpy [N, C], from the model's own serving code
    predict: Callable[[list[bytes]], Any] = field(repr=False)
    trained: str = ""  # where and how it was trained
    threshold: float = THRESHOLD

    def served_metrics(self) -> dict[str, float | None]:
        """Accuracy, coverage and precision at the threshold, ECE: from the served predictions."""
        import numpy as np

        probs = np.asarray(self.probabilities)
        labels = np.asarray(self.labels)
        conf, pred = probs.max(axis=1), probs.argmax(axis=1)
        correct = pred == labels
        covered = conf >= self.threshold
        ece = 0.0  # binned as ml/train.py bins it, so the two columns compare
        edges = np.linspace(0.0, 1.0, ECE_BINS + 1)
        for lo, hi in zip(edges[:-1], edges[1:], strict=True):
            in_bin = (conf > lo) & (conf <= hi)
            if in_bin.any():
                ece += in_bin.mean() * abs(correct[in_bin].mean() - conf[in_bin].mean())
        return {
            "accuracy": float(correct.mean()),
            "coverage": float(covered.mean()),
            "precision_covered": float(correct[covered].mean()) if covered.any() else None,
            "ece": float(ece),
        }

    def figure_png(self) -> bytes:
        """Reliability diagram and risk-coverage curve, side by side, as PNG."""
        return display.figure_png(_draw(self))

    def _repr_html_(self) -> str:
        m, s = self.metrics, self.served_metrics()
        t = self.threshold

        def both(key: str) -> list[str]:
            return [display.percent(m.get(key)), display.percent(s[key])]

        rows = [
            ["test accuracy", *both("accuracy")],
            [f"coverage (confidence >= {t:g})", *both("coverage")],
            ["precision among covered", *both("precision_covered")],
            ["calibration error (ECE)", f"{m.get('ece', float('nan')):.3f}", f"{s['ece']:.3f}"],
            ["test images / training images", f"{m.get('n_test')} / {m.get('n_train')}", ""],
            ["training time", f"{m.get('train_seconds', float('nan')):.1f} s", ""],
            [
                "parameters, ONNX size",
                f"{m.get('parameters', 0):,}, {m.get('model_bytes', 0) / 1024:.0f} KiB",
                "",
            ],
        ]
        header = ["", "training report (metrics.json)", "served (code/inference.py)"]
        return (
            display.heading(f"model {self.model_tar}: {self.trained}")
            + display.table(rows, header, what="model-report")
            + display.png_img(
                self.figure_png(), "reliability and risk-coverage", what="model-figure"
            )
        )


def _bins(conf: Any, n_classes: int) -> list[tuple[float, float, Any]]:
    import numpy as np

    low = 1.0 / max(n_classes, 1)
    edges = np.linspace(low, 1.0, _BINS + 1)
    found = []
    for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
        in_bin = (conf >= lo) & (conf <= hi) if i == 0 else (conf > lo) & (conf <= hi)
        found.append((float(lo), float(hi), in_bin))
    return found


def _draw(report: ModelReport) -> Any:
    import numpy as np
    from matplotlib.figure import Figure  # no pyplot: the kernel's backend is left alone

    probs, labels = np.asarray(report.probabilities), np.asarray(report.labels)
    conf, correct = probs.max(axis=1), probs.argmax(axis=1) == labels
    fig = Figure(figsize=(10, 4))
    left, right = fig.subplots(1, 2)
    for lo, hi, in_bin in _bins(conf, len(report.classes)):
        if in_bin.any():
            left.bar((lo + hi) / 2, correct[in_bin].mean(), width=hi - lo, color="#4a7bd0",
                     edgecolor="white")  # fmt: skip
            left.annotate(str(int(in_bin.sum())), ((lo + hi) / 2, 0.02), ha="center", fontsize=7)
    low = 1.0 / len(report.classes)
    left.plot([low, 1], [low, 1], "k--", linewidth=1, label="perfectly calibrated")
    left.axvline(
        report.threshold, color="#c0392b", linewidth=1, label=f"threshold {report.threshold:g}"
    )
    left.set(xlabel="confidence (top probability)", ylabel="accuracy in the bin", ylim=(0, 1.05),
             title="Reliability (images per bin at the bottom)")  # fmt: skip
    left.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2)
    order = np.argsort(-conf, kind="stable")
    kept = np.arange(1, len(order) + 1)
    risk = np.cumsum(~correct[order]) / kept
    right.plot(kept / len(order), risk, color="#4a7bd0")
    covered = conf >= report.threshold
    if covered.any():
        at = covered.mean()
        right.plot([at], [1 - correct[covered].mean()], "o", color="#c0392b",
                   label=f"at {report.threshold:g}: coverage {at:.0%}")  # fmt: skip
        right.legend(fontsize="small", loc="upper left")
    right.set_ylim(bottom=0)
    right.set(xlabel="coverage (share of images kept, most confident first)",
              ylabel="error rate among kept", title="Risk-coverage")  # fmt: skip
    fig.tight_layout()
    return fig


def model_report(model_tar: Path, data: Path, *, trained: str = "") -> ModelReport:
    """Serve the test split of ``data`` through the model in ``model_tar``; the report."""
    import numpy as np

    from scones.cost.report import read_training_report
    from scones.notebook.data import read_test_split

    model_tar = Path(model_tar)
    classes, predict = load_predictor(model_tar, model_tar.parent / "served")
    files, labels, data_classes = read_test_split(Path(data))
    if data_classes != classes:
        raise CommandError(f"the model's classes {classes} are not the data's {data_classes}")
    probs = np.concatenate(
        [predict([p.read_bytes() for p in files[i : i + 64]]) for i in range(0, len(files), 64)]
    )
    metrics = read_training_report(model_tar)
    return ModelReport(model_tar, metrics, classes, files, labels, probs, predict, trained)


def train_model(
    data: Path, out: Path, *, epochs: int = 3, seed: int = 0, threads: int | None = None
) -> ModelReport:
    """``scones train --data DATA --model-dir OUT --epochs EPOCHS``, then ``model_report``."""
    from scones.training.local import train_local

    extra = ["--threads", str(threads)] if threads else []
    metrics = train_local(
        Path(data), Path(out), epochs=epochs, seed=seed, extra=extra, progress=False
    )
    how = f"trained here: {epochs} epochs, seed {seed}, {metrics.get('train_seconds', 0):.1f} s"
    return model_report(Path(out) / "model.tar.gz", Path(data), trained=how)


def pick_confident(report: ModelReport) -> Candidate:
    """The correctly classified test image the model is surest of (at least the threshold)."""
    import numpy as np

    probs = np.asarray(report.probabilities)
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == np.asarray(report.labels)
    ranked = [i for i in np.argsort(-conf, kind="stable") if correct[i]]
    if not ranked or conf[ranked[0]] < report.threshold:
        raise CommandError(
            f"no test image reaches confidence {report.threshold:g} with this model:"
            " train longer (a larger EPOCHS)"
        )
    i = int(ranked[0])
    why = f"the test image this model is surest of ({conf[i]:.3f}, a {report.classes[report.labels[i]]})"
    return Candidate(report.files[i].name, report.files[i].read_bytes(), probs[i].tolist(),
                     report.classes, why)  # fmt: skip


def pick_for_review(report: ModelReport) -> Candidate:
    """The least confident test image when it is below the threshold; else a blend of the
    surest image of each of the first two classes, mixed until the model is unsure."""
    import numpy as np

    probs = np.asarray(report.probabilities)
    conf = probs.max(axis=1)
    i = int(np.argmin(conf))
    if conf[i] < report.threshold:
        why = f"the test image this model is least sure of ({conf[i]:.3f} < {report.threshold:g})"
        return Candidate(report.files[i].name, report.files[i].read_bytes(), probs[i].tolist(),
                         report.classes, why)  # fmt: skip
    return _blend_for_review(report)


def _png(pixels: Any) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def _blend_for_review(report: ModelReport) -> Candidate:
    """Bisect the mix of two confident images of different classes towards 50/50 belief."""
    import numpy as np
    from PIL import Image

    probs = np.asarray(report.probabilities)
    ends = []
    for label in (0, 1):
        mine = [i for i in range(len(report.labels)) if report.labels[i] == label]
        if not mine:
            raise CommandError(f"no test image of class {report.classes[label]} to blend")
        ends.append(max(mine, key=lambda i: probs[i, label]))
    a, b = (np.asarray(Image.open(report.files[i]).convert("RGB"), dtype=np.float32) for i in ends)
    lo, hi = 0.0, 1.0
    best: tuple[float, bytes, list[float], float] | None = None
    for _ in range(14):
        mid = (lo + hi) / 2
        png = _png(np.clip(np.rint((1 - mid) * a + mid * b), 0, 255).astype(np.uint8))
        p = np.asarray(report.predict([png]))[0]
        if best is None or p.max() < best[0]:
            best = (float(p.max()), png, p.tolist(), mid)
        lo, hi = (mid, hi) if p[0] > p[1] else (lo, mid)
    assert best is not None
    if best[0] >= report.threshold:
        raise CommandError("could not find an image this model is unsure of (all >= threshold)")
    names = f"{report.files[ends[0]].name} and {report.files[ends[1]].name}"
    why = (f"every test image is above {report.threshold:g}, so this is {names} mixed"
           f" {1 - best[3]:.0%}/{best[3]:.0%} (confidence {best[0]:.3f})")  # fmt: skip
    return Candidate("blend.png", best[1], best[2], report.classes, why)


def write_candidate(candidate: Candidate, folder: Path, stem: str) -> Path:
    """Save the candidate's PNG as ``folder/<stem>-<name>``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}-{candidate.name}"
    path.write_bytes(candidate.png)
    return path
