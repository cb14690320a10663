"""Detection pieces that must hold when the reference is untrusted: independent neighbours,
harvest evidence, the union of two detectors."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pyarrow as pa

from distillguard.config import Settings
from distillguard.decide import find_campaigns
from distillguard.decide.gates import select_campaigns
from distillguard.detect.base import GROUP_COLUMN
from distillguard.detect.calibrated import Calibrated
from distillguard.detect.either import Either
from distillguard.detect.harvest import campaign_evidence, combine, trace_harvesters
from distillguard.detect.knn import KNNNoveltyScorer
from distillguard.scoring import harvesting_accounts, score_population

T0 = datetime(2026, 2, 2, tzinfo=UTC)


def _table(ids: list[str], x: list[float], groups: list[str | None]) -> pa.Table:
    return pa.table({"account_id": ids, "n_exchanges": x, "neighbour_group": pa.array(groups, pa.string())})


def test_a_cluster_is_one_neighbour_and_never_its_own() -> None:
    # Ten near-identical linked accounts (a hydra cluster) and ten spread-out independent ones.
    hydra = [f"h{i}" for i in range(10)]
    solo = [f"s{i}" for i in range(10)]
    ref = _table(hydra + solo, [1000.0 + i for i in range(10)] + [10.0 * (i + 1) for i in range(10)],
                 ["c1"] * 10 + [None] * 10)
    scorer = KNNNoveltyScorer(k=2, features=("n_exchanges",)).fit(ref)
    own = scorer.suspicion(ref)
    # Members are scored without their own cluster: far from every independent account.
    assert own[:10].min() > 2 * own[10:].max()
    # A new account like the hydra has it as one neighbour only: its second is an independent account.
    new = _table(["n"], [1004.0], [None])
    plain = KNNNoveltyScorer(k=2, features=("n_exchanges",)).fit(ref.drop_columns(["neighbour_group"]))
    assert scorer.suspicion(new)[0] > 10 * plain.suspicion(new)[0]


def test_an_accounts_own_history_does_not_vouch_but_a_new_lookalike_gets_it() -> None:
    ref = _table(["a", "b", "c", "d"], [10.0, 11.0, 12.0, 500.0], [None] * 4)
    scorer = KNNNoveltyScorer(k=1, features=("n_exchanges",)).fit(ref)
    assert scorer.suspicion(_table(["d"], [500.0], [None]))[0] > 1  # the same account, a period later
    assert scorer.suspicion(_table(["e"], [500.0], [None]))[0] == 0  # another account like it


def test_harvest_evidence_separates_a_class_from_a_hydra_cluster() -> None:
    features = pa.table({
        "account_id": ["s1", "s2", "s3", "h1", "h2", "h3"],
        "n_exchanges": [60, 70, 65, 400, 420, 410],
        # A maths class asks for steps all lesson; harvesters elicit reasoning and ask for records.
        "elicitation_rate": [0.9, 1.0, 0.95, 0.6, 0.6, 0.6],
        "harvest_format_share": [0.0, 0.0, 0.0, 0.5, 0.5, 0.5],
        "account_age_days": [25.0, 25.0, 26.0, 0.5, 1.0, 0.2],
        "duty_cycle": [0.04, 0.05, 0.04, 0.9, 0.95, 0.9],
        "payment_shared_accounts": [0, 0, 0, 2, 2, 2],
        "exchanges_per_active_day": [8.0, 9.0, 8.0, 60.0, 62.0, 61.0],
    })
    clusters = pa.table({"account_id": ["s1", "s2", "s3", "h1", "h2", "h3"],
                         "cluster_id": ["class", "class", "class", "hydra", "hydra", "hydra"]})
    ev = campaign_evidence(features, clusters)
    assert ev["class"].score < 0.45 < 0.9 < ev["hydra"].score
    assert any("dataset building" in r for r in ev["hydra"].reasons)


def test_new_accounts_count_as_harvest_evidence_only_when_put_to_work() -> None:
    """A class that signs up at the start of term is new, but asks a few questions a day; a harvester's
    new accounts send dozens. Only the second is volume against account age."""
    features = pa.table({
        "account_id": ["s1", "s2", "s3", "h1", "h2", "h3"],
        "n_exchanges": [25, 20, 30, 700, 650, 720],
        "elicitation_rate": [0.1, 0.1, 0.1, 0.05, 0.05, 0.05],
        "account_age_days": [2.0, 1.0, 3.0, 0.5, 1.0, 0.2],
        "exchanges_per_active_day": [4.0, 5.0, 4.0, 50.0, 48.0, 52.0],
    })
    clusters = pa.table({"account_id": ["s1", "s2", "s3", "h1", "h2", "h3"],
                         "cluster_id": ["class", "class", "class", "hydra", "hydra", "hydra"]})
    ev = campaign_evidence(features, clusters)
    assert ev["class"].shares["fresh"] == 0.0 and ev["class"].score < 0.45
    assert ev["hydra"].shares["fresh"] == 1.0 and ev["hydra"].score > 0.45


def test_combined_evidence_is_a_noisy_or() -> None:
    assert combine({}).score == 0.0
    assert combine({"formatting": 1.0}).score == 1.0
    assert abs(combine({"elicitation": 1.0, "fresh": 1.0}).score - (1 - 0.6 * 0.4)) < 1e-9


def test_either_flags_what_one_detector_flags_and_tests_member_bars_per_detector() -> None:
    ref_a = pa.table({"n_exchanges": [10.0, 11, 12, 13, 14, 15, 16, 17, 18, 19]})
    ref_b = pa.table({"n_exchanges": [10.0, 11, 12, 13, 14, 15, 16, 17, 18, 19,
                                      100, 110, 120, 130, 140, 150, 160, 170, 180, 190]})
    a = Calibrated(KNNNoveltyScorer(k=1, features=("n_exchanges",)), 0.1, conformal=True).fit(ref_a)
    b = Calibrated(KNNNoveltyScorer(k=1, features=("n_exchanges",)), 0.1, conformal=True).fit(ref_b)
    both = Either([a, b])
    rows = pa.table({"n_exchanges": [15.0, 145.0, 5000.0]})
    # 15 is ordinary for both, 145 only for b (a flags it), 5000 for neither.
    assert a.flag(rows).tolist() == [False, True, True] and b.flag(rows).tolist() == [False, False, True]
    assert both.flag(rows).tolist() == [False, True, True]
    assert np.all(both.above(rows, 0.5) >= both.flag(rows))
    assert both.threshold_at(0.1) == 1.0


def test_a_cleared_accounts_copy_is_its_benign_neighbour() -> None:
    from distillguard.scoring import _with_cleared, with_groups

    feats = with_groups(pa.table({"account_id": ["a", "b", "c", "d"], "n_exchanges": [10.0, 11.0, 12.0, 500.0]}),
                        None, "")
    library = _with_cleared(feats, feats, frozenset({"d"}))
    scorer = KNNNoveltyScorer(k=1, features=("n_exchanges",)).fit(library)
    assert scorer.suspicion(feats.slice(3))[0] == 0  # d's cleared behaviour vouches for d


def _population(harvesters: int = 6, seed: int = 7) -> tuple[pa.Table, pa.Table]:
    """300 ordinary accounts, varied, and ``harvesters`` unlinked look-alikes that elicit
    reasoning around the clock (a campaign on fresh infrastructure: nothing links them)."""
    rng = np.random.default_rng(seed)
    n = 300
    benign = {
        "n_exchanges": rng.lognormal(4.0, 1.0, n).round() + 5, "exchanges_per_active_day": rng.lognormal(2.0, 0.8, n),
        "template_reuse": rng.uniform(0, 0.6, n), "top_template_share": rng.uniform(0, 0.5, n),
        "output_input_ratio": rng.lognormal(1.0, 0.5, n), "hour_entropy": rng.uniform(0.2, 0.8, n),
        "iat_cv": rng.uniform(0.8, 3.0, n), "multi_turn_share": rng.uniform(0, 0.6, n),
        "tool_share": rng.uniform(0, 0.3, n), "elicitation_rate": rng.beta(1, 8, n),
        "top_capability_share": rng.uniform(0.3, 0.9, n), "new_model_share_24h": rng.uniform(0, 0.2, n),
        "account_age_days": rng.lognormal(5.0, 1.0, n), "mean_prompt_chars": rng.lognormal(5.5, 0.6, n),
        "duty_cycle": rng.uniform(0.02, 0.4, n),
    }
    harvest = {"n_exchanges": 400.0, "exchanges_per_active_day": 130.0, "template_reuse": 0.9,
               "top_template_share": 0.8, "output_input_ratio": 6.0, "hour_entropy": 0.99, "iat_cv": 0.3,
               "multi_turn_share": 0.0, "tool_share": 0.0, "elicitation_rate": 0.95, "top_capability_share": 1.0,
               "new_model_share_24h": 0.0, "account_age_days": 2.0, "mean_prompt_chars": 900.0, "duty_cycle": 0.9}
    cols = {k: np.concatenate([v, np.full(harvesters, harvest[k]) * rng.uniform(0.99, 1.01, harvesters)])
            for k, v in benign.items()}
    ids = [f"user-{i:03d}" for i in range(n)] + [f"harv-{i}" for i in range(harvesters)]
    seen = pa.array([T0] * len(ids), pa.timestamp("us", tz="UTC"))
    features = pa.table({"account_id": ids, **{k: pa.array(v) for k, v in cols.items()},
                         "first_seen": seen, "last_seen": seen})
    features = features.set_column(1, "n_exchanges", pa.array(cols["n_exchanges"].round().astype(np.int64)))
    clusters = pa.table({"account_id": ids, "cluster_id": pa.array([None] * len(ids), pa.string())})
    return features, clusters


def _found(settings: Settings) -> tuple[set[str], dict[str, int]]:
    features, clusters = _population()
    scoring = score_population(features, clusters, settings=settings)
    found = find_campaigns(scoring.scores, clusters, features=scoring.features, det=scoring.det, settings=settings)
    flagged = {a for a, f in zip(found.scores.column("account_id").to_pylist(),
                                 found.scores.column("flagged").to_pylist(), strict=True) if f}
    return flagged, scoring.set_aside.counts()


def test_trace_harvesters_never_vouch_for_each_other_without_a_reference() -> None:
    flagged, aside = _found(Settings())
    assert {f"harv-{i}" for i in range(6)} <= flagged
    assert aside.get("harvest evidence") == 6
    assert len({a for a in flagged if a.startswith("user-")}) <= 3  # ~0.1% target FPR of 300, plus slack
    # The control: with the rule off, six look-alikes are each other's nearest neighbours.
    off = Settings.model_validate({"detect": {"trace_harvest_evidence": 1.0, "trace_vouch_evidence": 1.0}})
    flagged_off, aside_off = _found(off)
    assert not {f"harv-{i}" for i in range(6)} & flagged_off
    assert "harvest evidence" not in aside_off


def test_trace_harvest_evidence_needs_volume_and_round_the_clock_elicitation() -> None:
    f = pa.table({"account_id": ["script", "class", "few", "fleet"], "n_exchanges": [400, 400, 49, 5000],
                  "elicitation_rate": [0.95, 0.95, 1.0, 0.05], "duty_cycle": [0.9, 0.2, 1.0, 1.0]})
    found = trace_harvesters(f, bar=0.6, min_exchanges=50)
    assert set(found) == {"script"}
    assert any("around the clock" in r for r in found["script"].reasons)


def test_one_card_behind_many_unrelated_accounts_is_strong_harvest_evidence() -> None:
    """A slow-and-low swarm of aged accounts, each ordinary alone, paying with one card: the ring
    makes the cluster a campaign by its evidence (link.coordinated_harvest_evidence 0.7); cards
    shared in pairs weigh less."""
    n = 30

    def cluster(shared: int) -> float:
        f = pa.table({"account_id": [f"s{i}" for i in range(n)], "n_exchanges": [19] * n,
                      "elicitation_rate": [0.6] * n, "duty_cycle": [0.1] * n, "account_age_days": [300.0] * n,
                      "payment_shared_accounts": [shared] * n})
        clusters = pa.table({"account_id": f.column("account_id"), "cluster_id": ["k"] * n})
        return campaign_evidence(f, clusters)["k"].score
    ring, pairs = cluster(29), cluster(1)
    assert pairs < 0.7 <= ring


def test_reasoning_elicited_across_a_fleet_counts_where_a_class_or_a_few_eval_keys_do_not() -> None:
    """A release chaser of 73 aged accounts on datacenter proxies, half its requests eliciting
    reasoning (random-campaigns seed 4), has evidence a cluster of unusual accounts needs
    (link.loose_min_harvest_evidence 0.5); a class of 30 asking for steps in lessons, a class of 27
    whose students ask a few questions a day each (evasive seed 3), and four linked eval-harness keys
    that elicit reasoning as much stay under the lowest bar (0.45)."""
    def evidence(n: int, elicitation: float, duty: float, per_day: float = 180.0) -> float:
        f = pa.table({"account_id": [f"a{i}" for i in range(n)], "n_exchanges": [290] * n,
                      "elicitation_rate": [elicitation] * n, "duty_cycle": [duty] * n,
                      "account_age_days": [80.0] * n, "exchanges_per_active_day": [per_day] * n})
        ev = campaign_evidence(f, pa.table({"account_id": f.column("account_id"), "cluster_id": ["k"] * n}))["k"]
        assert (ev.score >= 0.5) == any("fleet" in r for r in ev.reasons)
        return ev.score
    assert evidence(73, 0.5, 0.3) >= 0.5
    assert evidence(30, 0.5, 0.04) < 0.45
    assert evidence(27, 0.7, 0.05, per_day=6.0) < 0.45
    assert evidence(4, 0.5, 0.1) < 0.45
    assert evidence(1000, 0.05, 0.3) < 0.45  # a large fleet of keys on plain requests


def test_a_fleet_that_asks_for_reasoning_is_a_campaign_only_beside_unusual_members() -> None:
    """100 tenant keys of a tutoring product, 80% of requests step-by-step, 200 a day each: a fleet with
    evidence 0.77, yet no campaign while its members look ordinary (the coordinated gate leaves the
    fleet term out), and not set aside from a reference as harvesting; with most members unusual it is one."""
    n = 100
    ids = [f"t{i}" for i in range(n)]
    features = pa.table({"account_id": ids, "n_exchanges": [2000] * n, "elicitation_rate": [0.8] * n,
                         "duty_cycle": [0.1] * n, "account_age_days": [300.0] * n,
                         "exchanges_per_active_day": [200.0] * n})
    clusters = pa.table({"account_id": ids, "cluster_id": ["k"] * n})
    evidence = campaign_evidence(features, clusters)
    assert evidence["k"].score >= 0.7 and evidence["k"].alone.score < 0.45
    scored = pa.table({"account_id": ids, "cluster_id": ["k"] * n, "link_evidence": [["template"]] * n})
    gates = {"min_accounts": 3, "min_suspicious_share": 0.5, "evidence": evidence, "min_harvest": 0.45,
             "loose_min_harvest": 0.5, "loose_min_accounts": 10, "coordinated_harvest": 0.7,
             "coordinated_accounts": 10}
    assert select_campaigns(scored, suspicious=set(), unusual=set(), **gates) == []
    assert [c.cluster_id for c in select_campaigns(scored, suspicious=set(ids), unusual=set(ids), **gates)] == ["k"]
    assert harvesting_accounts(features.append_column(GROUP_COLUMN, pa.array(["k"] * n)), 0.45) == frozenset()
