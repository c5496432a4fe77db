"""Simulated, featurized and split data in memory, for tests, benchmarks and quick experiments.

Not used by any stage: the stages read and write files through :mod:`inferloop.data.stage`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from inferloop.data.features import FeatureParams, TransactionFeaturizer
from inferloop.data.processed import build_processed, feature_columns
from inferloop.data.simulate import SimulateParams, simulate_transactions
from inferloop.data.split import SplitParams, SplitResult, split_by_time

__all__ = [
    "SimulatedSplits",
    "simulated_splits",
]


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
