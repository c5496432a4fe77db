"""Point-in-time transaction features, identical in batch and for one incoming transaction.

:class:`TransactionFeaturizer` is a scikit-learn transformer whose fitted state is the recent
event history (customer, terminal, time, amount, label). Features of a transaction at time
``t`` use only:

* the customer's transactions strictly before ``t`` (plus the transaction itself) inside
  each customer window — count, mean amount, time since the previous one;
* the terminal's transactions whose labels are known at ``t``: those at or before
  ``t - label_delay`` — count and fraud rate inside each terminal window;
* the transaction's own fields — amount, time of day, weekend, night, channel, category.

Window statistics are sums over events, so they are computed separately over the fitted
history and over the batch being transformed and added up. Each part is a pair of
``searchsorted`` look-ups on arrays sorted by ``(entity, time)`` — vectorised for a batch,
microseconds for a single row — which is why batch and online features agree exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from inferloop import schema as s

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


def _epoch_seconds(ts: pd.Series | pd.DatetimeIndex) -> np.ndarray:
    values = pd.to_datetime(ts).to_numpy(dtype="datetime64[s]")
    return values.astype(np.int64)


@dataclass
class _SortedEvents:
    """Events of one entity type sorted by ``(code, time)`` with prefix sums of their values."""

    comp: np.ndarray  # code << _TIME_BITS | time
    time: np.ndarray
    cums: dict[str, np.ndarray]  # name -> prefix sums, length n + 1

    @staticmethod
    def build(codes: np.ndarray, times: np.ndarray, values: dict[str, np.ndarray]) -> _SortedEvents:
        comp = (codes.astype(np.int64) << _TIME_BITS) | times
        order = np.argsort(comp, kind="stable")
        cums = {
            k: np.concatenate([[0.0], np.cumsum(v[order], dtype=np.float64)])
            for k, v in values.items()
        }
        return _SortedEvents(comp[order], times[order], cums)

    def window(
        self, codes: np.ndarray, lo: np.ndarray, hi: np.ndarray, *, hi_inclusive: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """Positions bounding events with ``lo < time < hi`` (or ``<= hi``) per query."""
        key = codes.astype(np.int64) << _TIME_BITS
        start = np.searchsorted(self.comp, key | np.maximum(lo, 0), side="right")
        end = np.searchsorted(
            self.comp, key | np.maximum(hi, 0), side="right" if hi_inclusive else "left"
        )
        return start, np.maximum(end, start)

    def sums(self, name: str, start: np.ndarray, end: np.ndarray) -> np.ndarray:
        cum = self.cums[name]
        return cum[end] - cum[start]

    def last_time_before(self, codes: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Time of the entity's latest event strictly before ``t`` (``-1`` if none)."""
        if len(self.comp) == 0:
            return np.full(len(codes), -1, dtype=np.int64)
        key = codes.astype(np.int64) << _TIME_BITS
        pos = np.searchsorted(self.comp, key | t, side="left") - 1
        ok = (pos >= 0) & ((self.comp[np.maximum(pos, 0)] >> _TIME_BITS) == codes)
        return np.where(ok, self.time[np.maximum(pos, 0)], -1)


_EVENT_FIELDS = ("customer", "terminal", "time", "amount", "label")


class _History:
    """The fitted event history: raw event arrays plus the two sorted views."""

    def __init__(
        self,
        customer: np.ndarray,
        terminal: np.ndarray,
        time: np.ndarray,
        amount: np.ndarray,
        label: np.ndarray,
    ):
        self.customer, self.terminal, self.time, self.amount, self.label = (
            customer,
            terminal,
            time,
            amount,
            label,
        )
        known = ~np.isnan(label)
        self.by_customer = _SortedEvents.build(
            customer, time, {"amount": amount, "one": np.ones_like(amount)}
        )
        self.by_terminal = _SortedEvents.build(
            terminal,
            time,
            {"known": known.astype(np.float64), "fraud": np.where(known, label, 0.0)},
        )

    def __getstate__(self) -> dict[str, np.ndarray]:
        # Pickle only the raw events; the sorted views are rebuilt on load (half the size).
        return {f: getattr(self, f) for f in _EVENT_FIELDS}

    def __setstate__(self, state: dict[str, np.ndarray]) -> None:
        self.__init__(*(state[f] for f in _EVENT_FIELDS))  # type: ignore[misc]

    @property
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
    """

    def __init__(
        self,
        customer_windows: Sequence[str] = ("1h", "1D", "7D", "30D"),
        terminal_windows: Sequence[str] = ("1D", "7D", "30D"),
        label_delay: str = "7D",
        night_hours: tuple[int, int] = (0, 6),
        extra_history: str = "14D",
    ) -> None:
        self.customer_windows = customer_windows
        self.terminal_windows = terminal_windows
        self.label_delay = label_delay
        self.night_hours = night_hours
        self.extra_history = extra_history

    @classmethod
    def from_params(cls, params: FeatureParams) -> TransactionFeaturizer:
        """Build from the ``featurize`` params section."""
        return cls(
            params.customer_windows,
            params.terminal_windows,
            params.label_delay,
            params.night_hours,
            params.extra_history,
        )

    # ------------------------------------------------------------------ fitting / state
    def fit(self, X: pd.DataFrame, y: pd.Series | None = None) -> TransactionFeaturizer:
        """Remember ``X`` (and its labels, from ``y`` or the ``is_fraud`` column) as history."""
        self._check_input(X)
        self.customer_windows_s_ = [_seconds(w) for w in self.customer_windows]
        self.terminal_windows_s_ = [_seconds(w) for w in self.terminal_windows]
        self.label_delay_s_ = _seconds(self.label_delay)
        longest = max([*self.customer_windows_s_, self.label_delay_s_ + max(self.terminal_windows_s_)])
        self.horizon_s_ = longest + _seconds(self.extra_history)
        self.customer_index_ = pd.Index([])
        self.terminal_index_ = pd.Index([])
        self.feature_names_out_ = self._feature_names()
        self.history_ = _History(
            *(np.empty(0, dt) for dt in (np.int64, np.int64, np.int64, np.float64, np.float64))
        )
        return self.update(X, y)

    def update(self, X: pd.DataFrame, y: pd.Series | None = None) -> TransactionFeaturizer:
        """Append transactions to the history (online use: call after scoring each batch)."""
        self._check_input(X)
        self.customer_index_ = _extend_index(self.customer_index_, X[s.CUSTOMER_ID])
        self.terminal_index_ = _extend_index(self.terminal_index_, X[s.TERMINAL_ID])
        new = self._events(X, y)
        self.history_ = self.history_.appended(new, self.horizon_s_)
        return self

    # ------------------------------------------------------------------ transform
    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """Features for each row of ``X``, in ``X``'s order and index.

        Uses the fitted history before the batch's first timestamp plus the batch itself
        (earlier rows of the batch count as history for later ones). Labels in ``X`` are used
        only when the label delay has passed, exactly as they would be online.
        """
        self._check_input(X)
        if not hasattr(self, "history_"):
            raise RuntimeError("TransactionFeaturizer is not fitted: call fit() first")
        if len(X) == 0:
            return pd.DataFrame(columns=self.feature_names_out_, index=X.index, dtype=np.float64)
        batch = self._events(X, None)
        t0 = int(batch.time.min())
        history = self.history_ if self.history_.max_time < t0 else self.history_.before(t0)
        columns = self._window_features(history, batch)
        columns.update(self._row_features(X))
        frame = pd.DataFrame(columns, index=X.index)
        return frame[self.feature_names_out_]

    def get_feature_names_out(self, input_features: Sequence[str] | None = None) -> np.ndarray:
        """Names of the output columns (scikit-learn API)."""
        return np.asarray(self.feature_names_out_, dtype=object)

    # ------------------------------------------------------------------ internals
    def _feature_names(self) -> list[str]:
        names = ["tx_amount", "log_amount", "hour", "is_weekend", "is_night"]
        for w in self.customer_windows:
            names += [f"cust_count_{w}", f"cust_mean_amount_{w}"]
        names += ["amount_to_cust_mean", "cust_log_seconds_since_last"]
        for w in self.terminal_windows:
            names += [f"term_count_{w}", f"term_risk_{w}"]
        names += [f"channel_{c}" for c in s.CHANNELS]
        names += [f"category_{c}" for c in s.MERCHANT_CATEGORIES]
        return names

    @staticmethod
    def _check_input(X: pd.DataFrame) -> None:
        if not isinstance(X, pd.DataFrame):
            raise TypeError(
                f"TransactionFeaturizer expects a pandas DataFrame, got {type(X).__name__}"
            )
        need = (s.TIMESTAMP, s.CUSTOMER_ID, s.TERMINAL_ID, s.AMOUNT, s.CHANNEL, s.MERCHANT_CATEGORY)
        missing = [c for c in need if c not in X.columns]
        if missing:
            raise ValueError(f"missing columns for featurization: {missing}")

    def _codes(self, index: pd.Index, keys: pd.Series) -> np.ndarray:
        """Integer codes of ``keys``; unseen keys get fresh codes after the known ones."""
        codes = index.get_indexer(keys.to_numpy())
        unseen = codes < 0
        if unseen.any():
            fresh, _ = pd.factorize(keys.to_numpy()[unseen])
            codes[unseen] = len(index) + fresh
        return codes.astype(np.int64)

    def _events(self, X: pd.DataFrame, y: pd.Series | None) -> _History:
        labels = np.full(len(X), np.nan)
        if y is not None:
            labels = pd.to_numeric(pd.Series(np.asarray(y)), errors="coerce").to_numpy(
                dtype=np.float64
            )
        elif s.TARGET in X:
            labels = pd.to_numeric(X[s.TARGET], errors="coerce").to_numpy(dtype=np.float64)
        return _History(
            self._codes(self.customer_index_, X[s.CUSTOMER_ID]),
            self._codes(self.terminal_index_, X[s.TERMINAL_ID]),
            _epoch_seconds(X[s.TIMESTAMP]),
            X[s.AMOUNT].to_numpy(dtype=np.float64),
            labels,
        )

    def _window_features(self, history: _History, batch: _History) -> dict[str, np.ndarray]:
        t, amount = batch.time, batch.amount
        out: dict[str, np.ndarray] = {}
        parts = (history, batch)
        for name, w in zip(self.customer_windows, self.customer_windows_s_, strict=True):
            count = np.ones_like(amount)  # the transaction itself
            total = amount.copy()
            for part in parts:
                start, end = part.by_customer.window(batch.customer, t - w, t, hi_inclusive=False)
                count += end - start
                total += part.by_customer.sums("amount", start, end)
            out[f"cust_count_{name}"] = count
            out[f"cust_mean_amount_{name}"] = total / count
        longest = self.customer_windows[int(np.argmax(self.customer_windows_s_))]
        out["amount_to_cust_mean"] = amount / out[f"cust_mean_amount_{longest}"]
        last = np.maximum(*(p.by_customer.last_time_before(batch.customer, t) for p in parts))
        out["cust_log_seconds_since_last"] = np.where(last >= 0, np.log1p(t - last), -1.0)
        d = self.label_delay_s_
        for name, w in zip(self.terminal_windows, self.terminal_windows_s_, strict=True):
            known = np.zeros_like(amount)
            fraud = np.zeros_like(amount)
            for part in parts:
                start, end = part.by_terminal.window(
                    batch.terminal, t - d - w, t - d, hi_inclusive=True
                )
                known += part.by_terminal.sums("known", start, end)
                fraud += part.by_terminal.sums("fraud", start, end)
            out[f"term_count_{name}"] = known
            out[f"term_risk_{name}"] = np.divide(
                fraud, known, out=np.zeros_like(fraud), where=known > 0
            )
        return out

    def _row_features(self, X: pd.DataFrame) -> dict[str, np.ndarray]:
        ts = pd.DatetimeIndex(pd.to_datetime(X[s.TIMESTAMP]))
        amount = X[s.AMOUNT].to_numpy(dtype=np.float64)
        hour = ts.hour.to_numpy()
        start, end = self.night_hours
        out = {
            "tx_amount": amount,
            "log_amount": np.log1p(np.maximum(amount, 0.0)),
            "hour": hour.astype(np.float64),
            "is_weekend": (ts.dayofweek.to_numpy() >= 5).astype(np.float64),
            "is_night": ((hour >= start) & (hour < end)).astype(np.float64),
        }
        channel = X[s.CHANNEL].astype(str).to_numpy()
        category = X[s.MERCHANT_CATEGORY].astype(str).to_numpy()
        out.update({f"channel_{c}": (channel == c).astype(np.float64) for c in s.CHANNELS})
        out.update(
            {f"category_{c}": (category == c).astype(np.float64) for c in s.MERCHANT_CATEGORIES}
        )
        return out


def _extend_index(index: pd.Index, keys: pd.Series) -> pd.Index:
    """``index`` plus the keys it has not seen, in first-seen order (codes stay stable)."""
    uniques = pd.unique(keys.to_numpy())
    if len(index) == 0:
        return pd.Index(uniques)
    unseen = uniques[index.get_indexer(uniques) < 0]
    return index.append(pd.Index(unseen)) if len(unseen) else index


def featurize_frame(
    df: pd.DataFrame, params: FeatureParams
) -> tuple[pd.DataFrame, TransactionFeaturizer]:
    """Point-in-time features for a whole history, and a featurizer fitted on it.

    The features of every row are computed as the online path would have computed them at
    that row's time; the returned featurizer holds the history for scoring later data.
    """
    featurizer = TransactionFeaturizer.from_params(params)
    empty = df.iloc[:0]
    featurizer.fit(empty)
    features = featurizer.transform(df)
    featurizer.update(df)
    return features, featurizer
