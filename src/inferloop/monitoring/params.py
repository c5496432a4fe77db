"""Monitoring parameters (the ``monitor`` section of params.yaml) and the names of its outputs."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

from inferloop.core import schema as s
from inferloop.core.config import from_dict, read_params
from inferloop.core.dataset import dataset_spec
from inferloop.evaluation.fairness_ci import IntervalParams
from inferloop.monitoring.drift import (
    DriftThresholds,
)

if TYPE_CHECKING:
    pass

__all__ = [
    "DEFAULT_PROJECT",
    "FAMILIES",
    "MONITORING_EXPERIMENT",
    "NON_FEATURE_COLUMNS",
    "REPORT_FILE",
    "REVIEW_FILE",
    "STATUS_OF_ACTION",
    "SUMMARY_FILE",
    "ActionKind",
    "MonitorParams",
    "Status",
    "load_monitor_params",
]


logger = logging.getLogger(__name__)


DEFAULT_PROJECT: Final = "inferloop monitoring"
MONITORING_EXPERIMENT: Final = "monitoring"
REPORT_FILE: Final = "report.html"
SUMMARY_FILE: Final = "summary.json"
#: Batches that need a human review (fairness retraining exhausted), one JSON line each.
REVIEW_FILE: Final = "needs_review.jsonl"

#: Columns never monitored as features: identifiers, times, labels and model outputs.
NON_FEATURE_COLUMNS: Final = frozenset(
    {
        *s.ID_COLUMNS,
        s.TIMESTAMP,
        s.TARGET,
        s.LABEL_AVAILABLE_AT,
        s.FRAUD_SCENARIO,
        s.SCORE,
        s.DECISION,
        s.MODEL_NAME,
        s.MODEL_VERSION,
        s.SCORED_AT,
        s.REJECT_REASON,
    }
)

ActionKind = Literal["none", "alert", "retrain", "needs_review"]
Status = Literal["ok", "alert", "retrain", "needs_review"]
STATUS_OF_ACTION: Final[dict[str, Status]] = {
    "none": "ok",
    "alert": "alert",
    "retrain": "retrain",
    "needs_review": "needs_review",
}
FAMILIES: Final = ("data_drift", "score_drift", "performance", "estimate", "fairness")


# --------------------------------------------------------------------------------------------
# parameters
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MonitorParams:
    """The ``monitor`` section of params.yaml.

    Attributes
    ----------
    psi_threshold : float
        A feature column drifts when its PSI exceeds this.
    column_psi_thresholds : dict of str to float
        Per-column PSI thresholds overriding ``psi_threshold``.
    jensen_shannon_threshold, wasserstein_threshold : float or None
        Optional secondary per-column drift tests (off when None).
    n_bins : int
        Equal-count reference bins per numeric column.
    drift_share_threshold : float
        The data-drift check breaches when the share of drifted feature columns exceeds this.
    score_psi_threshold : float
        The score-drift check breaches when the score's PSI exceeds this.
    max_ap_drop, max_roc_auc_drop : float
        Largest allowed drop of AP / ROC-AUC below the model's validation figures.
    min_labelled_rows, min_labelled_frauds : int
        Performance and bias checks run only with at least this many labelled rows / frauds.
    max_equalized_odds_difference, max_demographic_parity_difference : float
        Fairness maxima per sensitive attribute.
    min_group_size : int
        Groups smaller than this are left out of the fairness gaps.
    fairness_gate : IntervalParams
        Bootstrap intervals of the fairness gaps and the rule that judges them, as in the
        promotion gates: with ``lower_bound`` a window breaches only when its interval's lower
        end is over the maximum.
    consecutive_windows : int
        Windows in a row a check family must breach before retraining.
    max_fairness_retrains : int
        Retrains that may fail to clear a fairness breach before the policy stops retraining
        and asks for a human review (``needs_review``); 0 never retrains while fairness is
        breached.
    mitigate_on_fairness : bool
        A retrain decided while fairness is breached trains the mitigated candidates
        (``retrain.mitigated_candidates``) instead of the usual ones.
    retrain_on_performance_at_once : bool
        A performance breach triggers retraining in the window it is seen.
    retrain_on_estimate : bool
        Act on the estimated AP before the labels arrive: the check ``estimated_ap_drop``
        (validation AP minus the estimated AP of the rows without labels) joins the checks
        and a breach retrains at once. Off by default: the estimate is blind to fraud the
        features cannot see (:mod:`inferloop.monitoring.estimate`).
    max_estimated_ap_drop : float
        The largest estimated AP drop tolerated when ``retrain_on_estimate``.
    evidently_sample_size : int
        Rows sampled from each dataset for the Evidently report.
    evidently_max_columns : int
        At most this many feature columns in the Evidently report, highest PSI first (0: all).
        Evidently's cost is per column (a plotly figure each), and the verdict uses our PSI
        over every column anyway.
    seed : int
        Seed of that sample.
    k : int
        Daily capacity of card precision@k.
    feature_columns : tuple of str
        Columns watched for drift; empty means :func:`infer_feature_columns`.
    fairness_attributes : tuple of str
        Sensitive attributes of the bias checks.
    webhook_url : str
        POST alerts here when a batch is not ``ok``; empty turns alerts off.
    webhook_timeout : float
        Seconds before a webhook call is abandoned.
    """

    psi_threshold: float = 0.1
    column_psi_thresholds: dict[str, float] = field(default_factory=dict)
    jensen_shannon_threshold: float | None = None
    wasserstein_threshold: float | None = None
    n_bins: int = 10
    drift_share_threshold: float = 0.3
    score_psi_threshold: float = 0.1
    max_ap_drop: float = 0.1
    max_roc_auc_drop: float = 0.05
    min_labelled_rows: int = 1000
    min_labelled_frauds: int = 20
    max_equalized_odds_difference: float = 0.45
    max_demographic_parity_difference: float = 0.05
    min_group_size: int = 30
    fairness_gate: IntervalParams = field(default_factory=IntervalParams)
    consecutive_windows: int = 3
    max_fairness_retrains: int = 2
    mitigate_on_fairness: bool = False
    retrain_on_performance_at_once: bool = True
    retrain_on_estimate: bool = False
    max_estimated_ap_drop: float = 0.1
    evidently_sample_size: int = 20_000
    evidently_max_columns: int = 0
    seed: int = 0
    k: int = 100
    feature_columns: tuple[str, ...] = ()
    fairness_attributes: tuple[str, ...] = s.SENSITIVE_COLUMNS
    webhook_url: str = ""
    webhook_timeout: float = 5.0

    def drift_thresholds(self) -> DriftThresholds:
        """The per-column drift thresholds for :meth:`ReferenceProfile.compare`."""
        return DriftThresholds(
            psi=self.psi_threshold,
            per_column=dict(self.column_psi_thresholds),
            jensen_shannon=self.jensen_shannon_threshold,
            wasserstein=self.wasserstein_threshold,
        )


def load_monitor_params(params_path: str | Path = "params.yaml") -> MonitorParams:
    """The ``monitor`` section; its fairness attributes default to the dataset's sensitive ones.

    ``monitor.fairness_attributes`` may name a subset of the declared attributes; absent, the
    bias checks cover every attribute the ``dataset`` section declares (none: no bias check).
    """
    params = read_params(params_path)
    section = params.get("monitor") or {}
    monitor = from_dict(MonitorParams, section, where="monitor")
    if "fairness_attributes" in section:
        return monitor
    spec = dataset_spec(params.get("dataset"))
    return replace(monitor, fairness_attributes=spec.sensitive_columns)


# --------------------------------------------------------------------------------------------
# checks
# --------------------------------------------------------------------------------------------
