"""The canary test: does a suspect know the canaries our gateway sent to watched accounts?

Decoys make the null exact. Each real canary gets ``decoys`` look-alikes from the
same generator under fresh random keys; a model that never saw our answers
cannot tell them apart, so under the null the real canary's rank among its
decoys is uniform. Open setting: rank by the suspect's log-likelihood of the
phrase; the sum of the K ranks has an exactly counted null distribution. Closed
setting: count which markers appear in the suspect's outputs; given the total
number of markers seen, the real ones among them are hypergeometric.

>>> fakes = [[f"fake_{i}" for i in range(19)]]  # one canary, 19 decoys; only the canary is written
>>> round(canary_closed(["try the `sync_braivoutar` helper"], [{"marker": "sync_braivoutar"}], fakes).p_value, 3)
0.05
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from scipy.stats import hypergeom

from distillguard.gateway.canary import CanaryMaker, CanarySettings
from distillguard.stats import TestResult, rank_sum_test


def read_canaries(log_dir: Path) -> list[dict[str, Any]]:
    """Every canary the gateway recorded in ``LOG_DIR/exchanges/*.jsonl``, with its exchange and account."""
    found = []
    for seg in sorted(Path(log_dir).glob("exchanges/*.jsonl")):
        for line in seg.read_text().splitlines():
            record = json.loads(line)
            canary = (record.get("gateway") or {}).get("canary")
            if canary:
                found.append({**canary, "exchange_id": record["exchange_id"], "account_id": record["account_id"]})
    return found


def decoys_for(canaries: Sequence[dict[str, Any]], n: int, seed_key: str | None = None) -> list[list[dict[str, str]]]:
    """``n`` look-alike canaries per real one: same generator, same exchange id, fresh random keys."""
    keys = [seed_key + str(i) if seed_key else secrets.token_hex(16) for i in range(n)]
    makers = [CanaryMaker(CanarySettings(enabled=True, key=k)) for k in keys]
    return [[m.make(c.get("exchange_id", c["id"])).to_json() for m in makers] for c in canaries]


def canary_closed(outputs: Sequence[str], canaries: Sequence[dict[str, Any]],
                  decoy_markers: Sequence[Sequence[str]]) -> TestResult:
    """Markers appearing in the suspect's outputs: real ones against their decoys (hypergeometric tail)."""
    text = "\n".join(outputs)
    real = sum(c["marker"] in text for c in canaries)
    fake = sum(m in text for ms in decoy_markers for m in ms)
    total_real, total = len(canaries), len(canaries) + sum(len(ms) for ms in decoy_markers)
    seen = real + fake
    p = float(hypergeom.sf(real - 1, total, total_real, seen)) if seen else 1.0
    return TestResult(float(real), min(1.0, p), len(outputs),
                      f"hypergeometric exact upper tail: {real} of {total_real} canaries and {fake} of "
                      f"{total - total_real} decoys seen")


def canary_open(model: Any, tokenizer: Any, *, canaries: Sequence[dict[str, Any]],
                decoys: Sequence[Sequence[dict[str, str]]]) -> TestResult:
    """How far up its decoys the suspect ranks each canary: exact rank-sum test.

    A canary's rank counts the decoys the suspect finds at least as likely (ties
    count against the canary, so the test stays conservative); every rank is
    uniform under the null and their sum is small when the suspect learnt the
    canaries, even the ones it ranks second or third (which a "ranked first"
    count would throw away).
    """
    ranks = canary_ranks(model, tokenizer, canaries=canaries, decoys=decoys)
    n_decoys = len(decoys[0]) if decoys else 1
    first = sum(r == 0 for r in ranks)
    return rank_sum_test(ranks, n_decoys, f"; {first} of {len(ranks)} canaries ranked above all their decoys")


def canary_ranks(model: Any, tokenizer: Any, *, canaries: Sequence[dict[str, Any]],
                 decoys: Sequence[Sequence[dict[str, str]]]) -> list[int]:
    """Each canary's rank: how many of its decoys the suspect finds at least as likely (0: none)."""
    ranks = []
    for canary, fakes in zip(canaries, decoys, strict=True):
        scores = [_loglik(model, tokenizer, t) for t in [canary["text"], *(f["text"] for f in fakes)]]
        ranks.append(sum(s >= scores[0] for s in scores[1:]))
    return ranks


def _loglik(model: Any, tokenizer: Any, text: str) -> float:
    ids = torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"]])
    if ids.shape[1] < 2:
        return float("-inf")
    with torch.inference_mode():
        logits = model(input_ids=ids).logits[0, :-1].float()
    return float(torch.log_softmax(logits, -1).gather(1, ids[0, 1:, None]).sum())
