"""A tiny causal LM saved locally (built from a config, nothing downloaded) and a live server for it."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("torch")  # the lab extra: pip install -e '.[lab]'

@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from distillguard.lab.tokenizer import train_tokenizer

    out = tmp_path_factory.mktemp("tiny-model")
    texts = [f"What is {a} + {b}? <think>{a} + {b} = {a + b}</think>{a + b}" for a in range(30) for b in range(30)]
    tok = train_tokenizer(texts, vocab_size=400)
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tok), n_positions=128, n_embd=32, n_layer=2, n_head=2,
                        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    GPT2LMHeadModel(config).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def model_server(tiny_model_dir: Path) -> Iterator[str]:
    """Base URL (``http://127.0.0.1:PORT/v1``) of a real uvicorn server on loopback."""
    import uvicorn

    from distillguard.lab.serve import create_app, load_model

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(load_model(tiny_model_dir, "tiny")), host="127.0.0.1",
                                           port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("model server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/v1"
    server.should_exit = True
    thread.join(10)
