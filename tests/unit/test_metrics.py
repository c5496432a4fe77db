"""Unit tests for inferloop.evaluation.metrics on tiny hand-computed data."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from sklearn.metrics import average_precision_score, roc_auc_score

from inferloop.evaluation.metrics import (
    ClassificationMetrics,
    ThresholdPolicy,
    calibration_table,
    card_precision_at_k,
    choose_threshold,
    compute_metrics,
    pr_curve_points,
    roc_curve_points,
)
from inferloop.evaluation.plots import plot_calibration, plot_pr_roc, plot_score_distribution

# Ten transactions, four frauds, two days (five per day).
SCORES = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05])
LABELS = np.array([1, 1, 0, 1, 0, 1, 0, 0, 0, 0])
TIMES = pd.to_datetime(["2026-01-05 10:00"] * 5 + ["2026-01-06 11:00"] * 5)
CUSTOMERS = np.array(["a", "b", "c", "d", "e", "a", "b", "c", "d", "e"])


# --------------------------------------------------------------------------------------------
# card precision top-k
# --------------------------------------------------------------------------------------------


def _two_day_cards() -> pd.DataFrame:
    """Day 1: c1 max 0.9 (fraud on its other tx), c2 0.8 legit, c3 0.7 fraud.
    Day 2: c4 0.95 fraud, c5 0.3 fraud, c1 0.05 legit."""
    return pd.DataFrame(
        {
            "customer": ["c1", "c1", "c2", "c3", "c4", "c5", "c1"],
            "score": [0.9, 0.2, 0.8, 0.7, 0.95, 0.3, 0.05],
            "label": [0, 1, 0, 1, 1, 1, 0],
            "ts": pd.to_datetime(
                [
                    "2026-01-05 01:00",
                    "2026-01-05 23:00",
                    "2026-01-05 12:00",
                    "2026-01-05 13:00",
                    "2026-01-06 08:00",
                    "2026-01-06 09:00",
                    "2026-01-06 10:00",
                ]
            ),
        }
    )


def _cpk(frame: pd.DataFrame, k: int) -> float:
    return card_precision_at_k(frame["score"], frame["label"], frame["customer"], frame["ts"], k=k)


def test_card_precision_uses_daily_card_max_of_score_and_label() -> None:
    # k=2. Day 1 top cards: c1 (max label 1), c2 (0) -> 1/2. Day 2: c4 (1), c5 (1) -> 2/2.
    assert _cpk(_two_day_cards(), k=2) == pytest.approx(0.75)


def test_card_precision_counts_a_card_separately_each_day() -> None:
    # k=3. Day 1: c1 (1), c2 (0), c3 (1) -> 2/3. Day 2: c4 (1), c5 (1), c1 (0) -> 2/3.
    assert _cpk(_two_day_cards(), k=3) == pytest.approx(2 / 3)


def test_card_precision_divides_short_days_by_k() -> None:
    # k=5: day 1 has 3 cards, 2 fraudulent -> 2/5; day 2 has 3 cards, 2 fraudulent -> 2/5.
    assert _cpk(_two_day_cards(), k=5) == pytest.approx(0.4)


def test_card_precision_breaks_score_ties_by_customer_id() -> None:
    # k=1, both cards score 0.5 on the same day: "a" (fraud) ranks before "b" (legit)
    ts = pd.to_datetime(["2026-01-05"] * 2)
    assert card_precision_at_k([0.5, 0.5], [0, 1], ["b", "a"], ts, k=1) == 1.0
    assert card_precision_at_k([0.5, 0.5], [1, 0], ["b", "a"], ts, k=1) == 0.0


def test_card_precision_rejects_bad_k_and_lengths() -> None:
    frame = _two_day_cards()
    with pytest.raises(ValueError, match="k must be"):
        _cpk(frame, k=0)
    with pytest.raises(ValueError, match="customer_ids"):
        card_precision_at_k(frame["score"], frame["label"], ["c1"], frame["ts"])


def test_card_precision_accepts_tz_aware_timestamps_and_numpy() -> None:
    frame = _two_day_cards()
    ts = frame["ts"].dt.tz_localize("UTC")
    value = card_precision_at_k(
        frame["score"].to_numpy(), frame["label"].to_numpy(), frame["customer"].to_numpy(), ts, k=2
    )
    assert value == pytest.approx(0.75)


# --------------------------------------------------------------------------------------------
# threshold policies
# --------------------------------------------------------------------------------------------


def test_min_precision_picks_best_recall_above_the_floor() -> None:
    # precision >= 0.7 holds at 0.9, 0.8 (1.0) and 0.6 (0.75); best recall 0.75 at 0.6.
    choice = choose_threshold(SCORES, LABELS, ThresholdPolicy("min_precision", min_precision=0.7))
    assert (choice.threshold, choice.kind) == (0.6, "min_precision")
    assert (choice.precision, choice.recall) == (0.75, 0.75)
    assert not choice.fell_back
    assert math.isnan(choice.alerts_per_day)  # no timestamps given


def test_min_precision_breaks_recall_ties_with_the_highest_threshold() -> None:
    # recall 1.0 at 0.4 (p 4/6), 0.3 (4/7), 0.2 (4/8): 0.4 raises the fewest alerts.
    choice = choose_threshold(SCORES, LABELS, ThresholdPolicy("min_precision", min_precision=0.5))
    assert choice.threshold == 0.4
    assert choice.precision == pytest.approx(4 / 6)
    assert choice.recall == 1.0


def test_min_precision_falls_back_to_max_f1_and_says_so() -> None:
    scores, labels = [0.9, 0.8, 0.7, 0.6], [0, 1, 0, 1]
    # best precision is 0.5; max F1 = 2*2/(4+2) at threshold 0.6
    choice = choose_threshold(scores, labels, ThresholdPolicy("min_precision", min_precision=0.6))
    assert choice.fell_back
    assert choice.threshold == 0.6
    assert (choice.precision, choice.recall) == (0.5, 1.0)


def test_max_f1() -> None:
    # F1 = 2tp / (alerts + 4): best 8/10 at threshold 0.4
    choice = choose_threshold(SCORES, LABELS, ThresholdPolicy("max_f1"))
    assert choice.threshold == 0.4
    assert not choice.fell_back


@pytest.mark.parametrize(("per_day", "threshold"), [(2.0, 0.6), (2.5, 0.5), (5.0, 0.05)])
def test_alert_budget_on_toy_data(per_day: float, threshold: float) -> None:
    choice = choose_threshold(
        SCORES, LABELS, ThresholdPolicy("alert_budget", alerts_per_day=per_day), TIMES
    )
    assert choice.threshold == threshold
    assert choice.alerts_per_day == per_day


def test_alert_budget_meets_the_daily_rate_on_random_scores() -> None:
    rng = np.random.default_rng(0)
    n, days = 5000, 5
    scores = rng.random(n)
    labels = (rng.random(n) < 0.05).astype(int)
    times = pd.Timestamp("2026-01-05") + pd.to_timedelta(rng.integers(0, days * 86400, n), "s")
    policy = ThresholdPolicy("alert_budget", alerts_per_day=17.3)
    choice = choose_threshold(scores, labels, policy, times)
    assert choice.alerts_per_day <= 17.3
    assert choice.alerts_per_day == pytest.approx(17.3, abs=1 / days)
    assert (scores >= choice.threshold).sum() / days == choice.alerts_per_day


def test_alert_budget_never_exceeds_budget_with_ties_and_can_alert_nothing() -> None:
    scores, labels = [0.9, 0.9, 0.9, 0.1], [1, 0, 0, 0]
    times = pd.to_datetime(["2026-01-05"] * 4)
    choice = choose_threshold(
        scores, labels, ThresholdPolicy("alert_budget", alerts_per_day=2), times
    )
    assert choice.threshold > 0.9
    assert choice.alerts_per_day == 0.0
    assert math.isnan(choice.precision)


def test_alert_budget_needs_timestamps() -> None:
    with pytest.raises(ValueError, match="timestamps"):
        choose_threshold(SCORES, LABELS, ThresholdPolicy("alert_budget"))


def test_fixed_threshold_reports_what_it_achieves() -> None:
    choice = choose_threshold(SCORES, LABELS, ThresholdPolicy("fixed", threshold=0.55), TIMES)
    assert choice.threshold == 0.55
    assert (choice.precision, choice.recall, choice.alerts_per_day) == (0.75, 0.75, 2.0)


def test_policies_that_need_positives_refuse_an_all_negative_window() -> None:
    with pytest.raises(ValueError, match="positive"):
        choose_threshold(SCORES, np.zeros(10), ThresholdPolicy("max_f1"))


def test_threshold_policy_validates_its_fields() -> None:
    with pytest.raises(ValueError, match="unknown threshold policy"):
        ThresholdPolicy("top_k")
    with pytest.raises(ValueError, match="min_precision"):
        ThresholdPolicy(min_precision=1.5)


# --------------------------------------------------------------------------------------------
# classification metrics
# --------------------------------------------------------------------------------------------


def test_compute_metrics_on_toy_data() -> None:
    m = compute_metrics(LABELS, SCORES, 0.55, CUSTOMERS, TIMES, k=2)
    assert m.roc_auc == pytest.approx(roc_auc_score(LABELS, SCORES))
    assert m.average_precision == pytest.approx(average_precision_score(LABELS, SCORES))
    # day 1 top-2 cards a (1), b (1) -> 1; day 2 top-2 a (1), b (0) -> 0.5
    assert m.card_precision_at_k == pytest.approx(0.75)
    assert (m.precision, m.recall, m.f1) == (0.75, 0.75, 0.75)
    assert m.brier == pytest.approx(np.mean((SCORES - LABELS) ** 2))
    assert (m.n, m.n_positive, m.positive_rate, m.alerts_per_day, m.k) == (10, 4, 0.4, 2.0, 2)


def test_as_dict_is_flat_floats_with_prefix() -> None:
    d = compute_metrics(LABELS, SCORES, 0.5, CUSTOMERS, TIMES).as_dict(prefix="test/")
    assert set(d) == {f"test/{name}" for name in ClassificationMetrics.__dataclass_fields__}
    assert all(type(value) is float for value in d.values())


def test_single_class_gives_nan_not_a_crash() -> None:
    m = compute_metrics(np.zeros(10), SCORES, 0.5, CUSTOMERS, TIMES)
    assert math.isnan(m.roc_auc) and math.isnan(m.average_precision)
    assert math.isnan(m.recall) and math.isnan(m.f1)
    assert m.precision == 0.0 and m.card_precision_at_k == 0.0


def test_no_alerts_gives_nan_precision_and_zero_recall() -> None:
    m = compute_metrics(LABELS, SCORES, 0.99, CUSTOMERS, TIMES)
    assert math.isnan(m.precision)
    assert (m.recall, m.f1, m.alerts_per_day) == (0.0, 0.0, 0.0)


def test_empty_and_malformed_inputs_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="empty"):
        compute_metrics([], [], 0.5, [], pd.to_datetime([]))
    with pytest.raises(ValueError, match="rows"):
        compute_metrics(LABELS, SCORES[:5], 0.5, CUSTOMERS, TIMES)
    with pytest.raises(ValueError, match="0/1"):
        compute_metrics(LABELS * 2, SCORES, 0.5, CUSTOMERS, TIMES)
    with pytest.raises(ValueError, match="finite"):
        compute_metrics(LABELS, np.r_[SCORES[:9], np.nan], 0.5, CUSTOMERS, TIMES)


# --------------------------------------------------------------------------------------------
# curves and tables
# --------------------------------------------------------------------------------------------


def _random_scores(n: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    labels = (rng.random(n) < 0.1).astype(int)
    scores = np.clip(rng.normal(0.3 + 0.4 * labels, 0.15), 0, 1)
    return labels, scores


def test_pr_curve_points_are_downsampled_and_finite() -> None:
    labels, scores = _random_scores()
    points = pr_curve_points(labels, scores, max_points=50)
    assert list(points.columns) == ["precision", "recall", "threshold"]
    assert 2 <= len(points) <= 50
    assert np.isfinite(points.to_numpy()).all()
    assert points["recall"].iloc[0] == 1.0  # lowest threshold first
    assert points["threshold"].is_monotonic_increasing


def test_roc_curve_points_are_downsampled_and_finite() -> None:
    labels, scores = _random_scores()
    points = roc_curve_points(labels, scores, max_points=30)
    assert list(points.columns) == ["fpr", "tpr", "threshold"]
    assert len(points) <= 30
    assert np.isfinite(points.to_numpy()).all()
    assert tuple(points.iloc[0][["fpr", "tpr"]]) == (0.0, 0.0)
    assert tuple(points.iloc[-1][["fpr", "tpr"]]) == (1.0, 1.0)


def test_small_curves_are_returned_whole() -> None:
    assert len(pr_curve_points(LABELS, SCORES, max_points=200)) == 10


def test_calibration_table_has_equal_count_quantile_bins() -> None:
    labels, scores = _random_scores(1000)
    table = calibration_table(labels, scores, n_bins=10)
    assert list(table.columns) == ["mean_score", "fraud_rate", "count"]
    assert len(table) == 10 and (table["count"] == 100).all()
    assert table["mean_score"].is_monotonic_increasing
    assert (table["count"] * table["fraud_rate"]).sum() == pytest.approx(labels.sum())


def test_calibration_table_on_toy_data() -> None:
    table = calibration_table(LABELS, SCORES, n_bins=2)
    # low half: 0.05..0.4 holds one fraud (0.4); high half: 0.5..0.9 holds three
    assert table["fraud_rate"].tolist() == [0.2, 0.6]
    assert table["mean_score"].tolist() == pytest.approx([0.21, 0.7])


# --------------------------------------------------------------------------------------------
# plots
# --------------------------------------------------------------------------------------------


def _legend_texts(ax: Axes) -> list[str]:
    legend = ax.get_legend()
    assert legend is not None
    return [text.get_text() for text in legend.get_texts()]


def test_plot_pr_roc_has_two_panels_and_metric_legends() -> None:
    labels, scores = _random_scores()
    fig = plot_pr_roc(labels, {"lgbm": scores, "baseline": scores * 0.5})
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    pr_legend, roc_legend = (_legend_texts(ax) for ax in fig.axes)
    assert any(text.startswith("lgbm (AP=") for text in pr_legend)
    assert any(text.startswith("baseline (AUC=") for text in roc_legend)


def test_plot_calibration_and_score_distribution_return_figures(tmp_path: object) -> None:
    labels, scores = _random_scores()
    for fig in (
        plot_calibration(labels, scores),
        plot_calibration(labels, {"a": scores, "b": scores**2}, log_scale=True),
        plot_score_distribution(labels, scores),
        plot_score_distribution([0, 1], [0.5, 0.5]),
    ):
        assert isinstance(fig, Figure)
    assert plot_score_distribution(labels, scores).axes[0].get_yscale() == "log"


def test_import_leaves_pyplot_and_backend_alone() -> None:
    code = (
        "import sys, inferloop.evaluation.metrics, inferloop.evaluation.fairness; "
        "print('matplotlib.pyplot' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
