"""Streaming line reader for JSONL files, plain or compressed, in bounded memory.

Each physical line comes out once, numbered from 1, either as its bytes or as a
``BadLine`` saying why it cannot be used (too long, truncated at end of file).
A line longer than the limit is skipped in chunks, never held whole.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import zstandard

from distillguard.errors import InputError

_DRAIN_CHUNK = 1 << 20


@dataclass(frozen=True)
class Line:
    number: int
    data: bytes
    last_without_newline: bool  # possibly truncated


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
            except (OSError, EOFError, zstandard.ZstdError) as exc:
                yield BadLine(number + 1, f"unreadable from here on: {exc}", b"")
                return
            if not chunk:
                return
            number += 1
            if len(chunk) > max_line_bytes and not chunk.endswith(b"\n"):
                size = len(chunk) + _drain(stream)
                yield BadLine(
                    number,
                    f"line too long: {size:,} bytes, over the limit of {max_line_bytes:,}",
                    chunk[:200],
                )
                continue
            ends = chunk.endswith(b"\n")
            if not chunk.strip():
                continue
            yield Line(number, chunk, last_without_newline=not ends)


def _drain(stream: BinaryIO) -> int:
    """Skip to the end of the current line; return the bytes skipped."""
    skipped = 0
    while True:
        part = stream.readline(_DRAIN_CHUNK)
        skipped += len(part)
        if not part or part.endswith(b"\n"):
            return skipped
