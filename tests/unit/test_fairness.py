"""Unit tests for inferloop.evaluation.fairness on constructed groups with hand-computed gaps."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import equalized_odds_difference
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

from inferloop.evaluation.fairness import (
    GROUP_COLUMNS,
    GroupFairness,
    fairness_report,
    fairness_table,
    group_fairness,
    plot_group_metrics,
)
from inferloop.evaluation.fairness_ci import IntervalParams, passes_rule


def _group(
    name: str, positives: int, caught: int, negatives: int, false_alerts: int
) -> pd.DataFrame:
    """One group: ``caught`` of ``positives`` and ``false_alerts`` of ``negatives`` alerted."""
    y = [1] * positives + [0] * negatives
    pred = (
        [1] * caught
        + [0] * (positives - caught)
        + [1] * false_alerts
        + [0] * (negatives - false_alerts)
    )
    score = [0.9 if p else 0.1 for p in pred]
    return pd.DataFrame({"group": name, "y": y, "pred": pred, "score": score})


def _frame(*groups: pd.DataFrame) -> pd.DataFrame:
    return pd.concat(groups, ignore_index=True)


def _fairness(
    frame: pd.DataFrame, min_group_size: int = 30, min_positives: int = 10
) -> GroupFairness:
    return group_fairness(
        frame["y"],
        frame["pred"],
        frame["score"],
        frame["group"].rename("age_band"),
        min_group_size,
        IntervalParams(min_group_positives=min_positives),
    )


# A: TPR 10/10 = 1.0, FPR 3/30 = 0.1, selection 13/40. B: TPR 5/10 = 0.5, FPR 0.1, selection 8/40.
A = _group("A", positives=10, caught=10, negatives=30, false_alerts=3)
B = _group("B", positives=10, caught=5, negatives=30, false_alerts=3)


def test_equalized_odds_and_demographic_parity_hand_computed() -> None:
    result = _fairness(_frame(A, B))
    assert result.attribute == "age_band"
    assert result.equalized_odds_difference == pytest.approx(0.5)
    assert result.tpr_difference == pytest.approx(0.5)
    assert result.fpr_difference == pytest.approx(0.0)
    assert result.demographic_parity_difference == pytest.approx(13 / 40 - 8 / 40)


def test_by_group_table() -> None:
    frame = _frame(A, B)
    result = group_fairness(frame["y"], frame["pred"], frame["score"], frame["group"])
    table = result.by_group
    assert list(table.columns) == list(GROUP_COLUMNS)
    assert table.loc["A", "count"] == 40 and table.loc["B", "positives"] == 10
    assert table.loc["A", "tpr"] == 1.0 and table.loc["B", "tpr"] == 0.5
    assert table.loc["B", "fpr"] == pytest.approx(0.1)
    assert table.loc["A", "precision"] == pytest.approx(10 / 13)
    # B's scores: 5 caught frauds and 3 false alerts tie at 0.9 (P 5/8, R 0.5), the rest at 0.1
    assert table.loc["B", "average_precision"] == pytest.approx(0.5 * 5 / 8 + 0.5 * 10 / 40)
    assert table["included"].all()


def test_small_groups_are_reported_but_excluded_from_gaps() -> None:
    # C: 6 rows with TPR 0 and FPR 1 would dominate every gap if it were included
    small = _group("C", positives=2, caught=0, negatives=4, false_alerts=4)
    result = _fairness(_frame(small, A, B), min_group_size=30)
    assert not result.by_group.loc["C", "included"]
    assert result.by_group.loc["C", "count"] == 6
    assert result.equalized_odds_difference == pytest.approx(0.5)
    assert result.demographic_parity_difference == pytest.approx(0.125)
    # with a lower bar, C enters: TPR gap 1.0 - 0.0, FPR gap 1.0 - 0.1
    everyone = _fairness(_frame(A, B, small), min_group_size=5, min_positives=1)
    assert (everyone.tpr_difference, everyone.fpr_difference) == pytest.approx((1.0, 0.9))
    assert everyone.equalized_odds_difference == pytest.approx(1.0)


def test_matches_fairlearn_when_every_rate_is_defined() -> None:
    frame = _frame(A, B, _group("C", positives=5, caught=1, negatives=35, false_alerts=7))
    result = _fairness(frame, min_positives=1)
    expected = equalized_odds_difference(
        frame["y"], frame["pred"], sensitive_features=frame["group"], agg="worst_case"
    )
    assert result.equalized_odds_difference == pytest.approx(expected)


def test_group_without_frauds_has_no_tpr_but_counts_for_fpr() -> None:
    # D has no frauds: TPR undefined (fairlearn would say 0), FPR 10/40, alert rate 10/40
    no_fraud = _group("D", positives=0, caught=0, negatives=40, false_alerts=10)
    result = _fairness(_frame(A, B, no_fraud))
    assert math.isnan(result.by_group.loc["D", "tpr"])
    assert math.isnan(result.by_group.loc["D", "average_precision"])
    assert result.tpr_difference == pytest.approx(0.5)
    assert result.fpr_difference == pytest.approx(0.25 - 0.1)
    assert result.equalized_odds_difference == pytest.approx(0.5)
    assert result.demographic_parity_difference == pytest.approx(13 / 40 - 8 / 40)


def test_fewer_than_two_comparable_groups_give_nan_gaps() -> None:
    result = _fairness(_frame(A), min_group_size=30)
    assert math.isnan(result.demographic_parity_difference)
    assert math.isnan(result.equalized_odds_difference)


def test_missing_sensitive_values_form_their_own_group() -> None:
    frame = _frame(A, B)
    sensitive = frame["group"].where(frame["group"] == "A", None)
    result = group_fairness(frame["y"], frame["pred"], frame["score"], sensitive)
    assert set(result.by_group.index) == {"A", "<missing>"}


def test_as_dict_is_flat_and_mlflow_safe() -> None:
    frame = _frame(A, B.assign(group="61+"))
    result = group_fairness(
        frame["y"], frame["pred"], frame["score"], frame["group"].rename("age_band")
    )
    flat = result.as_dict(per_group=True)
    assert flat["fairness/age_band/equalized_odds_difference"] == pytest.approx(0.5)
    assert flat["fairness/age_band/n_groups_included"] == 2.0
    assert flat["fairness/age_band/61plus/tpr"] == 0.5
    assert all(type(value) is float for value in flat.values())
    assert "fairness/age_band/A/tpr" not in result.as_dict()


def test_inputs_are_checked() -> None:
    frame = _frame(A, B)
    with pytest.raises(ValueError, match="empty"):
        group_fairness([], [], [], pd.Series([], dtype=object))
    with pytest.raises(ValueError, match="rows"):
        group_fairness(frame["y"], frame["pred"], frame["score"], frame["group"][:10])
    with pytest.raises(ValueError, match="0/1"):
        group_fairness(frame["y"], frame["score"], frame["score"], frame["group"])


def _scored_frame() -> pd.DataFrame:
    frame = _frame(A, B).rename(columns={"group": "age_band"})
    frame["region"] = np.where(np.arange(len(frame)) % 2 == 0, "north", "south")
    return frame


def test_fairness_report_and_table() -> None:
    report = fairness_report(
        _scored_frame(),
        y_col="y",
        pred_col="pred",
        score_col="score",
        attributes=["age_band", "region"],
    )
    assert list(report) == ["age_band", "region"]
    assert report["age_band"].equalized_odds_difference == pytest.approx(0.5)
    table = fairness_table(report)
    assert list(table.columns) == ["attribute", "group", *GROUP_COLUMNS]
    assert len(table) == 4
    assert table.set_index(["attribute", "group"]).loc[("age_band", "B"), "tpr"] == 0.5


def test_fairness_report_names_missing_columns() -> None:
    with pytest.raises(ValueError, match="channel"):
        fairness_report(
            _scored_frame(), y_col="y", pred_col="pred", score_col="score", attributes=["channel"]
        )


def test_plot_group_metrics_has_three_panels_per_attribute() -> None:
    report = fairness_report(
        _scored_frame(),
        y_col="y",
        pred_col="pred",
        score_col="score",
        attributes=["age_band", "region"],
    )
    fig = plot_group_metrics(report)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 6


def test_plot_group_metrics_copes_with_undefined_rates_and_small_groups() -> None:
    frame = _frame(A, _group("D", positives=0, caught=0, negatives=40, false_alerts=10))
    frame = _frame(frame, _group("E", positives=1, caught=1, negatives=1, false_alerts=0))
    report = {"age_band": _fairness(frame)}
    fig = plot_group_metrics(report)
    assert len(fig.axes) == 3
    grey = to_rgba("lightgrey")
    # groups A, D, E: only E (2 rows) is below min_group_size
    assert [bar.get_facecolor() == grey for bar in fig.axes[0].patches] == [False, False, True]


# --------------------------------------------------------------------------- intervals


def test_every_rate_and_gap_carries_an_interval_around_its_value() -> None:
    result = _fairness(_frame(A, B))
    for gap in ("equalized_odds_difference", "tpr_difference", "demographic_parity_difference"):
        low, high = result.interval(gap)
        assert low <= getattr(result, gap) <= high, (gap, low, high)
    table = result.by_group
    assert (table["tpr_low"] <= table["tpr"]).all() and (table["tpr"] <= table["tpr_high"]).all()
    assert {"tpr_low", "fpr_high", "selection_rate_low", "note"} <= set(table.columns)
    flat = result.as_dict()
    assert "fairness/age_band/equalized_odds_difference_low" in flat


def test_intervals_narrow_with_more_rows_and_are_reproducible() -> None:
    small, large = _frame(A, B), _frame(*([A] * 10), *([B] * 10))
    width = lambda r: np.subtract(*r.interval("tpr_difference")[::-1])  # noqa: E731
    assert width(_fairness(large)) < width(_fairness(small)) / 2
    assert _fairness(small).intervals == _fairness(small).intervals


def test_a_group_with_too_few_frauds_is_not_assessable_and_says_so() -> None:
    few = _group("C", positives=3, caught=0, negatives=60, false_alerts=1)
    result = _fairness(_frame(A, B, few))
    assert result.by_group.loc["C", "note"] == "TPR not assessable: 3 frauds (< 10)"
    assert result.tpr_difference == pytest.approx(0.5)  # A and B only
    alone = _fairness(_frame(A, few))
    assert math.isnan(alone.equalized_odds_difference)
    why = alone.not_assessable["equalized_odds_difference"]
    assert "age_band: fewer than two groups" in why and "C 63 rows / 3 frauds" in why, why


def test_gate_rules() -> None:
    assert passes_rule(0.5, 0.3, 0.7, 0.45, "lower_bound")
    assert not passes_rule(0.5, 0.3, 0.7, 0.45, "upper_bound")
    assert not passes_rule(0.5, 0.3, 0.7, 0.45, "point")
    assert not passes_rule(math.nan, math.nan, math.nan, 0.45, "lower_bound")
    with pytest.raises(ValueError, match="rule must be one of"):
        IntervalParams(rule="median")
