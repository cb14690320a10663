"""Streaming line reader for JSONL files, plain or compressed, in bounded memory.

Each physical line comes out once, numbered from 1, either as its bytes or as a
``BadLine`` saying why it cannot be used (too long, truncated at end of file).
A line longer than the limit is never held whole: it is read in chunks through
``clip.Clipper``, which cuts its long strings with a mark; only a line still
over the limit after that is given up.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import zstandard

from distillguard.errors import InputError
from distillguard.ingest.clip import MAX_DEPTH, Clipper

_DRAIN_CHUNK = 1 << 20


@dataclass(frozen=True)
class Line:
    number: int
    data: bytes
    last_without_newline: bool  # possibly truncated
    notes: tuple[str, ...] = ()  # what was cut from an over-long line


@dataclass(frozen=True)
class BadLine:
    number: int
    reason: str
    excerpt: bytes


def open_binary(path: Path) -> BinaryIO:
    """Open ``path`` for reading bytes, decompressing ``.gz`` and ``.zst``."""
    try:
        raw = open(path, "rb")  # noqa: SIM115 (returned to the caller, who closes it)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if path.name.endswith(".gz"):
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    if path.name.endswith(".zst"):
        reader = zstandard.ZstdDecompressor().stream_reader(raw, closefd=True)
        return io.BufferedReader(reader, buffer_size=1 << 20)
    return raw


def read_lines(path: Path, max_line_bytes: int) -> Iterator[Line | BadLine]:
    """Yield every non-blank line of ``path`` or the reason it is unusable."""
    number = 0
    with open_binary(path) as stream:
        while True:
            try:
                chunk = stream.readline(max_line_bytes + 1)
            except (OSError, EOFError, zlib.error, zstandard.ZstdError) as exc:
                yield BadLine(number + 1, f"unreadable from here on: {exc}", b"")
                return
            if not chunk:
                return
            number += 1
            if len(chunk) > max_line_bytes and not chunk.endswith(b"\n"):
                yield _clipped(number, chunk, stream, max_line_bytes)
                continue
            ends = chunk.endswith(b"\n")
            if not chunk.strip():
                continue
            yield Line(number, chunk, last_without_newline=not ends)


def _clipped(number: int, head: bytes, stream: BinaryIO, max_line_bytes: int) -> Line | BadLine:
    """The rest of an over-long line read through a ``Clipper``: the clipped line, or why it is given up."""
    cap = max(1024, max_line_bytes // 16)
    clipper = Clipper(cap, MAX_DEPTH, max_line_bytes)
    clipper.feed(head)
    size, ends = len(head), False
    while True:
        try:
            part = stream.readline(_DRAIN_CHUNK)
        except (OSError, EOFError, zlib.error, zstandard.ZstdError) as exc:
            return BadLine(number, f"unreadable from here on: {exc}", head[:200])
        size += len(part)
        ends = part.endswith(b"\n")
        clipper.feed(part)
        if not part or ends:
            break
    data = clipper.result()
    too_long = f"line too long: {size:,} bytes, over the limit of {max_line_bytes:,}"
    if data is None:
        return BadLine(number, f"{too_long}, and still over it with strings cut to {cap:,} bytes", head[:200])
    notes = [f"{too_long}: {clipper.cut_strings} strings cut to {cap:,} bytes, marked"]
    if clipper.cut_containers:
        notes.append(f"{clipper.cut_containers} containers nested deeper than {MAX_DEPTH} levels replaced by a mark")
    return Line(number, data, last_without_newline=not ends, notes=tuple(notes))
