"""The fake S3 client the Data Capture tests share."""

from __future__ import annotations

import threading
from typing import Any


class FakeS3:
    """Records put_object calls; fails while ``down`` is set."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}
        self.down = False
        self.calls = 0
        self.lock = threading.Lock()

    def put_object(self, **kwargs: Any) -> dict[str, Any]:
        with self.lock:
            self.calls += 1
            if self.down:
                raise ConnectionError("S3 is down")
            self.objects[(kwargs["Bucket"], kwargs["Key"])] = kwargs["Body"]
        return {}
