"""Append-only, rotated exchange log: what the gateway writes and ``distillguard scan`` reads.

Layout: ``LOG_DIR/exchanges/seg-<UTC start>-<pid>-<n>.jsonl``, one exchange (the
exchange-log spec's row) per line, so a log directory is a traffic directory.

Durability is explicit. ``append`` only queues the record (the request never
waits on the disk); a writer thread writes everything queued every
``flush_interval`` seconds with one ``write`` per segment on an ``O_APPEND``
descriptor, then ``fsync``s. Records are serialized before they are queued, so
every write is whole lines: a process killed at any moment (``SIGKILL`` included) leaves every
segment ending at a line boundary, and every record queued before the last
completed flush is on disk. ``flushed_through`` tells which ones that is.
Segments rotate by size and age; a rotated segment is never written again.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from distillguard.errors import ConfigError


class SegmentLog:
    """Thread-safe, non-blocking writer of exchange records to rotated JSONL segments.

    >>> import tempfile, pathlib
    >>> log = SegmentLog(pathlib.Path(tempfile.mkdtemp()), flush_interval=0.01)
    >>> seq = log.append({"exchange_id": "e1"})
    >>> log.close(); log.flushed_through >= seq
    True
    """

    def __init__(self, log_dir: Path, flush_interval: float = 0.2, max_segment_bytes: int = 256 * 1024 * 1024,
                 max_segment_seconds: float = 3600.0) -> None:
        if flush_interval <= 0:
            raise ConfigError("the log flush interval must be positive")
        self.dir = Path(log_dir) / "exchanges"
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create the log directory {self.dir}: {exc.strerror}") from exc
        self.flush_interval = flush_interval
        self.max_bytes = max_segment_bytes
        self.max_seconds = max_segment_seconds
        self._queue: deque[tuple[int, bytes]] = deque()
        self._lock = threading.Lock()  # guards the queue and sequence numbers
        self._write_lock = threading.Lock()  # one flush at a time, so batches reach the file in order
        self._seq = 0
        self.flushed_through = 0  # every record with a sequence number up to this is on disk
        self.written = 0
        self._fd: int | None = None
        self._segment_bytes = 0
        self._segment_started = 0.0
        self._n = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="distillguard-log", daemon=True)
        self._thread.start()

    def append(self, record: dict[str, Any]) -> int:
        """Queue ``record``; return its sequence number (compare with ``flushed_through``)."""
        line = orjson.dumps(record) + b"\n"
        with self._lock:
            self._seq += 1
            self._queue.append((self._seq, line))
            return self._seq

    @property
    def pending(self) -> int:
        """Records queued but not yet on disk (the log queue depth)."""
        return len(self._queue)

    def _run(self) -> None:
        while not self._stop.wait(self.flush_interval):
            self.flush()
        self.flush()

    def flush(self) -> None:
        """Write and fsync everything queued so far (the writer thread calls it every interval)."""
        with self._write_lock:
            with self._lock:
                batch = list(self._queue)
                self._queue.clear()
            if batch:
                self._write(batch)

    def _write(self, batch: list[tuple[int, bytes]]) -> None:
        """Write ``batch`` in whole lines, splitting it where a segment fills up; fsync each segment."""
        i = 0
        while i < len(batch):
            fd, room = self._segment()
            j, size = i, 0
            while j < len(batch) and (size + len(batch[j][1]) <= room or j == i):  # at least one line
                size += len(batch[j][1])
                j += 1
            view = memoryview(b"".join(line for _, line in batch[i:j]))
            while view:  # a regular file takes the whole buffer in one write; loop only for safety
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
            self._segment_bytes += size
            self.written += j - i
            self.flushed_through = batch[j - 1][0]
            i = j

    def _segment(self) -> tuple[int, int]:
        """The open segment's descriptor and its remaining room, rotating when full or old."""
        now = time.time()
        if self._fd is not None and (self._segment_bytes >= self.max_bytes
                                     or now - self._segment_started > self.max_seconds):
            os.close(self._fd)
            self._fd = None
        if self._fd is None:
            self._n += 1
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            path = self.dir / f"seg-{stamp}-{os.getpid()}-{self._n:05d}.jsonl"
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            self._segment_bytes = 0
            self._segment_started = now
        return self._fd, self.max_bytes - self._segment_bytes

    def close(self) -> None:
        """Flush what is queued and stop the writer (graceful shutdown)."""
        self._stop.set()
        self._thread.join()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
