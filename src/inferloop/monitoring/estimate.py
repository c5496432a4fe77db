"""Performance before the labels arrive: confidence-based estimates, and the realized values.

Chargebacks arrive days or weeks after the payment, so the newest rows of a monitored window
have no labels yet. If the model's calibrated score ``p`` is the probability of fraud, the
expected number of frauds among the alerts is the sum of their ``p``, and so on for every
count a metric needs. This is the idea of confidence-based performance estimation (CBPE,
as NannyML introduced it), written here for what fraud monitoring reads:

* **precision** at the operating threshold: ``sum(p | alert) / alerts``;
* **recall**: ``sum(p | alert) / sum(p)``;
* the **alert count** (known exactly) and the expected frauds;
* **average precision**: the expected precision at each rank, ``(p_k + p_k * S_{k-1}) / k``
  with ``S`` the running sum of ``p`` in score order, summed over ranks and divided by the
  expected frauds (a ratio of expectations).

Where it cannot work: the estimate trusts the calibration. Covariate drift that moves rows
between score regions is what it sees (their ``p`` moves with them). A new fraud pattern
that the features cannot see leaves the scores, and so the estimate, where they were, while
the realized precision and AP fall; a fraud rate that changes at the same scores does too.
The benchmark ``benchmarks/bench_estimate.py`` shows both.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from inferloop.core import schema as s
from inferloop.evaluation.calibration import ScoreCalibration, expected_average_precision

__all__ = [
    "PerformanceEstimate",
    "covered_by",
    "estimate_performance",
    "estimate_rows",
    "estimate_window",
    "realize_earlier",
    "realized_performance",
]


@dataclass(frozen=True)
class PerformanceEstimate:
    """Estimated performance of one set of rows, with the realized values once labelled."""

    n: int
    alerts: int
    expected_frauds: float
    expected_true_alerts: float
    precision: float
    recall: float
    average_precision: float
    calibration: str
    start: str | None = None
    end: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (``realized`` None until the labels arrive)."""
        return {**asdict(self), "method": "confidence-based (CBPE)", "realized": None}


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else float("nan")


def estimate_performance(
    scores: ArrayLike,
    threshold: float,
    calibration: ScoreCalibration,
    times: pd.Series | None = None,
) -> PerformanceEstimate:
    """Estimated precision, recall and AP at ``threshold`` from calibrated ``scores``.

    Parameters
    ----------
    scores : array-like
        The model's scores (as served) of the rows without labels.
    threshold : float
        The operating threshold: alert when ``score >= threshold``.
    calibration : ScoreCalibration
        The model's calibration (fitted on its validation window).
    times : Series, optional
        The rows' timestamps: their range is recorded, so the realized values can be
        matched to the estimate when the labels arrive.
    """
    raw = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-raw, kind="stable")
    p = calibration.apply(raw)
    alerts = raw >= threshold
    expected_true = float(p[alerts].sum())
    expected = float(p.sum())
    start = end = None
    if times is not None and len(times):
        stamps = pd.to_datetime(times)
        start, end = stamps.min().isoformat(), stamps.max().isoformat()
    return PerformanceEstimate(
        n=len(raw),
        alerts=int(alerts.sum()),
        expected_frauds=expected,
        expected_true_alerts=expected_true,
        precision=_ratio(expected_true, float(alerts.sum())),
        recall=_ratio(expected_true, expected),
        average_precision=expected_average_precision(p[order]),
        calibration=calibration.kind,
        start=start,
        end=end,
    )


def realized_performance(labels: ArrayLike, scores: ArrayLike, threshold: float) -> dict[str, Any]:
    """Precision, recall and AP at ``threshold`` on labelled rows (the estimate's truth)."""
    from sklearn.metrics import average_precision_score

    y = np.asarray(labels, dtype=np.int64)
    raw = np.asarray(scores, dtype=np.float64)
    alerts = raw >= threshold
    true_alerts = int(y[alerts].sum())
    frauds = int(y.sum())
    ap = float(average_precision_score(y, raw)) if 0 < frauds < len(y) else float("nan")
    return {
        "n": len(y),
        "frauds": frauds,
        "alerts": int(alerts.sum()),
        "true_alerts": true_alerts,
        "precision": _ratio(true_alerts, float(alerts.sum())),
        "recall": _ratio(true_alerts, frauds),
        "average_precision": ap,
    }


def estimate_rows(scored: pd.DataFrame, known: pd.Series, min_rows: int) -> pd.Series:
    """The rows an estimate covers: those without labels, or every row when too few lack one.

    With every row labelled (monitoring a batch after its chargebacks have arrived) the
    estimate and the realized values cover the same rows, which checks the estimator.
    """
    unknown = ~known
    return unknown if int(unknown.sum()) >= min_rows else pd.Series(True, index=scored.index)


def covered_by(estimate: dict[str, Any], scored: pd.DataFrame) -> pd.Series | None:
    """The rows of ``scored`` an earlier estimate covered (its time range), or None."""
    if not estimate.get("start") or s.TIMESTAMP not in scored.columns:
        return None
    times = pd.to_datetime(scored[s.TIMESTAMP])
    start, end = pd.Timestamp(estimate["start"]), pd.Timestamp(estimate["end"])
    rows = (times >= start) & (times <= end)
    return rows if int(rows.sum()) == int(estimate.get("n", -1)) else None


def estimate_window(
    scored: pd.DataFrame,
    known: pd.Series,
    threshold: float,
    calibration: ScoreCalibration | None,
    *,
    label_col: str,
    score_col: str,
    min_rows: int,
    validation_ap: float,
) -> dict[str, Any] | None:
    """The summary's ``estimate``: estimated figures of the rows without labels, or None.

    ``ap_drop`` is the model's validation AP minus the estimated AP (the quantity an
    estimate-triggered policy judges). With every covered row labelled already the realized
    values are filled in at once.
    """
    if calibration is None or scored.empty:
        return None
    rows = estimate_rows(scored, known, min_rows)
    times = scored.loc[rows, s.TIMESTAMP] if s.TIMESTAMP in scored.columns else None
    estimate = estimate_performance(
        scored.loc[rows, score_col], threshold, calibration, times
    ).as_dict()
    estimate["ap_drop"] = validation_ap - estimate["average_precision"]
    if bool(known[rows].all()):
        estimate["realized"] = realized_performance(
            scored.loc[rows, label_col], scored.loc[rows, score_col], threshold
        )
    return estimate


def realize_earlier(
    earlier: dict[str, Any] | None,
    scored: pd.DataFrame,
    known: pd.Series,
    threshold: float,
    *,
    label_col: str,
    score_col: str,
) -> dict[str, Any] | None:
    """Write the realized values beside an earlier window's estimate once its labels are in.

    The earlier estimate covered a time range; when this window holds exactly those rows
    and all of them are labelled now, ``earlier["estimate"]["realized"]`` is filled in (the
    caller saves it) and the pair is returned for this window's summary. None otherwise.
    """
    estimate = (earlier or {}).get("estimate")
    if not estimate or estimate.get("realized") is not None or label_col not in scored:
        return None
    rows = covered_by(estimate, scored)
    if rows is None or not bool(known[rows].all()):
        return None
    estimate["realized"] = realized_performance(
        scored.loc[rows, label_col], scored.loc[rows, score_col], threshold
    )
    assert earlier is not None
    return {"batch": earlier.get("batch"), "as_of": earlier.get("as_of"), **estimate}
