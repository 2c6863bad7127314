"""What ``scones classify`` already finished, kept on disk so a re-run resumes instead of redoing.

The twin's Step Functions keeps executions in memory (lost when the sfn server restarts) and
only the last ``SCONES_SFN_KEEP_EXECUTIONS`` finished ones per machine, so "the execution with
this deterministic name exists" cannot tell on its own what already ran. The journal can: one
JSON line per image that ended, keyed by the object's bucket, key and ETag (an object replaced
by new bytes runs again), in ``$SCONES_HOME/classify/<digest of bucket/prefix>.jsonl``. JSON
lines keep any key intact, newlines included. A line cut short by a crash is skipped.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from scones.settings import Settings

#: Outcomes a re-run keeps: the image was classified or sent to review (the designed outcome).
FINAL_OUTCOMES = frozenset({"classified", "review"})


@dataclass
class JournalEntry:
    """One finished image: its identity, its result (``ImageResult`` fields) and attempt."""

    bucket: str
    key: str
    etag: str
    result: dict[str, Any]
    attempt: int = 1


def journal_path(settings: Settings, bucket: str, prefix: str) -> Path:
    """The journal of ``s3://bucket/prefix`` under ``$SCONES_HOME/classify/``."""
    digest = hashlib.sha256(f"{bucket}/{prefix}".encode()).hexdigest()[:20]
    return settings.home / "classify" / f"{digest}.jsonl"


class Journal:
    """Read the finished images of earlier runs; append this run's as they end."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[tuple[str, str, str], JournalEntry] = {}
        self._handle: IO[str] | None = None

    def load(self) -> Journal:
        """Read the entries written so far (the last line per object wins)."""
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return self
        for line in lines:
            try:
                data = json.loads(line)
                entry = JournalEntry(**data)
            except (ValueError, TypeError):  # a line cut short by a crash
                continue
            self.entries[(entry.bucket, entry.key, entry.etag)] = entry
        return self

    def clear(self) -> None:
        """Forget earlier runs (``--rerun``)."""
        self.entries.clear()
        self.path.unlink(missing_ok=True)

    def get(self, bucket: str, key: str, etag: str) -> JournalEntry | None:
        """The entry of one object version, or None."""
        return self.entries.get((bucket, key, etag))

    def append(self, entry: JournalEntry) -> None:
        """Record one finished image (flushed at once: a crash keeps what ended before)."""
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = self.path.open("a", encoding="utf-8")
        self._handle.write(json.dumps(asdict(entry), ensure_ascii=True) + "\n")
        self._handle.flush()
        self.entries[(entry.bucket, entry.key, entry.etag)] = entry

    def close(self) -> None:
        """Close the file (entries stay readable)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
