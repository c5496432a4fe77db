"""Categorical features: which categories the featurizer encodes, and their indicator columns.

A category list comes from the dataset spec (:mod:`inferloop.core.dataset`) or, for a column
declared with ``[]``, from the training data: its most frequent values, ordered by frequency
(ties by value), so the same data always gives the same feature columns. Each category is one
0/1 column; a value outside the list encodes as all zeros (the ``other`` bucket).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from inferloop.core import schema as s
from inferloop.core.dataset import DatasetSpec

__all__ = ["indicator_name", "indicator_names", "indicators", "learn_categories"]

#: Indicator-column prefixes that keep the card-fraud features' historical names.
_INDICATOR_PREFIX = {s.MERCHANT_CATEGORY: "category"}


def indicator_name(column: str, value: str) -> str:
    """The feature column of one category, e.g. ``channel_online`` or ``type_TRANSFER``."""
    return f"{_INDICATOR_PREFIX.get(column, column)}_{value}"


def indicator_names(categories: Mapping[str, Sequence[str]]) -> list[str]:
    """The indicator columns of every categorical feature, in declared order."""
    return [indicator_name(column, v) for column, values in categories.items() for v in values]


def indicators(
    values: Mapping[str, np.ndarray], categories: Mapping[str, Sequence[str]]
) -> dict[str, np.ndarray]:
    """One float64 0/1 column per category of each column in ``categories``."""
    return {
        indicator_name(column, v): (values[column] == v).astype(np.float64)
        for column, names in categories.items()
        for v in names
    }


def learn_categories(X: pd.DataFrame, spec: DatasetSpec) -> dict[str, tuple[str, ...]]:
    """Each categorical feature's categories: declared, else the most frequent ones in ``X``."""
    out: dict[str, tuple[str, ...]] = {}
    for column, declared in spec.categorical_features.items():
        if declared:
            out[column] = tuple(declared)
            continue
        counts = X[column].dropna().astype(str).value_counts()
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        out[column] = tuple(v for v, _ in ranked[: spec.max_learned_categories])
    return out
