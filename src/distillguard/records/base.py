"""What every boundary record shares: validated on the way in, written back as it was set.

>>> from datetime import UTC, datetime
>>> class Stamp(Record):
...     at: Instant
...     note: str | None = None
>>> Stamp(at=datetime(2026, 2, 1, tzinfo=UTC)).as_json()
{'at': '2026-02-01T00:00:00+00:00'}
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, PlainSerializer, TypeAdapter, ValidationError

from distillguard.errors import InputError


def _iso(value: datetime) -> str:
    return value.isoformat()


Instant = Annotated[AwareDatetime, PlainSerializer(_iso, return_type=str)]
"""A moment with its time zone, written as Python's ``isoformat`` (``+00:00``, not ``Z``), as scans always wrote it."""


class Record(BaseModel):
    """A record that crosses a boundary (a file another program reads). Unknown fields are ignored on read."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    def as_json(self) -> dict[str, Any]:
        """The JSON object: fields in declared order; fields never set (absent when read, not given when built)
        are left out, so a record reads back as it was written."""
        return self.model_dump(mode="json", exclude_unset=True)


def dump_json(records: Record | Sequence[Record]) -> bytes:
    """``records`` as indented JSON (orjson, two spaces): the bytes of the scan's output files."""
    value = records.as_json() if isinstance(records, Record) else [r.as_json() for r in records]
    return orjson.dumps(value, option=orjson.OPT_INDENT_2)


R = TypeVar("R", bound=Record)
T = TypeVar("T")


def read_json(path: Path, shape: type[R]) -> R:
    """The record in the JSON file at ``path``; an ``InputError`` naming the file and the first problem."""
    return _read(path, TypeAdapter(shape), shape.__name__)


def read_json_list(path: Path, shape: type[R]) -> list[R]:
    """The records in the JSON file at ``path`` (a list of them)."""
    adapter: TypeAdapter[list[R]] = TypeAdapter(list[shape])  # type: ignore[valid-type]
    return _read(path, adapter, f"list of {shape.__name__}")


def _read(path: Path, adapter: TypeAdapter[T], what: str) -> T:
    try:
        return adapter.validate_json(Path(path).read_bytes())
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"])
        raise InputError(f"{path}: not a {what}: {where + ': ' if where else ''}{error['msg']}") from exc
