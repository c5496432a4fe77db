"""Pure metric functions for fraud detection: ranking, card precision@k, threshold policies, curves.

Conventions used throughout:

* ``scores`` are fraud probabilities (higher means more suspicious); a transaction raises an
  alert when ``score >= threshold``.
* ``y_true`` holds 0/1 labels (1 = fraud).
* A *day* is the calendar day of ``timestamps`` (in their own time zone, if any).
* Quantities that are undefined on the given data (precision with no alerts, recall with no
  positives, ROC-AUC with a single class) are ``NaN`` rather than an error or a fake ``0``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Final

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from sklearn.metrics import (
    average_precision_score,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

from inferloop.core import schema as s

if TYPE_CHECKING:
    pass

__all__ = [
    "THRESHOLD_KINDS",
    "ClassificationMetrics",
    "FloatArray",
    "IntArray",
    "ThresholdChoice",
    "ThresholdPolicy",
    "calibration_table",
    "card_precision_at_k",
    "choose_threshold",
    "compute_metrics",
    "investigation_units",
    "labels_and_scores",
    "pr_curve_points",
    "require_both_classes",
    "roc_curve_points",
]


FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

THRESHOLD_KINDS: Final = ("min_precision", "alert_budget", "max_f1", "fixed")


# --------------------------------------------------------------------------------------------
# input handling
# --------------------------------------------------------------------------------------------


def labels_and_scores(y_true: ArrayLike, scores: ArrayLike) -> tuple[IntArray, FloatArray]:
    """Validate and convert labels and scores to 1-d numpy arrays of equal, non-zero length."""
    y = np.asarray(y_true).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.size == 0 or s.size == 0:
        raise ValueError("metrics need at least one row: y_true and scores are empty")
    if y.shape != s.shape:
        raise ValueError(f"y_true has {y.size} rows but scores has {s.size}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("y_true must hold only 0/1 labels")
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite (found NaN or inf)")
    return y.astype(np.int64), s


def _calendar_days(timestamps: ArrayLike, n: int) -> pd.DatetimeIndex:
    """Calendar day (midnight, time zone kept) of each of ``n`` timestamps."""
    values = timestamps if isinstance(timestamps, pd.Series | pd.Index) else np.ravel(timestamps)
    days = pd.DatetimeIndex(pd.to_datetime(pd.Index(values))).normalize()
    if len(days) != n:
        raise ValueError(f"timestamps has {len(days)} rows but scores has {n}")
    if days.hasnans:
        raise ValueError("timestamps must not contain missing values")
    return days


def _n_days(timestamps: ArrayLike | None, n: int) -> float:
    """Number of distinct calendar days in ``timestamps`` (NaN when none are given)."""
    if timestamps is None:
        return float("nan")
    return float(_calendar_days(timestamps, n).nunique())


def _safe_ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, or NaN when the denominator is zero."""
    return float(numerator / denominator) if denominator > 0 else float("nan")


# --------------------------------------------------------------------------------------------
# card precision top-k
# --------------------------------------------------------------------------------------------


def card_precision_at_k(
    scores: ArrayLike,
    y_true: ArrayLike,
    customer_ids: ArrayLike,
    timestamps: ArrayLike,
    k: int = 100,
) -> float:
    """Mean daily card precision top-k, as defined in the Fraud Detection Handbook.

    For each calendar day, every customer (card) gets the maximum score and the maximum label
    of their transactions that day; customers are ranked by that maximum score and the ``k``
    highest-ranked are the day's alerts. The day's card precision is the number of fraudulent
    customers among them divided by ``k``. The result is the mean over the days present in
    ``timestamps``.

    Parameters
    ----------
    scores : array-like of float
        Fraud scores, one per transaction.
    y_true : array-like of {0, 1}
        Fraud labels, one per transaction.
    customer_ids : array-like
        Customer (card) identifier of each transaction.
    timestamps : array-like of datetime
        Transaction times; their calendar day defines the daily groups.
    k : int, default 100
        Number of customers an investigation team can check per day.

    Returns
    -------
    float
        Mean card precision top-k over days, in ``[0, 1]``.

    Notes
    -----
    Days with fewer than ``k`` customers are still divided by ``k`` (as in the Handbook): the
    metric measures the use made of a fixed daily investigation capacity, so a day that cannot
    fill it scores lower. Ties in the maximum score are broken by customer id, which makes the
    result deterministic. Unlike the Handbook, cards already known to be compromised are not
    removed from later days.
    """
    if k < 1:
        raise ValueError(f"k must be a positive integer, got {k}")
    y, s = labels_and_scores(y_true, scores)
    day, card, n_cards = _day_and_card_codes(timestamps, customer_ids, s.size)
    card_day, max_score, max_label = _daily_card_max(day, card, n_cards, s, y)
    # entries come sorted by (day, customer id): two stable sorts rank them by descending
    # score within each day, customer id breaking ties
    by_score = np.argsort(-max_score, kind="stable")
    order = by_score[np.argsort(card_day[by_score], kind="stable")]
    ranked_day, ranked_label = card_day[order], max_label[order]
    rank_in_day = np.arange(ranked_day.size) - np.searchsorted(ranked_day, ranked_day)
    in_top_k = rank_in_day < k
    frauds_in_top_k = np.bincount(ranked_day[in_top_k], weights=ranked_label[in_top_k])
    return float(np.mean(frauds_in_top_k / k))


def _daily_card_max(
    day: IntArray, card: IntArray, n_cards: int, s: FloatArray, y: IntArray
) -> tuple[IntArray, FloatArray, IntArray]:
    """One entry per (day, card) seen, sorted by (day, card): day code, max score, max label."""
    codes, keys = pd.factorize(day * n_cards + card, sort=True)
    max_score = np.full(len(keys), -np.inf)
    np.maximum.at(max_score, codes, s)
    max_label = np.zeros(len(keys), dtype=np.int64)
    np.maximum.at(max_label, codes, y)
    return np.asarray(keys, dtype=np.int64) // n_cards, max_score, max_label


def _day_and_card_codes(
    timestamps: ArrayLike, customer_ids: ArrayLike, n: int
) -> tuple[IntArray, IntArray, int]:
    """Dense codes of each row's day and customer (both in sorted order), and the card count."""
    customers = customer_ids if isinstance(customer_ids, pd.Series) else np.ravel(customer_ids)
    if isinstance(customers, np.ndarray) and customers.dtype.kind in "US":
        customers = customers.astype(object)  # hashing numpy fixed-width strings is slow
    if len(customers) != n:
        raise ValueError(f"customer_ids has {len(customers)} rows but scores has {n}")
    day_codes, _ = pd.factorize(_calendar_days(timestamps, n).asi8, sort=True)
    card_codes, cards = pd.factorize(customers, sort=True)
    if (card_codes < 0).any():
        raise ValueError("customer_ids must not contain missing values")
    return day_codes.astype(np.int64), card_codes.astype(np.int64), len(cards)


# --------------------------------------------------------------------------------------------
# threshold policies
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ThresholdPolicy:
    """How to turn scores into alerts.

    Attributes
    ----------
    kind : str
        ``"min_precision"``: the threshold with the best recall whose precision is at least
        ``min_precision`` (falls back to ``"max_f1"`` when none reaches it);
        ``"alert_budget"``: the lowest threshold that raises at most ``alerts_per_day`` alerts
        per day on average over the calendar days of the validation window (never more: the
        budget is a capacity); ``"max_f1"``: the threshold with the best F1; ``"fixed"``:
        ``threshold`` as given. Among equally good thresholds the highest (fewest alerts) wins.
    min_precision : float
        Precision floor of the ``"min_precision"`` policy.
    alerts_per_day : float
        Daily alert capacity of the ``"alert_budget"`` policy.
    threshold : float
        Threshold of the ``"fixed"`` policy.
    """

    kind: str = "min_precision"
    min_precision: float = 0.5
    alerts_per_day: float = 100.0
    threshold: float = 0.5

    def __post_init__(self) -> None:
        if self.kind not in THRESHOLD_KINDS:
            raise ValueError(
                f"unknown threshold policy {self.kind!r}; use one of {THRESHOLD_KINDS}"
            )
        if not 0.0 <= self.min_precision <= 1.0:
            raise ValueError(f"min_precision must be in [0, 1], got {self.min_precision}")
        if self.alerts_per_day < 0:
            raise ValueError(f"alerts_per_day must be >= 0, got {self.alerts_per_day}")


@dataclass(frozen=True)
class ThresholdChoice:
    """A chosen threshold and what it achieves on the data it was chosen on.

    Attributes
    ----------
    threshold : float
        Alert when ``score >= threshold``.
    kind : str
        The policy kind that was asked for.
    precision, recall : float
        Precision and recall at ``threshold`` (NaN when undefined).
    alerts_per_day : float
        Mean alerts per calendar day (NaN when no timestamps were given).
    fell_back : bool
        True when a ``"min_precision"`` policy could not reach its floor and the max-F1
        threshold was used instead.
    """

    threshold: float
    kind: str
    precision: float
    recall: float
    alerts_per_day: float
    fell_back: bool = False


@dataclass(frozen=True)
class _Candidates:
    """Every distinct score as a candidate threshold with its confusion counts."""

    thresholds: FloatArray  # distinct scores, descending
    alerts: IntArray  # rows with score >= threshold
    true_positives: IntArray
    n_positive: int

    @property
    def precision(self) -> FloatArray:
        return self.true_positives / self.alerts

    @property
    def recall(self) -> FloatArray:
        if self.n_positive == 0:
            return np.full(self.thresholds.size, np.nan)
        return self.true_positives / self.n_positive

    @property
    def f1(self) -> FloatArray:
        return 2 * self.true_positives / (self.alerts + self.n_positive)


def _candidates(y: IntArray, s: FloatArray) -> _Candidates:
    """Confusion counts at every distinct score, in one sort (O(n log n))."""
    order = np.argsort(-s, kind="stable")
    sorted_scores = s[order]
    cum_tp = np.cumsum(y[order])
    # last index of each run of equal scores: alerts include every tied row
    last = np.r_[np.flatnonzero(np.diff(sorted_scores) != 0), sorted_scores.size - 1]
    return _Candidates(
        thresholds=sorted_scores[last],
        alerts=(last + 1).astype(np.int64),
        true_positives=cum_tp[last].astype(np.int64),
        n_positive=int(y.sum()),
    )


def _best_index(values: FloatArray, mask: NDArray[np.bool_] | None = None) -> int:
    """Index of the largest value (highest threshold among ties); -1 if nothing qualifies."""
    usable = ~np.isnan(values) if mask is None else mask & ~np.isnan(values)
    if not usable.any():
        return -1
    masked = np.where(usable, values, -np.inf)
    # candidates are sorted by descending threshold, so the first maximum is the highest one
    return int(np.argmax(masked))


def _require_positives(cands: _Candidates, kind: str) -> None:
    if cands.n_positive == 0:
        raise ValueError(f"threshold policy {kind!r} needs at least one positive label")


def _index_min_precision(cands: _Candidates, min_precision: float) -> int:
    return _best_index(cands.recall, cands.precision >= min_precision)


def _threshold_for_budget(cands: _Candidates, budget: float) -> float:
    """Lowest candidate threshold raising at most ``budget`` alerts (above max if none does)."""
    within = np.flatnonzero(cands.alerts <= budget)
    if within.size == 0:
        return float(np.nextafter(cands.thresholds[0], np.inf))
    return float(cands.thresholds[within[-1]])


@dataclass(frozen=True)
class _Counts:
    """Alert counts at one threshold."""

    alerts: int
    true_positives: int
    n_positive: int

    @classmethod
    def at(cls, threshold: float, y: IntArray, s: FloatArray) -> _Counts:
        alerts = s >= threshold
        return cls(int(alerts.sum()), int(y[alerts].sum()), int(y.sum()))

    @property
    def precision(self) -> float:
        return _safe_ratio(self.true_positives, self.alerts)

    @property
    def recall(self) -> float:
        return _safe_ratio(self.true_positives, self.n_positive)

    @property
    def f1(self) -> float:
        if self.n_positive == 0:
            return float("nan")
        return 2 * self.true_positives / (self.alerts + self.n_positive)


def _choice_at(
    threshold: float,
    y: IntArray,
    s: FloatArray,
    kind: str,
    n_days: float,
    fell_back: bool = False,
) -> ThresholdChoice:
    counts = _Counts.at(threshold, y, s)
    return ThresholdChoice(
        threshold=float(threshold),
        kind=kind,
        precision=counts.precision,
        recall=counts.recall,
        alerts_per_day=_safe_ratio(counts.alerts, n_days),
        fell_back=fell_back,
    )


def choose_threshold(
    scores: ArrayLike,
    y_true: ArrayLike,
    policy: ThresholdPolicy,
    timestamps: ArrayLike | None = None,
) -> ThresholdChoice:
    """Choose an alert threshold on validation data according to ``policy``.

    Candidate thresholds are the distinct scores, so the chosen threshold reproduces exactly
    the reported precision, recall and alert rate on the same data.

    Parameters
    ----------
    scores : array-like of float
        Validation scores.
    y_true : array-like of {0, 1}
        Validation labels.
    policy : ThresholdPolicy
        Which rule to apply.
    timestamps : array-like of datetime, optional
        Transaction times; required by ``"alert_budget"``, used by every policy to report
        ``alerts_per_day``.

    Returns
    -------
    ThresholdChoice
        The threshold and its precision, recall and alerts per day on the given data.

    Raises
    ------
    ValueError
        On empty input, ``"alert_budget"`` without timestamps, or ``"min_precision"`` /
        ``"max_f1"`` without any positive label.
    """
    y, s = labels_and_scores(y_true, scores)
    n_days = _n_days(timestamps, s.size)
    if policy.kind == "fixed":
        return _choice_at(policy.threshold, y, s, policy.kind, n_days)
    cands = _candidates(y, s)
    if policy.kind == "alert_budget":
        if timestamps is None:
            raise ValueError("the 'alert_budget' threshold policy needs timestamps")
        threshold = _threshold_for_budget(cands, policy.alerts_per_day * n_days)
        return _choice_at(threshold, y, s, policy.kind, n_days)
    _require_positives(cands, policy.kind)
    index, fell_back = _best_index(cands.f1), False
    if policy.kind == "min_precision":
        constrained = _index_min_precision(cands, policy.min_precision)
        index, fell_back = (constrained, False) if constrained >= 0 else (index, True)
    return _choice_at(float(cands.thresholds[index]), y, s, policy.kind, n_days, fell_back)


# --------------------------------------------------------------------------------------------
# classification metrics
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassificationMetrics:
    """Ranking and thresholded metrics of one model on one dataset.

    ``roc_auc`` and ``average_precision`` are NaN when only one class is present; precision is
    NaN when no alert is raised; recall and F1 are NaN when there is no positive.
    """

    roc_auc: float
    average_precision: float
    card_precision_at_k: float
    k: int
    precision: float
    recall: float
    f1: float
    brier: float
    threshold: float
    n: int
    n_positive: int
    positive_rate: float
    alerts_per_day: float

    def as_dict(self, prefix: str = "") -> dict[str, float]:
        """Flat ``{prefix + name: float}`` mapping for MLflow / DVC metric logging."""
        return {f"{prefix}{name}": float(value) for name, value in asdict(self).items()}


def _ranking_metrics(y: IntArray, s: FloatArray) -> tuple[float, float]:
    """ROC-AUC and average precision, NaN when a single class is present."""
    if np.unique(y).size < 2:
        return float("nan"), float("nan")
    return float(roc_auc_score(y, s)), float(average_precision_score(y, s))


def investigation_units(frame: pd.DataFrame) -> np.ndarray:
    """What an investigator checks per alert, for card precision@k: the customer (card) of
    each transaction, or the transaction itself when the data has no customer keys."""
    for column in (s.CUSTOMER_ID, s.TRANSACTION_ID):
        if column in frame.columns:
            return frame[column].to_numpy()
    return frame.index.to_numpy()


def compute_metrics(
    y_true: ArrayLike,
    scores: ArrayLike,
    threshold: float,
    customer_ids: ArrayLike,
    timestamps: ArrayLike,
    k: int = 100,
) -> ClassificationMetrics:
    """Compute ROC-AUC, AP, card precision@k and thresholded metrics in one call.

    Parameters
    ----------
    y_true : array-like of {0, 1}
        Fraud labels.
    scores : array-like of float
        Fraud scores in ``[0, 1]`` (the Brier score assumes probabilities).
    threshold : float
        Alert when ``score >= threshold``.
    customer_ids : array-like
        Customer of each transaction, for card precision@k.
    timestamps : array-like of datetime
        Transaction times, for card precision@k and alerts per day.
    k : int, default 100
        Daily investigation capacity of card precision@k.

    Returns
    -------
    ClassificationMetrics

    Raises
    ------
    ValueError
        If the input is empty or the arrays differ in length.
    """
    y, s = labels_and_scores(y_true, scores)
    roc_auc, ap = _ranking_metrics(y, s)
    counts = _Counts.at(threshold, y, s)
    return ClassificationMetrics(
        roc_auc=roc_auc,
        average_precision=ap,
        card_precision_at_k=card_precision_at_k(s, y, customer_ids, timestamps, k=k),
        k=k,
        precision=counts.precision,
        recall=counts.recall,
        f1=counts.f1,
        brier=float(np.mean((s - y) ** 2)),
        threshold=float(threshold),
        n=int(s.size),
        n_positive=counts.n_positive,
        positive_rate=counts.n_positive / s.size,
        alerts_per_day=_safe_ratio(counts.alerts, _n_days(timestamps, s.size)),
    )


# --------------------------------------------------------------------------------------------
# curves and tables
# --------------------------------------------------------------------------------------------


def _downsample(frame: pd.DataFrame, max_points: int) -> pd.DataFrame:
    """At most ``max_points`` evenly spaced rows, always keeping the first and the last."""
    if max_points < 2:
        raise ValueError(f"max_points must be at least 2, got {max_points}")
    if len(frame) <= max_points:
        return frame.reset_index(drop=True)
    rows = np.unique(np.linspace(0, len(frame) - 1, max_points).round().astype(np.int64))
    return frame.iloc[rows].reset_index(drop=True)


def require_both_classes(y: IntArray, what: str) -> None:
    if np.unique(y).size < 2:
        raise ValueError(f"{what} needs both classes in y_true")


def pr_curve_points(y_true: ArrayLike, scores: ArrayLike, max_points: int = 200) -> pd.DataFrame:
    """Precision-recall curve points, downsampled for small DVC plot files.

    Parameters
    ----------
    y_true : array-like of {0, 1}
    scores : array-like of float
    max_points : int, default 200
        Maximum number of rows returned.

    Returns
    -------
    pandas.DataFrame
        Columns ``precision``, ``recall``, ``threshold`` ordered by increasing threshold. The
        curve's end point (recall 0, which has no threshold) is omitted so every row holds a
        real threshold.
    """
    y, s = labels_and_scores(y_true, scores)
    require_both_classes(y, "a precision-recall curve")
    precision, recall, thresholds = precision_recall_curve(y, s)
    frame = pd.DataFrame(
        {"precision": precision[:-1], "recall": recall[:-1], "threshold": thresholds}
    )
    return _downsample(frame, max_points)


def roc_curve_points(y_true: ArrayLike, scores: ArrayLike, max_points: int = 200) -> pd.DataFrame:
    """ROC curve points, downsampled for small DVC plot files.

    Parameters
    ----------
    y_true : array-like of {0, 1}
    scores : array-like of float
    max_points : int, default 200
        Maximum number of rows returned.

    Returns
    -------
    pandas.DataFrame
        Columns ``fpr``, ``tpr``, ``threshold`` ordered by decreasing threshold. The first
        point, (0, 0), gets the smallest float above the maximum score instead of infinity so
        the table serialises to plain JSON.
    """
    y, s = labels_and_scores(y_true, scores)
    require_both_classes(y, "a ROC curve")
    fpr, tpr, thresholds = roc_curve(y, s, drop_intermediate=True)
    thresholds = np.where(np.isinf(thresholds), np.nextafter(s.max(), np.inf), thresholds)
    frame = pd.DataFrame({"fpr": fpr, "tpr": tpr, "threshold": thresholds})
    return _downsample(frame, max_points)


def calibration_table(y_true: ArrayLike, scores: ArrayLike, n_bins: int = 10) -> pd.DataFrame:
    """Observed fraud rate per equal-count (quantile) score bin.

    Parameters
    ----------
    y_true : array-like of {0, 1}
    scores : array-like of float
    n_bins : int, default 10
        Number of bins (fewer when there are fewer rows than bins).

    Returns
    -------
    pandas.DataFrame
        One row per bin (index ``bin``, ascending score) with columns ``mean_score``,
        ``fraud_rate`` and ``count``. Tied scores may straddle a bin edge so that bins keep
        equal counts even when many scores are identical.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be positive, got {n_bins}")
    y, s = labels_and_scores(y_true, scores)
    ranks = pd.Series(s).rank(method="first").to_numpy()
    bins = pd.qcut(ranks, q=min(n_bins, s.size), labels=False)
    frame = pd.DataFrame({"bin": bins, "score": s, "label": y})
    table = frame.groupby("bin").agg(
        mean_score=("score", "mean"), fraud_rate=("label", "mean"), count=("label", "size")
    )
    return table


# --------------------------------------------------------------------------------------------
# plots
# --------------------------------------------------------------------------------------------
