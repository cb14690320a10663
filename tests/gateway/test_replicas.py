"""Two gateway replicas in front of one upstream share one account budget through a real Redis."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from distillguard.gateway.app import Gateway, create_app
from distillguard.gateway.config import GatewaySettings, LimitSettings
from distillguard.gateway.keys import KeyStore
from distillguard.gateway.policy import Policy
from distillguard.gateway.segments import SegmentLog


def test_replicas_enforce_one_shared_budget(model_server: str, redis_url: str, serve: Any, tmp_path: Path) -> None:
    keys = KeyStore(tmp_path / "keys.db")
    secret, _ = keys.add("acct-shared")
    settings = GatewaySettings(upstream=model_server, redis_url=redis_url, log_dir=tmp_path / "log",
                               # 5 requests, refilled at one in 100 s: none during the test. (At one in 10 s, a loaded
                               # machine's model server took long enough for the eight requests that 6 or 7 passed.)
                               limits=LimitSettings(account_requests_per_minute=0.6, burst_seconds=500))
    logs = [SegmentLog(tmp_path / f"log{i}", 0.05) for i in range(2)]
    apps = [create_app(Gateway(settings, keys, Policy(None), log)) for log in logs]
    body = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    headers = {"authorization": f"Bearer {secret}"}
    with serve(apps[0]) as a, serve(apps[1]) as b:
        codes = [httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers, timeout=30).status_code
                 for url in [a, b] * 4]
    for log in logs:
        log.close()
    assert codes.count(200) == 5 and codes.count(429) == 3
