"""Processed datasets: raw contract columns joined with their point-in-time features."""

from __future__ import annotations

import pandas as pd

from inferloop.core.dataset import DatasetSpec
from inferloop.data.features import FeatureParams, TransactionFeaturizer, featurize_frame

__all__ = [
    "build_processed",
    "feature_columns",
]


def build_processed(
    validated: pd.DataFrame, params: FeatureParams, spec: DatasetSpec | None = None
) -> tuple[pd.DataFrame, TransactionFeaturizer]:
    """Raw columns plus feature columns for every validated row, and the fitted featurizer.

    Rows are sorted by time (ties keep their input order) so that downstream windows and
    plots read naturally. A numeric feature of the spec is a raw column and a feature at
    once: it appears once (the contract already made it float64).
    """
    ordered = validated.sort_values("timestamp", kind="stable").reset_index(drop=True)
    features, featurizer = featurize_frame(ordered, params, spec)
    own = features.drop(columns=[c for c in features.columns if c in ordered.columns])
    return pd.concat([ordered, own], axis=1), featurizer


def feature_columns(featurizer: TransactionFeaturizer) -> list[str]:
    """The model's input feature names, in order."""
    return list(featurizer.feature_names_out_)
