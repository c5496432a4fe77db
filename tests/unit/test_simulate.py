"""Simulator invariants: determinism, window consistency, scenario rates and drift switches."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from inferloop.core import schema as s
from inferloop.data.simulate import (
    BiasParams,
    CustomerMixDrift,
    DriftParams,
    FraudParams,
    MerchantShiftDrift,
    NewFraudPatternDrift,
    SeasonalAmountDrift,
    SimulateParams,
    simulate_transactions,
)

SMALL = SimulateParams(n_customers=400, n_terminals=250, n_days=21, seed=3)


@pytest.fixture(scope="module")
def base() -> pd.DataFrame:
    return simulate_transactions(SMALL)


def test_same_seed_same_data(base: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(base, simulate_transactions(SMALL))


def test_other_seed_other_data(base: pd.DataFrame) -> None:
    other = simulate_transactions(replace(SMALL, seed=4))
    assert len(other) != len(base) or not other[s.AMOUNT].equals(base[s.AMOUNT])


def test_any_window_equals_the_same_days_of_a_longer_run(base: pd.DataFrame) -> None:
    window = simulate_transactions(SMALL, start_day=14, n_days=7)
    tail = base[base[s.TIMESTAMP] >= pd.Timestamp(SMALL.start_date) + pd.Timedelta(days=14)]
    pd.testing.assert_frame_equal(window, tail.reset_index(drop=True))


def test_contract_columns_types_and_ranges(base: pd.DataFrame) -> None:
    assert base[s.TRANSACTION_ID].is_unique
    assert base[s.TIMESTAMP].is_monotonic_increasing
    assert (base[s.AMOUNT] > 0).all()
    for col, allowed in s.ALLOWED_CATEGORIES.items():
        assert set(base[col]) <= set(allowed), col
    assert set(base[s.TARGET]) <= {0, 1}
    delay = base[s.LABEL_AVAILABLE_AT] - base[s.TIMESTAMP]
    assert (delay == pd.Timedelta(days=SMALL.label_delay_days)).all()


def test_every_baseline_scenario_occurs_at_a_plausible_rate(base: pd.DataFrame) -> None:
    fraud_rate = base[s.TARGET].mean()
    assert 0.002 < fraud_rate < 0.05
    present = set(base.loc[base[s.TARGET] == 1, s.FRAUD_SCENARIO])
    for name in ("high_amount", "compromised_terminal", "account_takeover", "card_testing"):
        assert s.SCENARIO_CODES[name] in present, name
    assert (base.loc[base[s.FRAUD_SCENARIO] > 0, s.TARGET] == 1).all()
    assert (base.loc[base[s.FRAUD_SCENARIO] == 0, s.TARGET] == 0).all()


def test_fraud_rate_does_not_depend_on_population_size() -> None:
    # rates are per 1,000 customers: 3x the customers keeps the fraud rate (up to noise)
    rates = [
        simulate_transactions(replace(SMALL, n_customers=n, n_terminals=n * 2 // 3)).is_fraud.mean()
        for n in (1000, 3000)
    ]
    assert rates[1] == pytest.approx(rates[0], rel=0.5)


def test_card_testing_comes_in_bursts_of_small_online_amounts(base: pd.DataFrame) -> None:
    ct = base[base[s.FRAUD_SCENARIO] == s.SCENARIO_CODES["card_testing"]]
    lo, hi = SMALL.fraud.card_testing_amount
    assert ct[s.AMOUNT].between(lo, hi).all()
    assert (ct[s.CHANNEL] == "online").all()
    per_customer_day = ct.groupby([s.CUSTOMER_ID, ct[s.TIMESTAMP].dt.floor("D")]).size()
    assert per_customer_day.median() >= SMALL.fraud.card_testing_burst[0]


def test_high_amount_fraud_is_far_above_the_customers_usual(base: pd.DataFrame) -> None:
    genuine_mean = base[base[s.TARGET] == 0].groupby(s.CUSTOMER_ID)[s.AMOUNT].mean()
    high = base[base[s.FRAUD_SCENARIO] == s.SCENARIO_CODES["high_amount"]]
    ratio = high[s.AMOUNT].to_numpy() / genuine_mean.reindex(high[s.CUSTOMER_ID]).to_numpy()
    assert np.nanmedian(ratio) > 4


def _after(df: pd.DataFrame, day: int) -> pd.Series:
    return df[s.TIMESTAMP] >= pd.Timestamp(SMALL.start_date) + pd.Timedelta(days=day)


def test_seasonal_drift_scales_amounts_only_after_its_start(base: pd.DataFrame) -> None:
    drifted = simulate_transactions(
        replace(SMALL, drift=DriftParams(seasonal_amount=SeasonalAmountDrift(True, 14, 1.5)))
    )
    before, after = ~_after(base, 14), _after(base, 14)
    pd.testing.assert_frame_equal(drifted[before], base[before])
    ratio = drifted.loc[after, s.AMOUNT].sum() / base.loc[after, s.AMOUNT].sum()
    assert ratio == pytest.approx(1.5, rel=0.01)


def test_new_fraud_pattern_appears_from_its_start_day(base: pd.DataFrame) -> None:
    drifted = simulate_transactions(
        replace(SMALL, drift=DriftParams(new_fraud_pattern=NewFraudPatternDrift(True, 10, 5.0)))
    )
    new = drifted[drifted[s.FRAUD_SCENARIO] == s.SCENARIO_CODES["new_pattern"]]
    assert len(new) > 0 and _after(new, 10).all()
    assert (new[s.MERCHANT_CATEGORY] == "fuel").all()
    assert new[s.TIMESTAMP].dt.hour.between(1, 4).all()


def test_customer_mix_change_adds_young_customers(base: pd.DataFrame) -> None:
    mix = CustomerMixDrift(True, 10, 400, "18-25", 0.7)
    drifted = simulate_transactions(replace(SMALL, drift=DriftParams(customer_mix=mix)))
    share = lambda d: (d[s.AGE_BAND] == "18-25").mean()  # noqa: E731
    assert share(drifted[_after(drifted, 10)]) > share(base[_after(base, 10)]) + 0.15
    assert (drifted.loc[~_after(drifted, 10), s.CUSTOMER_ID] < SMALL.n_customers).all()


def test_merchant_shift_raises_the_category_share(base: pd.DataFrame) -> None:
    drifted = simulate_transactions(
        replace(SMALL, drift=DriftParams(merchant_shift=MerchantShiftDrift(True, 7, "travel", 4.0)))
    )
    share = lambda d: (d[s.MERCHANT_CATEGORY] == "travel").mean()  # noqa: E731
    assert share(drifted[_after(drifted, 7)]) > 2 * share(base[_after(base, 7)])


def test_bias_scenario_camouflages_fraud_in_one_group(base: pd.DataFrame) -> None:
    biased = simulate_transactions(replace(SMALL, bias=BiasParams(True, 0, s.AGE_BAND, "61+", 3.0)))
    camo = biased[biased[s.FRAUD_SCENARIO] == s.SCENARIO_CODES["camouflaged"]]
    assert len(camo) > 0 and (camo[s.AGE_BAND] == "61+").all()
    # camouflaged fraud looks like normal spending: similar amounts to the group's genuine ones
    genuine = biased[(biased[s.TARGET] == 0) & (biased[s.AGE_BAND] == "61+")]
    assert camo[s.AMOUNT].median() == pytest.approx(genuine[s.AMOUNT].median(), rel=0.5)
    group_rate = lambda d: d.loc[d[s.AGE_BAND] == "61+", s.TARGET].mean()  # noqa: E731
    assert group_rate(biased) > group_rate(base)


def test_rejects_an_empty_window() -> None:
    with pytest.raises(ValueError, match="n_days"):
        simulate_transactions(SMALL, n_days=0)


@pytest.mark.parametrize(
    "drift",
    [
        DriftParams(seasonal_amount=SeasonalAmountDrift(True, 10, 1.5)),
        DriftParams(new_fraud_pattern=NewFraudPatternDrift(True, 10, 5.0)),
        DriftParams(customer_mix=CustomerMixDrift(True, 10, 400, "18-25", 0.7)),
        DriftParams(merchant_shift=MerchantShiftDrift(True, 10, "travel", 4.0)),
    ],
    ids=["seasonal", "new_pattern", "customer_mix", "merchant_shift"],
)
def test_days_before_a_drift_starts_are_identical_to_no_drift(
    base: pd.DataFrame, drift: DriftParams
) -> None:
    """The production simulation relies on this: a drift scenario continues the same past."""
    drifted = simulate_transactions(replace(SMALL, drift=drift))
    before = ~_after(base, 10)
    pd.testing.assert_frame_equal(
        drifted[~_after(drifted, 10)].reset_index(drop=True), base[before].reset_index(drop=True)
    )


def test_rows_come_in_exact_time_order_across_days_and_midnight_bursts() -> None:
    """Several days with card-testing bursts forced near midnight: timestamps never go back."""
    params = replace(
        SimulateParams(n_customers=800, n_terminals=400, n_days=6, seed=21),
        fraud=replace(FraudParams(), card_testing_per_1k=40.0, card_testing_minutes=45),
    )
    df = simulate_transactions(params)
    seconds = df[s.TIMESTAMP].dt.hour * 3600 + df[s.TIMESTAMP].dt.minute * 60
    testing = df[s.FRAUD_SCENARIO] == s.SCENARIO_CODES["card_testing"]
    assert (testing & (seconds >= 23 * 3600)).any()  # bursts that end just before midnight
    assert df[s.TIMESTAMP].is_monotonic_increasing
    assert df[s.TRANSACTION_ID].is_unique
