"""Monitoring entry points: judge a scored batch against the model's reference, keep, log.

:func:`monitor_files` is ``inferloop monitor`` on files; :func:`monitor_scored` is its core,
which the daily job (:mod:`inferloop.loop.daily`) calls after scoring.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from inferloop.evaluation.calibration import ScoreCalibration
from inferloop.monitoring.drift import ReferenceProfile
from inferloop.monitoring.monitor import monitor_batch
from inferloop.monitoring.params import DEFAULT_PROJECT, MonitorParams
from inferloop.monitoring.policy import is_of_version, load_history
from inferloop.monitoring.result import MonitorResult
from inferloop.monitoring.sinks import (
    log_to_mlflow,
    model_of,
    registry_calibration,
    registry_figures,
)

__all__ = [
    "monitor_files",
    "monitor_scored",
]


logger = logging.getLogger(__name__)


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
    """The ``inferloop monitor`` command: read a scored batch and its reference, then monitor.

    The model name and version default to the batch's ``model_name`` / ``model_version``
    columns. See :func:`monitor_scored` for the rest.

    Parameters
    ----------
    scored_path, reference_path : str or Path
        CSV or Parquet files (or Parquet folders) of the scored batch and the reference.
    params, out_dir, workspace_dir, batch_name, as_of, log_mlflow
        See :func:`monitor_scored`.
    model_name, model_version : str, optional
        Override the values read from the batch.

    Returns
    -------
    MonitorResult
    """
    from inferloop.data.ingest import read_table

    scored, reference = read_table(scored_path), read_table(reference_path)
    found_name, found_version = model_of(scored)
    return monitor_scored(
        scored,
        reference,
        params=params,
        model_name=model_name or found_name,
        model_version=model_version or found_version,
        out_dir=out_dir,
        workspace_dir=workspace_dir,
        batch_name=batch_name,
        as_of=as_of,
        log_mlflow=log_mlflow,
    )


def monitor_scored(
    scored: pd.DataFrame,
    reference: pd.DataFrame,
    *,
    params: MonitorParams,
    model_name: str | None,
    model_version: str | None,
    out_dir: str | Path = "reports/monitoring",
    workspace_dir: str | Path | None = "reports/evidently",
    batch_name: str | None = None,
    as_of: Any = None,
    log_mlflow: bool = True,
    feature_cols: Sequence[str] | None = None,
    profile: ReferenceProfile | None = None,
    validation: Mapping[str, float] | None = None,
    history: Sequence[Mapping[str, Any]] | None = None,
    project_name: str = DEFAULT_PROJECT,
    previous: Mapping[str, Any] | None = None,
    calibration: ScoreCalibration | None = None,
    quarantined: int | None = None,
) -> MonitorResult:
    """Monitor one scored batch of a model version, keep its history, log it to MLflow.

    The core of ``inferloop monitor`` and of the daily job. With a version, its validation
    figures come from the registry's tags, the policy sees that version's earlier summaries
    in ``out_dir``, and the result is logged to MLflow (experiment ``monitoring``). Registry
    or MLflow failures are logged and skipped: the verdict is on disk already. Alerts go out
    from :func:`~inferloop.monitoring.monitor.monitor_batch`, once. The caller configures
    MLflow first (:func:`inferloop.core.tracking.configure_mlflow`).

    Parameters
    ----------
    scored, reference : DataFrame
        The scored batch and the model's reference window (scored too).
    params : MonitorParams
    model_name, model_version : str or None
    out_dir, workspace_dir : str or Path
        Monitoring outputs and the Evidently workspace (None: no workspace).
    batch_name, as_of, feature_cols, profile : optional
        See :func:`~inferloop.monitoring.monitor.monitor_batch`.
    log_mlflow : bool, default True
        Log the result to MLflow when the model version is known.
    validation, history : optional
        The version's validation figures and its earlier summaries, when the caller holds
        them already (the production simulation); read from the registry and ``out_dir``
        otherwise.
    project_name : str
        Evidently project of the workspace.
    previous : dict, optional
        The latest earlier summary of any version (it carries the fairness escalation
        count); default the newest summary in ``out_dir`` when the history is read from there.
    calibration : ScoreCalibration, optional
        The version's calibration, when the caller holds the model; read from the
        registry's ``calibration`` tag otherwise (none: no estimate before labels).
    quarantined : int, optional
        Rows of the batch the contract quarantined (recorded in the summary).
    """
    if validation is None:
        validation = registry_figures(model_name, model_version)
    if calibration is None:
        calibration = registry_calibration(model_name, model_version)
    if history is None:
        everything = load_history(out_dir)  # read once: this version's history, and the last of any
        history = (
            [h for h in everything if is_of_version(h, model_version)] if model_version else ()
        )
        if previous is None:
            earlier = [h for h in everything if h.get("batch") != batch_name]
            previous = earlier[-1] if earlier else None
    result = monitor_batch(
        scored,
        reference,
        params=params,
        model_validation_metrics=validation,
        feature_cols=feature_cols,
        out_dir=out_dir,
        batch_name=batch_name,
        as_of=as_of,
        history=history,
        profile=profile,
        model_name=model_name,
        model_version=model_version,
        workspace_dir=workspace_dir,
        project_name=project_name,
        previous=previous,
        calibration=calibration,
        quarantined=quarantined,
    )
    if log_mlflow and model_name and model_version:
        try:
            result.mlflow_run_id = log_to_mlflow(result, model_name, model_version)
        except Exception as exc:  # the verdict is on disk already; MLflow is a copy
            logger.warning("could not log %s to MLflow: %s", result.batch, exc)
    return result
