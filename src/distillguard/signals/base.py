"""The enricher contract shared by every per-exchange signal."""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

H = TypeVar("H", bound=Hashable)


class Enricher(ABC):
    """Adds columns to an exchange batch; pure, stateless, no I/O.

    Subclasses set ``name`` and ``columns`` (each column they add and its Arrow
    type, read-only: the signals table is built from these) and implement ``enrich``; ``after``
    names the column theirs follow in the table (default: at the end). They must
    not drop or change the columns they receive. Their only state is ``memo``, a
    memory of their own results per input.
    """

    name: ClassVar[str]
    columns: ClassVar[Mapping[str, pa.DataType]]
    after: ClassVar[str | None] = None
    abstract: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls.abstract = "name" not in cls.__dict__
        if not cls.abstract and not getattr(cls, "columns", None):
            raise TypeError(f"enricher {cls.__qualname__} declares no columns (name → Arrow type)")

    def __init__(self) -> None:
        self.memo: Memo[Any] = Memo()

    @abstractmethod
    def enrich(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """Return ``batch`` with this enricher's columns appended."""


def with_columns(batch: pa.RecordBatch, columns: dict[str, pa.Array]) -> pa.RecordBatch:
    """``batch`` plus ``columns`` (replacing any of the same name)."""
    for name, values in columns.items():
        if name in batch.schema.names:
            batch = batch.set_column(batch.schema.get_field_index(name), name, values)
        else:
            batch = batch.append_column(name, values)
    return batch


def column(batch: pa.RecordBatch, name: str, type_: pa.DataType | None = None) -> pa.Array:
    """``batch``'s column ``name``, or nulls (``type_``, default int64) where it has none."""
    if name in batch.schema.names:
        return batch.column(name)
    return pa.nulls(batch.num_rows, type_ or pa.int64())


def per_distinct(
    columns: pa.Array | Sequence[pa.Array], fn: Callable[[list[Any]], np.ndarray], memo: Memo[Any] | None = None
) -> np.ndarray:
    """``fn`` computed once per distinct row of ``columns``, spread back to every row.

    ``fn`` receives the distinct values (one column) or tuples of values
    (several). Traffic repeats itself (retries, ``n`` samples, evaluation
    sweeps, shared system prompts), and the text classifiers cost tens of
    microseconds a row, so each distinct input is scored once per batch, and
    with ``memo`` once per process while it stays in the memo.

    >>> per_distinct(pa.array(["a", "bb", "a"]), lambda xs: np.array([len(x) * 10 for x in xs])).tolist()
    [10, 20, 10]
    >>> per_distinct([pa.array(["a", "a"]), pa.array([1, 2])], lambda ks: np.array([k[1] for k in ks])).tolist()
    [1, 2]
    """
    cols = [columns] if isinstance(columns, pa.Array) else list(columns)
    keys, inverse = _distinct_keys(cols)
    found = memo.apply(keys, fn) if memo is not None else np.asarray(fn(keys))
    out: np.ndarray = found[inverse]
    return out


_recent: deque[tuple[list[pa.Array], list[Any], np.ndarray]] = deque(maxlen=4)


def _distinct_keys(cols: list[pa.Array]) -> tuple[list[Any], np.ndarray]:
    """The distinct keys of ``cols`` and each row's index into them, shared between enrichers.

    Several enrichers read the same column of a batch; the last few answers are
    kept with the arrays they came from (holding them keeps their buffers'
    addresses from being reused), so each batch's prompts are encoded and
    turned into Python strings once, and the strings' cached hashes make every
    memo lookup after the first cheap.
    """
    for arrays, keys, inverse in _recent:
        if len(arrays) == len(cols) and all(_same(a, b) for a, b in zip(arrays, cols, strict=True)):
            return keys, inverse
    first, inverse = distinct_rows(cols)
    taken = [c.take(pa.array(first)).to_pylist() for c in cols]
    keys = taken[0] if len(cols) == 1 else list(zip(*taken, strict=True))
    _recent.append((cols, keys, inverse))
    return keys, inverse


def _same(a: pa.Array, b: pa.Array) -> bool:
    return a is b or (a.type == b.type and a.offset == b.offset and len(a) == len(b) and all(
        (x.address if x is not None else 0) == (y.address if y is not None else 0)
        for x, y in zip(a.buffers(), b.buffers(), strict=True)))


def distinct_rows(columns: Sequence[pa.Array]) -> tuple[np.ndarray, np.ndarray]:
    """The first row of each distinct combination of ``columns``, and each row's index into them.

    Arrow hashes the values in C++ (``dictionary_encode``), so no Python
    string is made for a repeated value.

    >>> first, inverse = distinct_rows([pa.array(["a", "b", "a", None]), pa.array([1, 1, 1, 1])])
    >>> first.tolist(), inverse.tolist()
    ([0, 1, 3], [0, 1, 0, 2])
    """
    code = np.zeros(len(columns[0]), dtype=np.int64)
    for column in columns:
        encoded = pc.dictionary_encode(column, null_encoding="encode")
        indices = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        # Re-number after each column, so codes stay below the row count and never overflow.
        code = np.unique(code * len(encoded.dictionary) + indices, return_inverse=True)[1]
    _, first, inverse = np.unique(code, return_index=True, return_inverse=True)
    return first, inverse


_MISSING = object()


class Memo(Generic[H]):
    """The results of one pure function per input, kept across batches (at most ``max_items``).

    Prompts recur across a whole log far more than within one batch (a benign
    application's fixed prompts, an evaluation set re-run, a campaign's repeated
    tasks), so enrichers remember what they scored. An input is remembered by
    its 64-bit ``hash`` (SipHash for text, keyed afresh in every process), so
    the memo holds no text: 300,000 entries take a few tens of MB. Two inputs
    share a hash with probability about n² / 2^65 (1e-8 for 300,000), the
    only way a result could be another input's. The oldest half goes when full.

    >>> memo = Memo(max_items=10)
    >>> calls = []
    >>> def score(xs):
    ...     calls.append(len(xs))
    ...     return np.array([len(x) for x in xs])
    >>> memo.apply(["ab", "c"], score).tolist(), memo.apply(["c", "def"], score).tolist(), calls
    ([2, 1], [1, 3], [2, 1])
    """

    def __init__(self, max_items: int = 300_000) -> None:
        self.max_items = max_items
        self.results: dict[int, object] = {}

    def apply(self, keys: list[H], fn: Callable[[list[H]], np.ndarray]) -> np.ndarray:
        """``fn(keys)``, computing only the keys not remembered."""
        hashes = [hash(k) for k in keys]
        get = self.results.get
        found = [get(h, _MISSING) for h in hashes]
        where = [i for i, v in enumerate(found) if v is _MISSING]
        computed = np.asarray(fn([keys[i] for i in where]))
        for i, value in zip(where, computed.tolist(), strict=True):
            found[i] = self.results[hashes[i]] = value
        out = np.array(found, dtype=computed.dtype)
        if len(self.results) > self.max_items:
            for h in list(itertools.islice(self.results, len(self.results) // 2)):
                del self.results[h]
        return out
