"""Prompt size in characters (tokens may be absent when usage is redacted)."""

from __future__ import annotations

from types import MappingProxyType

import pyarrow as pa
import pyarrow.compute as pc

from distillguard.signals.base import Enricher, with_columns


class SizeEnricher(Enricher):
    """Adds ``prompt_chars``: length of the last user turn (0 when redacted)."""

    name = "size"
    columns = MappingProxyType({"prompt_chars": pa.int64()})
    after = "output_tokens"

    def enrich(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        lengths = pc.fill_null(pc.utf8_length(batch.column("prompt_text")), 0)
        return with_columns(batch, {"prompt_chars": pc.cast(lengths, pa.int64())})
