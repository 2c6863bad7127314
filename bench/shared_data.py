"""Where the benchmarks find the shared data (``../shared/data`` beside the checkout; read in place)."""

from __future__ import annotations

from pathlib import Path

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
VEHICLES_ARCHIVE = SHARED_DATA / "cifar-100-python-vehicles.tar.gz"  # 800 train / 200 test
DATA_CAPTURE = SHARED_DATA / "data-capture"  # real SageMaker Data Capture files
