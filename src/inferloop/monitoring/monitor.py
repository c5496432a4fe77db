"""Monitoring of one scored batch: drift, performance once labels arrive, bias, and a verdict.

:func:`monitor_batch` turns one scored batch into a machine-readable verdict and one HTML
report:

* **data drift** of the feature columns and **score drift**, computed on every row with the
  binned statistics of :mod:`inferloop.monitoring.drift` against the reference (the model's
  validation window);
* **performance**, once labels have arrived: AP, ROC-AUC, precision and recall at the model's
  threshold, compared with the model's validation figures;
* **bias**: per-group metrics and between-group gaps for every sensitive attribute;
* an **Evidently 0.7** report on a seeded sample of both datasets, so its cost does not grow
  with the batch.

Outputs of one batch go to ``out_dir/<batch>/``: ``report.html`` and ``summary.json``, whose
``checks`` map every check to ``{value, threshold, breached, evaluated}`` and whose
``status`` is ``ok``, ``alert``, ``retrain`` or ``needs_review``. A batch that needs a human
review is also appended to ``out_dir/needs_review.jsonl``. A breach is sent to the webhook once, from
here (:func:`inferloop.monitoring.sinks.notify_breach`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from inferloop.core import schema as s
from inferloop.core.storage import jsonable, write_json
from inferloop.evaluation.calibration import ScoreCalibration
from inferloop.evaluation.fairness import GroupFairness
from inferloop.evaluation.metrics import ClassificationMetrics
from inferloop.evaluation.reasons import reason_counts
from inferloop.monitoring.checks import (
    Check,
    drift_checks,
    estimate_checks,
    fairness_checks,
    performance_checks,
    validation_figure,
)
from inferloop.monitoring.dashboard import add_dashboard_snapshot, replace_dashboard_snapshot
from inferloop.monitoring.drift import (
    DriftResult,
    ReferenceProfile,
    split_column_kinds,
)
from inferloop.monitoring.estimate import estimate_window, realize_earlier
from inferloop.monitoring.evidently_adapter import (
    add_to_workspace,
    evidently_summary,
    run_evidently,
)
from inferloop.monitoring.measure import (
    MonitorInputs,
    batch_as_of,
    infer_feature_columns,
    label_known,
    measure_fairness,
    measure_performance,
    operating_threshold,
)
from inferloop.monitoring.params import (
    DEFAULT_PROJECT,
    REPORT_FILE,
    REVIEW_FILE,
    SUMMARY_FILE,
    MonitorParams,
)
from inferloop.monitoring.policy import Action, breached_checks, decide_action, fairness_retrains
from inferloop.monitoring.report import compose_report, render_section
from inferloop.monitoring.result import MonitorResult
from inferloop.monitoring.sinks import notify_breach

if TYPE_CHECKING:
    from evidently.core.report import Snapshot

__all__ = [
    "monitor_batch",
]


logger = logging.getLogger(__name__)


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
    inputs: MonitorInputs,
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
            "alerts": int(scored[inputs.decision_col].sum())
            if inputs.decision_col in scored.columns
            else None,
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
        # the features most often behind this window's alerts (analysts' first question)
        "reasons": reason_counts(scored),
        "report": REPORT_FILE,
    }


def _resolve_inputs(
    scored: pd.DataFrame,
    reference: pd.DataFrame,
    feature_cols: Sequence[str] | None,
    sensitive_cols: Sequence[str],
    outputs: tuple[str, str, str],
) -> MonitorInputs:
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
    return MonitorInputs(
        label_col,
        score_col,
        decision_col,
        numeric,
        categorical,
        list(sensitive_cols),
        score_col in reference.columns,
    )


def _report_columns(
    inputs: MonitorInputs, summary: Mapping[str, Any], limit: int
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
    inputs: MonitorInputs,
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
    previous: Mapping[str, Any] | None = None,
    calibration: ScoreCalibration | None = None,
    quarantined: int | None = None,
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
    previous : dict, optional
        The summary before this batch of ANY model version (default the last of
        ``history``): it carries the count of retrains that failed to clear a fairness
        breach, which a new champion does not reset.
    calibration : ScoreCalibration, optional
        The model's calibration: with it the rows without labels get estimated precision,
        recall and AP (``summary["estimate"]``), and the last window's estimate of this
        model gets its realized values once its labels are in (written to that window's
        ``summary.json`` and copied to ``summary["earlier_estimate"]``).
    quarantined : int, optional
        Rows of the batch the data contract quarantined (recorded in ``rows``).

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
    known = label_known(scored, label_col, stamp)
    labelled = scored.loc[known]
    threshold = operating_threshold(scored, model_validation_metrics, score_col, decision_col)
    performance = measure_performance(labelled, label_col, score_col, threshold, params)
    fairness = measure_fairness(labelled, inputs, threshold, params)
    estimate = estimate_window(
        scored, known, threshold, calibration, label_col=label_col, score_col=score_col,
        min_rows=params.min_labelled_rows,
        validation_ap=validation_figure(model_validation_metrics, "average_precision"),
    )  # fmt: skip
    checks = [
        *drift_checks(drift, params),
        *performance_checks(performance, model_validation_metrics, params),
        *fairness_checks(fairness, inputs.sensitive, params),
        *estimate_checks(estimate, params),
    ]
    model = {"name": model_name, "version": model_version}
    summary = _build_summary(
        batch, stamp, scored, reference, labelled, drift, performance, fairness, checks,
        model_validation_metrics, inputs, model,
    )  # fmt: skip
    summary["rows"]["quarantined"] = quarantined
    summary["estimate"] = estimate
    earlier = [h for h in history if h.get("batch") != batch]  # a re-run replaces its batch
    last = earlier[-1] if earlier and isinstance(earlier[-1], dict) else None
    summary["earlier_estimate"] = realize_earlier(
        last, scored, known, threshold, label_col=label_col, score_col=score_col
    )
    realized = last if summary["earlier_estimate"] is not None else None
    before = previous if previous is not None else (earlier[-1] if earlier else None)
    action = decide_action([*earlier, summary], params, before)
    summary.update(
        status=action.status,
        action=action.as_dict(),
        escalation={
            "fairness_retrains": fairness_retrains(before, summary),
            "max_fairness_retrains": params.max_fairness_retrains,
        },
    )
    snapshot = _evidently_part(scored, reference, inputs, params, summary)
    if realized is not None:
        _rerecord(realized, Path(out_dir), workspace_dir, project_name, params)
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
    attributes = params.fairness_attributes  # a new project's named fairness series
    if snapshot is not None and workspace_dir is not None:
        try:
            summary["evidently"]["snapshot_id"] = add_to_workspace(
                snapshot, workspace_dir, project_name, attributes=attributes
            )
        except Exception as exc:  # a broken workspace must not lose the verdict
            logger.warning("could not add %s to the Evidently workspace: %s", batch, exc)
            summary["evidently"]["workspace_error"] = f"{type(exc).__name__}: {exc}"
    if workspace_dir is not None:  # our figures over time, even when Evidently's report failed
        info = summary.setdefault("evidently", {})
        try:
            info["dashboard_snapshot_id"] = add_dashboard_snapshot(
                summary, workspace_dir, project_name, attributes=attributes
            )
        except Exception as exc:  # the dashboard must not lose the verdict either
            logger.warning("could not add %s's figures to the Evidently workspace: %s", batch, exc)
            info["dashboard_error"] = f"{type(exc).__name__}: {exc}"
    sent = notify_breach(summary, params)
    if sent is not None:
        summary["webhook_sent"] = sent
    summary = jsonable(summary)
    if action.kind == "needs_review":
        _record_review(out_dir / REVIEW_FILE, summary)
    evidently_html = snapshot.get_html_str(as_iframe=False) if snapshot is not None else None
    report_path = folder / REPORT_FILE
    report_path.write_text(
        compose_report(evidently_html, render_section(summary, drift, fairness)), encoding="utf-8"
    )
    summary_path = write_json(summary, folder / SUMMARY_FILE)
    return MonitorResult(
        batch, summary, drift, performance, fairness, action, report_path, summary_path, snapshot
    )


def _rerecord(
    earlier: dict[str, Any],
    out_dir: Path,
    workspace_dir: str | Path | None,
    project_name: str,
    params: MonitorParams,
) -> None:
    """Save an earlier batch whose realized values arrived: its summary.json and its figures."""
    if workspace_dir is not None:
        info = earlier.setdefault("evidently", {})
        try:
            info["dashboard_snapshot_id"] = replace_dashboard_snapshot(
                earlier, workspace_dir, project_name, attributes=params.fairness_attributes
            )
        except Exception as exc:  # the dashboard must not lose the verdict
            logger.warning("could not re-record %s's figures: %s", earlier.get("batch"), exc)
    path = out_dir / str(earlier["batch"]) / SUMMARY_FILE
    if path.exists():  # an in-memory history (tests) has no file to update
        write_json(jsonable(earlier), path)


def _record_review(path: Path, summary: Mapping[str, Any]) -> None:
    """Append the batch that needs a human review to the review log (one JSON line each)."""
    entry = {key: summary.get(key) for key in ("batch", "as_of", "model", "action", "escalation")}
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as log:
        log.write(json.dumps(entry, default=str) + "\n")


# --------------------------------------------------------------------------------------------
# alerts, MLflow
# --------------------------------------------------------------------------------------------
