"""Append-only, rotated exchange log: what the gateway writes and ``distillguard scan`` reads.

Layout: ``LOG_DIR/exchanges/seg-<UTC start>-<pid>-<n>.jsonl``, one exchange (the
exchange-log spec's row) per line, so a log directory is a traffic directory.

Durability is explicit. ``append`` only queues the record (the request never
waits on the disk); a writer thread writes everything queued every
``flush_interval`` seconds with one ``write`` per segment on an ``O_APPEND``
descriptor, then ``fsync``s. Records are serialized before they are queued, so
every write is whole lines, and every record queued before the last completed
flush is on disk: ``flushed_through`` tells which ones that is. Segments rotate
by size and age; a rotated segment is never written again.

A process killed during a write (``SIGKILL``, the OOM killer) can leave its
segment ending in part of a line: Linux stops a large ``write`` between pages
when a fatal signal arrives. That tail belongs to a batch that was never
reported flushed, and a scan run before the restart quarantines it as a
truncated last line. Each writer holds an ``flock`` on its open segment, so the
next ``SegmentLog`` on the directory (the restarted gateway) can tell a dead
writer's segment from a live one: it moves a dead writer's partial tail to
``LOG_DIR/torn/<segment>.tail`` and cuts the segment back to its last whole line
(``recover_torn_segments``). Live segments, and file systems without locks, are
left alone.

A failed write (``ENOSPC``, ``EIO``, a failed ``fsync``) loses nothing: the
segment is cut back to its last whole line (``ftruncate``; retried at later
flushes if that fails too), the unwritten records go back to the head of the
queue, and the writer retries every interval until the disk takes them. After
``ENOSPC`` it writes again only once the file system reports room for the batch,
so a full disk does not see a partial line written and cut back at every retry
(a reader of the live segment would meet it).
Meanwhile ``healthy`` is false (the gateway turns unready and, by default,
stops serving), as it is when queued records have waited ``stall_seconds``.
Files are created 0600 (the log holds prompts and answers), directories 0700.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import threading
import time
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import orjson

from distillguard.errors import ConfigError

log = logging.getLogger(__name__)


class FileOps(Protocol):
    """The writer's boundary with the operating system (tests replace it to inject faults)."""

    def open(self, path: Path, flags: int, mode: int) -> int: ...

    def write(self, fd: int, data: memoryview) -> int: ...

    def fsync(self, fd: int) -> None: ...

    def ftruncate(self, fd: int, size: int) -> None: ...

    def close(self, fd: int) -> None: ...

    def free_bytes(self, path: Path) -> int: ...


class OsFileOps:
    """The real thing: plain ``os`` calls."""

    def open(self, path: Path, flags: int, mode: int) -> int:
        return os.open(path, flags, mode)

    def write(self, fd: int, data: memoryview) -> int:
        return os.write(fd, data)

    def fsync(self, fd: int) -> None:
        os.fsync(fd)

    def ftruncate(self, fd: int, size: int) -> None:
        os.ftruncate(fd, size)

    def close(self, fd: int) -> None:
        os.close(fd)

    def free_bytes(self, path: Path) -> int:
        st = os.statvfs(path)
        # root may write into the blocks reserved for it; anyone else only into the available ones
        return (st.f_bfree if os.geteuid() == 0 else st.f_bavail) * st.f_frsize


class SegmentLog:
    """Thread-safe, non-blocking writer of exchange records to rotated JSONL segments.

    >>> import tempfile, pathlib
    >>> log = SegmentLog(pathlib.Path(tempfile.mkdtemp()), flush_interval=0.01)
    >>> seq = log.append({"exchange_id": "e1"})
    >>> log.close(); log.flushed_through >= seq
    True
    """

    def __init__(self, log_dir: Path, flush_interval: float = 0.2, max_segment_bytes: int = 256 * 1024 * 1024,
                 max_segment_seconds: float = 3600.0, stall_seconds: float = 10.0,
                 max_pending_bytes: int = 512 * 1024 * 1024, ops: FileOps | None = None) -> None:
        if flush_interval <= 0:
            raise ConfigError("the log flush interval must be positive")
        self.dir = Path(log_dir) / "exchanges"
        try:
            self.dir.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.dir.mkdir(mode=0o700, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create the log directory {self.dir}: {exc.strerror}") from exc
        self.flush_interval = flush_interval
        self.max_bytes = max_segment_bytes
        self.max_seconds = max_segment_seconds
        self.stall_seconds = stall_seconds
        self.max_pending_bytes = max_pending_bytes
        self.ops: FileOps = ops or OsFileOps()
        self._queue: deque[tuple[int, bytes]] = deque()
        self._pending_bytes = 0
        self._lock = threading.Lock()  # guards the queue and sequence numbers
        self._write_lock = threading.Lock()  # one flush at a time, so batches reach the file in order
        self._seq = 0
        self.flushed_through = 0  # every record with a sequence number up to this is on disk
        self.written = 0
        self.error: OSError | None = None  # the last write failure, until a flush succeeds again
        self.write_errors = 0  # failed flushes, all told
        self.dropped = 0  # records refused because the queue was full (the disk failing for long)
        self._last_ok = time.monotonic()
        self._damaged: dict[Path, int] = {}  # closed segments that may end in a partial line → good size
        self._fd: int | None = None
        self._path: Path | None = None
        self._segment_bytes = 0
        self._segment_started = 0.0
        self._n = 0
        self.recovered = recover_torn_segments(self.dir)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="distillguard-log", daemon=True)
        self._thread.start()

    def append(self, record: dict[str, Any]) -> int:
        """Queue ``record``; return its sequence number (compare with ``flushed_through``), -1 if refused."""
        line = orjson.dumps(record) + b"\n"
        with self._lock:
            if self._pending_bytes + len(line) > self.max_pending_bytes:
                self.dropped += 1
                return -1
            self._seq += 1
            self._queue.append((self._seq, line))
            self._pending_bytes += len(line)
            return self._seq

    @property
    def pending(self) -> int:
        """Records queued but not yet on disk (the log queue depth), the batch being written included."""
        return self._seq - self.flushed_through

    @property
    def healthy(self) -> bool:
        """False while writes fail, or while queued records have waited ``stall_seconds`` for the disk."""
        if self.error is not None:
            return False
        return not self._queue or time.monotonic() - self._last_ok < self.stall_seconds

    def _run(self) -> None:
        while not self._stop.wait(self.flush_interval):
            self._flush_guarded()
        self._flush_guarded()

    def _flush_guarded(self) -> None:
        """One flush of the writer thread, which nothing may end (a dead writer would stop logging for good)."""
        try:
            self.flush()
        except Exception as exc:  # not an OSError (those are handled in flush): a bug, reported, retried
            log.exception("exchange log flush failed unexpectedly; retrying")
            self.error = OSError(str(exc))
            self.write_errors += 1

    def flush(self) -> bool:
        """Write and fsync everything queued so far; False (and all of it still queued) if the disk failed."""
        with self._write_lock:
            with self._lock:
                batch = list(self._queue)
                self._queue.clear()
            try:
                self._repair()
                self._write(batch)
            except _WriteFailed as failed:
                self._failed(failed.cause)
            finally:  # whatever happened, the records up to flushed_through are on disk and no others
                done = sum(1 for seq, _ in batch if seq <= self.flushed_through)
                with self._lock:  # what was not written goes back to the head, ahead of newer records
                    self._queue.extendleft(reversed(batch[done:]))
                    self._pending_bytes -= sum(len(line) for _, line in batch[:done])
            if done < len(batch):
                return False
            if self.error is not None:
                log.warning("exchange log writable again after %d failed flushes", self.write_errors)
                self.error = None
            self._last_ok = time.monotonic()
            return True

    def _failed(self, exc: OSError) -> None:
        if self.error is None:
            log.error("exchange log write failed in %s (%s); records stay queued and are retried",
                      self.dir, exc.strerror or exc)
        self.error = exc
        self.write_errors += 1

    def _write(self, batch: list[tuple[int, bytes]]) -> None:
        """Write ``batch`` in whole lines, splitting it where a segment fills up; fsync each segment.

        ``flushed_through`` advances segment by segment; a failure raises ``_WriteFailed``.
        """
        i = 0
        while i < len(batch):
            try:
                fd, room = self._segment()
            except OSError as exc:
                raise _WriteFailed(exc) from exc
            j, size = i, 0
            while j < len(batch) and (size + len(batch[j][1]) <= room or j == i):  # at least one line
                size += len(batch[j][1])
                j += 1
            view = memoryview(b"".join(line for _, line in batch[i:j]))
            self._wait_for_room(size)
            try:
                while view:  # a regular file takes the whole buffer in one write, unless the disk is full
                    n = self.ops.write(fd, view)
                    view = view[n:]
                self.ops.fsync(fd)
            except OSError as exc:
                self._cut_back(fd)
                raise _WriteFailed(exc) from exc
            self._segment_bytes += size
            self.written += j - i
            self.flushed_through = batch[j - 1][0]
            i = j

    def _wait_for_room(self, size: int) -> None:
        """After ``ENOSPC``, fail at once (touching no segment) until the file system has room for ``size`` bytes."""
        if self.error is None or self.error.errno != errno.ENOSPC:
            return
        try:
            free = self.ops.free_bytes(self.dir)
        except OSError as exc:
            raise _WriteFailed(exc) from exc
        if free < size:
            raise _WriteFailed(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))

    def _cut_back(self, fd: int) -> None:
        """Drop a failed write's partial bytes; if that fails too, close the segment and repair it later."""
        try:
            self.ops.ftruncate(fd, self._segment_bytes)
            return
        except OSError as exc:
            log.error("cannot cut %s back to its last whole line (%s); retrying later", self._path, exc.strerror)
        assert self._path is not None
        self._damaged[self._path] = self._segment_bytes
        self._close_segment()

    def _repair(self) -> None:
        """Cut segments closed after a failed write back to their last whole line."""
        for path, size in list(self._damaged.items()):
            try:
                fd = self.ops.open(path, os.O_WRONLY, 0o600)
                try:
                    self.ops.ftruncate(fd, size)
                finally:
                    self.ops.close(fd)
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise _WriteFailed(exc) from exc
            del self._damaged[path]

    def _close_segment(self) -> None:
        if self._fd is not None:
            try:
                self.ops.close(self._fd)
            except OSError as exc:
                log.error("closing %s failed: %s", self._path, exc.strerror)
            self._fd = None

    def _segment(self) -> tuple[int, int]:
        """The open segment's descriptor and its remaining room, rotating when full or old."""
        now = time.time()
        if self._fd is not None and (self._segment_bytes >= self.max_bytes
                                     or now - self._segment_started > self.max_seconds):
            self._close_segment()
        if self._fd is None:
            self._n += 1
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            path = self.dir / f"seg-{stamp}-{os.getpid()}-{self._n:05d}.jsonl"
            self._fd = self.ops.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            _hold(self._fd, path)
            self._path = path
            self._segment_bytes = 0
            self._segment_started = now
        return self._fd, self.max_bytes - self._segment_bytes

    def close(self) -> None:
        """Flush what is queued and stop the writer (graceful shutdown)."""
        self._stop.set()
        self._thread.join()
        if self._queue:
            log.error("exchange log closed with %d records not written (%s)", len(self._queue), self.error)
        self._close_segment()


def _hold(fd: int, path: Path) -> None:
    """Lock the open segment for this process's lifetime: the kernel drops the lock when the process dies."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:  # no locks on this file system: recovery then leaves the segment alone
        log.debug("cannot lock %s (%s); a torn tail there will not be recovered", path, exc.strerror)


def recover_torn_segments(segment_dir: Path) -> list[Path]:
    """Cut segments whose writer died mid-write back to their last whole line; return the ones cut.

    The partial tail is kept, appended to ``segment_dir/../torn/<segment name>.tail``. A segment
    whose lock is held (a live writer, in this process or another) or cannot be taken is skipped.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp()) / "exchanges"
    >>> d.mkdir()
    >>> _ = (d / "seg-1.jsonl").write_bytes(b'{"n":1}\\n{"n"')
    >>> [p.name for p in recover_torn_segments(d)], (d / "seg-1.jsonl").read_bytes()
    (['seg-1.jsonl'], b'{"n":1}\\n')
    >>> (d.parent / "torn" / "seg-1.jsonl.tail").read_bytes()
    b'{"n"'
    """
    cut: list[Path] = []
    for path in sorted(segment_dir.glob("seg-*.jsonl")):
        try:
            fd = os.open(path, os.O_RDWR)
        except OSError:
            continue
        try:
            if _recover_one(fd, path):
                cut.append(path)
        except OSError as exc:
            log.error("cannot recover the torn end of %s: %s", path, exc.strerror)
        finally:
            os.close(fd)  # also releases the lock taken in _recover_one
    return cut


def _recover_one(fd: int, path: Path) -> bool:
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # a live writer holds it (its write may be in progress), or locks are unsupported
        return False
    # Segments are at most a few hundred MB and this runs once at start-up: reading back by blocks
    # for the last newline is enough.
    end = size
    while end > 0:
        start = max(0, end - 65536)
        newline = os.pread(fd, end - start, start).rfind(b"\n")
        if newline >= 0:
            end = start + newline + 1
            break
        end = start
    torn_dir = path.parent.parent / "torn"
    torn_dir.mkdir(mode=0o700, exist_ok=True)
    tail = os.pread(fd, size - end, end)
    out = os.open(torn_dir / f"{path.name}.tail", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(out, tail)
        os.fsync(out)
    finally:
        os.close(out)
    os.ftruncate(fd, end)
    os.fsync(fd)
    log.warning("%s ended in a partial line (its writer died mid-write): %d bytes moved to %s",
                path, size - end, torn_dir / f"{path.name}.tail")
    return True


class _WriteFailed(Exception):
    def __init__(self, cause: OSError) -> None:
        super().__init__(str(cause))
        self.cause = cause
