"""Serve concurrent requests in batches: one decoding thread, an asyncio stream of tokens per request.

Requests that arrive while a batch decodes wait for the next one (static
batching: simple, and on a CPU the batch is what buys throughput). Each request
gets a ``TokenStream`` to iterate with ``async for``; closing it (a client that
disconnects) stops its row at the next step without disturbing the others.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from transformers import LogitsProcessorList

from distillguard.lab.antidistillation import Prefetch
from distillguard.models.generate import Model, Row, Sampling

log = logging.getLogger(__name__)
_END = object()


@dataclass
class TokenStream:
    """The tokens of one request, as the decoding thread produces them."""

    loop: asyncio.AbstractEventLoop
    tokens: asyncio.Queue[object] = field(default_factory=asyncio.Queue)
    closed: bool = False

    def put(self, item: object) -> None:  # called from the decoding thread
        self.loop.call_soon_threadsafe(self.tokens.put_nowait, item)

    def close(self) -> None:
        self.closed = True

    async def __aiter__(self) -> AsyncIterator[int]:
        try:
            while (item := await self.tokens.get()) is not _END:
                if isinstance(item, BaseException):
                    raise item
                assert isinstance(item, int)
                yield item
        finally:
            self.closed = True


class Batcher:
    """Decodes submitted requests in batches of up to ``max_batch`` on one background thread."""

    def __init__(self, model: Model, max_batch: int = 32) -> None:
        self.model, self.max_batch = model, max_batch
        self._pending: queue.Queue[tuple[Row, TokenStream]] = queue.Queue()
        self._thread = threading.Thread(target=self._run, daemon=True, name="lab-batcher")
        self._thread.start()

    def submit(self, prompt: list[int], sampling: Sampling, processors: LogitsProcessorList) -> TokenStream:
        """Queue one completion; its tokens arrive on the returned stream (call from the event loop)."""
        stream = TokenStream(asyncio.get_running_loop())
        self._pending.put((Row(prompt, sampling, processors, lambda: stream.closed), stream))
        return stream

    def _run(self) -> None:
        while True:
            batch = [self._pending.get()]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._pending.get_nowait())
                except queue.Empty:
                    break
            streams = [s for _, s in batch]
            rows = [r for r, _ in batch]
            try:
                tilts = Prefetch([r.prompt for r in rows], [list(r.processors) for r in rows],
                                 [r.sampling.max_tokens for r in rows])
                if tilts:  # antidistillation: the proxies' passes batched too, one per step
                    tilts.step()
                for events in self.model.decode(rows):
                    for i, token in events:
                        streams[i].put(_END if token is None else token)
                    if tilts:
                        tilts.step(events)
            except Exception as exc:  # a failed batch fails its requests, never the server
                log.exception("decoding a batch of %d failed", len(batch))
                for s in streams:
                    s.put(exc)
                    s.put(_END)
