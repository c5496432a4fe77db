"""Group fairness of fraud alerts across sensitive attributes, computed with fairlearn.

For each sensitive attribute (for example :data:`inferloop.core.schema.AGE_BAND`) the per-group
table holds the alert (selection) rate, false and true positive rates, precision and average
precision, and the gaps between groups summarise them:

* demographic parity difference: largest minus smallest alert rate;
* equalized odds difference (worst case): the larger of the TPR gap and the FPR gap.

Groups smaller than ``min_group_size`` are reported but left out of every gap (their rates are
noise). A group without positive labels has an undefined TPR (and one without negatives an
undefined FPR), reported as NaN and skipped by that rate's gap.

Two deliberate departures from calling fairlearn on the raw rows:

* Speed. fairlearn 0.15's ``MetricFrame`` copies ``y_true``/``y_pred`` into Python lists and
  re-stacks them element by element per group and metric, so its cost grows with the rows
  times the metrics (figures in ``docs/architecture.md``). The rows are therefore first reduced to one row per
  (group, label, decision) with its count as ``sample_weight``; every rate fairlearn computes
  from a confusion matrix is unchanged by that reduction, and the cost no longer grows with
  the rows. Per-group average precision needs the scores, so it is computed with a pandas
  group-by instead.
* Undefined rates. fairlearn's ``true_positive_rate`` returns 0 for a group without frauds
  (scikit-learn's normalised confusion matrix turns 0/0 into 0), so
  :func:`fairlearn.metrics.equalized_odds_difference` would invent a TPR gap as large as the
  best group's TPR. The TPR, FPR and equalized-odds gaps come from the zero-division-guarded
  rates of the ``MetricFrame`` instead; where every rate is defined they equal fairlearn's
  (the unit tests check it). The demographic parity difference is
  :func:`fairlearn.metrics.demographic_parity_difference` itself.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

import numpy as np
import pandas as pd
from fairlearn.metrics import MetricFrame, demographic_parity_difference, selection_rate
from numpy.typing import ArrayLike, NDArray
from sklearn.metrics import average_precision_score

from inferloop.evaluation.fairness_ci import (
    IntervalParams,
    bootstrap_cells,
    cell_rates,
    gap_of,
    percentile_interval,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "GAP_NAMES",
    "GROUP_COLUMNS",
    "MISSING_GROUP",
    "GroupFairness",
    "fairness_report",
    "fairness_table",
    "group_fairness",
    "plot_group_metrics",
]


MISSING_GROUP: Final = "<missing>"
GAP_NAMES: Final = (
    "demographic_parity_difference",
    "equalized_odds_difference",
    "tpr_difference",
    "fpr_difference",
)
GROUP_COLUMNS: Final = (
    "count",
    "positives",
    "selection_rate",
    "fpr",
    "tpr",
    "precision",
    "average_precision",
    "included",
    "tpr_low",
    "tpr_high",
    "fpr_low",
    "fpr_high",
    "selection_rate_low",
    "selection_rate_high",
    "note",
)
_INTERVAL_RATES: Final = ("tpr", "fpr", "selection_rate")
_PLOTTED: Final = (
    ("tpr", "True positive rate"),
    ("fpr", "False positive rate"),
    ("selection_rate", "Alert rate"),
)


# --------------------------------------------------------------------------------------------
# weighted per-group metric functions (MetricFrame calls them with one group's reduced rows)
# --------------------------------------------------------------------------------------------


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator > 0 else float("nan")


def _weighted_sum(mask: NDArray[np.bool_], sample_weight: ArrayLike) -> float:
    return float(np.sum(np.asarray(sample_weight)[mask]))


def _count(y_true: ArrayLike, y_pred: ArrayLike, *, sample_weight: ArrayLike) -> float:
    return float(np.sum(sample_weight))


def _positives(y_true: ArrayLike, y_pred: ArrayLike, *, sample_weight: ArrayLike) -> float:
    return _weighted_sum(np.asarray(y_true) == 1, sample_weight)


def _tpr(y_true: ArrayLike, y_pred: ArrayLike, *, sample_weight: ArrayLike) -> float:
    y, p = np.asarray(y_true), np.asarray(y_pred)
    caught = _weighted_sum((y == 1) & (p == 1), sample_weight)
    return _ratio(caught, _weighted_sum(y == 1, sample_weight))


def _fpr(y_true: ArrayLike, y_pred: ArrayLike, *, sample_weight: ArrayLike) -> float:
    y, p = np.asarray(y_true), np.asarray(y_pred)
    false_alerts = _weighted_sum((y == 0) & (p == 1), sample_weight)
    return _ratio(false_alerts, _weighted_sum(y == 0, sample_weight))


def _precision(y_true: ArrayLike, y_pred: ArrayLike, *, sample_weight: ArrayLike) -> float:
    y, p = np.asarray(y_true), np.asarray(y_pred)
    caught = _weighted_sum((y == 1) & (p == 1), sample_weight)
    return _ratio(caught, _weighted_sum(p == 1, sample_weight))


_GROUP_METRICS: Final = {
    "count": _count,
    "positives": _positives,
    "selection_rate": selection_rate,
    "fpr": _fpr,
    "tpr": _tpr,
    "precision": _precision,
}


def _average_precision(y_true: ArrayLike, scores: ArrayLike) -> float:
    y = np.asarray(y_true)
    if np.unique(y).size < 2:
        return float("nan")
    return float(average_precision_score(y, np.asarray(scores)))


# --------------------------------------------------------------------------------------------
# result
# --------------------------------------------------------------------------------------------


def _metric_name(text: object) -> str:
    """A group label usable in an MLflow metric name (``61+`` becomes ``61plus``)."""
    return re.sub(r"[^\w\-. ]", "_", str(text).replace("+", "plus"))


@dataclass(frozen=True)
class GroupFairness:
    """Per-group metrics and between-group gaps for one sensitive attribute.

    Attributes
    ----------
    attribute : str
        Name of the sensitive attribute.
    by_group : pandas.DataFrame
        Indexed by group, columns ``count``, ``positives``, ``selection_rate``, ``fpr``,
        ``tpr``, ``precision``, ``average_precision`` (NaN where undefined) and ``included``
        (whether the group is large enough to enter the gaps).
    demographic_parity_difference : float
        Largest minus smallest alert rate among included groups.
    equalized_odds_difference : float
        ``max(tpr_difference, fpr_difference)``, i.e. fairlearn's ``agg="worst_case"``.
    tpr_difference, fpr_difference : float
        Largest minus smallest TPR / FPR among included groups where that rate is defined.
    min_group_size : int
        Smallest group size that enters the gaps.
    intervals : dict of str to (float, float)
        Bootstrap interval of each gap in :data:`GAP_NAMES` at ``confidence``.
    confidence : float
        Two-sided confidence of the intervals.
    not_assessable : dict of str to str
        Why a gap could not be assessed (fewer than two groups with enough rows or frauds),
        keyed by gap name; the gap itself is NaN.

    Gaps are NaN when fewer than two groups qualify.
    """

    attribute: str
    by_group: pd.DataFrame
    demographic_parity_difference: float
    equalized_odds_difference: float
    tpr_difference: float
    fpr_difference: float
    min_group_size: int = 30
    intervals: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    confidence: float = 0.9
    not_assessable: Mapping[str, str] = field(default_factory=dict)

    def interval(self, gap: str) -> tuple[float, float]:
        """The bootstrap interval of ``gap`` (NaNs when it was not computed)."""
        return tuple(self.intervals.get(gap, (float("nan"), float("nan"))))  # type: ignore[return-value]

    def as_dict(self, prefix: str = "fairness/", per_group: bool = False) -> dict[str, float]:
        """Flat metrics for logging, e.g. ``fairness/age_band/equalized_odds_difference``.

        Parameters
        ----------
        prefix : str, default "fairness/"
            Prepended to every key.
        per_group : bool, default False
            Also emit ``{prefix}{attribute}/{group}/{tpr,fpr,selection_rate}``; group labels
            are made safe for MLflow metric names.
        """
        base = f"{prefix}{_metric_name(self.attribute)}/"
        out = {f"{base}{name}": float(getattr(self, name)) for name in GAP_NAMES}
        for name in GAP_NAMES:
            low, high = self.interval(name)
            out[f"{base}{name}_low"], out[f"{base}{name}_high"] = low, high
        out[f"{base}n_groups_included"] = float(self.by_group["included"].sum())
        if per_group:
            for group, row in self.by_group.iterrows():
                for column, _ in _PLOTTED:
                    out[f"{base}{_metric_name(group)}/{column}"] = float(row[column])
        return out


# --------------------------------------------------------------------------------------------
# computation
# --------------------------------------------------------------------------------------------


def _as_groups(sensitive: pd.Series, n: int) -> pd.Series:
    """Sensitive values as a categorical Series; missing values become their own group."""
    if len(sensitive) != n:
        raise ValueError(f"sensitive has {len(sensitive)} rows but y_true has {n}")
    # categorical codes make the group-bys over millions of rows cheap
    values = sensitive.reset_index(drop=True).astype("category")
    if values.isna().any():
        if MISSING_GROUP not in values.cat.categories:
            values = values.cat.add_categories(MISSING_GROUP)
        values = values.fillna(MISSING_GROUP)
    return values.cat.remove_unused_categories().rename(sensitive.name or "sensitive")


def _check_inputs(
    y_true: ArrayLike, y_pred: ArrayLike, scores: ArrayLike
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
    y, p = np.ravel(y_true), np.ravel(y_pred)
    s = np.ravel(np.asarray(scores, dtype=np.float64))
    if y.size == 0:
        raise ValueError("fairness metrics need at least one row: y_true is empty")
    if not y.size == p.size == s.size:
        raise ValueError(f"lengths differ: y_true {y.size}, y_pred {p.size}, scores {s.size}")
    for name, values in (("y_true", y), ("y_pred", p)):
        if not np.isin(values, (0, 1)).all():
            raise ValueError(f"{name} must hold only 0/1 labels")
    return y.astype(np.int64), p.astype(np.int64), s


def _reduce(cells: NDArray[np.int64], groups: pd.Series) -> pd.DataFrame:
    """One row per (group, y_true, y_pred) present in ``cells``, with its rows as ``weight``."""
    counts = cells.ravel()
    present = np.flatnonzero(counts)
    return pd.DataFrame(
        {
            "group": groups.cat.categories.to_numpy(dtype=object)[present // 4],
            "y": present // 2 % 2,
            "pred": present % 2,
            "weight": counts[present],
        }
    )


def _by_group(
    reduced: pd.DataFrame, y: NDArray[np.int64], s: NDArray[np.float64], groups: pd.Series
) -> pd.DataFrame:
    """Per-group metric table (without the ``included`` column)."""
    weight = reduced["weight"].to_numpy(dtype=np.float64)
    frame = MetricFrame(
        metrics=_GROUP_METRICS,
        y_true=reduced["y"].to_numpy(),
        y_pred=reduced["pred"].to_numpy(),
        sensitive_features=reduced["group"].rename(groups.name),
        sample_params={name: {"sample_weight": weight} for name in _GROUP_METRICS},
    )
    table = pd.DataFrame(frame.by_group).astype(float)
    scored = pd.DataFrame({"y": y, "s": s}).groupby(groups, observed=True)
    table["average_precision"] = pd.Series(
        {group: _average_precision(rows["y"], rows["s"]) for group, rows in scored}
    )
    return table.astype({"count": np.int64, "positives": np.int64})


def _parity_difference(reduced: pd.DataFrame, included: pd.Index) -> float:
    """fairlearn's demographic parity difference over the included groups' (reduced) rows."""
    if len(included) < 2:
        return float("nan")
    rows = reduced[reduced["group"].isin(included)]
    return float(
        demographic_parity_difference(
            rows["y"].to_numpy(),
            rows["pred"].to_numpy(),
            sensitive_features=rows["group"].to_numpy(),
            sample_weight=rows["weight"].to_numpy(dtype=np.float64),
        )
    )


def _cells(y: NDArray[np.int64], p: NDArray[np.int64], groups: pd.Series) -> NDArray[np.int64]:
    """Rows per group (in category order) and cell ``label * 2 + decision``, shape (groups, 4)."""
    combo = groups.cat.codes.to_numpy(dtype=np.int64) * 4 + y * 2 + p
    counts = np.bincount(combo, minlength=4 * len(groups.cat.categories))
    return counts.reshape(-1, 4)


@dataclass(frozen=True)
class _Masks:
    """Which groups enter each gap: large enough, and with enough frauds / genuine rows."""

    included: NDArray[np.bool_]
    tpr: NDArray[np.bool_]
    fpr: NDArray[np.bool_]

    @classmethod
    def of(cls, table: pd.DataFrame, min_positives: int) -> _Masks:
        included = table["included"].to_numpy(dtype=bool)
        positives = table["positives"].to_numpy()
        negatives = table["count"].to_numpy() - positives
        return cls(
            included,
            included & (positives >= min_positives),
            included & (negatives >= min_positives),
        )


def _group_note(row: pd.Series, min_group_size: int, min_positives: int) -> str:
    """Why a group's rates stay out of the gaps, in words ("" when they enter)."""
    if not row["included"]:
        return f"too small: {int(row['count']):,} rows (< {min_group_size})"
    if row["positives"] < min_positives:
        return f"TPR not assessable: {int(row['positives'])} frauds (< {min_positives})"
    return ""


def _sizes(table: pd.DataFrame) -> str:
    return ", ".join(
        f"{group} {int(n):,} rows / {int(p):,} frauds"
        for group, n, p in zip(table.index, table["count"], table["positives"], strict=True)
    )


def _not_assessable(
    attribute: str, table: pd.DataFrame, masks: _Masks, min_group_size: int, min_positives: int
) -> dict[str, str]:
    """A message per gap that fewer than two groups can enter, naming the group sizes."""
    need = {
        "demographic_parity_difference": (masks.included, f">= {min_group_size} rows"),
        "tpr_difference": (masks.tpr, f">= {min_group_size} rows and >= {min_positives} frauds"),
        "fpr_difference": (masks.fpr, f">= {min_group_size} rows and >= {min_positives} genuine"),
    }
    out = {
        gap: f"{attribute}: fewer than two groups with {what} ({_sizes(table)})"
        for gap, (mask, what) in need.items()
        if mask.sum() < 2
    }
    if "tpr_difference" in out or "fpr_difference" in out:
        out["equalized_odds_difference"] = out.get("tpr_difference") or out["fpr_difference"]
    return out


def _add_rate_intervals(
    table: pd.DataFrame, boot: dict[str, NDArray[np.float64]], confidence: float
) -> None:
    for rate in _INTERVAL_RATES:
        bounds = [percentile_interval(boot[rate][:, g], confidence) for g in range(len(table))]
        table[f"{rate}_low"] = [low for low, _ in bounds]
        table[f"{rate}_high"] = [high for _, high in bounds]


def _gap_intervals(
    boot: dict[str, NDArray[np.float64]], masks: _Masks, confidence: float
) -> dict[str, tuple[float, float]]:
    tpr, fpr = gap_of(boot["tpr"], masks.tpr), gap_of(boot["fpr"], masks.fpr)
    eod = np.where(np.isfinite(tpr) & np.isfinite(fpr), np.fmax(tpr, fpr), np.nan)
    gaps = {
        "demographic_parity_difference": gap_of(boot["selection_rate"], masks.included),
        "equalized_odds_difference": eod,
        "tpr_difference": tpr,
        "fpr_difference": fpr,
    }
    return {name: percentile_interval(values, confidence) for name, values in gaps.items()}


def group_fairness(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    scores: ArrayLike,
    sensitive: pd.Series,
    min_group_size: int = 30,
    interval: IntervalParams | None = None,
) -> GroupFairness:
    """Per-group alert metrics and fairness gaps, with bootstrap intervals, for one attribute.

    Parameters
    ----------
    y_true : array-like of {0, 1}
        Fraud labels.
    y_pred : array-like of {0, 1}
        Alert decisions.
    scores : array-like of float
        Fraud scores (for per-group average precision).
    sensitive : pandas.Series
        Group of each row, aligned by position; its name is the attribute name. Missing
        values form a group of their own, ``"<missing>"``.
    min_group_size : int, default 30
        Groups with fewer rows are reported but excluded from the gaps.
    interval : IntervalParams, optional
        Bootstrap settings and the frauds a group needs for its TPR to enter the TPR gap
        (default :class:`IntervalParams`).

    Returns
    -------
    GroupFairness
        The equalized-odds gap needs both the TPR and the FPR gap; when either cannot be
        assessed it is NaN and ``not_assessable`` says why.

    Raises
    ------
    ValueError
        On empty input, mismatched lengths or labels other than 0/1.
    """
    interval = interval or IntervalParams()
    y, p, s = _check_inputs(y_true, y_pred, scores)
    groups = _as_groups(sensitive, y.size)
    cells = _cells(y, p, groups)
    reduced = _reduce(cells, groups)
    table = _by_group(reduced, y, s, groups).reindex(groups.cat.categories)
    table["included"] = table["count"] >= min_group_size
    masks = _Masks.of(table, interval.min_group_positives)
    boot = cell_rates(bootstrap_cells(cells, interval.n_boot, interval.seed))
    _add_rate_intervals(table, boot, interval.confidence)
    table["note"] = [
        _group_note(row, min_group_size, interval.min_group_positives)
        for _, row in table.iterrows()
    ]
    point = cell_rates(cells)
    tpr_gap = float(gap_of(point["tpr"], masks.tpr))
    fpr_gap = float(gap_of(point["fpr"], masks.fpr))
    eod = max(tpr_gap, fpr_gap) if np.isfinite(tpr_gap) and np.isfinite(fpr_gap) else np.nan
    attribute = str(groups.name)
    return GroupFairness(
        attribute=attribute,
        by_group=table,
        demographic_parity_difference=_parity_difference(reduced, table.index[masks.included]),
        equalized_odds_difference=float(eod),
        tpr_difference=tpr_gap,
        fpr_difference=fpr_gap,
        min_group_size=min_group_size,
        intervals=_gap_intervals(boot, masks, interval.confidence),
        confidence=interval.confidence,
        not_assessable=_not_assessable(
            attribute, table, masks, min_group_size, interval.min_group_positives
        ),
    )


def fairness_report(
    frame: pd.DataFrame,
    *,
    y_col: str,
    pred_col: str,
    score_col: str,
    attributes: Sequence[str],
    min_group_size: int = 30,
    interval: IntervalParams | None = None,
) -> dict[str, GroupFairness]:
    """:func:`group_fairness` for each sensitive attribute column of ``frame``.

    Parameters
    ----------
    frame : pandas.DataFrame
        Scored, labelled rows.
    y_col, pred_col, score_col : str
        Columns holding labels, alert decisions and scores.
    attributes : sequence of str
        Sensitive attribute columns, e.g. :data:`inferloop.core.schema.SENSITIVE_COLUMNS`.
    min_group_size : int, default 30
        See :func:`group_fairness`.
    interval : IntervalParams, optional
        See :func:`group_fairness`.

    Returns
    -------
    dict of str to GroupFairness
        Keyed by attribute, in the order given.
    """
    missing = [c for c in (y_col, pred_col, score_col, *attributes) if c not in frame.columns]
    if missing:
        raise ValueError(f"fairness_report: columns missing from frame: {missing}")
    return {
        attribute: group_fairness(
            frame[y_col].to_numpy(),
            frame[pred_col].to_numpy(),
            frame[score_col].to_numpy(),
            frame[attribute].rename(attribute),
            min_group_size=min_group_size,
            interval=interval,
        )
        for attribute in attributes
    }


def fairness_table(report: Mapping[str, GroupFairness]) -> pd.DataFrame:
    """Long table of every attribute's groups, for notebooks and model cards.

    Parameters
    ----------
    report : mapping of str to GroupFairness
        Output of :func:`fairness_report`.

    Returns
    -------
    pandas.DataFrame
        Columns ``attribute``, ``group`` and the per-group metric columns.
    """
    parts = [
        result.by_group.rename_axis("group").reset_index().assign(attribute=attribute)
        for attribute, result in report.items()
    ]
    if not parts:
        return pd.DataFrame(columns=["attribute", "group", *GROUP_COLUMNS])
    table = pd.concat(parts, ignore_index=True)
    table["group"] = table["group"].astype(str)
    return table[["attribute", "group", *GROUP_COLUMNS]]


def _bar_colors(included: pd.Series) -> list[str]:
    return ["tab:blue" if flag else "lightgrey" for flag in included]


def plot_group_metrics(report: Mapping[str, GroupFairness]) -> Figure:
    """Bar charts of TPR, FPR and alert rate per group, one row of panels per attribute.

    Groups excluded from the gaps (too small) are drawn in grey; undefined rates (NaN) get
    no bar.

    Parameters
    ----------
    report : mapping of str to GroupFairness
        Output of :func:`fairness_report`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure

    n_rows = max(len(report), 1)
    fig = Figure(figsize=(4.0 * len(_PLOTTED), 3.4 * n_rows), layout="constrained")
    axes = fig.subplots(n_rows, len(_PLOTTED), squeeze=False)
    for row, (attribute, result) in enumerate(report.items()):
        table = result.by_group
        labels = [
            f"{group}\nn={int(n):,}\n{int(p):,} fraud"
            for group, n, p in zip(table.index, table["count"], table["positives"], strict=True)
        ]
        for col, (column, title) in enumerate(_PLOTTED):
            ax = axes[row][col]
            ax.bar(labels, table[column], color=_bar_colors(table["included"]))
            overall = _overall_rate(table, column)
            if np.isfinite(overall):
                ax.axhline(overall, color="black", linestyle="--", linewidth=1)
            ax.set_title(f"{attribute}: {title}")
            ax.tick_params(axis="x", labelsize="x-small")
            ax.grid(axis="y", alpha=0.3)
    fig.suptitle("Per group; dashed line: all groups together; grey: too small to compare")
    return fig


def _overall_rate(table: pd.DataFrame, column: str) -> float:
    """The rate over all groups together, from the per-group rates and their denominators."""
    count = table["count"].to_numpy(dtype=float)
    positives = table["positives"].to_numpy(dtype=float)
    weights = {"tpr": positives, "fpr": count - positives}.get(column, count)
    rates = table[column].to_numpy(dtype=float)
    ok = np.isfinite(rates) & (weights > 0)
    return float(np.sum(rates[ok] * weights[ok]) / weights[ok].sum()) if ok.any() else np.nan
