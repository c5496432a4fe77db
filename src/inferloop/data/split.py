"""Train / validation / test split: by time with a label-delay gap between windows, or, for a
table without time, a seeded random split stratified by the label."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from inferloop.core import schema as s

__all__ = [
    "SplitParams",
    "SplitResult",
    "SplitWindows",
    "Window",
    "plan_windows",
    "split_at_random",
    "split_by_time",
    "split_rows",
]


@dataclass(frozen=True)
class SplitParams:
    """The ``split`` section of params.yaml (all in days; fractions of a day for short logs)."""

    train_days: int | float = 28
    validation_days: int | float = 7
    test_days: int | float = 7
    gap_days: int | float = 7
    # a table without time (dataset.timed: false): a stratified random split in these shares
    train_share: float = 0.6
    validation_share: float = 0.2
    test_share: float = 0.2
    seed: int = 0


@dataclass(frozen=True)
class Window:
    """A half-open time window ``[start, end)``."""

    start: pd.Timestamp
    end: pd.Timestamp

    def mask(self, timestamps: pd.Series) -> pd.Series:
        """Rows whose timestamp falls inside the window."""
        return (timestamps >= self.start) & (timestamps < self.end)


@dataclass(frozen=True)
class SplitWindows:
    """The three windows; anything before ``train.start`` is feature history only."""

    train: Window
    validation: Window
    test: Window


def plan_windows(end: pd.Timestamp, params: SplitParams) -> SplitWindows:
    """Lay the windows back from ``end`` (exclusive): test, gap, validation, gap, train.

    The gap equals the label delay: a model trained on day ``d`` cannot have seen the labels
    of the following ``gap_days``, so the windows it is evaluated on start after them.
    """
    day = pd.Timedelta(days=1)
    test = Window(end - params.test_days * day, end)
    validation_end = test.start - params.gap_days * day
    validation = Window(validation_end - params.validation_days * day, validation_end)
    train_end = validation.start - params.gap_days * day
    train = Window(train_end - params.train_days * day, train_end)
    return SplitWindows(train, validation, test)


@dataclass
class SplitResult:
    """The three frames, their windows and a summary for DVC metrics."""

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    windows: SplitWindows
    summary: dict[str, object]


def split_by_time(df: pd.DataFrame, params: SplitParams) -> SplitResult:
    """Split ``df`` into train / validation / test windows anchored at the data's last day.

    Raises
    ------
    ValueError
        If the data does not cover the training window's start.
    """
    if df.empty:
        raise ValueError("cannot split an empty frame")
    ts = pd.to_datetime(df[s.TIMESTAMP])
    end = ts.max().normalize() + pd.Timedelta(days=1)
    windows = plan_windows(end, params)
    if ts.min() > windows.train.start:
        need = params.train_days + params.validation_days + params.test_days + 2 * params.gap_days
        have = (end - ts.min().normalize()) / pd.Timedelta(days=1)
        raise ValueError(
            f"data covers {have:g} days but the split needs {need:g}: lower split.train_days "
            "(fractions of a day work) or simulate more days"
        )
    parts = {
        name: df[getattr(windows, name).mask(ts)].reset_index(drop=True)
        for name in ("train", "validation", "test")
    }
    summary = _summarise(parts, windows, history_rows=int((ts < windows.train.start).sum()))
    return SplitResult(parts["train"], parts["validation"], parts["test"], windows, summary)


def _summarise(
    parts: dict[str, pd.DataFrame], windows: SplitWindows, history_rows: int
) -> dict[str, object]:
    summary: dict[str, object] = {"history_rows": history_rows}
    for name, frame in parts.items():
        window: Window = getattr(windows, name)
        fraud = frame[s.TARGET] if s.TARGET in frame else pd.Series(dtype=float)
        summary[name] = {
            "start": _day_or_time(window.start),
            "end": _day_or_time(window.end),
            "rows": len(frame),
            "frauds": int(fraud.sum()),
            "fraud_rate": float(fraud.mean()) if len(fraud) else 0.0,
        }
    return summary


def _day_or_time(ts: pd.Timestamp) -> str:
    """A window bound as its date, or its date and time when it is not at midnight."""
    return str(ts.date()) if ts == ts.normalize() else ts.isoformat()


def split_rows(df: pd.DataFrame, params: SplitParams, *, timed: bool = True) -> SplitResult:
    """The split a dataset needs: by time (:func:`split_by_time`), or for a table without
    time, at random (:func:`split_at_random`)."""
    return split_by_time(df, params) if timed else split_at_random(df, params)


def split_at_random(df: pd.DataFrame, params: SplitParams) -> SplitResult:
    """A seeded random split, stratified by the label: each part has the table's fraud rate.

    For tables without time, where "the future" does not exist: ``train_share``,
    ``validation_share`` and ``test_share`` of each class, drawn with ``seed``. Each part
    keeps the table's row order.

    Raises
    ------
    ValueError
        On an empty frame, shares that are not positive or do not sum to 1, or a class too
        small to put a row in each part.
    """
    if df.empty:
        raise ValueError("cannot split an empty frame")
    shares = np.array([params.train_share, params.validation_share, params.test_share])
    if (shares <= 0).any() or not np.isclose(shares.sum(), 1.0):
        raise ValueError(
            f"split shares must be positive and sum to 1, got train {shares[0]:g}, "
            f"validation {shares[1]:g}, test {shares[2]:g}"
        )
    rng = np.random.default_rng(params.seed)
    part = np.empty(len(df), dtype=np.int8)
    labels = df[s.TARGET].to_numpy() if s.TARGET in df else np.zeros(len(df))
    for label in pd.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == label))
        cuts = np.floor(np.cumsum(shares)[:2] * len(rows) + 0.5).astype(int)
        if len(rows) >= 3 and (np.diff([0, *cuts, len(rows)]) == 0).any():
            raise ValueError(f"class {label!r} has {len(rows)} rows: too few to split in three")
        part[rows] = np.searchsorted(cuts, np.arange(len(rows)), side="right")
    parts = {
        name: df[part == i].reset_index(drop=True)
        for i, name in enumerate(("train", "validation", "test"))
    }
    ts = pd.to_datetime(df[s.TIMESTAMP])
    whole = Window(ts.min(), ts.max() + pd.Timedelta(seconds=1))
    windows = SplitWindows(whole, whole, whole)
    summary = _summarise(parts, windows, history_rows=0)
    for name in parts:  # no time windows: say how the rows were drawn instead
        summary[name].update(start="stratified random", end=f"seed {params.seed}")  # type: ignore[attr-defined]
    return SplitResult(parts["train"], parts["validation"], parts["test"], windows, summary)
