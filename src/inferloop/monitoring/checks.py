"""Checks: one measured value against one threshold, grouped in families (drift, score drift,
performance, fairness). A check with too little data is "not evaluated", never a breach.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from inferloop.evaluation.fairness import GroupFairness
from inferloop.evaluation.metrics import ClassificationMetrics
from inferloop.monitoring.drift import (
    DriftResult,
)
from inferloop.monitoring.params import MonitorParams

if TYPE_CHECKING:
    pass

__all__ = [
    "Check",
    "check_family",
    "drift_checks",
    "fairness_checks",
    "performance_checks",
    "validation_figure",
]


logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Check:
    """One monitored quantity against its maximum.

    ``breached`` is ``value > threshold``. A check that could not be evaluated (no labels
    yet, no validation figures, a single class) has ``value`` None and never breaches.
    """

    name: str
    value: float | None
    threshold: float
    evaluated: bool = True

    @property
    def breached(self) -> bool:
        """Whether the value exceeds the threshold."""
        return self.evaluated and self.value is not None and self.value > self.threshold

    def as_dict(self) -> dict[str, Any]:
        """``{value, threshold, breached, evaluated}``."""
        return {
            "value": self.value,
            "threshold": self.threshold,
            "breached": self.breached,
            "evaluated": self.evaluated,
        }


def _measured(name: str, value: float, threshold: float) -> Check:
    """A check on a computed value; NaN (undefined) counts as not evaluated."""
    if value is None or not math.isfinite(value):
        return Check(name, None, threshold, evaluated=False)
    return Check(name, float(value), threshold)


def check_family(name: str) -> str:
    """The family of a check name: data_drift, score_drift, performance or fairness."""
    if name == "drift_share":
        return "data_drift"
    if name == "score_psi":
        return "score_drift"
    if name in ("ap_drop", "roc_auc_drop"):
        return "performance"
    return "fairness"


def drift_checks(drift: DriftResult, params: MonitorParams) -> list[Check]:
    """Data-drift share and score-drift checks."""
    return [
        _measured("drift_share", drift.drift_share, params.drift_share_threshold),
        _measured("score_psi", drift.score_psi, params.score_psi_threshold),
    ]


def validation_figure(metrics: Mapping[str, Any] | None, name: str) -> float:
    """``name`` or ``validation_<name>`` from a model's validation figures, else NaN."""
    if not metrics:
        return float("nan")
    for key in (name, f"validation_{name}"):
        if metrics.get(key) is not None:
            return float(metrics[key])
    return float("nan")


def performance_checks(
    current: ClassificationMetrics | None,
    validation: Mapping[str, Any] | None,
    params: MonitorParams,
) -> list[Check]:
    """AP and ROC-AUC drops below the model's validation figures."""
    checks = []
    for name, metric, limit in (
        ("ap_drop", "average_precision", params.max_ap_drop),
        ("roc_auc_drop", "roc_auc", params.max_roc_auc_drop),
    ):
        value = float("nan")
        if current is not None:
            value = validation_figure(validation, metric) - getattr(current, metric)
        checks.append(_measured(name, value, limit))
    return checks


def fairness_checks(
    report: Mapping[str, GroupFairness], attributes: Sequence[str], params: MonitorParams
) -> list[Check]:
    """Equalized-odds and demographic-parity gaps per sensitive attribute."""
    checks = []
    for attribute in attributes:
        result = report.get(attribute)
        eod = result.equalized_odds_difference if result else float("nan")
        dpd = result.demographic_parity_difference if result else float("nan")
        checks += [
            _measured(
                f"equalized_odds_difference:{attribute}", eod, params.max_equalized_odds_difference
            ),
            _measured(
                f"demographic_parity_difference:{attribute}",
                dpd,
                params.max_demographic_parity_difference,
            ),
        ]
    return checks


# --------------------------------------------------------------------------------------------
# policy
# --------------------------------------------------------------------------------------------
