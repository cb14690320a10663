"""Radioactivity: is a student trained on a partly watermarked harvest detectably marked? And one that is not?

    python benchmarks/watermark_radioactivity.py [--teacher lab-bench/teacher] [--harvest 3000] [--queries 2000]
        [--context-width 2] [--workers 2]

1. The lab teacher answers ``--harvest`` prompts (sampled at temperature 1, as a dataset builder samples),
   once plainly and once through the green-list watermark (delta 4; marking only steps where its own
   entropy is at least 0.7 nats, which leaves the arithmetic alone). Context width 2: Sander et al.
   find width 1 the most radioactive, but this teacher's free choices follow few distinct tokens
   (28 scored contexts at width 1, 52 at width 2), and the test's power grows with the number of
   contexts: at a 5% share, green-mass p 0.0018 with width 1, 1.5e-6 with width 2.
2. For each watermarked share (0, 1, 2, 5, 10%) a harvest takes that share of its answers from the
   watermarked run and the rest from the plain one, and a student (the lab's default student
   architecture and training, with the teacher's tokenizer so that the open setting applies) is
   trained from scratch on it. More students at share 0 with other seeds, and students on plain
   harvests of their own (``--independent-nulls``: other prompts, answers sampled afresh), give the null.
3. Two open-setting tests on query texts (the teacher's plain answers to other prompts), only at the
   steps where the teacher was uncertain: Sander et al.'s (``radioactivity_open``: the student's argmax
   predictions, each (context, prediction) pair once, exact binomial p; share-0 students are also
   tested under random keys, whose p-values must be uniform), and the green-mass test
   (``forensics.radioactivity.GreenMass``: the student's probability on the key's green tokens minus the
   teacher's, summed per context; its exact null distribution is counted, so p-values have no floor;
   share-0 students are tested under random keys with it too).

Students train in ``--workers`` processes. Targets (watermark issue): the 5% student detected at
p < 1e-5 (curve for 1, 2, 10%); students on unwatermarked data not detected (p-values uniform across
seeds). Writes benchmarks/results/watermark_radioactivity.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import time
from pathlib import Path
from typing import Any

from _common import machine, write_result

from distillguard.lab.experiment import preset
from distillguard.lab.generate import Channels, Row, Sampling
from distillguard.lab.serve import load_model
from distillguard.lab.tasks import make_tasks
from distillguard.watermark.base import load_scheme

KEY = {"key": 271828183, "context_width": 1, "delta": 4.0, "entropy_threshold": 0.7, "version": "radioactivity"}
THRESHOLD = KEY["entropy_threshold"]
KINDS = ["add", "sub", "tool"]


def generate(teacher_dir: str, prompts: list[str], key: dict[str, Any] | None, seed: int
             ) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, generated ids) for each prompt, sampled at temperature 1, marked with ``key`` if given."""
    from transformers import LogitsProcessorList

    teacher = load_model(Path(teacher_dir), "teacher")
    vocab = int(teacher.model.config.vocab_size)
    scheme = load_scheme("greenlist", key) if key else None
    out = []
    for start in range(0, len(prompts), 64):
        ids = [teacher.prompt_ids([{"role": "user", "content": p}]) for p in prompts[start:start + 64]]
        rows = [Row(i, Sampling(max_tokens=min(160, teacher.context - len(i)), temperature=1.0,
                                seed=seed + start + n),
                    LogitsProcessorList([scheme.processor(vocab)] if scheme else []))
                for n, i in enumerate(ids)]
        got: list[list[int]] = [[] for _ in rows]
        for events in teacher.decode(rows):
            for r, token in events:
                if token is not None:
                    got[r].append(token)
        out += list(zip(ids, got, strict=True))
    return out


def generate_split(pool: Any, workers: int, teacher_dir: str, prompts: list[str], key: dict[str, Any] | None,
                   seed: int, stride: int) -> list[tuple[list[int], list[int]]]:
    """``generate`` over ``workers`` processes (round-robin shares, worker i seeded ``seed + stride * i``),
    answers back in prompt order."""
    parts = pool.starmap(generate, [(teacher_dir, prompts[i::workers], key, seed + stride * i)
                                    for i in range(workers)])
    return [parts[i % workers][i // workers] for i in range(len(prompts))]


def student_job(job: dict[str, Any]) -> dict[str, Any]:
    """Train one student on its harvest and run the radioactivity test on it (in a worker process)."""
    import torch
    from scipy.stats import kstest

    from distillguard.forensics.radioactivity import green_mass, predicted_pairs
    from distillguard.lab.evaluate import accuracy
    from distillguard.lab.train import Example, run_key, train_model

    torch.set_num_threads(job["threads"])
    teacher = load_model(Path(job["teacher"]), "teacher")
    cfg = preset("default")
    started = time.perf_counter()
    examples = [Example(*e) for e in job["examples"]]
    spec, settings = cfg.architecture.spec(), cfg.student.settings(job["seed"])
    meta = Path(job["out"]) / "distillguard-train.json"
    cached = meta.is_file() and json.loads(meta.read_text()).get("key") == run_key(examples, spec, settings=settings,
                                                                                     tokenizer=teacher.tokenizer)
    student = train_model(examples, spec, settings=settings, out=Path(job["out"]), tokenizer=teacher.tokenizer)
    vocab = int(teacher.model.config.vocab_size)
    key = job["key"]
    scheme = load_scheme("greenlist", key)
    found = predicted_pairs(student.model, job["queries"], width=scheme.context_width, keep=job["keep"])
    result = scheme.detect_pairs(found, vocab)
    row = {"share": job["share"], "seed": job["seed"], "harvest": job.get("harvest", "shared"),
           "p_value": result.p_value, "n_scored": result.n_scored,
           "green_share": round(result.statistic, 4)}
    mass = green_mass(student.model, teacher.model, texts=job["queries"], keep=job["keep"], width=scheme.context_width,
                      gamma=scheme.gamma)
    marked = mass.test(scheme)
    row |= {"green_mass_p": marked.p_value, "green_mass": round(marked.statistic, 3),
            "green_mass_contexts": len(mass.contexts)}
    if job["null_keys"]:  # the same student under keys it never saw: its p-values must be uniform
        rng = random.Random(job["seed"])
        others = [load_scheme("greenlist", {**key, "key": rng.getrandbits(62)}) for _ in range(job["null_keys"])]
        argmax = [o.detect_pairs(found, vocab) for o in others]
        masses = [mass.test(o) for o in others]
        for name, results in (("null_keys", argmax), ("null_keys_mass", masses)):
            ks = kstest([r.randomized(rng.random()) for r in results], "uniform")
            row |= {f"{name}_ks_p": round(float(ks.pvalue), 4),
                    f"{name}_below_0.01": sum(r.p_value <= 0.01 for r in results)}
        row["null_keys"] = job["null_keys"]
    eval_tasks = make_tasks(KINDS, 150, seed=99)
    return row | {"student_accuracy": round(accuracy(student, eval_tasks), 3), "student_cached": cached,
                  "seconds": round(time.perf_counter() - started, 1)}


def _answer_reasoning(tokenizer: Any, ids: list[int]) -> tuple[str, str | None]:
    """A training example's answer and reasoning (None when there is none) from generated ids."""
    answer, reasoning = split(tokenizer, ids)
    return answer, reasoning or None


def split(tokenizer: Any, ids: list[int]) -> tuple[str, str]:
    ch = Channels(tokenizer)
    for t in ids:
        ch.feed(t)
    return ch.text("content").strip(), ch.text("reasoning_content").strip()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--teacher", type=Path, default=Path("lab-bench/teacher"))
    ap.add_argument("--harvest", type=int, default=3000)
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--shares", default="0,0.01,0.02,0.05,0.1")
    ap.add_argument("--null-seeds", type=int, default=4, help="extra students at share 0, other seeds")
    ap.add_argument("--independent-nulls", type=int, default=4,
                    help="students on plain harvests of their own (other prompts and samples)")
    ap.add_argument("--null-keys", type=int, default=200, help="random keys each share-0 student is also tested with")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--context-width", type=int, default=2, help="the watermark's context width")
    ap.add_argument("--out", type=Path, default=None,
                    help="where students are kept (default benchmarks/_work/radioactivity-w<context width>)")
    args = ap.parse_args()
    args.out = args.out or Path(f"benchmarks/_work/radioactivity-w{args.context_width}")
    started = time.perf_counter()
    from distillguard.watermark.selective import entropies_batch

    teacher = load_model(args.teacher, "teacher")
    tasks = make_tasks(KINDS, args.harvest + args.queries, seed=7777)
    harvest_prompts = [t.prompt for t in tasks[:args.harvest]]
    query_prompts = [t.prompt for t in tasks[args.harvest:]]
    ctx = multiprocessing.get_context("spawn")
    key = {**KEY, "context_width": args.context_width}
    independent = [[t.prompt for t in make_tasks(KINDS, args.harvest, seed=424_242 + j)]
                   for j in range(args.independent_nulls)]
    with ctx.Pool(args.workers) as pool:
        def run(prompts: list[str], marked_with: dict[str, Any] | None, seed: int, stride: int
                ) -> list[tuple[list[int], list[int]]]:
            return generate_split(pool, args.workers, str(args.teacher), prompts, marked_with, seed, stride)

        plain = run(harvest_prompts, None, 0, 1000)
        marked = run(harvest_prompts, key, 0, 1000)
        queries = run(query_prompts, None, 555_000, 100_000)  # plain: key-independent queries
        # Null students of their own: other prompts, other samples (the share-0 seeds share one harvest).
        others = [run(prompts, None, 7_000_000 + 100_000 * j, 1000) for j, prompts in enumerate(independent)]
    generated_s = time.perf_counter() - started
    query_ids = [p + g for p, g in queries]
    keep = [[False] * len(p) + [h >= THRESHOLD for h in e]
            for (p, _), e in zip(queries, entropies_batch(teacher.model, queries), strict=True)]
    tok = teacher.tokenizer
    order = list(range(args.harvest))
    random.Random(0).shuffle(order)  # which answers come from the watermarked run
    jobs = []
    shares = [float(s) for s in args.shares.split(",")]
    runs = [(s, 0) for s in shares] + [(0.0, seed) for seed in range(1, args.null_seeds + 1)]
    for share, seed in runs:
        chosen = set(order[:round(share * args.harvest)])
        examples = []
        for i, prompt in enumerate(harvest_prompts):
            examples.append((prompt, *_answer_reasoning(tok, (marked if i in chosen else plain)[i][1])))
        jobs.append({"teacher": str(args.teacher), "examples": examples, "share": share, "seed": seed, "key": key,
                     "queries": query_ids, "keep": keep, "threads": 1 if args.workers > 1 else 2,
                     "null_keys": args.null_keys if share == 0 else 0,
                     "out": str(args.out / f"student-{share:g}-{seed}")})
    for j, (prompts, answers) in enumerate(zip(independent, others, strict=True)):
        examples = [(prompt, *_answer_reasoning(tok, ids)) for prompt, (_, ids) in zip(prompts, answers, strict=True)]
        jobs.append({"teacher": str(args.teacher), "examples": examples, "share": 0.0, "seed": 0, "key": key,
                     "queries": query_ids, "keep": keep, "threads": 1 if args.workers > 1 else 2,
                     "null_keys": 0, "harvest": f"independent {j + 1}",
                     "out": str(args.out / f"student-independent-{j + 1}")})
    with ctx.Pool(args.workers) as pool:
        rows = []
        for row in pool.imap_unordered(student_job, jobs):
            rows.append(row)
            print(row, flush=True)
    rows.sort(key=lambda r: (r["harvest"] != "shared", r["harvest"], r["seed"], r["share"]))
    scored_steps = sum(sum(k) for k in keep)
    result = {**machine(), "teacher": str(args.teacher), "harvest": args.harvest, "queries": args.queries,
              "key": {k: v for k, v in key.items() if k != "key"}, "kept_query_steps": scored_steps,
              "generation_seconds": round(generated_s, 1), "seconds": round(time.perf_counter() - started, 1),
              "workers": args.workers, "rows": rows}
    md = ["# Radioactivity of students trained on a partly watermarked harvest", "",
          f"`python benchmarks/watermark_radioactivity.py --harvest {args.harvest} --queries {args.queries} "
          f"--context-width {args.context_width} --workers {args.workers}` "
          f"({result['seconds'] / 60:.1f} min on {result['cpus']} CPUs; "
          f"{sum(r['student_cached'] for r in rows)} of {len(rows)} students loaded from an earlier run's cache). "
          f"The lab teacher answers {args.harvest:,} "
          "prompts sampled at temperature 1, plainly and through the green-list watermark (context width "
          f"{args.context_width}, "
          f"delta 4, only where its entropy is at least {THRESHOLD} nats); each student (the lab's default "
          "student, teacher's tokenizer) is trained from scratch on a harvest in which the given share of "
          "answers is watermarked. Queries: the teacher's plain answers to "
          f"{args.queries} other prompts, scored at the {scored_steps:,} steps where the teacher was "
          "uncertain. Argmax test (Sander et al.): the student's argmax predictions, each (context, "
          "prediction) pair once, exact binomial p-value. Green-mass test: the student's probability on the "
          "key's green tokens minus the teacher's, summed per context; its null distribution (each context's "
          "green list a random quarter of the vocabulary) is counted exactly, so p-values have no floor.", "",
          "| watermarked share | student seed | argmax: pairs scored | green share (null 0.25) | argmax p | "
          "green-mass p | student accuracy |", "|---:|---:|---:|---:|---:|---:|---:|"]
    shared = [r for r in rows if r["harvest"] == "shared"]
    for r in shared:
        md.append(f"| {r['share']:.0%} | {r['seed']} | {r['n_scored']} | {r['green_share']:.3f} | "
                  f"{r['p_value']:.2g} | {r['green_mass_p']:.2g} | {r['student_accuracy']:.3f} |")
    others = [r for r in rows if r["harvest"] != "shared"]
    if others:
        md += ["", f"Students on unwatermarked harvests of their own ({args.harvest:,} other prompts each, answers "
               "sampled afresh; the share-0 seeds above all share one harvest), under the key: green-mass p "
               + ", ".join(f"{r['green_mass_p']:.2g}" for r in others) + "; argmax p "
               + ", ".join(f"{r['p_value']:.2g}" for r in others) + "; accuracy "
               + ", ".join(f"{r['student_accuracy']:.3f}" for r in others) + "."]
    nulls = [r for r in rows if r.get("null_keys")]
    if nulls:
        md += ["", "Students on unwatermarked data under keys they never saw (each tested with "
               f"{nulls[0]['null_keys']} random keys; randomized p-values, Kolmogorov-Smirnov against uniform), "
               "argmax test / green-mass test: "
               + "; ".join(f"seed {r['seed']}: KS p {r['null_keys_ks_p']} / {r['null_keys_mass_ks_p']}, "
                           f"{r['null_keys_below_0.01']} / {r['null_keys_mass_below_0.01']} keys at p <= 0.01"
                           for r in nulls) + "."]
    md += ["", "Targets: the 5% student detected at p < 1e-5; students on unwatermarked data (share 0, "
           "every seed) not detected, their p-values uniform."]
    write_result("watermark_radioactivity", result, "\n".join(md) + "\n")


if __name__ == "__main__":
    main()
