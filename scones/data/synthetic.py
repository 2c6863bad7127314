"""Small CIFAR-100 archives in the official format, for tests, benchmarks and demos.

``build_cifar_archive`` writes a ``cifar-100-python.tar.gz`` with the official layout and pickle
format (Python 2 ``str`` opcodes, so ``pickle.load(f, encoding="bytes")`` gives bytes keys exactly
as with the official file) and synthetic images whose classes are easy to learn. A real tiny
model trained on such an archive is ``scones.training.tiny.build_tiny_model``.
"""

from __future__ import annotations

import io
import pickle
import struct
import tarfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

# The CIFAR-100 superclasses and their five fine classes (Krizhevsky, 2009).
SUPERCLASSES: dict[str, tuple[str, ...]] = {
    "aquatic_mammals": ("beaver", "dolphin", "otter", "seal", "whale"),
    "fish": ("aquarium_fish", "flatfish", "ray", "shark", "trout"),
    "flowers": ("orchid", "poppy", "rose", "sunflower", "tulip"),
    "food_containers": ("bottle", "bowl", "can", "cup", "plate"),
    "fruit_and_vegetables": ("apple", "mushroom", "orange", "pear", "sweet_pepper"),
    "household_electrical_devices": ("clock", "keyboard", "lamp", "telephone", "television"),
    "household_furniture": ("bed", "chair", "couch", "table", "wardrobe"),
    "insects": ("bee", "beetle", "butterfly", "caterpillar", "cockroach"),
    "large_carnivores": ("bear", "leopard", "lion", "tiger", "wolf"),
    "large_man-made_outdoor_things": ("bridge", "castle", "house", "road", "skyscraper"),
    "large_natural_outdoor_scenes": ("cloud", "forest", "mountain", "plain", "sea"),
    "large_omnivores_and_herbivores": ("camel", "cattle", "chimpanzee", "elephant", "kangaroo"),
    "medium_mammals": ("fox", "porcupine", "possum", "raccoon", "skunk"),
    "non-insect_invertebrates": ("crab", "lobster", "snail", "spider", "worm"),
    "people": ("baby", "boy", "girl", "man", "woman"),
    "reptiles": ("crocodile", "dinosaur", "lizard", "snake", "turtle"),
    "small_mammals": ("hamster", "mouse", "rabbit", "shrew", "squirrel"),
    "trees": ("maple_tree", "oak_tree", "palm_tree", "pine_tree", "willow_tree"),
    "vehicles_1": ("bicycle", "bus", "motorcycle", "pickup_truck", "train"),
    "vehicles_2": ("lawn_mower", "rocket", "streetcar", "tank", "tractor"),
}
COARSE_LABEL_NAMES: tuple[str, ...] = tuple(sorted(SUPERCLASSES))
FINE_LABEL_NAMES: tuple[str, ...] = tuple(sorted(n for v in SUPERCLASSES.values() for n in v))
COARSE_OF: dict[str, int] = {
    fine: COARSE_LABEL_NAMES.index(coarse)
    for coarse, fines in SUPERCLASSES.items()
    for fine in fines
}
DEFAULT_CLASSES: dict[str, int] = {"bicycle": 24, "motorcycle": 24, "apple": 4}


class _Py2Pickler(pickle._Pickler):  # type: ignore[name-defined,misc]
    """Protocol-2 pickler writing ``bytes`` as Python 2 ``str`` (like the official files)."""

    dispatch = pickle._Pickler.dispatch.copy()  # type: ignore[attr-defined]

    def save_py2_str(self: Any, obj: bytes) -> None:
        n = len(obj)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", n) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str  # type: ignore[assignment]


def dumps_py2(obj: Any) -> bytes:
    """Pickle ``obj`` as Python 2's cPickle (protocol 2) would have: bytes become ``str``."""
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def synthetic_images(label: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` CIFAR rows ``[n, 3072]`` whose class shows in colour and stripe direction."""
    yy, xx = np.mgrid[0:32, 0:32]
    stripes = np.sin((xx if label % 2 else yy) * (0.6 + 0.2 * (label // 2))) * 60.0
    base = np.array([[170, 60, 60], [60, 80, 170], [70, 160, 70], [150, 150, 60]])[label % 4]
    rows = []
    for _ in range(n):
        noise = rng.normal(0.0, 30.0, size=(32, 32, 3))
        img = base[None, None, :] + stripes[:, :, None] + noise + rng.normal(0, 15, size=3)
        img = np.clip(img, 0, 255).astype(np.uint8)
        rows.append(img.transpose(2, 0, 1).reshape(-1))
    return np.stack(rows) if rows else np.zeros((0, 3072), dtype=np.uint8)


def _split(
    counts: Mapping[str, int], rng: np.random.Generator, batch_label: bytes, start: int
) -> dict[bytes, Any]:
    names, labels, datas = [], [], []
    for position, (name, n) in enumerate(counts.items()):
        datas.append(synthetic_images(position, n, rng))
        labels += [FINE_LABEL_NAMES.index(name)] * n
        names += [f"{name}_s_{start + i:06d}.png".encode() for i in range(n)]
    order = rng.permutation(len(labels))
    data = np.concatenate(datas)[order]
    fine = [labels[i] for i in order]
    return {
        b"filenames": [names[i] for i in order],
        b"batch_label": batch_label,
        b"fine_labels": fine,
        b"coarse_labels": [COARSE_OF[FINE_LABEL_NAMES[f]] for f in fine],
        b"data": np.ascontiguousarray(data, dtype=np.uint8),
    }


def build_cifar_archive(
    path: Path,
    classes: Mapping[str, int] | None = None,
    n_test: int = 6,
    seed: int = 0,
) -> Path:
    """Write a small CIFAR-100 python archive in the official format to ``path``.

    ``classes`` maps fine label names to their number of training images (default: 24 bicycles,
    24 motorcycles and 4 apples as a class to filter out); each class gets ``n_test`` test images.
    The classes' images differ in colour and stripes, so a model learns them in an epoch or two.
    """
    counts = dict(DEFAULT_CLASSES if classes is None else classes)
    unknown = sorted(set(counts) - set(FINE_LABEL_NAMES))
    if unknown:
        raise ValueError(f"not CIFAR-100 fine label names: {', '.join(unknown)}")
    rng = np.random.default_rng(seed)
    members = {
        "meta": {
            b"fine_label_names": [n.encode() for n in FINE_LABEL_NAMES],
            b"coarse_label_names": [n.encode() for n in COARSE_LABEL_NAMES],
        },
        "train": _split(counts, rng, b"training batch 1 of 1", 0),
        "test": _split(dict.fromkeys(counts, n_test), rng, b"testing batch 1 of 1", 100000),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name in ("train", "test", "meta"):
            payload = dumps_py2(members[name])
            info = tarfile.TarInfo(f"cifar-100-python/{name}")
            info.size = len(payload)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(payload))
    return path
