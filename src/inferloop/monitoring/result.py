"""The outcome of monitoring one batch: its verdict, measurements and where they were written."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inferloop.evaluation.fairness import GroupFairness
from inferloop.evaluation.metrics import ClassificationMetrics
from inferloop.monitoring.drift import DriftResult
from inferloop.monitoring.params import Status
from inferloop.monitoring.policy import Action, breached_checks

if TYPE_CHECKING:
    from evidently.core.report import Snapshot

__all__ = [
    "MonitorResult",
]


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
