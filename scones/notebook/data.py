"""Step 2 of the walkthrough: the data. Which CIFAR-100 archive, the ETL (``scones etl``), and a
grid of sample images per class.

``choose_archive("")`` picks ``$CIFAR100_ARCHIVE`` (the Makefile exports the archive the demo
uses), else a small synthetic archive in the official format (``scones.data.synthetic``), so the
notebook runs on a fresh clone with no network. ``"synthetic"`` forces the synthetic one; a path or URL is used as given.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scones.notebook import display

# The synthetic archive: enough images for a short training run to separate the classes.
SYNTHETIC_TRAIN = 300
SYNTHETIC_TEST = 25


@dataclass(frozen=True)
class ArchiveChoice:
    """The archive the ETL reads, and why that one."""

    source: str  # a path or a URL
    why: str

    def _repr_html_(self) -> str:
        return f"<p>archive <code>{display.esc(self.source)}</code>: {display.esc(self.why)}</p>"


def choose_archive(
    wanted: str, workdir: Path, project_root: Path, classes: Sequence[str] = ()
) -> ArchiveChoice:
    """The archive for ``wanted`` ("" = automatic, "synthetic", or a path/URL)."""
    if wanted and wanted != "synthetic":
        return ArchiveChoice(wanted, "given")
    if not wanted:
        env = os.environ.get("CIFAR100_ARCHIVE")
        if env:  # the Makefile's is relative to the project, the kernel runs in notebooks/
            relative = "://" not in env and not Path(env).is_absolute()
            return ArchiveChoice(str(project_root / env) if relative else env, "$CIFAR100_ARCHIVE")
    from scones.data.synthetic import build_cifar_archive

    counts = {name: SYNTHETIC_TRAIN for name in (classes or ("bicycle", "motorcycle"))}
    counts.setdefault("apple", 20)  # a class the ETL leaves out
    path = build_cifar_archive(
        workdir / "synthetic-cifar-100-python.tar.gz", counts, n_test=SYNTHETIC_TEST
    )
    why = "synthetic images in the official format ($CIFAR100_ARCHIVE is not set)"
    return ArchiveChoice(str(path), why if not wanted else "synthetic, as asked")


@dataclass
class SampleGrid:
    """A few training images of each class, as Jupyter shows them (scaled up, crisp)."""

    images: dict[str, list[tuple[str, bytes]]] = field(default_factory=dict, repr=False)
    scale: int = 3

    def _repr_html_(self) -> str:
        rows = []
        for name, items in self.images.items():
            pictures = "".join(
                display.png_img(png, f"{name}: {file}", width=32 * self.scale, what="sample") + " "
                for file, png in items
            )
            rows.append([name, pictures])
        return display.table(rows, ["class", "sample images"], what="samples", raw_columns=[1])


def sample_grid(data: Path, per_class: int = 8, split: str = "train", scale: int = 3) -> SampleGrid:
    """The first ``per_class`` images of each class listed in ``data/<split>.lst``."""
    import json

    classes = json.loads((data / "classes.json").read_text(encoding="utf-8"))["classes"]
    grid = SampleGrid({name: [] for name in classes}, scale=scale)
    for line in (data / f"{split}.lst").read_text(encoding="utf-8").splitlines():
        _, label, rel = line.split("\t")
        items = grid.images[classes[int(float(label))]]
        if len(items) < per_class:
            items.append((rel, (data / rel).read_bytes()))
    return grid


def read_test_split(data: Path) -> tuple[list[Path], list[int], list[str]]:
    """The test split: image paths, labels, and the class names."""
    import json

    classes = json.loads((data / "classes.json").read_text(encoding="utf-8"))["classes"]
    paths, labels = [], []
    for line in (data / "test.lst").read_text(encoding="utf-8").splitlines():
        _, label, rel = line.split("\t")
        paths.append(data / rel)
        labels.append(int(float(label)))
    return paths, labels, list(classes)


def run_etl(archive: str | ArchiveChoice, output: Path, classes: Sequence[str]) -> Any:
    """``scones etl --archive A --output DIR --classes ...``; returns the ``EtlResult``."""
    from scones.data.etl import extract, resolve_archive

    source = archive.source if isinstance(archive, ArchiveChoice) else archive
    return extract(resolve_archive(source), Path(output), list(classes), progress=False)
