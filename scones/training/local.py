"""Run the SageMaker training script ``ml/train.py`` locally and package its model folder.

The script runs in-process with the ``SM_*`` variables SageMaker would set, pointing at local
folders; its model folder is then packed into ``OUT/model.tar.gz`` exactly as SageMaker packs
``/opt/ml/model``, and the report is written to ``OUT/metrics.json``. The command line
(``scones train``) is ``scones.training.cli``.
"""

from __future__ import annotations

import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from scones.training.script import load_train_script

MODEL_FILES = ("model.onnx", "classes.json", "metrics.json", "code")
REPORT_PNG = "reliability.png"  # ml/train.py's picture (reliability diagram, risk-coverage)


class ModelPackageError(Exception):
    """The training script did not leave a complete model folder."""


def clean_tarinfo(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """A member as every model archive stores it: no owner, time 0 (same files, same bytes)."""
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = 0
    return info


def package_model(model_dir: Path, dest: Path) -> Path:
    """Pack ``model_dir`` into ``dest`` (``model.tar.gz``) with the layout SageMaker loads."""
    missing = [name for name in MODEL_FILES if not (model_dir / name).exists()]
    if missing:
        raise ModelPackageError(f"{model_dir} lacks {', '.join(missing)}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    with tarfile.open(tmp, "w:gz") as tar:
        for path in sorted(model_dir.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                tar.add(path, arcname=path.relative_to(model_dir).as_posix(), filter=clean_tarinfo)
    tmp.replace(dest)
    return dest


def train_local(
    data: Path,
    out: Path,
    *,
    epochs: int | None = None,
    seed: int | None = None,
    extra: list[str] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train on ``data`` (the ETL output) and write ``out/model.tar.gz``, ``out/metrics.json``
    and ``out/reliability.png`` (reliability diagram and risk-coverage curve)."""
    train = load_train_script()

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="scones-train-", dir=out) as tmp:
        model_dir = Path(tmp) / "model"
        output_dir = Path(tmp) / "output"
        argv = [
            "--train",
            str(data),
            "--test",
            str(data),
            "--model-dir",
            str(model_dir),
            "--output-data-dir",
            str(output_dir),
            "--progress",
            "1" if progress else "0",
        ]
        if epochs is not None:
            argv += ["--epochs", str(epochs)]
        if seed is not None:
            argv += ["--seed", str(seed)]
        argv += extra or []
        report = train.run(train.parse_args(argv, environ={}))
        package_model(model_dir, out / "model.tar.gz")
        shutil.copyfile(model_dir / "metrics.json", out / "metrics.json")
        picture = output_dir / REPORT_PNG
        if picture.is_file():
            shutil.copyfile(picture, out / REPORT_PNG)
    return report
