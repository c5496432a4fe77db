"""Unit tests of reading and mapping a user's own transaction files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from inferloop.core import schema
from inferloop.core.config import load_section
from inferloop.data.contract import ContractParams, validate_transactions
from inferloop.data.ingest import (
    DataSourceParams,
    IngestError,
    apply_column_map,
    load_source,
    read_table,
)

REPO = Path(__file__).resolve().parents[2]

# A user's column names for the contract columns.
USER_MAP = {
    "txn": schema.TRANSACTION_ID,
    "when": schema.TIMESTAMP,
    "card": schema.CUSTOMER_ID,
    "pos": schema.TERMINAL_ID,
    "value": schema.AMOUNT,
    "chan": schema.CHANNEL,
    "mcc": schema.MERCHANT_CATEGORY,
    "age": schema.AGE_BAND,
    "area": schema.REGION,
    "fraud": schema.TARGET,
}


def make_user_rows(n: int = 20) -> pd.DataFrame:
    """``n`` valid rows under the user's own column names, plus one extra column."""
    i = np.arange(n)
    return pd.DataFrame(
        {
            "txn": i + 1,
            "when": pd.date_range("2026-02-01", periods=n, freq="30min").strftime(
                "%Y-%m-%d %H:%M:%S"
            ),
            "card": [f"{k % 6:05d}" for k in i],  # leading zeros must survive a CSV
            "pos": i % 4,
            "value": np.round(np.linspace(2.0, 90.0, n), 2).astype(object),
            "chan": [schema.CHANNELS[k % 3] for k in i],
            "mcc": [schema.MERCHANT_CATEGORIES[k % 8] for k in i],
            "age": [schema.AGE_BANDS[k % 4] for k in i],
            "area": [schema.REGIONS[k % 4] for k in i],
            "fraud": (i % 5 == 0).astype(int),
            "comment": [f"c{k}" for k in i],
        }
    )


@pytest.fixture
def user_rows() -> pd.DataFrame:
    return make_user_rows()


def test_params_match_params_yaml() -> None:
    loaded = load_section(DataSourceParams, "data", REPO / "params.yaml")
    assert loaded == DataSourceParams()


def test_csv_round_trip_with_bad_values(user_rows: pd.DataFrame, tmp_path: Path) -> None:
    df = user_rows.copy()
    df.loc[2, "value"] = "abc"
    df.loc[5, "when"] = "not a date"
    df.loc[7, "value"] = -3
    df.loc[9, "chan"] = "fax"
    df.loc[11, "card"] = None
    df.loc[13, "txn"] = 1
    path = tmp_path / "mine.csv"
    df.to_csv(path, index=False)

    params = DataSourceParams(source="file", path=str(path), column_map=USER_MAP)
    result = validate_transactions(load_source(params), ContractParams())

    s = result.summary
    assert s["rows_in"] == len(df) == s["rows_valid"] + s["rows_quarantined"]
    assert s["by_reason"] == {
        "non_numeric_amount": 1,
        "unparseable_timestamp": 1,
        "non_positive_amount": 1,
        "unknown_category:channel": 1,
        "null_key:customer_id": 1,
        "duplicate_transaction_id": 1,
    }
    q = result.quarantine.set_index("comment")
    assert q.loc["c2", schema.AMOUNT] == "abc"  # raw values are preserved
    assert q.loc["c5", schema.TIMESTAMP] == "not a date"
    assert sorted([*result.valid["comment"], *q.index]) == sorted(df["comment"])
    assert result.valid[schema.CUSTOMER_ID].iloc[0] == "00000"


def test_csv_gz_and_parquet_read_the_same(user_rows: pd.DataFrame, tmp_path: Path) -> None:
    user_rows.to_csv(tmp_path / "a.csv.gz", index=False)
    user_rows.to_parquet(tmp_path / "a.parquet", index=False)
    user_rows.to_parquet(tmp_path / "a.pq", index=False)
    from_csv = read_table(tmp_path / "a.csv.gz")
    assert len(from_csv) == len(user_rows)
    assert from_csv["comment"].tolist() == user_rows["comment"].tolist()
    pd.testing.assert_frame_equal(read_table(tmp_path / "a.parquet"), read_table(tmp_path / "a.pq"))


def test_folder_of_parquet_files(user_rows: pd.DataFrame, tmp_path: Path) -> None:
    folder = tmp_path / "parts"
    folder.mkdir()
    user_rows.iloc[:8].to_parquet(folder / "part-0.parquet", index=False)
    user_rows.iloc[8:].to_parquet(folder / "part-1.parquet", index=False)
    assert sorted(read_table(folder)["comment"]) == sorted(user_rows["comment"])


def test_folder_without_parquet_raises(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(IngestError, match="no Parquet"):
        read_table(tmp_path)


def test_text_columns_keep_leading_zeros(user_rows: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "ids.csv"
    user_rows.to_csv(path, index=False)
    assert read_table(path)["card"].iloc[1] == 1  # pandas default loses the zeros
    assert read_table(path, text_columns=["card", "absent"])["card"].iloc[1] == "00001"


@pytest.mark.parametrize("name", ["data.xlsx", "data.json", "data.txt", "data"])
def test_unsupported_file_type_raises(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text("a,b\n1,2\n")
    with pytest.raises(IngestError, match="unsupported file type") as excinfo:
        read_table(path)
    assert name in str(excinfo.value) and ".parquet" in str(excinfo.value)


def test_garbage_parquet_raises(tmp_path: Path) -> None:
    path = tmp_path / "fake.parquet"
    path.write_bytes(b"this is not parquet at all" * 10)
    with pytest.raises(IngestError, match="not a valid Parquet file"):
        read_table(path)


@pytest.mark.parametrize("name", ["empty.csv", "empty.parquet"])
def test_zero_byte_file_raises(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.touch()
    with pytest.raises(IngestError, match="empty"):
        read_table(path)


def test_header_only_csv_raises(tmp_path: Path) -> None:
    path = tmp_path / "header.csv"
    path.write_text("txn,when,card\n")
    with pytest.raises(IngestError, match="empty"):
        read_table(path)


def test_empty_parquet_raises(user_rows: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "none.parquet"
    user_rows.iloc[0:0].to_parquet(path)
    with pytest.raises(IngestError, match="empty"):
        read_table(path)


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="not found"):
        read_table(tmp_path / "nope.csv")


def test_column_map_renames(user_rows: pd.DataFrame) -> None:
    mapped = apply_column_map(user_rows, USER_MAP)
    assert list(mapped.columns) == [*USER_MAP.values(), "comment"]
    assert mapped[schema.AMOUNT].tolist() == user_rows["value"].tolist()
    assert user_rows.columns[0] == "txn"  # input untouched


def test_column_map_drop_keeps_contract_columns(user_rows: pd.DataFrame) -> None:
    df = user_rows.rename(columns={"chan": schema.CHANNEL})  # already a contract name
    column_map = {k: v for k, v in USER_MAP.items() if k != "chan"}
    dropped = apply_column_map(df, column_map, unmapped="drop")
    assert "comment" not in dropped.columns
    assert schema.CHANNEL in dropped.columns
    assert len(dropped.columns) == len(USER_MAP)


def test_column_map_unknown_target_raises(user_rows: pd.DataFrame) -> None:
    with pytest.raises(IngestError, match="neither contract columns nor declared") as excinfo:
        apply_column_map(user_rows, {"value": "amount_eur"})
    assert "amount_eur" in str(excinfo.value) and schema.AMOUNT in str(excinfo.value)


def test_column_map_two_sources_one_target_raises(user_rows: pd.DataFrame) -> None:
    with pytest.raises(IngestError, match="same contract column") as excinfo:
        apply_column_map(user_rows, {"value": schema.AMOUNT, "fraud": schema.AMOUNT})
    assert "value" in str(excinfo.value) and "fraud" in str(excinfo.value)


def test_column_map_missing_source_raises(user_rows: pd.DataFrame) -> None:
    with pytest.raises(IngestError, match="missing from the data") as excinfo:
        apply_column_map(user_rows, {"amount_usd": schema.AMOUNT})
    assert "amount_usd" in str(excinfo.value)


def test_column_map_collision_raises(user_rows: pd.DataFrame) -> None:
    df = user_rows.assign(**{schema.AMOUNT: 1.0})
    with pytest.raises(IngestError, match="existing column"):
        apply_column_map(df, {"value": schema.AMOUNT})


def test_column_map_bad_unmapped_raises(user_rows: pd.DataFrame) -> None:
    with pytest.raises(IngestError, match="unmapped_columns"):
        apply_column_map(user_rows, USER_MAP, unmapped="ignore")


def test_load_source_resolves_relative_path(user_rows: pd.DataFrame, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    user_rows.to_parquet(tmp_path / "in" / "tx.parquet", index=False)
    params = DataSourceParams(
        source="file", path="in/tx.parquet", column_map=USER_MAP, unmapped_columns="drop"
    )
    df = load_source(params, base_dir=tmp_path)
    assert set(df.columns) == set(USER_MAP.values())
    assert validate_transactions(df, ContractParams()).quarantine.empty


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (DataSourceParams(), "reads files"),
        (DataSourceParams(source="s3"), "must be one of"),
        (DataSourceParams(source="file"), "path is empty"),
    ],
)
def test_load_source_rejects_bad_params(params: DataSourceParams, message: str) -> None:
    with pytest.raises(IngestError, match=message):
        load_source(params)
