"""The scoring paths' feature state: which store, seeding it, and the label feed.

* :func:`open_configured_state` picks the store: an explicit location (``--state``), else
  ``$INFERLOOP_FEATURE_STATE``, else the ``state.location`` param; ``none`` means stateless.
* :func:`seed_state` writes a model's training history into an empty store, so the first
  request after ``promote`` / ``make serve`` already sees the recent past.
* :func:`deliver_labels` is the chargeback / case-management feed (``inferloop label``): it
  checks a file of ``transaction_id, label, label_time`` rows, writes the good ones to the store
  (terminal risk then uses each label from the second it arrived) and appends them to the
  labels table ``data/labels/`` that retraining reads; rejected rows go to quarantine with
  their reason, and rows in = rows applied + rows rejected.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from inferloop.core import schema as s
from inferloop.core.config import read_params
from inferloop.core.storage import write_parquet
from inferloop.data.contract import (
    INVALID_TARGET,
    UNPARSEABLE_LABEL_AVAILABLE_AT,
    canonical_ids,
    null_key_reason,
)
from inferloop.data.events import text_keys
from inferloop.state.base import FeatureState, Labels, ScoredEvents
from inferloop.state.config import StateParams, open_state, resolve_location

__all__ = [
    "LABEL_ALIASES",
    "LabelFeedResult",
    "attach_labels",
    "deliver_labels",
    "load_state_params",
    "open_configured_state",
    "read_label_file",
    "read_label_table",
    "seed_state",
    "state_location",
]

#: Accepted names of the label feed's columns -> the names the lifecycle uses.
LABEL_ALIASES = {
    "label": s.TARGET,
    s.TARGET: s.TARGET,
    "label_time": s.LABEL_AVAILABLE_AT,
    s.LABEL_AVAILABLE_AT: s.LABEL_AVAILABLE_AT,
    s.TRANSACTION_ID: s.TRANSACTION_ID,
}


def load_state_params(params_path: str | Path | None) -> StateParams:
    """The ``state`` section of params.yaml (defaults if the file or section is absent)."""
    from inferloop.core.config import from_dict

    if params_path is None or not Path(params_path).is_file():
        return StateParams()
    return from_dict(StateParams, read_params(params_path).get("state") or {}, where="state")


def state_location(explicit: str | None, params: StateParams, root: Path | None = None) -> str:
    """``explicit`` (``--state``) if given, else ``$INFERLOOP_FEATURE_STATE``, else params.

    The same order as :func:`inferloop.state.config.resolve_location`, with the command line
    first; relative file paths are taken from ``root``.
    """
    if explicit:  # an explicit choice wins over the environment
        return resolve_location(explicit, root, use_env=False)
    return resolve_location(params.location, root)


def open_configured_state(
    explicit: str | None, params: StateParams, root: Path | None = None
) -> FeatureState | None:
    """The store :func:`state_location` names, opened; None when stateless."""
    return open_state(state_location(explicit, params, root), redis_prefix=params.redis_prefix)


def seed_state(state: FeatureState, model: Any, *, only_if_empty: bool = True) -> int:
    """Write the training history frozen in ``model`` into ``state``; returns events written.

    Its events get ids ``seed:<n>`` and their labels the time they became known (event time
    plus the label delay), exactly as the featurizer used them in training. With
    ``only_if_empty`` a store that already holds events is left alone.
    """
    if only_if_empty and not state.is_empty():
        return 0
    featurizer = model.featurizer
    keys, history = featurizer.history_events()
    if not keys:  # no entity kinds: no window reads the history, there is nothing to seed
        return 0
    n = len(history.time)
    events = ScoredEvents(
        ids=np.asarray([f"seed:{i}" for i in range(n)], dtype=object),
        time=history.time,
        amount=history.amount,
        keys=keys,
        score=np.full(n, np.nan),
        decision=np.zeros(n, dtype=np.int8),
        model="training-history",
        label=history.label,
        label_time=history.time + featurizer.label_delay_s_,
    )
    return state.write_events(events)


# --------------------------------------------------------------------------- the label feed


@dataclass(frozen=True)
class LabelFeedResult:
    """What one delivery of labels did; ``rows_in == rows_applied + rows_rejected``."""

    rows_in: int
    rows_applied: int
    rows_rejected: int
    matched: int  # applied labels whose transaction the store holds
    by_reason: dict[str, int]
    table_path: Path | None
    quarantine_path: Path | None

    def describe(self) -> str:
        """One line for the CLI."""
        reasons = ", ".join(f"{k}: {v}" for k, v in sorted(self.by_reason.items())) or "none"
        return (
            f"labels: {self.rows_in:,} in, {self.rows_applied:,} applied "
            f"({self.matched:,} matched a scored transaction), {self.rows_rejected:,} rejected "
            f"({reasons})"
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready counts."""
        return {
            "rows_in": self.rows_in,
            "rows_applied": self.rows_applied,
            "rows_rejected": self.rows_rejected,
            "matched": self.matched,
            "by_reason": self.by_reason,
            "table": str(self.table_path) if self.table_path else None,
            "quarantine": str(self.quarantine_path) if self.quarantine_path else None,
        }


def read_label_file(path: str | Path) -> pd.DataFrame:
    """A CSV or Parquet label file with its columns renamed to the lifecycle's names."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"label file not found: {p}")
    frame = pd.read_parquet(p) if p.suffix.lower() in (".parquet", ".pq") else pd.read_csv(p)
    return frame.rename(columns={c: LABEL_ALIASES.get(str(c), c) for c in frame.columns})


def _check_labels(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """Parsed labels and, per row, the first reason it is rejected ('' when valid)."""
    missing = [c for c in (s.TRANSACTION_ID, s.TARGET, s.LABEL_AVAILABLE_AT) if c not in frame]
    if missing:
        raise ValueError(
            f"label file is missing column(s) {missing}: it needs transaction_id, "
            "label (or is_fraud) and label_time (or label_available_at)"
        )
    ids = frame[s.TRANSACTION_ID]
    label = pd.to_numeric(frame[s.TARGET], errors="coerce")
    at = pd.to_datetime(frame[s.LABEL_AVAILABLE_AT], errors="coerce", utc=True, format="mixed")
    # the data contract's codes, so a rejected label reads like a rejected transaction; the
    # first failing check in the contract's order wins (assigned last to first)
    reason = pd.Series("", index=frame.index, dtype=object)
    reason[at.isna()] = UNPARSEABLE_LABEL_AVAILABLE_AT
    reason[~label.isin([0, 1])] = INVALID_TARGET
    reason[ids.isna() | (ids.astype(str).str.strip() == "")] = null_key_reason(s.TRANSACTION_ID)
    parsed = pd.DataFrame(
        {
            s.TRANSACTION_ID: ids,
            s.TARGET: label,
            s.LABEL_AVAILABLE_AT: at.dt.tz_convert(None),
        },
        index=frame.index,
    )
    return parsed, reason


def deliver_labels(
    state: FeatureState | None,
    frame: pd.DataFrame,
    *,
    table_dir: str | Path | None,
    quarantine_dir: str | Path | None = None,
    name: str | None = None,
) -> LabelFeedResult:
    """Apply one delivery of labels: store, labels table, quarantine of bad rows.

    Parameters
    ----------
    state
        The feature state to update; None only appends to the table.
    frame
        Rows with ``transaction_id``, ``is_fraud`` and ``label_available_at`` (see
        :func:`read_label_file` for the accepted column names).
    table_dir
        The labels table folder (one Parquet part per delivery, named by its content hash so a
        redelivery of the same file adds nothing); None skips it.
    quarantine_dir
        Where rejected rows go with ``reject_reason``; defaults to ``table_dir/_quarantine``.
    name
        Part name stem; the content hash by default.
    """
    parsed, reason = _check_labels(frame)
    ok = (reason == "").to_numpy()
    good = parsed[ok]
    digest = _digest(good)
    stem = name or f"labels-{digest}"
    matched = 0
    if state is not None and len(good):
        ids = text_keys(read_transactions_ids(good[s.TRANSACTION_ID]))
        seconds = good[s.LABEL_AVAILABLE_AT].to_numpy(dtype="datetime64[s]").astype(np.int64)
        _, matched = state.add_labels(
            Labels(ids=ids, label=good[s.TARGET].to_numpy(np.float64), label_time=seconds)
        )
    table_path = _append_table(good, table_dir, stem) if table_dir is not None else None
    quarantine_path = None
    if not ok.all():
        qdir = Path(quarantine_dir) if quarantine_dir else Path(table_dir or ".") / "_quarantine"
        quarantine_path = qdir / f"{stem}.parquet"
        write_parquet(frame[~ok].assign(**{s.REJECT_REASON: reason[~ok]}), quarantine_path)
    by_reason = {str(k): int(v) for k, v in reason[~ok].value_counts().items()}
    return LabelFeedResult(
        len(frame), int(ok.sum()), int((~ok).sum()), matched, by_reason, table_path, quarantine_path
    )


def read_transactions_ids(ids: pd.Series) -> np.ndarray:
    """Transaction ids in the canonical form the scorers store them in (ints stay ints)."""
    return np.asarray(canonical_ids(ids.reset_index(drop=True)).to_numpy())


def _digest(frame: pd.DataFrame) -> str:
    hashed = pd.util.hash_pandas_object(frame.reset_index(drop=True), index=False)
    return hashlib.sha256(hashed.to_numpy().tobytes()).hexdigest()[:16]


def _append_table(good: pd.DataFrame, table_dir: str | Path, stem: str) -> Path | None:
    if good.empty:
        return None
    path = Path(table_dir) / f"{stem}.parquet"
    if not path.is_file():
        write_parquet(good.reset_index(drop=True), path)
    return path


def read_label_table(table_dir: str | Path) -> pd.DataFrame:
    """Every delivered label under ``table_dir``, the latest delivery per transaction winning."""
    root = Path(table_dir)
    parts = (
        sorted(p for p in root.rglob("*.parquet") if "_quarantine" not in p.parts)
        if root.is_dir()
        else []
    )
    if not parts:
        return pd.DataFrame(
            {
                s.TRANSACTION_ID: pd.Series([], dtype="int64"),
                s.TARGET: pd.Series([], dtype="float64"),
                s.LABEL_AVAILABLE_AT: pd.Series([], dtype="datetime64[ns]"),
            }
        )
    table = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    table = table.sort_values(s.LABEL_AVAILABLE_AT, kind="stable")
    return table.drop_duplicates(s.TRANSACTION_ID, keep="last").reset_index(drop=True)


def attach_labels(transactions: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """``transactions`` with ``is_fraud`` and ``label_available_at`` from the labels table.

    Rows without a delivered label keep NaN / NaT: retraining treats them as not yet labelled.
    """
    keep = [c for c in transactions.columns if c not in (s.TARGET, s.LABEL_AVAILABLE_AT)]
    merged = transactions[keep].merge(
        labels[[s.TRANSACTION_ID, s.TARGET, s.LABEL_AVAILABLE_AT]], on=s.TRANSACTION_ID, how="left"
    )
    return merged
