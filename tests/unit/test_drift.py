"""Drift statistics: PSI on reference bins, simulator drift scenarios, false-alarm rate."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from scipy.stats import wasserstein_distance

from inferloop.core import schema as s
from inferloop.data.simulate import (
    CustomerMixDrift,
    DriftParams,
    MerchantShiftDrift,
    SeasonalAmountDrift,
    SimulateParams,
    simulate_transactions,
)
from inferloop.monitoring.drift import (
    MISSING,
    OTHER,
    DriftThresholds,
    ReferenceProfile,
    split_column_kinds,
)
from inferloop.monitoring.drift_stats import jensen_shannon, psi

SMALL = SimulateParams(n_customers=400, n_terminals=250, n_days=21, seed=3)
NUMERIC = [s.AMOUNT, "hour"]
CATEGORICAL = [s.CHANNEL, s.MERCHANT_CATEGORY, s.AGE_BAND, s.REGION]


def _days(df: pd.DataFrame, params: SimulateParams, first: int, n: int) -> pd.DataFrame:
    """Rows of days ``first .. first + n - 1`` with an ``hour`` column."""
    day = (df[s.TIMESTAMP] - pd.Timestamp(params.start_date)).dt.days
    out = df[(day >= first) & (day < first + n)]
    return out.assign(hour=out[s.TIMESTAMP].dt.hour)


def _drift_after_day_14(drift: DriftParams) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reference days 0-6 and current days 14-20 of a run whose drift starts on day 14."""
    params = replace(SMALL, drift=drift)
    df = simulate_transactions(params)
    return _days(df, params, 0, 7), _days(df, params, 14, 7)


def _profile(reference: pd.DataFrame) -> ReferenceProfile:
    return ReferenceProfile.fit(reference, NUMERIC, CATEGORICAL)


# --------------------------------------------------------------------------- statistics


def test_psi_is_zero_for_equal_shares_and_matches_a_hand_computation() -> None:
    same = np.array([0.5, 0.3, 0.2])
    assert psi(same, same) == 0.0
    assert jensen_shannon(same, same) == 0.0
    expected = (0.4 - 0.5) * np.log(0.4 / 0.5) + (0.6 - 0.5) * np.log(0.6 / 0.5)
    assert psi(np.array([0.5, 0.5]), np.array([0.4, 0.6])) == pytest.approx(expected)


def test_psi_stays_finite_when_a_bin_empties() -> None:
    value = psi(np.array([0.5, 0.5, 0.0]), np.array([0.0, 0.5, 0.5]))
    assert np.isfinite(value) and value > 1.0


def test_jensen_shannon_is_bounded_by_sqrt_ln2() -> None:
    assert jensen_shannon(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(
        np.sqrt(np.log(2))
    )


# --------------------------------------------------------------------------- profile


def test_bins_are_equal_count_on_the_reference() -> None:
    x = pd.DataFrame({"x": np.random.default_rng(0).normal(size=10_000)})
    profile = ReferenceProfile.fit(x, ["x"], n_bins=10)
    shares = np.array(profile.columns[0].expected)
    assert len(shares) == 11  # ten value bins and the missing bin
    np.testing.assert_allclose(shares[:10], 0.1, atol=1e-3)
    assert profile.compare(x).columns[0].psi == pytest.approx(0.0, abs=1e-12)


def test_ties_and_flags_keep_whole_values_in_one_bin() -> None:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "flag": (rng.random(5000) < 0.1).astype(float),
            "count": np.where(rng.random(5000) < 0.7, 0, rng.poisson(3, 5000)),
        }
    )
    profile = ReferenceProfile.fit(frame, ["flag", "count"])
    flag, count = profile.columns
    assert set(flag.edges) <= {0.0, 1.0}
    assert flag.expected[0] == pytest.approx((frame["flag"] == 0).mean())
    assert sum(flag.expected[1:-1]) == pytest.approx((frame["flag"] == 1).mean())
    assert count.expected[0] == pytest.approx((frame["count"] == 0).mean())


def test_missing_and_unseen_values_get_their_own_bins() -> None:
    reference = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0] * 50, "c": ["a", "b"] * 100})
    profile = ReferenceProfile.fit(reference, ["x"], ["c"], n_bins=4)
    current = pd.DataFrame({"x": [np.nan, 1.0] * 100, "c": ["zzz", None] * 100})
    result = profile.compare(current)
    x, c = result.columns
    assert x.missing_share == pytest.approx(0.5) and x.drifted
    assert profile.columns[1].bin_labels == ["a", "b", OTHER, MISSING]
    assert c.missing_share == pytest.approx(0.5) and c.drifted
    counts = profile.columns[1].counts(current["c"])
    assert counts.tolist() == [0, 0, 100, 100]


def test_categorical_dtype_and_object_columns_bin_alike() -> None:
    values = pd.Series(np.random.default_rng(2).choice(["x", "y", "z"], 3000))
    profile = ReferenceProfile.fit(pd.DataFrame({"c": values}), [], ["c"])
    as_object = profile.columns[0].counts(values.astype(object))
    as_category = profile.columns[0].counts(values.astype("category"))
    assert as_object.tolist() == as_category.tolist()


def test_profile_round_trips_through_json() -> None:
    reference, current = _drift_after_day_14(DriftParams())
    profile = ReferenceProfile.fit(
        reference.assign(score=0.1), NUMERIC, CATEGORICAL, score_col="score"
    )
    restored = ReferenceProfile.from_dict(json.loads(json.dumps(profile.to_dict())))
    assert restored == profile
    assert restored.compare(current).as_dict() == profile.compare(current).as_dict()


def test_invalid_input_is_refused() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0]})
    with pytest.raises(ValueError, match="missing"):
        ReferenceProfile.fit(frame, ["x", "y"])
    with pytest.raises(ValueError, match="n_bins"):
        ReferenceProfile.fit(frame, ["x"], n_bins=1)
    with pytest.raises(ValueError, match="empty"):
        ReferenceProfile.fit(frame.iloc[:0], ["x"])
    with pytest.raises(ValueError, match="missing"):
        ReferenceProfile.fit(frame, ["x"]).compare(pd.DataFrame({"z": [1.0]}))
    with pytest.raises(ValueError, match="unsupported"):
        ReferenceProfile.from_dict({"version": 99})


def test_column_kinds_follow_dtypes() -> None:
    frame = pd.DataFrame({"a": [1.0], "b": [1], "c": ["x"], "d": [True]})
    assert split_column_kinds(frame, ["a", "b", "c", "d"]) == (["a", "b"], ["c", "d"])


# --------------------------------------------------------------------------- thresholds


def test_wasserstein_on_quantiles_matches_scipy() -> None:
    rng = np.random.default_rng(3)
    reference = pd.DataFrame({"x": rng.normal(0, 2, 20_000)})
    current = pd.DataFrame({"x": rng.normal(0.5, 2, 20_000)})
    profile = ReferenceProfile.fit(reference, ["x"])
    result = profile.compare(current, DriftThresholds(wasserstein=0.1))
    exact = wasserstein_distance(reference["x"], current["x"]) / reference["x"].std(ddof=0)
    assert result.columns[0].wasserstein == pytest.approx(exact, abs=0.02)
    assert result.columns[0].drifted  # 0.25 > 0.1, while the PSI alone stays below 0.1
    assert not profile.compare(current).columns[0].drifted


def test_per_column_thresholds_override_the_default() -> None:
    reference, current = _drift_after_day_14(
        DriftParams(seasonal_amount=SeasonalAmountDrift(True, 14, 1.5))
    )
    profile = _profile(reference)
    relaxed = DriftThresholds(psi=0.2, per_column={s.AMOUNT: 50.0})
    assert s.AMOUNT in profile.compare(current).drifted_columns
    assert s.AMOUNT not in profile.compare(current, relaxed).drifted_columns


# --------------------------------------------------------------------------- scenarios


@pytest.mark.parametrize(
    ("drift", "expected"),
    [
        (DriftParams(seasonal_amount=SeasonalAmountDrift(True, 14, 1.5)), {s.AMOUNT}),
        (
            DriftParams(merchant_shift=MerchantShiftDrift(True, 14, "travel", 4.0)),
            {s.MERCHANT_CATEGORY},
        ),
        (  # new, mostly online customers: online merchants' categories gain share too
            DriftParams(customer_mix=CustomerMixDrift(True, 14, 400, "18-25", 0.7)),
            {s.AGE_BAND, s.CHANNEL, s.MERCHANT_CATEGORY},
        ),
    ],
    ids=["seasonal_amount", "merchant_shift", "customer_mix"],
)
def test_simulator_drift_scenarios_flag_their_columns(
    drift: DriftParams, expected: set[str]
) -> None:
    reference, current = _drift_after_day_14(drift)
    result = _profile(reference).compare(current)
    assert set(result.drifted_columns) == expected, result.table()
    assert result.drift_share == pytest.approx(len(expected) / len(NUMERIC + CATEGORICAL))


def test_drift_does_not_show_before_the_scenario_starts() -> None:
    params = replace(SMALL, drift=DriftParams(seasonal_amount=SeasonalAmountDrift(True, 14, 1.5)))
    df = simulate_transactions(params)
    result = _profile(_days(df, params, 0, 7)).compare(_days(df, params, 7, 7))
    assert result.drifted_columns == []


FALSE_ALARM_SEEDS = (1, 2, 3, 4, 5, 6)


def test_same_distribution_batches_raise_no_false_alarm() -> None:
    """Week 2 against week 1 of undrifted runs: 0 drifted columns over 6 seeds x 6 columns.

    The stated bound is 0 of 36 column checks; the largest PSI must also stay well below the
    0.2 threshold (sampling noise of PSI with 10 bins and ~3k rows is about 0.005).
    """
    largest = 0.0
    for seed in FALSE_ALARM_SEEDS:
        params = replace(SMALL, seed=seed, n_days=14)
        df = simulate_transactions(params)
        result = _profile(_days(df, params, 0, 7)).compare(_days(df, params, 7, 7))
        assert result.drifted_columns == [], (seed, result.table())
        largest = max(largest, max(c.psi for c in result.columns))
    assert largest < 0.05


def test_score_drift_is_reported_apart_from_the_feature_share() -> None:
    rng = np.random.default_rng(4)
    reference = pd.DataFrame({"x": rng.normal(size=5000), "score": rng.beta(1, 50, 5000)})
    current = pd.DataFrame({"x": rng.normal(size=5000), "score": rng.beta(1, 10, 5000)})
    profile = ReferenceProfile.fit(reference, ["x"], score_col="score")
    result = profile.compare(current)
    assert result.drift_share == 0.0 and result.score is not None
    assert result.score.drifted and result.score_psi > 0.2
    assert result.table()["role"].tolist() == ["feature", "score"]
    no_score = profile.compare(current.drop(columns="score"))
    assert no_score.score is None and np.isnan(no_score.score_psi)
