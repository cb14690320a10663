"""The enricher contract shared by every per-exchange signal."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import pyarrow as pa


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
