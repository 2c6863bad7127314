"""Class names for the report: from ``--classes``, a ``model.tar.gz``, or the twin's endpoints.

Captured outputs hold only probabilities; the names of the classes (in label order) come from
what the user gives, or from the ``classes.json`` that ``scones train`` packs into the model and
the offline twin keeps beside each local endpoint.
"""

from __future__ import annotations

import json
import logging
import tarfile
import zlib
from pathlib import Path
from typing import Any

from scones.monitor.errors import MonitorUsageError

log = logging.getLogger(__name__)


def parse_classes(text: str) -> list[str]:
    """Parse ``--classes bicycle,motorcycle``."""
    names = [name.strip() for name in text.split(",")]
    if len(names) < 2 or not all(names):
        raise MonitorUsageError(f"--classes {text!r}: give two or more comma-separated names")
    if len(set(names)) != len(names):
        raise MonitorUsageError(f"--classes {text!r}: names repeat")
    return names


def _classes_from_json(data: Any, where: str) -> list[str]:
    classes = data.get("classes") if isinstance(data, dict) else None
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        raise MonitorUsageError(f"{where}: classes.json has no list of class names under 'classes'")
    return classes


def classes_from_model(path: Path) -> list[str]:
    """Read the class names from a ``model.tar.gz``'s ``classes.json`` (every member checked,
    the file read up to 1 MiB: ``scones.archive``)."""
    from scones.archive import UnsafeArchiveError, read_member

    try:
        raw = read_member(path, "classes.json")
    except FileNotFoundError:
        raise MonitorUsageError(f"--model {path}: no such file") from None
    except UnsafeArchiveError as exc:
        raise MonitorUsageError(f"--model {path}: unsafe archive ({exc})") from None
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise MonitorUsageError(f"--model {path}: not a readable tar archive ({exc})") from None
    if raw is None:
        raise MonitorUsageError(f"--model {path}: no classes.json file in the archive")
    try:
        data = json.loads(raw)
    except ValueError:
        raise MonitorUsageError(f"--model {path}: classes.json is not valid JSON") from None
    return _classes_from_json(data, f"--model {path}")


def classes_from_twin(
    endpoints_dir: Path, endpoint_names: set[str]
) -> tuple[list[str], str] | None:
    """Class names of local (offline twin) endpoints and where they were read, if exactly one
    set is found under ``endpoints_dir/<endpoint>/model/classes.json``."""
    found: dict[tuple[str, ...], str] = {}
    for name in sorted(endpoint_names):
        if not name:
            continue
        path = endpoints_dir / name / "model" / "classes.json"
        if path.is_file():
            try:
                classes = _classes_from_json(json.loads(path.read_text()), str(path))
            except (ValueError, OSError) as exc:
                log.warning(
                    "ignoring unreadable twin classes", extra={"path": str(path), "error": str(exc)}
                )
                continue
            found.setdefault(tuple(classes), str(path))
    if len(found) != 1:
        return None
    names, where = next(iter(found.items()))
    return list(names), where
