"""The featurizer's event history: events sorted by ``(entity key, time)`` with prefix sums.

:class:`History` holds the raw events (each declared entity's integer key codes, time, amount,
label) and one :class:`SortedEvents` view per entity, built when first used. A window
statistic is a difference of two prefix sums found by ``searchsorted``: vectorised over a
batch, microseconds for one row, and the same arithmetic either way (the window features of
:mod:`inferloop.data.features` are built on it).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

__all__ = ["History", "SortedEvents", "search_sorted"]


_TIME_BITS = 36  # seconds since 1970 fit in 36 bits until the year 4147


@dataclass
class SortedEvents:
    """Events of one entity type sorted by ``(code, time)`` with prefix sums of their values."""

    comp: np.ndarray  # code << _TIME_BITS | time
    time: np.ndarray
    # name -> (inclusive, exclusive) prefix sums that restart at every entity's first event
    cums: dict[str, tuple[np.ndarray, np.ndarray]]

    @staticmethod
    def build(codes: np.ndarray, times: np.ndarray, values: dict[str, np.ndarray]) -> SortedEvents:
        comp = (codes.astype(np.int64) << _TIME_BITS) | times
        if _ascending(comp):
            # A store's read of one key comes in time order: a stable sort would return it
            # as it is, so skip the sort and the gathers (most of a one-row request's build).
            cums = {k: _entity_prefix_sums(v, codes) for k, v in values.items()}
            return SortedEvents(comp, times, cums)
        order = np.argsort(comp, kind="stable")
        sorted_codes = codes[order]
        cums = {k: _entity_prefix_sums(v[order], sorted_codes) for k, v in values.items()}
        return SortedEvents(comp[order], times[order], cums)

    def window(
        self, codes: np.ndarray, lo: np.ndarray, hi: np.ndarray, *, hi_inclusive: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """Positions bounding events with ``lo < time < hi`` (or ``<= hi``) per query.

        ``lo`` may be 2-D, one row per window (``hi`` minus each window's length): the order
        that sorts the ``hi`` queries sorts every such row too, so a batch sorts once.
        """
        key = codes.astype(np.int64) << _TIME_BITS
        upper = key | np.maximum(hi, 0)
        order = np.argsort(upper) if upper.size >= _SORTED_SEARCH_MIN else None
        start = search_sorted(self.comp, key | np.maximum(lo, 0), "right", order)
        end = search_sorted(self.comp, upper, "right" if hi_inclusive else "left", order)
        return start, np.maximum(end, start)

    def sums(self, name: str, start: np.ndarray, end: np.ndarray) -> np.ndarray:
        """Sums over positions ``[start, end)``, each range inside one entity's events."""
        inclusive, exclusive = self.cums[name]
        if len(inclusive) == 0:
            return np.zeros(np.shape(start))
        # ``end <= n`` (a search result), so only ``end - 1 = -1`` needs clamping; that and
        # ``start = n`` are empty ranges, zeroed below. (``np.clip`` costs several times
        # ``np.maximum`` on a request's few values.)
        last = len(inclusive) - 1
        total = inclusive[np.maximum(end - 1, 0)] - exclusive[np.minimum(start, last)]
        return np.where(end > start, total, 0.0)

    def last_time_before(self, codes: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Time of the entity's latest event strictly before ``t`` (``-1`` if none)."""
        if len(self.comp) == 0:
            return np.full(len(codes), -1, dtype=np.int64)
        key = codes.astype(np.int64) << _TIME_BITS
        pos = search_sorted(self.comp, key | t, "left") - 1
        ok = (pos >= 0) & ((self.comp[np.maximum(pos, 0)] >> _TIME_BITS) == codes)
        return np.where(ok, self.time[np.maximum(pos, 0)], -1)


def _entity_prefix_sums(values: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-entity running sums of ``values`` (sorted by entity): inclusive and exclusive.

    A window sum is the difference of two running sums of the same entity, so its rounding
    error is that of the entity's own few values. One running sum over every entity's events
    would subtract two totals of millions of amounts, off by ~1e-9, which differ between a
    batch and a single request and can move a score across a tree's split.
    """
    values = values.astype(np.float64, copy=False)
    if len(values) == 0:
        return np.zeros(0), np.zeros(0)
    one_entity = codes[0] == codes[-1]  # a single request's read
    if one_entity:
        inclusive = np.cumsum(values)
    else:
        inclusive = pd.Series(values).groupby(codes, sort=False).cumsum().to_numpy()
    exclusive = np.empty_like(inclusive)
    exclusive[0] = 0.0
    exclusive[1:] = inclusive[:-1]
    if not one_entity:
        exclusive[1:][codes[1:] != codes[:-1]] = 0.0  # each entity's first event: nothing before
    return inclusive, exclusive


def _ascending(values: np.ndarray) -> bool:
    """Whether ``values`` never decrease (one vectorised pass; no sort)."""
    return len(values) < 2 or bool((values[1:] >= values[:-1]).all())


#: Above this many queries, :func:`search_sorted` sorts them first.
_SORTED_SEARCH_MIN = 4096


def search_sorted(
    sorted_keys: np.ndarray,
    queries: np.ndarray,
    side: Literal["left", "right"],
    order: np.ndarray | None = None,
) -> np.ndarray:
    """``np.searchsorted`` of many queries, in sorted order when that is faster.

    A batch's queries come in time order, so each lands somewhere else in the history's
    ``(entity, time)`` order and the binary searches miss the cache; searched in sorted order
    they walk the history once. For 300k queries into 3M events: 0.15 s unsorted, 0.07 s with
    the sort included. The answers are the same either way.

    ``order``: a permutation expected to sort ``queries`` (each row, for 2-D queries), such
    as the order of a related set of queries; used for a row it sorts (checked in one
    pass), else that row is sorted here.
    """
    if queries.size < _SORTED_SEARCH_MIN:
        return np.searchsorted(sorted_keys, queries, side=side)
    rows = queries.reshape(-1, queries.shape[-1])
    found = np.empty(rows.shape, dtype=np.intp)
    for row, out in zip(rows, found, strict=True):
        row_order = order if order is not None and _ascending(row[order]) else np.argsort(row)
        out[row_order] = np.searchsorted(sorted_keys, row[row_order], side=side)
    return found.reshape(queries.shape)


_EVENT_FIELDS = ("keys", "time", "amount", "label", "features")


class History:
    """Event history: raw event arrays plus one sorted view per entity, built when first used.

    ``keys`` maps each entity name to its integer key codes and ``features`` to the kind of
    windows it has: a velocity entity's view sums amounts and events, a risk entity's the known
    and fraud labels.
    """

    def __init__(
        self,
        keys: Mapping[str, np.ndarray],
        time: np.ndarray,
        amount: np.ndarray,
        label: np.ndarray,
        features: Mapping[str, str],
    ):
        self.keys, self.time, self.amount, self.label = dict(keys), time, amount, label
        self.features = dict(features)
        self._views: dict[str, SortedEvents] = {}

    def view(self, name: str) -> SortedEvents:
        """Events sorted by ``(key of entity name, time)`` with the prefix sums its windows use."""
        view = self._views.get(name)
        if view is None:
            view = self._views[name] = self._build_view(name)
        return view

    def _build_view(self, name: str) -> SortedEvents:
        if self.features[name] == "velocity":
            # counts come from the window's positions (``end - start``): amounts alone
            values = {"amount": self.amount}
        else:
            known = ~np.isnan(self.label)
            values = {"known": known.astype(np.float64), "fraud": np.where(known, self.label, 0.0)}
        return SortedEvents.build(self.keys[name], self.time, values)

    def build_views(self) -> None:
        """Build every entity's sorted view now (before a reader shares this history)."""
        for name in self.keys:
            self.view(name)

    def __getstate__(self) -> dict[str, object]:
        # Pickle only the raw events; the sorted views are rebuilt on load (half the size).
        return {f: getattr(self, f) for f in _EVENT_FIELDS}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__init__(*(state[f] for f in _EVENT_FIELDS))  # type: ignore[misc]
        # A loaded model is about to score: build the views now, not in the first request.
        self.build_views()

    @functools.cached_property
    def max_time(self) -> int:
        return int(self.time.max()) if len(self.time) else -1

    def _take(self, keep: np.ndarray) -> History:
        keys = {name: codes[keep] for name, codes in self.keys.items()}
        return History(keys, self.time[keep], self.amount[keep], self.label[keep], self.features)

    def before(self, t0: int) -> History:
        """The history restricted to events strictly before ``t0`` (point-in-time view)."""
        return self._take(self.time < t0)

    def appended(self, other: History, horizon: int) -> History:
        """This history with ``other`` appended, dropping events older than ``horizon`` seconds."""
        joined = History(
            {name: np.concatenate([codes, other.keys[name]]) for name, codes in self.keys.items()},
            np.concatenate([self.time, other.time]),
            np.concatenate([self.amount, other.amount]),
            np.concatenate([self.label, other.label]),
            self.features,
        )
        if not len(joined.time):
            return joined
        return joined._take(joined.time > (joined.time.max() - horizon))


class _History(History):
    """The history of a featurizer pickled before entities were named: its fields were
    ``customer, terminal, time, amount, label``. Unpickling builds a :class:`History`."""

    def __setstate__(self, state: dict[str, object]) -> None:
        if "keys" not in state:
            keys = {"customer": state["customer"], "terminal": state["terminal"]}
            state = {
                "keys": keys,
                "time": state["time"],
                "amount": state["amount"],
                "label": state["label"],
                "features": {"customer": "velocity", "terminal": "risk"},
            }
        self.__class__ = History  # type: ignore[assignment]
        History.__setstate__(self, state)
