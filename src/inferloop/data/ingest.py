"""Bring your own data: read a CSV or Parquet file and map its columns onto the contract.

Reading does no type checking beyond what pandas infers: the data contract
(:func:`inferloop.data.contract.validate_transactions`) parses timestamps and amounts and
quarantines the rows it cannot use, so a column with a few bad values simply arrives as
text. Identifier columns are read from CSV as text so that leading zeros survive; the
contract turns them into ``int64`` when that is lossless. Timestamps are not parsed here:
pass ``DataSourceParams.timestamp_format`` to the contract.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from inferloop.core import schema
from inferloop.core.dataset import CARD_FRAUD, DatasetSpec

__all__ = [
    "CONTRACT_COLUMNS",
    "CSV_SUFFIXES",
    "PARQUET_SUFFIXES",
    "SOURCES",
    "UNMAPPED_CHOICES",
    "DataSourceParams",
    "IngestError",
    "InputLayout",
    "apply_column_map",
    "contract_columns",
    "load_source",
    "numeric_times",
    "positive_labels",
    "read_table",
    "to_contract_names",
    "with_generated_ids",
    "with_row_order",
]


#: Contract columns a user's column may be mapped to (the ``data.column_map`` targets).
CONTRACT_COLUMNS: tuple[str, ...] = (
    *schema.SCORING_COLUMNS,
    *schema.SENSITIVE_COLUMNS,
    schema.TARGET,
    schema.LABEL_AVAILABLE_AT,
)
CSV_SUFFIXES: tuple[str, ...] = (".csv", ".csv.gz")
PARQUET_SUFFIXES: tuple[str, ...] = (".parquet", ".pq")
SOURCES: tuple[str, ...] = ("simulator", "file")
UNMAPPED_CHOICES: tuple[str, ...] = ("keep", "drop")


@dataclass(frozen=True)
class DataSourceParams:
    """The ``data`` section of ``params.yaml``."""

    source: str = "simulator"
    path: str = ""
    column_map: dict[str, str] = field(default_factory=dict)
    unmapped_columns: str = "keep"
    timestamp_format: str | None = None
    # numeric time (PaySim's hourly ``step``, seconds since the start): its unit and origin
    timestamp_unit: str | None = None
    timestamp_origin: str = "1970-01-01"
    # a label given as text ("bad"/"good", "fraud"/"genuine"): the value that means positive
    target_positive: str | None = None


@dataclass(frozen=True)
class InputLayout:
    """The user's own column names and time unit, for rows scored after training.

    The ``data`` section's ``column_map``, numeric time and text label, kept with the data
    contract (and so with the registered model): batch files, stream lines and server requests
    in the file's own layout (``nameOrig``, an hourly ``step``...) score as the training file
    did, through :func:`to_contract_names`. Rows already in the contract's names pass as
    they are.
    """

    column_map: Mapping[str, str] = field(default_factory=dict)
    timestamp_unit: str | None = None
    timestamp_origin: str = "1970-01-01"
    target_positive: str | None = None

    @staticmethod
    def of(params: DataSourceParams) -> InputLayout:
        """The layout a ``data`` section describes."""
        return InputLayout(
            dict(params.column_map),
            params.timestamp_unit,
            params.timestamp_origin,
            params.target_positive,
        )

    def names_for(self, column: str) -> tuple[str, ...]:
        """The names a contract column may arrive under: its own, and the file's."""
        return (column, *(src for src, dst in self.column_map.items() if dst == column))


def to_contract_names(frame: pd.DataFrame, layout: InputLayout | None) -> pd.DataFrame:
    """``frame`` with the user's column names mapped onto the contract's (as at ingest).

    Only columns of the map that are present, and whose contract column is not also present,
    are renamed: a frame already in the contract's names is returned as it is (the check is a
    few set look-ups, so the server's one-row requests pay nothing). A timestamp that arrives
    as the file's numeric time becomes a datetime, and a text label 0/1, as the training file's
    did. Transaction ids are never generated here: a generated id is a row's position in one
    file, and rows scored later need ids of their own (exactly-once scoring keys on them).
    """
    if layout is None or not layout.column_map:
        return frame
    columns = set(frame.columns)
    renames = {
        src: dst
        for src, dst in layout.column_map.items()
        if src in columns and src != dst and dst not in columns
    }
    if not renames:
        return frame
    mapped = frame.rename(columns=renames)
    targets = set(renames.values())
    if layout.timestamp_unit and schema.TIMESTAMP in targets:
        mapped = numeric_times(mapped, layout.timestamp_unit, layout.timestamp_origin)
    if schema.TARGET in targets:
        mapped = positive_labels(mapped, layout.target_positive)
    return mapped


def contract_columns(spec: DatasetSpec = CARD_FRAUD) -> tuple[str, ...]:
    """Columns a user's column may be mapped to: the core ones and those ``spec`` declares."""
    return (
        *spec.scoring_columns,
        *spec.sensitive_columns,
        schema.TARGET,
        schema.LABEL_AVAILABLE_AT,
    )


class IngestError(ValueError):
    """A data source cannot be read or mapped onto the contract."""


def read_table(path: str | Path, *, text_columns: Iterable[str] = ()) -> pd.DataFrame:
    """Read a CSV (``.csv``, ``.csv.gz``) or Parquet (``.parquet``, ``.pq``, a folder) table.

    Parameters
    ----------
    path : str or Path
        File, or folder of Parquet files (a partitioned dataset).
    text_columns : iterable of str
        CSV columns to read as text (identifiers); names absent from the file are ignored.

    Returns
    -------
    pandas.DataFrame
        The table as pandas infers it; at least one row.

    Raises
    ------
    IngestError
        Missing path, unsupported type, unreadable content, or no rows.
    """
    p = Path(path)
    if not p.exists():
        raise IngestError(f"input not found: {p}")
    if p.is_dir():
        return _non_empty(_read_parquet_dir(p), p)
    if not p.name.lower().endswith(CSV_SUFFIXES + PARQUET_SUFFIXES):
        raise IngestError(
            f"unsupported file type: {p}; accepted {', '.join(CSV_SUFFIXES + PARQUET_SUFFIXES)}"
        )
    if p.stat().st_size == 0:
        raise IngestError(f"input file is empty (0 bytes): {p}")
    if p.name.lower().endswith(PARQUET_SUFFIXES):
        return _non_empty(_read_parquet(p), p)
    return _non_empty(_read_csv(p, text_columns), p)


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise IngestError(f"not a valid Parquet file: {path} ({exc})") from exc


def _read_parquet_dir(path: Path) -> pd.DataFrame:
    files = [f for f in path.rglob("*") if f.name.lower().endswith(PARQUET_SUFFIXES)]
    if not files:
        raise IngestError(f"folder holds no Parquet files ({', '.join(PARQUET_SUFFIXES)}): {path}")
    try:
        return pd.read_parquet(path)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise IngestError(f"not a valid Parquet dataset: {path} ({exc})") from exc


def _read_csv(path: Path, text_columns: Iterable[str]) -> pd.DataFrame:
    try:
        return pd.read_csv(path, dtype={c: str for c in text_columns}, low_memory=False)
    except pd.errors.EmptyDataError as exc:
        raise IngestError(f"input file is empty (no columns): {path}") from exc
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, EOFError) as exc:
        raise IngestError(f"not a valid CSV file: {path} ({exc})") from exc


def _non_empty(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    if len(df) == 0:
        raise IngestError(f"input file is empty (no rows): {path}")
    return df


def apply_column_map(
    df: pd.DataFrame,
    column_map: dict[str, str],
    unmapped: str = "keep",
    spec: DatasetSpec = CARD_FRAUD,
) -> pd.DataFrame:
    """Rename a user's columns to the contract's names.

    Parameters
    ----------
    df : pandas.DataFrame
        The user's table.
    column_map : dict of str to str
        User column name -> contract column name (see :data:`CONTRACT_COLUMNS`).
    unmapped : {"keep", "drop"}
        What happens to columns that are neither mapped nor already named like a contract
        column.
    spec : DatasetSpec
        The dataset spec whose declared columns are valid targets too.

    Returns
    -------
    pandas.DataFrame
        A renamed copy.

    Raises
    ------
    IngestError
        Unknown target, two columns mapped to one target, a mapped column missing from the
        table, a rename that collides with an existing column, or a bad ``unmapped`` value.
    """
    if unmapped not in UNMAPPED_CHOICES:
        raise IngestError(
            f"unmapped_columns must be one of {list(UNMAPPED_CHOICES)}, got {unmapped!r}"
        )
    targets = contract_columns(spec)
    _check_column_map(column_map, [str(c) for c in df.columns], targets)
    renamed = df.rename(columns=column_map)
    if unmapped == "drop":
        kept = [c for c in renamed.columns if c in targets]
        renamed = renamed[kept]
    return renamed


def _check_column_map(
    column_map: dict[str, str], columns: list[str], targets: tuple[str, ...]
) -> None:
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in column_map.items()):
        raise IngestError(f"column_map must map column names to column names, got {column_map!r}")
    unknown = sorted(t for t in column_map.values() if t not in targets)
    if unknown:
        raise IngestError(
            f"column_map targets {unknown} are neither contract columns nor declared in the "
            f"dataset section; valid: {list(targets)}"
        )
    shared = sorted(t for t, n in Counter(column_map.values()).items() if n > 1)
    if shared:
        sources = {t: sorted(s for s, u in column_map.items() if u == t) for t in shared}
        raise IngestError(f"several columns map to the same contract column: {sources}")
    missing = sorted(s for s in column_map if s not in columns)
    if missing:
        raise IngestError(
            f"column_map names columns missing from the data: {missing}; has {columns}"
        )
    clashes = sorted(
        t for s, t in column_map.items() if t != s and t in columns and t not in column_map
    )
    if clashes:
        raise IngestError(
            f"column_map would rename onto existing column(s) {clashes}: "
            "map or rename those columns too"
        )


def load_source(
    params: DataSourceParams,
    *,
    base_dir: str | Path | None = None,
    spec: DatasetSpec = CARD_FRAUD,
) -> pd.DataFrame:
    """Read the user's file named by the ``data`` params and map it onto the contract.

    Parameters
    ----------
    params : DataSourceParams
        ``source`` must be ``"file"``; the simulator is a separate stage.
    base_dir : str or Path, optional
        Folder a relative ``params.path`` is resolved against (default: the working folder).
    spec : DatasetSpec
        The ``dataset`` section: its columns are valid ``column_map`` targets.

    Returns
    -------
    pandas.DataFrame
        Raw rows with contract column names, ready for
        ``validate_transactions(df, ..., timestamp_format=params.timestamp_format)``.

    Raises
    ------
    IngestError
        Wrong source, no path, or any error of :func:`read_table` / :func:`apply_column_map`.
    """
    if params.source not in SOURCES:
        raise IngestError(f"data.source must be one of {list(SOURCES)}, got {params.source!r}")
    if params.source != "file":
        raise IngestError(f"load_source reads files; data.source is {params.source!r}")
    if not params.path:
        raise IngestError("data.source is 'file' but data.path is empty")
    path = Path(params.path)
    if base_dir is not None and not path.is_absolute():
        path = Path(base_dir) / path
    id_sources = [s for s, t in params.column_map.items() if t in schema.ID_COLUMNS]
    df = read_table(path, text_columns=[*schema.ID_COLUMNS, *id_sources])
    mapped = apply_column_map(df, params.column_map, params.unmapped_columns, spec)
    if params.timestamp_unit:
        mapped = numeric_times(mapped, params.timestamp_unit, params.timestamp_origin)
    labelled = positive_labels(mapped, params.target_positive)
    if not spec.timed:
        labelled = with_row_order(labelled, params.timestamp_origin)
    if not spec.has_amount and schema.AMOUNT in labelled.columns:
        raise IngestError(
            "dataset.has_amount is false but the data has an amount column: declare "
            "has_amount: true, or leave the column out of data.column_map"
        )
    return with_generated_ids(labelled)


def with_row_order(df: pd.DataFrame, origin: str = "1970-01-01") -> pd.DataFrame:
    """A table without time: each row's place in the file as its ``timestamp`` (1 s per row).

    Nothing is featurized from it (the spec of such a table has no time features and no
    windows); it keeps the rows' order defined for everything that sorts by time.
    """
    if schema.TIMESTAMP in df.columns:
        raise IngestError(
            "dataset.timed is false but the data has a timestamp column: declare timed: true, "
            "or leave the column out of data.column_map"
        )
    order = pd.Timestamp(origin) + pd.to_timedelta(np.arange(len(df)), unit="s")
    return df.assign(**{schema.TIMESTAMP: order})


def positive_labels(df: pd.DataFrame, positive: str | None) -> pd.DataFrame:
    """``is_fraud`` as 1 where the label equals ``positive`` (compared as text), else 0.

    A blank label stays unknown (null). None leaves the labels as they are: 0 and 1, which the
    contract checks.
    """
    if positive is None or schema.TARGET not in df.columns:
        return df
    raw = df[schema.TARGET]
    text = raw.astype("string").str.strip()
    unknown = text.isna() | (text == "")
    if pd.api.types.is_numeric_dtype(raw.dtype):  # 2 = bad in a numeric code: compare numbers
        hit = raw == pd.to_numeric(pd.Series([positive]), errors="coerce").iloc[0]
    else:
        hit = text == str(positive).strip()
    labels = hit.fillna(False).astype("Int8").mask(unknown)
    return df.assign(**{schema.TARGET: labels})


def numeric_times(df: pd.DataFrame, unit: str, origin: str) -> pd.DataFrame:
    """``timestamp`` given as a number of ``unit`` since ``origin``, as datetimes.

    A value that is not a number becomes null, which the contract quarantines as
    ``null_key:timestamp``: the row is kept with its reason, not dropped.
    """
    if schema.TIMESTAMP not in df.columns:
        return df
    try:
        step = pd.Timedelta(1, unit=unit)
        start = pd.Timestamp(origin)
    except (ValueError, TypeError) as exc:
        raise IngestError(
            f"data.timestamp_unit {unit!r} / timestamp_origin {origin!r} is not a time unit "
            f"and a date ({exc})"
        ) from exc
    values = pd.to_numeric(df[schema.TIMESTAMP], errors="coerce")
    return df.assign(**{schema.TIMESTAMP: start + values * step})


def with_generated_ids(df: pd.DataFrame) -> pd.DataFrame:
    """A ``transaction_id`` for tables without one: the row's position in the file.

    The same file gives the same ids on every read, so reruns, quarantine and label feedback
    refer to the same rows.
    """
    if schema.TRANSACTION_ID in df.columns:
        return df
    ids = pd.RangeIndex(len(df)).to_numpy(dtype="int64")
    return pd.concat([pd.DataFrame({schema.TRANSACTION_ID: ids}, index=df.index), df], axis=1)
