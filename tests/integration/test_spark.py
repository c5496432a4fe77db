"""The Spark engine in local mode: same predictions, quarantine and counts as the local engine."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scoring_support import CHAMPION_URI, Champion

from inferloop.core import schema as s
from inferloop.data.contract import ContractParams
from inferloop.evaluation.reasons import REASON_COLUMNS
from inferloop.scoring.batch import score_files

pytestmark = [pytest.mark.integration, pytest.mark.spark]
pytest.importorskip("pyspark", reason="pyspark is not installed (pip install 'inferloop[spark]')")
if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
    pytest.skip("Java is not installed: Spark needs a JRE 17+", allow_module_level=True)

RUN_DIR = "fraud-detector-v1"


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    from inferloop.scoring.spark import spark_session

    session = spark_session("local[2]", app_name="inferloop-tests")
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def _csv_with_defects(incoming: pd.DataFrame, path: Path) -> None:
    df = incoming.head(1200).astype({s.AMOUNT: object})
    df[s.TIMESTAMP] = df[s.TIMESTAMP].dt.strftime("%Y-%m-%dT%H:%M:%S")
    df.loc[df.index[5], s.AMOUNT] = "abc"
    df.loc[df.index[6], s.CHANNEL] = "fax"
    df.loc[df.index[900], s.TRANSACTION_ID] = df.loc[df.index[7], s.TRANSACTION_ID]
    df.to_csv(path, index=False)


def _sorted(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path).sort_values(s.TRANSACTION_ID, ignore_index=True)


def test_spark_engine_matches_the_local_engine(
    spark: Any, use_champion: Champion, incoming: pd.DataFrame, tmp_path: Path
) -> None:
    from inferloop.scoring.spark import score_with_spark

    _csv_with_defects(incoming, tmp_path / "in.csv")
    contract = ContractParams()
    on_spark = score_with_spark(
        tmp_path / "in.csv",
        tmp_path / "spark",
        model_uri=CHAMPION_URI,
        contract=contract,
        spark=spark,
    )
    local = score_files(
        tmp_path / "in.csv", tmp_path / "local", model_uri=CHAMPION_URI, contract=contract
    )
    expected = {
        "duplicate_transaction_id": 1,
        "non_numeric_amount": 1,
        "unknown_category:channel": 1,
    }
    assert on_spark.totals["by_reason"] == local.totals["by_reason"] == expected
    assert on_spark.totals["rows_in"] == 1200 == on_spark.totals["rows_scored"] + 3

    a, b = _sorted(tmp_path / "spark" / RUN_DIR), _sorted(tmp_path / "local" / RUN_DIR)
    b = b.drop(columns=list(REASON_COLUMNS))  # Spark writes no reason codes (README)
    assert a.dtypes.to_dict() == b.dtypes.to_dict()  # timestamps stay naive UTC through Spark
    assert a[s.TRANSACTION_ID].tolist() == b[s.TRANSACTION_ID].tolist()
    assert (a[s.TIMESTAMP] == b[s.TIMESTAMP]).all()
    # a small input fits one Arrow batch per partition, and each customer one partition
    np.testing.assert_allclose(a[s.SCORE], b[s.SCORE], rtol=0, atol=1e-12)
    assert set(a[s.MODEL_VERSION]) == {"1"} and a[s.SCORED_AT].notna().all()

    rejected = pd.read_parquet(tmp_path / "spark" / "_quarantine" / RUN_DIR)
    assert rejected[s.TRANSACTION_ID].notna().all()  # raw values kept
    assert rejected[s.REJECT_REASON].value_counts().to_dict() == expected


def test_spark_flags_duplicates_across_files_and_is_idempotent(
    spark: Any, use_champion: Champion, incoming: pd.DataFrame, tmp_path: Path
) -> None:
    from inferloop.scoring.spark import score_with_spark

    inbox = tmp_path / "in"
    inbox.mkdir()
    incoming.iloc[:1000].to_parquet(inbox / "a.parquet", index=False)
    incoming.iloc[990:2000].to_parquet(inbox / "b.parquet", index=False)  # 10 ids repeat
    runs = [
        score_with_spark(
            inbox, tmp_path / "out", model_uri=CHAMPION_URI, contract=ContractParams(), spark=spark
        )
        for _ in range(2)
    ]
    for run in runs:
        assert run.totals["rows_in"] == 2010 and run.totals["rows_scored"] == 2000
        assert run.totals["by_reason"] == {"duplicate_transaction_id": 10}
    pred = pd.read_parquet(tmp_path / "out" / RUN_DIR)
    assert len(pred) == 2000 and pred[s.TRANSACTION_ID].is_unique
