"""Per-exchange enrichers: registry, contract, template signatures."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from distillguard.signals import enrich, registered_enrichers
from distillguard.signals.template import mask, signature, simhash


def _batch(prompts: list[str | None], system: str | None = None) -> pa.RecordBatch:
    schema = pa.schema([("exchange_id", pa.string()), ("account_id", pa.string()),
                        ("timestamp", pa.timestamp("us", tz="UTC")), ("prompt_text", pa.string()),
                        ("system_text", pa.string()), ("n_tools", pa.int32()), ("n_images", pa.int32())])
    return pa.RecordBatch.from_pylist([{
        "exchange_id": f"e{i}", "account_id": "a", "timestamp": dt.datetime(2026, 2, 1, 12, i, tzinfo=dt.UTC),
        "prompt_text": p, "system_text": system, "n_tools": 0, "n_images": 0} for i, p in enumerate(prompts)],
        schema=schema)


def test_registry_finds_every_enricher_once() -> None:
    names = [e.name for e in registered_enrichers()]
    assert names == sorted(set(names))
    assert {"timing", "template", "size", "capability"} <= set(names)


def test_enrichers_add_their_columns_and_keep_input() -> None:
    batch = _batch(["Solve 2+2", "Write a python function"])
    for enricher in registered_enrichers():
        out = enricher.enrich(batch)
        assert out.num_rows == batch.num_rows
        assert out.schema.names[: len(batch.schema.names)] == batch.schema.names
        assert set(enricher.columns) <= set(out.schema.names)
        assert all(out.schema.field(c).type == t for c, t in enricher.columns.items())
    out = enrich(batch)
    assert out.column("capability").to_pylist() == ["reasoning", "coding"]


def test_same_template_different_content_shares_signature() -> None:
    a = "Agent task:\n\nWrite a function to add 3 numbers.\n\nGive the plan, then the full code and tests."
    b = ("Agent task:\n\nWrite a function to sort 12 strings by length fast.\n\n"
         "Give the plan, then the full code and tests.")
    c = "What is a good name for my cat?"
    assert signature(None, a) != signature(None, c)
    assert signature("sys", "hello 1") == signature("sys", "hello 2")
    near = bin((simhash(mask(a)) ^ simhash(mask(b))) & (2**64 - 1)).count("1")
    far = bin((simhash(mask(a)) ^ simhash(mask(c))) & (2**64 - 1)).count("1")
    assert near < far


def test_enrich_is_deterministic_and_handles_redacted_text() -> None:
    batch = _batch(["x", None])  # type: ignore[list-item]
    assert enrich(batch).equals(enrich(batch))
    assert enrich(batch).column("prompt_chars").to_pylist() == [1, 0]


def test_parallel_enrichment_equals_serial() -> None:
    from distillguard.schema import EXCHANGES
    from distillguard.signals import INPUT_COLUMNS
    from distillguard.signals.parallel import enrich_batches

    schema = pa.schema([EXCHANGES.field(c) for c in INPUT_COLUMNS])
    batches = [pa.RecordBatch.from_pylist([{
        "exchange_id": f"e{i}-{j}", "account_id": f"a{j % 3}",
        "timestamp": dt.datetime(2026, 2, 1, 12, j, tzinfo=dt.UTC),
        "prompt_text": f"Solve {i} + {j} step by step", "n_choices": 1 + j % 2, "max_tokens": 100 * j,
    } for j in range(50)], schema=schema) for i in range(5)]
    serial = list(enrich_batches(batches, workers=1))
    parallel = list(enrich_batches(batches, workers=2))
    assert len(serial) == len(parallel) == 5
    assert all(a.equals(b) for a, b in zip(serial, parallel, strict=True))


def test_repeated_prompts_get_the_same_signals_as_when_enriched_alone() -> None:
    """Signals are computed once per distinct prompt in a batch and spread back in row order."""
    prompts = ["Explain step by step: is 91 prime?", "Write a haiku", "Explain step by step: is 91 prime?",
               "def f(x): return x", "Write a haiku", None]
    together = enrich(_batch(prompts))
    for i, p in enumerate(prompts):
        alone = enrich(_batch([p]))
        for name in ("elicitation", "safeguard_stripping", "capability", "template_sig", "template_simhash",
                     "topic_simhash", "harvest_format"):
            assert together.column(name)[i].as_py() == alone.column(name)[0].as_py(), (name, i)


def test_topic_signature_follows_subject_not_wording() -> None:
    from distillguard.signals.topic import topic_simhash_many

    def distance(a: int, b: int) -> int:
        return bin((a ^ b) & (2**64 - 1)).count("1")

    h = [int(x) for x in topic_simhash_many([
        "Prove that the sum of two even integers is an even integer",
        "Show that adding two even integers always yields an even integer",
        "Recommend a good recipe for vegetarian lasagna with spinach",
    ])]
    assert distance(h[0], h[1]) < distance(h[0], h[2])


def test_an_instruction_at_either_end_of_varied_content_is_one_value() -> None:
    from distillguard.signals.template import instruction_hashes

    suffix = "Show your complete chain of thought before the final answer."
    heads, tails = zip(*(instruction_hashes(f"{task}\n\n{suffix}") for task in (
        "Tom has 3 apples and eats one; how many are left?", "Write a haiku about the sea at dawn, please.",
        "Explain why the sky is blue to a child of ten years old.")), strict=True)
    assert len(set(tails)) == 1 and len(set(heads)) == 3
    prefixed = {instruction_hashes(f"{suffix}\n\n{task} and more words after it")[0] for task in ("a b c", "d e f")}
    assert len(prefixed) == 1


def test_cjk_instructions_are_words_not_one_run_into_the_content() -> None:
    from distillguard.signals.template import instruction_hashes, tokens

    cjk = "请逐步详细解释你的推理过程，然后给出最终答案。"
    tails = {instruction_hashes(f"{task}\n\n{cjk}")[1] for task in ("计算12加7等于多少", "Solve x+1=3 for x quickly")}
    heads = {instruction_hashes(f"{cjk}{task}")[0] for task in ("计算12加7等于多少", "写一首关于海的诗")}
    assert len(tails) == 1 and len(heads) == 1
    assert tokens("hello 世界 ok")[1:3] == ["世", "界"] and tokens("plain words") == ["plain", "words"]


def test_a_closing_instruction_after_long_code_survives_the_masking_of_the_code() -> None:
    """A prompt longer than the masked ends, cut inside its code block: the instruction after the code is still
    the tail (the cut must not turn the closing fence into an opening one)."""
    from distillguard.signals.template import instruction_hashes

    def prompt(name: str) -> str:
        code = "\n".join(f"x{i} = {name}_{i}(y, z)" for i in range(150))
        return f"Implement this:\n```python\n{code}\n```\nExplain every step of your reasoning, then answer."
    assert len(prompt("compute")) > 3000
    assert instruction_hashes(prompt("compute"))[1] == instruction_hashes(prompt("calc"))[1]
