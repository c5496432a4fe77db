"""Features: batch equals row-by-row online, no leakage, state survives pickling."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError

from inferloop.core import schema as s
from inferloop.data.features import (
    FeatureParams,
    TransactionFeaturizer,
    featurize_frame,
    order_free,
)
from inferloop.data.simulate import SimulateParams, simulate_transactions

PARAMS = FeatureParams(
    customer_windows=("1h", "1D", "7D"),
    terminal_windows=("1D", "7D"),
    label_delay="2D",
    extra_history="1D",
)


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    return simulate_transactions(
        SimulateParams(n_customers=150, n_terminals=100, n_days=14, seed=5)
    )


def _cut(raw: pd.DataFrame, day: int) -> pd.Timestamp:
    return raw[s.TIMESTAMP].min().normalize() + pd.Timedelta(days=day)


def test_batch_features_equal_row_by_row_online_features(raw: pd.DataFrame) -> None:
    cut = _cut(raw, 10)
    history, incoming = raw[raw[s.TIMESTAMP] < cut], raw[raw[s.TIMESTAMP] >= cut].head(250)
    batch = TransactionFeaturizer.from_params(PARAMS).fit(history).transform(incoming)

    online = TransactionFeaturizer.from_params(PARAMS).fit(history)
    rows = []
    for i in range(len(incoming)):
        row = incoming.iloc[[i]]
        rows.append(online.transform(row))
        online.update(row)  # the label arrives with the row; used only after the delay
    # Equal to the bit, mean amounts included: the paths sum their windows in different orders.
    np.testing.assert_array_equal(pd.concat(rows).to_numpy(), batch.to_numpy())


def test_one_pass_over_everything_equals_incremental_scoring(raw: pd.DataFrame) -> None:
    cut = _cut(raw, 9)
    full, _ = featurize_frame(raw, PARAMS)
    incremental = TransactionFeaturizer.from_params(PARAMS).fit(raw[raw[s.TIMESTAMP] < cut])
    later = raw[s.TIMESTAMP] >= cut
    np.testing.assert_allclose(
        incremental.transform(raw[later]).to_numpy(), full[later].to_numpy(), atol=1e-9
    )


def test_future_rows_do_not_change_past_features(raw: pd.DataFrame) -> None:
    cut = _cut(raw, 8)
    full, _ = featurize_frame(raw, PARAMS)
    past_only, _ = featurize_frame(raw[raw[s.TIMESTAMP] < cut], PARAMS)
    np.testing.assert_allclose(
        full[raw[s.TIMESTAMP] < cut].to_numpy(), past_only.to_numpy(), atol=1e-9
    )


def test_labels_younger_than_the_delay_are_never_used(raw: pd.DataFrame) -> None:
    """Flipping every label inside the last two days (= the delay) must not move any feature."""
    flipped = raw.copy()
    recent = flipped[s.TIMESTAMP] >= _cut(raw, 12)
    flipped.loc[recent, s.TARGET] = 1 - flipped.loc[recent, s.TARGET]
    a, _ = featurize_frame(raw, PARAMS)
    b, _ = featurize_frame(flipped, PARAMS)
    np.testing.assert_array_equal(a.to_numpy(), b.to_numpy())


def test_labels_older_than_the_delay_are_used(raw: pd.DataFrame) -> None:
    flipped = raw.copy()
    early = flipped[s.TIMESTAMP] < _cut(raw, 4)
    flipped.loc[early, s.TARGET] = 1
    a, _ = featurize_frame(raw, PARAMS)
    b, _ = featurize_frame(flipped, PARAMS)
    assert (b["term_risk_7D"] > a["term_risk_7D"]).any()


def test_customer_window_counts_by_hand() -> None:
    t0 = pd.Timestamp("2026-03-02 10:00")
    times = [t0, t0 + pd.Timedelta("10min"), t0 + pd.Timedelta("50min"), t0 + pd.Timedelta("2h")]
    df = pd.DataFrame(
        {
            s.TRANSACTION_ID: range(4),
            s.TIMESTAMP: times,
            s.CUSTOMER_ID: [1, 1, 1, 1],
            s.TERMINAL_ID: [9, 9, 9, 9],
            s.AMOUNT: [10.0, 20.0, 30.0, 40.0],
            s.CHANNEL: "chip",
            s.MERCHANT_CATEGORY: "grocery",
        }
    )
    f, _ = featurize_frame(df, PARAMS)
    assert f["cust_count_1h"].tolist() == [1, 2, 3, 1]
    assert f["cust_mean_amount_1h"].tolist() == [10, 15, 20, 40]
    assert f["cust_count_1D"].tolist() == [1, 2, 3, 4]
    assert f["cust_log_seconds_since_last"].iloc[0] == -1
    assert f["cust_log_seconds_since_last"].iloc[1] == pytest.approx(np.log1p(600))
    assert f["amount_to_cust_mean"].iloc[3] == pytest.approx(40 / 25)


def test_order_free_means_do_not_depend_on_summation_order() -> None:
    one_way, other_way = (0.1 + 0.2) + 0.3, 0.1 + (0.2 + 0.3)
    assert one_way != other_way  # 0.6000000000000001 against 0.6
    means = order_free(np.array([one_way, other_way]) / 3)
    assert means[0] == means[1]
    assert means[0] == pytest.approx(0.2, rel=2.0**-36)


def test_order_free_keeps_sign_short_values_and_non_finite_ones() -> None:
    values = np.array([-7.435000000000011, -7.435, 10.0, 15.0, 0.0, np.inf, -np.inf, np.nan])
    rounded = order_free(values)
    assert rounded[0] == rounded[1] < 0
    assert rounded[2:5].tolist() == [10.0, 15.0, 0.0]  # few mantissa bits: already on the grid
    assert rounded[5] == np.inf and rounded[6] == -np.inf and np.isnan(rounded[7])
    many = np.random.default_rng(0).lognormal(sigma=3.0, size=10_000)
    assert np.max(np.abs(order_free(many) - many) / many) <= 2.0**-37


def test_state_survives_pickling(raw: pd.DataFrame) -> None:
    cut = _cut(raw, 10)
    fitted = TransactionFeaturizer.from_params(PARAMS).fit(raw[raw[s.TIMESTAMP] < cut])
    clone = pickle.loads(pickle.dumps(fitted))
    later = raw[raw[s.TIMESTAMP] >= cut]
    pd.testing.assert_frame_equal(fitted.transform(later), clone.transform(later))


def test_history_is_pruned_to_the_longest_horizon(raw: pd.DataFrame) -> None:
    _, fitted = featurize_frame(raw, PARAMS)
    horizon = pd.Timedelta("2D") + pd.Timedelta("7D") + pd.Timedelta("1D")
    oldest = pd.Timestamp(fitted.history_.time.min(), unit="s")
    assert oldest >= raw[s.TIMESTAMP].max() - horizon


def test_unknown_customers_and_terminals_get_empty_history(raw: pd.DataFrame) -> None:
    fitted = TransactionFeaturizer.from_params(PARAMS).fit(raw)
    row = raw.tail(1).assign(**{s.CUSTOMER_ID: 10**9, s.TERMINAL_ID: 10**9})
    row[s.TIMESTAMP] = raw[s.TIMESTAMP].max() + pd.Timedelta("1h")
    f = fitted.transform(row)
    assert f["cust_count_7D"].iloc[0] == 1 and f["term_count_7D"].iloc[0] == 0


def test_missing_columns_are_named(raw: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="terminal_id"):
        TransactionFeaturizer().fit(raw.drop(columns=[s.TERMINAL_ID]))


def test_transform_before_fit_is_a_clear_error(raw: pd.DataFrame) -> None:
    # scikit-learn's own error, so sklearn tooling (pipelines, check_is_fitted) understands it
    with pytest.raises(NotFittedError, match="not fitted"):
        TransactionFeaturizer().transform(raw.head(3))
    with pytest.raises(NotFittedError, match="not fitted"):
        TransactionFeaturizer().update(raw.head(3))


def test_ids_and_sensitive_columns_are_not_features() -> None:
    names = set(
        TransactionFeaturizer()
        .fit(pd.DataFrame(columns=list(s.SCORING_COLUMNS)))
        .feature_names_out_
    )
    assert not names & {*s.ID_COLUMNS, *s.SENSITIVE_COLUMNS, s.TARGET}


@pytest.mark.parametrize("side", ["left", "right"])
def test_sorted_search_answers_exactly_like_searchsorted(side: str) -> None:
    from inferloop.data.history import _SORTED_SEARCH_MIN
    from inferloop.data.history import search_sorted as _search

    rng = np.random.default_rng(3)
    keys = np.sort(rng.integers(0, 10_000, 50_000))  # repeated keys: sides differ
    for shape in [(10,), (3, _SORTED_SEARCH_MIN), (_SORTED_SEARCH_MIN * 2,)]:
        queries = rng.integers(-5, 10_005, shape)
        found = _search(keys, queries, side)  # type: ignore[arg-type]
        assert found.shape == queries.shape
        np.testing.assert_array_equal(found, np.searchsorted(keys, queries, side=side))


@pytest.mark.parametrize("side", ["left", "right"])
def test_a_search_with_an_order_hint_answers_like_searchsorted(side: str) -> None:
    """The hint is used where it sorts a row and ignored where it does not."""
    from inferloop.data.history import _SORTED_SEARCH_MIN
    from inferloop.data.history import search_sorted as _search

    rng = np.random.default_rng(4)
    keys = np.sort(rng.integers(0, 10_000, 50_000))
    hi = rng.integers(0, 10_000, _SORTED_SEARCH_MIN * 2)
    order = np.argsort(hi)
    shifted = np.stack([hi - 10, hi - 500, rng.integers(0, 10_000, len(hi))])  # last: unsorted
    for queries in (hi, shifted):
        found = _search(keys, queries, side, order)  # type: ignore[arg-type]
        np.testing.assert_array_equal(found, np.searchsorted(keys, queries, side=side))


def test_sorted_events_built_from_ordered_or_shuffled_events_are_the_same() -> None:
    """A store's read comes in time order and skips the sort; the result must not change."""
    from inferloop.data.history import SortedEvents

    rng = np.random.default_rng(5)
    for n_keys in (1, 7):
        codes = np.sort(rng.integers(0, n_keys, 300))
        # distinct times: events at one key and second keep their input order either way
        times = np.concatenate(
            [np.sort(rng.choice(10**6, (codes == c).sum(), replace=False)) for c in range(n_keys)]
        )
        amounts = rng.gamma(2.0, 30.0, len(codes))
        ordered = SortedEvents.build(codes, times, {"amount": amounts})
        shuffle = rng.permutation(len(codes))
        shuffled = SortedEvents.build(codes[shuffle], times[shuffle], {"amount": amounts[shuffle]})
        np.testing.assert_array_equal(ordered.comp, shuffled.comp)
        for a, b in zip(ordered.cums["amount"], shuffled.cums["amount"], strict=True):
            np.testing.assert_array_equal(a, b)
