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
    "estimate_checks",
    "fairness_checks",
    "performance_checks",
    "validation_figure",
]


logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Check:
    """One monitored quantity against its maximum.

    ``breached`` is ``value > threshold``. A check that could not be evaluated (no labels
    yet, no validation figures, a single class) has ``value`` None and never breaches. A
    fairness check carries its bootstrap interval: under ``rule`` ``lower_bound`` it breaches
    only when the interval's lower end exceeds the threshold (``upper_bound``: its upper end).
    """

    name: str
    value: float | None
    threshold: float
    evaluated: bool = True
    low: float | None = None
    high: float | None = None
    rule: str = "point"

    @property
    def breached(self) -> bool:
        """Whether the value (or the bound the rule names) exceeds the threshold."""
        if not self.evaluated or self.value is None:
            return False
        judged = {"lower_bound": self.low, "upper_bound": self.high}.get(self.rule, self.value)
        if judged is None or not math.isfinite(judged):
            judged = self.value
        return judged > self.threshold

    def as_dict(self) -> dict[str, Any]:
        """``{value, threshold, breached, evaluated}``, and the interval when there is one."""
        out: dict[str, Any] = {
            "value": self.value,
            "threshold": self.threshold,
            "breached": self.breached,
            "evaluated": self.evaluated,
        }
        if self.rule != "point":
            out.update(low=self.low, high=self.high, rule=self.rule)
        return out


def _measured(name: str, value: float, threshold: float) -> Check:
    """A check on a computed value; NaN (undefined) counts as not evaluated."""
    if value is None or not math.isfinite(value):
        return Check(name, None, threshold, evaluated=False)
    return Check(name, float(value), threshold)


def check_family(name: str) -> str:
    """The family of a check name: data_drift, score_drift, performance, estimate or fairness."""
    if name == "drift_share":
        return "data_drift"
    if name == "score_psi":
        return "score_drift"
    if name in ("ap_drop", "roc_auc_drop"):
        return "performance"
    if name == "estimated_ap_drop":
        return "estimate"
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


def estimate_checks(estimate: Mapping[str, Any] | None, params: MonitorParams) -> list[Check]:
    """The estimated AP drop, a check only when the policy may act on it.

    ``retrain_on_estimate`` is off by default: the estimate is shown everywhere, but a
    check would change the verdict of every window, so it joins the checks only by choice.
    """
    if not params.retrain_on_estimate:
        return []
    value = float("nan") if not estimate else float(estimate.get("ap_drop", float("nan")))
    return [_measured("estimated_ap_drop", value, params.max_estimated_ap_drop)]


def _fairness_check(
    result: GroupFairness | None, gap: str, attribute: str, limit: float, rule: str
) -> Check:
    name = f"{gap}:{attribute}"
    value = float(getattr(result, gap)) if result else float("nan")
    if not math.isfinite(value) or result is None:
        return Check(name, None, limit, evaluated=False)
    low, high = result.interval(gap)
    finite = lambda v: v if math.isfinite(v) else None  # noqa: E731
    return Check(name, value, limit, low=finite(low), high=finite(high), rule=rule)


def fairness_checks(
    report: Mapping[str, GroupFairness], attributes: Sequence[str], params: MonitorParams
) -> list[Check]:
    """Equalized-odds and demographic-parity gaps per sensitive attribute, with intervals."""
    limits = {
        "equalized_odds_difference": params.max_equalized_odds_difference,
        "demographic_parity_difference": params.max_demographic_parity_difference,
    }
    return [
        _fairness_check(report.get(attribute), gap, attribute, limit, params.fairness_gate.rule)
        for attribute in attributes
        for gap, limit in limits.items()
    ]


# --------------------------------------------------------------------------------------------
# policy
# --------------------------------------------------------------------------------------------
