"""Unit tests of the data contract on tiny inline frames."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from inferloop.core import schema
from inferloop.core.config import load_section
from inferloop.data.contract import (
    ContractError,
    ContractParams,
    ContractResult,
    contract_violations,
    render_data_summary,
    validate_transactions,
    write_contract_outputs,
)

PARAMS = ContractParams()
REPO = Path(__file__).resolve().parents[2]


def make_rows(n: int = 20) -> pd.DataFrame:
    """``n`` valid training rows with the simulator's dtypes."""
    i = np.arange(n)
    return pd.DataFrame(
        {
            schema.TRANSACTION_ID: i + 1000,
            schema.TIMESTAMP: pd.date_range("2026-01-05", periods=n, freq="h"),
            schema.CUSTOMER_ID: i % 5,
            schema.TERMINAL_ID: i % 7,
            schema.AMOUNT: np.round(np.linspace(1.5, 300.0, n), 2),
            schema.CHANNEL: [schema.CHANNELS[k % 3] for k in i],
            schema.MERCHANT_CATEGORY: [schema.MERCHANT_CATEGORIES[k % 8] for k in i],
            schema.AGE_BAND: [schema.AGE_BANDS[k % 4] for k in i],
            schema.REGION: [schema.REGIONS[k % 4] for k in i],
            schema.TARGET: (i % 4 == 0).astype("int64"),
            schema.LABEL_AVAILABLE_AT: pd.date_range("2026-01-12", periods=n, freq="h"),
            "note": [f"n{k}" for k in i],
        }
    )


@pytest.fixture
def rows() -> pd.DataFrame:
    return make_rows()


def with_value(df: pd.DataFrame, row: int, column: str, value: object) -> pd.DataFrame:
    """A copy of ``df`` with one cell replaced (the column becomes object to hold anything)."""
    out = df.copy()
    out[column] = out[column].astype(object)
    out.loc[row, column] = value
    return out


def assert_reconciles(result: ContractResult, rows_in: int) -> None:
    s = result.summary
    assert s["rows_in"] == rows_in == len(result.valid) + len(result.quarantine)
    assert s["rows_valid"] == len(result.valid)
    assert s["rows_quarantined"] == len(result.quarantine) == sum(s["by_reason"].values())
    assert result.quarantine[schema.REJECT_REASON].value_counts().to_dict() == s["by_reason"]


def assert_single_reject(result: ContractResult, tx_id: int, reason: str) -> None:
    q = result.quarantine
    assert len(q) == 1
    assert q[schema.REJECT_REASON].tolist() == [reason]
    assert int(q[schema.TRANSACTION_ID].iloc[0]) == tx_id
    assert tx_id not in set(result.valid[schema.TRANSACTION_ID])


def test_params_match_params_yaml() -> None:
    loaded = load_section(ContractParams, "validate", REPO / "params.yaml")
    assert loaded == ContractParams()


def test_good_rows_are_valid_with_canonical_dtypes(rows: pd.DataFrame) -> None:
    result = validate_transactions(rows, PARAMS)
    assert_reconciles(result, len(rows))
    valid = result.valid
    assert len(valid) == len(rows) and result.quarantine.empty
    assert valid[schema.TRANSACTION_ID].tolist() == rows[schema.TRANSACTION_ID].tolist()
    for column in schema.ID_COLUMNS:
        assert valid[column].dtype == np.int64
    assert valid[schema.TIMESTAMP].dtype == "datetime64[ns]"
    assert valid[schema.LABEL_AVAILABLE_AT].dtype == "datetime64[ns]"
    assert valid[schema.AMOUNT].dtype == np.float64
    assert valid[schema.TARGET].dtype == np.int8
    for column in (*schema.CATEGORICAL_FEATURE_COLUMNS, *schema.SENSITIVE_COLUMNS):
        assert pd.api.types.is_string_dtype(valid[column].dtype)
        assert all(isinstance(v, str) for v in valid[column])
    assert valid["note"].tolist() == rows["note"].tolist()  # extra columns pass through
    assert list(valid.index) == list(range(len(rows)))


def test_missing_required_column_raises(rows: pd.DataFrame) -> None:
    with pytest.raises(ContractError, match="amount"):
        validate_transactions(rows.drop(columns=[schema.AMOUNT]), PARAMS)


def test_target_and_sensitive_columns_required_only_for_training(rows: pd.DataFrame) -> None:
    scoring = rows.drop(columns=[schema.TARGET, schema.AGE_BAND, schema.REGION])
    with pytest.raises(ContractError, match="is_fraud") as excinfo:
        validate_transactions(scoring, PARAMS)
    assert "age_band" in str(excinfo.value) and "region" in str(excinfo.value)
    result = validate_transactions(scoring, PARAMS, require_target=False)
    assert len(result.valid) == len(rows)


def test_empty_frame_raises(rows: pd.DataFrame) -> None:
    with pytest.raises(ContractError, match="empty"):
        validate_transactions(rows.iloc[0:0], PARAMS)


def test_non_numeric_amount_is_quarantined_with_raw_value(rows: pd.DataFrame) -> None:
    result = validate_transactions(with_value(rows, 3, schema.AMOUNT, "abc"), PARAMS)
    assert_reconciles(result, len(rows))
    assert_single_reject(result, 1003, "non_numeric_amount")
    assert result.quarantine[schema.AMOUNT].iloc[0] == "abc"
    assert result.valid[schema.AMOUNT].dtype == np.float64


def test_numeric_strings_are_valid_amounts(rows: pd.DataFrame) -> None:
    df = rows.assign(**{schema.AMOUNT: rows[schema.AMOUNT].astype(str)})
    result = validate_transactions(df, PARAMS)
    assert result.quarantine.empty
    np.testing.assert_allclose(result.valid[schema.AMOUNT], rows[schema.AMOUNT])


def test_unparseable_timestamp_is_quarantined(rows: pd.DataFrame) -> None:
    result = validate_transactions(with_value(rows, 4, schema.TIMESTAMP, "not a date"), PARAMS)
    assert_reconciles(result, len(rows))
    assert_single_reject(result, 1004, "unparseable_timestamp")
    assert result.quarantine[schema.TIMESTAMP].iloc[0] == "not a date"
    assert result.valid[schema.TIMESTAMP].dtype == "datetime64[ns]"


def test_timestamp_out_of_range_is_quarantined(rows: pd.DataFrame) -> None:
    result = validate_transactions(with_value(rows, 2, schema.TIMESTAMP, "1990-05-01"), PARAMS)
    assert_single_reject(result, 1002, "timestamp_out_of_range")


@pytest.mark.parametrize("column", [schema.TRANSACTION_ID, schema.CUSTOMER_ID, schema.TERMINAL_ID])
def test_a_fractional_key_is_quarantined_and_a_whole_float_is_not(
    rows: pd.DataFrame, column: str
) -> None:
    result = validate_transactions(with_value(rows, 4, column, 1.5), PARAMS)
    assert_reconciles(result, len(rows))
    assert result.quarantine[schema.REJECT_REASON].tolist() == [f"fractional_key:{column}"]
    assert len(result.valid) == len(rows) - 1
    whole = validate_transactions(rows.astype({column: "float64"}), PARAMS)
    assert whole.summary["rows_quarantined"] == 0


def test_contract_violations_name_the_codes_and_rows_batch_would(rows: pd.DataFrame) -> None:
    bad = with_value(with_value(rows, 3, schema.AMOUNT, -1.0), 7, schema.TIMESTAMP, "1900-01-01")
    found = contract_violations(bad.drop(columns=[schema.TARGET]), PARAMS)
    assert found == {"non_positive_amount": [3], "timestamp_out_of_range": [7]}
    assert contract_violations(rows, PARAMS) == {}


def test_negative_amount_is_quarantined(rows: pd.DataFrame) -> None:
    result = validate_transactions(with_value(rows, 5, schema.AMOUNT, -12.0), PARAMS)
    assert_reconciles(result, len(rows))
    assert_single_reject(result, 1005, "non_positive_amount")


def test_absurd_amount_is_quarantined(rows: pd.DataFrame) -> None:
    result = validate_transactions(with_value(rows, 6, schema.AMOUNT, 1e12), PARAMS)
    assert_reconciles(result, len(rows))
    assert_single_reject(result, 1006, "amount_above_max")


def test_infinite_amount_is_quarantined(rows: pd.DataFrame) -> None:
    result = validate_transactions(with_value(rows, 7, schema.AMOUNT, np.inf), PARAMS)
    assert_single_reject(result, 1007, "non_finite_amount")


def test_nan_amount_is_a_null_key(rows: pd.DataFrame) -> None:
    result = validate_transactions(with_value(rows, 7, schema.AMOUNT, np.nan), PARAMS)
    assert_single_reject(result, 1007, "null_key:amount")


def test_unknown_category_is_quarantined(rows: pd.DataFrame) -> None:
    result = validate_transactions(with_value(rows, 8, schema.CHANNEL, "carrier_pigeon"), PARAMS)
    assert_reconciles(result, len(rows))
    assert_single_reject(result, 1008, "unknown_category:channel")


def test_sensitive_nulls_allowed_only_when_optional(rows: pd.DataFrame) -> None:
    df = with_value(rows, 9, schema.REGION, None)
    assert_single_reject(validate_transactions(df, PARAMS), 1009, "unknown_category:region")
    scoring = validate_transactions(df, PARAMS, require_target=False)
    assert scoring.quarantine.empty
    assert pd.isna(scoring.valid[schema.REGION].iloc[9])
    bad = with_value(rows, 9, schema.REGION, "atlantis")
    scored = validate_transactions(bad, PARAMS, require_target=False)
    assert_single_reject(scored, 1009, "unknown_category:region")


def test_duplicate_transaction_id_keeps_first(rows: pd.DataFrame) -> None:
    df = rows.copy()
    df.loc[[7, 12], schema.TRANSACTION_ID] = 1002
    result = validate_transactions(df, PARAMS)
    assert_reconciles(result, len(rows))
    q = result.quarantine
    assert q[schema.REJECT_REASON].tolist() == ["duplicate_transaction_id"] * 2
    assert q["note"].tolist() == ["n7", "n12"]
    kept = result.valid[result.valid[schema.TRANSACTION_ID] == 1002]
    assert kept["note"].tolist() == ["n2"]


def test_duplicate_of_a_quarantined_row_is_kept_once(rows: pd.DataFrame) -> None:
    df = with_value(rows, 2, schema.AMOUNT, "abc")
    df.loc[10, schema.TRANSACTION_ID] = 1002  # a corrected re-send of row 2
    result = validate_transactions(df, PARAMS)
    assert_reconciles(result, len(rows))
    assert result.quarantine[schema.REJECT_REASON].tolist() == ["non_numeric_amount"]
    kept = result.valid[result.valid[schema.TRANSACTION_ID] == 1002]
    assert kept["note"].tolist() == ["n10"]


@pytest.mark.parametrize("missing", [None, np.nan, "", "  "])
def test_null_customer_id_is_quarantined(rows: pd.DataFrame, missing: object) -> None:
    result = validate_transactions(with_value(rows, 11, schema.CUSTOMER_ID, missing), PARAMS)
    assert_reconciles(result, len(rows))
    assert_single_reject(result, 1011, "null_key:customer_id")


def test_invalid_target_is_quarantined(rows: pd.DataFrame) -> None:
    result = validate_transactions(with_value(rows, 13, schema.TARGET, 2), PARAMS)
    assert_single_reject(result, 1013, "invalid_target")


def test_optional_target_may_be_null(rows: pd.DataFrame) -> None:
    df = with_value(rows, 13, schema.TARGET, None)
    assert_single_reject(validate_transactions(df, PARAMS), 1013, "invalid_target")
    result = validate_transactions(df, PARAMS, require_target=False)
    assert result.quarantine.empty
    assert result.valid[schema.TARGET].dtype == "Int8"


def test_unparseable_label_time_is_quarantined(rows: pd.DataFrame) -> None:
    df = with_value(rows, 14, schema.LABEL_AVAILABLE_AT, "soon")
    assert_single_reject(validate_transactions(df, PARAMS), 1014, "unparseable_label_available_at")


def test_first_failing_check_wins(rows: pd.DataFrame) -> None:
    df = with_value(rows, 1, schema.CUSTOMER_ID, None)
    df = with_value(df, 1, schema.AMOUNT, "abc")
    df = with_value(df, 1, schema.CHANNEL, "fax")
    assert_single_reject(validate_transactions(df, PARAMS), 1001, "null_key:customer_id")


def test_text_ids_stay_text_and_integer_text_becomes_int(rows: pd.DataFrame) -> None:
    df = rows.assign(
        **{
            schema.TRANSACTION_ID: [f"T{k:04d}" for k in range(len(rows))],
            schema.CUSTOMER_ID: [f"{k:03d}" for k in range(len(rows))],  # leading zeros
            schema.TERMINAL_ID: [str(k) for k in range(len(rows))],
        }
    )
    valid = validate_transactions(df, PARAMS).valid
    assert valid[schema.TRANSACTION_ID].tolist()[:2] == ["T0000", "T0001"]
    assert valid[schema.CUSTOMER_ID].tolist()[:2] == ["000", "001"]
    assert valid[schema.TERMINAL_ID].dtype == np.int64


def test_float_ids_become_int(rows: pd.DataFrame) -> None:
    df = rows.assign(**{schema.TERMINAL_ID: rows[schema.TERMINAL_ID].astype(float)})
    df.loc[3, schema.TERMINAL_ID] = np.nan
    result = validate_transactions(df, PARAMS)
    assert_single_reject(result, 1003, "null_key:terminal_id")
    assert result.valid[schema.TERMINAL_ID].dtype == np.int64


def test_timezones_become_naive_utc(rows: pd.DataFrame) -> None:
    aware = rows[schema.TIMESTAMP].dt.tz_localize("Europe/Paris")
    valid = validate_transactions(rows.assign(**{schema.TIMESTAMP: aware}), PARAMS).valid
    assert valid[schema.TIMESTAMP].dt.tz is None
    assert valid[schema.TIMESTAMP].iloc[0] == pd.Timestamp("2026-01-04 23:00")
    text = rows.assign(**{schema.TIMESTAMP: ["2026-01-05T10:00:00+02:00"] * len(rows)})
    parsed = validate_transactions(text, PARAMS).valid[schema.TIMESTAMP]
    assert parsed.iloc[0] == pd.Timestamp("2026-01-05 08:00")


def test_timestamp_format(rows: pd.DataFrame) -> None:
    text = rows[schema.TIMESTAMP].dt.strftime("%d/%m/%Y %H:%M")
    df = rows.assign(**{schema.TIMESTAMP: text}).drop(columns=[schema.LABEL_AVAILABLE_AT])
    assert len(validate_transactions(df, PARAMS).quarantine) == len(rows)  # not ISO 8601
    result = validate_transactions(df, PARAMS, timestamp_format="%d/%m/%Y %H:%M")
    assert result.quarantine.empty
    assert result.valid[schema.TIMESTAMP].tolist() == rows[schema.TIMESTAMP].tolist()


def test_outputs_are_written(rows: pd.DataFrame, tmp_path: Path) -> None:
    df = with_value(rows, 3, schema.AMOUNT, "abc")
    df = with_value(df, 4, schema.AMOUNT, 7)  # mixed types in one column
    df = with_value(df, 4, schema.CHANNEL, "fax")
    result = validate_transactions(df, PARAMS)
    paths = [tmp_path / "v" / "valid.parquet", tmp_path / "q" / "q.parquet", tmp_path / "s.json"]
    write_contract_outputs(result, *paths)
    assert len(pd.read_parquet(paths[0])) == len(rows) - 2
    quarantine = pd.read_parquet(paths[1])
    assert quarantine[schema.AMOUNT].tolist() == ["abc", "7"]
    assert json.loads(paths[2].read_text()) == result.summary


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_random_mixtures_reconcile(seed: int) -> None:
    rng = np.random.default_rng(seed)
    df = make_rows(200)
    corruptions: list[tuple[str, object]] = [
        (schema.AMOUNT, "abc"),
        (schema.AMOUNT, -1.0),
        (schema.AMOUNT, 1e9),
        (schema.AMOUNT, None),
        (schema.TIMESTAMP, "not a date"),
        (schema.TIMESTAMP, "1900-01-01"),
        (schema.CUSTOMER_ID, None),
        (schema.CHANNEL, "fax"),
        (schema.MERCHANT_CATEGORY, 3),
        (schema.TARGET, 7),
    ]
    for column in {c for c, _ in corruptions}:
        df[column] = df[column].astype(object)
    for row in rng.choice(len(df), size=int(rng.integers(0, 120)), replace=False):
        column, value = corruptions[int(rng.integers(len(corruptions)))]
        df.loc[row, column] = value
    dups = rng.choice(len(df), size=20, replace=False)
    df.loc[dups[10:], schema.TRANSACTION_ID] = df.loc[dups[:10], schema.TRANSACTION_ID].to_numpy()

    result = validate_transactions(df, PARAMS)
    assert_reconciles(result, len(df))
    seen = sorted([*result.valid["note"], *result.quarantine["note"]])
    assert seen == sorted(df["note"])  # every input row exactly once
    assert result.valid[schema.TRANSACTION_ID].is_unique
    assert result.quarantine[schema.REJECT_REASON].notna().all()


def test_render_data_summary(rows: pd.DataFrame, tmp_path: Path) -> None:
    valid = validate_transactions(rows, PARAMS).valid
    html = tmp_path / "reports" / "summary.html"
    render_data_summary(valid, html, max_rows=10)
    assert html.stat().st_size > 1000
