"""Monitoring of scored batches: drift, performance once labels arrive, bias, and a policy.

:func:`monitor_batch` turns one scored batch into a machine-readable verdict and one HTML
report:

* **data drift** of the feature columns and **score drift**, computed on every row with the
  fast binned statistics of :mod:`inferloop.drift` against the reference (the model's
  validation window);
* **performance**, once labels have arrived (rows whose ``label_available_at <= as_of`` and
  whose label is not null): AP, ROC-AUC, precision and recall at the model's threshold from
  :func:`inferloop.metrics.compute_metrics`, compared with the model's validation figures;
* **bias**: per-group metrics and between-group gaps for every sensitive attribute, from
  :func:`inferloop.fairness.fairness_report` on the labelled rows;
* an **Evidently 0.7** report (data drift, data summary, score drift) on a seeded sample of
  both datasets, so its cost does not grow with the batch.

Evidently 0.7 has no fairness metrics, and a custom Evidently metric would be stored in its
snapshots under a type name that the stand-alone ``evidently ui`` process cannot load (it
does not import inferloop). The report therefore renders Evidently's own HTML
(``Snapshot.get_html_str``, public API) and inserts a plain-HTML section at the top of its
``<body>``: the verdict, our PSI table, the performance comparison and the per-group bias
tables. The section uses no JavaScript, so it survives changes of Evidently's front-end; if
Evidently fails on a batch, the report keeps our section alone and the verdict is unaffected.
The workspace snapshot (``inferloop ui --monitoring``) holds only Evidently's metrics plus
the verdict as snapshot metadata and tags.

Outputs of one batch go to ``out_dir/<batch>/``: ``report.html`` and ``summary.json``, whose
``checks`` map every check to ``{value, threshold, breached, evaluated}`` and whose
``status`` is ``ok``, ``alert`` or ``retrain`` (see :class:`Policy`).
"""

from __future__ import annotations

import html
import json
import logging
import math
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import numpy as np
import pandas as pd

from inferloop import schema as s
from inferloop.drift import DriftResult, DriftThresholds, ReferenceProfile, split_column_kinds
from inferloop.fairness import GroupFairness, fairness_report
from inferloop.metrics import ClassificationMetrics, compute_metrics
from inferloop.storage import jsonable, read_json, write_json

if TYPE_CHECKING:
    from evidently.core.report import Snapshot

logger = logging.getLogger(__name__)

DEFAULT_PROJECT: Final = "inferloop monitoring"
MONITORING_EXPERIMENT: Final = "monitoring"
REPORT_FILE: Final = "report.html"
SUMMARY_FILE: Final = "summary.json"

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

ActionKind = Literal["none", "alert", "retrain"]
Status = Literal["ok", "alert", "retrain"]
_STATUS: Final[dict[str, Status]] = {"none": "ok", "alert": "alert", "retrain": "retrain"}
FAMILIES: Final = ("data_drift", "score_drift", "performance", "fairness")


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
    consecutive_windows : int
        Windows in a row a check family must breach before retraining.
    retrain_on_performance_at_once : bool
        A performance breach triggers retraining in the window it is seen.
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
    consecutive_windows: int = 3
    retrain_on_performance_at_once: bool = True
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


# --------------------------------------------------------------------------------------------
# checks
# --------------------------------------------------------------------------------------------


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


def _validation_figure(metrics: Mapping[str, Any] | None, name: str) -> float:
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
            value = _validation_figure(validation, metric) - getattr(current, metric)
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


@dataclass(frozen=True)
class Action:
    """What the policy asks for after the latest window.

    Attributes
    ----------
    kind : {"none", "alert", "retrain"}
    reasons : tuple of str
        One human-readable line per breached check family.
    families : tuple of str
        Families that triggered ``retrain`` (or were breached, for ``alert``).
    """

    kind: ActionKind
    reasons: tuple[str, ...] = ()
    families: tuple[str, ...] = ()

    @property
    def status(self) -> Status:
        """``ok``, ``alert`` or ``retrain``."""
        return _STATUS[self.kind]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"kind": self.kind, "reasons": list(self.reasons), "families": list(self.families)}


def _family_state(summary: Mapping[str, Any], family: str) -> bool | None:
    """True/False if ``family`` breached/passed in this window; None if not evaluated."""
    checks = [
        c
        for name, c in summary.get("checks", {}).items()
        if check_family(name) == family and c.get("evaluated", True)
    ]
    if not checks:
        return None
    return any(bool(c.get("breached")) for c in checks)


def breached_checks(summary: Mapping[str, Any]) -> list[str]:
    """Names of the breached checks of one summary."""
    return [name for name, c in summary.get("checks", {}).items() if c.get("breached")]


@dataclass(frozen=True)
class Policy:
    """Turns a history of batch summaries into an :class:`Action`.

    * ``retrain`` when one check family (data drift, score drift, performance, fairness) has
      breached in each of the last ``consecutive_windows`` windows where it was evaluated.
      Windows where the family could not be evaluated (labels not arrived yet) are skipped,
      neither extending nor breaking the run. Drift and fairness estimates are noisy proxies
      of harm, so they must persist.
    * ``retrain`` at once on a performance breach when ``performance_at_once``: performance
      is measured on ground truth that already lags by the label delay; waiting more windows
      would leave a degraded model catching less fraud for weeks.
    * ``alert`` when the latest window breached something that does not (yet) persist.
    * ``none`` otherwise, including whenever the latest window breached nothing.
    """

    consecutive_windows: int = 3
    performance_at_once: bool = True

    @classmethod
    def from_params(cls, params: MonitorParams) -> Policy:
        """The policy configured by the ``monitor`` params."""
        return cls(params.consecutive_windows, params.retrain_on_performance_at_once)

    def trailing_breaches(self, history: Sequence[Mapping[str, Any]], family: str) -> int:
        """Consecutive evaluated windows, newest first, in which ``family`` breached."""
        run = 0
        for summary in reversed(history):
            state = _family_state(summary, family)
            if state is None:
                continue
            if not state:
                break
            run += 1
        return run

    def _judge(self, history: Sequence[Mapping[str, Any]], family: str) -> tuple[bool, str]:
        """Whether breached ``family`` asks for retraining, and the reason in words."""
        names = ", ".join(n for n in breached_checks(history[-1]) if check_family(n) == family)
        if family == "performance" and self.performance_at_once:
            return True, f"{family}: {names} breached (retrain at once)"
        run = self.trailing_breaches(history, family)
        if run >= self.consecutive_windows:
            return True, f"{family}: breached in {run} consecutive windows ({names})"
        return False, f"{family}: {names} breached ({run}/{self.consecutive_windows} windows)"

    def decide(self, history: Sequence[Mapping[str, Any]]) -> Action:
        """The action after the last summary of ``history`` (oldest first)."""
        breached = [f for f in FAMILIES if history and _family_state(history[-1], f)]
        if not breached:
            return Action("none")
        verdicts = {family: self._judge(history, family) for family in breached}
        reasons = tuple(reason for _, reason in verdicts.values())
        retrain = tuple(family for family, (yes, _) in verdicts.items() if yes)
        if retrain:
            return Action("retrain", reasons, retrain)
        return Action("alert", reasons, tuple(breached))


def decide_action(history: Sequence[Mapping[str, Any]], params: MonitorParams) -> Action:
    """:meth:`Policy.decide` with the policy configured by ``params``.

    Parameters
    ----------
    history : sequence of dict
        Batch summaries (``summary.json`` contents), oldest first, the latest window last.
    params : MonitorParams

    Returns
    -------
    Action
    """
    return Policy.from_params(params).decide(history)


def load_history(out_dir: str | Path, model_version: str | None = None) -> list[dict[str, Any]]:
    """Summaries written under ``out_dir/*/summary.json``, oldest first (by ``as_of``).

    Parameters
    ----------
    out_dir : str or Path
        The monitoring output folder.
    model_version : str, optional
        Keep only summaries of this model version (a retrained model starts a new history).

    Returns
    -------
    list of dict
    """
    summaries = []
    for path in sorted(Path(out_dir).glob(f"*/{SUMMARY_FILE}")):
        try:
            summary = read_json(path)
        except (OSError, json.JSONDecodeError) as exc:
            logger.warning("skipping unreadable monitoring summary %s: %s", path, exc)
            continue
        version = (summary.get("model") or {}).get("version")
        if model_version is None or str(version) == str(model_version):
            summaries.append(summary)
    return sorted(summaries, key=lambda x: (str(x.get("as_of")), str(x.get("batch"))))


# --------------------------------------------------------------------------------------------
# data selection
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Inputs:
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


def labelled_rows(scored: pd.DataFrame, label_col: str, as_of: pd.Timestamp) -> pd.DataFrame:
    """Rows whose label is known at ``as_of``: not null and ``label_available_at <= as_of``.

    Without a ``label_available_at`` column every non-null label counts as arrived.
    """
    if label_col not in scored.columns:
        return scored.iloc[:0]
    known = scored[label_col].notna()
    if s.LABEL_AVAILABLE_AT in scored.columns:
        available = pd.to_datetime(scored[s.LABEL_AVAILABLE_AT])
        known &= available.notna() & (available <= _same_zone(as_of, available))
    return scored.loc[known]


def _threshold(
    scored: pd.DataFrame, validation: Mapping[str, Any] | None, score_col: str, decision_col: str
) -> float:
    """The model's alert threshold: from its validation figures, else from the decisions."""
    figure = _validation_figure(validation, "threshold")
    if math.isfinite(figure):
        return figure
    if decision_col in scored.columns and (scored[decision_col] == 1).any():
        return float(scored.loc[scored[decision_col] == 1, score_col].min())
    return 0.5


def _performance(
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


def _fairness(
    labelled: pd.DataFrame, inputs: _Inputs, threshold: float, params: MonitorParams
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
    )


# --------------------------------------------------------------------------------------------
# Evidently
# --------------------------------------------------------------------------------------------


def _sample(frame: pd.DataFrame, columns: Sequence[str], size: int, seed: int) -> pd.DataFrame:
    picked = frame[list(columns)]
    if len(picked) <= size:
        return picked.reset_index(drop=True)
    return picked.sample(n=size, random_state=seed).reset_index(drop=True)


def run_evidently(
    current: pd.DataFrame,
    reference: pd.DataFrame,
    *,
    numeric_cols: Sequence[str],
    categorical_cols: Sequence[str],
    score_col: str | None,
    params: MonitorParams,
    name: str,
    timestamp: datetime | None = None,
    metadata: Mapping[str, str] | None = None,
    tags: Sequence[str] = (),
) -> Snapshot:
    """Evidently data drift + data summary + score drift on a seeded sample of both frames.

    Parameters
    ----------
    current, reference : pandas.DataFrame
        The batch and the reference.
    numeric_cols, categorical_cols : sequence of str
        Feature columns by type.
    score_col : str, optional
        Model score column present in both frames (its drift is a separate ``ValueDrift``).
    params : MonitorParams
        Uses ``evidently_sample_size``, ``seed`` and ``drift_share_threshold``.
    name : str
        Snapshot name (the batch).
    timestamp : datetime, optional
        Snapshot time shown by the Evidently UI (the batch's ``as_of``).
    metadata, tags : optional
        Stored on the snapshot (the verdict, for the UI).

    Returns
    -------
    evidently.core.report.Snapshot
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset, DataSummaryPreset

    features = [*numeric_cols, *categorical_cols]
    score = [score_col] if score_col else []
    definition = DataDefinition(
        numerical_columns=[*numeric_cols, *score], categorical_columns=list(categorical_cols)
    )
    columns = [*features, *score]
    size, seed = params.evidently_sample_size, params.seed
    datasets = [
        Dataset.from_pandas(_sample(frame, columns, size, seed), data_definition=definition)
        for frame in (current, reference)
    ]
    metrics: list[Any] = [
        DataDriftPreset(columns=features, drift_share=params.drift_share_threshold),
        DataSummaryPreset(columns=columns),
    ]
    if score_col:
        metrics.append(ValueDrift(column=score_col))
    report = Report(metrics, include_tests=True)
    return report.run(
        datasets[0],
        datasets[1],
        timestamp=timestamp,
        metadata=dict(metadata or {}),
        tags=list(tags),
        name=name,
    )


def evidently_summary(snapshot: Snapshot, score_col: str | None) -> dict[str, Any]:
    """Evidently's drifted-column share and score drift, looked up by metric type.

    Returns
    -------
    dict
        ``drifted_columns_share``, ``drifted_columns_count`` and ``score_drift`` (None when
        absent); informative only, the verdict uses our full-data statistics.
    """
    out: dict[str, Any] = {
        "drifted_columns_share": None,
        "drifted_columns_count": None,
        "score_drift": None,
    }
    for metric in snapshot.dict()["metrics"]:
        config, value = metric.get("config", {}), metric.get("value")
        kind = str(config.get("type", ""))
        if kind.endswith(":DriftedColumnsCount") and isinstance(value, dict):
            out["drifted_columns_share"] = float(value["share"])
            out["drifted_columns_count"] = float(value["count"])
        elif kind.endswith(":ValueDrift") and score_col and config.get("column") == score_col:
            out["score_drift"] = float(value) if value is not None else None
            out["score_drift_method"] = config.get("method")
    return out


def add_to_workspace(
    snapshot: Snapshot, workspace_dir: str | Path, project_name: str = DEFAULT_PROJECT
) -> str:
    """Store ``snapshot`` in a local Evidently workspace, creating the project if needed.

    A new project gets a dashboard with the share of drifted columns and the score drift over
    time. Browse it with ``inferloop ui --monitoring`` (``evidently ui --workspace DIR``).

    Parameters
    ----------
    snapshot : evidently.core.report.Snapshot
    workspace_dir : str or Path
        The workspace folder (created if missing).
    project_name : str, default "inferloop monitoring"

    Returns
    -------
    str
        The stored snapshot's id.
    """
    from evidently.ui.workspace import Workspace

    Path(workspace_dir).mkdir(parents=True, exist_ok=True)
    workspace = Workspace(str(workspace_dir))
    found = workspace.search_project(project_name)
    project = found[0] if found else _create_project(workspace, project_name)
    return str(workspace.add_run(project.id, snapshot).id)


def _create_project(workspace: Any, project_name: str) -> Any:
    from evidently.sdk.models import PanelMetric
    from evidently.sdk.panels import line_plot_panel

    project = workspace.create_project(
        project_name, description="inferloop: drift, score drift and data quality per batch"
    )
    project.dashboard.add_panel(
        line_plot_panel(
            "Share of drifted columns (Evidently, sampled)",
            [
                PanelMetric(
                    legend="share",
                    metric="DriftedColumnsCount",
                    metric_labels={"value_type": "share"},
                )
            ],
            size="half",
        )
    )
    project.dashboard.add_panel(
        line_plot_panel(
            "Score drift (Evidently)",
            [PanelMetric(legend="score", metric="ValueDrift", metric_labels={"column": s.SCORE})],
            size="half",
        )
    )
    return project


# --------------------------------------------------------------------------------------------
# the HTML section
# --------------------------------------------------------------------------------------------

_CSS: Final = """
<style>
#inferloop-monitoring {font-family: Roboto, Helvetica, Arial, sans-serif; margin: 24px;
  color: #222; font-size: 14px}
#inferloop-monitoring table {border-collapse: collapse; margin: 8px 0 18px}
#inferloop-monitoring th, #inferloop-monitoring td {border: 1px solid #ddd; padding: 3px 8px;
  text-align: right}
#inferloop-monitoring th {background: #f3f3f3}
#inferloop-monitoring .status {display: inline-block; padding: 2px 10px; border-radius: 4px;
  color: white; font-weight: bold}
#inferloop-monitoring .ok {background: #2e7d32} #inferloop-monitoring .alert {background: #ef6c00}
#inferloop-monitoring .retrain {background: #c62828}
</style>
"""


def _table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="-", border=0)


def _checks_frame(summary: Mapping[str, Any]) -> pd.DataFrame:
    def verdict(check: Mapping[str, Any]) -> str:
        if not check.get("evaluated", True):
            return "not evaluated"
        return "BREACHED" if check["breached"] else "ok"

    rows = [
        {"check": name, "value": c["value"], "threshold": c["threshold"], "verdict": verdict(c)}
        for name, c in summary["checks"].items()
    ]
    return pd.DataFrame(rows, columns=["check", "value", "threshold", "verdict"])


def _performance_frame(summary: Mapping[str, Any]) -> pd.DataFrame:
    perf = summary["performance"]
    current, validation = perf.get("current") or {}, perf.get("validation") or {}
    names = ("average_precision", "roc_auc", "precision", "recall", "card_precision_at_k")
    return pd.DataFrame(
        [{"metric": n, "current": current.get(n), "validation": validation.get(n)} for n in names]
    )


def _fairness_html(fairness: Mapping[str, GroupFairness]) -> str:
    if not fairness:
        return "<p>Not evaluated: too few labelled rows or frauds in this batch.</p>"
    parts = []
    for attribute, result in fairness.items():
        gaps = ", ".join(
            f"{name.replace('_', ' ')} {getattr(result, name):.3f}"
            for name in ("equalized_odds_difference", "demographic_parity_difference")
        )
        table = result.by_group.rename_axis(attribute).reset_index()
        parts.append(f"<h4>{html.escape(attribute)} ({html.escape(gaps)})</h4>{_table(table)}")
    return "".join(parts)


def render_section(
    summary: Mapping[str, Any], drift: DriftResult, fairness: Mapping[str, GroupFairness]
) -> str:
    """Our part of the report: verdict, checks, PSI, performance and bias tables, as HTML.

    Parameters
    ----------
    summary : dict
        The batch summary (see :func:`monitor_batch`).
    drift : DriftResult
    fairness : mapping of str to GroupFairness

    Returns
    -------
    str
        A self-contained ``<section>`` (styles included, no scripts).
    """
    status = str(summary["status"])
    reasons = "".join(f"<li>{html.escape(r)}</li>" for r in summary["action"]["reasons"])
    perf = summary["performance"]
    evidently_note = (
        f"The Evidently report below runs on a seeded sample of at most "
        f"{summary['evidently']['sample_size']:,} rows of each dataset; the checks above use "
        f"every row."
    )
    return (
        f'{_CSS}<section id="inferloop-monitoring">'
        f"<h2>inferloop monitoring: {html.escape(str(summary['batch']))} "
        f'<span class="status {html.escape(status)}">{html.escape(status.upper())}</span></h2>'
        f"<p>as of {html.escape(str(summary['as_of']))}; {summary['rows']['n']:,} rows, "
        f"{perf['n_labelled']:,} labelled; reference {drift.n_reference:,} rows.</p>"
        f"<ul>{reasons}</ul><h3>Checks</h3>{_table(_checks_frame(summary))}"
        f"<h3>Drift per column (PSI on reference quantile bins)</h3>{_table(drift.table())}"
        f"<h3>Performance on labelled rows</h3>{_table(_performance_frame(summary))}"
        f"<h3>Bias by sensitive attribute</h3>{_fairness_html(fairness)}"
        f"<p><em>{html.escape(evidently_note)}</em></p></section>"
    )


def compose_report(evidently_html: str | None, section: str) -> str:
    """Insert ``section`` at the top of Evidently's page body (or make a page of it alone)."""
    if evidently_html is None:
        return (
            f'<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>{section}</body></html>'
        )
    lower = evidently_html.lower()
    start = lower.find("<body")
    end = lower.find(">", start) if start >= 0 else -1
    if end < 0:
        return evidently_html + section
    return evidently_html[: end + 1] + section + evidently_html[end + 1 :]


# --------------------------------------------------------------------------------------------
# the batch
# --------------------------------------------------------------------------------------------


@dataclass
class MonitorResult:
    """Everything :func:`monitor_batch` computed and wrote for one batch.

    Attributes
    ----------
    batch : str
    summary : dict
        Contents of ``summary.json``.
    drift : DriftResult
    performance : ClassificationMetrics or None
        None until enough labels have arrived.
    fairness : dict of str to GroupFairness
        Empty until enough labels have arrived.
    action : Action
    report_path, summary_path : Path
    snapshot : evidently Snapshot or None
        None if Evidently failed (the error is in ``summary["evidently"]["error"]``).
    mlflow_run_id : str or None
        Set by :func:`monitor_files` once the result is logged to MLflow.
    """

    batch: str
    summary: dict[str, Any]
    drift: DriftResult
    performance: ClassificationMetrics | None
    fairness: dict[str, GroupFairness]
    action: Action
    report_path: Path
    summary_path: Path
    snapshot: Snapshot | None = None
    mlflow_run_id: str | None = None

    @property
    def status(self) -> Status:
        """``ok``, ``alert`` or ``retrain``."""
        return self.action.status

    @property
    def breached(self) -> list[str]:
        """Names of the breached checks."""
        return breached_checks(self.summary)


def _fairness_summary(fairness: Mapping[str, GroupFairness]) -> dict[str, Any]:
    return {
        attribute: {
            **result.as_dict(prefix=""),
            "by_group": result.by_group.rename_axis("group").reset_index().to_dict("records"),
        }
        for attribute, result in fairness.items()
    }


def _alert_rate(frame: pd.DataFrame, decision_col: str) -> float:
    if decision_col not in frame.columns or frame.empty:
        return float("nan")
    return float(frame[decision_col].mean())


def _build_summary(
    batch: str,
    as_of: pd.Timestamp,
    scored: pd.DataFrame,
    reference: pd.DataFrame,
    labelled: pd.DataFrame,
    drift: DriftResult,
    performance: ClassificationMetrics | None,
    fairness: Mapping[str, GroupFairness],
    checks: Sequence[Check],
    validation: Mapping[str, Any] | None,
    inputs: _Inputs,
    model: Mapping[str, str | None],
) -> dict[str, Any]:
    return {
        "batch": batch,
        "as_of": as_of.isoformat(),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": dict(model),
        "checks": {c.name: c.as_dict() for c in checks},
        "rows": {
            "n": len(scored),
            "reference": len(reference),
            "alert_rate": _alert_rate(scored, inputs.decision_col),
            "reference_alert_rate": _alert_rate(reference, inputs.decision_col),
        },
        "drift": drift.as_dict(),
        "performance": {
            "n_labelled": len(labelled),
            "n_labelled_frauds": int(labelled[inputs.label_col].sum()) if len(labelled) else 0,
            "current": performance.as_dict() if performance else None,
            "validation": dict(validation) if validation else None,
        },
        "fairness": _fairness_summary(fairness),
        "report": REPORT_FILE,
    }


def _resolve_inputs(
    scored: pd.DataFrame,
    reference: pd.DataFrame,
    feature_cols: Sequence[str] | None,
    sensitive_cols: Sequence[str],
    outputs: tuple[str, str, str],
) -> _Inputs:
    label_col, score_col, decision_col = outputs
    if score_col not in scored.columns:
        raise ValueError(f"scored batch has no score column {score_col!r}")
    features = (
        list(feature_cols) if feature_cols is not None else infer_feature_columns(scored, reference)
    )
    missing = [c for c in features if c not in scored.columns or c not in reference.columns]
    if missing:
        raise ValueError(f"feature columns missing from the batch or the reference: {missing}")
    numeric, categorical = split_column_kinds(reference, features)
    return _Inputs(
        label_col,
        score_col,
        decision_col,
        numeric,
        categorical,
        list(sensitive_cols),
        score_col in reference.columns,
    )


def _report_columns(
    inputs: _Inputs, summary: Mapping[str, Any], limit: int
) -> tuple[list[str], list[str]]:
    """The feature columns shown by Evidently: all, or the ``limit`` with the highest PSI."""
    if limit <= 0 or len(inputs.numeric) + len(inputs.categorical) <= limit:
        return list(inputs.numeric), list(inputs.categorical)
    columns = summary.get("drift", {}).get("columns", {})
    ranked = sorted(columns, key=lambda c: -(columns[c].get("psi") or 0.0))[:limit]
    return [c for c in inputs.numeric if c in ranked], [
        c for c in inputs.categorical if c in ranked
    ]


def _evidently_part(
    scored: pd.DataFrame,
    reference: pd.DataFrame,
    inputs: _Inputs,
    params: MonitorParams,
    summary: dict[str, Any],
) -> Snapshot | None:
    """Run Evidently; on failure log it, record the error and return None (never raise)."""
    info: dict[str, Any] = {"sample_size": params.evidently_sample_size, "seed": params.seed}
    summary["evidently"] = info
    numeric, categorical = _report_columns(inputs, summary, params.evidently_max_columns)
    try:
        snapshot = run_evidently(
            scored,
            reference,
            numeric_cols=numeric,
            categorical_cols=categorical,
            score_col=inputs.score_col if inputs.score_in_both else None,
            params=params,
            name=summary["batch"],
            timestamp=pd.Timestamp(summary["as_of"]).to_pydatetime(),
            metadata={
                "status": summary["status"],
                "breached": ",".join(breached_checks(summary)) or "none",
                **{f"model_{k}": str(v) for k, v in summary["model"].items() if v is not None},
            },
            tags=[summary["status"], *(f"breach:{b}" for b in breached_checks(summary))],
        )
    except Exception as exc:  # Evidently must never take the verdict down with it
        logger.warning("Evidently report failed for %s: %s", summary["batch"], exc)
        info["error"] = f"{type(exc).__name__}: {exc}"
        return None
    info.update(evidently_summary(snapshot, inputs.score_col))
    return snapshot


def monitor_batch(
    scored: pd.DataFrame,
    reference: pd.DataFrame,
    *,
    params: MonitorParams,
    model_validation_metrics: Mapping[str, Any] | None = None,
    label_col: str = s.TARGET,
    score_col: str = s.SCORE,
    decision_col: str = s.DECISION,
    feature_cols: Sequence[str] | None = None,
    sensitive_cols: Sequence[str] | None = None,
    out_dir: str | Path = "reports/monitoring",
    batch_name: str | None = None,
    as_of: Any = None,
    history: Sequence[Mapping[str, Any]] = (),
    profile: ReferenceProfile | None = None,
    model_name: str | None = None,
    model_version: str | None = None,
    workspace_dir: str | Path | None = None,
    project_name: str = DEFAULT_PROJECT,
) -> MonitorResult:
    """Monitor one scored batch against the reference and write its report and verdict.

    Parameters
    ----------
    scored : pandas.DataFrame
        The batch: feature columns, ``score_col``, ideally ``decision_col``, and labels with
        ``label_available_at`` where known.
    reference : pandas.DataFrame
        The reference window, scored by the same model (e.g. its validation data).
    params : MonitorParams
    model_validation_metrics : mapping, optional
        The model's validation figures: ``average_precision``, ``roc_auc`` and ``threshold``
        (a ``validation_`` prefix is accepted). Without them the drop checks are skipped.
    label_col, score_col, decision_col : str
        Column names of the label, the score and the alert decision.
    feature_cols : sequence of str, optional
        Columns to watch for drift; default ``params.feature_columns``, or
        :func:`infer_feature_columns` when that is empty.
    sensitive_cols : sequence of str, optional
        Attributes for the bias checks, default ``params.fairness_attributes`` (attributes
        absent from the batch are skipped).
    out_dir : str or Path
        Outputs go to ``out_dir/<batch_name>/``.
    batch_name : str, optional
        Default ``batch-<as_of>``.
    as_of : timestamp-like, optional
        Monitoring time deciding which labels have arrived; default the batch's last
        timestamp.
    history : sequence of dict
        Earlier summaries of the same model, oldest first (:func:`load_history`); the policy
        decides on ``[*history, this batch]`` (an earlier summary with this batch's name is
        ignored: a re-run replaces its batch).
    profile : ReferenceProfile, optional
        A precomputed profile of ``reference`` (saves refitting it for every batch).
    model_name, model_version : str, optional
        Recorded in the summary and the Evidently snapshot.
    workspace_dir : str or Path, optional
        Also add the Evidently snapshot to this workspace.
    project_name : str
        Evidently project of the workspace.

    Returns
    -------
    MonitorResult

    Raises
    ------
    ValueError
        If the score column or a feature column is missing, or the batch is empty.
    """
    if scored.empty:
        raise ValueError("cannot monitor an empty batch")
    inputs = _resolve_inputs(
        scored,
        reference,
        feature_cols if feature_cols is not None else params.feature_columns or None,
        sensitive_cols if sensitive_cols is not None else params.fairness_attributes,
        (label_col, score_col, decision_col),
    )
    stamp = batch_as_of(scored, as_of)
    batch = batch_name or f"batch-{stamp:%Y%m%dT%H%M%S}"
    profile = profile or ReferenceProfile.fit(
        reference,
        inputs.numeric,
        inputs.categorical,
        params.n_bins,
        score_col=score_col if inputs.score_in_both else None,
    )
    drift = profile.compare(scored, params.drift_thresholds())
    labelled = labelled_rows(scored, label_col, stamp)
    threshold = _threshold(scored, model_validation_metrics, score_col, decision_col)
    performance = _performance(labelled, label_col, score_col, threshold, params)
    fairness = _fairness(labelled, inputs, threshold, params)
    checks = [
        *drift_checks(drift, params),
        *performance_checks(performance, model_validation_metrics, params),
        *fairness_checks(fairness, inputs.sensitive, params),
    ]
    model = {"name": model_name, "version": model_version}
    summary = _build_summary(
        batch, stamp, scored, reference, labelled, drift, performance, fairness, checks,
        model_validation_metrics, inputs, model,
    )  # fmt: skip
    earlier = [h for h in history if h.get("batch") != batch]  # a re-run replaces its batch
    action = decide_action([*earlier, summary], params)
    summary.update(status=action.status, action=action.as_dict())
    snapshot = _evidently_part(scored, reference, inputs, params, summary)
    return _write_outputs(
        batch, summary, drift, performance, fairness, action, snapshot, Path(out_dir),
        workspace_dir, project_name, params,
    )  # fmt: skip


def _write_outputs(
    batch: str,
    summary: dict[str, Any],
    drift: DriftResult,
    performance: ClassificationMetrics | None,
    fairness: dict[str, GroupFairness],
    action: Action,
    snapshot: Snapshot | None,
    out_dir: Path,
    workspace_dir: str | Path | None,
    project_name: str,
    params: MonitorParams,
) -> MonitorResult:
    folder = out_dir / batch
    folder.mkdir(parents=True, exist_ok=True)
    if snapshot is not None and workspace_dir is not None:
        try:
            summary["evidently"]["snapshot_id"] = add_to_workspace(
                snapshot, workspace_dir, project_name
            )
        except Exception as exc:  # a broken workspace must not lose the verdict
            logger.warning("could not add %s to the Evidently workspace: %s", batch, exc)
            summary["evidently"]["workspace_error"] = f"{type(exc).__name__}: {exc}"
    if params.webhook_url and action.kind != "none":
        summary["webhook_sent"] = send_webhook(
            params.webhook_url, alert_payload(summary), timeout=params.webhook_timeout
        )
    summary = jsonable(summary)
    evidently_html = snapshot.get_html_str(as_iframe=False) if snapshot is not None else None
    report_path = folder / REPORT_FILE
    report_path.write_text(
        compose_report(evidently_html, render_section(summary, drift, fairness)), encoding="utf-8"
    )
    summary_path = write_json(summary, folder / SUMMARY_FILE)
    return MonitorResult(
        batch, summary, drift, performance, fairness, action, report_path, summary_path, snapshot
    )


# --------------------------------------------------------------------------------------------
# alerts, MLflow
# --------------------------------------------------------------------------------------------


def alert_payload(summary: Mapping[str, Any]) -> dict[str, Any]:
    """Compact JSON body of an alert; ``text`` makes it readable in Slack-style hooks."""
    breached = breached_checks(summary)
    model = summary.get("model") or {}
    text = (
        f"inferloop monitoring {summary.get('status', '?').upper()}: batch {summary.get('batch')}"
        f" (model {model.get('name')} v{model.get('version')}); breached: "
        f"{', '.join(breached) or 'none'}"
    )
    return jsonable(
        {
            "text": text,
            "batch": summary.get("batch"),
            "as_of": summary.get("as_of"),
            "status": summary.get("status"),
            "model": model,
            "breached": breached,
            "action": summary.get("action"),
            "checks": {name: summary["checks"][name] for name in breached},
        }
    )


def send_webhook(url: str, payload: Mapping[str, Any], timeout: float = 5.0) -> bool:
    """POST ``payload`` as JSON to ``url``; failures are logged, never raised.

    Parameters
    ----------
    url : str
        An ``http://`` or ``https://`` URL.
    payload : mapping
        JSON-serialisable body.
    timeout : float, default 5
        Seconds before giving up.

    Returns
    -------
    bool
        True when the endpoint answered with a 2xx status.
    """
    if not url.lower().startswith(("http://", "https://")):
        logger.warning("webhook not sent: only http(s) URLs are allowed, got %r", url)
        return False
    body = json.dumps(jsonable(payload)).encode("utf-8")
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            ok = 200 <= int(response.status) < 300
    except (urllib.error.URLError, OSError, ValueError) as exc:
        logger.warning("webhook to %s failed: %s", url, exc)
        return False
    if not ok:
        logger.warning("webhook to %s answered with status %s", url, response.status)
    return ok


def _metric_key(name: str) -> str:
    return name.replace(":", "/")


def _mlflow_metrics(summary: Mapping[str, Any]) -> dict[str, float]:
    """Finite numbers of a summary under MLflow-safe names (``:`` becomes ``/``)."""
    checks = summary["checks"].items()
    metrics: dict[str, Any] = {f"check/{_metric_key(n)}": c["value"] for n, c in checks}
    metrics.update({f"breached/{_metric_key(n)}": c["breached"] for n, c in checks})
    metrics.update({f"psi/{col}": c["psi"] for col, c in summary["drift"]["columns"].items()})
    current = summary["performance"]["current"] or {}
    metrics.update({f"current/{k}": v for k, v in current.items()})
    metrics.update(
        rows=summary["rows"]["n"],
        labelled_rows=summary["performance"]["n_labelled"],
        alert_rate=summary["rows"]["alert_rate"],
    )
    return {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, int | float) and math.isfinite(float(v))
    }


def log_to_mlflow(
    result: MonitorResult,
    model_name: str,
    model_version: str | int,
    *,
    experiment: str = MONITORING_EXPERIMENT,
) -> str:
    """Log a batch's check values, PSI per column and report to an MLflow run.

    The caller points MLflow at the store first (:func:`inferloop.tracking.configure_mlflow`).

    Parameters
    ----------
    result : MonitorResult
    model_name : str
        Registered model the batch was scored with (tag ``model_name``).
    model_version : str or int
        Its version (tag ``model_version``).
    experiment : str, default "monitoring"
        Created with :func:`inferloop.tracking.ensure_experiment` if missing.

    Returns
    -------
    str
        The run id.
    """
    import mlflow

    from inferloop.tracking import ensure_experiment

    experiment_id = ensure_experiment(experiment)
    tags = {
        "model_name": model_name,
        "model_version": str(model_version),
        "batch": result.batch,
        "status": result.status,
        "breached": ",".join(result.breached) or "none",
        "as_of": str(result.summary["as_of"]),
    }
    with mlflow.start_run(
        experiment_id=experiment_id, run_name=f"monitor-{result.batch}", tags=tags
    ) as run:
        mlflow.log_metrics(_mlflow_metrics(result.summary))
        mlflow.log_artifact(str(result.report_path), artifact_path="monitoring")
        mlflow.log_artifact(str(result.summary_path), artifact_path="monitoring")
    return str(run.info.run_id)


def validation_metrics_from_registry(model_name: str, model_version: str) -> dict[str, float]:
    """A registered version's validation AP, ROC-AUC and threshold from its tags.

    The register stage tags every version with ``validation_average_precision``,
    ``validation_roc_auc`` and ``threshold``; missing tags are left out.
    """
    from inferloop.registry import version_tags

    tags = version_tags(model_name, model_version)
    out = {}
    for key, tag in (
        ("average_precision", "validation_average_precision"),
        ("roc_auc", "validation_roc_auc"),
        ("threshold", "threshold"),
    ):
        try:
            out[key] = float(tags[tag])
        except (KeyError, ValueError):
            continue
    return out


def model_of(scored: pd.DataFrame) -> tuple[str | None, str | None]:
    """``(name, version)`` of the model that scored a batch, from its output columns.

    Every prediction row carries them; a batch mixing several versions gives None for the
    version (its history could not be attributed to one model).
    """

    def single(column: str) -> str | None:
        if column not in scored.columns:
            return None
        values = scored[column].dropna().astype(str).unique()
        return str(values[0]) if len(values) == 1 else None

    return single(s.MODEL_NAME), single(s.MODEL_VERSION)


def _registry_figures(model_name: str | None, model_version: str | None) -> dict[str, float]:
    """Validation figures of a registered version; {} (with a warning) when unavailable."""
    if not model_name or not model_version:
        return {}
    try:
        return validation_metrics_from_registry(model_name, model_version)
    except Exception as exc:  # an unreachable registry must not stop monitoring
        logger.warning("no validation figures for %s v%s: %s", model_name, model_version, exc)
        return {}


def monitor_files(
    scored_path: str | Path,
    reference_path: str | Path,
    *,
    params: MonitorParams,
    out_dir: str | Path = "reports/monitoring",
    workspace_dir: str | Path | None = "reports/evidently",
    model_name: str | None = None,
    model_version: str | None = None,
    batch_name: str | None = None,
    as_of: Any = None,
    log_mlflow: bool = True,
) -> MonitorResult:
    """The ``inferloop monitor`` command: read files, monitor, keep history, log to MLflow.

    The model name and version default to the batch's ``model_name`` / ``model_version``
    columns. With a version, its validation figures come from the registry's tags, the
    policy sees that version's earlier summaries in ``out_dir``, and the result is logged to
    MLflow (experiment ``monitoring``). Registry or MLflow failures are logged and skipped.
    The caller configures MLflow first (:func:`inferloop.tracking.configure_mlflow`).

    Parameters
    ----------
    scored_path, reference_path : str or Path
        CSV or Parquet files (or Parquet folders) of the scored batch and the reference.
    params : MonitorParams
    out_dir, workspace_dir : str or Path
        Monitoring outputs and the Evidently workspace (None: no workspace).
    model_name, model_version : str, optional
        Override the values read from the batch.
    batch_name, as_of : optional
        See :func:`monitor_batch`.
    log_mlflow : bool, default True
        Log the result to MLflow when the model version is known.

    Returns
    -------
    MonitorResult
    """
    from inferloop.ingest import read_table

    scored, reference = read_table(scored_path), read_table(reference_path)
    found_name, found_version = model_of(scored)
    name, version = model_name or found_name, model_version or found_version
    result = monitor_batch(
        scored,
        reference,
        params=params,
        model_validation_metrics=_registry_figures(name, version),
        out_dir=out_dir,
        batch_name=batch_name,
        as_of=as_of,
        history=load_history(out_dir, version) if version else (),
        model_name=name,
        model_version=version,
        workspace_dir=workspace_dir,
    )
    if log_mlflow and name and version:
        try:
            result.mlflow_run_id = log_to_mlflow(result, name, version)
        except Exception as exc:  # the verdict is on disk already; MLflow is a copy
            logger.warning("could not log %s to MLflow: %s", result.batch, exc)
    return result


__all__ = [
    "Action",
    "Check",
    "MonitorParams",
    "MonitorResult",
    "Policy",
    "add_to_workspace",
    "alert_payload",
    "decide_action",
    "infer_feature_columns",
    "labelled_rows",
    "load_history",
    "log_to_mlflow",
    "model_of",
    "monitor_batch",
    "monitor_files",
    "render_section",
    "run_evidently",
    "send_webhook",
    "validation_metrics_from_registry",
]
