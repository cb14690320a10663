"""Time-of-exchange columns in engine-portable form (epoch seconds, hour, weekday)."""

from __future__ import annotations

from types import MappingProxyType

import pyarrow as pa
import pyarrow.compute as pc

from distillguard.signals.base import Enricher, with_columns


class TimingEnricher(Enricher):
    """Adds ``t_s`` (epoch seconds), ``hour_of_day``, ``day_of_week`` (0 = Monday), ``day_index``."""

    name = "timing"
    columns = MappingProxyType({
        "t_s": pa.float64(),  # epoch seconds, engine-portable arithmetic
        "hour_of_day": pa.int32(),
        "day_of_week": pa.int32(),
        "day_index": pa.int64(),  # days since epoch
    })
    after = "timestamp"

    def enrich(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        ts = batch.column("timestamp")
        micros = pc.cast(pc.cast(ts, pa.timestamp("us", tz="UTC")), pa.int64())
        # Not a safe cast: microseconds past 2**53 (beyond about 2255) lose sub-microsecond digits, not the row.
        t_s = pc.divide(pc.cast(micros, pa.float64(), safe=False), 1e6)
        return with_columns(batch, {
            "t_s": t_s,
            "hour_of_day": pc.cast(pc.hour(ts), pa.int32()),
            "day_of_week": pc.cast(pc.day_of_week(ts), pa.int32()),
            "day_index": pc.cast(pc.floor(pc.divide(t_s, 86400.0)), pa.int64()),
        })
