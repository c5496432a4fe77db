"""Reading scoring inputs: file lists, schemas, and bounded-memory chunks of Parquet and CSV.

Files are streamed with ``pyarrow`` (Parquet record batches, CSV blocks) and never loaded
whole. CSV lines that cannot be parsed at all are kept with their raw text
(``malformed_csv_row``) so that they can be quarantined.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from inferloop.core import schema as s
from inferloop.data.ingest import InputLayout

__all__ = [
    "INPUT_SUFFIXES",
    "MALFORMED_CSV_ROW",
    "MANIFEST_NAME",
    "PART_FILE",
    "RAW_LINE",
    "RawChunk",
    "ScoringInputError",
    "check_inputs",
    "file_sha256",
    "input_columns",
    "input_rows",
    "iter_chunks",
    "list_inputs",
]


INPUT_SUFFIXES = (".parquet", ".pq", ".csv")
MANIFEST_NAME = "_manifest.json"
MALFORMED_CSV_ROW = "malformed_csv_row"
RAW_LINE = "raw_line"
_READ_BATCH_ROWS = 65_536
_CSV_BLOCK_BYTES = 8 << 20
PART_FILE = re.compile(r"^part-.*\.parquet$")


class ScoringInputError(ValueError):
    """The input cannot be scored at all (no files, unreadable, wrong columns, changed)."""


# --------------------------------------------------------------------------- the model


def list_inputs(spec: str | Path) -> list[Path]:
    """Input files of ``spec``: a file, a folder (its CSV/Parquet files) or a glob pattern.

    Files are returned sorted by name: name files so that this is time order (e.g. by date).
    """
    path = Path(spec)
    if path.is_dir():
        files = [p for p in path.iterdir() if p.is_file()]
    elif path.is_file():
        files = [path]
    else:
        files = [Path(p) for p in _glob(str(spec)) if Path(p).is_file()]
    files = sorted(
        (
            p
            for p in files
            if p.suffix.lower() in INPUT_SUFFIXES and not p.name.startswith((".", "_"))
        ),
        key=lambda p: (p.name, str(p)),
    )
    if not files:
        raise ScoringInputError(f"no CSV or Parquet files match {spec!s}")
    _check_unique_stems(files)
    return files


def _glob(pattern: str) -> list[str]:
    import glob

    return glob.glob(pattern, recursive=True)


def _check_unique_stems(files: list[Path]) -> None:
    seen: dict[str, Path] = {}
    for path in files:
        if path.stem in seen:
            raise ScoringInputError(
                f"two inputs share the name {path.stem!r} ({seen[path.stem]} and {path}): "
                "output parts are named after inputs; rename one"
            )
        seen[path.stem] = path


def input_columns(path: Path) -> list[str]:
    """Column names of a CSV header or a Parquet schema (raises :class:`ScoringInputError`)."""
    import pyarrow as pa

    try:
        if _is_csv(path):
            return list(_open_csv(path, None, []).schema.names)
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    except (pa.ArrowException, OSError) as exc:
        raise ScoringInputError(f"cannot read {path}: {exc}") from exc


def check_inputs(
    files: list[Path],
    required: Sequence[str] = s.SCORING_COLUMNS,
    layout: InputLayout | None = None,
) -> None:
    """Fail before scoring anything if an input lacks a required column.

    ``required`` is the model's ``input_columns``: the scoring columns, and the attribute a
    post-processed model decides with. With a ``layout``, a column may also come under the
    file's own name (``data.column_map``).
    """
    for path in files:
        present = set(input_columns(path))
        names = layout.names_for if layout is not None else lambda c: (c,)
        missing = [c for c in required if present.isdisjoint(names(c))]
        if missing:
            raise ScoringInputError(
                f"{path} lacks required column(s) {missing}; required {list(required)}"
                + _mapped_hint(missing, layout)
            )


def _mapped_hint(missing: list[str], layout: InputLayout | None) -> str:
    """Which of the file's own names would have done (the column map's sources)."""
    if layout is None:
        return ""
    sources = {c: list(layout.names_for(c)[1:]) for c in missing if layout.names_for(c)[1:]}
    hint = f" (or, in the training file's names, {sources})" if sources else ""
    if s.TRANSACTION_ID in missing and not layout.names_for(s.TRANSACTION_ID)[1:]:
        hint += (
            "; the training file had no id (one was generated from each row's place in it), "
            "but rows scored later need ids of their own: exactly-once scoring keys on them"
        )
    return hint


def input_rows(path: Path) -> int | None:
    """Row count from Parquet metadata; ``None`` for CSV (unknown without reading it)."""
    if _is_csv(path):
        return None
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(path).metadata.num_rows)


def file_sha256(path: Path, block: int = 1 << 20) -> str:
    """Content hash of a file, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while data := fh.read(block):
            digest.update(data)
    return digest.hexdigest()


@dataclass
class RawChunk:
    """One chunk of an input file, as read (no validation yet)."""

    index: int
    table: Any  # pyarrow.Table
    malformed: list[str] = field(default_factory=list)

    @property
    def frame(self) -> pd.DataFrame:
        """The chunk's rows as pandas (converted on demand: skipped chunks never are)."""
        return self.table.to_pandas()

    @property
    def rows_in(self) -> int:
        """Rows read, counting CSV lines that could not be parsed."""
        return int(self.table.num_rows) + len(self.malformed)


def iter_chunks(path: Path, chunk_rows: int) -> Iterator[RawChunk]:
    """Chunks of exactly ``chunk_rows`` rows (the last may be smaller), in file order.

    CSV columns are read as text (the data contract parses them, so a bad value quarantines
    one row instead of failing the file); Parquet columns keep their types.
    """
    if chunk_rows <= 0:
        raise ValueError(f"chunk_rows must be positive, got {chunk_rows}")
    malformed: list[str] = []
    batches = _read_batches(path, malformed)
    index = -1
    for index, table in enumerate(_rechunk(batches, chunk_rows)):
        yield RawChunk(index, table, _drain(malformed))
    if malformed:  # lines that failed to parse after the last good row
        yield RawChunk(index + 1, _empty_table(input_columns(path)), _drain(malformed))


def _empty_table(columns: list[str]) -> Any:
    import pyarrow as pa

    return pa.table({c: pa.array([], pa.string()) for c in columns})


def _drain(items: list[str]) -> list[str]:
    taken = list(items)
    items.clear()
    return taken


def _is_csv(path: Path) -> bool:
    return path.suffix.lower() == ".csv"


def _read_batches(path: Path, malformed: list[str]) -> Iterator[Any]:
    if _is_csv(path):
        names = input_columns(path)
        return iter(_open_csv(path, names, malformed))
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).iter_batches(batch_size=_READ_BATCH_ROWS)


def _open_csv(path: Path, text_columns: list[str] | None, malformed: list[str]) -> Any:
    """A streaming CSV reader; with ``text_columns`` every column is read as text."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    def keep_bad_line(row: Any) -> str:
        malformed.append(str(row.text))
        return "skip"

    convert = pcsv.ConvertOptions(strings_can_be_null=True)
    if text_columns is not None:
        convert = pcsv.ConvertOptions(
            column_types={c: pa.string() for c in text_columns}, strings_can_be_null=True
        )
    return pcsv.open_csv(
        path,
        read_options=pcsv.ReadOptions(block_size=_CSV_BLOCK_BYTES, use_threads=False),
        parse_options=pcsv.ParseOptions(invalid_row_handler=keep_bad_line),
        convert_options=convert,
    )


def _rechunk(batches: Iterable[Any], rows: int) -> Iterator[Any]:
    """Regroup Arrow record batches into tables of exactly ``rows`` rows (zero-copy slices)."""
    import pyarrow as pa

    pending: list[Any] = []
    count = 0
    for batch in batches:
        pending.append(batch)
        count += batch.num_rows
        while count >= rows:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, rows)
            rest = table.slice(rows)
            pending, count = rest.to_batches(), rest.num_rows
    if count:
        yield pa.Table.from_batches(pending)


# --------------------------------------------------------------------------- one chunk
