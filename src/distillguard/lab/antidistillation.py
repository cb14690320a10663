"""Antidistillation sampling (Savani et al., 2025, arXiv 2504.13146): the ``antidistillation`` logits processor.

The teacher samples from ``softmax(z / τ + λ · Δ)`` instead of ``softmax(z / τ)``,
where ``z`` are its logits and ``Δ(x)`` estimates how much a student that
trains on token ``x`` (after this prefix) would *raise* its loss on held-out
data. With a proxy student ``θ`` and ``g = ∇θ L_heldout(θ)`` computed once,
one gradient step on ``x`` moves ``θ`` along ``∇θ log p_θ(x | prefix)``, which
changes the held-out loss by about ``η ⟨g, ∇θ log p_θ(x | prefix)⟩``; the
paper's finite-difference form measures that inner product with two forward
passes per token::

    Δ(x) = (log p_{θ+εg}(x | prefix) − log p_{θ−εg}(x | prefix)) / (2ε)

So ``λ > 0`` lowers the probability of tokens that would teach a student
(``Δ < 0``: they lower its held-out loss) and raises that of tokens that
would mislead it, while the teacher's own term keeps the text likely under
the teacher. ``λ = 0`` is plain sampling, exactly.

**Special tokens are spared.** The tokenizer's special tokens (end of text,
``<think>``, ``</think>``, chat roles) structure the answer rather than carry
what a student learns, yet ``Δ`` is largest there: every held-out trace opens
with ``<think>``, so learning it lowers the held-out loss most, and an
unspared tilt stops the teacher from reasoning at all (measured: 100% → 0% of
answers with reasoning in a smoke run). So the tilt acts only *within* the
other tokens: a special token keeps exactly the teacher's probability, and
the other tokens share the rest in proportion to ``exp(z/τ + λΔ)``. When and
whether the teacher opens, closes or ends its reasoning is its own choice.

The proxy student and ``g`` are computed once per **version** by ``prepare``
and kept on disk, one folder per version under a root (the lab's
``antidistillation/`` folder beside the teacher)::

    ROOT/VERSION/proxy/               the proxy student (Hugging Face model, the teacher's tokenizer)
    ROOT/VERSION/gradient.pt          g: the mean gradient of its held-out loss, per parameter
    ROOT/VERSION/antidistillation.json what made them (the cache key), |g|, the held-out loss, the spared ids

A version never changes: preparing it again with the same recipe loads it,
with another recipe is an error. The model server's ``ProxyStore`` loads a
version on its first request and keeps the ``θ ± εg`` pair per ``epsilon``.
Requests ask for ``{"name": "antidistillation", "lambda": 0.5, "epsilon": 1e-4,
"version": "v1"}``. Cost: two proxy forward passes per generated token and
row (each with its own KV cache), on top of the teacher's batched one.

Following the paper (and its reference code), the held-out loss is the
proxy's completion-only loss on held-out task traces (here, ground-truth
traces of tasks the teacher was not trained on), and the proxy shares the
teacher's tokenizer, so its token ids are the teacher's.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import LogitsProcessor, PreTrainedModel, PreTrainedTokenizerBase

from distillguard.errors import ConfigError
from distillguard.lab.examples import Example, batch, digest, encode
from distillguard.lab.train import ModelSpec, TrainSettings, fresh_model, run_key, train_model
from distillguard.models.load import load_causal_lm

__all__ = ["AntidistillationProcessor", "Prefetch", "PreparedProxy", "ProxyPair", "ProxyStore", "check_version",
           "prepare", "processor_factory", "tilt"]

META = "antidistillation.json"
GRADIENT = "gradient.pt"
DEFAULT_EPSILON = 1e-4
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_STATES = 64  # KV caches kept per processor (one per live row, plus slack)


@dataclass(frozen=True)
class PreparedProxy:
    """What ``prepare`` made for one version: where, and its numbers."""

    version: str
    path: Path
    held_out: int
    held_out_loss: float
    gradient_norm: float


def prepare(root: Path, version: str, *, tokenizer: PreTrainedTokenizerBase, train: Sequence[Example],
            held_out: Sequence[Example], spec: ModelSpec, settings: TrainSettings) -> PreparedProxy:
    """Train the proxy student on ``train`` (``settings.steps`` may be 0: the untrained init) with the teacher's
    ``tokenizer``, and store the mean gradient of its completion-only loss on ``held_out``, as ``root/version``.

    Cached: a version already prepared with this recipe is loaded, one prepared with another is a ``ConfigError``.
    """
    folder = Path(root) / check_version(version)
    if not held_out:
        raise ConfigError("antidistillation needs held-out examples to take the proxy's gradient on")
    key = hashlib.sha256(json.dumps({"proxy": run_key(train, spec, settings=settings, tokenizer=tokenizer),
                                     "held_out": digest(held_out)}).encode()).hexdigest()
    if (folder / META).is_file():
        meta = json.loads((folder / META).read_text())
        if meta.get("key") != key:
            raise ConfigError(f"antidistillation version {version!r} at {folder} was prepared from another recipe; "
                              "a version never changes: prepare a new version")
        return _prepared(folder, meta)
    if settings.steps > 0:
        try:
            proxy = train_model(train, spec, settings=settings, out=folder / "proxy", tokenizer=tokenizer).model
        except ValueError as exc:  # no example fits the context
            raise ConfigError(f"antidistillation proxy {version!r}: {exc}") from exc
    else:  # the untrained init, as a student trained from scratch starts
        proxy = fresh_model(spec, tokenizer, settings.seed).model
        proxy.save_pretrained(folder / "proxy")
    gradient, loss, rows = _held_out_gradient(proxy, tokenizer, held_out, spec.context)
    torch.save(gradient, folder / f"{GRADIENT}.tmp")
    (folder / f"{GRADIENT}.tmp").replace(folder / GRADIENT)
    norm = math.sqrt(sum(float(g.double().pow(2).sum()) for g in gradient.values()))
    meta = {"version": version, "key": key, "held_out": rows, "held_out_loss": round(loss, 6),
            "gradient_norm": norm, "spec": asdict(spec), "settings": asdict(settings), "train": len(train),
            "spared": sorted(int(i) for i in tokenizer.all_special_ids)}
    (folder / META).write_text(json.dumps(meta, indent=2))  # last: a folder with it is complete
    return _prepared(folder, meta)


def _prepared(folder: Path, meta: dict[str, Any]) -> PreparedProxy:
    return PreparedProxy(str(meta["version"]), folder, int(meta["held_out"]), float(meta["held_out_loss"]),
                         float(meta["gradient_norm"]))


def _held_out_gradient(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, held_out: Sequence[Example],
                       context: int, size: int = 16) -> tuple[dict[str, torch.Tensor], float, int]:
    """(mean gradient of the per-example completion-only loss, that mean loss, examples used)."""
    rows = [r for e in held_out if (r := encode(tokenizer, e, context)) is not None]
    if not rows:
        raise ConfigError("no held-out example fits the proxy's context")
    model.train()
    model.zero_grad(set_to_none=True)
    total = 0.0
    for start in range(0, len(rows), size):
        part = rows[start:start + size]
        ids, labels = batch(part, tokenizer.pad_token_id)
        loss = model(input_ids=ids, labels=labels, attention_mask=(ids != tokenizer.pad_token_id).long()).loss
        (loss * len(part) / len(rows)).backward()
        total += float(loss.detach()) * len(part)
    model.eval()  # type: ignore[no-untyped-call]
    gradient = {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return gradient, total / len(rows), len(rows)


def check_version(version: object) -> str:
    """A version is a plain folder name (letters, digits, ``._-``): a request can never name a path."""
    if not isinstance(version, str) or not _VERSION.fullmatch(version):
        raise ConfigError(f"antidistillation version must be 1-64 letters, digits, '.', '_' or '-' (not starting "
                          f"with '.', '_' or '-'), got {version!r}")
    return version


class ProxyPair:
    """The proxy student at ``θ + εg`` and ``θ − εg``; ``delta(ids, state)`` is ``Δ`` over the vocabulary.

    ``spared``: token ids the tilt leaves at the teacher's probability (the tokenizer's special tokens).
    """

    def __init__(self, proxy: PreTrainedModel, gradient: dict[str, torch.Tensor], epsilon: float,
                 spared: Sequence[int] = ()) -> None:
        self.epsilon = epsilon
        self.vocab = int(proxy.config.vocab_size)
        self.free = torch.ones(self.vocab, dtype=torch.bool)  # the tokens the tilt acts on
        self.free[[i for i in spared if 0 <= i < self.vocab]] = False
        self.context = int(getattr(proxy.config, "n_positions", None)
                           or getattr(proxy.config, "max_position_embeddings", None) or 2048)
        self.plus, self.minus = copy.deepcopy(proxy), copy.deepcopy(proxy)
        with torch.no_grad():
            for sign, model in ((1.0, self.plus), (-1.0, self.minus)):
                params = dict(model.named_parameters())
                missing = set(gradient) ^ set(params)
                if missing:
                    raise ConfigError(f"the stored gradient does not match the proxy's parameters: "
                                      f"{sorted(missing)[:3]}")
                for name, g in gradient.items():
                    params[name].add_(g.to(params[name].dtype), alpha=sign * epsilon)
                model.eval()  # type: ignore[no-untyped-call]
        self._cache_arg = "cache" if "cache" in _forward_params(proxy) else "past_key_values"

    def delta(self, ids: Sequence[int], state: tuple[Any, Any] | None = None) -> tuple[torch.Tensor, tuple[Any, Any]]:
        """``Δ`` for the token after ``ids`` (a float32 vector over the vocabulary) and the KV caches after ``ids``.

        ``state`` is what the previous call returned for ``ids[:-1]``: only the last token is then fed.
        """
        if len(ids) > self.context:  # past the proxy's positions: score the last window, uncached
            ids, state = ids[-self.context:], None
        feed = torch.tensor([list(ids[-1:] if state is not None else ids)], dtype=torch.long)
        logprobs, caches = [], []
        with torch.inference_mode():
            for model, past in zip((self.plus, self.minus), state or (None, None), strict=True):
                out = model(input_ids=feed, use_cache=True, **{self._cache_arg: past})
                logprobs.append(torch.log_softmax(out.logits[0, -1].float(), dim=-1))
                caches.append(getattr(out, "cache", None) or getattr(out, "past_key_values", None))
        return (logprobs[0] - logprobs[1]) / (2 * self.epsilon), (caches[0], caches[1])


def _forward_params(model: PreTrainedModel) -> set[str]:
    import inspect

    return set(inspect.signature(model.forward).parameters)


class ProxyStore:
    """Prepared versions under ``root``, loaded on first use; ``θ ± εg`` pairs kept per (version, epsilon)."""

    def __init__(self, root: Path, keep: int = 4) -> None:
        self.root, self.keep = Path(root), keep
        self._pairs: OrderedDict[tuple[str, float], ProxyPair] = OrderedDict()
        self._lock = threading.Lock()

    def versions(self) -> list[str]:
        return sorted(p.parent.name for p in self.root.glob(f"*/{META}")) if self.root.is_dir() else []

    def pair(self, version: str, epsilon: float) -> ProxyPair:
        folder = self.root / check_version(version)
        with self._lock:
            key = (version, epsilon)
            if key in self._pairs:
                self._pairs.move_to_end(key)
                return self._pairs[key]
            if not (folder / META).is_file():
                raise ConfigError(f"no antidistillation version {version!r} under {self.root}; prepared: "
                                  f"{', '.join(self.versions()) or 'none'} (`distillguard lab proxy`)")
            meta = json.loads((folder / META).read_text())
            if "spared" not in meta:
                raise ConfigError(f"antidistillation version {version!r} at {folder} predates spared special "
                                  "tokens: prepare a new version")
            gradient = torch.load(folder / GRADIENT, weights_only=True)
            pair = ProxyPair(load_causal_lm(folder / "proxy"), gradient, epsilon, meta["spared"])
            self._pairs[key] = pair
            while len(self._pairs) > self.keep:
                self._pairs.popitem(last=False)
            return pair


class AntidistillationProcessor(LogitsProcessor):
    """Tilts the teacher's logits so that after the sampler divides by ``τ`` the distribution is
    ``softmax(z / τ + λ Δ)`` over the tokens the pair does not spare, whose total probability stays the
    teacher's; spared (special) tokens keep the teacher's probability exactly (greedy, ``τ = 0``: ``τ`` is 1).

    Each row of ``input_ids`` is one unpadded sequence (as the lab server's decoding loop passes them); the
    proxies' KV caches are kept per sequence, so a row that grows by one token costs two one-token passes.
    """

    def __init__(self, pair: ProxyPair, lam: float, temperature: float = 1.0) -> None:
        self.pair, self.lam = pair, lam
        self.temperature, self.greedy = (temperature, False) if temperature > 0 else (1.0, True)
        self._states: OrderedDict[tuple[int, ...], tuple[Any, Any]] = OrderedDict()
        self.ready: dict[tuple[int, ...], torch.Tensor] = {}  # Δ computed ahead, batched (``Prefetch``)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.lam == 0:
            return scores
        if scores.shape[-1] != self.pair.vocab:
            raise ConfigError(f"the antidistillation proxy has a vocabulary of {self.pair.vocab} tokens and the "
                              f"model {scores.shape[-1]}: prepare the proxy with the served model's tokenizer")
        rows = torch.stack([self._delta([int(i) for i in row]) for row in input_ids])
        return tilt(scores, rows, lam=self.lam, temperature=self.temperature,  # type: ignore[return-value]
                    free=self.pair.free, greedy=self.greedy)

    def _delta(self, ids: list[int]) -> torch.Tensor:
        key = tuple(ids)
        if key in self.ready:
            return self.ready[key]
        state = self._states.pop(key[:-1], None)  # a cache grows in place: each is continued once
        delta, after = self.pair.delta(ids, state)
        self._states[key] = after
        while len(self._states) > _STATES:
            self._states.popitem(last=False)
        return delta


def tilt(scores: torch.Tensor, delta: torch.Tensor, *, lam: float, temperature: float, free: torch.Tensor,
         greedy: bool = False) -> torch.Tensor:
    """``τ · (z/τ + λΔ + c)`` on the ``free`` tokens, ``z`` elsewhere, with ``c`` per row such that the free tokens'
    total probability after dividing by ``τ`` is the teacher's (a spared token's probability never changes).

    ``greedy``: the teacher's own choice between a spared token and an ordinary one is kept (a row whose
    argmax is spared is left as it is; otherwise the spared tokens are ruled out and the tilted argmax of the
    ordinary ones wins). Mass alone would not keep it: a tilt that gathers the ordinary tokens' mass on one
    of them can lift it above a spared token the teacher preferred.

    >>> z = torch.tensor([[0.0, 0.0, 0.0]]); free = torch.tensor([True, True, False])
    >>> p = torch.softmax(tilt(z, torch.tensor([[1.0, -1.0, -9.0]]), lam=1.0, temperature=1.0, free=free), -1)
    >>> [round(float(x), 3) for x in p[0]]
    [0.587, 0.079, 0.333]
    """
    base = scores.float() / temperature
    tilted = base + lam * delta.to(base.dtype)
    shift = torch.logsumexp(base[:, free], -1, keepdim=True) - torch.logsumexp(tilted[:, free], -1, keepdim=True)
    shift = torch.nan_to_num(shift, nan=0.0, posinf=0.0, neginf=0.0)  # no free token left: nothing to keep
    out = torch.where(free, tilted + shift, base) * temperature
    if greedy:
        spared_first = ~free[base.argmax(-1)]
        out = torch.where(spared_first[:, None], scores.float(), torch.where(free, out, float("-inf")))
    return out.to(scores.dtype)


class _Batched:
    """``Δ`` for several sequences at once: the proxies' passes batched like the teacher's (left-padded, one KV
    cache per proxy), one token per sequence per step."""

    def __init__(self, pair: ProxyPair, prompts: Sequence[Sequence[int]]) -> None:
        self.pair = pair
        width = max(len(p) for p in prompts)
        self.feed = torch.zeros((len(prompts), width), dtype=torch.long)
        self.mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for i, p in enumerate(prompts):
            self.feed[i, width - len(p):] = torch.tensor(list(p))
            self.mask[i, width - len(p):] = 1
        self.positions = (self.mask.cumsum(-1) - 1).clamp(min=0)
        self.lengths = [len(p) for p in prompts]
        self.past: tuple[Any, Any] = (None, None)

    def deltas(self) -> torch.Tensor:
        """``Δ`` after each sequence as fed so far, one row per sequence."""
        logprobs, caches = [], []
        with torch.inference_mode():
            for model, past in zip((self.pair.plus, self.pair.minus), self.past, strict=True):
                out = model(input_ids=self.feed, attention_mask=self.mask, position_ids=self.positions,
                            use_cache=True, **{self.pair._cache_arg: past})
                logprobs.append(torch.log_softmax(out.logits[:, -1].float(), dim=-1))
                caches.append(getattr(out, "cache", None) or getattr(out, "past_key_values", None))
        self.past = (caches[0], caches[1])
        return (logprobs[0] - logprobs[1]) / (2 * self.pair.epsilon)

    def advance(self, tokens: Sequence[int | None]) -> None:
        """Feed each sequence its next token (None: it did not grow; its row is masked and never read)."""
        self.feed = torch.tensor([[t if t is not None else 0] for t in tokens], dtype=torch.long)
        grew = torch.tensor([[int(t is not None)] for t in tokens], dtype=torch.long)
        self.mask = torch.cat([self.mask, grew], dim=1)
        self.positions = torch.tensor([[min(n, self.pair.context - 1)] for n in self.lengths], dtype=torch.long)
        self.lengths = [n + (t is not None) for n, t in zip(self.lengths, tokens, strict=True)]


class Prefetch:
    """Computes ``Δ`` for every row of a decoding batch whose processors tilt by antidistillation, one batched
    pass per proxy and step instead of one per row, and hands each processor its rows' values ahead of time.

    The caller (``lab.batching``) calls ``step()`` before decoding starts and after each step's events, with the
    tokens the rows emitted (``(row, token)``, token None when the row ended). Rows it cannot batch (past the
    proxy's context) are left to the processors, which compute them one by one.
    """

    def __init__(self, prompts: Sequence[Sequence[int]], processors: Sequence[Sequence[Any]],
                 max_tokens: Sequence[int]) -> None:
        self.ids = [list(p) for p in prompts]
        self.live = set(range(len(prompts)))
        self.groups: list[tuple[list[int], list[AntidistillationProcessor], _Batched]] = []
        by_pair: dict[int, tuple[ProxyPair, list[int]]] = {}
        for i, procs in enumerate(processors):
            for proc in procs:
                if (isinstance(proc, AntidistillationProcessor) and proc.lam != 0
                        and len(self.ids[i]) + max_tokens[i] <= proc.pair.context):
                    by_pair.setdefault(id(proc.pair), (proc.pair, []))[1].append(i)
        for pair, rows in by_pair.values():
            procs = [p for i in rows for p in processors[i] if isinstance(p, AntidistillationProcessor)
                     and p.pair is pair]
            self.groups.append((rows, procs, _Batched(pair, [self.ids[i] for i in rows])))

    def __bool__(self) -> bool:
        return bool(self.groups)

    def step(self, events: Sequence[tuple[int, int | None]] = ()) -> None:
        grew: dict[int, int] = {}
        for i, token in events:
            if token is None:
                self.live.discard(i)
            else:
                grew[i] = token
                self.ids[i].append(token)
        for rows, procs, batched in self.groups:
            if not self.live.intersection(rows):
                continue
            if events:
                batched.advance([grew.get(i) if i in self.live else None for i in rows])
            deltas = batched.deltas()
            for proc in procs:
                proc.ready = {}
            for k, i in enumerate(rows):
                if i in self.live:
                    for proc in procs:
                        proc.ready[tuple(self.ids[i])] = deltas[k]


def _number(spec: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{spec} must be a finite number, got {value!r}")
    return float(value)


def processor_factory(*, version: object = None, epsilon: object = DEFAULT_EPSILON, proxies: ProxyStore | None = None,
                      temperature: float = 1.0, **params: object) -> AntidistillationProcessor:
    """The ``antidistillation`` processor of a request: ``lambda`` (≥ 0), ``epsilon`` (> 0), ``version``."""
    if set(params) - {"lambda"}:
        raise ValueError(f"unknown parameters {sorted(set(params) - {'lambda'})}; it takes lambda, epsilon, version")
    if "lambda" not in params:
        raise ValueError("missing 'lambda' (the strength of the tilt, >= 0)")
    lam, eps = _number("lambda", params["lambda"]), _number("epsilon", epsilon)
    if lam < 0:
        raise ValueError(f"lambda must be >= 0 (a negative lambda would make traces easier to distill), got {lam}")
    if not 0 < eps <= 1:
        raise ValueError(f"epsilon must be in (0, 1], got {eps}")
    if version is None:
        raise ValueError("missing 'version' (the prepared proxy student to use)")
    check_version(version)
    if proxies is None:
        raise ConfigError("this server has no antidistillation proxies (start it with --antidistillation DIR)")
    return AntidistillationProcessor(proxies.pair(str(version), eps), lam, temperature)
