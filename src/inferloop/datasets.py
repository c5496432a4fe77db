"""Processed datasets: raw contract columns joined with their point-in-time features."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from inferloop.features import FeatureParams, TransactionFeaturizer, featurize_frame
from inferloop.simulate import SimulateParams, simulate_transactions
from inferloop.split import SplitParams, SplitResult, split_by_time


def build_processed(
    validated: pd.DataFrame, params: FeatureParams
) -> tuple[pd.DataFrame, TransactionFeaturizer]:
    """Raw columns plus feature columns for every validated row, and the fitted featurizer.

    Rows are sorted by time (ties keep their input order) so that downstream windows and
    plots read naturally.
    """
    ordered = validated.sort_values("timestamp", kind="stable").reset_index(drop=True)
    features, featurizer = featurize_frame(ordered, params)
    return pd.concat([ordered, features], axis=1), featurizer


def feature_columns(featurizer: TransactionFeaturizer) -> list[str]:
    """The model's input feature names, in order."""
    return list(featurizer.feature_names_out_)


@dataclass
class SimulatedSplits:
    """Everything a test or benchmark needs to train on simulated data in memory."""

    raw: pd.DataFrame
    splits: SplitResult
    featurizer: TransactionFeaturizer

    @property
    def features(self) -> list[str]:
        """Feature column names."""
        return feature_columns(self.featurizer)


def simulated_splits(
    sim: SimulateParams, feat: FeatureParams | None = None, split: SplitParams | None = None
) -> SimulatedSplits:
    """Simulate, featurize and split in memory (tests, benchmarks, notebooks)."""
    raw = simulate_transactions(sim)
    processed, featurizer = build_processed(raw, feat or FeatureParams())
    return SimulatedSplits(raw, split_by_time(processed, split or SplitParams()), featurizer)
