"""Time-based train / validation / test split with a label-delay gap between windows."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from inferloop.core import schema as s

__all__ = [
    "SplitParams",
    "SplitResult",
    "SplitWindows",
    "Window",
    "plan_windows",
    "split_by_time",
]


@dataclass(frozen=True)
class SplitParams:
    """The ``split`` section of params.yaml (all in days; fractions of a day for short logs)."""

    train_days: int | float = 28
    validation_days: int | float = 7
    test_days: int | float = 7
    gap_days: int | float = 7


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
