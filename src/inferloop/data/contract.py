"""The data contract for raw transactions: split a frame into valid and quarantined rows.

:func:`validate_transactions` never raises for a bad *row*: every row of the input lands in
exactly one of ``valid`` or ``quarantine``, the latter with a ``reject_reason``. It raises
:class:`ContractError` only when the input is unusable as a whole (missing required columns,
no rows).

Row checks run in this fixed order and each rejected row carries the code of the FIRST check
it fails:

1. ``null_key:<column>`` -- null (or blank string) in ``transaction_id``, ``customer_id``,
   ``terminal_id``, ``timestamp``, ``amount`` (checked in that order); then
   ``fractional_key:<column>`` -- an id or key given as a number that is not whole (``1.5``:
   a corrupted value, never a key).
2. ``unparseable_timestamp`` -- not ISO 8601 (or not ``timestamp_format`` when given).
3. ``timestamp_out_of_range`` -- outside ``[min_timestamp, max_timestamp]`` (inclusive).
4. ``non_numeric_amount`` -- e.g. the string ``"abc"``.
5. ``non_finite_amount`` -- ``inf`` or ``-inf`` (``NaN`` is a null, see 1).
6. ``non_positive_amount`` -- amount ``<= 0``.
7. ``amount_above_max`` -- amount ``> max_amount``.
8. ``unknown_category:<column>`` -- a value outside the categories the dataset spec
   (:mod:`inferloop.core.dataset`) declares: categorical features first (when their
   ``unseen_category`` policy is ``quarantine``), then sensitive attributes when present.
   Nulls count as unknown, except in sensitive columns that are optional
   (``require_target=False``). A column declared without a list accepts any non-null value.
   Then ``invalid_numeric:<column>`` -- a declared numeric feature that is null, not a number
   or not finite.
9. ``invalid_target`` -- ``is_fraud`` not 0 or 1 (nulls allowed when the target is optional).
10. ``unparseable_label_available_at`` -- a non-null value that is not a timestamp.
11. ``duplicate_transaction_id`` -- a later row whose ``transaction_id`` equals that of an
    earlier row that passed checks 1-10. The first *valid* occurrence is kept, so a corrected
    re-send of a broken row is kept and no row is counted twice.

Valid rows keep their input order (index reset) and get canonical dtypes: ids ``int64`` when
every value is losslessly an integer (``"007"`` is not) else text; ``timestamp`` and
``label_available_at`` ``datetime64[ns]`` as naive UTC (tz-aware values converted, naive
values taken as UTC); ``amount`` ``float64``; categories as text (pandas' default string
dtype: ``object`` on pandas 2, ``str`` on pandas 3); ``is_fraud`` ``int8`` (``Int8`` if
optional and null). Other columns pass through unchanged. Quarantined rows keep their raw
values; object columns there become text so that mixed types can be written to Parquet.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from inferloop.core import schema
from inferloop.core.config import from_dict, load_section, read_params
from inferloop.core.dataset import (
    BUILTIN_ENTITIES,
    CARD_FRAUD,
    DatasetSpec,
    load_dataset_spec,
)
from inferloop.data.ingest import DataSourceParams, InputLayout, to_contract_names

__all__ = [
    "AMOUNT_ABOVE_MAX",
    "DUPLICATE_TRANSACTION_ID",
    "INVALID_TARGET",
    "NON_FINITE_AMOUNT",
    "NON_NUMERIC_AMOUNT",
    "NON_POSITIVE_AMOUNT",
    "NULL_KEY_COLUMNS",
    "TIMESTAMP_OUT_OF_RANGE",
    "UNPARSEABLE_LABEL_AVAILABLE_AT",
    "UNPARSEABLE_TIMESTAMP",
    "BoolArray",
    "ContractError",
    "ContractParams",
    "ContractResult",
    "canonical_ids",
    "contract_violations",
    "fractional_key_reason",
    "in_bands",
    "in_contract_names",
    "invalid_numeric_reason",
    "is_fractional",
    "load_contract",
    "null_key_reason",
    "render_data_summary",
    "required_columns",
    "stamped_when_untimed",
    "unknown_category_reason",
    "validate_transactions",
    "write_contract_outputs",
]


BoolArray = npt.NDArray[np.bool_]

#: Columns checked for nulls, in the order their ``null_key:<column>`` codes take precedence.
NULL_KEY_COLUMNS: tuple[str, ...] = (
    schema.TRANSACTION_ID,
    schema.CUSTOMER_ID,
    schema.TERMINAL_ID,
    schema.TIMESTAMP,
    schema.AMOUNT,
)
UNPARSEABLE_TIMESTAMP = "unparseable_timestamp"
TIMESTAMP_OUT_OF_RANGE = "timestamp_out_of_range"
NON_NUMERIC_AMOUNT = "non_numeric_amount"
NON_FINITE_AMOUNT = "non_finite_amount"
NON_POSITIVE_AMOUNT = "non_positive_amount"
AMOUNT_ABOVE_MAX = "amount_above_max"
INVALID_TARGET = "invalid_target"
UNPARSEABLE_LABEL_AVAILABLE_AT = "unparseable_label_available_at"
DUPLICATE_TRANSACTION_ID = "duplicate_transaction_id"

_INT64_TEXT = r"-?(?:0|[1-9][0-9]{0,18})"


def null_key_reason(column: str) -> str:
    """Reason code for a null in a key column, e.g. ``null_key:customer_id``."""
    return f"null_key:{column}"


def fractional_key_reason(column: str) -> str:
    """Reason code for a non-whole number in an id column, e.g. ``fractional_key:terminal_id``."""
    return f"fractional_key:{column}"


def unknown_category_reason(column: str) -> str:
    """Reason code for a value outside the allowed categories, e.g. ``unknown_category:channel``."""
    return f"unknown_category:{column}"


def invalid_numeric_reason(column: str) -> str:
    """Reason code for a numeric feature that is null, text or infinite: ``invalid_numeric:V1``."""
    return f"invalid_numeric:{column}"


@dataclass(frozen=True)
class ContractParams:
    """The ``validate`` section of ``params.yaml``, with the ``dataset`` spec it applies to.

    ``dataset`` is not a key of ``validate``: :func:`load_contract` reads it from its own
    section, so every path that applies the contract (batch, stream, server, the model's
    recorded contract) checks the same declared columns.
    """

    max_amount: float = 50000.0
    min_timestamp: str = "2000-01-01"
    max_timestamp: str = "2100-01-01"
    require_target: bool = True
    dataset: DatasetSpec = CARD_FRAUD
    #: the user's own column names (``data.column_map``): rows may arrive in them
    layout: InputLayout = field(default_factory=InputLayout)


def load_contract(params_path: str | Path = "params.yaml") -> ContractParams:
    """The contract of a params file: its ``validate`` limits, its ``dataset`` spec and the
    ``data`` section's column names."""
    limits = load_section(ContractParams, "validate", params_path)
    data = read_params(params_path).get("data")
    layout = InputLayout.of(from_dict(DataSourceParams, data, where="data")) if data else None
    return replace(limits, dataset=load_dataset_spec(params_path), layout=layout or InputLayout())


def in_contract_names(df: pd.DataFrame, params: ContractParams) -> pd.DataFrame:
    """``df`` in the contract's column names (:func:`inferloop.data.ingest.to_contract_names`).

    A contract recorded in a model before layouts existed has none: the frame is unchanged.
    """
    return to_contract_names(df, getattr(params, "layout", None))


class ContractError(ValueError):
    """The input cannot be validated at all (missing required columns, no rows)."""


@dataclass
class ContractResult:
    """Outcome of :func:`validate_transactions`.

    Attributes
    ----------
    valid : pandas.DataFrame
        Rows that pass every check, with canonical dtypes, in input order, index reset.
    quarantine : pandas.DataFrame
        Rejected rows with all their original columns and values plus ``reject_reason``.
    summary : dict
        ``rows_in``, ``rows_valid``, ``rows_quarantined`` and ``by_reason`` (code -> count).
    """

    valid: pd.DataFrame
    quarantine: pd.DataFrame
    summary: dict[str, Any]


class _FirstReason:
    """Records, per row, the first failing check (as an index into ``codes``; -1 = ok)."""

    def __init__(self, n_rows: int) -> None:
        self.codes: list[str] = []
        self.index = np.full(n_rows, -1, dtype=np.int32)

    @property
    def ok(self) -> BoolArray:
        return self.index < 0

    def add(self, code: str, failed: BoolArray) -> None:
        new = failed & self.ok
        if new.any():
            self.codes.append(code)
            self.index[new] = len(self.codes) - 1

    def reasons(self, positions: npt.NDArray[np.intp]) -> npt.NDArray[np.object_]:
        return np.asarray(self.codes, dtype=object)[self.index[positions]]

    def counts(self) -> dict[str, int]:
        bad = self.index[self.index >= 0]
        counts = np.bincount(bad, minlength=len(self.codes))
        return {code: int(c) for code, c in zip(self.codes, counts, strict=True)}


def validate_transactions(
    df: pd.DataFrame,
    params: ContractParams,
    *,
    require_target: bool | None = None,
    timestamp_format: str | None = None,
) -> ContractResult:
    """Split raw transactions into valid rows and quarantined rows with reasons.

    Parameters
    ----------
    df : pandas.DataFrame
        Raw transactions named with the contract's columns (see :mod:`inferloop.core.schema`).
    params : ContractParams
        Limits of the contract.
    require_target : bool, optional
        Overrides ``params.require_target``. When true, ``is_fraud``, ``age_band`` and
        ``region`` are required (training); scoring passes ``False``.
    timestamp_format : str, optional
        ``strftime`` format of string timestamps; ISO 8601 when not given.

    Returns
    -------
    ContractResult
        ``rows_in == rows_valid + rows_quarantined``; each row appears in exactly one frame.

    Raises
    ------
    ContractError
        When required columns are missing, duplicated, or the frame has no rows.
    """
    need_target = params.require_target if require_target is None else require_target
    original = df  # the quarantine keeps the rows as they came (in the file's own names)
    df = in_contract_names(df, params)
    _check_usable(df, required_columns(need_target, params.dataset))
    df = in_bands(stamped_when_untimed(df, params.dataset), params.dataset)
    checks = _FirstReason(len(df))
    parsed = _run_row_checks(df, params, checks, need_target, timestamp_format)
    candidates = np.flatnonzero(checks.ok)
    tx_ids = canonical_ids(df[schema.TRANSACTION_ID].iloc[candidates])
    duplicated = tx_ids.duplicated(keep="first").to_numpy()
    checks.add(DUPLICATE_TRANSACTION_ID, _scatter(len(df), candidates[duplicated]))
    keep = candidates[~duplicated]
    valid = _build_valid(df, keep, parsed, tx_ids[~duplicated], params.dataset)
    quarantine = _build_quarantine(original, checks)
    return ContractResult(valid, quarantine, _summarize(len(df), checks, len(valid)))


def in_bands(df: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """Numeric sensitive attributes declared with bins, as their band names (``25-40``).

    A value that is not a number stays as it is, so the contract names it as an unknown
    group (``unknown_category:age``) instead of guessing a band.
    """
    binned = [c for c in spec.sensitive_bins if c in df.columns]
    if not binned:
        return df
    out = {}
    for column in binned:
        edges = np.asarray(spec.sensitive_bins[column])
        names = np.asarray(spec.sensitive_attributes[column], dtype=object)
        numbers = pd.to_numeric(df[column], errors="coerce").to_numpy(dtype=np.float64)
        bands = names[np.searchsorted(edges, np.nan_to_num(numbers), side="right")]
        out[column] = np.where(np.isfinite(numbers), bands, df[column].to_numpy(dtype=object))
    return df.assign(**out)


def stamped_when_untimed(df: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """Rows of a table without time, stamped with the time they are scored (UTC seconds).

    A table without time has no timestamp to send; the rows scored in one call share the
    second they arrived, which is what monitoring windows and the feature state order by. A
    timed spec, or rows that carry a timestamp (the pipeline's own, in file order), pass as
    they are.
    """
    if spec.timed or schema.TIMESTAMP in df.columns:
        return df
    now = pd.Timestamp.now(tz="UTC").tz_localize(None).floor("s")
    return df.assign(**{schema.TIMESTAMP: now})


def required_columns(require_target: bool, spec: DatasetSpec = CARD_FRAUD) -> tuple[str, ...]:
    """Columns the contract requires: the spec's scoring columns, plus target and sensitive
    columns for training data."""
    if require_target:
        return (*spec.scoring_columns, *schema.LABEL_COLUMNS, *spec.sensitive_columns)
    return spec.scoring_columns


def _check_usable(df: pd.DataFrame, required: tuple[str, ...]) -> None:
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ContractError(
            f"missing required column(s) {missing}; required {list(required)}, "
            f"got {[str(c) for c in df.columns]}"
        )
    repeated = sorted({str(c) for c in df.columns[df.columns.duplicated()]})
    if repeated:
        raise ContractError(f"duplicate column name(s) {repeated}")
    if len(df) == 0:
        raise ContractError(f"input is empty: no rows (columns {[str(c) for c in df.columns]})")


def _run_row_checks(
    df: pd.DataFrame,
    params: ContractParams,
    checks: _FirstReason,
    require_target: bool,
    timestamp_format: str | None,
) -> dict[str, pd.Series]:
    """Apply checks 1-10 in order; return the parsed columns (full length, input order)."""
    spec = params.dataset
    # the declared entities' keys, after the id: an undeclared one's is not the contract's
    builtin = {e.column for e in BUILTIN_ENTITIES.values()}
    first, *rest = [c for c in NULL_KEY_COLUMNS if c not in builtin]
    keys = [
        first,
        *spec.entity_columns,
        *(c for c in rest if c in spec.scoring_columns or c == schema.TIMESTAMP),
    ]
    for column in keys:
        checks.add(null_key_reason(column), _is_blank(df[column]))
    for column in spec.id_columns:
        checks.add(fractional_key_reason(column), is_fractional(df[column]))
    parsed: dict[str, pd.Series] = {}
    parsed[schema.TIMESTAMP] = _check_timestamp(df, params, checks, timestamp_format)
    if params.dataset.has_amount:  # a table without amounts has no amount rules
        parsed[schema.AMOUNT] = _check_amount(df, params, checks)
    _check_categories(df, params.dataset, checks, require_target)
    _check_numeric(df, params.dataset, checks)
    if schema.TARGET in df.columns:
        parsed[schema.TARGET] = _check_target(df[schema.TARGET], checks, require_target)
    if schema.LABEL_AVAILABLE_AT in df.columns:
        raw = df[schema.LABEL_AVAILABLE_AT]
        label_at = _parse_datetime(raw, timestamp_format)
        checks.add(UNPARSEABLE_LABEL_AVAILABLE_AT, label_at.isna().to_numpy() & ~_is_blank(raw))
        parsed[schema.LABEL_AVAILABLE_AT] = label_at
    return parsed


def _check_timestamp(
    df: pd.DataFrame, params: ContractParams, checks: _FirstReason, fmt: str | None
) -> pd.Series:
    ts = _parse_datetime(df[schema.TIMESTAMP], fmt)
    checks.add(UNPARSEABLE_TIMESTAMP, ts.isna().to_numpy())
    if params.dataset.timed:  # a table without time: the column is its row order, not a date
        lo, hi = _naive_utc(params.min_timestamp), _naive_utc(params.max_timestamp)
        checks.add(TIMESTAMP_OUT_OF_RANGE, ((ts < lo) | (ts > hi)).to_numpy())
    return ts


def _check_amount(df: pd.DataFrame, params: ContractParams, checks: _FirstReason) -> pd.Series:
    raw = df[schema.AMOUNT]
    if pd.api.types.is_numeric_dtype(raw.dtype):
        values = raw.to_numpy(dtype="float64", na_value=np.nan)
    else:
        values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    checks.add(NON_NUMERIC_AMOUNT, np.isnan(values))  # nulls were rejected before
    with np.errstate(invalid="ignore"):
        checks.add(NON_FINITE_AMOUNT, np.isinf(values))
        checks.add(NON_POSITIVE_AMOUNT, values <= 0)
        checks.add(AMOUNT_ABOVE_MAX, values > params.max_amount)
    return pd.Series(values, index=df.index)


def _check_categories(
    df: pd.DataFrame, spec: DatasetSpec, checks: _FirstReason, require_target: bool
) -> None:
    for column in (*spec.categorical_columns, *spec.sensitive_columns):
        if column not in df.columns:
            continue
        values = df[column]
        allowed = spec.allowed_values(column)
        if allowed is None or not spec.quarantines_unseen(column):
            unknown = _is_blank(values)  # any value, but a value
        else:
            unknown = ~values.isin(allowed).to_numpy()
        if column in spec.sensitive_attributes and not require_target:
            unknown = unknown & values.notna().to_numpy()
        checks.add(unknown_category_reason(column), unknown)


def _check_numeric(df: pd.DataFrame, spec: DatasetSpec, checks: _FirstReason) -> None:
    for column in spec.numeric_features:
        raw = df[column]
        if pd.api.types.is_bool_dtype(raw.dtype):
            values = np.full(len(raw), np.nan)
        elif pd.api.types.is_numeric_dtype(raw.dtype):
            values = raw.to_numpy(dtype="float64", na_value=np.nan)
        else:
            values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        checks.add(invalid_numeric_reason(column), ~np.isfinite(values))


def _check_target(raw: pd.Series, checks: _FirstReason, required: bool) -> pd.Series:
    numeric = pd.api.types.is_numeric_dtype(raw.dtype)
    target = raw if numeric else pd.to_numeric(raw, errors="coerce")
    invalid = ~target.isin([0, 1]).to_numpy()
    if not required:
        invalid = invalid & raw.notna().to_numpy()
    checks.add(INVALID_TARGET, invalid)
    return target


def is_fractional(values: pd.Series) -> BoolArray:
    """Finite numbers that are not whole (floats in a numeric or an object column)."""
    if values.dtype.kind == "f":
        floats = values.to_numpy(dtype="float64", na_value=np.nan)
        with np.errstate(invalid="ignore"):
            return np.isfinite(floats) & (floats != np.round(floats))
    if values.dtype != object:
        return np.zeros(len(values), dtype=bool)
    return np.fromiter(
        (isinstance(v, float) and np.isfinite(v) and not v.is_integer() for v in values),
        dtype=bool,
        count=len(values),
    )


def contract_violations(
    df: pd.DataFrame, params: ContractParams, *, timestamp_format: str | None = None
) -> dict[str, list[int]]:
    """Reason code -> positions of the rows that scoring's contract rejects (empty if none).

    The same checks, in the same order, as batch scoring applies (``require_target=False``):
    the model server calls it to answer a 400 that names the codes batch would record.

    Raises
    ------
    ContractError
        When required columns are missing or the frame has no rows.
    """
    df = in_contract_names(df, params)
    _check_usable(df, required_columns(False, params.dataset))
    df = in_bands(stamped_when_untimed(df, params.dataset), params.dataset)
    checks = _FirstReason(len(df))
    _run_row_checks(df, params, checks, False, timestamp_format)
    candidates = np.flatnonzero(checks.ok)
    tx_ids = canonical_ids(df[schema.TRANSACTION_ID].iloc[candidates])
    checks.add(
        DUPLICATE_TRANSACTION_ID,
        _scatter(len(df), candidates[tx_ids.duplicated(keep="first").to_numpy()]),
    )
    rejected = np.flatnonzero(~checks.ok)
    out: dict[str, list[int]] = {}
    for position, reason in zip(rejected.tolist(), checks.reasons(rejected).tolist(), strict=True):
        out.setdefault(str(reason), []).append(int(position))
    return out


def _is_blank(values: pd.Series) -> BoolArray:
    """Null, or (for text columns) an empty or whitespace-only string."""
    blank = values.isna().to_numpy()
    if values.dtype == object or isinstance(values.dtype, pd.StringDtype):
        blank = blank | values.astype(str).str.strip().eq("").to_numpy(dtype=bool, na_value=False)
    return blank


def _naive_utc(value: Any) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo is not None else ts


def _parse_datetime(values: pd.Series, fmt: str | None) -> pd.Series:
    """Datetimes as naive UTC (tz-aware converted, naive taken as UTC); NaT if unparseable."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC").dt.tz_localize(None)
    if pd.api.types.is_datetime64_dtype(values.dtype):
        return values
    if pd.api.types.is_numeric_dtype(values.dtype):
        # Bare numbers are not timestamps of this contract (epoch units would be a guess).
        return pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns]")
    parsed = pd.to_datetime(values, errors="coerce", utc=True, format=fmt or "ISO8601")
    return parsed.dt.tz_localize(None)


def canonical_ids(values: pd.Series) -> pd.Series:
    """int64 when every value is losslessly an integer, else text (no nulls expected)."""
    dtype = values.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return values.astype(str)
    if pd.api.types.is_integer_dtype(dtype):
        as_float = values.astype("float64")
        if pd.api.types.is_signed_integer_dtype(dtype) or (as_float < 2.0**63).all():
            return values.astype("int64")
        return values.astype(str)
    if pd.api.types.is_float_dtype(dtype):
        floats = values.to_numpy(dtype="float64", na_value=np.nan)
        whole = np.isfinite(floats) & (floats == np.round(floats)) & (np.abs(floats) < 2.0**63)
        return values.astype("int64") if whole.all() else values.astype(str)
    text = values.astype(str)
    if text.str.fullmatch(_INT64_TEXT).all():
        try:
            return text.astype("int64")
        except (OverflowError, ValueError):  # beyond int64 despite 19 digits
            return text
    return text


def _scatter(n_rows: int, positions: npt.NDArray[np.intp]) -> BoolArray:
    mask = np.zeros(n_rows, dtype=bool)
    mask[positions] = True
    return mask


def _build_valid(
    df: pd.DataFrame,
    keep: npt.NDArray[np.intp],
    parsed: dict[str, pd.Series],
    tx_ids: pd.Series,
    spec: DatasetSpec,
) -> pd.DataFrame:
    valid = df.iloc[keep].reset_index(drop=True)
    valid[schema.TRANSACTION_ID] = tx_ids.to_numpy()
    for column in spec.entity_columns:
        valid[column] = canonical_ids(valid[column]).to_numpy()
    valid[schema.TIMESTAMP] = _as_ns(parsed[schema.TIMESTAMP].iloc[keep])
    if schema.AMOUNT in parsed:
        valid[schema.AMOUNT] = parsed[schema.AMOUNT].iloc[keep].to_numpy(dtype="float64")
    for column in (*spec.categorical_columns, *spec.sensitive_columns):
        if column in valid.columns:
            valid[column] = _as_text(valid[column])
    for column in spec.numeric_features:
        valid[column] = pd.to_numeric(valid[column], errors="coerce").astype("float64")
    if schema.TARGET in parsed:
        target = parsed[schema.TARGET].iloc[keep].reset_index(drop=True)
        valid[schema.TARGET] = target.astype("int8" if target.notna().all() else "Int8")
    if schema.LABEL_AVAILABLE_AT in parsed:
        valid[schema.LABEL_AVAILABLE_AT] = _as_ns(parsed[schema.LABEL_AVAILABLE_AT].iloc[keep])
    return valid


def _as_ns(values: pd.Series) -> npt.NDArray[np.datetime64]:
    """Naive datetimes as a ``datetime64[ns]`` array (pandas 3 may parse at another unit)."""
    return values.to_numpy(dtype="datetime64[ns]")


def _as_text(values: pd.Series) -> pd.Series:
    """Values as the default string dtype of this pandas, nulls kept as nulls."""
    return values.astype(str).where(values.notna())


def _build_quarantine(df: pd.DataFrame, checks: _FirstReason) -> pd.DataFrame:
    """Rejected rows with their raw values; mixed-type object columns become text."""
    rejected = np.flatnonzero(~checks.ok)
    quarantine = df.iloc[rejected].reset_index(drop=True)
    for column in quarantine.select_dtypes(include="object").columns:
        quarantine[column] = _as_text(quarantine[column])
    quarantine[schema.REJECT_REASON] = pd.Series(checks.reasons(rejected), dtype=str)
    return quarantine


def _summarize(rows_in: int, checks: _FirstReason, rows_valid: int) -> dict[str, Any]:
    by_reason = dict(sorted(checks.counts().items()))
    rows_quarantined = sum(by_reason.values())
    if rows_in != rows_valid + rows_quarantined:
        raise AssertionError(
            f"contract lost rows: in={rows_in} valid={rows_valid} quarantined={rows_quarantined}"
        )
    return {
        "rows_in": rows_in,
        "rows_valid": rows_valid,
        "rows_quarantined": rows_quarantined,
        "by_reason": by_reason,
    }


def write_contract_outputs(
    result: ContractResult,
    valid_path: str | Path,
    quarantine_path: str | Path,
    summary_path: str | Path,
) -> None:
    """Write valid and quarantined rows as Parquet and the summary as JSON.

    Parameters
    ----------
    result : ContractResult
        Output of :func:`validate_transactions`.
    valid_path, quarantine_path : str or Path
        Parquet files to write; parent folders are created.
    summary_path : str or Path
        JSON file (sorted keys, indent 2).
    """
    for frame, path in ((result.valid, valid_path), (result.quarantine, quarantine_path)):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(path, index=False)
    summary = Path(summary_path)
    summary.parent.mkdir(parents=True, exist_ok=True)
    summary.write_text(json.dumps(result.summary, sort_keys=True, indent=2) + "\n")


def render_data_summary(
    df: pd.DataFrame,
    html_path: str | Path,
    *,
    max_rows: int = 100_000,
    seed: int = 0,
    spec: DatasetSpec = CARD_FRAUD,
) -> None:
    """Write an Evidently ``DataSummaryPreset`` report of validated data as HTML.

    Parameters
    ----------
    df : pandas.DataFrame
        Validated transactions (``ContractResult.valid``).
    html_path : str or Path
        HTML file to write; parent folders are created.
    max_rows : int
        Larger frames are sampled (seeded) down to this many rows to keep the report fast.
    seed : int
        Seed of that sample.
    spec : DatasetSpec
        Which columns are categorical and numeric.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataSummaryPreset

    sample = df.sample(n=max_rows, random_state=seed) if len(df) > max_rows else df
    sample = sample.sort_index()
    if schema.TARGET in sample.columns:
        # Evidently 0.7 rejects numpy int8 category labels; int64 (or text with nulls) works.
        target = sample[schema.TARGET]
        fixed = target.astype("int64") if target.notna().all() else _as_text(target)
        sample = sample.assign(**{schema.TARGET: fixed})
    columns = set(sample.columns)
    categorical = [
        c
        for c in (*spec.categorical_columns, *spec.sensitive_columns, schema.TARGET)
        if c in columns
    ]
    numerical = [c for c in (schema.AMOUNT, *spec.numeric_features) if c in columns]
    definition = DataDefinition(
        id_column=schema.TRANSACTION_ID if schema.TRANSACTION_ID in columns else None,
        timestamp=schema.TIMESTAMP if schema.TIMESTAMP in columns else None,
        numerical_columns=numerical,
        categorical_columns=categorical,
    )
    dataset = Dataset.from_pandas(sample, data_definition=definition)
    snapshot = Report([DataSummaryPreset()]).run(current_data=dataset, reference_data=None)
    Path(html_path).parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(html_path))
