"""The Evidently 0.7 adapter: a report on a seeded sample, its summary, and the UI workspace.

Evidently 0.7 has no fairness metrics, and a custom Evidently metric would be stored under a
type name that the stand-alone ``evidently ui`` process cannot load (it does not import
inferloop), so only Evidently's own metrics go into snapshots. Metrics are looked up by name,
never by position.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from inferloop.monitoring.dashboard import open_project
from inferloop.monitoring.params import DEFAULT_PROJECT, MonitorParams

if TYPE_CHECKING:
    from evidently.core.report import Snapshot

__all__ = [
    "add_to_workspace",
    "evidently_summary",
    "run_evidently",
]


logger = logging.getLogger(__name__)


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
    # Evidently's summary correlates every column pair; a constant sampled column divides
    # by a zero deviation. The NaN it yields is what the report shows; the warning is noise.
    with np.errstate(invalid="ignore", divide="ignore"):
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
    snapshot: Snapshot,
    workspace_dir: str | Path,
    project_name: str = DEFAULT_PROJECT,
    *,
    attributes: Sequence[str] | None = None,
) -> str:
    """Store ``snapshot`` in a local Evidently workspace, creating the project if needed.

    A new project gets the dashboard of :mod:`inferloop.monitoring.dashboard` (our figures
    over time, and this report's score drift). Browse it with ``inferloop ui --monitoring``
    (``evidently ui --workspace DIR``).

    Parameters
    ----------
    snapshot : evidently.core.report.Snapshot
    workspace_dir : str or Path
        The workspace folder (created if missing).
    project_name : str, default "inferloop monitoring"
    attributes : sequence of str, optional
        For a new project, the sensitive attributes with a named fairness series (see
        :func:`inferloop.monitoring.dashboard.open_project`).

    Returns
    -------
    str
        The stored snapshot's id.
    """
    workspace, project = open_project(workspace_dir, project_name, attributes=attributes)
    return str(workspace.add_run(project.id, snapshot).id)


# --------------------------------------------------------------------------------------------
# the HTML section
# --------------------------------------------------------------------------------------------
