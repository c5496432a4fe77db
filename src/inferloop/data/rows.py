"""Read raw transaction rows into typed, checked columns: the model's input rules.

:func:`read_transactions` is what every scoring path applies to the rows it is given (batch,
stream, ``mlflow models serve``): ids, timestamps, amounts, keys and categories are checked
and converted once, and a row that breaks a rule raises :class:`InvalidInput` naming it. Small
requests take a plain-value path that skips pandas (:func:`_read_plain`); both paths give the
same result. :func:`as_frame` turns what MLflow parsed from a request into a DataFrame.
:func:`read_request` adds the data contract on top, so that the server rejects what batch
scoring would quarantine, with the same reason codes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from inferloop.core import schema as s
from inferloop.core.dataset import CARD_FRAUD, DatasetSpec
from inferloop.data.contract import (
    ContractError,
    ContractParams,
    canonical_ids,
    contract_violations,
    in_bands,
    in_contract_names,
    is_fractional,
    stamped_when_untimed,
)
from inferloop.data.events import RawColumns

__all__ = [
    "SMALL_BATCH_ROWS",
    "InvalidInput",
    "Transactions",
    "as_frame",
    "coerce_input",
    "may_break_contract",
    "read_request",
    "read_transactions",
]


#: Batches up to this many rows take the small-batch paths (numpy timestamp parsing, one
#: LightGBM thread): per-call overheads, not per-row work, dominate there.
SMALL_BATCH_ROWS = 256
_NAIVE_ISO = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)?")


class InvalidInput(ValueError):
    """A request or batch the model cannot score; the message names the problem."""


@dataclass(frozen=True)
class Transactions:
    """Validated raw transactions: ids to echo, naive-UTC timestamps, featurizer inputs.

    ``attributes`` holds the sensitive attributes sent along (those of the dataset spec
    present), as object arrays: never
    features; only a post-processed model reads one, to pick each row's threshold.
    """

    ids: np.ndarray
    timestamps: np.ndarray
    raw: RawColumns
    attributes: Mapping[str, np.ndarray] = field(default_factory=dict)


def read_transactions(frame: pd.DataFrame, spec: DatasetSpec = CARD_FRAUD) -> Transactions:
    """Validate raw transactions, reading each column of ``frame`` once.

    Parameters
    ----------
    frame
        Rows with at least the spec's scoring columns; other columns are ignored, except
        ``is_fraud`` whose labels the featurizer uses once the label delay has passed.
    spec
        The dataset spec: which categorical and numeric feature columns to read, and which
        categories are allowed.

    Returns
    -------
    Transactions
        Canonical ids (as the data contract writes them: int64 when every id is an integer),
        timestamps and amounts.

    Raises
    ------
    InvalidInput
        Naming the problem: empty input, missing columns, missing or non-scalar ids,
        unparseable timestamps, non-numeric amounts, categories outside the contract.
    """
    if len(frame) == 0:
        raise InvalidInput("empty input: send at least one transaction")
    missing = [c for c in spec.scoring_columns if c not in frame.columns]
    if missing:
        raise InvalidInput(f"missing required column(s): {missing}")
    frame = in_bands(stamped_when_untimed(frame, spec), spec)
    plain = _read_plain(frame, spec)
    return plain if plain is not None else _read_columns(frame, spec)


def _read_columns(frame: pd.DataFrame, spec: DatasetSpec) -> Transactions:
    """The general path of :func:`read_transactions`: column by column, naming any problem."""
    timestamps = _as_timestamps(frame[s.TIMESTAMP])
    raw = RawColumns(
        seconds=timestamps.astype("datetime64[s]").astype(np.int64),
        keys={e.name: _as_keys(frame[e.column]) for e in spec.entities},
        amount=_as_amounts(frame[s.AMOUNT]) if spec.has_amount else np.ones(len(frame)),
        categories={c: _as_categories(frame[c], spec) for c in spec.categorical_columns},
        numeric={c: _as_numbers(frame[c]) for c in spec.numeric_features},
        label=_labels(frame),
    )
    ids = frame[s.TRANSACTION_ID]
    id_values = ids.to_numpy()
    _check_keys(ids, id_values)
    attributes = {
        c: frame[c].to_numpy(dtype=object) for c in spec.sensitive_columns if c in frame.columns
    }
    return Transactions(id_values, timestamps, raw, attributes)


def _read_plain(frame: pd.DataFrame, spec: DatasetSpec) -> Transactions | None:
    """A few rows of plain values (what a JSON request holds) read without pandas; else None.

    Reading the columns of a one-row frame through pandas costs more than featurizing and
    scoring it (figures in ``docs/serving.md``). Here the frame becomes one object array (one call), and each
    column is accepted only when every value is of the plain kind that cannot fail the checks
    of :func:`read_transactions`: integer ids, finite numeric amounts, naive ISO text
    timestamps, known categories, numeric or missing labels. Anything else returns None, and
    the general path reads the frame and names the problem; both give the same result on plain
    rows (tested).
    """
    names = [str(c) for c in frame.columns]
    if len(frame) > SMALL_BATCH_ROWS or len(set(names)) != len(names):
        return None
    values = frame.to_numpy(dtype=object)
    column = {name: values[:, i] for i, name in enumerate(names)}
    timestamps = _plain_timestamps(column[s.TIMESTAMP])
    amounts = (
        _plain_floats(column[s.AMOUNT], allow_missing=False)
        if spec.has_amount
        else np.ones(len(frame))
    )
    ids = _plain_ints(column[s.TRANSACTION_ID])
    keys = {e.name: _plain_ints(column[e.column]) for e in spec.entities}
    categories = {
        c: _plain_categories(column[c], spec.allowed_values(c)) for c in spec.categorical_columns
    }
    numeric = {c: _plain_floats(column[c], allow_missing=False) for c in spec.numeric_features}
    label = _plain_floats(column[s.TARGET], allow_missing=True) if s.TARGET in column else None
    if (
        timestamps is None
        or amounts is None
        or ids is None
        or any(v is None for v in (*keys.values(), *categories.values(), *numeric.values()))
        or (s.TARGET in column and label is None)
    ):
        return None
    raw = RawColumns(
        seconds=timestamps.astype("datetime64[s]").astype(np.int64),
        keys=keys,  # type: ignore[arg-type]  # None ruled out above
        amount=amounts,
        categories=categories,  # type: ignore[arg-type]  # None ruled out above
        numeric=numeric,  # type: ignore[arg-type]
        label=label,
    )
    attributes: dict[str, np.ndarray] = {
        c: column[c] for c in spec.sensitive_columns if c in column
    }
    return Transactions(ids, timestamps, raw, attributes)


def _plain_ints(values: np.ndarray) -> np.ndarray | None:
    if not all(type(v) is int for v in values):  # exact type: bool is an int subclass
        return None
    try:
        return np.array(values.tolist(), dtype=np.int64)
    except OverflowError:
        return None


def _plain_floats(values: np.ndarray, *, allow_missing: bool) -> np.ndarray | None:
    kinds = (int, float, type(None)) if allow_missing else (int, float)
    if not all(type(v) in kinds for v in values):
        return None
    floats = np.array(values.tolist(), dtype=np.float64)
    return floats if allow_missing or np.isfinite(floats).all() else None


def _plain_timestamps(values: np.ndarray) -> np.ndarray | None:
    if not all(isinstance(v, str) and _NAIVE_ISO.fullmatch(v) for v in values):
        return None
    try:
        return np.array(values.tolist(), dtype="datetime64[us]")
    except ValueError:
        return None


def _plain_categories(values: np.ndarray, allowed: tuple[str, ...] | None) -> np.ndarray | None:
    """Text categories: each in ``allowed`` (or any non-blank text when None); else None."""
    if allowed is None:
        ok = all(isinstance(v, str) and v.strip() for v in values)
    else:
        ok = all(isinstance(v, str) and v in allowed for v in values)
    return np.array(values.tolist(), dtype=object) if ok else None


def coerce_input(model_input: Any, spec: DatasetSpec = CARD_FRAUD) -> pd.DataFrame:
    """Raw transactions as a validated DataFrame with the types the featurizer needs.

    Accepts a DataFrame, a list of records or a dict of columns; raises :class:`InvalidInput`
    as :func:`read_transactions` does.
    """
    frame = as_frame(model_input)
    tx = read_transactions(frame, spec)
    amount = {s.AMOUNT: tx.raw.amount} if spec.has_amount else {}
    return frame.assign(
        **{s.TIMESTAMP: tx.timestamps, **amount},
        **{e.column: tx.raw.keys[e.name] for e in spec.entities},
    )


def as_frame(model_input: Any) -> pd.DataFrame:
    """``model_input`` as a DataFrame: records, a dict of columns or of one row's values."""
    if isinstance(model_input, pd.DataFrame):
        return model_input
    if isinstance(model_input, dict) and all(np.ndim(v) == 0 for v in model_input.values()):
        model_input = [{k: _scalar(v) for k, v in model_input.items()}]  # one transaction
    try:
        return pd.DataFrame(model_input)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"input is not tabular transaction data: {exc}") from exc


def _scalar(value: Any) -> Any:
    return value.item() if isinstance(value, (np.ndarray, np.generic)) else value


def _first(values: pd.Series, bad: np.ndarray) -> list[Any]:
    return values[bad].head(3).tolist()


def _as_timestamps(values: pd.Series) -> np.ndarray:
    """Naive-UTC datetime64 values: datetimes as they are (tz-aware converted), or ISO text."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        parsed = values.dt.tz_convert(None).to_numpy()
    elif values.dtype.kind == "M":
        parsed = values.to_numpy()
    elif values.dtype.kind in "biuf":
        raise InvalidInput(
            f"column 'timestamp' must hold ISO 8601 text or datetimes, got {values.dtype} values"
        )
    else:
        parsed = _parse_iso(values)
    bad = np.isnat(parsed)
    if bad.any():
        raise InvalidInput(f"unparseable timestamp(s) in column 'timestamp': {_first(values, bad)}")
    return parsed


def _parse_iso(values: pd.Series) -> np.ndarray:
    """ISO 8601 text to naive-UTC datetime64 (NaT where unparseable).

    A few plain ``YYYY-MM-DD[Thh:mm[:ss[.f]]]`` strings are parsed by numpy (microseconds);
    anything else -- offsets, ``Z``, large batches -- by pandas (hundreds of microseconds).
    """
    text = values.to_numpy()
    if len(text) <= SMALL_BATCH_ROWS and all(
        isinstance(v, str) and _NAIVE_ISO.fullmatch(v) for v in text
    ):
        try:
            return np.array(text, dtype="datetime64[us]")
        except ValueError:
            pass  # e.g. month 13: pandas turns it into NaT and the caller names it
    try:
        parsed = pd.to_datetime(values, errors="coerce", utc=True, format="ISO8601")
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"unparseable timestamp(s) in column 'timestamp': {exc}") from exc
    return parsed.dt.tz_convert(None).to_numpy()


def _as_amounts(values: pd.Series) -> np.ndarray:
    """Amounts as float64; numbers as text are accepted, anything non-finite is not."""
    return _finite_floats(values, "amount(s)")


def _as_numbers(values: pd.Series) -> np.ndarray:
    """A numeric feature as float64; text numbers are accepted, missing or infinite are not."""
    return _finite_floats(values, "value(s)")


def _finite_floats(values: pd.Series, what: str) -> np.ndarray:
    if values.dtype.kind in "iuf":
        numbers = values.to_numpy(dtype=np.float64, na_value=np.nan)
    elif values.dtype.kind == "b":
        numbers = np.full(len(values), np.nan)
    else:
        try:
            numeric = pd.to_numeric(values, errors="coerce")
        except (TypeError, ValueError):
            numeric = pd.Series(np.nan, index=values.index)
        numbers = numeric.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(numbers)
    if bad.any():
        raise InvalidInput(
            f"non-numeric or missing {what} in column {str(values.name)!r}: {_first(values, bad)}"
        )
    return numbers


def _as_keys(values: pd.Series) -> np.ndarray:
    """Entity keys in the contract's canonical form (they index the history)."""
    keys = values.to_numpy()
    if keys.dtype.kind == "i":
        return keys
    _check_keys(values, keys)
    return np.asarray(canonical_ids(values).to_numpy())


def _check_keys(values: pd.Series, keys: np.ndarray) -> None:
    """Raise unless every key is a number or non-blank text."""
    if keys.dtype.kind in "iu":
        return
    if keys.dtype.kind == "f":
        bad = ~np.isfinite(keys)
    elif keys.dtype.kind == "O":
        bad = np.fromiter((not _is_key(v) for v in keys), dtype=bool, count=len(keys))
    else:
        bad = np.ones(len(keys), dtype=bool)
    if bad.any():
        raise InvalidInput(
            f"missing or invalid id(s) in column {values.name!r} (ids are numbers or text): "
            f"{_first(values, bad)}"
        )


def _is_key(value: Any) -> bool:
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, (int, np.integer)):
        return True
    return isinstance(value, (float, np.floating)) and bool(np.isfinite(value))


def _as_categories(values: pd.Series, spec: DatasetSpec) -> np.ndarray:
    """Category values as text (an object array), each one of the spec's when it says so.

    A column whose unseen values are not quarantined accepts any non-blank value; numbers
    become their text, as the contract writes them.
    """
    column = str(values.name)
    if not spec.quarantines_unseen(column):
        blank = values.isna().to_numpy() | values.astype(str).str.strip().eq("").to_numpy()
        if blank.any():
            raise InvalidInput(f"missing value(s) in column {column!r}: {_first(values, blank)}")
        return np.asarray(values.astype(str).to_numpy(), dtype=object)
    allowed = spec.allowed_values(column) or ()
    text = np.asarray(values.to_numpy(), dtype=object)
    try:
        seen = set(text.tolist()) if len(text) <= SMALL_BATCH_ROWS else set(pd.unique(text))
    except TypeError as exc:  # unhashable values such as lists
        raise InvalidInput(f"column {column!r} must hold text: {exc}") from exc
    unknown = seen.difference(allowed)
    if unknown:
        shown = sorted(map(repr, unknown))[:3]
        raise InvalidInput(
            f"unknown value(s) in column {column!r}: {', '.join(shown)}; allowed: {list(allowed)}"
        )
    return text


def _labels(frame: pd.DataFrame) -> np.ndarray | None:
    """Labels sent with the rows (used by the featurizer once the label delay has passed)."""
    if s.TARGET not in frame.columns:
        return None
    try:
        labels = pd.to_numeric(frame[s.TARGET], errors="coerce")
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"column {s.TARGET!r} must hold 0, 1 or nothing: {exc}") from exc
    return labels.to_numpy(dtype=np.float64, na_value=np.nan)


def read_request(frame: pd.DataFrame, contract: ContractParams) -> Transactions:
    """Read request rows under the input rules and the data contract that batch scoring applies.

    A row that batch scoring would quarantine raises :class:`InvalidInput` naming the same
    reason code(s) (``non_positive_amount``, ``timestamp_out_of_range``, ...). The full
    contract costs milliseconds, so it runs only when a cheap check of the parsed values
    finds something it would reject.
    """
    frame = in_contract_names(frame, contract)  # rows may come in the file's own names
    try:
        tx = read_transactions(frame, contract.dataset)
    except InvalidInput as exc:
        raise _contract_error(frame, contract) or exc from None
    if may_break_contract(frame, tx, contract):
        error = _contract_error(frame, contract)
        if error is not None:
            raise error
    return tx


def may_break_contract(frame: pd.DataFrame, tx: Transactions, contract: ContractParams) -> bool:
    """Whether parsed request rows might break a data-contract rule (then check in full).

    Never false when the contract would reject a row that :func:`read_transactions`
    accepted: time range, amount range, fractional or duplicated ids, labels and sensitive
    attributes sent along. Cheap on plain rows (microseconds).
    """
    ts = tx.timestamps.astype("datetime64[us]")
    lo, hi = (
        np.datetime64(_naive(v), "us") for v in (contract.min_timestamp, contract.max_timestamp)
    )
    if ((ts < lo) | (ts > hi)).any():
        return True
    amount = tx.raw.amount
    if contract.dataset.has_amount and (
        (amount <= 0).any() or (amount > contract.max_amount).any()
    ):
        return True
    if len(tx.ids) > 1 and len(set(tx.ids.tolist())) < len(tx.ids):
        return True
    spec = contract.dataset
    for column in spec.id_columns:
        if frame[column].dtype.kind in "fO" and is_fractional(frame[column]).any():
            return True
    if s.TARGET in frame.columns:
        return True
    # sensitive attributes (a post-processed model's are sent with every request): only a
    # value outside the contract's categories can be rejected; None is allowed when scoring
    return any(
        not all(
            v is None or (isinstance(v, str) and v in (spec.allowed_values(column) or (v,)))
            for v in values.tolist()
        )
        for column, values in tx.attributes.items()
    )


def _naive(value: str) -> Any:
    stamp = pd.Timestamp(value)
    return (stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo else stamp).to_datetime64()


def _contract_error(frame: pd.DataFrame, contract: ContractParams) -> InvalidInput | None:
    """The contract's verdict on ``frame`` as one InvalidInput naming codes and rows, if any."""
    try:
        violations = contract_violations(frame, contract)
    except (ContractError, ValueError, TypeError):
        return None
    if not violations:
        return None
    parts = [f"{code} (row {', '.join(map(str, rows[:5]))})" for code, rows in violations.items()]
    n = sum(len(rows) for rows in violations.values())
    return InvalidInput(f"{n} row(s) break the data contract: {'; '.join(parts)}")
