"""Keyed canaries in answers to watched accounts: in plain and streamed answers, recorded with the account."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import openai

from distillguard.gateway.app import Gateway, create_app
from distillguard.gateway.canary import CanarySettings
from distillguard.gateway.config import GatewaySettings
from distillguard.gateway.keys import KeyStore
from distillguard.gateway.policy import Policy
from distillguard.gateway.segments import SegmentLog

MSG = [{"role": "user", "content": "What is 3 + 4?"}]


def test_watched_accounts_get_canaries_that_the_log_ties_to_them(model_server: str, serve: Any,
                                                                  tmp_path: Path) -> None:
    keys = KeyStore(tmp_path / "keys.db")
    secrets = {name: keys.add(name)[0] for name in ("watched", "customer")}
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps([{"subject": "account:watched", "action": "monitor", "reason": "harvest?"}]))
    settings = GatewaySettings(upstream=model_server, log_dir=tmp_path / "log", flush_interval=0.02,
                               canaries=CanarySettings(enabled=True, key="operator-secret"))
    log = SegmentLog(settings.log_dir, settings.flush_interval)
    with serve(create_app(Gateway(settings, keys, Policy(policy), log))) as url:
        def client(who: str) -> openai.OpenAI:
            return openai.OpenAI(base_url=f"{url}/v1", api_key=secrets[who], max_retries=0)

        plain = client("watched").chat.completions.create(model="tiny", messages=MSG, max_tokens=4)
        streamed = client("watched").chat.completions.create(model="tiny", messages=MSG, max_tokens=4, stream=True)
        streamed_text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
        normal = client("customer").chat.completions.create(model="tiny", messages=MSG, max_tokens=4)
        deadline = time.monotonic() + 10
        while True:
            log.flush()
            records = [json.loads(x) for f in (tmp_path / "log" / "exchanges").glob("*.jsonl")
                       for x in f.read_text().splitlines()]
            if len(records) == 3 or time.monotonic() > deadline:
                break
            time.sleep(0.02)
    log.close()
    watched = [r for r in records if r["account_id"] == "watched"]
    canaries = [r["gateway"]["canary"] for r in watched]
    assert len(canaries) == 2 and canaries[0]["id"] != canaries[1]["id"]
    assert all(c["marker"] in c["text"] for c in canaries)
    # What the client got ends with the canary; the log keeps the upstream's own answer and names the canary.
    assert {(plain.choices[0].message.content or "").endswith(c["text"]) for c in canaries} >= {True}
    assert any(streamed_text.endswith(c["text"]) for c in canaries)
    assert not any(c["text"] in (r["response"]["content"] or "") for r in watched for c in canaries)
    assert "canary" not in next(r for r in records if r["account_id"] == "customer")["gateway"]
    assert not any(c["marker"] in (normal.choices[0].message.content or "") for c in canaries)
