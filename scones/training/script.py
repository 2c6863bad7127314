"""Where the SageMaker source directory ``ml/`` is, and loading ``ml/train.py`` from it.

``ml/`` is exactly what SageMaker receives (``source_dir``): it is not an installed package and
imports nothing from ``scones``. The CLI runs the same file locally by loading it from its path.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from scones.settings import find_project_root
from scones.settings import project_root as default_project_root

TRAIN_MODULE = "scones_sagemaker_train"  # the name ml/train.py is loaded under in-process


class SourceDirNotFoundError(FileNotFoundError):
    """No ``ml/train.py`` beside the project's ``template.yaml``."""


def source_dir(project_root: Path | None = None) -> Path:
    """The SageMaker source directory (``<project>/ml``; the project: ``$SCONES_PROJECT``, else
    the checkout holding ``template.yaml``)."""
    root = project_root or default_project_root(find=find_project_root)
    folder = root / "ml"
    if not (folder / "train.py").is_file():
        raise SourceDirNotFoundError(
            f"{folder}/train.py not found; run scones from the project checkout "
            "(the folder holding template.yaml) or set SCONES_PROJECT"
        )
    return folder


def load_train_script(project_root: Path | None = None) -> ModuleType:
    """Import ``ml/train.py`` as a module (once per process) and return it."""
    loaded = sys.modules.get(TRAIN_MODULE)
    if loaded is not None:
        return loaded
    path = source_dir(project_root) / "train.py"
    spec = importlib.util.spec_from_file_location(TRAIN_MODULE, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[TRAIN_MODULE] = module  # dataclasses and pickling look their module up here
    # As SageMaker does for `python train.py`: the script's folder is on sys.path, so its siblings
    # (network.py) import by their plain names.
    folder = str(path.parent)
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[TRAIN_MODULE]
        raise
    finally:
        if added:
            sys.path.remove(folder)
    return module
