"""Shared fixtures: tiny simulated data generated in the test session (never the network)."""

from __future__ import annotations

import os

import pytest

from inferloop.datasets import SimulatedSplits, simulated_splits
from inferloop.features import FeatureParams
from inferloop.simulate import SimulateParams
from inferloop.split import SplitParams

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")

TINY_SIM = SimulateParams(n_customers=300, n_terminals=200, n_days=35, seed=11)
TINY_SPLIT = SplitParams(train_days=14, validation_days=3, test_days=3, gap_days=3)


@pytest.fixture(scope="session")
def tiny_sim() -> SimulateParams:
    """Simulator params small enough for unit tests (~18k transactions)."""
    return TINY_SIM


@pytest.fixture(scope="session")
def tiny_split() -> SplitParams:
    """Short windows matching :func:`tiny_sim`."""
    return TINY_SPLIT


@pytest.fixture(scope="session")
def tiny_splits() -> SimulatedSplits:
    """Simulated, featurized and split tiny data (shared, read-only)."""
    return simulated_splits(TINY_SIM, FeatureParams(label_delay="3D"), TINY_SPLIT)
