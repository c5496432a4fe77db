"""The records that pass between scoring paths, the featurizer and a feature-state store.

* :class:`RawColumns`: the raw transaction fields the featurizer reads, as numpy arrays (a
  request's columns are read once and shared by the contract checks, the featurizer and the
  store).
* :class:`EntityQuery` and :class:`EntityEvents`: what a batch asks a feature-state store for,
  per entity kind, and what the store answers.

They live apart from :mod:`inferloop.data.features` so that a store depends on these plain
records, not on the featurizer's window arithmetic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from inferloop.core import schema as s
from inferloop.core.dataset import CARD_FRAUD, DatasetSpec

__all__ = [
    "EntityEvents",
    "EntityQuery",
    "RawColumns",
    "amounts",
    "concat_raw",
    "entity_keys_of",
    "first_of_each",
    "repeated_keys",
    "take_raw",
    "text_keys",
]


def _epoch_seconds(ts: pd.Series | pd.DatetimeIndex) -> np.ndarray:
    values = ts if _is_naive_datetime(ts) else pd.to_datetime(ts)
    return values.to_numpy(dtype="datetime64[s]").astype(np.int64)


def _is_naive_datetime(ts: pd.Series | pd.DatetimeIndex) -> bool:
    return isinstance(ts.dtype, np.dtype) and ts.dtype.kind == "M"  # tz-aware: a pandas dtype


def _wall_clock_seconds(ts: pd.Series, utc_seconds: np.ndarray) -> np.ndarray:
    """Epoch seconds of the local wall-clock time (hour, weekday): UTC unless tz-aware."""
    if _is_naive_datetime(ts):
        return utc_seconds
    parsed = pd.to_datetime(ts)
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        return _epoch_seconds(parsed.dt.tz_localize(None))
    return utc_seconds


def _as_text_values(values: pd.Series) -> np.ndarray:
    """Values as an object array; ``==`` with a category name compares element by element."""
    return np.asarray(values.to_numpy(), dtype=object)


def _labels(X: pd.DataFrame, y: pd.Series | np.ndarray | None) -> np.ndarray | None:
    """Labels from ``y`` or the ``is_fraud`` column as float64 (NaN where unknown), else None."""
    if y is not None:
        return pd.to_numeric(pd.Series(np.asarray(y)), errors="coerce").to_numpy(dtype=np.float64)
    if s.TARGET in X:
        return pd.to_numeric(X[s.TARGET], errors="coerce").to_numpy(dtype=np.float64)
    return None


@dataclass(frozen=True)
class RawColumns:
    """The raw transaction fields the featurizer reads, as numpy arrays.

    Build it from a frame with :meth:`from_frame`, or directly from arrays that a caller has
    already read and validated (the scoring path reads each column of a request once).

    Parameters
    ----------
    seconds:
        Epoch seconds (UTC) of each transaction, int64.
    keys:
        The keys of each entity the dataset spec declares, by entity name (``customer``,
        ``terminal``, ``device``...), as read: ints or text.
    amount:
        Amounts, float64.
    categories:
        The dataset spec's categorical feature columns, as object arrays (compared with the
        category names the featurizer learned or the spec declared).
    numeric:
        The spec's numeric feature columns, float64.
    label:
        Fraud labels, float64 with NaN where unknown; None when no labels came with the rows.
    wall_seconds:
        Epoch seconds of the local wall-clock time for hour and weekday, when it differs from
        ``seconds`` (tz-aware input); None means ``seconds``.
    """

    seconds: np.ndarray
    keys: Mapping[str, np.ndarray]
    amount: np.ndarray
    categories: Mapping[str, np.ndarray] = field(default_factory=dict)
    numeric: Mapping[str, np.ndarray] = field(default_factory=dict)
    label: np.ndarray | None = None
    wall_seconds: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.seconds)

    @classmethod
    def from_frame(
        cls,
        X: pd.DataFrame,
        y: pd.Series | np.ndarray | None = None,
        spec: DatasetSpec = CARD_FRAUD,
    ) -> RawColumns:
        """Read the featurizer's columns (and labels from ``y`` or ``is_fraud``) from ``X``."""
        if not spec.timed and s.TIMESTAMP not in X.columns:  # no time: nothing reads it
            X = X.assign(**{s.TIMESTAMP: pd.Timestamp(0)})
        ts = X[s.TIMESTAMP]
        seconds = _epoch_seconds(ts)
        wall = _wall_clock_seconds(ts, seconds)
        return cls(
            seconds=seconds,
            keys={e.name: X[e.column].to_numpy() for e in spec.entities},
            amount=amounts(X, spec),
            categories={c: _as_text_values(X[c]) for c in spec.categorical_columns},
            numeric={c: X[c].to_numpy(dtype=np.float64) for c in spec.numeric_features},
            label=_labels(X, y),
            wall_seconds=None if wall is seconds else wall,
        )


def amounts(X: pd.DataFrame, spec: DatasetSpec) -> np.ndarray:
    """The amounts of ``X`` as float64; ones for a table without amounts (``has_amount:
    false``), which no feature reads: windows count them, nothing sums them."""
    if not spec.has_amount:
        return np.ones(len(X))
    return X[s.AMOUNT].to_numpy(dtype=np.float64)


def concat_raw(first: RawColumns, second: RawColumns) -> RawColumns:
    """``first``'s transactions followed by ``second``'s (labels unknown where one has none)."""

    def labels(raw: RawColumns) -> np.ndarray:
        return raw.label if raw.label is not None else np.full(len(raw), np.nan)

    def wall(raw: RawColumns) -> np.ndarray:
        return raw.wall_seconds if raw.wall_seconds is not None else raw.seconds

    has_labels = first.label is not None or second.label is not None
    has_wall = first.wall_seconds is not None or second.wall_seconds is not None
    return RawColumns(
        seconds=np.concatenate([first.seconds, second.seconds]),
        keys={k: np.concatenate([v, second.keys[k]]) for k, v in first.keys.items()},
        amount=np.concatenate([first.amount, second.amount]),
        categories={
            c: np.concatenate([v, second.categories[c]]) for c, v in first.categories.items()
        },
        numeric={c: np.concatenate([v, second.numeric[c]]) for c, v in first.numeric.items()},
        label=np.concatenate([labels(first), labels(second)]) if has_labels else None,
        wall_seconds=np.concatenate([wall(first), wall(second)]) if has_wall else None,
    )


def take_raw(raw: RawColumns, positions: np.ndarray) -> RawColumns:
    """The transactions of ``raw`` at ``positions`` (in that order)."""

    def pick(values: np.ndarray | None) -> np.ndarray | None:
        return None if values is None else values[positions]

    return RawColumns(
        seconds=raw.seconds[positions],
        keys={k: v[positions] for k, v in raw.keys.items()},
        amount=raw.amount[positions],
        categories={c: v[positions] for c, v in raw.categories.items()},
        numeric={c: v[positions] for c, v in raw.numeric.items()},
        label=pick(raw.label),
        wall_seconds=pick(raw.wall_seconds),
    )


def entity_keys_of(raw: RawColumns, spec: DatasetSpec) -> dict[str, np.ndarray]:
    """The text keys of ``raw``'s rows per entity the spec declares (what a store keys)."""
    return {name: text_keys(raw.keys[name]) for name in spec.entity_names}


def text_keys(values: np.ndarray) -> np.ndarray:
    """Entity keys or ids as text (an object array): the form a feature-state store keys by."""
    if values.dtype.kind in "iu":
        if len(values) <= 1:  # one request's key
            return np.asarray([str(v) for v in values.tolist()], dtype=object)
        # each distinct key converted once: a batch repeats its customers and terminals
        distinct, where = np.unique(values, return_inverse=True)
        return np.asarray(list(map(str, distinct.tolist())), dtype=object)[where.reshape(-1)]
    return np.fromiter((str(v) for v in values), dtype=object, count=len(values))


@dataclass(frozen=True)
class EntityQuery:
    """What a batch needs from a feature-state store for one entity kind.

    Events of ``keys`` with ``time > since``; with ``labelled``, only events whose label had
    arrived by the store request's label cutoff (the batch's last timestamp), with the label
    and the time it arrived.
    """

    entity: str
    keys: np.ndarray
    since: int
    labelled: bool


@dataclass(frozen=True)
class EntityEvents:
    """Events of one entity kind read from a feature-state store.

    ``key`` is text, ``time`` epoch seconds, ``label`` NaN where unknown and ``label_time``
    the second the label arrived (0 where unknown). ``last`` maps a key to the time of its
    newest event ever written (also when that event is older than the window read), so "time
    since the previous transaction" does not end at the window.
    """

    key: np.ndarray
    time: np.ndarray
    amount: np.ndarray
    label: np.ndarray
    label_time: np.ndarray
    last: dict[str, int]

    @staticmethod
    def empty(last: dict[str, int] | None = None) -> EntityEvents:
        """No events."""
        no_times = np.empty(0, np.int64)
        return EntityEvents(
            np.empty(0, object), no_times, np.empty(0), np.empty(0), no_times, last or {}
        )

    @staticmethod
    def of_events(
        key: np.ndarray, time: np.ndarray, amount: np.ndarray, last: dict[str, int]
    ) -> EntityEvents:
        """Events read for velocity windows: no labels."""
        n = len(time)
        return EntityEvents(key, time, amount, np.full(n, np.nan), np.zeros(n, np.int64), last)

    @staticmethod
    def of_labels(
        key: np.ndarray,
        time: np.ndarray,
        label: np.ndarray,
        label_time: np.ndarray,
        last: dict[str, int],
    ) -> EntityEvents:
        """Labelled events read for fraud-rate windows: no amounts."""
        return EntityEvents(key, time, np.zeros(len(time)), label, label_time, last)


def first_of_each(ids: np.ndarray) -> np.ndarray:
    """Positions of the first row of each distinct id, in row order (a retried id counts once)."""
    if len(ids) == 1:  # one request's row: nothing to sort
        return np.zeros(1, dtype=np.intp)
    _, first = np.unique(ids, return_index=True)
    first.sort()
    return np.asarray(first)


def repeated_keys(keys: Sequence[str], counts: Sequence[int] | np.ndarray) -> np.ndarray:
    """Each of ``keys`` repeated ``counts`` times, in order: the key column of a store read.

    A request reads one key, for which ``fill`` costs a tenth of ``np.repeat`` on objects.
    """
    if len(keys) == 1:
        column = np.empty(int(counts[0]), dtype=object)
        column.fill(keys[0])
        return column
    return np.repeat(np.asarray(keys, dtype=object), counts)
