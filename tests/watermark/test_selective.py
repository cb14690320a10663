"""Entropy-selective marking (SWEET): certain steps are left alone, uncertain ones marked and scored."""

from __future__ import annotations

import torch

from distillguard.lab.tokenizer import train_tokenizer
from distillguard.lab.train import ModelSpec, fresh_model
from distillguard.watermark.base import load_scheme
from distillguard.watermark.prf import greenlist
from distillguard.watermark.selective import entropies, entropies_batch, entropy, keep_uncertain


def test_processor_marks_only_rows_at_or_above_the_threshold() -> None:
    scheme = load_scheme("greenlist", {"key": 9, "context_width": 1, "delta": 3.0, "entropy_threshold": 1.0})
    vocab = 64
    certain = torch.full((vocab,), -20.0)
    certain[5] = 10.0  # entropy ~0
    uncertain = torch.zeros(vocab)  # entropy ln 64 ~ 4.2
    scores = torch.stack([certain, uncertain])
    ids = torch.tensor([[7], [7]])
    out = scheme.processor(vocab)(ids, scores.clone())
    assert torch.equal(out[0], certain)
    green = greenlist(9, [7], vocab=vocab, gamma=0.25)
    assert torch.allclose(out[1][green], torch.full((int(green.sum()),), 3.0))
    assert torch.allclose(out[1][~green], torch.zeros(int((~green).sum())))
    assert float(entropy(scores)[0]) < 1e-3


def test_entropies_follow_the_text_and_batch_like_one_at_a_time() -> None:
    tok = train_tokenizer(["12 + 7 = 19", "so write 9 carry 1"] * 5, vocab_size=300)
    model = fresh_model(ModelSpec(layers=1, width=16, heads=2, context=64), tok, seed=1).model
    prompt, text = [3, 40, 41], [42, 43, 44, 45]
    alone = entropies(model, prompt, text)
    assert len(alone) == len(text)
    batched = entropies_batch(model, [(prompt, text), ([3], [50, 51])])
    assert torch.allclose(torch.tensor(batched[0]), torch.tensor(alone), atol=1e-5)
    assert len(batched[1]) == 2
    assert keep_uncertain(model, prompt_ids=prompt, token_ids=text, threshold=0.0) == [True] * 4
    assert keep_uncertain(model, prompt_ids=prompt, token_ids=text, threshold=1e9) == [False] * 4


def test_texts_longer_than_the_context_are_read_in_windows() -> None:
    tok = train_tokenizer(["12 + 7 = 19"] * 5, vocab_size=300)
    model = fresh_model(ModelSpec(layers=1, width=16, heads=2, context=32), tok, seed=1).model
    text = [40 + i % 50 for i in range(150)]
    got = entropies_batch(model, [([3, 4], text), ([], text[:10])])
    assert len(got[0]) == 150 and len(got[1]) == 10 and got[1][0] == float("inf")
