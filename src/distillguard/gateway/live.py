"""Live signals: per-account sliding windows of the cheap detection signals, and live thresholds.

Between two scans an account can harvest for hours. The gateway keeps, per
account, the last ``window_seconds`` of requests with two of the detection
stage's per-exchange signals (reasoning-trace elicitation, from the same
classifier; and the prompt template signature), and moves an account that
crosses the live thresholds to ``monitor`` or ``throttle`` until the next scan
(the next policy file) decides. The signals are computed on a background
thread in small batches (reading the request the way ``scan`` does, so live and
batch template signatures agree), so a request pays only a queue append and a dict
lookup; a crossing takes effect within milliseconds, for the account's next
request. ``distillguard gateway`` runs this in its own process (``livesvc``),
shared by all its workers, so the classifier never holds the interpreter lock
the request path needs; in one process (tests, embedding) it runs on a thread.
The state is per gateway (several gateways each see their own traffic).

>>> live = LiveSignals(LiveSettings(min_requests=3, elicitation_share=0.5, template_share=0.5))
>>> for i in range(3):
...     live.observe("a", {"messages": [{"role": "user",
...                   "content": f"Solve {i} + {i}. Explain your reasoning step by step."}]}, now=float(i))
>>> live.drain()
>>> live.flag("a").action
'monitor'
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

log = logging.getLogger(__name__)


class LiveSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    enabled: bool = True
    window_seconds: float = Field(600.0, gt=0, description="sliding window per account")
    min_requests: int = Field(100, ge=1, description="requests in the window before an account can cross")
    elicitation_share: float = Field(0.5, ge=0, le=1, description="share of requests that elicit reasoning")
    template_share: float = Field(0.5, ge=0, le=1, description="share sharing the account's top template")
    action: Literal["monitor", "throttle"] = "monitor"
    priority: Literal["idle", "low", "normal"] = Field(
        "idle", description="CPU priority of the live process once its classifier is fitted: idle (Linux "
        "SCHED_IDLE: only CPU time nothing else wants, never delaying a request; under full load its windows fall "
        "behind and drop, counted), low (nice 10) or normal")


@dataclass(frozen=True)
class LiveFlag:
    action: str
    reason: str
    since: float


BIN_SECONDS = 10.0
MAX_TEMPLATES_PER_BIN = 64


@dataclass
class _Bin:
    index: int
    requests: int = 0
    eliciting: int = 0
    templates: Counter[str] = field(default_factory=Counter)


@dataclass
class _Window:
    """An account's last ``horizon`` seconds as 10-second bins of counts.

    Memory per account is bounded by the bins in the window and ``MAX_TEMPLATES_PER_BIN``
    signatures per bin (later new signatures in a full bin count as requests only), not by its
    request rate: a harvester at 1,000 requests/s costs what a quiet account does.
    """

    bins: deque[_Bin] = field(default_factory=deque)
    templates: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    eliciting: int = 0

    def add(self, at: float, *, eliciting: bool, template: str, horizon: float) -> None:
        index = int(at // BIN_SECONDS)
        if not self.bins or self.bins[-1].index != index:
            self.bins.append(_Bin(index))
        last = self.bins[-1]
        last.requests += 1
        last.eliciting += eliciting
        if template in last.templates or len(last.templates) < MAX_TEMPLATES_PER_BIN:
            last.templates[template] += 1
            self.templates[template] += 1
        self.requests += 1
        self.eliciting += eliciting
        oldest = int((at - horizon) // BIN_SECONDS)
        while self.bins and self.bins[0].index < oldest:
            gone = self.bins.popleft()
            self.requests -= gone.requests
            self.eliciting -= gone.eliciting
            self.templates.subtract(gone.templates)
            for t in gone.templates:
                if self.templates[t] <= 0:
                    del self.templates[t]

    @property
    def last_seen(self) -> float:
        return (self.bins[-1].index + 1) * BIN_SECONDS if self.bins else 0.0


def request_texts(request: dict[str, Any]) -> tuple[str | None, str]:
    """(system text, last user prompt) of a request body, read as ``scan`` reads the logged one.

    Text completions (a bare ``prompt``) have no system text; a body ``scan`` would quarantine
    contributes an empty prompt (it still counts as a request).
    """
    from distillguard.ingest.normalize import RowProblem, normalize_request, prompt_parts

    if "messages" not in request and "input" not in request and isinstance(request.get("prompt"), str):
        return None, request["prompt"]
    try:
        chat, _ = normalize_request(request)
    except RowProblem:
        return None, ""
    system, prompt, _, _ = prompt_parts(chat["messages"])
    return system, prompt


class LiveView(Protocol):
    """What the gateway needs of the live signals: ``LiveSignals`` here, or ``livesvc.LiveClient``."""

    ready: threading.Event

    @property
    def dropped(self) -> int: ...

    def observe(self, account: str, request: dict[str, Any], *, raw: bytes | None = None,
                now: float | None = None) -> None: ...

    def flag(self, account: str) -> LiveFlag | None: ...

    @property
    def flagged(self) -> int: ...

    def reset(self, version: object = None) -> None: ...

    def warm(self) -> None: ...

    def close(self) -> None: ...


class LiveSignals:
    """Per-account windows fed by ``observe`` (non-blocking), read by ``flag`` (a dict lookup)."""

    def __init__(self, settings: LiveSettings, batch: int = 4096, interval: float = 0.25, chunk: int = 32,
                 max_queue: int = 100_000, on_flag: Callable[[str, LiveFlag], None] | None = None) -> None:
        # Batches, not items: one classifier call costs ~0.7 ms whatever its size up to a few hundred
        # prompts (16 µs each after that), and it holds the GIL the request path needs; chunks of
        # ``chunk`` bound how long the event loop waits for it (when it shares the gateway's process).
        self.settings, self.batch, self.interval, self.chunk = settings, batch, interval, chunk
        self.on_flag = on_flag  # called on the processing thread when an account crosses (livesvc relays it)
        # Bounded: a classifier that falls behind drops observations (counted), it never grows without end.
        self._queue: queue.Queue[tuple[str, dict[str, Any], float]] = queue.Queue(max_queue)
        self.dropped = 0
        self._windows: dict[str, _Window] = {}
        self._flags: dict[str, LiveFlag] = {}
        self._pruned = 0.0
        self.ready = threading.Event()  # the classifier is fitted (or live signals are off)
        if not settings.enabled:
            self.ready.set()
        self._thread: threading.Thread | None = None

    def observe(self, account: str, request: dict[str, Any], *, raw: bytes | None = None,
                now: float | None = None) -> None:
        """Queue one request body for the account's window (the request does not wait for it).

        ``raw`` (the body as received) is for the process-backed view (``livesvc.LiveClient``); unused here.
        """
        if not self.settings.enabled:
            return
        try:
            self._queue.put_nowait((account, request, time.time() if now is None else now))
        except queue.Full:
            self.dropped += 1
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, daemon=True, name="live-signals")
            self._thread.start()

    def warm(self) -> None:
        """Fit the elicitation classifier now (about 2 s, on a background thread) rather than on a request.

        ``ready`` is set when it is done; the gateway's ``/readyz`` waits for it.
        """
        if self.settings.enabled:
            from distillguard.signals.elicitation import elicitation_probability

            def fit() -> None:
                elicitation_probability(["warm up"])
                self.ready.set()

            threading.Thread(target=fit, daemon=True, name="live-warm").start()

    def flag(self, account: str) -> LiveFlag | None:
        return self._flags.get(account)

    @property
    def flagged(self) -> int:
        return len(self._flags)

    def flags(self) -> dict[str, LiveFlag]:
        """The current flags (a snapshot: the dict is replaced, never changed, on a new flag)."""
        return self._flags

    def reset(self, version: object = None) -> None:
        """A new scan's policy decides now: live flags end (the windows keep counting).

        ``version`` (the policy file's) matters to the process-backed view only."""
        self._flags = {}

    def close(self) -> None:
        """Nothing to release (the thread is a daemon); the process-backed view closes its connection."""

    def drain(self, timeout: float = 10.0) -> None:
        """Wait until every observed request is counted (tests, shutdown)."""
        if self._thread is None:
            self._process(self._take())
            return
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.005)

    def _take(self) -> list[tuple[str, dict[str, Any], float]]:
        """Whatever is queued, up to ``batch`` items, without waiting."""
        items: list[tuple[str, dict[str, Any], float]] = []
        while len(items) < self.batch:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return items

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            time.sleep(self.interval)  # let a batch gather
            items = [first, *self._take()]
            try:
                self._process(items)
            except Exception:  # the live view is best effort; the request path never depends on it
                log.exception("live signals: a batch of %d could not be scored", len(items))
            finally:
                for _ in items:
                    self._queue.task_done()

    def _process(self, requests: list[tuple[str, dict[str, Any], float]]) -> None:
        if not requests:
            return
        from distillguard.signals.elicitation import elicitation_probability
        from distillguard.signals.template import signature

        s = self.settings
        items = [(account, *request_texts(request), at) for account, request, at in requests]
        proba: list[float] = []
        for start in range(0, len(items), self.chunk):
            if start:
                time.sleep(0)  # hand the GIL back to the event loop between chunks
            proba += elicitation_probability([p for _, _, p, _ in items[start:start + self.chunk]]).tolist()
        for (account, system, prompt, at), p in zip(items, proba, strict=True):
            window = self._windows.setdefault(account, _Window())
            window.add(at, eliciting=bool(p >= 0.5), template=signature(system, prompt), horizon=s.window_seconds)
            n = window.requests
            if n < s.min_requests or account in self._flags:
                continue
            elicit = window.eliciting / n
            top = max(window.templates.values(), default=0) / n
            if elicit >= s.elicitation_share and top >= s.template_share:
                reason = (f"live: {n} requests in {s.window_seconds:.0f} s, {elicit:.0%} elicit reasoning, "
                          f"{top:.0%} share one template")
                flag = LiveFlag(s.action, reason, at)
                self._flags = {**self._flags, account: flag}  # readers see old or new
                log.warning("account %s crossed the live thresholds: %s", account, reason)
                if self.on_flag is not None:
                    self.on_flag(account, flag)
        self._prune(items[-1][3])

    def _prune(self, now: float) -> None:
        """Forget accounts silent for a whole window (memory stays bounded by the active accounts)."""
        if now - self._pruned < self.settings.window_seconds:
            return
        self._pruned = now
        horizon = now - self.settings.window_seconds
        for account in [a for a, w in self._windows.items() if w.last_seen < horizon]:
            del self._windows[account]
