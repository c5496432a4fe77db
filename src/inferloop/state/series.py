"""A feature-state key's recent events packed as arrays, and the arithmetic on them.

The SQLite store keeps one row per entity key and kind (:mod:`inferloop.state.sqlite`): the
key's event times and values as little-endian int64 / float64 bytes, and for a labelled
series the label times and the transaction ids. This module is that row's pure part, with
no SQL: :class:`Series` decodes and encodes it, :func:`window` cuts a query's events from
the series read, :func:`merged` adds labelled events (a redelivered id replaces its entry),
:func:`trimmed` drops old entries, :func:`by_key` groups a batch's entries by key.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np

from inferloop.data.events import EntityEvents, EntityQuery, repeated_keys

__all__ = ["SEP", "Series", "by_key", "joined", "merged", "trimmed", "window"]

SEP = "\x1f"  # between the entity keys of an event, and between the ids of a labelled series


@dataclass
class Series:
    """One entity key's packed events: times, values (amounts or labels), label times, ids."""

    times: np.ndarray
    a: np.ndarray
    b: np.ndarray | None = None
    ids: list[str] | None = None

    @staticmethod
    def decode(row: tuple[Any, ...], with_ids: bool = True) -> Series:
        """The series of a ``series`` row; ``with_ids=False`` for a read that only scores
        (splitting the ids of a long labelled series costs more than the rest of the read).
        """
        _, times, a, b, ids = row
        return Series(
            np.frombuffer(times, dtype="<i8"),
            np.frombuffer(a, dtype="<f8"),
            None if b is None else np.frombuffer(b, dtype="<i8"),
            None if ids is None or not with_ids else ids.split(SEP),
        )

    def encode(self) -> tuple[bytes, bytes, bytes | None, str | None]:
        """The ``times, a, b, ids`` columns of the series' row (``decode``'s inverse)."""
        return (
            self.times.astype("<i8").tobytes(),
            self.a.astype("<f8").tobytes(),
            None if self.b is None else self.b.astype("<i8").tobytes(),
            None if self.ids is None else SEP.join(self.ids),
        )


def window(query: EntityQuery, series: dict[str, Series], label_cutoff: int) -> EntityEvents:
    """The query's events: ``time > since`` (labelled: labels arrived by the cutoff)."""
    if query.labelled:
        last: dict[str, int] = {}
    else:
        last = {k: int(s.times.max()) for k, s in series.items() if len(s.times)}
    parts = []
    for key, s in series.items():
        keep = s.times > query.since
        if query.labelled and s.b is not None:
            keep &= s.b <= label_cutoff
        if keep.any():
            parts.append((key, s, keep))
    if not parts:
        return EntityEvents.empty(last)
    times = joined([s.times[k] for _, s, k in parts])
    values = joined([s.a[k] for _, s, k in parts])
    keys = repeated_keys([key for key, _, _ in parts], [int(k.sum()) for *_, k in parts])
    if query.labelled:
        label_times = joined([s.b[k] for _, s, k in parts if s.b is not None])
        return EntityEvents.of_labels(keys, times, values, label_times, last)
    return EntityEvents.of_events(keys, times, values, last)


def joined(arrays: list[np.ndarray]) -> np.ndarray:
    """The arrays end to end (one of them as it is: a request reads one key)."""
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


def by_key(keys: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """Each distinct key as text, in sorted order, with its entries' positions in input order."""
    if len(keys) == 0:
        return []
    if len(keys) == 1:  # one request's event: nothing to sort
        return [(str(keys[0]), np.zeros(1, dtype=np.intp))]
    text = keys.astype(str)
    order = np.argsort(text, kind="stable")
    ordered = text[order]
    bounds = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1], True])
    return [(str(ordered[a]), order[a:b]) for a, b in itertools.pairwise(bounds.tolist())]


def merged(
    old: Series | None,
    ids: list[str],
    times: np.ndarray,
    values: np.ndarray,
    arrived: np.ndarray,
) -> Series:
    """``old`` with the labelled events added: appended, or replacing an entry of the same id."""
    old_ids = list(old.ids or []) if old is not None else []
    if len(set(ids)) == len(ids) and set(ids).isdisjoint(old_ids):  # the common case
        if old is None or old.b is None:
            return Series(times.copy(), values.copy(), arrived.copy(), ids)
        return Series(
            np.concatenate([old.times, times]),
            np.concatenate([old.a, values]),
            np.concatenate([old.b, arrived]),
            old_ids + ids,
        )
    all_times = old.times.tolist() if old is not None else []
    all_values = old.a.tolist() if old is not None else []
    all_arrived = old.b.tolist() if old is not None and old.b is not None else []
    position = {i: n for n, i in enumerate(old_ids)}
    for i, time, value, at in zip(
        ids, times.tolist(), values.tolist(), arrived.tolist(), strict=True
    ):
        if i in position:
            all_values[position[i]], all_arrived[position[i]] = value, at
            continue
        position[i] = len(old_ids)
        old_ids.append(i)
        all_times.append(time)
        all_values.append(value)
        all_arrived.append(at)
    return Series(
        np.asarray(all_times, dtype=np.int64),
        np.asarray(all_values, dtype=np.float64),
        np.asarray(all_arrived, dtype=np.int64),
        old_ids,
    )


def trimmed(series: Series, before: int, *, keep_newest: bool) -> Series | None:
    """``series`` without entries older than ``before`` (keeping its newest if asked)."""
    keep = series.times >= before
    if keep_newest and len(series.times) and not keep.any():
        keep[int(np.argmax(series.times))] = True
    if not keep.any():
        return None
    return Series(
        series.times[keep],
        series.a[keep],
        None if series.b is None else series.b[keep],
        None if series.ids is None else [i for i, k in zip(series.ids, keep, strict=True) if k],
    )
