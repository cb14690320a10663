"""An event-stream response that relays in the request's own task.

Starlette's ``StreamingResponse``, under a server of ASGI spec 2.3 (uvicorn reports
2.3), runs the body in an anyio task group beside a second task that waits for
the client's disconnect: a task group, two tasks and their cancel scopes for every
stream. ``EventStream`` sends from the task already serving the request and
watches for the disconnect with one future whose callback cancels that task, as
the task group would: the body iterator then ends as it does when Starlette
cancels it (``gateway.upstream._relay`` logs the stream as interrupted). Written
here because Starlette offers no lighter stream and the ASGI server's ``send``
does not fail after a disconnect (uvicorn drops what is sent).

>>> import asyncio
>>> async def body():
...     yield b"data: 1\\n\\n"
>>> sent = []
>>> async def receive():
...     await asyncio.Event().wait()  # the client stays
>>> async def send(message):
...     sent.append(message.get("body", message.get("status")))
>>> asyncio.run(EventStream(body())({"type": "http"}, receive, send))
>>> sent
[200, b'data: 1\\n\\n', b'']
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

log = logging.getLogger(__name__)


class EventStream(Response):
    """``text/event-stream`` from ``body``, ended (and the iterator closed) when the client hangs up.

    ``on_close`` runs last, whatever happened: a body iterator never started (the client gone before
    the headers were sent) runs no code of its own, so what must happen in every case goes there.
    """

    media_type = "text/event-stream"

    def __init__(self, body: AsyncIterator[bytes], headers: Mapping[str, str] | None = None,
                 on_close: Callable[[], None] | None = None) -> None:
        self.body_iterator = body
        self.on_close = on_close
        self.status_code = 200
        self.background = None
        self.init_headers(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        assert task is not None
        before = task.cancelling()  # cancel requests pending already: not ours to take back
        state = {"finished": False, "gone": False}

        def hung_up(watcher: asyncio.Future[None]) -> None:
            if watcher.cancelled() or state["finished"]:
                return
            if watcher.exception() is not None:  # no way left to see the client leave: end the stream now
                log.warning("reading the client's messages failed (%r); ending the stream", watcher.exception())
            state["gone"] = True
            task.cancel()

        watcher = asyncio.ensure_future(_disconnect(receive))
        watcher.add_done_callback(hung_up)
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            async for chunk in self.body_iterator:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            # Take back only the hang-up's own cancel: a server shutting down in the same loop iteration
            # leaves a second request pending, and that one propagates.
            if not state["gone"] or task.uncancel() > before:
                raise
        finally:
            state["finished"] = True
            watcher.cancel()
            try:
                await _close(self.body_iterator)
            finally:
                if self.on_close is not None:
                    try:
                        self.on_close()
                    except Exception:  # never in place of what is propagating (a shutdown's cancel)
                        log.exception("closing an event stream failed")


async def _disconnect(receive: Receive) -> None:
    """Return when the client disconnects (the request body is already read: nothing else arrives)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def _close(body: AsyncIterator[bytes]) -> None:
    """End a body iterator left at a ``yield`` (cancelled while its chunk was being sent), so its
    ``finally`` runs now rather than whenever the garbage collector finds it."""
    aclose = getattr(body, "aclose", None)
    if aclose is not None:
        await aclose()
