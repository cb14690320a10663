"""The green-mass key-permutation test: exact under the null, and it sees a suspect that leans green."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import torch

from distillguard.forensics.radioactivity import green_mass_test
from distillguard.watermark.greenlist import GreenList
from distillguard.watermark.prf import greenlist

VOCAB = 64


class _Model(torch.nn.Module):
    """A fixed next-token distribution per previous token, optionally leaning to a key's green tokens."""

    def __init__(self, lean_key: int | None = None, lean: float = 0.0) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.table = torch.randn(VOCAB, VOCAB)
        if lean_key is not None:
            for prev in range(VOCAB):
                self.table[prev, greenlist(lean_key, [prev], VOCAB, 0.25)] += lean
        self.config = SimpleNamespace(vocab_size=VOCAB, n_positions=128)

    def forward(self, input_ids: torch.Tensor, attention_mask: Any = None) -> SimpleNamespace:
        return SimpleNamespace(logits=self.table[input_ids])


def _texts() -> tuple[list[list[int]], list[list[bool]]]:
    gen = torch.Generator().manual_seed(1)
    texts = [torch.randint(0, VOCAB, (30,), generator=gen).tolist() for _ in range(20)]
    return texts, [[True] * 30 for _ in texts]


def test_a_suspect_identical_to_our_model_is_never_flagged() -> None:
    texts, keep = _texts()
    result = green_mass_test(GreenList(key=5, context_width=1), _Model(), _Model(), texts, keep, n_keys=50)
    assert result.p_value == 1.0 and result.n_scored == 20 * 29


def test_a_suspect_leaning_to_our_green_tokens_is_caught_and_not_under_another_key() -> None:
    texts, keep = _texts()
    suspect = _Model(lean_key=5, lean=0.3)
    caught = green_mass_test(GreenList(key=5, context_width=1), suspect, _Model(), texts, keep, n_keys=200)
    assert caught.p_value == 1 / 201  # no random key does as well as ours
    other = green_mass_test(GreenList(key=6, context_width=1), suspect, _Model(), texts, keep, n_keys=200)
    assert other.p_value > 0.01
