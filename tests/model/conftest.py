"""A small trained FraudModel and a throw-away MLflow store for model and registry tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import lightgbm as lgb
import pytest

from inferloop.core import schema as s
from inferloop.data.features import FeatureParams
from inferloop.data.samples import SimulatedSplits, simulated_splits
from inferloop.data.simulate import SimulateParams
from inferloop.data.split import SplitParams
from inferloop.model import FraudModel

MODEL_SIM = SimulateParams(n_customers=1200, n_terminals=800, n_days=42, seed=21)
MODEL_SPLIT = SplitParams(train_days=21, validation_days=4, test_days=4, gap_days=3)


def fit_lightgbm(
    data: SimulatedSplits, n_estimators: int = 150, seed: int = 0
) -> lgb.LGBMClassifier:
    """A quick LightGBM on the train window (no early stopping: tests need speed)."""
    clf = lgb.LGBMClassifier(
        n_estimators=n_estimators,
        learning_rate=0.08,
        num_leaves=15,
        min_child_samples=20,
        verbose=-1,
        seed=seed,
        deterministic=True,
        force_row_wise=True,
        n_jobs=1,
    )
    train = data.splits.train
    return clf.fit(train[data.features], train[s.TARGET])


@pytest.fixture(scope="session")
def model_data() -> SimulatedSplits:
    return simulated_splits(MODEL_SIM, FeatureParams(label_delay="3D"), MODEL_SPLIT)


@pytest.fixture(scope="session")
def fraud_model(model_data: SimulatedSplits) -> FraudModel:
    return FraudModel(model_data.featurizer, fit_lightgbm(model_data), 0.5, "lightgbm")


FAIRNESS_SIM = replace(MODEL_SIM, n_customers=2000, n_terminals=1300, n_days=45)
FAIRNESS_SPLIT = replace(MODEL_SPLIT, test_days=7)


@pytest.fixture(scope="session")
def fair_data() -> SimulatedSplits:
    """Larger windows than ``model_data``: per-group rates need enough frauds per group."""
    return simulated_splits(FAIRNESS_SIM, FeatureParams(label_delay="3D"), FAIRNESS_SPLIT)


@pytest.fixture(scope="session")
def biased_data() -> SimulatedSplits:
    """The same world with the bias scenario on: fraud against 61+ customers is camouflaged.

    At 4 camouflaged frauds per 1,000 customers a day: at 2, the gap it opens is within the
    noise of a model trained on data this small (the fair world's gap ran from 0.2 to 0.4
    between models that differ only in the last bits of their features).
    """
    sim = replace(FAIRNESS_SIM, bias=replace(FAIRNESS_SIM.bias, enabled=True, extra_per_1k=4.0))
    return simulated_splits(sim, FeatureParams(label_delay="3D"), FAIRNESS_SPLIT)


@pytest.fixture()
def mlflow_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh SQLite MLflow store for one test; artifacts under the same temp folder."""
    import mlflow

    monkeypatch.setenv("INFERLOOP_ROOT", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / "params.yaml").write_text("{}\n")
    from inferloop.core.tracking import configure_mlflow

    uri = configure_mlflow(tmp_path)
    yield uri
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)  # type: ignore[arg-type]  # configure_mlflow set both


@pytest.fixture(scope="session")
def fit_lgbm() -> object:
    """The :func:`fit_lightgbm` helper, for tests that train their own model."""
    return fit_lightgbm
