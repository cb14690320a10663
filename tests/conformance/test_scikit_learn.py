"""Every registered scorer, and the calibration wrapper around it, passes scikit-learn's own estimator checks.

scikit-learn's checks feed plain arrays, so each scorer runs with ``features=None`` (every
column of ``X``); its default ``features`` name account-feature columns that an array has not.
The checks that cannot apply are listed in ``_expected_failures`` with the reason (xfail).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import parametrize_with_checks

from distillguard.detect import Calibrated, KNNNoveltyScorer, RobustZScorer, Scorer, make_scorer, registered_scorers

EMPTY_REFERENCE = ("an empty reference is allowed, unlike in scikit-learn: when every reference account is "
                   "set aside the scan goes on (nothing vouches, and Calibrated's threshold is inf)")
LEAVE_ONE_OUT = ("a novelty detector, like LocalOutlierFactor(novelty=True): the threshold comes from the "
                 "training rows scored with each row left out, while an array's rows carry no account id, "
                 "so a training row scored again is its own nearest neighbour and is never flagged")


def _on_arrays(cls: type[Scorer]) -> Scorer:
    scorer = cls()
    return scorer.set_params(features=None) if "features" in scorer.get_params() else scorer


def _expected_failures(estimator: Scorer | Calibrated) -> dict[str, str]:
    failures = {"check_estimators_empty_data_messages": EMPTY_REFERENCE}
    if isinstance(estimator, Calibrated) and _leaves_rows_out(estimator.scorer):
        failures |= {"check_outliers_train": LEAVE_ONE_OUT, "check_outliers_fit_predict": LEAVE_ONE_OUT}
    return failures


def _leaves_rows_out(scorer: Scorer) -> bool:
    """Whether the scorer scores its training rows for calibration differently from new rows."""
    return type(scorer).reference_suspicion is not Scorer.reference_suspicion


ESTIMATORS = [_on_arrays(cls) for cls in registered_scorers()]


@parametrize_with_checks([*ESTIMATORS, *(Calibrated(s) for s in ESTIMATORS)],  # type: ignore[untyped-decorator]
                         expected_failed_checks=_expected_failures)
def test_scikit_learn_estimator_checks(estimator: Scorer | Calibrated, check: Callable[[object], None]) -> None:
    check(estimator)


@pytest.mark.parametrize("cls", registered_scorers(), ids=lambda c: c.name)
def test_default_scorers_clone_and_refuse_to_score_unfitted(cls: type[Scorer]) -> None:
    scorer = clone(cls())
    assert scorer.get_params() == cls().get_params()
    with pytest.raises(NotFittedError):
        scorer.suspicion(np.ones((2, len(scorer.get_params().get("features") or ()) or 1)))


def _accounts(n: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table({"account_id": [f"a{seed}-{i}" for i in range(n)],
                     "n_exchanges": rng.integers(5, 500, n), "iat_cv": rng.gamma(2.0, 0.5, n),
                     "hour_entropy": rng.uniform(0.2, 1.0, n)})


@pytest.mark.parametrize("cls", [KNNNoveltyScorer, RobustZScorer])
def test_a_table_a_frame_and_an_array_of_its_features_score_alike(cls: type[Scorer]) -> None:
    features = ("n_exchanges", "iat_cv", "hour_entropy")
    reference, scanned = _accounts(60, 1), _accounts(20, 2)
    scorer = cls(features=features).fit(reference)
    assert scorer.feature_names_in_.tolist() == list(features) and scorer.n_features_in_ == 3
    scores = scorer.suspicion(scanned)
    assert np.array_equal(scorer.suspicion(scanned.to_pandas()), scores)
    array = scanned.select(features).to_pandas().to_numpy()
    with pytest.warns(UserWarning, match="does not have valid feature names"):  # scikit-learn's, as for any estimator
        assert np.array_equal(scorer.suspicion(array), scores)
    # Fitted on an array of the same columns in the same order: the same scorer.
    on_array = cls(features=features).fit(reference.select(features).to_pandas().to_numpy())
    with pytest.warns(UserWarning, match="fitted without feature names"):
        assert np.array_equal(on_array.suspicion(scanned), scores)
    with pytest.raises(ValueError, match="reads them as its 3 features"):
        cls(features=features).fit(np.ones((5, 2)))


def test_signs_follow_scikit_learn() -> None:
    reference = _accounts(200, 3)
    det = Calibrated(KNNNoveltyScorer(k=2, features=("n_exchanges", "iat_cv")), target_fpr=0.05,
                     conformal=True).fit(reference)
    scanned = pd.DataFrame({"n_exchanges": [100, 90_000], "iat_cv": [1.0, 0.01]})
    suspicion = det.suspicion(scanned)
    assert suspicion[1] > suspicion[0]  # the scan's score: higher = more suspicious
    assert np.array_equal(det.score_samples(scanned), -suspicion)  # scikit-learn's: higher = more normal
    assert det.decision_function(scanned).tolist() == [det.threshold_ - s for s in suspicion]
    assert det.predict(scanned).tolist() == [1, -1] and det.flag(scanned).tolist() == [False, True]


def test_make_scorer_sets_k_through_set_params() -> None:
    assert make_scorer("knn-novelty", has_reference=True, k_neighbors=7).get_params()["k"] == 7
    assert "k" not in make_scorer("robust-z", has_reference=False, k_neighbors=7).get_params()
