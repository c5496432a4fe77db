"""The daily monitoring job: score the incoming files with the champion, then monitor them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd

from inferloop.core import schema as s
from inferloop.core.config import load_section
from inferloop.core.registry import RegistryParams
from inferloop.data.contract import load_contract, validate_transactions
from inferloop.loop.production import load_champion, score_week
from inferloop.monitoring.params import load_monitor_params
from inferloop.monitoring.result import MonitorResult
from inferloop.monitoring.stage import monitor_scored

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
    """The scheduled daily check: score new transaction files with the champion, then monitor.

    Reads raw transaction files (labels, where they have arrived, are used for performance and
    bias), applies the data contract, scores with the champion's live scorer (``registry.model_name``)
    (features included, so every feature's drift is measured), then runs the core of
    ``inferloop monitor`` (:func:`~inferloop.monitoring.stage.monitor_scored`): the verdict,
    the MLflow log, and at most one alert to ``webhook_url`` (default ``monitor.webhook_url``).
    """
    from inferloop.core.tracking import configure_mlflow

    configure_mlflow(root)
    if not incoming:
        raise FileNotFoundError("no incoming transaction files to monitor")
    params = load_monitor_params(root / params_path)
    if webhook_url is not None:
        params = replace(params, webhook_url=webhook_url)
    contract = load_contract(root / params_path)
    name = load_section(RegistryParams, "registry", root / params_path).model_name
    champion = load_champion(root / "data/processed/split/validation.parquet", params, name=name)
    raw = pd.concat([pd.read_parquet(p) for p in incoming], ignore_index=True)
    valid = validate_transactions(raw, contract, require_target=False).valid
    scored = score_week(
        champion, valid.sort_values(s.TIMESTAMP, kind="stable").reset_index(drop=True)
    )
    return monitor_scored(
        scored,
        champion.reference,
        params=params,
        model_name=name,
        model_version=champion.version,
        out_dir=root / out_dir,
        workspace_dir=root / "reports/evidently",
        batch_name=batch_name,
        feature_cols=champion.features,
        profile=champion.profile,
    )
