"""The enricher contract shared by every per-exchange signal."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Sequence
from typing import ClassVar, TypeVar

import numpy as np
import pyarrow as pa

H = TypeVar("H", bound=Hashable)


class Enricher(ABC):
    """Adds columns to an exchange batch; pure, stateless, no I/O.

    Subclasses set ``name`` and ``adds`` (the columns they add) and implement
    ``enrich``. They must not drop or change the columns they receive.
    """

    name: ClassVar[str]
    adds: ClassVar[tuple[str, ...]]
    abstract: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls.abstract = "name" not in cls.__dict__

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


def per_distinct(values: Sequence[H], fn: Callable[[list[H]], np.ndarray]) -> np.ndarray:
    """``fn`` computed once per distinct value of ``values``, spread back to every row.

    Traffic repeats itself (retries, ``n`` samples, evaluation sweeps, shared
    system prompts), and the text classifiers cost tens of microseconds a row,
    so each distinct input is scored once per batch.

    >>> per_distinct(["a", "b", "a"], lambda xs: np.array([len(x) * 10 for x in xs])).tolist()
    [10, 10, 10]
    """
    unique, inverse = distinct(values)
    out: np.ndarray = np.asarray(fn(unique))[inverse] if len(values) else np.asarray(fn([]))
    return out


def distinct(values: Sequence[H]) -> tuple[list[H], np.ndarray]:
    """The distinct values in first-seen order, and each row's index into them.

    >>> distinct(["a", "b", "a"])[1].tolist()
    [0, 1, 0]
    """
    index: dict[H, int] = {}
    inverse = np.fromiter((index.setdefault(v, len(index)) for v in values), dtype=np.int64, count=len(values))
    return list(index), inverse
