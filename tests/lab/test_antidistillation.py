"""Antidistillation sampling: the tilt is the math of Savani et al. 2025, cached by version, validated, served."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

torch = pytest.importorskip("torch")  # the lab extra

from distillguard.errors import ConfigError  # noqa: E402
from distillguard.lab import antidistillation as ad  # noqa: E402
from distillguard.lab.processors import build_processors  # noqa: E402
from distillguard.lab.train import Example, ModelSpec, TrainSettings  # noqa: E402
from distillguard.models.generate import Model, Row, Sampling  # noqa: E402
from distillguard.models.load import load_causal_lm, load_model  # noqa: E402

HELD_OUT = [Example("What is 3 + 4?", "7", "3 + 4 = 7"), Example("What is 2 + 5?", "7", "2 + 5 = 7")]
TRAIN = [Example(f"What is {a} + {b}?", str(a + b), f"{a} + {b} = {a + b}") for a in range(8) for b in range(8)]
SETTINGS = TrainSettings(steps=15, batch=8, lr=3e-3, seed=1, warmup=2)


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def teacher(tiny_model_dir: Path) -> Model:
    return load_model(tiny_model_dir, "tiny")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory, teacher: Model) -> Path:
    """A proxies folder with version ``v1``: a proxy trained briefly on sums, with the teacher's tokenizer."""
    out = tmp_path_factory.mktemp("antidistillation")
    ad.prepare(out, "v1", tokenizer=teacher.tokenizer, train=TRAIN, held_out=HELD_OUT, spec=_spec(teacher),
               settings=SETTINGS)
    return out


@pytest.fixture(scope="module")
def store(root: Path) -> ad.ProxyStore:
    return ad.ProxyStore(root)


def _spec(teacher: Model) -> ModelSpec:
    return ModelSpec(layers=1, width=32, heads=2, context=teacher.context, vocab=len(teacher.tokenizer))


def _processor(store: ad.ProxyStore, lam: float, epsilon: float = 1e-3, temperature: float = 1.0) -> Any:
    return build_processors([{"name": "antidistillation", "lambda": lam, "epsilon": epsilon, "version": "v1"}],
                            proxies=store, temperature=temperature)


def _prompt(teacher: Model, text: str = "What is 3 + 4?") -> list[int]:
    return teacher.prompt_ids([{"role": "user", "content": text}])


def _delta(store: ad.ProxyStore, ids: list[int], epsilon: float = 1e-3) -> torch.Tensor:
    return store.pair("v1", epsilon).delta(ids)[0]


def test_the_finite_difference_is_the_directional_derivative_of_the_held_out_loss(
        store: ad.ProxyStore, root: Path, teacher: Model) -> None:
    """Δ(x) ≈ ⟨∇θ L_heldout, ∇θ log p_θ(x | prefix)⟩, checked against autograd on the stored proxy."""
    ids = _prompt(teacher)
    delta = _delta(store, ids)
    proxy = load_causal_lm(root / "v1" / "proxy")
    gradient = torch.load(root / "v1" / ad.GRADIENT, weights_only=True)
    params = dict(proxy.named_parameters())
    first = teacher.tokenizer.convert_tokens_to_ids("<think>")  # the held-out replies' first token
    for token in {first, int(delta.argmax()), int(delta.argmin()), 5}:
        proxy.zero_grad()
        torch.log_softmax(proxy(input_ids=torch.tensor([ids])).logits[0, -1], -1)[token].backward()
        exact = float(sum((params[n].grad * g).sum() for n, g in gradient.items()))
        assert float(delta[token]) == pytest.approx(exact, rel=0.02, abs=0.02)


def test_a_larger_lambda_lowers_the_tokens_that_would_teach_the_proxy(store: ad.ProxyStore, teacher: Model) -> None:
    ids = [*_prompt(teacher), teacher.tokenizer.convert_tokens_to_ids("<think>")]
    delta = _delta(store, ids)
    free = store.pair("v1", 1e-3).free
    with torch.inference_mode():
        logits = teacher.model(input_ids=torch.tensor([ids])).logits[:, -1].float()
    probs = [torch.softmax(_processor(store, lam)(torch.tensor([ids]), logits.clone())[0], -1) for lam in (0, 0.5, 2)]
    teaching, misleading = (delta < 0) & free, (delta > 0) & free
    assert float(probs[0][teaching].sum()) > float(probs[1][teaching].sum()) > float(probs[2][teaching].sum())
    assert float(probs[0][misleading].sum()) < float(probs[2][misleading].sum())


def test_special_tokens_keep_the_teachers_probability_whatever_lambda(store: ad.ProxyStore, teacher: Model) -> None:
    """Every held-out trace opens with ``<think>``, so ``Δ(<think>)`` is the most negative: unspared, the tilt
    stopped the teacher from reasoning at all. Spared, the structure of the answer is the teacher's own."""
    ids = _prompt(teacher)
    think = teacher.tokenizer.convert_tokens_to_ids("<think>")
    assert _delta(store, ids)[think] < 0  # learning the held-out reply's first token lowers the held-out loss
    free = store.pair("v1", 1e-3).free
    special = [int(i) for i in teacher.tokenizer.all_special_ids]
    assert not free[special].any() and int(free.sum()) == len(teacher.tokenizer) - len(special)
    with torch.inference_mode():
        logits = teacher.model(input_ids=torch.tensor([ids])).logits[:, -1].float()
    for lam in (0.5, 50.0):
        for tau in (0.7, 1.0):
            tilted = _processor(store, lam, temperature=tau)(torch.tensor([ids]), logits.clone())[0]
            p, q = torch.softmax(tilted / tau, -1), torch.softmax(logits[0] / tau, -1)
            assert torch.allclose(p[special], q[special], atol=1e-6)
            assert not torch.allclose(p[free], q[free], atol=1e-4)


def test_greedy_keeps_the_teachers_choice_between_a_special_token_and_an_ordinary_one(
        store: ad.ProxyStore, teacher: Model) -> None:
    """Mass alone does not keep an argmax: a greedy teacher that would open its reasoning still does, and one
    that would write an ordinary token writes the tilted best of them, never a special one."""
    ids = torch.tensor([_prompt(teacher)])
    free = store.pair("v1", 1e-3).free
    think = teacher.tokenizer.convert_tokens_to_ids("<think>")
    opening = torch.zeros(1, len(teacher.tokenizer))
    opening[0, think] = 1.0  # the teacher's argmax is <think>
    assert torch.equal(_processor(store, 50.0, temperature=0.0)(ids, opening.clone()), opening)
    ordinary = torch.zeros(1, len(teacher.tokenizer))
    ordinary[0, 40] = 1.0  # an ordinary token (the special ones come first)
    out = _processor(store, 50.0, temperature=0.0)(ids, ordinary.clone())[0]
    assert bool(free[int(out.argmax())]) and bool(torch.isinf(out[~free]).all())


def test_lambda_zero_is_plain_sampling(store: ad.ProxyStore, teacher: Model) -> None:
    ids, scores = torch.tensor([_prompt(teacher)]), torch.randn(1, len(teacher.tokenizer))
    assert torch.equal(_processor(store, 0.0)(ids, scores.clone()), scores)
    rows = [Row(_prompt(teacher), Sampling(max_tokens=12, temperature=1.0, seed=5)),
            Row(_prompt(teacher), Sampling(max_tokens=12, temperature=1.0, seed=5), _processor(store, 0.0))]
    plain, tilted = ([t for e in teacher.decode([r]) for _, t in e if t is not None] for r in rows)
    assert plain == tilted and plain


def test_the_tilt_is_added_after_the_temperature(store: ad.ProxyStore, teacher: Model) -> None:
    """softmax(z / τ + λΔ) over the free tokens: the processor adds τλΔ (and one constant per row) before the
    sampler divides by τ; spared tokens are left as they are."""
    ids, scores = torch.tensor([_prompt(teacher)]), torch.randn(1, len(teacher.tokenizer))
    delta, free = _delta(store, _prompt(teacher)), store.pair("v1", 1e-3).free
    for tau, added in ((0.5, 0.5 * 2.0), (1.0, 2.0)):
        out = _processor(store, 2.0, temperature=tau)(ids, scores.clone())[0]
        moved = (out - scores[0] - added * delta)[free]
        assert torch.allclose(moved, moved.mean().expand_as(moved), atol=1e-3)  # one constant
        assert torch.equal(out[~free], scores[0][~free])


def test_decoding_with_the_kv_cache_matches_scoring_each_prefix_afresh(store: ad.ProxyStore, teacher: Model) -> None:
    ids = _prompt(teacher)
    running = _processor(store, 1.0)
    for token in (5, 9, 12, 40):
        scores = torch.zeros(1, len(teacher.tokenizer))
        assert torch.allclose(running(torch.tensor([ids]), scores.clone()),
                              _processor(store, 1.0)(torch.tensor([ids]), scores.clone()), atol=5e-3)
        ids = [*ids, token]


def test_a_version_is_computed_once_and_never_changes(
        root: Path, store: ad.ProxyStore, teacher: Model, monkeypatch: pytest.MonkeyPatch) -> None:
    before = (root / "v1" / ad.GRADIENT).stat().st_mtime_ns

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("a prepared version was trained again")

    monkeypatch.setattr(ad, "train_model", no_training)
    again = ad.prepare(root, "v1", tokenizer=teacher.tokenizer, train=TRAIN, held_out=HELD_OUT,
                       spec=_spec(teacher), settings=SETTINGS)
    assert again.held_out == len(HELD_OUT) and again.gradient_norm > 0
    assert (root / "v1" / ad.GRADIENT).stat().st_mtime_ns == before
    with pytest.raises(ConfigError, match="another recipe; a version never changes"):
        ad.prepare(root, "v1", tokenizer=teacher.tokenizer, train=TRAIN[:10], held_out=HELD_OUT,
                   spec=_spec(teacher), settings=SETTINGS)
    assert store.pair("v1", 1e-3) is store.pair("v1", 1e-3)  # loaded once per (version, epsilon)
    assert store.pair("v1", 1e-2) is not store.pair("v1", 1e-3)
    assert store.versions() == ["v1"]


def test_an_untrained_proxy_is_a_version_too(teacher: Model, tmp_path: Path) -> None:
    """``steps = 0``: the gradient at the init, where a student trained from scratch starts."""
    untrained = TrainSettings(steps=0, seed=2)
    made = ad.prepare(tmp_path, "init", tokenizer=teacher.tokenizer, train=[], held_out=HELD_OUT, spec=_spec(teacher),
                      settings=untrained)
    assert made.gradient_norm > 0 and (tmp_path / "init" / "proxy" / "config.json").is_file()
    out = build_processors([{"name": "antidistillation", "lambda": 1, "version": "init"}],
                           proxies=ad.ProxyStore(tmp_path))(torch.tensor([_prompt(teacher)]),
                                                            torch.zeros(1, len(teacher.tokenizer)))
    assert bool(torch.isfinite(out).all()) and float(out.abs().max()) > 0


@pytest.mark.parametrize(("params", "message"), [
    ({"epsilon": 1e-3, "version": "v1"}, "missing 'lambda'"),
    ({"lambda": -1, "version": "v1"}, "lambda must be >= 0"),
    ({"lambda": float("nan"), "version": "v1"}, "lambda must be a finite number"),
    ({"lambda": True, "version": "v1"}, "lambda must be a finite number"),
    ({"lambda": "0.5", "version": "v1"}, "lambda must be a finite number"),
    ({"lambda": 1, "epsilon": 0, "version": "v1"}, r"epsilon must be in \(0, 1\]"),
    ({"lambda": 1, "epsilon": 5, "version": "v1"}, r"epsilon must be in \(0, 1\]"),
    ({"lambda": 1}, "missing 'version'"),
    ({"lambda": 1, "version": "../v1"}, "antidistillation version must be"),
    ({"lambda": 1, "version": "v9"}, "no antidistillation version 'v9'.*prepared: v1"),
    ({"lambda": 1, "version": "v1", "lr": 3}, r"unknown parameters \['lr'\]"),
])
def test_bad_specs_are_clear_errors(store: ad.ProxyStore, params: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_processors([{"name": "antidistillation", **params}], proxies=store)


def test_a_server_without_proxies_or_a_proxy_without_held_out_data_says_so(teacher: Model, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no antidistillation proxies"):
        build_processors([{"name": "antidistillation", "lambda": 1, "version": "v1"}])
    with pytest.raises(ConfigError, match="held-out examples"):
        ad.prepare(tmp_path, "v2", tokenizer=teacher.tokenizer, train=TRAIN, held_out=[], spec=_spec(teacher),
                   settings=SETTINGS)


def test_the_model_server_applies_it_when_the_request_carries_it(
        store: ad.ProxyStore, teacher: Model, serve: Any) -> None:
    from distillguard.lab.serve import create_app

    prompt = "What is 3 + 4?"
    ids = [int(i) for i in teacher.tokenizer(prompt, add_special_tokens=False)["input_ids"]]
    with torch.inference_mode():
        logits = teacher.model(input_ids=torch.tensor([ids])).logits[0, -1].float()
    lam = 50.0
    tilted = int(torch.argmax(_processor(store, lam, temperature=0.0)(torch.tensor([ids]), logits[None].clone())[0]))
    assert tilted != int(torch.argmax(logits))  # else this test could not tell
    spec = {"name": "antidistillation", "lambda": lam, "epsilon": 1e-3, "version": "v1"}
    body = {"model": "tiny", "prompt": prompt, "max_tokens": 1, "temperature": 0}
    with serve(create_app(teacher, proxies=store)) as url:
        plain = httpx.post(f"{url}/v1/completions", json=body, timeout=30).json()["choices"][0]["text"]
        r = httpx.post(f"{url}/v1/completions", json={**body, "logits_processors": [spec]}, timeout=30)
        assert r.status_code == 200
        assert r.json()["choices"][0]["text"] == teacher.tokenizer.decode([tilted]) != plain
        chat = httpx.post(f"{url}/v1/chat/completions", timeout=30, json={
            "model": "tiny", "messages": [{"role": "user", "content": prompt}], "max_tokens": 8, "seed": 3,
            "logits_processors": [spec]})
        assert chat.status_code == 200 and chat.json()["usage"]["completion_tokens"] > 0
        bad = httpx.post(f"{url}/v1/completions", timeout=30,
                         json={**body, "logits_processors": [{**spec, "lambda": -2}]})
        assert bad.status_code == 400 and "lambda must be >= 0" in bad.json()["error"]["message"]
    with serve(create_app(teacher)) as url:
        r = httpx.post(f"{url}/v1/completions", json={**body, "logits_processors": [spec]}, timeout=30)
        assert r.status_code == 400 and "no antidistillation proxies" in r.json()["error"]["message"]


def test_the_lab_defence_asks_for_a_proxy_version_named_by_its_recipe() -> None:
    from distillguard.lab.experiment import LabConfig, _policy, proxy_version

    config = LabConfig()
    [record] = _policy("antidistillation", ["attacker"], config)
    assert record.subject == "account:attacker" and record.logits_processors is not None
    assert record.logits_processors[0].model_dump() == {"name": "antidistillation", "lambda": 0.1, "epsilon": 1e-4,
                                                         "version": proxy_version(config)}
    assert proxy_version(config) == proxy_version(LabConfig(antidistillation_lambda=2.0))  # lambda is per request
    assert proxy_version(config) != proxy_version(LabConfig(proxy_steps=5))
    ad.check_version(proxy_version(config))


def test_the_server_batches_the_proxies_and_each_row_gets_what_it_would_alone(
        store: ad.ProxyStore, teacher: Model, monkeypatch: pytest.MonkeyPatch) -> None:
    """``Prefetch`` (what the server's batcher runs): one proxy pass per step for all rows, none per row."""
    prompts = [_prompt(teacher, q) for q in ("What is 3 + 4?", "What is 12 + 19?", "hi")]
    procs = [_processor(store, 1.0, epsilon=1e-2) for _ in prompts]
    rows = [Row(p, Sampling(max_tokens=5 + i, temperature=1.0, seed=i), procs[i]) for i, p in enumerate(prompts)]
    tilts = ad.Prefetch(prompts, [list(r.processors) for r in rows], [r.sampling.max_tokens for r in rows])
    pair = store.pair("v1", 1e-2)
    seen: list[tuple[tuple[int, ...], torch.Tensor]] = []
    with monkeypatch.context() as patch:
        patch.setattr(pair, "delta", lambda *a: pytest.fail("a row was scored alone"))
        tilts.step()
        for events in teacher.decode(rows):
            seen += [item for p in procs for item in p[0].ready.items()]
            tilts.step(events)
    assert len({key for key, _ in seen}) >= sum(r.sampling.max_tokens for r in rows) - 3
    for key, delta in seen[::4]:
        assert torch.allclose(delta, _delta(store, list(key), 1e-2), atol=2e-2)


def test_cli_lab_proxy_prepares_a_version_and_prints_the_request(tiny_model_dir: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from distillguard.cli import app

    config = tmp_path / "lab.toml"
    config.write_text('tasks = ["add"]\nteacher_examples = 50\neval_tasks = 10\nharvest_sizes = [10]\n'
                      'proxy_steps = 3\nproxy_examples = 20\nproxy_held_out = 8\n'
                      '[architecture]\nlayers = 1\nwidth = 16\nheads = 2\ncontext = 512\nvocab = 400\n'
                      '[student]\nsteps = 3\nbatch = 4\nwarmup = 1\n')
    runner = CliRunner()
    args = ["lab", "proxy", "--teacher", str(tiny_model_dir), "--config", str(config), "--out", str(tmp_path / "p")]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "antidistillation version lab-" in first.output and '"name": "antidistillation"' in first.output
    [version] = ad.ProxyStore(tmp_path / "p").versions()
    assert version in first.output
    again = runner.invoke(app, args)  # cached: the same version, not retrained
    assert again.exit_code == 0 and version in again.output


def test_honest_users_answers_with_the_defence_on(store: ad.ProxyStore, teacher: Model) -> None:
    from distillguard.lab.evaluate import answers_with, scores_with
    from distillguard.lab.tasks import Task
    from distillguard.models.answers import answers

    prompts = ["What is 3 + 4?", "What is 12 + 19?", "What is 5 + 5?"]
    spec = {"name": "antidistillation", "epsilon": 1e-3, "version": "v1"}
    plain = answers(teacher, prompts, max_tokens=8)
    assert answers_with(teacher, prompts, specs=[], max_tokens=8) == plain
    assert answers_with(teacher, prompts, specs=[{**spec, "lambda": 0}], max_tokens=8, proxies=store) == plain
    assert answers_with(teacher, prompts, specs=[{**spec, "lambda": 50}], max_tokens=8, proxies=store) != plain
    sampled = {"specs": [{**spec, "lambda": 1}], "max_tokens": 8, "proxies": store, "temperature": 1.0}
    together = answers_with(teacher, prompts, **sampled, seed=5)  # prompt i sampled with seed 5 + i
    apart = [*answers_with(teacher, prompts[:2], **sampled, seed=5), *answers_with(teacher, prompts[2:], **sampled,
                                                                                   seed=7)]
    assert together == apart  # sampled, seeded per prompt: the batching changes nothing
    tasks = [Task("add", p, "", a) for p, (a, _) in zip(prompts, plain, strict=True)]
    assert scores_with(teacher, tasks, specs=[], max_tokens=8) == (1.0, {"add": 1.0})


def test_a_gateway_policy_applies_it_to_its_subject_and_passes_back_a_bad_spec_as_400(
        store: ad.ProxyStore, teacher: Model, serve: Any, tmp_path: Path) -> None:
    import json

    import openai

    from distillguard.gateway.app import Gateway
    from distillguard.gateway.app import create_app as gateway_app
    from distillguard.gateway.config import GatewaySettings
    from distillguard.gateway.keys import KeyStore
    from distillguard.gateway.policy import Policy
    from distillguard.gateway.segments import SegmentLog
    from distillguard.lab.serve import create_app

    spec = {"name": "antidistillation", "lambda": 50.0, "epsilon": 1e-3, "version": "v1"}
    keys = KeyStore(tmp_path / "keys.db")
    secrets = {a: keys.add(a)[0] for a in ("honest", "attacker", "misconfigured")}
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps([
        {"subject": "account:attacker", "action": "monitor", "logits_processors": [spec]},
        {"subject": "account:misconfigured", "action": "monitor", "logits_processors": [{**spec, "lambda": -1}]}]))
    ask = {"model": "tiny", "messages": [{"role": "user", "content": "What is 3 + 4?"}], "max_tokens": 6,
           "temperature": 0}

    def said(r: Any) -> tuple[str | None, object]:
        return r.choices[0].message.content, (r.choices[0].message.model_extra or {}).get("reasoning_content")

    with serve(create_app(teacher, proxies=store)) as upstream:
        direct = openai.OpenAI(base_url=f"{upstream}/v1", api_key="unused", max_retries=0)
        plain = said(direct.chat.completions.create(**ask))
        tilted = said(direct.chat.completions.create(**ask, extra_body={"logits_processors": [spec]}))
        assert plain != tilted
        log = SegmentLog(tmp_path / "log", 0.02)
        gw = Gateway(GatewaySettings(upstream=f"{upstream}/v1", log_dir=tmp_path / "log"), keys, Policy(policy), log)
        with serve(gateway_app(gw)) as url:
            def client(account: str) -> openai.OpenAI:
                return openai.OpenAI(base_url=f"{url}/v1", api_key=secrets[account], max_retries=0)

            assert said(client("honest").chat.completions.create(**ask)) == plain
            assert said(client("attacker").chat.completions.create(**ask)) == tilted
            with pytest.raises(openai.BadRequestError, match="lambda must be >= 0"):
                client("misconfigured").chat.completions.create(**ask)
        log.close()
    logged = [json.loads(x) for f in (tmp_path / "log" / "exchanges").glob("*.jsonl")
              for x in f.read_text().splitlines()]
    assert [r["gateway"].get("logits_processors") for r in logged if r["account_id"] == "attacker"] == [[spec]]
