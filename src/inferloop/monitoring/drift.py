"""Fast distribution drift for large batches against a reference profile computed once.

:class:`ReferenceProfile` summarises a reference window (typically the model's validation
data) into a few numbers per column:

* numeric columns: quantile bin edges (``n_bins`` equal-count bins of the reference), the
  reference share of every bin, a grid of reference quantiles and the reference standard
  deviation;
* categorical columns: the reference share of every category (rarest categories beyond
  ``max_categories`` are pooled into ``"<other>"``).

Every column also has a ``"<missing>"`` bin, so a column that starts arriving empty drifts.
The profile is plain data: :meth:`ReferenceProfile.to_dict` / :meth:`ReferenceProfile.from_dict`
round-trip through JSON, so it can be stored next to a registered model.

:meth:`ReferenceProfile.compare` bins a current batch with one ``np.searchsorted`` (numeric)
or one hash look-up (categorical) per column and one ``np.bincount``, and returns per column:

* PSI (population stability index) on those bins, the primary drift statistic:
  ``sum((cur - ref) * ln(cur / ref))`` with both shares floored at ``1e-4``. Rules of thumb:
  < 0.1 stable, 0.1-0.2 moderate, > 0.2 significant shift. The default threshold is 0.1,
  Evidently's default for its own PSI test: a 1.5x rise of every amount (the simulator's
  seasonal scenario) has a PSI of about 0.19, which 0.2 would miss;
* Jensen-Shannon distance (natural log, like Evidently's ``jensenshannon``) on the same bins;
* optionally the Wasserstein-1 distance between the reference and current quantile functions,
  normalised by the reference standard deviation (Evidently's "Wasserstein distance (normed)",
  approximated on ``n_quantiles`` quantiles), numeric columns only.

A column is flagged as drifted when its PSI exceeds its threshold, or when an optional
Jensen-Shannon or Wasserstein threshold is given and exceeded. The score (model output) column
is profiled like any numeric column but reported separately from the feature columns, so score
drift is a check of its own and does not enter the share of drifted columns.

Cost: one pass over each current column, so it stays cheap at millions of rows (measured by
``benchmarks/bench_drift.py``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from itertools import pairwise
from typing import Any, Final, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from inferloop.core.storage import jsonable
from inferloop.monitoring.drift_stats import (
    FloatArray,
    jensen_shannon,
    psi,
    quantile_grid,
    wasserstein_normed,
)

__all__ = [
    "MISSING",
    "OTHER",
    "PROFILE_VERSION",
    "ColumnDrift",
    "ColumnProfile",
    "DriftResult",
    "DriftThresholds",
    "Kind",
    "ReferenceProfile",
    "split_column_kinds",
]


MISSING: Final = "<missing>"
OTHER: Final = "<other>"
PROFILE_VERSION: Final = 1
_COMPARE_MAX_EDGES: Final = 32

Kind = Literal["numeric", "categorical"]


@dataclass(frozen=True)
class ColumnProfile:
    """What the reference looked like for one column.

    Attributes
    ----------
    name : str
        Column name.
    kind : {"numeric", "categorical"}
    expected : tuple of float
        Reference share of each bin. Numeric: ``len(edges) + 1`` value bins, then missing.
        Categorical: one per category, then ``"<other>"``, then missing.
    edges : tuple of float
        Numeric only: inner bin edges; bin ``i`` holds ``edges[i-1] < x <= edges[i]``.
    categories : tuple of str
        Categorical only: the reference categories, most frequent first.
    quantiles : tuple of float
        Numeric only: reference quantiles on the grid of :func:`quantile_grid`.
    scale : float
        Numeric only: reference standard deviation (Wasserstein normaliser); NaN when the
        reference column is empty.
    n : int
        Reference rows.
    """

    name: str
    kind: Kind
    expected: tuple[float, ...]
    edges: tuple[float, ...] = ()
    categories: tuple[str, ...] = ()
    quantiles: tuple[float, ...] = ()
    scale: float = 0.0
    n: int = 0

    @property
    def bin_labels(self) -> list[str]:
        """Human-readable label of every bin, in the order of :attr:`expected`."""
        if self.kind == "categorical":
            return [*self.categories, OTHER, MISSING]
        bounds = ["-inf", *(f"{e:.6g}" for e in self.edges), "inf"]
        return [*(f"({lo}, {hi}]" for lo, hi in pairwise(bounds)), MISSING]

    def counts(self, values: pd.Series) -> NDArray[np.int64]:
        """Number of ``values`` falling into each bin of this profile.

        Parameters
        ----------
        values : pandas.Series
            The current batch's column.

        Returns
        -------
        numpy.ndarray of int
            One count per bin, in the order of :attr:`bin_labels`.
        """
        if self.kind == "numeric":
            codes = _numeric_codes(values, np.asarray(self.edges, dtype=np.float64))
            n_bins = len(self.edges) + 2
        else:
            codes = _categorical_codes(values, self.categories)
            n_bins = len(self.categories) + 2
        return np.bincount(codes, minlength=n_bins).astype(np.int64)


def _as_float(values: pd.Series) -> FloatArray:
    """A numeric column as float64 with missing values as NaN (bool and nullable dtypes too)."""
    if values.dtype == np.float64:
        return values.to_numpy()
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def _bin_index(x: FloatArray, edges: FloatArray) -> NDArray[np.intp]:
    """Number of ``edges`` strictly below each value (``searchsorted(side="left")``).

    With few edges, one vectorised comparison per edge is about 6x faster than the binary
    search of ``np.searchsorted`` (branch-free, cache-friendly); both give the same bins.
    """
    if len(edges) > _COMPARE_MAX_EDGES:
        return np.searchsorted(edges, x, side="left")
    codes = np.zeros(len(x), dtype=np.uint8)
    for edge in edges:
        codes += x > edge
    return codes.astype(np.intp)


def _numeric_codes(values: pd.Series, edges: FloatArray) -> NDArray[np.intp]:
    """Bin index of every value: ``len(edges) + 1`` value bins, then the missing bin."""
    x = _as_float(values)
    codes = _bin_index(x, edges)
    missing = np.isnan(x)
    if missing.any():
        codes[missing] = len(edges) + 1
    return codes


def _sorted_quantiles(sorted_x: FloatArray, probs: FloatArray) -> FloatArray:
    """Quantiles of an ascending sample, ``method="inverted_cdf"`` (observed values only)."""
    positions = np.ceil(probs * len(sorted_x)).astype(np.int64) - 1
    return sorted_x[np.clip(positions, 0, len(sorted_x) - 1)]


def _categorical_codes(values: pd.Series, categories: Sequence[str]) -> NDArray[np.intp]:
    """Index of every value in ``categories``; unknown values -> other, missing -> missing.

    Values are factorised first, so only the distinct values are turned into text and looked
    up: the cost is one hash pass over the column whatever its dtype.
    """
    n_known = len(categories)
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    lookup = pd.Index(categories, dtype=object).get_indexer([str(u) for u in uniques])
    lookup = np.append(np.where(lookup < 0, n_known, lookup), n_known + 1)
    return lookup[codes].astype(np.intp)  # code -1 (missing) picks the appended last entry


def _shares(counts: NDArray[np.int64]) -> FloatArray:
    total = counts.sum()
    return counts / total if total > 0 else np.zeros(len(counts), dtype=np.float64)


def _fit_numeric(name: str, values: pd.Series, n_bins: int, n_quantiles: int) -> ColumnProfile:
    x = _as_float(values)
    present = np.sort(x[~np.isnan(x)])
    if present.size == 0:
        edges: FloatArray = np.empty(0, dtype=np.float64)
        quantiles, scale = np.full(n_quantiles, np.nan), float("nan")
    else:
        # inverted_cdf: edges are observed values, so ties (flags, zero-inflated counts) land
        # in one bin instead of being split by interpolation
        probs = np.arange(1, n_bins, dtype=np.float64) / n_bins
        edges = np.unique(_sorted_quantiles(present, probs))
        quantiles = _sorted_quantiles(present, quantile_grid(n_quantiles))
        scale = float(np.std(present))
    expected = _shares(ColumnProfile(name, "numeric", (), edges=tuple(edges)).counts(values))
    return ColumnProfile(
        name,
        "numeric",
        tuple(map(float, expected)),
        edges=tuple(map(float, edges)),
        quantiles=tuple(map(float, quantiles)),
        scale=scale,
        n=len(values),
    )


def _fit_categorical(name: str, values: pd.Series, max_categories: int) -> ColumnProfile:
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    counts = np.bincount(codes[codes >= 0], minlength=len(uniques))
    by_label = pd.Series(counts, index=[str(u) for u in uniques]).groupby(level=0).sum()
    ranked = by_label.sort_values(ascending=False, kind="stable")
    categories = tuple(str(c) for c in ranked.index[:max_categories])
    expected = _shares(ColumnProfile(name, "categorical", (), categories=categories).counts(values))
    return ColumnProfile(
        name, "categorical", tuple(map(float, expected)), categories=categories, n=len(values)
    )


# --------------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnDrift:
    """Drift statistics of one column.

    Attributes
    ----------
    column : str
    kind : {"numeric", "categorical"}
    psi : float
        Population stability index on the reference bins.
    jensen_shannon : float
        Jensen-Shannon distance on the same bins.
    wasserstein : float
        Normalised Wasserstein distance (numeric columns, when requested), else NaN.
    threshold : float
        PSI threshold applied to this column.
    drifted : bool
        PSI above ``threshold``, or an optional secondary threshold exceeded.
    missing_share : float
        Share of missing values in the current batch.
    """

    column: str
    kind: Kind
    psi: float
    jensen_shannon: float
    wasserstein: float
    threshold: float
    drifted: bool
    missing_share: float


@dataclass(frozen=True)
class DriftResult:
    """Drift of a current batch against a :class:`ReferenceProfile`.

    Attributes
    ----------
    columns : tuple of ColumnDrift
        Feature columns, in profile order.
    score : ColumnDrift or None
        The score column's drift, when the profile has one and the batch holds it.
    n_reference, n_current : int
        Rows behind the profile and in the batch.
    """

    columns: tuple[ColumnDrift, ...]
    score: ColumnDrift | None
    n_reference: int
    n_current: int

    @property
    def drifted_columns(self) -> list[str]:
        """Names of the drifted feature columns."""
        return [c.column for c in self.columns if c.drifted]

    @property
    def n_drifted(self) -> int:
        """Number of drifted feature columns."""
        return len(self.drifted_columns)

    @property
    def drift_share(self) -> float:
        """Share of feature columns that drifted (NaN without feature columns)."""
        return self.n_drifted / len(self.columns) if self.columns else float("nan")

    @property
    def score_psi(self) -> float:
        """PSI of the score column (NaN when it was not compared)."""
        return self.score.psi if self.score is not None else float("nan")

    def table(self) -> pd.DataFrame:
        """One row per column (score last), sorted as profiled.

        Returns
        -------
        pandas.DataFrame
            Columns ``column``, ``kind``, ``psi``, ``jensen_shannon``, ``wasserstein``,
            ``threshold``, ``drifted``, ``missing_share`` and ``role`` (feature or score).
        """
        rows = [{**asdict(c), "role": "feature"} for c in self.columns]
        if self.score is not None:
            rows.append({**asdict(self.score), "role": "score"})
        names = [*(f.name for f in fields(ColumnDrift)), "role"]
        return pd.DataFrame(rows, columns=names)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary (NaN becomes None)."""
        return {
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "drift_share": jsonable(self.drift_share),
            "n_drifted": self.n_drifted,
            "drifted_columns": self.drifted_columns,
            "score_psi": jsonable(self.score_psi),
            "columns": {c.column: jsonable(asdict(c)) for c in self.columns},
            "score": jsonable(asdict(self.score)) if self.score is not None else None,
        }


@dataclass(frozen=True)
class DriftThresholds:
    """When a column counts as drifted.

    Attributes
    ----------
    psi : float, default 0.1
        PSI above this flags the column.
    per_column : mapping of str to float
        PSI thresholds overriding ``psi`` for named columns.
    jensen_shannon : float or None
        If set, a Jensen-Shannon distance above it also flags the column.
    wasserstein : float or None
        If set, a normalised Wasserstein distance above it also flags a numeric column (and
        :meth:`ReferenceProfile.compare` computes it).
    """

    psi: float = 0.1
    per_column: Mapping[str, float] = field(default_factory=dict)
    jensen_shannon: float | None = None
    wasserstein: float | None = None

    def for_column(self, name: str) -> float:
        """PSI threshold of column ``name``."""
        return float(self.per_column.get(name, self.psi))

    def drifted(self, name: str, psi_value: float, js: float, wd: float) -> bool:
        """Whether the statistics of column ``name`` breach any enabled threshold."""
        flags = [psi_value > self.for_column(name)]
        if self.jensen_shannon is not None:
            flags.append(js > self.jensen_shannon)
        if self.wasserstein is not None and not math.isnan(wd):
            flags.append(wd > self.wasserstein)
        return any(flags)


# --------------------------------------------------------------------------------------------
# the profile
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReferenceProfile:
    """Binned summary of a reference window, computed once and compared to many batches.

    Build it with :meth:`fit`; compare batches with :meth:`compare`.

    Attributes
    ----------
    columns : tuple of ColumnProfile
        Feature column profiles.
    score : ColumnProfile or None
        Profile of the model score column, if one was given.
    n_bins : int
        Requested number of equal-count bins for numeric columns.
    n_quantiles : int
        Number of quantiles kept for the Wasserstein distance.
    n_rows : int
        Reference rows.
    """

    columns: tuple[ColumnProfile, ...]
    score: ColumnProfile | None
    n_bins: int
    n_quantiles: int
    n_rows: int

    @classmethod
    def fit(
        cls,
        reference: pd.DataFrame,
        numeric_cols: Sequence[str],
        categorical_cols: Sequence[str] = (),
        n_bins: int = 10,
        *,
        score_col: str | None = None,
        n_quantiles: int = 50,
        max_categories: int = 50,
    ) -> ReferenceProfile:
        """Profile ``reference``.

        Parameters
        ----------
        reference : pandas.DataFrame
            The reference window (e.g. the model's validation data).
        numeric_cols, categorical_cols : sequence of str
            Feature columns to profile.
        n_bins : int, default 10
            Equal-count bins per numeric column (fewer when values repeat).
        score_col : str, optional
            Model score column, profiled as numeric but reported as its own check.
        n_quantiles : int, default 50
            Quantiles kept per numeric column for the Wasserstein distance.
        max_categories : int, default 50
            Categories kept per categorical column; rarer ones are pooled into ``<other>``.

        Returns
        -------
        ReferenceProfile

        Raises
        ------
        ValueError
            If a column is missing, listed twice, ``reference`` is empty or ``n_bins < 2``.
        """
        score = [score_col] if score_col else []
        _check_columns(reference, [*numeric_cols, *categorical_cols, *score])
        if n_bins < 2:
            raise ValueError(f"n_bins must be at least 2, got {n_bins}")
        if reference.empty:
            raise ValueError("cannot profile an empty reference")
        numeric = [_fit_numeric(c, reference[c], n_bins, n_quantiles) for c in numeric_cols]
        categorical = [_fit_categorical(c, reference[c], max_categories) for c in categorical_cols]
        return cls(
            columns=tuple(numeric + categorical),
            score=_fit_numeric(score_col, reference[score_col], n_bins, n_quantiles)
            if score_col
            else None,
            n_bins=n_bins,
            n_quantiles=n_quantiles,
            n_rows=len(reference),
        )

    @property
    def column_names(self) -> list[str]:
        """Profiled feature column names."""
        return [c.name for c in self.columns]

    def compare(
        self, current: pd.DataFrame, thresholds: DriftThresholds | None = None
    ) -> DriftResult:
        """Drift of ``current`` against this profile.

        Parameters
        ----------
        current : pandas.DataFrame
            The batch; must hold every profiled feature column (the score column is optional).
        thresholds : DriftThresholds, optional
            Defaults to PSI > 0.1 only.

        Returns
        -------
        DriftResult

        Raises
        ------
        ValueError
            If a profiled feature column is missing or ``current`` is empty.
        """
        thresholds = thresholds or DriftThresholds()
        _check_columns(current, self.column_names)
        if current.empty:
            raise ValueError("cannot compare an empty batch")
        want_wd = thresholds.wasserstein is not None
        columns = tuple(
            _column_drift(p, current[p.name], thresholds, want_wd, self.n_quantiles)
            for p in self.columns
        )
        score = None
        if self.score is not None and self.score.name in current.columns:
            score = _column_drift(
                self.score, current[self.score.name], thresholds, True, self.n_quantiles
            )
        return DriftResult(columns, score, self.n_rows, len(current))

    # ---------------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready representation (:meth:`from_dict` restores it exactly)."""
        return {
            "version": PROFILE_VERSION,
            "n_bins": self.n_bins,
            "n_quantiles": self.n_quantiles,
            "n_rows": self.n_rows,
            "columns": [_profile_to_dict(c) for c in self.columns],
            "score": _profile_to_dict(self.score) if self.score is not None else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReferenceProfile:
        """Rebuild a profile from :meth:`to_dict` output (e.g. read back from JSON).

        Raises
        ------
        ValueError
            On an unknown profile version.
        """
        if data.get("version") != PROFILE_VERSION:
            raise ValueError(f"unsupported drift profile version: {data.get('version')!r}")
        score = data.get("score")
        return cls(
            columns=tuple(_profile_from_dict(c) for c in data["columns"]),
            score=_profile_from_dict(score) if score else None,
            n_bins=int(data["n_bins"]),
            n_quantiles=int(data["n_quantiles"]),
            n_rows=int(data["n_rows"]),
        )


def _check_columns(frame: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"columns missing from the data: {missing}")
    duplicated = sorted({c for c in columns if list(columns).count(c) > 1})
    if duplicated:
        raise ValueError(f"columns listed more than once: {duplicated}")


def _column_drift(
    profile: ColumnProfile,
    values: pd.Series,
    thresholds: DriftThresholds,
    want_wasserstein: bool,
    n_quantiles: int,
) -> ColumnDrift:
    counts = profile.counts(values)
    actual = _shares(counts)
    expected = np.asarray(profile.expected, dtype=np.float64)
    psi_value = psi(expected, actual)
    js = jensen_shannon(expected, actual)
    wd = float("nan")
    if want_wasserstein and profile.kind == "numeric":
        wd = _wasserstein(profile, values, n_quantiles)
    return ColumnDrift(
        column=profile.name,
        kind=profile.kind,
        psi=psi_value,
        jensen_shannon=js,
        wasserstein=wd,
        threshold=thresholds.for_column(profile.name),
        drifted=thresholds.drifted(profile.name, psi_value, js, wd),
        missing_share=float(counts[-1] / counts.sum()) if counts.sum() else float("nan"),
    )


def _wasserstein(profile: ColumnProfile, values: pd.Series, n_quantiles: int) -> float:
    x = _as_float(values)
    present = np.sort(x[~np.isnan(x)])
    if present.size == 0 or not profile.quantiles:
        return float("nan")
    current = _sorted_quantiles(present, quantile_grid(n_quantiles))
    return wasserstein_normed(np.asarray(profile.quantiles), current, profile.scale)


def _profile_to_dict(profile: ColumnProfile) -> dict[str, Any]:
    out = asdict(profile)
    out["scale"] = jsonable(profile.scale)
    out["quantiles"] = [jsonable(q) for q in profile.quantiles]
    return out


def _profile_from_dict(data: Mapping[str, Any]) -> ColumnProfile:
    def floats(values: Sequence[float | None]) -> tuple[float, ...]:
        return tuple(float("nan") if v is None else float(v) for v in values)

    scale = data.get("scale")
    return ColumnProfile(
        name=str(data["name"]),
        kind=data["kind"],
        expected=floats(data["expected"]),
        edges=floats(data.get("edges", ())),
        categories=tuple(str(c) for c in data.get("categories", ())),
        quantiles=floats(data.get("quantiles", ())),
        scale=float("nan") if scale is None else float(scale),
        n=int(data.get("n", 0)),
    )


def split_column_kinds(frame: pd.DataFrame, columns: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split ``columns`` into numeric and categorical by dtype (bool counts as categorical).

    Parameters
    ----------
    frame : pandas.DataFrame
    columns : sequence of str

    Returns
    -------
    tuple of (list of str, list of str)
        Numeric and categorical column names, each in the given order.
    """
    numeric = [
        c
        for c in columns
        if pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
    ]
    return numeric, [c for c in columns if c not in numeric]
