"""Monitoring entry point: score files are read, judged against the model's reference, logged.

:func:`monitor_files` is what ``inferloop monitor`` and the daily job call.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inferloop.monitoring.monitor import monitor_batch
from inferloop.monitoring.params import MonitorParams
from inferloop.monitoring.policy import load_history
from inferloop.monitoring.result import MonitorResult
from inferloop.monitoring.sinks import log_to_mlflow, model_of, registry_figures

if TYPE_CHECKING:
    pass

__all__ = [
    "monitor_files",
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
    from inferloop.data.ingest import read_table

    scored, reference = read_table(scored_path), read_table(reference_path)
    found_name, found_version = model_of(scored)
    name, version = model_name or found_name, model_version or found_version
    result = monitor_batch(
        scored,
        reference,
        params=params,
        model_validation_metrics=registry_figures(name, version),
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
