"""The green-mass test: valid under the null, and it sees a suspect that leans green."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from distillguard.forensics.radioactivity import green_mass, green_mass_test
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
                self.table[prev, greenlist(lean_key, [prev], vocab=VOCAB, gamma=0.25)] += lean
        self.config = SimpleNamespace(vocab_size=VOCAB, n_positions=128)

    def forward(self, input_ids: torch.Tensor, attention_mask: Any = None) -> SimpleNamespace:
        return SimpleNamespace(logits=self.table[input_ids])


def _texts() -> tuple[list[list[int]], list[list[bool]]]:
    gen = torch.Generator().manual_seed(1)
    # Token 0 is left out: under width 1 its seed is key * 0, the same green list under every key.
    texts = [torch.randint(1, VOCAB, (30,), generator=gen).tolist() for _ in range(20)]
    return texts, [[True] * 30 for _ in texts]


def test_a_suspect_identical_to_our_model_is_never_flagged() -> None:
    texts, keep = _texts()
    result = green_mass_test(GreenList(key=5, context_width=1), _Model(), reference=_Model(), texts=texts, keep=keep)
    assert result.p_value == 1.0 and result.n_scored == 20 * 29


def test_a_suspect_leaning_to_our_green_tokens_is_caught_and_not_under_another_key() -> None:
    texts, keep = _texts()
    suspect = _Model(lean_key=5, lean=0.3)
    caught = green_mass_test(GreenList(key=5, context_width=1), suspect, reference=_Model(), texts=texts, keep=keep)
    assert caught.p_value < 1e-12  # below any Monte Carlo resolution
    other = green_mass_test(GreenList(key=6, context_width=1), suspect, reference=_Model(), texts=texts, keep=keep)
    assert other.p_value > 0.01


def test_p_values_are_uniform_for_keys_the_suspect_never_saw() -> None:
    """A suspect that differs from our model (another seed), tested under 1,000 keys: valid at every level."""
    texts, keep = _texts()
    torch.manual_seed(3)
    suspect = _Model()
    suspect.table = suspect.table + 0.5 * torch.randn(VOCAB, VOCAB)
    keys = np.random.default_rng(0).integers(1, 2**62, size=1000)  # unrelated keys: no shared green lists
    mass = green_mass(suspect, _Model(), texts=texts, keep=keep, width=1, gamma=0.25)
    ps = np.array([mass.test(GreenList(key=int(k), context_width=1)).p_value for k in keys])
    for level in (0.01, 0.05, 0.2, 0.5):
        assert np.mean(ps <= level) <= level + 3 * np.sqrt(level * (1 - level) / len(ps))
    assert np.mean(ps <= 0.5) >= 0.5 - 3 * np.sqrt(0.25 / len(ps))  # not trivially conservative


def test_the_key_must_match_the_computed_width() -> None:
    texts, keep = _texts()
    mass = green_mass(_Model(), _Model(), texts=texts, keep=keep, width=1, gamma=0.25)
    with pytest.raises(ValueError, match="context width 1"):
        mass.test(GreenList(key=5, context_width=2))
