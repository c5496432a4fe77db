"""Point-in-time transaction features, identical in batch and for one incoming transaction.

:class:`TransactionFeaturizer` is a scikit-learn transformer whose fitted state is the recent
event history (customer, terminal, time, amount, label). Features of a transaction at time
``t`` use only:

* the customer's transactions strictly before ``t`` (plus the transaction itself) inside
  each customer window — count, mean amount, time since the previous one;
* the terminal's transactions whose labels are known at ``t``: those at or before
  ``t - label_delay`` — count and fraud rate inside each terminal window;
* the transaction's own fields — amount, time of day, weekend, night, one indicator per
  category of each categorical feature of the dataset spec (:mod:`inferloop.core.dataset`),
  and the spec's numeric features as they are.

The customer and terminal windows exist for the entity kinds the spec declares; a dataset
without customer keys (or terminal keys) gets no such features, not features of a made-up key.

Window statistics are sums over events, so they are computed separately over the fitted
history and over the batch being transformed and added up. Each part is a pair of
``searchsorted`` look-ups on arrays sorted by ``(entity, time)`` — vectorised for a batch,
microseconds for a single row — which is why batch and online features agree exactly.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.exceptions import NotFittedError

from inferloop.core import schema as s
from inferloop.core.dataset import CARD_FRAUD, DatasetSpec
from inferloop.data.categories import indicator_names, indicators, learn_categories
from inferloop.data.events import (
    EntityEvents,
    EntityQuery,
    RawColumns,
    text_keys,
)

__all__ = [
    "FeatureParams",
    "TransactionFeaturizer",
    "featurize_frame",
]


_TIME_BITS = 36  # seconds since 1970 fit in 36 bits until the year 4147


@dataclass(frozen=True)
class FeatureParams:
    """The ``featurize`` section of params.yaml."""

    customer_windows: tuple[str, ...] = ("1h", "1D", "7D", "30D")
    terminal_windows: tuple[str, ...] = ("1D", "7D", "30D")
    label_delay: str = "7D"
    night_hours: tuple[int, int] = (0, 6)
    extra_history: str = "14D"


def _seconds(window: str) -> int:
    return int(pd.Timedelta(window).total_seconds())


@dataclass
class _SortedEvents:
    """Events of one entity type sorted by ``(code, time)`` with prefix sums of their values."""

    comp: np.ndarray  # code << _TIME_BITS | time
    time: np.ndarray
    # name -> (inclusive, exclusive) prefix sums that restart at every entity's first event
    cums: dict[str, tuple[np.ndarray, np.ndarray]]

    @staticmethod
    def build(codes: np.ndarray, times: np.ndarray, values: dict[str, np.ndarray]) -> _SortedEvents:
        comp = (codes.astype(np.int64) << _TIME_BITS) | times
        order = np.argsort(comp, kind="stable")
        sorted_codes = codes[order]
        cums = {k: _entity_prefix_sums(v[order], sorted_codes) for k, v in values.items()}
        return _SortedEvents(comp[order], times[order], cums)

    def window(
        self, codes: np.ndarray, lo: np.ndarray, hi: np.ndarray, *, hi_inclusive: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """Positions bounding events with ``lo < time < hi`` (or ``<= hi``) per query."""
        key = codes.astype(np.int64) << _TIME_BITS
        start = _search(self.comp, key | np.maximum(lo, 0), "right")
        end = _search(self.comp, key | np.maximum(hi, 0), "right" if hi_inclusive else "left")
        return start, np.maximum(end, start)

    def sums(self, name: str, start: np.ndarray, end: np.ndarray) -> np.ndarray:
        """Sums over positions ``[start, end)``, each range inside one entity's events."""
        inclusive, exclusive = self.cums[name]
        if len(inclusive) == 0:
            return np.zeros(np.shape(start))
        n = len(inclusive)
        total = inclusive[np.clip(end - 1, 0, n - 1)] - exclusive[np.minimum(start, n - 1)]
        return np.where(end > start, total, 0.0)

    def last_time_before(self, codes: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Time of the entity's latest event strictly before ``t`` (``-1`` if none)."""
        if len(self.comp) == 0:
            return np.full(len(codes), -1, dtype=np.int64)
        key = codes.astype(np.int64) << _TIME_BITS
        pos = _search(self.comp, key | t, "left") - 1
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
    if codes[0] == codes[-1]:  # one entity (a single request's read): a plain running sum
        inclusive = np.cumsum(values)
    else:
        inclusive = pd.Series(values).groupby(codes, sort=False).cumsum().to_numpy()
    exclusive = np.empty_like(inclusive)
    exclusive[0] = 0.0
    exclusive[1:] = inclusive[:-1]
    exclusive[1:][codes[1:] != codes[:-1]] = 0.0  # each entity's first event: nothing before
    return inclusive, exclusive


#: Above this many queries, :func:`_search` sorts them first.
_SORTED_SEARCH_MIN = 4096


def _search(
    sorted_keys: np.ndarray, queries: np.ndarray, side: Literal["left", "right"]
) -> np.ndarray:
    """``np.searchsorted`` of many queries, in sorted order when that is faster.

    A batch's queries come in time order, so each lands somewhere else in the history's
    ``(entity, time)`` order and the binary searches miss the cache; searched in sorted order
    they walk the history once. For 300k queries into 3M events: 0.15 s unsorted, 0.07 s with
    the sort included. The answers are the same either way.
    """
    if queries.size < _SORTED_SEARCH_MIN:
        return np.searchsorted(sorted_keys, queries, side=side)
    flat = queries.ravel()
    order = np.argsort(flat)
    found = np.empty(flat.shape, dtype=np.intp)
    found[order] = np.searchsorted(sorted_keys, flat[order], side=side)
    return found.reshape(queries.shape)


_EVENT_FIELDS = ("customer", "terminal", "time", "amount", "label")


class _History:
    """Event history: raw event arrays plus two sorted views, built when first used."""

    def __init__(
        self,
        customer: np.ndarray,
        terminal: np.ndarray,
        time: np.ndarray,
        amount: np.ndarray,
        label: np.ndarray,
    ):
        self.customer, self.terminal, self.time = customer, terminal, time
        self.amount, self.label = amount, label

    @functools.cached_property
    def by_customer(self) -> _SortedEvents:
        """Events sorted by ``(customer, time)`` with prefix sums of amounts."""
        amount = self.amount
        return _SortedEvents.build(
            self.customer, self.time, {"amount": amount, "one": np.ones_like(amount)}
        )

    @functools.cached_property
    def by_terminal(self) -> _SortedEvents:
        """Events sorted by ``(terminal, time)`` with prefix sums of known and fraud labels."""
        known = ~np.isnan(self.label)
        return _SortedEvents.build(
            self.terminal,
            self.time,
            {"known": known.astype(np.float64), "fraud": np.where(known, self.label, 0.0)},
        )

    def __getstate__(self) -> dict[str, np.ndarray]:
        # Pickle only the raw events; the sorted views are rebuilt on load (half the size).
        return {f: getattr(self, f) for f in _EVENT_FIELDS}

    def __setstate__(self, state: dict[str, np.ndarray]) -> None:
        self.__init__(*(state[f] for f in _EVENT_FIELDS))  # type: ignore[misc]
        # A loaded model is about to score: build the views now, not in the first request.
        _ = self.by_customer, self.by_terminal

    @functools.cached_property
    def max_time(self) -> int:
        return int(self.time.max()) if len(self.time) else -1

    def before(self, t0: int) -> _History:
        """The history restricted to events strictly before ``t0`` (point-in-time view)."""
        keep = self.time < t0
        return _History(
            self.customer[keep],
            self.terminal[keep],
            self.time[keep],
            self.amount[keep],
            self.label[keep],
        )

    def appended(self, other: _History, horizon: int) -> _History:
        """This history with ``other`` appended, dropping events older than ``horizon`` seconds."""
        parts = [np.concatenate([getattr(self, f), getattr(other, f)]) for f in _EVENT_FIELDS]
        keep = parts[2] > (parts[2].max() - horizon) if len(parts[2]) else np.ones(0, bool)
        return _History(*(p[keep] for p in parts))


class TransactionFeaturizer(TransformerMixin, BaseEstimator):
    """Point-in-time features for card transactions (see the module docstring).

    Parameters
    ----------
    customer_windows:
        Pandas offset strings of the customer behaviour windows (count, mean amount).
    terminal_windows:
        Windows of the delayed terminal-risk features.
    label_delay:
        Labels become known this long after a transaction; terminal risk only uses
        transactions at least this old.
    night_hours:
        ``(start, end)`` hours of the night flag, ``start <= hour < end``.
    extra_history:
        History kept beyond the longest window, so that a fitted model can re-score its most
        recent days exactly as the batch features did (the evaluate stage re-scores the test
        window through the deployed model).
    spec:
        The dataset spec whose categorical and numeric features are encoded (None: the card
        fraud simulator's). A categorical feature declared without categories gets the
        training data's most frequent ones (``max_learned_categories``); any other value
        encodes as all zeros, the ``other`` bucket.
    """

    def __init__(
        self,
        customer_windows: Sequence[str] = ("1h", "1D", "7D", "30D"),
        terminal_windows: Sequence[str] = ("1D", "7D", "30D"),
        label_delay: str = "7D",
        night_hours: tuple[int, int] = (0, 6),
        extra_history: str = "14D",
        spec: DatasetSpec | None = None,
    ) -> None:
        self.customer_windows = customer_windows
        self.terminal_windows = terminal_windows
        self.label_delay = label_delay
        self.night_hours = night_hours
        self.extra_history = extra_history
        self.spec = spec

    @classmethod
    def from_params(
        cls, params: FeatureParams, spec: DatasetSpec | None = None
    ) -> TransactionFeaturizer:
        """Build from the ``featurize`` params section and the ``dataset`` spec."""
        return cls(
            params.customer_windows,
            params.terminal_windows,
            params.label_delay,
            params.night_hours,
            params.extra_history,
            spec,
        )

    @property
    def dataset_spec(self) -> DatasetSpec:
        """The dataset spec the featurizer reads its columns by."""
        return getattr(self, "spec_", None) or getattr(self, "spec", None) or CARD_FRAUD

    @property
    def categories(self) -> dict[str, tuple[str, ...]]:
        """The encoded categories of each categorical feature (declared or learned by fit)."""
        return dict(getattr(self, "categories_", None) or self.dataset_spec.categorical_features)

    # ------------------------------------------------------------------ fitting / state
    def fit(
        self,
        X: pd.DataFrame,
        y: pd.Series | None = None,
        *,
        categories_from: pd.DataFrame | None = None,
    ) -> TransactionFeaturizer:
        """Remember ``X`` (and its labels, from ``y`` or the ``is_fraud`` column) as history.

        Categorical features declared without categories learn them here, from
        ``categories_from`` (default ``X``).
        """
        self.spec_ = self.spec or CARD_FRAUD
        self._check_input(X)
        self.categories_ = learn_categories(
            X if categories_from is None else categories_from, self.spec_
        )
        self.customer_windows_s_ = [_seconds(w) for w in self.customer_windows]
        self.terminal_windows_s_ = [_seconds(w) for w in self.terminal_windows]
        self.label_delay_s_ = _seconds(self.label_delay)
        self.horizon_s_ = self._longest_read() + _seconds(self.extra_history)
        self.customer_index_ = pd.Index([])
        self.terminal_index_ = pd.Index([])
        self.feature_names_out_ = self._feature_names()
        self.history_ = _History(
            *(np.empty(0, dt) for dt in (np.int64, np.int64, np.int64, np.float64, np.float64))
        )
        return self.update(X, y)

    def _check_fitted(self) -> None:
        if not hasattr(self, "history_"):
            raise NotFittedError("TransactionFeaturizer is not fitted: call fit() first")

    def update(self, X: pd.DataFrame, y: pd.Series | None = None) -> TransactionFeaturizer:
        """Append transactions to the history (online use: call after scoring each batch)."""
        self._check_fitted()
        self._check_input(X)
        raw = RawColumns.from_frame(X, y, self.dataset_spec)
        self.customer_index_ = _extend_index(self.customer_index_, raw.customer)
        self.terminal_index_ = _extend_index(self.terminal_index_, raw.terminal)
        self.history_ = self.history_.appended(self._events(raw), self.horizon_s_)
        return self

    # ------------------------------------------------------------------ transform
    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """Features for each row of ``X``, in ``X``'s order and index.

        Uses the fitted history before the batch's first timestamp plus the batch itself
        (earlier rows of the batch count as history for later ones). Labels in ``X`` are used
        only when the label delay has passed, exactly as they would be online.
        """
        matrix = self.feature_matrix(X)
        return pd.DataFrame(matrix, columns=self.feature_names_out_, index=X.index, copy=False)

    def feature_matrix(self, X: pd.DataFrame) -> np.ndarray:
        """The features of :meth:`transform` as a float64 matrix (rows of ``X``, feature order).

        The scoring path uses this directly: for one transaction, building a 30-column
        DataFrame costs more than computing the features.
        """
        self._check_input(X)
        return self.features_of(RawColumns.from_frame(X, spec=self.dataset_spec))

    def features_of(self, raw: RawColumns) -> np.ndarray:
        """The feature matrix of transactions given as :class:`RawColumns`."""
        self._check_fitted()
        if len(raw) == 0:
            return np.empty((0, len(self.feature_names_out_)), dtype=np.float64)
        batch = self._events(raw)
        parts = self._parts(batch.time, batch)
        columns = self._row_features(raw)
        if self._has("customer"):
            columns.update(self._customer_features(parts, batch))
        if self._has("terminal"):
            columns.update(self._terminal_features(parts, batch))
        return self._matrix(columns, len(raw))

    def _has(self, kind: str) -> bool:
        return self.dataset_spec.has_entity(kind)

    def _longest_read(self) -> int:
        """Seconds before a row that its windows read (0 without entities: no windows)."""
        reads = [0]
        if self._has("customer"):
            reads.append(max(self.customer_windows_s_))
        if self._has("terminal"):
            reads.append(self.label_delay_s_ + max(self.terminal_windows_s_))
        return max(reads)

    def _matrix(self, columns: dict[str, np.ndarray], n_rows: int) -> np.ndarray:
        # Filling a preallocated matrix costs a fraction of ``np.column_stack`` on one row.
        matrix = np.empty((n_rows, len(self.feature_names_out_)), dtype=np.float64)
        for j, name in enumerate(self.feature_names_out_):
            matrix[:, j] = columns[name]
        return matrix

    # ------------------------------------------------------------------ feature state
    @property
    def state_horizon_s(self) -> int:
        """Seconds of events a feature-state store must keep: the furthest back a row reads."""
        self._check_fitted()
        return self._longest_read()

    def state_queries(self, raw: RawColumns) -> list[EntityQuery]:
        """The events of ``raw``'s entities that :meth:`features_from_state` needs."""
        self._check_fitted()
        t0 = int(raw.seconds.min())
        queries = []
        if self._has("customer"):
            since = t0 - max(self.customer_windows_s_)
            queries.append(EntityQuery("customer", _unique(text_keys(raw.customer)), since, False))
        if self._has("terminal"):
            since = t0 - self.label_delay_s_ - max(self.terminal_windows_s_)
            queries.append(EntityQuery("terminal", _unique(text_keys(raw.terminal)), since, True))
        return queries

    def features_from_state(self, raw: RawColumns, events: dict[str, EntityEvents]) -> np.ndarray:
        """The feature matrix of ``raw`` against events read from a feature-state store.

        The same window arithmetic as :meth:`features_of`, over the store's events of the
        batch's customers and terminals (:meth:`state_queries`) instead of the fitted history.
        Earlier rows of the batch count for later ones' customer windows; labels come only
        from the store (the label feed), never from the rows being scored.
        """
        self._check_fitted()
        if len(raw) == 0:
            return np.empty((0, len(self.feature_names_out_)), dtype=np.float64)
        none = EntityEvents.empty()
        cust, term = events.get("customer", none), events.get("terminal", none)
        cust_keys = text_keys(raw.customer)
        c_hist, c_batch = _local_codes(cust.key, cust_keys)
        t_hist, t_batch = _local_codes(term.key, text_keys(raw.terminal))
        unknown = np.full(len(raw), np.nan)
        batch = _History(c_batch, t_batch, raw.seconds, raw.amount, unknown)
        columns = self._row_features(raw)
        if self._has("customer"):
            customers = _History(c_hist, np.zeros_like(c_hist), cust.time, cust.amount, cust.label)
            # rows at one time never see each other (windows end before ``t``): no batch part
            one_time = int(raw.seconds.min()) == int(raw.seconds.max())
            customer_parts = (customers,) if one_time else (customers, batch)
            prior = _prior_last(cust.last, cust_keys, int(raw.seconds.min()))
            columns.update(self._customer_features(customer_parts, batch, prior))
        if self._has("terminal"):
            columns.update(self._terminal_state_features(term, t_hist, batch))
        return self._matrix(columns, len(raw))

    def _terminal_state_features(
        self, term: EntityEvents, codes: np.ndarray, batch: _History
    ) -> dict[str, np.ndarray]:
        """Terminal statistics from stored labels, each counted only once it had arrived.

        A label that arrived within the label delay of its event is known to every row whose
        window holds the event (the window ends ``d`` before the row). Only "overdue" labels,
        which arrived later than that, need the per-row check ``label_time <= t``.
        """
        d = self.label_delay_s_
        on_time = term.label_time <= term.time + d
        part = _History(
            np.zeros_like(codes[on_time]),
            codes[on_time],
            term.time[on_time],
            term.amount[on_time],
            term.label[on_time],
        )
        out = self._terminal_features((part,), batch)
        if not on_time.all():
            self._add_overdue_labels(out, term, codes, ~on_time, batch)
        return out

    def _add_overdue_labels(
        self,
        out: dict[str, np.ndarray],
        term: EntityEvents,
        codes: np.ndarray,
        overdue: np.ndarray,
        batch: _History,
    ) -> None:
        """Add overdue labels to the terminal counts of the rows that had them (few: a loop)."""
        d = self.label_delay_s_
        o_code, o_time = codes[overdue], term.time[overdue]
        o_label, o_at = term.label[overdue], term.label_time[overdue]
        for row in np.flatnonzero(np.isin(batch.terminal, o_code)):
            t = int(batch.time[row])
            mine = (o_code == batch.terminal[row]) & (o_at <= t) & (o_time <= t - d)
            for name, w in zip(self.terminal_windows, self.terminal_windows_s_, strict=True):
                inside = mine & (o_time > t - d - w)
                known = out[f"term_count_{name}"][row]
                fraud = out[f"term_risk_{name}"][row] * known + o_label[inside].sum()
                known += inside.sum()
                out[f"term_count_{name}"][row] = known
                out[f"term_risk_{name}"][row] = fraud / known if known > 0 else 0.0

    def history_events(self) -> tuple[dict[str, np.ndarray], _History]:
        """The fitted history's events with their declared entities' keys as text (to seed a
        store)."""
        self._check_fitted()
        history = self.history_
        index = {"customer": self.customer_index_, "terminal": self.terminal_index_}
        codes = {"customer": history.customer, "terminal": history.terminal}
        keys = {
            kind: text_keys(index[kind].to_numpy()[codes[kind]])
            for kind in self.dataset_spec.entities
        }
        return keys, history

    def get_feature_names_out(self, input_features: Sequence[str] | None = None) -> np.ndarray:
        """Names of the output columns (scikit-learn API)."""
        return np.asarray(self.feature_names_out_, dtype=object)

    # ------------------------------------------------------------------ internals
    def _parts(self, times: np.ndarray, batch: _History) -> tuple[_History, ...]:
        """The event sets a batch at ``times`` reads: history before its first time, and itself.

        A row at time ``t`` only ever reads events strictly before ``t`` (customer windows end
        before ``t``, terminal windows at ``t - label_delay``). So when every row shares the
        first time -- one online transaction -- the batch adds nothing and the whole history
        already is the point-in-time view: the rebuild in :meth:`_History.before` (a sort of
        the history) and the batch's own sorted views are skipped.
        """
        t0 = int(times.min())
        if self.label_delay_s_ > 0 and int(times.max()) == t0:
            return (self.history_,)
        history = self.history_ if self.history_.max_time < t0 else self.history_.before(t0)
        return (history, batch)

    def _feature_names(self) -> list[str]:
        names = ["tx_amount", "log_amount"]
        if self.dataset_spec.timed:
            names += ["hour", "is_weekend", "is_night"]
        if self._has("customer"):
            for w in self.customer_windows:
                names += [f"cust_count_{w}", f"cust_mean_amount_{w}"]
            names += ["amount_to_cust_mean", "cust_log_seconds_since_last"]
        if self._has("terminal"):
            for w in self.terminal_windows:
                names += [f"term_count_{w}", f"term_risk_{w}"]
        names += indicator_names(self.categories)
        names += list(self.dataset_spec.numeric_features)
        return names

    def _check_input(self, X: pd.DataFrame) -> None:
        if not isinstance(X, pd.DataFrame):
            raise TypeError(
                f"TransactionFeaturizer expects a pandas DataFrame, got {type(X).__name__}"
            )
        need = [c for c in self.dataset_spec.scoring_columns if c != s.TRANSACTION_ID]
        missing = [c for c in need if c not in X.columns]
        if missing:
            raise ValueError(f"missing columns for featurization: {missing}")

    def _codes(self, index: pd.Index, keys: np.ndarray) -> np.ndarray:
        """Integer codes of ``keys``; unseen keys get fresh codes after the known ones."""
        if len(keys) == 1:
            code = _code_of_one(index, keys[0])
            if code is not None:
                return np.array([code], dtype=np.int64)
        codes = index.get_indexer(keys)
        unseen = codes < 0
        if unseen.any():
            fresh, _ = pd.factorize(keys[unseen])
            codes[unseen] = len(index) + fresh
        return codes.astype(np.int64)

    def _events(self, raw: RawColumns) -> _History:
        labels = raw.label if raw.label is not None else np.full(len(raw), np.nan)
        return _History(
            self._codes(self.customer_index_, raw.customer),
            self._codes(self.terminal_index_, raw.terminal),
            raw.seconds,
            raw.amount,
            labels,
        )

    def _customer_features(
        self, parts: tuple[_History, ...], batch: _History, prior: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        """Customer window statistics, all windows in one look-up per part.

        ``prior`` is, per row, the time of an earlier event of the customer that no part
        holds (older than the windows a store read), or -1.
        """
        t, amount = batch.time, batch.amount
        windows = np.asarray(self.customer_windows_s_, dtype=np.int64)[:, None]
        count = np.ones((len(windows), len(t)))  # the transaction itself
        total = np.repeat(amount[None, :], len(windows), axis=0)
        for part in parts:
            start, end = part.by_customer.window(batch.customer, t - windows, t, hi_inclusive=False)
            count += end - start
            total += part.by_customer.sums("amount", start, end)
        mean = total / count
        out: dict[str, np.ndarray] = {}
        for i, name in enumerate(self.customer_windows):
            out[f"cust_count_{name}"] = count[i]
            out[f"cust_mean_amount_{name}"] = mean[i]
        longest = int(np.argmax(self.customer_windows_s_))
        out["amount_to_cust_mean"] = amount / mean[longest]
        last = functools.reduce(
            np.maximum, (p.by_customer.last_time_before(batch.customer, t) for p in parts)
        )
        if prior is not None:
            last = np.maximum(last, prior)
        out["cust_log_seconds_since_last"] = np.where(last >= 0, np.log1p(t - last), -1.0)
        return out

    def _terminal_features(
        self, parts: tuple[_History, ...], batch: _History
    ) -> dict[str, np.ndarray]:
        """Delayed terminal statistics: labelled events in ``(t - d - w, t - d]``."""
        t, d = batch.time, self.label_delay_s_
        windows = np.asarray(self.terminal_windows_s_, dtype=np.int64)[:, None]
        known = np.zeros((len(windows), len(t)))
        fraud = np.zeros_like(known)
        for part in parts:
            start, end = part.by_terminal.window(
                batch.terminal, t - d - windows, t - d, hi_inclusive=True
            )
            known += part.by_terminal.sums("known", start, end)
            fraud += part.by_terminal.sums("fraud", start, end)
        risk = np.divide(fraud, known, out=np.zeros_like(fraud), where=known > 0)
        out: dict[str, np.ndarray] = {}
        for i, name in enumerate(self.terminal_windows):
            out[f"term_count_{name}"] = known[i]
            out[f"term_risk_{name}"] = risk[i]
        return out

    def _row_features(self, raw: RawColumns) -> dict[str, np.ndarray]:
        """Features of the transaction's own fields."""
        amount = raw.amount
        out = {"tx_amount": amount, "log_amount": np.log1p(np.maximum(amount, 0.0))}
        if self.dataset_spec.timed:  # a table without time has no hour, weekday or night
            wall = raw.seconds if raw.wall_seconds is None else raw.wall_seconds
            hour = (wall // 3600) % 24
            weekday = (wall // 86400 + 3) % 7  # 1970-01-01 was a Thursday; Monday is 0
            start, end = self.night_hours
            out["hour"] = hour.astype(np.float64)
            out["is_weekend"] = (weekday >= 5).astype(np.float64)
            out["is_night"] = ((hour >= start) & (hour < end)).astype(np.float64)
        out.update(indicators(raw.categories, self.categories))
        out.update(raw.numeric)
        return out


def _unique(keys: np.ndarray) -> np.ndarray:
    return keys if len(keys) == 1 else np.asarray(pd.unique(keys), dtype=object)


def _local_codes(stored: np.ndarray, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes shared by a store's event keys and a batch's keys (all text)."""
    if len(batch) == 1:  # one request: the store returned only this key's events
        return np.zeros(len(stored), np.int64), np.zeros(1, np.int64)
    codes, _ = pd.factorize(np.concatenate([stored, batch]))
    codes = codes.astype(np.int64)
    return codes[: len(stored)], codes[len(stored) :]


def _prior_last(last: dict[str, int], keys: np.ndarray, t0: int) -> np.ndarray:
    """Per row, the key's newest stored event time when it is before ``t0`` (else -1).

    An event at or after ``t0`` is inside the window read, so the parts already hold it.
    """
    times = np.fromiter((last.get(k, -1) for k in keys), dtype=np.int64, count=len(keys))
    return np.where(times < t0, times, -1)


def _code_of_one(index: pd.Index, key: object) -> int | None:
    """Code of a single int or text key (``len(index)`` if unseen), by a hash look-up.

    ``Index.get_loc`` costs well under a microsecond where ``get_indexer`` costs tens; None
    sends other key types to the general path.
    """
    if isinstance(key, (bool, np.bool_)) or not isinstance(key, (int, np.integer, str)):
        return None
    try:
        loc = index.get_loc(key)
    except KeyError:
        return len(index)
    return loc if isinstance(loc, int) else None


def _extend_index(index: pd.Index, keys: np.ndarray) -> pd.Index:
    """``index`` plus the keys it has not seen, in first-seen order (codes stay stable)."""
    uniques = pd.unique(keys)
    if len(index) == 0:
        return pd.Index(uniques)
    unseen = uniques[index.get_indexer(uniques) < 0]
    return index.append(pd.Index(unseen)) if len(unseen) else index


def featurize_frame(
    df: pd.DataFrame, params: FeatureParams, spec: DatasetSpec | None = None
) -> tuple[pd.DataFrame, TransactionFeaturizer]:
    """Point-in-time features for a whole history, and a featurizer fitted on it.

    The features of every row are computed as the online path would have computed them at
    that row's time; the returned featurizer holds the history for scoring later data.
    Categories the spec leaves to be learned are learned from ``df``.
    """
    featurizer = TransactionFeaturizer.from_params(params, spec)
    empty = df.iloc[:0]
    featurizer.fit(empty, categories_from=df)
    features = featurizer.transform(df)
    featurizer.update(df)
    return features, featurizer
