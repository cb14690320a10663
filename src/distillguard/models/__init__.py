"""Local causal language models, below the lab, watermarks and forensics that all use them.

``load`` reads a Hugging Face model directory (nothing is downloaded),
``generate`` decodes rows together with per-row logits processors and splits
the reasoning span from the answer, and ``answers`` asks a model many prompts
greedily and compares answers. The modules import torch and transformers (the
``lab`` extra); nothing on the scan or gateway path imports this package.
"""
