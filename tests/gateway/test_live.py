"""Live thresholds, sampling-defence pass-through and structured logs, through a real gateway and model server."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from distillguard._logging import JsonFormatter
from distillguard.gateway.app import Gateway, create_app
from distillguard.gateway.config import GatewaySettings
from distillguard.gateway.keys import KeyStore
from distillguard.gateway.live import LiveSettings
from distillguard.gateway.policy import Policy
from distillguard.gateway.segments import SegmentLog


@pytest.fixture
def gateway(model_server: str, serve: Any, tmp_path: Path) -> Iterator[dict[str, Any]]:
    keys = KeyStore(tmp_path / "keys.db")
    secrets = {name: keys.add(name)[0] for name in ("harvester", "customer", "marked", "trusted")}
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps([
        {"subject": "account:marked", "action": "monitor", "reason": "watermark every answer",
         "logits_processors": [{"name": "repetition_penalty", "penalty": 1.3}]},
        {"subject": "account:trusted", "action": "allow", "reason": "known eval partner"},
    ]))
    settings = GatewaySettings(upstream=model_server, log_dir=tmp_path / "log", flush_interval=0.02,
                               live=LiveSettings(min_requests=4, elicitation_share=0.5, template_share=0.5,
                                                 action="throttle"))
    log = SegmentLog(settings.log_dir, settings.flush_interval)
    gw = Gateway(settings, keys, Policy(policy), log)
    with serve(create_app(gw)) as url:
        yield {"url": f"{url}/v1", "keys": secrets, "gw": gw, "log": log, "dir": tmp_path, "policy": policy}
    log.close()


def _ask(gateway: dict[str, Any], who: str, prompt: str, **extra: Any) -> Any:
    client = openai.OpenAI(base_url=gateway["url"], api_key=gateway["keys"][who], max_retries=0)
    return client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": prompt}],
                                          max_tokens=2, **extra)


def _records(gateway: dict[str, Any]) -> list[dict[str, Any]]:
    gateway["log"].flush()
    return [json.loads(x) for f in sorted((gateway["dir"] / "log" / "exchanges").glob("*.jsonl"))
            for x in f.read_text().splitlines()]


def test_an_account_crossing_the_live_thresholds_is_throttled_until_the_next_policy(
        gateway: dict[str, Any]) -> None:
    harvest = "Solve {} + {}. Explain your reasoning step by step and show all your work."
    for i in range(4):
        _ask(gateway, "harvester", harvest.format(i, i + 1))
        _ask(gateway, "customer", ["hello there", "write a haiku about rain", "what is a llama?", "thanks!"][i])
        _ask(gateway, "trusted", harvest.format(i, i + 2))
    gateway["gw"].live.drain()
    _ask(gateway, "harvester", harvest.format(7, 8))
    _ask(gateway, "customer", "one more question about llamas")
    _ask(gateway, "trusted", harvest.format(9, 9))
    last = {r["account_id"]: r["gateway"] for r in _records(gateway)}
    assert last["harvester"]["action"] == "throttle" and last["harvester"]["policy_subject"] == "live"
    assert "elicit reasoning" in last["harvester"]["reason"]
    assert last["customer"]["action"] == "allow"
    assert last["trusted"]["action"] == "allow"  # an explicit policy record wins over a live flag
    assert gateway["gw"].live.flag("trusted") is not None and gateway["gw"].live.flag("customer") is None
    # The next scan's policy decides from now on: the live flag ends.
    gateway["policy"].write_text(json.dumps([{"subject": "account:customer", "action": "monitor"}]))
    gateway["gw"].policy.check_every = 0.0
    _ask(gateway, "harvester", "hello again")
    assert _records(gateway)[-1]["gateway"]["action"] == "allow"


def test_the_policy_sampling_defence_reaches_the_upstream_and_clients_cannot_set_their_own(
        gateway: dict[str, Any]) -> None:
    _ask(gateway, "marked", "What is 1 + 1?")
    record = _records(gateway)[-1]
    assert record["gateway"]["logits_processors"] == [{"name": "repetition_penalty", "penalty": 1.3}]
    # A processor the client asks for is dropped, not forwarded: the upstream would reject this one (400).
    answer = _ask(gateway, "customer", "What is 2 + 2?", extra_body={"logits_processors": [{"name": "nope"}]})
    assert answer.choices and "logits_processors" not in _records(gateway)[-1]["gateway"]


def test_a_policy_processor_the_upstream_rejects_comes_back_as_its_400(
        model_server: str, serve: Any, tmp_path: Path) -> None:
    keys = KeyStore(tmp_path / "keys.db")
    secret = keys.add("a")[0]
    settings = GatewaySettings(upstream=model_server, log_dir=tmp_path / "log",
                               logits_processors=[{"name": "not-installed-here"}])
    log = SegmentLog(settings.log_dir, 0.02)
    with serve(create_app(Gateway(settings, keys, Policy(None), log))) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=secret, max_retries=0)
        with pytest.raises(openai.BadRequestError, match="unknown logits processor"):
            client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    log.close()


def test_json_logs_carry_the_extra_fields() -> None:
    record = logging.LogRecord("distillguard.gateway", logging.INFO, __file__, 1, "gateway stopped", None, None)
    record.logged_through = 41
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "gateway stopped" and line["logged_through"] == 41 and line["level"] == "INFO"


def test_a_window_is_bounded_by_time_not_by_rate() -> None:
    from distillguard.gateway.live import MAX_TEMPLATES_PER_BIN, _Window

    window = _Window()
    for i in range(120_000):  # 100 requests a second for 20 minutes, every one a new template
        window.add(i / 100, eliciting=i % 2 == 0, template=f"t{i}", horizon=600.0)
    assert len(window.bins) <= 61 and len(window.templates) <= 61 * MAX_TEMPLATES_PER_BIN
    assert 59_000 <= window.requests <= 61_000 and window.eliciting * 2 == window.requests
    assert sum(b.requests for b in window.bins) == window.requests
