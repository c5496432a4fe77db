"""Stage entry points: read params and inputs, call one compute function, write outputs.

Each ``run_*`` function is what a stage notebook (run by papermill from ``dvc.yaml``), the CLI
and the integration tests call. Paths always come from the caller (``dvc.yaml`` owns them).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from inferloop.core import schema as s
from inferloop.core.config import ParamsError, load_section
from inferloop.core.dataset import load_dataset_spec
from inferloop.core.storage import read_pickle, write_json, write_parquet, write_pickle
from inferloop.data.contract import (
    ContractResult,
    load_contract,
    render_data_summary,
    validate_transactions,
)
from inferloop.data.features import FeatureParams, TransactionFeaturizer
from inferloop.data.ingest import DataSourceParams, load_source
from inferloop.data.processed import build_processed
from inferloop.data.simulate import SimulateParams, simulate_transactions
from inferloop.data.split import SplitParams, SplitResult, split_rows

__all__ = [
    "ProcessedData",
    "describe_frame",
    "load_processed",
    "run_featurize",
    "run_simulate",
    "run_split",
    "run_validate",
]


def run_simulate(
    params_path: str | Path, raw_path: str | Path, *, progress: bool = True
) -> pd.DataFrame:
    """Produce ``data/raw``: simulate transactions, or read the user's file (``data.source``).

    Returns the raw frame written to ``raw_path``.
    """
    source = load_section(DataSourceParams, "data", params_path)
    if source.source == "simulator":
        df = simulate_transactions(
            load_section(SimulateParams, "simulate", params_path), progress=progress
        )
    elif source.source == "file":
        df = load_source(
            source,
            base_dir=Path(params_path).resolve().parent,
            spec=load_dataset_spec(params_path),
        )
    else:
        raise ParamsError(f"data.source must be 'simulator' or 'file', got {source.source!r}")
    write_parquet(df, raw_path)
    return df


def run_validate(
    params_path: str | Path,
    raw_path: str | Path,
    validated_path: str | Path,
    quarantine_path: str | Path,
    summary_path: str | Path,
    report_path: str | Path | None = None,
) -> ContractResult:
    """Apply the data contract: valid rows, quarantined rows with reasons, a summary, a report."""
    params = load_contract(params_path)
    source = load_section(DataSourceParams, "data", params_path)
    raw = pd.read_parquet(raw_path)
    result = validate_transactions(raw, params, timestamp_format=source.timestamp_format)
    write_parquet(result.valid, validated_path)
    write_parquet(result.quarantine, quarantine_path)
    write_json(result.summary, summary_path)
    if report_path:  # "" skips the Evidently summary (the retrain pipeline does)
        render_data_summary(result.valid, report_path, spec=params.dataset)
    return result


def run_featurize(
    params_path: str | Path,
    validated_path: str | Path,
    processed_path: str | Path,
    featurizer_path: str | Path,
) -> tuple[pd.DataFrame, TransactionFeaturizer]:
    """Point-in-time features for every validated row, and the fitted featurizer (pickled)."""
    params = load_section(FeatureParams, "featurize", params_path)
    spec = load_dataset_spec(params_path)
    processed, featurizer = build_processed(pd.read_parquet(validated_path), params, spec)
    write_parquet(processed, processed_path)
    write_pickle(featurizer, featurizer_path)
    return processed, featurizer


def run_split(
    params_path: str | Path,
    processed_path: str | Path,
    out_dir: str | Path,
    summary_path: str | Path,
) -> SplitResult:
    """Write ``train``, ``validation`` and ``test`` Parquet files and the split summary."""
    params = load_section(SplitParams, "split", params_path)
    timed = load_dataset_spec(params_path).timed
    result = split_rows(pd.read_parquet(processed_path), params, timed=timed)
    out = Path(out_dir)
    for name in ("train", "validation", "test"):
        write_parquet(getattr(result, name), out / f"{name}.parquet")
    write_json(result.summary, summary_path)
    return result


@dataclass
class ProcessedData:
    """The split windows and featurizer as later stages read them back."""

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    featurizer: TransactionFeaturizer

    @property
    def features(self) -> list[str]:
        """Feature column names, in model input order."""
        return list(self.featurizer.feature_names_out_)


def load_processed(split_dir: str | Path, featurizer_path: str | Path) -> ProcessedData:
    """Read the split stage's outputs and the fitted featurizer."""
    d = Path(split_dir)
    frames = {n: pd.read_parquet(d / f"{n}.parquet") for n in ("train", "validation", "test")}
    return ProcessedData(**frames, featurizer=read_pickle(featurizer_path))


def describe_frame(df: pd.DataFrame) -> dict[str, Any]:
    """Rows, time range and fraud rate of a transactions frame (for notebooks)."""
    out: dict[str, Any] = {"rows": len(df)}
    if s.TIMESTAMP in df and len(df):
        out["first"] = str(pd.to_datetime(df[s.TIMESTAMP]).min())
        out["last"] = str(pd.to_datetime(df[s.TIMESTAMP]).max())
    if s.TARGET in df and len(df):
        out["fraud_rate"] = float(pd.to_numeric(df[s.TARGET], errors="coerce").mean())
    return out
