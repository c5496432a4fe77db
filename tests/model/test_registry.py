"""Registry on a temporary SQLite store: register, alias, promote, refuse, roll back."""

from __future__ import annotations

import pandas as pd
import pytest

from inferloop.core import schema as s
from inferloop.core.registry import (
    CHALLENGER,
    CHAMPION,
    FULL_MODEL,
    TAG_FAILED_GATES,
    TAG_GATES_PASSED,
    RegistryError,
    alias_version,
    promote,
    register_version,
    resolve,
    rollback,
)
from inferloop.data.samples import SimulatedSplits
from inferloop.model import FraudModel
from inferloop.model_logging import input_example, log_fraud_model


def _register(model: FraudModel, rows: pd.DataFrame, passed: bool) -> str:
    import mlflow

    with mlflow.start_run():
        info = log_fraud_model(model, input_example(rows))
    tags = {
        TAG_GATES_PASSED: str(passed).lower(),
        TAG_FAILED_GATES: "none" if passed else "min_average_precision",
    }
    return register_version(info.model_uri, FULL_MODEL, tags)


@pytest.mark.usefixtures("mlflow_store")
def test_register_promote_refuse_force_and_rollback(
    fraud_model: FraudModel, model_data: SimulatedSplits
) -> None:
    rows = model_data.splits.test[list(s.SCORING_COLUMNS)].head(5)
    v1 = _register(fraud_model, rows, passed=True)
    assert (
        alias_version(FULL_MODEL, CHALLENGER) == v1 and alias_version(FULL_MODEL, CHAMPION) is None
    )
    assert promote(FULL_MODEL, v1).previous is None
    assert alias_version(FULL_MODEL, CHAMPION) == v1

    v2 = _register(fraud_model, rows, passed=False)
    assert alias_version(FULL_MODEL, CHALLENGER) == v2
    with pytest.raises(RegistryError, match=r"gates failed.*min_average_precision"):
        promote(FULL_MODEL, v2)
    assert alias_version(FULL_MODEL, CHAMPION) == v1  # refused: champion unchanged

    move = promote(FULL_MODEL, v2, force=True)
    assert (move.version, move.previous, move.forced) == (v2, v1, True)
    assert resolve(f"models:/{FULL_MODEL}@{CHAMPION}") == (FULL_MODEL, v2)

    back = rollback(FULL_MODEL)
    assert (back.version, back.previous) == (v1, v2)
    assert alias_version(FULL_MODEL, CHAMPION) == v1
    with pytest.raises(RegistryError, match="no previous champion"):
        rollback(FULL_MODEL)


@pytest.mark.usefixtures("mlflow_store")
def test_unknown_version_and_missing_alias_are_clear_errors() -> None:
    with pytest.raises(RegistryError, match="no version 7"):
        promote(FULL_MODEL, "7")
    with pytest.raises(RegistryError, match="does not exist"):
        resolve(f"models:/{FULL_MODEL}@{CHAMPION}")
    with pytest.raises(RegistryError, match="no champion"):
        rollback(FULL_MODEL)


@pytest.mark.usefixtures("mlflow_store")
def test_champion_loads_by_alias(fraud_model: FraudModel, model_data: SimulatedSplits) -> None:
    import mlflow

    rows = model_data.splits.test[list(s.SCORING_COLUMNS)].head(20)
    promote(FULL_MODEL, _register(fraud_model, rows, passed=True))
    out = mlflow.pyfunc.load_model(f"models:/{FULL_MODEL}@{CHAMPION}").predict(rows)
    pd.testing.assert_series_equal(
        out[s.SCORE], fraud_model.score_frame(rows)[s.SCORE], check_names=False
    )


@pytest.mark.usefixtures("mlflow_store")
def test_the_production_world_starts_from_a_copy_and_never_from_a_model_that_saw_it(
    fraud_model: FraudModel, model_data: SimulatedSplits
) -> None:
    from mlflow import MlflowClient

    from inferloop.core.registry import TAG_TRAINED_THROUGH, version_tags
    from inferloop.loop.production import start_champion

    rows = model_data.splits.test[list(s.SCORING_COLUMNS)].head(5)
    v1 = _register(fraud_model, rows, passed=True)
    MlflowClient().set_model_version_tag(FULL_MODEL, v1, TAG_TRAINED_THROUGH, "2026-03-29")
    promote(FULL_MODEL, v1)
    copy = start_champion("world", pd.Timestamp("2026-03-30"))
    assert alias_version("world", CHAMPION) == copy
    tags = version_tags("world", copy)
    assert tags["copied_from"] == f"{FULL_MODEL}/{v1}" and tags[TAG_TRAINED_THROUGH] == "2026-03-29"
    assert alias_version(FULL_MODEL, CHAMPION) == v1  # the main champion is untouched
    with pytest.raises(
        RuntimeError, match=r"trained on data up to 2026-03-29.*starts on 2026-03-29"
    ):
        start_champion("world", pd.Timestamp("2026-03-29 06:00"))
