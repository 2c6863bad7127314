"""A real tiny ``model.tar.gz`` in seconds, for tests and benchmarks that need a model."""

from __future__ import annotations

from pathlib import Path


def build_tiny_model(
    workdir: Path,
    *,
    epochs: int = 6,
    seed: int = 0,
    classes: tuple[str, ...] = ("bicycle", "motorcycle"),
) -> Path:
    """Build a real ``model.tar.gz`` through the real ETL and training path, in seconds.

    Uses a synthetic archive (``scones.data.synthetic.build_cifar_archive``),
    ``scones.data.etl.extract`` and ``scones.training.local.train_local`` (2 members of width 8, batch 8,
    ``epochs`` epochs, 1 thread): a model that separates the synthetic classes. Returns the path
    of ``workdir/model/model.tar.gz``; the extracted data is ``workdir/data``.
    """
    from scones.data.etl import extract
    from scones.data.synthetic import build_cifar_archive
    from scones.training.local import train_local

    workdir = Path(workdir)
    archive = build_cifar_archive(workdir / "cifar-100-python.tar.gz", seed=seed)
    data = workdir / "data"
    extract(archive, data, classes, progress=False)
    out = workdir / "model"
    train_local(
        data,
        out,
        epochs=epochs,
        seed=seed,
        extra=["--width", "8", "--members", "2", "--batch-size", "8", "--threads", "1"],
        progress=False,
    )
    return out / "model.tar.gz"
