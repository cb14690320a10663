"""OpenAI-compatible chat completions over a local causal LM: ``distillguard lab serve``.

``POST /v1/chat/completions`` (streaming and not), ``POST /v1/completions`` (raw
prompt, not streamed) and ``GET /v1/models``, in the
shapes the official ``openai`` client expects, with the answer in ``content``
and the model's ``<think>`` span in ``reasoning_content``. A request may name
logits processors (``logits_processors``, via the client's ``extra_body``): how
watermarks and sampling defences plug in. Errors use the OpenAI error shape.

One model per server; concurrent requests (and the ``n`` choices of one) are
decoded together in batches on a background thread (``Batcher``), so the event
loop keeps serving and notices a client that disconnects, which stops its row.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from distillguard.errors import ConfigError
from distillguard.lab.antidistillation import ProxyStore
from distillguard.lab.batching import Batcher, TokenStream
from distillguard.lab.processors import build_processors
from distillguard.models.generate import Channels, Model, Sampling
from distillguard.models.load import load_model
from distillguard.watermark.keyring import Keyring

__all__ = ["create_app", "load_model", "serve"]  # load_model: where it lived before distillguard.models


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[dict[str, Any]] | None = None


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatRequest(BaseModel):
    """The subset of the Chat Completions request this server honours (unknown fields are ignored)."""

    model_config = ConfigDict(extra="ignore")
    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    n: int = Field(1, ge=1, le=16)
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    logits_processors: list[dict[str, Any]] | None = None


class CompletionRequest(BaseModel):
    """Legacy text completions: a raw ``prompt``, no chat template (not streamed by this server)."""

    model_config = ConfigDict(extra="ignore")
    model: str | None = None
    prompt: str
    max_tokens: int = Field(16, ge=1)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    seed: int | None = None
    stream: bool = False
    logits_processors: list[dict[str, Any]] | None = None


def _error(status: int, message: str, kind: str = "invalid_request_error", param: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": None}}, status)


def _text(content: str | list[dict[str, Any]] | None) -> str:
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if part.get("type") == "text")
    return content or ""


def create_app(model: Model, max_batch: int = 32, *, keyring: Keyring | None = None,
               proxies: ProxyStore | None = None) -> FastAPI:
    """The server's ASGI app; ``keyring`` (a ``watermark.Keyring``) backs ``{"name": "watermark", "version": ...}``,
    ``proxies`` (``lab.antidistillation.ProxyStore``) backs ``{"name": "antidistillation", "version": ...}``."""
    app = FastAPI(title="distillguard lab model server", docs_url=None, redoc_url=None)
    batcher = Batcher(model, max_batch)
    vocab = int(model.model.config.vocab_size)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ())[1:])
        return _error(400, f"{where or 'body'}: {first.get('msg', 'invalid request')}", param=where or None)

    def unknown_model(requested: str | None) -> JSONResponse | None:
        if requested in (None, model.name):
            return None
        return _error(404, f"the model {requested!r} does not exist; this server has {model.name!r}", param="model")

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": model.name, "object": "model", "created": 0,
                                             "owned_by": "distillguard-lab"}]}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok", "model": model.name}

    @app.post("/v1/completions", response_model=None)
    async def completions(req: CompletionRequest) -> Response:
        if (missing := unknown_model(req.model)) is not None:
            return missing
        if req.stream:
            return _error(400, "this server streams chat completions only; send stream=false", param="stream")
        try:
            processors = build_processors(req.logits_processors, vocab=vocab, keyring=keyring, proxies=proxies,
                                          temperature=req.temperature)
            prompt = [int(i) for i in model.tokenizer(req.prompt, add_special_tokens=False)["input_ids"]]
            sampling = Sampling(req.max_tokens, req.temperature, req.top_p, req.seed)
            model.check_fits(prompt, sampling)
        except ConfigError as exc:
            return _error(400, str(exc))
        tokens = batcher.submit(prompt, sampling, processors)
        try:
            ids = [t async for t in tokens]
        finally:
            tokens.close()
        finish = _finish_reason(len(ids), sampling)
        return JSONResponse({"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion",
                             "created": int(time.time()), "model": model.name,
                             "choices": [{"index": 0, "text": model.tokenizer.decode(ids), "finish_reason": finish,
                                          "logprobs": None}],
                             "usage": _usage(len(prompt), len(ids), 0)})

    @app.post("/v1/chat/completions", response_model=None)
    async def chat(req: ChatRequest) -> Response:
        if (missing := unknown_model(req.model)) is not None:
            return missing
        try:
            processors = build_processors(req.logits_processors, vocab=vocab, keyring=keyring, proxies=proxies,
                                          temperature=req.temperature)
            prompt = model.prompt_ids([{"role": m.role, "content": _text(m.content)} for m in req.messages])
            sampling = Sampling(max_tokens=req.max_completion_tokens or req.max_tokens or 256,
                                temperature=req.temperature, top_p=req.top_p, seed=req.seed)
            model.check_fits(prompt, sampling)
        except ConfigError as exc:
            return _error(400, str(exc))
        meta = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": model.name}
        if req.stream:
            usage = bool(req.stream_options and req.stream_options.include_usage)
            return StreamingResponse(_stream(model, batcher, req, prompt, sampling, processors, meta, usage),
                                     media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        choices, completion, reasoning = [], 0, 0
        streams = [batcher.submit(prompt, _seeded(sampling, i), processors) for i in range(req.n)]
        for index, tokens in enumerate(streams):
            ch = Channels(model.tokenizer)
            async for _ in _decode(tokens, ch):
                pass
            finish = _finish_reason(ch.generated, sampling)
            completion += ch.counts["content"] + ch.counts["reasoning_content"]
            reasoning += ch.counts["reasoning_content"]
            message: dict[str, Any] = {"role": "assistant", "content": ch.text("content")}
            if ch.counts["reasoning_content"]:
                message["reasoning_content"] = ch.text("reasoning_content")
            choices.append({"index": index, "message": message, "finish_reason": finish, "logprobs": None})
        return JSONResponse({**meta, "object": "chat.completion", "choices": choices,
                             "usage": _usage(len(prompt), completion, reasoning)})

    return app


def _seeded(sampling: Sampling, index: int) -> Sampling:
    """The ``index``-th of ``n`` samples: a different seed each, reproducible when the request has one."""
    if sampling.seed is None or index == 0:
        return sampling
    return Sampling(sampling.max_tokens, sampling.temperature, sampling.top_p, sampling.seed + index)


def _usage(prompt: int, completion: int, reasoning: int) -> dict[str, Any]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "completion_tokens_details": {"reasoning_tokens": reasoning}}


async def _decode(tokens: TokenStream, ch: Channels) -> AsyncIterator[list[tuple[str, str]]]:
    """Feed one completion's tokens into ``ch``; yield each token's text deltas.

    A caller that is cancelled (a client that disconnects) closes the stream, which stops its row.
    """
    try:
        async for token in tokens:
            yield ch.feed(token)
    finally:
        tokens.close()


def _finish_reason(generated: int, sampling: Sampling) -> str:
    return "length" if generated >= sampling.max_tokens else "stop"


def _sse(obj: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


async def _stream(
    model: Model, batcher: Batcher, req: ChatRequest, prompt: list[int], sampling: Sampling, processors: Any,
    meta: dict[str, Any], include_usage: bool,
) -> AsyncIterator[bytes]:
    """Server-sent events: a role chunk, one chunk per text delta, a finish chunk, usage, ``[DONE]``."""
    chunk = {**meta, "object": "chat.completion.chunk"}
    completion = reasoning = 0
    streams = [batcher.submit(prompt, _seeded(sampling, i), processors) for i in range(req.n)]
    try:
        for index, tokens in enumerate(streams):
            yield _sse({**chunk, "choices": [{"index": index, "delta": {"role": "assistant", "content": ""},
                                               "finish_reason": None}]})
            ch = Channels(model.tokenizer)
            async for deltas in _decode(tokens, ch):
                for channel, text in deltas:
                    yield _sse({**chunk, "choices": [{"index": index, "delta": {channel: text},
                                                       "finish_reason": None}]})
            completion += ch.counts["content"] + ch.counts["reasoning_content"]
            reasoning += ch.counts["reasoning_content"]
            finish = _finish_reason(ch.generated, sampling)
            yield _sse({**chunk, "choices": [{"index": index, "delta": {}, "finish_reason": finish}]})
    finally:
        for tokens in streams:  # a client gone mid-stream stops every row of its request
            tokens.close()
    if include_usage:
        yield _sse({**chunk, "choices": [], "usage": _usage(len(prompt), completion, reasoning)})
    yield b"data: [DONE]\n\n"


def serve(model_path: Path, *, host: str = "127.0.0.1", port: int = 8000, name: str | None = None,
          max_batch: int = 32, watermark_keys: Path | None = None, antidistillation: Path | None = None) -> None:
    """Load the model (and the watermark keyring) and serve it until interrupted.

    Antidistillation proxies are read from ``antidistillation`` (default: ``antidistillation/`` beside the model
    folder, where ``distillguard lab proxy`` writes them), each version on its first request.
    """
    keyring = Keyring.load(watermark_keys) if watermark_keys else None
    proxies = ProxyStore(antidistillation or Path(model_path).parent / "antidistillation")
    app = create_app(load_model(model_path, name), max_batch, keyring=keyring, proxies=proxies)
    uvicorn.run(app, host=host, port=port, log_level="info")
