"""The lab's harvest: the official openai client, many accounts, through a real gateway in front of a real model."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from distillguard.errors import ConfigError, InputError
from distillguard.gateway.app import Gateway, create_app
from distillguard.gateway.config import GatewaySettings
from distillguard.gateway.keys import KeyStore
from distillguard.gateway.policy import Policy
from distillguard.gateway.segments import SegmentLog
from distillguard.lab.harvest import HarvestSettings, harvest, read_outcomes
from distillguard.models.answers import read_prompts


@pytest.fixture
def gateway(model_server: str, serve: Any, tmp_path: Path) -> Iterator[dict[str, Any]]:
    keys = KeyStore(tmp_path / "keys.db")
    secrets = [keys.add(f"lab-{i}")[0] for i in range(3)]
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps([
        {"subject": "account:lab-1", "action": "block", "reason": "harvesting"},
        {"subject": "account:lab-2", "action": "monitor", "transforms": ["withhold_reasoning"]},
    ]))
    log = SegmentLog(tmp_path / "log", 0.02)
    gw = Gateway(GatewaySettings(upstream=model_server, log_dir=tmp_path / "log"), keys, Policy(policy), log)
    with serve(create_app(gw)) as url:
        yield {"url": f"{url}/v1", "keys": secrets, "log": log, "dir": tmp_path}
    log.close()


def test_harvest_through_the_gateway_records_pairs_and_refusals(gateway: dict[str, Any]) -> None:
    prompts = [f"What is {i} + {i + 1}?" for i in range(9)]
    out = gateway["dir"] / "harvest.jsonl"
    ticks: list[int] = []
    result = harvest(prompts, HarvestSettings(gateway["url"], tuple(gateway["keys"]), "tiny", rate=100.0,
                                              concurrency=4, max_tokens=8, max_retries=0),
                     out=out, progress=lambda done, total: ticks.append(done))
    assert [o.prompt for o in result.outcomes] == prompts and ticks[-1] == 9
    by_account = {a: {o.status for o in result.outcomes if o.account == a} for a in range(3)}
    assert by_account == {0: {"ok"}, 1: {"403"}, 2: {"ok"}}
    assert {o.code for o in result.outcomes if o.account == 1} == {"account_blocked"}
    assert all(o.reasoning is None for o in result.outcomes if o.account == 2)  # withheld by the gateway
    summary = result.summary()
    assert summary["sent"] == 9 and summary["harvested"] == 6 and summary["statuses"] == {"403": 3, "ok": 6}
    assert sorted(o.prompt for o in read_outcomes(out)) == sorted(prompts)  # every outcome on disk
    gateway["log"].flush()
    logged = [json.loads(x) for f in (gateway["dir"] / "log" / "exchanges").glob("*.jsonl")
              for x in f.read_text().splitlines()]
    assert len(logged) == 9 and {r["account_id"] for r in logged} == {"lab-0", "lab-1", "lab-2"}


def test_harvest_refuses_addresses_that_are_not_loopback_or_allowed() -> None:
    with pytest.raises(ConfigError, match="loopback"):
        harvest(["hi"], HarvestSettings("http://203.0.113.7:8080/v1", ("sk-x",)))
    with pytest.raises(ConfigError, match="at least one API key"):
        harvest(["hi"], HarvestSettings("http://127.0.0.1:9/v1", ()))


def test_prompt_pools_and_harvest_files_name_their_bad_lines(tmp_path: Path) -> None:
    pool = tmp_path / "pool.jsonl"
    pool.write_text('{"prompt": "a"}\nplain line\n\n{"text": "b"}\n')
    assert read_prompts(pool) == ["a", "plain line", "b"]
    pool.write_text('{"prompt": "a"}\n{"nope": 1}\n')
    with pytest.raises(InputError, match=r"pool\.jsonl:2"):
        read_prompts(pool)
    bad = tmp_path / "h.jsonl"
    bad.write_text('{"prompt": "a", "status": "ok", "answer": "1"}\n{broken\n')
    with pytest.raises(InputError, match=r"h\.jsonl:2"):
        read_outcomes(bad)
