"""The live-signal service and its worker client: framing, bounded buffers, drop counting, flags and resets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from distillguard.gateway import livesvc
from distillguard.gateway.live import LiveFlag, LiveSettings, LiveSignals
from distillguard.gateway.livesvc import MAX_FRAME, Frames, LiveClient, LiveService, encode

HARVEST = "Solve {} + {}. Explain your reasoning step by step."


def _body(prompt: str) -> bytes:
    return orjson.dumps({"messages": [{"role": "user", "content": prompt}]})


# -- framing ---------------------------------------------------------------------------------------


def test_frames_split_anywhere_come_out_whole_and_in_order() -> None:
    sent = [(b"O", ["acct-1", 1.5], _body("hi")), (b"R", [123, 45], b""), (b"F", ["a", "monitor", "why", 2.0], b""),
            (b"C", None, b""), (b"O", ["acct-\u00e9", 2.5], b"x" * 70_000)]
    stream = b"".join(encode(kind, meta, payload) for kind, meta, payload in sent)
    for step in (1, 7, 9, 4096, len(stream)):
        frames = Frames()
        got = []
        for at in range(0, len(stream), step):
            got += frames.feed(stream[at:at + step])
            assert frames.buffered < 9 + 70_100  # never more than one incomplete frame
        assert got == sent and frames.buffered == 0


@pytest.mark.parametrize("bad", [
    b"O" + (1).to_bytes(4, "big") + MAX_FRAME.to_bytes(4, "big"),  # larger than any frame may be
    b"O" + (3).to_bytes(4, "big") + (0).to_bytes(4, "big") + b"{x}",  # meta is not JSON
])
def test_an_impossible_frame_is_a_value_error(bad: bytes) -> None:
    with pytest.raises(ValueError):
        Frames().feed(bad)


# -- the client's bounded buffer ------------------------------------------------------------------------


class _Transport:
    """A connection whose write buffer holds ``backlog`` bytes (a service that does not read)."""

    def __init__(self, backlog: int = 0) -> None:
        self.frames = Frames()
        self.got: list[tuple[bytes, Any, bytes]] = []
        self.backlog = backlog

    def write(self, data: bytes) -> None:
        self.got += self.frames.feed(data)

    def writelines(self, data: Any) -> None:
        for d in data:
            self.write(d)

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return self.backlog

    def close(self) -> None:
        pass


def test_a_client_holds_observations_while_the_service_is_away_up_to_its_bound_then_counts_drops() -> None:
    client = LiveClient("/nonexistent/live.sock", max_buffer=10_000)
    body = _body("x" * 100)
    frame = len(encode(b"O", ["acct-1", 1.0], body))
    for _ in range(200):
        client.observe("acct-1", {}, raw=body, now=1.0)  # never raises, never waits
    held = 10_000 // frame
    assert client.held <= 10_000 and client.held == held * frame
    assert client.own_dropped == 200 - held and client.dropped == 200 - held
    transport = _Transport()
    client.reset([7, 1])  # a policy loaded meanwhile: said first when the service is back
    client._joined(transport)  # type: ignore[arg-type]
    assert [k for k, _, _ in transport.got] == [b"H"] + [b"O"] * held
    assert transport.got[0][1] == [7, 1] and transport.got[1] == (b"O", ["acct-1", 1.0], body)
    assert client.held == 0 and client.connects == 1


def test_a_client_drops_and_counts_when_the_service_does_not_read() -> None:
    client = LiveClient("/nonexistent/live.sock", max_buffer=10_000)
    transport = _Transport(backlog=9_990)
    client._joined(transport)  # type: ignore[arg-type]
    client.observe("acct-1", {"prompt": "hi"}, now=1.0)
    assert client.own_dropped == 1 and [k for k, _, _ in transport.got] == [b"H"]
    transport.backlog = 0
    client.observe("acct-1", {"prompt": "hi"}, now=1.0)  # no raw body: serialized here
    assert transport.got[-1] == (b"O", ["acct-1", 1.0], b'{"prompt":"hi"}') and client.own_dropped == 1


def test_a_client_takes_flags_clears_and_counts_from_the_service_and_survives_garbage() -> None:
    client = LiveClient("/nonexistent/live.sock")
    client.received(b"F", ["acct-1", "throttle", "live: 100 requests", 5.0])
    assert client.flag("acct-1") == LiveFlag("throttle", "live: 100 requests", 5.0) and client.flagged == 1
    client.received(b"F", ["too", "short"])  # logged, ignored
    client.received(b"D", [3, 2])
    client.received(b"Y", None)
    assert client.dropped == 5 and client.ready.is_set() and client.flagged == 1
    client.received(b"C", None)
    assert client.flag("acct-1") is None and client.flagged == 0


def test_the_engine_queue_is_bounded_and_counts_what_it_drops() -> None:
    live = LiveSignals(LiveSettings(min_requests=1), interval=30.0, max_queue=5)  # its thread waits 30 s a batch
    for i in range(20):
        live.observe("acct-1", {"prompt": f"p{i}"}, now=float(i))
    assert 14 <= live.dropped <= 15  # 5 queued, and the one the thread may have taken before sleeping


# -- the service, with two clients as two workers ------------------------------------------------------


def _run(scenario: Callable[[LiveService, list[LiveClient]], Awaitable[None]], tmp_path: Path,
         settings: LiveSettings) -> None:
    async def main() -> None:
        path = str(tmp_path / "live.sock")
        service = LiveService(settings, path, LiveSignals(settings, interval=0.01))
        stop = asyncio.Event()
        task = asyncio.create_task(service.run(stop))
        clients = [LiveClient(path), LiveClient(path)]
        for client in clients:
            client.warm()
        try:
            await _until(lambda: len(service.workers) == 2 and all(c.connected for c in clients))
            await scenario(service, clients)
        finally:
            for client in clients:
                client.close()
            stop.set()
            await task

    asyncio.run(main())


async def _until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.01)


SETTINGS = LiveSettings(min_requests=4, elicitation_share=0.5, template_share=0.5, action="throttle")


def test_an_account_spread_over_two_workers_is_flagged_for_both(tmp_path: Path) -> None:
    async def scenario(service: LiveService, clients: list[LiveClient]) -> None:
        a, b = clients
        for i in range(4):  # two requests through each worker: neither alone reaches min_requests
            (a if i % 2 else b).observe("acct-h", {}, raw=_body(HARVEST.format(i, i + 1)), now=100.0 + i)
            (a if i % 2 else b).observe("acct-c", {}, raw=_body(["hello", "a haiku", "thanks", "hi"][i]), now=100.0 + i)
        await _until(lambda: a.flag("acct-h") is not None and b.flag("acct-h") is not None)
        flag = b.flag("acct-h")
        assert flag is not None and flag.action == "throttle" and flag.reason.startswith("live: 4 requests")
        await asyncio.sleep(0.1)
        assert a.flag("acct-c") is None and b.flag("acct-c") is None

    _run(scenario, tmp_path, SETTINGS)


def test_a_new_policy_ends_the_flags_of_every_worker_once(tmp_path: Path) -> None:
    async def scenario(service: LiveService, clients: list[LiveClient]) -> None:
        a, b = clients
        for i in range(4):
            a.observe("acct-1", {}, raw=_body(HARVEST.format(i, i)), now=100.0 + i)
        await _until(lambda: b.flag("acct-1") is not None)
        a.reset([2_000, 10])  # worker a loads the new policy first: flags end everywhere
        await _until(lambda: b.flagged == 0)
        assert a.flagged == 0 and service.engine.flagged == 0 and service.version == [2_000, 10]
        for i in range(4):  # a new crossing under the new policy
            a.observe("acct-2", {}, raw=_body(HARVEST.format(i, i)), now=100.0 + i)
        await _until(lambda: b.flag("acct-2") is not None)
        b.reset([2_000, 10])  # b loads the same file later: its flags since that version come back, none end
        assert b.flagged == 0
        await _until(lambda: b.flag("acct-2") is not None)
        assert a.flag("acct-2") is not None and service.engine.flag("acct-2") is not None
        a.reset([1_000, 10])  # an older file (a worker behind): ends nothing
        await _until(lambda: a.flag("acct-2") is not None)
        assert service.version == [2_000, 10]

    _run(scenario, tmp_path, SETTINGS)


def test_unreadable_observations_are_counted_and_reported_to_the_workers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(livesvc, "_STATS_SECONDS", 0.02)

    async def scenario(service: LiveService, clients: list[LiveClient]) -> None:
        a, b = clients
        assert a._transport is not None
        a._transport.write(encode(b"O", ["acct-1", 1.0], b"{not json"))
        a._transport.write(encode(b"O", ["acct-1", 1.0], b"[1, 2]"))  # JSON, not a request body
        a._transport.write(encode(b"O", ["acct-1"], b"{}"))  # no time
        a._transport.write(encode(b"Q", None))  # an unknown kind
        await _until(lambda: service.unreadable == 4)
        await _until(lambda: a.dropped == 4 and b.dropped == 4)
        a._transport.write(b"O" + (1).to_bytes(4, "big") + MAX_FRAME.to_bytes(4, "big"))  # cannot be a frame
        await _until(lambda: not a.connected)  # that connection is closed; the client reconnects
        await _until(lambda: a.connected and a.connects == 2)
        assert service.unreadable == 5

    _run(scenario, tmp_path, SETTINGS)


def test_the_live_process_is_started_again_when_it_dies(tmp_path: Path) -> None:
    proc = livesvc.LiveProcess(LiveSettings(priority="normal")).start()
    try:
        assert proc.proc is not None
        first = proc.proc.pid
        deadline = time.monotonic() + 60
        while not Path(proc.path).exists():
            assert time.monotonic() < deadline, "the live process did not start"
            time.sleep(0.05)
        proc.proc.kill()
        while proc.restarts == 0 or proc.proc.pid == first or not proc.proc.is_alive():
            assert time.monotonic() < deadline, "the live process was not started again"
            time.sleep(0.05)
    finally:
        proc.stop()
    assert not proc.proc.is_alive() and not Path(proc.path).parent.exists()


def test_a_service_started_again_takes_the_version_in_force_from_the_first_hello() -> None:
    service = LiveService(SETTINGS, "unused", LiveSignals(SETTINGS))
    t1, t2 = _Transport(), _Transport()
    for t in (t1, t2):
        service.joined(t)  # type: ignore[arg-type]
    service.engine._flags = {"acct-1": LiveFlag("monitor", "live: ...", 1.0)}
    service.received(b"H", [5, 1], payload=b"", transport=t1)  # type: ignore[arg-type]
    assert service.version == [5, 1] and service.engine.flagged == 1  # nothing ended
    assert t1.got == [(b"F", ["acct-1", "monitor", "live: ...", 1.0], b"")] and t2.got == []
    service.received(b"H", [6, 1], payload=b"", transport=t2)  # type: ignore[arg-type]  # a worker that reloaded while away
    assert service.version == [6, 1] and service.engine.flagged == 0
    assert t1.got[-1][0] == t2.got[-1][0] == b"C"
