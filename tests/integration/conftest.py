"""Shared fixtures of the scoring tests: a registered champion in a throw-away MLflow store."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pandas as pd
import pytest
from scoring_support import MODEL_NAME, PARAMS_YAML, Champion, fit_model, incoming_days

from inferloop.model_logging import input_example, log_fraud_model


@pytest.fixture(scope="session")
def champion(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Champion]:
    """Train, log and register a small model as ``fraud-detector@champion`` in a temp store."""
    import mlflow

    from inferloop.core.registry import promote, register_version
    from inferloop.core.tracking import configure_mlflow, ensure_experiment

    root = tmp_path_factory.mktemp("store")
    (root / "dvc.yaml").write_text("stages: {}\n")
    params_path = root / "params.yaml"
    params_path.write_text(PARAMS_YAML)
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"
    try:
        uri = configure_mlflow(root)
        model = fit_model()
        experiment_id = ensure_experiment("scoring-tests", root)
        with mlflow.start_run(experiment_id=experiment_id):
            info = log_fraud_model(model, input_example(incoming_days(0, 1)))
        version = register_version(info.model_uri, MODEL_NAME, {"gates_passed": "true"})
        promote(MODEL_NAME, version)
    finally:
        _restore_env("MLFLOW_TRACKING_URI", previous)
    yield Champion(root, uri, version, params_path)
    mlflow.set_tracking_uri(None)


def _restore_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


@pytest.fixture()
def use_champion(champion: Champion, monkeypatch: pytest.MonkeyPatch) -> Champion:
    """Point this process's MLflow client at the champion's store for one test."""
    from inferloop.core.tracking import configure_mlflow

    monkeypatch.setenv("INFERLOOP_ROOT", str(champion.root))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", champion.tracking_uri)
    configure_mlflow(champion.root)
    return champion


@pytest.fixture(scope="session")
def incoming() -> pd.DataFrame:
    """Two days of incoming transactions (about 3,000 rows)."""
    return incoming_days(0, 2)
