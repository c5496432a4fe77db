"""Where verdicts go besides ``summary.json``: the alert webhook, MLflow, and the registry's figures.

The webhook body is built in one place, :func:`alert_payload`, and sent in one place,
:func:`notify_breach`: one breach, one POST.
"""

from __future__ import annotations

import json
import logging
import math
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd

from inferloop.core import schema as s
from inferloop.core.storage import jsonable
from inferloop.evaluation.calibration import CALIBRATION_TAG, ScoreCalibration
from inferloop.monitoring.params import MONITORING_EXPERIMENT, MonitorParams
from inferloop.monitoring.policy import breached_checks
from inferloop.monitoring.result import MonitorResult

if TYPE_CHECKING:
    pass

__all__ = [
    "alert_payload",
    "log_to_mlflow",
    "model_of",
    "notify_breach",
    "registry_calibration",
    "registry_figures",
    "send_webhook",
]


logger = logging.getLogger(__name__)


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


def notify_breach(summary: Mapping[str, Any], params: MonitorParams) -> bool | None:
    """POST :func:`alert_payload` to ``monitor.webhook_url`` when the verdict is not ``ok``.

    The only place an alert is sent: one monitored batch, at most one POST. Returns whether it
    was delivered, or None when there was nothing to send (no URL, or status ``ok``).
    """
    if not params.webhook_url or summary.get("status", "ok") == "ok":
        return None
    return send_webhook(params.webhook_url, alert_payload(summary), timeout=params.webhook_timeout)


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
    for key, part in (
        ("estimate", summary.get("estimate")),
        ("earlier", summary.get("earlier_estimate")),
    ):
        for name in ("precision", "recall", "average_precision", "expected_true_alerts"):
            metrics[f"{key}/estimated_{name}"] = (part or {}).get(name)
            metrics[f"{key}/realized_{name}"] = ((part or {}).get("realized") or {}).get(name)
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

    The caller points MLflow at the store first (:func:`inferloop.core.tracking.configure_mlflow`).

    Parameters
    ----------
    result : MonitorResult
    model_name : str
        Registered model the batch was scored with (tag ``model_name``).
    model_version : str or int
        Its version (tag ``model_version``).
    experiment : str, default "monitoring"
        Created with :func:`inferloop.core.tracking.ensure_experiment` if missing.

    Returns
    -------
    str
        The run id.
    """
    import mlflow

    from inferloop.core.tracking import ensure_experiment

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


def registry_calibration(
    model_name: str | None, model_version: str | None
) -> ScoreCalibration | None:
    """The calibration a registered version carries (its ``calibration`` tag), else None."""
    if not model_name or not model_version:
        return None
    try:
        from inferloop.core.registry import version_tags

        text = version_tags(model_name, model_version).get(CALIBRATION_TAG)
        return ScoreCalibration.from_json(text) if text else None
    except Exception as exc:  # no calibration means no estimate, never a failed monitor
        logger.warning("no calibration for %s v%s: %s", model_name, model_version, exc)
        return None


def registry_figures(model_name: str | None, model_version: str | None) -> dict[str, float]:
    """Validation figures of a registered version; {} (with a warning) when unavailable."""
    if not model_name or not model_version:
        return {}
    try:
        from inferloop.core.registry import validation_figures

        return validation_figures(model_name, model_version)
    except Exception as exc:  # an unreachable registry must not stop monitoring
        logger.warning("no validation figures for %s v%s: %s", model_name, model_version, exc)
        return {}
