"""Point-in-time transaction features, identical in batch and for one incoming transaction.

:class:`TransactionFeaturizer` is a scikit-learn transformer whose fitted state is the recent
event history (each declared entity's key, time, amount, label). Features of a transaction at
time ``t`` use only:

* for each velocity entity (the customer; a device, an account...): its transactions strictly
  before ``t`` (plus the transaction itself) inside each ``customer_windows`` window — count,
  mean amount, time since the previous one;
* for each risk entity (the terminal; a merchant, a destination account...): its transactions
  whose labels are known at ``t``, those at or before ``t - label_delay`` — count and fraud
  rate inside each ``terminal_windows`` window;
* the transaction's own fields — amount, time of day, weekend, night, one indicator per
  category of each categorical feature of the dataset spec (:mod:`inferloop.core.dataset`),
  and the spec's numeric features as they are.

Window features exist for the entities the spec declares (:class:`inferloop.core.dataset.Entity`),
named by their prefix (``cust_count_1h``, ``device_count_1h``); a dataset without entity keys
gets none, not features of a made-up key.

Window statistics are sums over events, so they are computed separately over the fitted
history and over the batch being transformed and added up. Each part is a pair of
``searchsorted`` look-ups on arrays sorted by ``(entity, time)`` — vectorised for a batch,
microseconds for a single row — which is why batch and online features agree exactly. The
one float sum among them, a window's amount total, depends on where each path starts its running
sums, so mean amounts are rounded to 36 mantissa bits (:func:`order_free`) and every path lands on
the same value.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.exceptions import NotFittedError

from inferloop.core import schema as s
from inferloop.core.dataset import CARD_FRAUD, DatasetSpec, Entity, upgraded_spec
from inferloop.data.categories import indicator_names, indicators, learn_categories
from inferloop.data.events import (
    EntityEvents,
    EntityQuery,
    RawColumns,
    text_keys,
)
from inferloop.data.history import History
from inferloop.data.history import _History as _History  # old pickles name it here

__all__ = [
    "FeatureParams",
    "TransactionFeaturizer",
    "featurize_frame",
    "order_free",
]

#: Mantissa bits that :func:`order_free` rounds off, of float64's 52. Window sums differ between
#: paths by at most a few hundred ulps (the running sums of one entity's part), far below 2**16.
_ROUNDED_BITS = 16


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

    def __setstate__(self, state: dict[str, Any]) -> None:
        # a featurizer pickled before entities were named (customer_index_, terminal_index_,
        # entity names as text) reads as one with the two built-in entities
        for key in ("spec", "spec_"):
            if isinstance(state.get(key), DatasetSpec):
                state[key] = upgraded_spec(state[key])
        if "customer_index_" in state:
            old = {
                "customer": state.pop("customer_index_"),
                "terminal": state.pop("terminal_index_"),
            }
            spec = state.get("spec_") or state.get("spec") or CARD_FRAUD
            state["key_index_"] = {e.name: old[e.name] for e in spec.entities}
        super().__setstate__(state)

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
        self.key_index_ = {e.name: pd.Index([]) for e in self._entities()}
        self.feature_names_out_ = self._feature_names()
        self.history_ = History(
            {e.name: np.empty(0, np.int64) for e in self._entities()},
            np.empty(0, np.int64),
            np.empty(0, np.float64),
            np.empty(0, np.float64),
            {e.name: e.features for e in self._entities()},
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
        # a new dict, not an update in place: a reader may hold the old one (the stream's fold)
        self.key_index_ = {
            name: _extend_index(index, raw.keys[name]) for name, index in self.key_index_.items()
        }
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
        for entity in self._entities():
            if entity.is_velocity:
                columns.update(self._velocity_features(entity, parts, batch))
            else:
                columns.update(self._risk_features(entity, parts, batch))
        return self._matrix(columns, len(raw))

    def _entities(self) -> tuple[Entity, ...]:
        return self.dataset_spec.entities

    def _read_of(self, entity: Entity) -> int:
        """Seconds before a row that the entity's windows read."""
        if entity.is_velocity:
            return max(self.customer_windows_s_)
        return self.label_delay_s_ + max(self.terminal_windows_s_)

    def _longest_read(self) -> int:
        """Seconds before a row that its windows read (0 without entities: no windows)."""
        return max([0, *(self._read_of(e) for e in self._entities())])

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
        return [
            EntityQuery(
                e.name,
                _unique(text_keys(raw.keys[e.name])),
                t0 - self._read_of(e),
                not e.is_velocity,
            )
            for e in self._entities()
        ]

    def features_from_state(self, raw: RawColumns, events: dict[str, EntityEvents]) -> np.ndarray:
        """The feature matrix of ``raw`` against events read from a feature-state store.

        The same window arithmetic as :meth:`features_of`, over the store's events of the
        batch's entities (:meth:`state_queries`) instead of the fitted history. Earlier rows
        of the batch count for later ones' velocity windows; labels come only from the store
        (the label feed), never from the rows being scored.
        """
        self._check_fitted()
        if len(raw) == 0:
            return np.empty((0, len(self.feature_names_out_)), dtype=np.float64)
        entities = self._entities()
        stored = {e.name: events.get(e.name) or EntityEvents.empty() for e in entities}
        keys = {e.name: text_keys(raw.keys[e.name]) for e in entities}
        codes = {name: _local_codes(stored[name].key, keys[name]) for name in stored}
        unknown = np.full(len(raw), np.nan)
        kinds = {e.name: e.features for e in entities}
        batch = History(
            {name: c[1] for name, c in codes.items()}, raw.seconds, raw.amount, unknown, kinds
        )
        # rows at one time never see each other (windows end before ``t``): no batch part
        one_time = int(raw.seconds.min()) == int(raw.seconds.max())
        columns = self._row_features(raw)
        for e in entities:
            ev, hist = stored[e.name], codes[e.name][0]
            if not e.is_velocity:
                columns.update(self._risk_state_features(e, ev, hist, batch))
                continue
            part = History({e.name: hist}, ev.time, ev.amount, ev.label, {e.name: e.features})
            prior = _prior_last(ev.last, keys[e.name], int(raw.seconds.min()))
            parts = (part,) if one_time else (part, batch)
            columns.update(self._velocity_features(e, parts, batch, prior))
        return self._matrix(columns, len(raw))

    def _risk_state_features(
        self, entity: Entity, ev: EntityEvents, codes: np.ndarray, batch: History
    ) -> dict[str, np.ndarray]:
        """Risk statistics from stored labels, each counted only once it had arrived.

        A label that arrived within the label delay of its event is known to every row whose
        window holds the event (the window ends ``d`` before the row). Only "overdue" labels,
        which arrived later than that, need the per-row check ``label_time <= t``.
        """
        d = self.label_delay_s_
        on_time = ev.label_time <= ev.time + d
        part = History(
            {entity.name: codes[on_time]},
            ev.time[on_time],
            ev.amount[on_time],
            ev.label[on_time],
            {entity.name: entity.features},
        )
        out = self._risk_features(entity, (part,), batch)
        if not on_time.all():
            self._add_overdue_labels(entity, out, ev, codes, ~on_time, batch)
        return out

    def _add_overdue_labels(
        self,
        entity: Entity,
        out: dict[str, np.ndarray],
        ev: EntityEvents,
        codes: np.ndarray,
        overdue: np.ndarray,
        batch: History,
    ) -> None:
        """Add overdue labels to the risk counts of the rows that had them (few: a loop)."""
        d, p, batch_codes = self.label_delay_s_, entity.prefix, batch.keys[entity.name]
        o_code, o_time = codes[overdue], ev.time[overdue]
        o_label, o_at = ev.label[overdue], ev.label_time[overdue]
        for row in np.flatnonzero(np.isin(batch_codes, o_code)):
            t = int(batch.time[row])
            mine = (o_code == batch_codes[row]) & (o_at <= t) & (o_time <= t - d)
            for name, w in zip(self.terminal_windows, self.terminal_windows_s_, strict=True):
                inside = mine & (o_time > t - d - w)
                known = out[f"{p}_count_{name}"][row]
                fraud = out[f"{p}_risk_{name}"][row] * known + o_label[inside].sum()
                known += inside.sum()
                out[f"{p}_count_{name}"][row] = known
                out[f"{p}_risk_{name}"][row] = fraud / known if known > 0 else 0.0

    def history_events(self) -> tuple[dict[str, np.ndarray], History]:
        """The fitted history's events with their declared entities' keys as text (to seed a
        store)."""
        self._check_fitted()
        history = self.history_
        keys = {
            name: text_keys(index.to_numpy()[history.keys[name]])
            for name, index in self.key_index_.items()
        }
        return keys, history

    def get_feature_names_out(self, input_features: Sequence[str] | None = None) -> np.ndarray:
        """Names of the output columns (scikit-learn API)."""
        return np.asarray(self.feature_names_out_, dtype=object)

    # ------------------------------------------------------------------ internals
    def _parts(self, times: np.ndarray, batch: History) -> tuple[History, ...]:
        """The event sets a batch at ``times`` reads: history before its first time, and itself.

        A row at time ``t`` only ever reads events strictly before ``t`` (customer windows end
        before ``t``, terminal windows at ``t - label_delay``). So when every row shares the
        first time -- one online transaction -- the batch adds nothing and the whole history
        already is the point-in-time view: the rebuild in :meth:`History.before` (a sort of
        the history) and the batch's own sorted views are skipped.
        """
        t0 = int(times.min())
        if self.label_delay_s_ > 0 and int(times.max()) == t0:
            return (self.history_,)
        history = self.history_ if self.history_.max_time < t0 else self.history_.before(t0)
        return (history, batch)

    def _feature_names(self) -> list[str]:
        spec = self.dataset_spec
        names = ["tx_amount", "log_amount"] if spec.has_amount else []
        if spec.timed:
            names += ["hour", "is_weekend", "is_night"]
        for e in self._entities():
            p = e.prefix
            if e.is_velocity and spec.has_amount:
                for w in self.customer_windows:
                    names += [f"{p}_count_{w}", f"{p}_mean_amount_{w}"]
                names += [f"amount_to_{p}_mean", f"{p}_log_seconds_since_last"]
            elif e.is_velocity:  # no amounts: counts and the time since the last event
                names += [f"{p}_count_{w}" for w in self.customer_windows]
                names += [f"{p}_log_seconds_since_last"]
            else:
                for w in self.terminal_windows:
                    names += [f"{p}_count_{w}", f"{p}_risk_{w}"]
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

    def _events(self, raw: RawColumns) -> History:
        labels = raw.label if raw.label is not None else np.full(len(raw), np.nan)
        return History(
            {name: self._codes(index, raw.keys[name]) for name, index in self.key_index_.items()},
            raw.seconds,
            raw.amount,
            labels,
            self.history_.features,
        )

    def _velocity_features(
        self,
        entity: Entity,
        parts: tuple[History, ...],
        batch: History,
        prior: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        """A velocity entity's window statistics, all windows in one look-up per part.

        ``prior`` is, per row, the time of an earlier event of the key that no part holds
        (older than the windows a store read), or -1.
        """
        t, amount, p = batch.time, batch.amount, entity.prefix
        codes = batch.keys[entity.name]
        windows = np.asarray(self.customer_windows_s_, dtype=np.int64)[:, None]
        count = np.ones((len(windows), len(t)))  # the transaction itself
        total = np.repeat(amount[None, :], len(windows), axis=0)
        for part in parts:
            view = part.view(entity.name)
            start, end = view.window(codes, t - windows, t, hi_inclusive=False)
            count += end - start
            total += view.sums("amount", start, end)
        mean = order_free(total / count)
        out: dict[str, np.ndarray] = {}
        for i, name in enumerate(self.customer_windows):
            out[f"{p}_count_{name}"] = count[i]
            out[f"{p}_mean_amount_{name}"] = mean[i]
        longest = self.customer_windows_s_.index(max(self.customer_windows_s_))  # argmax
        out[f"amount_to_{p}_mean"] = amount / mean[longest]
        last = functools.reduce(
            np.maximum, (part.view(entity.name).last_time_before(codes, t) for part in parts)
        )
        if prior is not None:
            last = np.maximum(last, prior)
        out[f"{p}_log_seconds_since_last"] = np.where(last >= 0, np.log1p(t - last), -1.0)
        return out

    def _risk_features(
        self, entity: Entity, parts: tuple[History, ...], batch: History
    ) -> dict[str, np.ndarray]:
        """A risk entity's delayed statistics: labelled events in ``(t - d - w, t - d]``."""
        t, d, p = batch.time, self.label_delay_s_, entity.prefix
        codes = batch.keys[entity.name]
        windows = np.asarray(self.terminal_windows_s_, dtype=np.int64)[:, None]
        known = np.zeros((len(windows), len(t)))
        fraud = np.zeros_like(known)
        for part in parts:
            view = part.view(entity.name)
            start, end = view.window(codes, t - d - windows, t - d, hi_inclusive=True)
            known += view.sums("known", start, end)
            fraud += view.sums("fraud", start, end)
        risk = np.divide(fraud, known, out=np.zeros_like(fraud), where=known > 0)
        out: dict[str, np.ndarray] = {}
        for i, name in enumerate(self.terminal_windows):
            out[f"{p}_count_{name}"] = known[i]
            out[f"{p}_risk_{name}"] = risk[i]
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


def order_free(values: np.ndarray) -> np.ndarray:
    """``values`` rounded to the nearest multiple of 2**16 ulps, so summation order drops out.

    A window's amount total is a difference of running sums, and a request, a chunk and a
    whole batch start those sums at different events and split the window between store and
    batch differently, so the same mean can differ in its last bits between paths. Amounts
    repeat (a one-event window's mean is an amount), so training puts tree splits exactly on
    such values, and a last-bit difference can send a row down the other branch. Rounded to
    36 mantissa bits (relative precision 1.5e-11) the paths agree unless the true value lies
    within those few ulps of a rounding boundary. Non-finite values are returned as they are.
    """
    values = np.ascontiguousarray(values, dtype=np.float64)
    bits = values.view(np.int64)
    # Adding half a step to the magnitude bits and clearing the low bits rounds half away from
    # zero; a carry into the exponent is the correct next power of two.
    rounded = (bits + np.int64(1 << (_ROUNDED_BITS - 1))) & ~np.int64((1 << _ROUNDED_BITS) - 1)
    return np.where(np.isfinite(values), rounded.view(np.float64), values)


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
    if len(keys) == 1:  # one request's key: no generator, no vectorised select
        time = last.get(keys[0], -1)
        return np.array([time if time < t0 else -1], dtype=np.int64)
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
