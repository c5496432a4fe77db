"""The daily monitoring job: score the incoming files with the champion, then monitor them."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from inferloop.core import schema as s
from inferloop.core.config import load_section
from inferloop.core.registry import FULL_MODEL
from inferloop.data.contract import ContractParams, validate_transactions
from inferloop.loop.production import load_champion, score_week
from inferloop.monitoring.monitor import MonitorResult, monitor_batch
from inferloop.monitoring.params import MonitorParams
from inferloop.monitoring.sinks import log_to_mlflow, send_webhook

__all__ = [
    "monitor_incoming",
]


def monitor_incoming(
    root: Path,
    incoming: list[Path],
    *,
    params_path: str = "params.yaml",
    out_dir: str = "reports/monitoring",
    batch_name: str | None = None,
    webhook_url: str | None = None,
) -> MonitorResult:
    """The scheduled daily check: score new transaction files with the champion and monitor them.

    Reads raw transaction files (labels, where they have arrived, are used for performance and
    bias), applies the data contract, scores with ``fraud-detector@champion`` (features
    included, so every feature's drift is measured), monitors against the champion's reference
    window, logs to MLflow and posts alerts to the webhook.
    """
    from inferloop.core.tracking import configure_mlflow
    from inferloop.monitoring.policy import load_history

    configure_mlflow(root)
    if not incoming:
        raise FileNotFoundError("no incoming transaction files to monitor")
    params = load_section(MonitorParams, "monitor", root / params_path)
    contract = load_section(ContractParams, "validate", root / params_path)
    champion = load_champion(root / "data/processed/split/validation.parquet", params)
    raw = pd.concat([pd.read_parquet(p) for p in incoming], ignore_index=True)
    valid = validate_transactions(raw, contract, require_target=False).valid
    scored = score_week(
        champion, valid.sort_values(s.TIMESTAMP, kind="stable").reset_index(drop=True)
    )
    out = root / out_dir
    result = monitor_batch(
        scored,
        champion.reference,
        params=params,
        model_validation_metrics=champion.validation,
        feature_cols=champion.features,
        out_dir=out,
        batch_name=batch_name,
        history=load_history(out, champion.version),
        profile=champion.profile,
        model_name=FULL_MODEL,
        model_version=champion.version,
        workspace_dir=root / "reports/evidently",
    )
    log_to_mlflow(result, FULL_MODEL, champion.version)
    url = webhook_url if webhook_url is not None else params.webhook_url
    if url and result.action.kind != "none":
        send_webhook(
            url,
            {
                "batch": result.batch,
                "status": result.status,
                "action": result.action.as_dict(),
                "report": str(result.report_path),
            },
        )
    return result
