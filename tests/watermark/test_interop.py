"""distillguard's schemes and the watermarking built into ``transformers``: same keys, same marks, both ways."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import (
    AutoModelForCausalLM,
    LogitsProcessorList,
    SynthIDTextWatermarkingConfig,
    WatermarkDetector,
    WatermarkingConfig,
)
from transformers.generation.logits_process import SynthIDTextWatermarkLogitsProcessor, WatermarkLogitsProcessor

from distillguard.watermark import GreenList, Tournament
from distillguard.watermark.prf import greenlist

KEY = 15485863
LAYER_KEYS = [654, 400, 836, 123, 340, 443, 597, 160, 57, 29, 590, 639, 13, 715, 468, 990, 966, 226, 324, 585,
              118, 504, 421, 521, 129, 669, 732, 225, 90, 960]


@pytest.fixture(scope="module")
def model(tiny_model_dir: Path) -> Any:
    return AutoModelForCausalLM.from_pretrained(tiny_model_dir, local_files_only=True).eval()


def _generate(model: Any, seed: int, **kwargs: Any) -> list[int]:
    torch.manual_seed(seed)
    prompt = torch.tensor([[model.config.bos_token_id, 5, 17, 33]])
    out = model.generate(prompt, attention_mask=torch.ones_like(prompt), do_sample=True, max_new_tokens=110,
                         min_new_tokens=110, pad_token_id=model.config.pad_token_id, **kwargs)
    return [int(x) for x in out[0, prompt.shape[1]:]]


def test_the_prf_is_transformers_green_list_and_synthid_g_values_bit_for_bit() -> None:
    hf = WatermarkLogitsProcessor(vocab_size=500, device="cpu", greenlist_ratio=0.25, hashing_key=KEY)
    for token in (1, 7, 123, 499):
        theirs = torch.zeros(500, dtype=torch.bool)
        theirs[hf._get_greenlist_ids(torch.tensor([3, token]))] = True
        assert torch.equal(theirs, greenlist(KEY, [token], vocab=500, gamma=0.25))
    synth = SynthIDTextWatermarkLogitsProcessor(ngram_len=5, keys=LAYER_KEYS, sampling_table_size=2**16,
                                                sampling_table_seed=0, context_history_size=1024, device="cpu")
    ids = torch.randint(0, 500, (1, 40), generator=torch.Generator().manual_seed(1))
    theirs_g = synth.compute_g_values(ids)[0]  # (36, 30)
    ours = Tournament(keys=LAYER_KEYS)
    from distillguard.watermark.prf import g_values

    contexts = ids[0].unfold(0, 5, 1)
    ours_g = g_values(ours.layer_keys, contexts[:, :4], tokens=contexts[:, 4:], table=ours.table)[:, 0, :]
    assert torch.equal(theirs_g, ours_g)


def test_transformers_green_list_text_is_detected_here_and_ours_there(model: Any) -> None:
    vocab = model.config.vocab_size
    config = WatermarkingConfig(greenlist_ratio=0.25, bias=2.5, hashing_key=KEY, seeding_scheme="lefthash",
                                context_width=1)
    theirs = _generate(model, 0, watermarking_config=config)
    scheme = GreenList(key=KEY, gamma=0.25, delta=2.5, context_width=1)
    assert scheme.detect(theirs, vocab).p_value < 1e-6
    plain = _generate(model, 0)
    assert scheme.detect(plain, vocab).p_value > 1e-3
    ours = _generate(model, 1, logits_processor=LogitsProcessorList([scheme.processor(vocab)]))
    detector = WatermarkDetector(model_config=model.config, device="cpu", watermarking_config=config)
    verdict = detector(torch.tensor([ours]), return_dict=True)
    assert bool(verdict.prediction[0]) and float(verdict.z_score[0]) > 4
    assert not bool(detector(torch.tensor([plain]), return_dict=True).prediction[0])


def test_transformers_synthid_text_is_detected_here_and_ours_scores_high_there(model: Any) -> None:
    vocab = model.config.vocab_size
    config = SynthIDTextWatermarkingConfig(keys=LAYER_KEYS, ngram_len=5)
    scheme = Tournament(keys=LAYER_KEYS, ngram_len=5)
    theirs = _generate(model, 2, watermarking_config=config)
    assert scheme.detect(theirs, vocab).p_value < 1e-6
    assert scheme.detect(_generate(model, 2), vocab).p_value > 1e-3
    ours = _generate(model, 3, logits_processor=LogitsProcessorList([scheme.processor(vocab)]))
    synth = SynthIDTextWatermarkLogitsProcessor(ngram_len=5, keys=LAYER_KEYS, sampling_table_size=2**16,
                                                sampling_table_seed=0, context_history_size=1024, device="cpu")
    mean_g = float(synth.compute_g_values(torch.tensor([ours])).float().mean())
    assert mean_g > 0.6  # transformers' own g-values see the mark (0.5 without it)
    assert scheme.detect(ours, vocab).p_value < 1e-6
