"""Look at a user's table before it enters the pipeline: propose roles, and check a spec.

:func:`propose_roles` reads the columns of a CSV or Parquet file and guesses what each one
is (id, time, customer and terminal keys, amount, label, categorical or numeric feature,
sensitive attribute). The guess is a starting point written as the ``data`` and ``dataset``
params sections; a person confirms it, since a name like ``age`` may be a feature in one
table and a sensitive attribute in another.

:func:`check_table` applies the project's params (``data.column_map``, the timestamp
settings, the ``dataset`` section) to the file and lists every problem it finds, one clear
sentence each: a declared column that is missing, a role whose values do not fit it, a
label that is not binary, an empty file. Nothing is raised for a problem in the data, so a
command can print them all at once, without a traceback.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from inferloop.core import schema as s
from inferloop.core.config import ParamsError, load_section
from inferloop.core.dataset import BUILTIN_ENTITIES, DatasetSpec, load_dataset_spec
from inferloop.data.contract import load_contract
from inferloop.data.ingest import (
    SOURCES,
    DataSourceParams,
    IngestError,
    apply_column_map,
    numeric_times,
    positive_labels,
    read_table,
)

__all__ = [
    "ColumnGuess",
    "RoleProposal",
    "check_params",
    "check_table",
    "main",
    "propose_roles",
    "report_params",
]

_ID = re.compile(r"(^|_)(transaction|trans|tx|txn)_?id$", re.I)
_TIME = re.compile(r"(datetime|timestamp|^time$|^date$|^step$|tx_?time$|^ts$)", re.I)
_TARGET = re.compile(r"(fraud|^class$|^label$|^target$|^default|^y$)", re.I)
_AMOUNT = re.compile(r"(amount|amt|^value$)", re.I)
_CUSTOMER = re.compile(r"(customer|cust|card|account|orig|user|client|payer)", re.I)
_TERMINAL = re.compile(r"(terminal|merchant|dest|device|payee|shop|store)", re.I)
_SENSITIVE = re.compile(r"(^sex$|gender|^age|race|ethnic|religio|marital|nationality)", re.I)
_DERIVED = re.compile(r"(scenario|flagged|_time_seconds$|_time_days$)", re.I)

#: Text columns with at most this many distinct values are proposed as categorical.
MAX_CATEGORIES = 50


@dataclass(frozen=True)
class ColumnGuess:
    """One column as read: its type, nulls, distinct values, and the role proposed for it."""

    name: str
    dtype: str
    nulls: int
    distinct: int
    role: str
    why: str


@dataclass
class RoleProposal:
    """The roles proposed for a table, as params sections (:meth:`as_params`)."""

    path: str
    rows: int
    columns: list[ColumnGuess]
    column_map: dict[str, str] = field(default_factory=dict)
    timestamp_unit: str | None = None
    categorical: list[str] = field(default_factory=list)
    numeric: list[str] = field(default_factory=list)
    sensitive: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def timed(self) -> bool:
        """Whether a column was taken for the timestamp."""
        return s.TIMESTAMP in set(self.column_map.values()) | {c.name for c in self.columns}

    @property
    def has_amount(self) -> bool:
        """Whether a column was taken for the amount."""
        return s.AMOUNT in set(self.column_map.values()) | {c.name for c in self.columns}

    @property
    def entities(self) -> list[str]:
        """The built-in entities whose key columns were found (none without time: windows need
        it)."""
        mapped = set(self.column_map.values()) | {c.name for c in self.columns}
        found = [name for name, e in BUILTIN_ENTITIES.items() if e.column in mapped]
        return found if self.timed else []

    def as_params(self) -> dict[str, Any]:
        """The ``data`` and ``dataset`` sections this proposal amounts to."""
        return {
            "data": {
                "source": "file",
                "path": self.path,
                "column_map": dict(self.column_map),
                "unmapped_columns": "drop",
                "timestamp_format": None,
                "timestamp_unit": self.timestamp_unit,
                "timestamp_origin": "1970-01-01",
            },
            "dataset": {
                "name": Path(self.path).stem,
                "timed": self.timed,
                "has_amount": self.has_amount,
                "entities": self.entities,
                "categorical_features": {c: [] for c in self.categorical},
                "numeric_features": list(self.numeric),
                "sensitive_attributes": {c: [] for c in self.sensitive},
                "unseen_category": "quarantine",
                "max_learned_categories": 30,
            },
        }


def _is_binary(values: pd.Series) -> bool:
    numeric = pd.to_numeric(values.dropna(), errors="coerce")
    return bool(len(numeric)) and bool(numeric.notna().all()) and set(numeric.unique()) <= {0, 1}


def _looks_like_datetime(values: pd.Series) -> bool:
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return True
    if not (values.dtype == object or pd.api.types.is_string_dtype(values.dtype)):
        return False
    sample = values.dropna().astype(str).head(200)
    parsed = pd.to_datetime(sample, errors="coerce", format="ISO8601")
    return bool(len(sample)) and bool(parsed.notna().mean() > 0.95)


def _guess(name: str, values: pd.Series, taken: set[str]) -> tuple[str, str]:
    """The role of one column and why (the first rule that fits; ``taken`` roles are used)."""
    numeric = pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(
        values.dtype
    )
    distinct = int(values.nunique(dropna=True))
    rules: list[tuple[str, bool, str]] = [
        ("ignore", bool(_DERIVED.search(name)), "derived from another column or from the label"),
        (s.TRANSACTION_ID, bool(_ID.search(name)) and distinct == len(values), "unique per row"),
        (s.TARGET, bool(_TARGET.search(name)) and _is_binary(values), "binary 0/1, named so"),
        (s.TIMESTAMP, _looks_like_datetime(values), "datetimes"),
        (s.TIMESTAMP, numeric and bool(_TIME.search(name)), "numeric time"),
        (s.AMOUNT, numeric and bool(_AMOUNT.search(name)), "a number named like an amount"),
        ("sensitive", bool(_SENSITIVE.search(name)), "named like a protected attribute: confirm"),
        (s.CUSTOMER_ID, bool(_CUSTOMER.search(name)) and distinct > 1, "a key named so"),
        (s.TERMINAL_ID, bool(_TERMINAL.search(name)) and distinct > 1, "a key named so"),
        ("numeric", numeric, "numbers"),
        ("categorical", distinct <= MAX_CATEGORIES, f"text with {distinct} values"),
    ]
    for role, fits, why in rules:
        if fits and (
            role not in taken or role in {"ignore", "numeric", "categorical", "sensitive"}
        ):
            return role, why
    return "ignore", f"text with {distinct:,} values: too many for a category"


def propose_roles(path: str | Path) -> RoleProposal:
    """Read ``path`` and propose a role for each column (see the module docstring).

    Raises
    ------
    IngestError
        When the file cannot be read or holds no rows.
    """
    table = read_table(path)
    proposal = RoleProposal(str(path), len(table), [])
    taken: set[str] = set()
    for column in table.columns:
        name, values = str(column), table[column]
        role, why = _guess(name, values, taken)
        taken.add(role)
        proposal.columns.append(
            ColumnGuess(
                name, str(values.dtype), int(values.isna().sum()), int(values.nunique()), role, why
            )
        )
        _record(proposal, name, role, values)
    if s.TIMESTAMP not in taken:
        proposal.notes.append(
            "no column looks like a timestamp: a table without time (timed: false) is split at "
            "random and has no windows; map one onto timestamp if it has time"
        )
    if s.AMOUNT not in taken:
        proposal.notes.append(
            "no column looks like the amount role: map one in column_map, or keep "
            "has_amount: false (no amount features, windows count events only)"
        )
    if s.TARGET not in taken:
        proposal.notes.append(f"no column looks like the {s.TARGET} role: map one in column_map")
    for kind, entity in BUILTIN_ENTITIES.items():
        if entity.column not in taken:
            proposal.notes.append(
                f"no column looks like a {kind} key: its window features are off (map one onto "
                f"{entity.column} and add {kind} to dataset.entities to have them, or declare "
                "your own key column as an entity)"
            )
    if s.TRANSACTION_ID not in taken:
        proposal.notes.append("no transaction id: one is generated from each row's position")
    return proposal


def _record(proposal: RoleProposal, name: str, role: str, values: pd.Series) -> None:
    if role in {s.TRANSACTION_ID, s.TARGET, s.TIMESTAMP, s.AMOUNT, s.CUSTOMER_ID, s.TERMINAL_ID}:
        if name != role:
            proposal.column_map[name] = role
        if role == s.TIMESTAMP and pd.api.types.is_numeric_dtype(values.dtype):
            proposal.timestamp_unit = "h" if name.lower() == "step" else "s"
    elif role == "numeric":
        proposal.numeric.append(name)
    elif role == "categorical":
        proposal.categorical.append(name)
    elif role == "sensitive":
        proposal.sensitive.append(name)


def check_table(path: str | Path, source: DataSourceParams, spec: DatasetSpec) -> list[str]:
    """Every problem of ``path`` under the params' column map and dataset spec (empty: none).

    Each problem is one sentence that names the column and what is wrong with it.
    """
    try:
        table = read_table(path)
        mapped = apply_column_map(table, source.column_map, source.unmapped_columns, spec)
        if source.timestamp_unit:
            mapped = numeric_times(mapped, source.timestamp_unit, source.timestamp_origin)
        mapped = positive_labels(mapped, source.target_positive)
    except IngestError as exc:
        return [str(exc)]
    problems = [
        f"column {c!r} (declared as {role}) is not in the file after data.column_map; "
        f"the file has {sorted(map(str, mapped.columns))}"
        for c, role in _declared(spec)
        if c not in mapped.columns
    ]
    present = [(c, role) for c, role in _declared(spec) if c in mapped.columns]
    problems += [p for c, role in present if (p := _role_problem(mapped[c], c, role, source))]
    return problems


def check_params(params_path: str | Path, root: str | Path = ".") -> list[str]:
    """Every problem of the ``data``, ``dataset`` and ``validate`` sections, and of the file
    ``data.path`` names when the source is a file (empty: none), one sentence each.

    ``dvc repro`` runs this before the first stage, so that a bad spec or a bad file stops the
    pipeline with its own message instead of a notebook's traceback.
    """
    problems: list[str] = []
    loaded: dict[str, Any] = {}
    for name, load in (
        ("dataset", lambda: load_dataset_spec(params_path)),
        ("data", lambda: load_section(DataSourceParams, "data", params_path)),
        ("validate", lambda: load_contract(params_path)),
    ):
        try:
            loaded[name] = load()
        except ParamsError as exc:
            problems.append(str(exc))
    source: DataSourceParams | None = loaded.get("data")
    if source is None:
        return problems
    if source.source not in SOURCES:
        problems.append(f"data.source must be one of {list(SOURCES)}, got {source.source!r}")
    elif source.source == "file":
        path = Path(root) / source.path
        if not source.path or not path.exists():
            problems.append(
                f"data.path {source.path!r} does not exist (data.source is file): put your CSV "
                "or Parquet file there, or set data.path"
            )
        elif "dataset" in loaded:
            problems += check_table(path, source, loaded["dataset"])
    return problems


def _declared(spec: DatasetSpec) -> list[tuple[str, str]]:
    core = [
        *(((s.TIMESTAMP, "the timestamp"),) if spec.timed else ()),
        *((e.column, f"the {e.name} key") for e in spec.entities),
        *(((s.AMOUNT, "the amount"),) if spec.has_amount else ()),
        (s.TARGET, "the label"),
    ]
    return [
        *core,
        *((c, "a categorical feature") for c in spec.categorical_columns),
        *((c, "a numeric feature") for c in spec.numeric_features),
        *((c, "a sensitive attribute") for c in spec.sensitive_columns),
    ]


def _role_problem(values: pd.Series, column: str, role: str, source: DataSourceParams) -> str:
    """What is wrong with one declared column's values ("" when nothing)."""
    if role == "the label" and not _is_binary(values):
        shown = sorted(map(str, values.dropna().unique()[:5]))
        return (
            f"column {column!r} (the label) must hold 0 and 1 only; it holds {shown} "
            "(a text label: set data.target_positive to the value that means positive)"
        )
    if role in {"the amount", "a numeric feature"}:
        numbers = pd.to_numeric(values, errors="coerce")
        bad = float(numbers.isna().mean())
        if bad > 0.5:
            return f"column {column!r} ({role}) is not numeric: {bad:.0%} of its values are not numbers"
    if role == "the timestamp":
        parsed = (
            values
            if pd.api.types.is_datetime64_any_dtype(values.dtype)
            else pd.to_datetime(
                values.astype(str), errors="coerce", format=source.timestamp_format or "ISO8601"
            )
        )
        bad = float(pd.isna(parsed).mean())
        if bad > 0.5:
            hint = "" if source.timestamp_unit else " (numeric time needs data.timestamp_unit)"
            return f"column {column!r} (the timestamp): {bad:.0%} of its values are not times{hint}"
    if role == "a categorical feature" and values.nunique() > 1000:
        return (
            f"column {column!r} (a categorical feature) has {values.nunique():,} distinct values: "
            "a key or free text, not a category"
        )
    if role.endswith("key") and values.nunique() == len(values) > 1:
        return f"column {column!r} ({role}) is unique per row: no history to learn from"
    return ""


def report_params(params_path: str | Path) -> int:
    """Print :func:`check_params`'s problems to stderr, one line each; 1 if any, else 0."""
    problems = check_params(params_path)
    for problem in problems:
        print(f"- {problem}", file=sys.stderr)
    if problems:
        print(f"{params_path}: {len(problems)} problem(s); nothing was run", file=sys.stderr)
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    """``python -m inferloop.data.inspect [PARAMS]``: the pipeline's check before its first stage.

    A module entry point rather than the ``inferloop`` CLI, so that the stage depends on this
    module's imports only, not on every command's.
    """
    args = sys.argv[1:] if argv is None else argv
    return report_params(args[0] if args else "params.yaml")


if __name__ == "__main__":
    raise SystemExit(main())
