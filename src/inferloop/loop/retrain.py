"""Retraining: a new training window with the newly labelled data, run through DVC.

``inferloop retrain`` (and the production simulation) assemble the most recent labelled
transactions into ``data/retrain/raw.parquet`` and run ``pipelines/retrain/dvc.yaml``: the
same stage notebooks as the main pipeline (validate → featurize → split → train → evaluate →
register). The challenger becomes champion only if every gate passes, including the champion
comparison on the most recent labelled window (the retrain test window).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from inferloop.core import schema as s
from inferloop.core.config import from_dict, read_params
from inferloop.core.storage import read_json, write_parquet

__all__ = [
    "PARAMS",
    "PIPELINE",
    "RAW",
    "REGISTER",
    "RetrainOutcome",
    "RetrainParams",
    "labelled_window",
    "retrain_params",
    "run_retrain",
]


RAW = Path("data/retrain/raw.parquet")
PARAMS = Path("pipelines/retrain/params.yaml")
PIPELINE = Path("pipelines/retrain/dvc.yaml")
REGISTER = Path("reports/retrain/register.json")


@dataclass(frozen=True)
class RetrainParams:
    """The ``retrain`` section of params.yaml."""

    window_days: int = 84
    candidates: tuple[str, ...] = ("lightgbm",)
    mitigated_candidates: tuple[str, ...] = ("lightgbm_fair",)
    validation_days: int = 2
    test_days: int = 2
    trigger_report: str = ""
    reason: str = ""


def labelled_window(
    frames: list[pd.DataFrame], as_of: pd.Timestamp, window_days: int, label_delay_days: int
) -> pd.DataFrame:
    """Transactions whose labels are known at ``as_of``, over the last ``window_days`` days.

    A label is known once ``label_available_at <= as_of`` (or, without that column, once the
    label delay has passed). Duplicated transaction ids keep their first occurrence.
    """
    df = pd.concat(frames, ignore_index=True).drop_duplicates(s.TRANSACTION_ID, keep="first")
    ts = pd.to_datetime(df[s.TIMESTAMP])
    known = (
        pd.to_datetime(df[s.LABEL_AVAILABLE_AT]) <= as_of
        if s.LABEL_AVAILABLE_AT in df
        else ts <= as_of - pd.Timedelta(days=label_delay_days)
    )
    end = (as_of - pd.Timedelta(days=label_delay_days)).normalize()
    window = known & (ts >= end - pd.Timedelta(days=window_days)) & (ts < end)
    return df[window].sort_values(s.TIMESTAMP, kind="stable").reset_index(drop=True)


def retrain_params(
    base: dict[str, Any],
    retrain: RetrainParams,
    *,
    trigger_report: str,
    reason: str,
    model_name: str | None = None,
    candidates: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """The params of a retraining run: the main params with the retrain overrides.

    The retrain window has no gaps between train, validation and test: every row already has
    its label (the window ends a label delay before now), so the gaps that protect the main
    pipeline's evaluation are not needed, and the newest labelled days are used for testing.
    ``model_name`` registers the challenger under another name than ``registry.model_name``
    (the production simulation's own); ``candidates`` replaces ``retrain.candidates`` (the
    mitigated ones, when the policy retrains against a fairness breach).
    """
    params = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    params["data"] = {**params.get("data", {}), "source": "file", "path": str(RAW)}
    chosen = retrain.candidates if candidates is None else candidates
    params["train"] = {**params.get("train", {}), "candidates": list(chosen)}
    longest = params.get("split", {}).get("train_days", 28)
    params["split"] = {
        **params.get("split", {}),  # a table without time keeps its shares and seed
        "train_days": longest,
        "validation_days": retrain.validation_days,
        "test_days": retrain.test_days,
        "gap_days": 0,
    }
    params["retrain"] = {
        **params.get("retrain", {}),
        "trigger_report": trigger_report,
        "reason": reason,
    }
    if model_name is not None:
        params["registry"] = {**params.get("registry", {}), "model_name": model_name}
    return params


@dataclass
class RetrainOutcome:
    """What a retraining run did (from ``reports/retrain/register.json``)."""

    version: str
    promoted: bool
    reason: str
    champion: str | None
    rows: int

    def describe(self) -> str:
        """One line for the CLI and the production timeline."""
        verdict = "promoted to champion" if self.promoted else "not promoted"
        return f"retrained on {self.rows:,} rows -> fraud-detector v{self.version}, {verdict}: {self.reason}"


def run_retrain(
    root: Path,
    window: pd.DataFrame,
    *,
    params_path: str | Path = "params.yaml",
    trigger_report: str = "",
    reason: str = "",
    quiet: bool = True,
    model_name: str | None = None,
    candidates: tuple[str, ...] | None = None,
) -> RetrainOutcome:
    """Write the training window and retrain params, then ``dvc repro`` the retrain pipeline.

    ``model_name`` overrides the registered model the challenger joins, ``candidates`` the
    models trained (see :func:`retrain_params`).
    """
    base = read_params(root / params_path)
    retrain = from_dict(RetrainParams, base.get("retrain", {}), where="retrain")
    if window.empty:
        raise ValueError("the retraining window is empty: no labelled transactions yet")
    write_parquet(window, root / RAW)
    params = retrain_params(
        base,
        retrain,
        trigger_report=trigger_report,
        reason=reason,
        model_name=model_name,
        candidates=candidates,
    )
    (root / PARAMS).write_text(
        "# generated by `inferloop retrain`; edit params.yaml instead\n"
        + yaml.safe_dump(params, sort_keys=False)
    )
    _dvc_repro(root, quiet=quiet)
    result = read_json(root / REGISTER)
    return RetrainOutcome(
        str(result["version"]),
        bool(result["promoted"]),
        str(result["reason"]),
        result.get("champion"),
        len(window),
    )


def _dvc_repro(root: Path, *, quiet: bool) -> None:
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "INFERLOOP_ROOT": str(root),
    }
    cmd = [str(Path(bin_dir) / "dvc"), "repro", str(PIPELINE)]
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=quiet, text=True)
    if proc.returncode != 0:
        tail = (proc.stdout or "")[-2000:] + (proc.stderr or "")[-2000:] if quiet else ""
        raise RuntimeError(f"retraining pipeline failed (see reports/retrain/notebooks/): {tail}")
