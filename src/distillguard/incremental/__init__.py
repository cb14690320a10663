"""Incremental scans: a store that keeps per-account, per-day aggregates and scans only what is new.

```
 traffic dir ──ledger──▶ new files only ──ingest──▶ exchanges
                                                      │ fresh: enrich exchanges without signals
                                                      ▼
      (account, day) pairs they fall in ──daily──▶ agg_* tables (mergeable per-day aggregates)
                                                      │ merge: features of the accounts that changed
                                                      ▼ links: evidence from the aggregates
                                     link → score → decide → publish over the window (window)
```

Modules: ``ledger`` (which files a store has read), ``window`` (the last N days), ``fresh``
(enrich what is new), ``daily`` (per-day aggregates), ``merge`` (features from them),
``links`` (link inputs from them), ``reference`` (the reference store, rebuilt when it
changes), ``scan`` (``incremental_scan``). Nothing is imported here, so that the scan pipeline
can use the leaf modules (``reference``, ``window``) without a cycle.
"""
