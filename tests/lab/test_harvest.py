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


def _recording(app: Any, bodies: list[dict[str, Any]]) -> Any:
    """``app``, noting the JSON body of every chat completion request it receives."""

    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].endswith("/chat/completions"):
            return await app(scope, receive, send)
        chunks: list[bytes] = []

        async def noted() -> dict[str, Any]:
            message: dict[str, Any] = await receive()
            if message["type"] == "http.request":
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    bodies.append(json.loads(b"".join(chunks)))
            return message

        await app(scope, noted, send)

    return wrapped


def test_the_lab_config_harvest_temperature_reaches_the_model_server(tiny_model_dir: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from distillguard.lab import serve
    from distillguard.lab.experiment import harvest_all, harvest_seed, preset
    from distillguard.models.load import load_model

    bodies: list[dict[str, Any]] = []
    real = serve.create_app
    monkeypatch.setattr(serve, "create_app", lambda *a, **k: _recording(real(*a, **k), bodies))
    teacher = load_model(tiny_model_dir, "tiny")
    prompts = [f"What is {i} + {i + 2}?" for i in range(6)]
    base = preset("tiny").model_copy(update={"defences": ["none"], "accounts": 2, "max_tokens": 12})
    assert base.harvest_temperature == 0.0  # the default harvest stays greedy

    def run(temperature: float, name: str) -> list[Any]:
        bodies.clear()
        cfg = base.model_copy(update={"harvest_temperature": temperature})
        result = harvest_all(cfg, teacher, prompts=prompts, out=tmp_path / name)["none"]
        assert len(bodies) == len(prompts) and all(o.status == "ok" for o in result.outcomes)
        return [(o.answer, o.reasoning) for o in result.outcomes]

    greedy = run(0.0, "greedy")
    assert {b["temperature"] for b in bodies} == {0.0} and not any("seed" in b for b in bodies)
    first = run(1.0, "sampled")
    assert {b["temperature"] for b in bodies} == {1.0}
    seed = harvest_seed(base.model_copy(update={"harvest_temperature": 1.0}))
    assert seed is not None
    assert sorted(b["seed"] for b in bodies) == [seed + i for i in range(len(prompts))]  # one per prompt
    assert run(1.0, "again") == first  # seeded: a sampled harvest repeats, whatever the batching
    assert first != greedy  # and it samples (an untrained model's replies at T=1 are not its argmax)
