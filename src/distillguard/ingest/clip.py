"""Shrink one JSON text as it streams by: long strings cut, deep nesting replaced, with marks.

A record whose line is over the size limit (a 17 MB ``User-Agent``) or nested
deeper than the JSON parser goes (a client body 1,024 levels deep, logged one
level lower) is still activity of its account. ``Clipper`` reads the line in
chunks and keeps at most ``string_cap`` bytes of each string (then a mark
giving the string's size) and ``max_depth`` levels (deeper containers become
one mark string), in memory bounded by ``out_limit``. Invalid JSON stays
invalid: the caller's parser then quarantines it.

>>> c = Clipper(string_cap=4, max_depth=2, out_limit=1000)
>>> c.feed(b'{"ua": "abcdefgh", "x": [[1]], "k": "ok"}')
>>> c.result().decode(), c.cut_strings, c.cut_containers
('{"ua": "abcd[...cut at ingest: 8 bytes in all]", "x": ["[nested too deep: cut at ingest]"], "k": "ok"}', 1, 1)
"""

from __future__ import annotations

import re

import orjson

DEPTH_MARK = "[nested too deep: cut at ingest]"
MAX_DEPTH = 200
"""Levels of nesting a record keeps (orjson reads 1,024 but writes at most 254)."""
_PLAIN = re.compile(rb'[^"\\]*')
_STRUCT = re.compile(rb'["\[\]{}]')


class Clipper:
    """Feed the bytes of one JSON text; ``result`` is the clipped text, or None when still over ``out_limit``."""

    def __init__(self, string_cap: int | None, max_depth: int, out_limit: int) -> None:
        self.cap, self.max_depth, self.limit = string_cap, max_depth, out_limit
        self.out = bytearray()
        self.in_string = self.escape = self.over = False
        self.depth, self.skip_from = 0, 0  # skip_from: depth of the container being dropped (0: none)
        self.start = self.length = 0  # where the current string's kept bytes start; its size so far
        self.cut_strings = self.cut_containers = 0

    def feed(self, chunk: bytes) -> None:
        i, n = 0, len(chunk)
        while i < n and not self.over:
            if self.in_string:
                i = self._string_part(chunk, i)
                continue
            m = _STRUCT.search(chunk, i)
            j = m.start() if m else n
            self._emit(chunk[i:j])
            if j < n:
                self._structural(chunk[j])
            i = j + 1

    def result(self) -> bytes | None:
        return None if self.over else bytes(self.out)

    def _string_part(self, chunk: bytes, i: int) -> int:
        if self.escape:
            self.escape = False
            self._keep(chunk[i:i + 1])
            return i + 1
        m = _PLAIN.match(chunk, i)
        assert m is not None  # matches the empty string at least
        j = m.end()
        self._keep(chunk[i:j])
        if j < len(chunk):
            if chunk[j] == 0x5C:  # a backslash: the next byte is escaped
                self._keep(b"\\")
                self.escape = True
            else:
                self._close_string()
            j += 1
        return j

    def _structural(self, c: int) -> None:
        if c == 0x22:  # a quote opens a string
            self._emit(b'"')
            self.in_string, self.start, self.length = True, len(self.out), 0
        elif c in (0x5B, 0x7B):  # [ {
            self.depth += 1
            if self.depth > self.max_depth and not self.skip_from:
                self._emit(orjson.dumps(DEPTH_MARK))  # in place of the whole container
                self.skip_from = self.depth
                self.cut_containers += 1
            else:
                self._emit(bytes([c]))
        else:  # ] }
            if self.depth == self.skip_from:
                self.skip_from = 0
            else:
                self._emit(bytes([c]))
            self.depth -= 1

    def _emit(self, data: bytes) -> None:
        if self.skip_from or not data:
            return
        self.out += data
        if len(self.out) > self.limit:
            self.over = True

    def _keep(self, data: bytes) -> None:
        """Bytes inside a string: kept up to the cap, counted always."""
        room = len(data) if self.cap is None else max(0, self.cap - self.length)
        self.length += len(data)
        self._emit(data[:room])

    def _close_string(self) -> None:
        self.in_string = False
        if not self.skip_from and self.cap is not None and self.length > self.cap:
            kept = _whole_prefix(bytes(self.out[self.start:]))
            del self.out[self.start:]
            self._emit(kept + f"[...cut at ingest: {self.length:,} bytes in all]".encode())
            self.cut_strings += 1
        self._emit(b'"')


def _whole_prefix(kept: bytes) -> bytes:
    """``kept`` without a cut escape, lone surrogate or UTF-8 sequence at its end."""
    for end in range(len(kept), max(-1, len(kept) - 16), -1):
        try:
            orjson.loads(b'"' + kept[:end] + b'"')
        except orjson.JSONDecodeError:
            continue
        return kept[:end]
    return kept  # invalid inside, not only at the cut: the parser will say so
