"""Watermark detection power on the lab teacher's answers, and what the mark costs its accuracy.

    python benchmarks/watermark_power.py [--teacher lab-bench/teacher] [--tasks 600]

The teacher answers held-out tasks greedily, without a watermark and with each scheme's processor at a
few strengths; accuracy is checked answer by answer. Answers are then pooled in order (as one account's
harvest would be) until 200 (context, token) pairs are scored, and the exact p-value of each pool is
recorded. With an entropy threshold (SWEET) the green-list marks only steps where the teacher's own
next-token entropy reaches it, and the detector, holding the teacher, scores only those steps; the
choice of steps does not depend on the key, so the test stays exact. Target (watermark issue):
p < 1e-6 from at most 200 scored tokens at an accuracy loss under 2 points.
Writes benchmarks/results/watermark_power.{json,md}.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from _common import machine, write_result

from distillguard.lab.generate import Channels, Row, Sampling
from distillguard.lab.serve import load_model
from distillguard.lab.tasks import make_tasks
from distillguard.watermark.base import load_scheme, pairs
from distillguard.watermark.selective import entropies_batch

SETTINGS = [("greenlist", {"delta": 2.0}), ("greenlist", {"delta": 4.0}), ("greenlist", {"delta": 8.0}),
            ("tournament", {}), ("greenlist", {"delta": 2.0, "entropy_threshold": 0.7}),
            ("greenlist", {"delta": 4.0, "entropy_threshold": 0.7})]


def decode(model, prompts, processors_for):  # type: ignore[no-untyped-def]
    """Greedy (answer, prompt ids, generated token ids), 64 prompts at a time."""
    out = []
    for start in range(0, len(prompts), 64):
        chunk = prompts[start:start + 64]
        ids = [model.prompt_ids([{"role": "user", "content": p}]) for p in chunk]
        rows = [Row(i, Sampling(max_tokens=min(160, model.context - len(i)), temperature=0), processors_for())
                for i in ids]
        got: list[list[int]] = [[] for _ in chunk]
        for events in model.decode(rows):
            for r, token in events:
                if token is not None:
                    got[r].append(token)
        for prompt_ids, g in zip(ids, got, strict=True):
            ch = Channels(model.tokenizer)
            for t in g:
                ch.feed(t)
            out.append((ch.text("content").strip(), prompt_ids, g))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--teacher", type=Path, default=Path("lab-bench/teacher"))
    ap.add_argument("--tasks", type=int, default=600)
    args = ap.parse_args()
    teacher = load_model(args.teacher, "teacher")
    vocab = int(teacher.model.config.vocab_size)
    tasks = make_tasks(["add", "sub", "tool"], args.tasks, seed=31337)
    prompts = [t.prompt for t in tasks]
    plain = decode(teacher, prompts, _list)
    base_acc = sum(t.check(a) for t, (a, _, _) in zip(tasks, plain, strict=True)) / len(tasks)
    rows = []
    for name, params in SETTINGS:
        scheme = load_scheme(name, {"key": 55555, **params})
        marked = decode(teacher, prompts, lambda s=scheme: _list(s.processor(vocab)))
        acc = sum(t.check(a) for t, (a, _, _) in zip(tasks, marked, strict=True)) / len(tasks)
        width, threshold = scheme.context_width, params.get("entropy_threshold", 0.0)
        keeps = ([[h >= threshold for h in e] for e in entropies_batch(teacher.model, [(p, g) for _, p, g in marked])]
                 if threshold > 0 else [None] * len(marked))
        pools, current, n_answers, sizes = [], [], 0, []
        for (_, _, ids), keep in zip(marked, keeps, strict=True):
            current.append((ids, keep))
            n_answers += 1
            found = {p for seq, k in current for p in pairs(seq, width, keep=k)}
            if len(found) >= 200:
                pools.append(scheme.detect_pairs(sorted(found)[:200], vocab).p_value)
                sizes.append(n_answers)
                current, n_answers = [], 0
        needed = _until_detected(scheme, marked, keeps, vocab) if threshold > 0 else []
        row = {"scheme": name, **params, "accuracy": round(acc, 4),
               "median_pairs_to_1e-6": statistics.median(n for n, _ in needed) if needed else None,
               "median_answers_to_1e-6": statistics.median(a for _, a in needed) if needed else None,
               "accuracy_loss_points": round(100 * (base_acc - acc), 2),
               "pools": len(pools), "answers_per_pool": round(statistics.mean(sizes), 1) if sizes else None,
               "median_p": statistics.median(pools) if pools else None,
               "share_p_below_1e-6": round(sum(p < 1e-6 for p in pools) / len(pools), 3) if pools else None}
        rows.append(row)
        print(row, flush=True)
    result = {**machine(), "teacher": str(args.teacher), "tasks": len(tasks), "accuracy_unmarked": base_acc,
              "rows": rows}
    md = ["# Watermark power on the lab teacher", "",
          f"`python benchmarks/watermark_power.py --teacher {args.teacher} --tasks {args.tasks}`: the teacher answers "
          f"{len(tasks)} held-out tasks greedily (accuracy without a mark {base_acc:.3f}); its answers are pooled "
          "in order until 200 distinct (context, token) pairs are scored.", "",
          "| scheme | strength | accuracy (loss, points) | pools | answers per pool | median p | share p < 1e-6 "
          "| scored pairs (answers) to p < 1e-6, median |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        strength = f"delta {r['delta']:g}" if "delta" in r else "30 layers"
        if r.get("entropy_threshold"):
            strength += f", entropy >= {r['entropy_threshold']:g} nats"
        median = f"{r['median_p']:.2g}" if r["median_p"] is not None else "-"
        md.append(f"| {r['scheme']} | {strength} | {r['accuracy']:.3f} ({-r['accuracy_loss_points']:+.1f}) | "
                  f"{r['pools']} | {r['answers_per_pool']} | {median} | {r['share_p_below_1e-6']} | "
                  + (f"{r['median_pairs_to_1e-6']:g} ({r['median_answers_to_1e-6']:g}) |"
                     if r["median_pairs_to_1e-6"] is not None else "- |"))
    md += ["", "Target: p < 1e-6 from at most 200 scored tokens at an accuracy loss under 2 points. The "
           "teacher is certain at almost every step of a trace (the arithmetic) and free only where the trace "
           "words a step (one of several equivalent phrasings): a mark moves only those steps, and scoring every "
           "step dilutes them with pairs that carry no signal. The entropy-selective rows mark and score only "
           "the free steps; their distinct pairs accumulate slowly (the same few contexts precede the free "
           "steps), so the last column gives what detection needs when the answers are read in order."]
    write_result("watermark_power", result, "\n".join(md) + "\n")


def _until_detected(scheme, marked, keeps, vocab):  # type: ignore[no-untyped-def]
    """Walk the answers in order; each time the pooled pairs reach p < 1e-6, record (pairs, answers), restart."""
    found: set = set()  # type: ignore[type-arg]
    answers, needed = 0, []
    for (_, _, ids), keep in zip(marked, keeps, strict=True):
        answers += 1
        found |= set(pairs(ids, scheme.context_width, keep=keep))
        if found and scheme.detect_pairs(sorted(found), vocab).p_value < 1e-6:
            needed.append((len(found), answers))
            found, answers = set(), 0
    return needed


def _list(processor=None):  # type: ignore[no-untyped-def]
    from transformers import LogitsProcessorList

    return LogitsProcessorList([processor] if processor is not None else [])


if __name__ == "__main__":
    main()
