"""The lab's own tokenizer: byte-level BPE trained here with ``tokenizers``, wrapped for ``transformers``.

Byte-level, so any text (code, unicode, tool calls) encodes without unknown
tokens. Special tokens mark the chat roles and the reasoning span, and the
chat template turns OpenAI-style messages into the model's prompt, so the
teacher, the student and any Hugging Face model load and serve the same way.

>>> tok = train_tokenizer(["What is 12 + 7?", "12 + 7 = 19"], vocab_size=300)
>>> tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
'<|user|>\\nhi\\n<|assistant|>\\n'
>>> tok.decode(tok("12 + 7 = 19")["input_ids"])
'12 + 7 = 19'
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from distillguard.models.generate import THINK_CLOSE, THINK_OPEN

PAD, BOS, EOS = "<|pad|>", "<|bos|>", "<|eos|>"
ROLES = ("<|system|>", "<|user|>", "<|assistant|>", "<|tool|>")
SPECIAL = [PAD, BOS, EOS, *ROLES, THINK_OPEN, THINK_CLOSE]

# Messages → "<|role|>\ncontent\n" each; the generation prompt opens the assistant turn.
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def train_tokenizer(texts: Iterable[str], vocab_size: int = 2048) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on ``texts`` (deterministic for the same texts)."""
    raw = Tokenizer(models.BPE())
    # Digits are single tokens: arithmetic is learnable column by column, as the traces do it.
    raw.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False)])
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    raw.train_from_iterator(texts, trainer=trainer)
    tok = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=raw, pad_token=PAD, bos_token=BOS, eos_token=EOS,
        additional_special_tokens=[*ROLES, THINK_OPEN, THINK_CLOSE])
    tok.chat_template = CHAT_TEMPLATE
    return tok
