"""What monitoring measures on one scored batch: its time, labelled rows, performance and bias.

Performance and bias use only rows whose label has arrived by ``as_of``
(``label_available_at <= as_of`` and a non-null label).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from inferloop.core import schema as s
from inferloop.evaluation.fairness import GroupFairness, fairness_report
from inferloop.evaluation.metrics import ClassificationMetrics, compute_metrics
from inferloop.monitoring.checks import validation_figure
from inferloop.monitoring.params import NON_FEATURE_COLUMNS, MonitorParams

if TYPE_CHECKING:
    pass

__all__ = [
    "MonitorInputs",
    "batch_as_of",
    "infer_feature_columns",
    "label_known",
    "labelled_rows",
    "measure_fairness",
    "measure_performance",
    "operating_threshold",
]


logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MonitorInputs:
    """Columns and settings of one monitoring run."""

    label_col: str
    score_col: str
    decision_col: str
    numeric: list[str]
    categorical: list[str]
    sensitive: list[str]
    score_in_both: bool


def infer_feature_columns(scored: pd.DataFrame, reference: pd.DataFrame) -> list[str]:
    """Columns of both frames worth monitoring for drift, in ``reference`` order.

    Everything but identifiers, times, labels and model outputs: raw transaction fields,
    feature columns if present, and the sensitive attributes (a shift of the customer
    population is drift that matters for fairness even though the model never sees them).
    """
    return [
        c
        for c in reference.columns
        if c in scored.columns
        and c not in NON_FEATURE_COLUMNS
        and not pd.api.types.is_datetime64_any_dtype(reference[c])
    ]


def _as_timestamp(value: Any) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    if stamp is pd.NaT:
        raise ValueError(f"not a timestamp: {value!r}")
    return stamp


def batch_as_of(scored: pd.DataFrame, as_of: Any = None) -> pd.Timestamp:
    """The monitoring time: ``as_of`` if given, else the batch's latest timestamp, else now."""
    if as_of is not None:
        return _as_timestamp(as_of)
    if s.TIMESTAMP in scored.columns and scored[s.TIMESTAMP].notna().any():
        return _as_timestamp(pd.to_datetime(scored[s.TIMESTAMP]).max())
    return pd.Timestamp.now()


def _same_zone(stamp: pd.Timestamp, times: pd.Series) -> pd.Timestamp:
    zone = getattr(times.dt, "tz", None)
    if zone is None:
        return stamp.tz_convert(None) if stamp.tzinfo else stamp
    return stamp.tz_convert(zone) if stamp.tzinfo else stamp.tz_localize(zone)


def label_known(scored: pd.DataFrame, label_col: str, as_of: pd.Timestamp) -> pd.Series:
    """Whether each row's label is known at ``as_of``: not null and arrived by then.

    Without a ``label_available_at`` column every non-null label counts as arrived.
    """
    if label_col not in scored.columns:
        return pd.Series(False, index=scored.index)
    known = scored[label_col].notna()
    if s.LABEL_AVAILABLE_AT in scored.columns:
        available = pd.to_datetime(scored[s.LABEL_AVAILABLE_AT])
        known &= available.notna() & (available <= _same_zone(as_of, available))
    return known


def labelled_rows(scored: pd.DataFrame, label_col: str, as_of: pd.Timestamp) -> pd.DataFrame:
    """Rows whose label is known at ``as_of`` (:func:`label_known`)."""
    return scored.loc[label_known(scored, label_col, as_of)]


def operating_threshold(
    scored: pd.DataFrame, validation: Mapping[str, Any] | None, score_col: str, decision_col: str
) -> float:
    """The model's alert threshold: from its validation figures, else from the decisions."""
    figure = validation_figure(validation, "threshold")
    if math.isfinite(figure):
        return figure
    if decision_col in scored.columns and (scored[decision_col] == 1).any():
        return float(scored.loc[scored[decision_col] == 1, score_col].min())
    return 0.5


def measure_performance(
    labelled: pd.DataFrame, label_col: str, score_col: str, threshold: float, params: MonitorParams
) -> ClassificationMetrics | None:
    """Metrics on labelled rows, or None with too few labels or frauds to mean anything."""
    n_frauds = int(labelled[label_col].astype(np.int64).sum()) if len(labelled) else 0
    if len(labelled) < params.min_labelled_rows or n_frauds < params.min_labelled_frauds:
        return None
    # card precision@k needs customers and days; without them it is computed per row, once
    customers = labelled.get(s.CUSTOMER_ID, labelled.index)
    times = (
        pd.to_datetime(labelled[s.TIMESTAMP])  # CSV input holds text
        if s.TIMESTAMP in labelled
        else pd.Series(pd.Timestamp(0), index=labelled.index)
    )
    return compute_metrics(
        labelled[label_col].astype(np.int64),
        labelled[score_col],
        threshold,
        customers,
        times,
        k=params.k,
    )


def measure_fairness(
    labelled: pd.DataFrame, inputs: MonitorInputs, threshold: float, params: MonitorParams
) -> dict[str, GroupFairness]:
    """Per-group metrics of the labelled rows, or {} with too few labels or frauds."""
    present = [a for a in inputs.sensitive if a in labelled.columns]
    n_frauds = int(labelled[inputs.label_col].astype(np.int64).sum()) if len(labelled) else 0
    if not present or len(labelled) < params.min_labelled_rows:
        return {}
    if n_frauds < params.min_labelled_frauds:
        return {}
    scores = labelled[inputs.score_col]
    if inputs.decision_col in labelled.columns:
        decisions = labelled[inputs.decision_col].astype(np.int64)
    else:
        decisions = (scores >= threshold).astype(np.int64)
    frame = labelled[present].assign(
        _y=labelled[inputs.label_col].astype(np.int64), _pred=decisions, _score=scores
    )
    return fairness_report(
        frame,
        y_col="_y",
        pred_col="_pred",
        score_col="_score",
        attributes=present,
        min_group_size=params.min_group_size,
        interval=params.fairness_gate,
    )


# --------------------------------------------------------------------------------------------
# Evidently
# --------------------------------------------------------------------------------------------
