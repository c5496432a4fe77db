"""Batch scoring of transaction files with a registered model: chunked, resumable, idempotent.

One run scores Parquet or CSV files with one model version and writes, per input chunk::

    OUTPUT/<model>-v<version>/part-<input-stem>-<chunk>.parquet       scored rows
    QUARANTINE/<model>-v<version>/part-<input-stem>-<chunk>.parquet   rejected rows + reason
    OUTPUT/<model>-v<version>/_manifest.json                          counts, finished chunks
    OUTPUT/<model>-v<version>/_state-<n>.pkl                          featurizer checkpoint

``QUARANTINE`` defaults to ``OUTPUT/_quarantine``. Readers that skip names starting with ``_``
or ``.`` (pyarrow, Spark, pandas) see only scored rows when they read ``OUTPUT``; the version
lives in the folder name and in the ``model_version`` column (a hive-style
``model_version=N`` folder would clash with that column when the dataset is read).

Guarantees:

* Memory is bounded by the chunk size: files are streamed with ``pyarrow`` (Parquet record
  batches, CSV blocks) and never loaded whole.
* Every row read lands in exactly one output: rows in = rows scored + rows quarantined, per
  chunk and in the manifest's totals. CSV lines that cannot be parsed at all are quarantined
  with their raw text (``malformed_csv_row``).
* Parts are written to a temporary file and renamed, then the manifest records the chunk, so
  a killed run never leaves a partial part visible and a rerun resumes after the last finished
  chunk (a chunk whose part was written but not recorded is rewritten under the same name).
  A second run over the same inputs with the same model changes nothing.
* Point-in-time features: the model's featurizer advances over each chunk after scoring it,
  and a checkpoint of that state is saved with every finished chunk, so chunked scoring of a
  time-sorted file equals scoring it whole, also across a resume. Rows older than the newest
  row already scored ("late" rows) are scored first, against the history before them.

The predict path is ``mlflow.pyfunc.load_model`` of the pinned ``models:/name/version`` URI,
then ``unwrap_python_model().score_frame``: the very method the pyfunc ``predict`` (and so
``mlflow models serve``) calls after its own input coercion. Calling it directly skips a
second validation of rows the data contract has just validated, and lets the scorer advance
the model's point-in-time history between chunks (``predict`` on a fresh model copy could not).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from inferloop.core import schema as s
from inferloop.core.storage import read_json, read_pickle, write_json, write_parquet, write_pickle
from inferloop.data.contract import ContractParams, load_contract, validate_transactions
from inferloop.evaluation.reasons import REASON_COLUMNS
from inferloop.model import LiveScorer
from inferloop.scoring.inputs import (
    MALFORMED_CSV_ROW,
    MANIFEST_NAME,
    PART_FILE,
    RAW_LINE,
    RawChunk,
    ScoringInputError,
    check_inputs,
    file_sha256,
    input_rows,
    iter_chunks,
    list_inputs,
)
from inferloop.scoring.live_state import seed_state
from inferloop.scoring.loading import (
    ScoringModel,
    load_scoring_model,
    partition_name,
    resolve_model,
)
from inferloop.state.base import FeatureState

__all__ = [
    "ChunkOutcome",
    "Manifest",
    "ScoreParams",
    "ScoreRun",
    "apply_contract",
    "load_score_settings",
    "prediction_table",
    "reconcile",
    "score_chunk",
    "score_files",
    "write_summary",
    "write_table_atomic",
]


@dataclass(frozen=True)
class ScoreParams:
    """The ``score`` section of ``params.yaml``."""

    model_uri: str = "models:/fraud-detector@champion"
    chunk_rows: int = 100_000
    spark_master: str = "local[2]"


@dataclass
class ChunkOutcome:
    """What scoring one chunk produced (before anything is written)."""

    scored: Any  # pyarrow.Table of predictions
    quarantine: pd.DataFrame
    by_reason: dict[str, int]
    rows_in: int
    late_rows: int
    older_rows: int = 0
    retried_rows: int = 0  # rows the feature state had already scored (their scores kept)

    @property
    def rows_scored(self) -> int:
        """Rows with a prediction."""
        return int(self.scored.num_rows)

    @property
    def rows_quarantined(self) -> int:
        """Rows rejected by the contract or unparseable."""
        return len(self.quarantine)


def apply_contract(
    chunk: RawChunk, contract: ContractParams, timestamp_format: str | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int]]:
    """``(valid, quarantine, by_reason)`` of one chunk under the scoring contract.

    Unparseable CSV lines join the quarantine with their raw text in ``raw_line``.
    """
    frame = chunk.frame
    if len(frame):
        result = validate_transactions(
            frame, contract, require_target=False, timestamp_format=timestamp_format
        )
        valid, quarantine = result.valid, result.quarantine
        by_reason = dict(result.summary["by_reason"])
    else:
        valid = frame
        quarantine = pd.DataFrame(columns=[*frame.columns, s.REJECT_REASON])
        by_reason = {}
    if chunk.malformed:
        bad = pd.DataFrame({RAW_LINE: chunk.malformed, s.REJECT_REASON: MALFORMED_CSV_ROW})
        quarantine = bad if quarantine.empty else pd.concat([quarantine, bad], ignore_index=True)
        by_reason[MALFORMED_CSV_ROW] = len(chunk.malformed)
    return valid, quarantine, by_reason


def score_chunk(
    chunk: RawChunk,
    scorer: LiveScorer,
    model: ScoringModel,
    contract: ContractParams,
    timestamp_format: str | None = None,
) -> ChunkOutcome:
    """Validate one chunk, score its valid rows and build its prediction table."""
    valid, quarantine, by_reason = apply_contract(chunk, contract, timestamp_format)
    late_before, older_before = scorer.late_rows, scorer.older_rows
    retried_before = scorer.retried_rows
    scored = scorer.score(valid, with_reasons=True)
    timestamps = valid[s.TIMESTAMP] if len(valid) else pd.Series([], dtype="datetime64[ns]")
    models = scorer.last_models if scorer.state is not None and len(valid) else None
    table = prediction_table(scored, timestamps, model, pd.Timestamp.now(tz="UTC"), models)
    outcome = ChunkOutcome(
        table,
        quarantine,
        by_reason,
        chunk.rows_in,
        scorer.late_rows - late_before,
        scorer.older_rows - older_before,
        scorer.retried_rows - retried_before,
    )
    if outcome.rows_in != outcome.rows_scored + outcome.rows_quarantined:
        raise AssertionError(f"chunk {chunk.index} lost rows: {outcome}")
    return outcome


def prediction_table(
    scored: pd.DataFrame,
    timestamps: pd.Series,
    model: ScoringModel,
    scored_at: pd.Timestamp,
    models: np.ndarray | None = None,
) -> Any:
    """Prediction rows as an Arrow table: id, event time, score, decision, model, scoring time.

    The reason-code columns follow when ``scored`` has them (filled for alerts).

    ``models`` gives, per row, the ``name:version`` that made its score when it differs from
    ``model``: a transaction the feature state had already scored keeps its first score, and
    the row says which model made it.
    """
    import pyarrow as pa

    n = len(scored)
    if models is not None and len(models) == n and (models != _label(model)).any():
        names, versions = zip(*(_split_label(m, model) for m in models.tolist()), strict=True)
        table = prediction_table(scored, timestamps, model, scored_at)
        table = table.set_column(
            table.schema.get_field_index(s.MODEL_NAME), s.MODEL_NAME, pa.array(names, pa.string())
        )
        index = table.schema.get_field_index(s.MODEL_VERSION)
        return table.set_column(index, s.MODEL_VERSION, pa.array(versions, pa.string()))
    return pa.table(
        {
            s.TRANSACTION_ID: pa.Array.from_pandas(scored[s.TRANSACTION_ID].reset_index(drop=True)),
            s.TIMESTAMP: pa.array(timestamps.to_numpy(dtype="datetime64[us]")),
            s.SCORE: pa.array(scored[s.SCORE].to_numpy(dtype=np.float64)),
            s.DECISION: pa.array(scored[s.DECISION].to_numpy(dtype=np.int8)),
            s.MODEL_NAME: pa.repeat(pa.scalar(model.name, pa.string()), n),
            s.MODEL_VERSION: pa.repeat(pa.scalar(model.version, pa.string()), n),
            s.SCORED_AT: pa.repeat(pa.scalar(scored_at, pa.timestamp("us", tz="UTC")), n),
            **_reason_arrays(scored),
        }
    )


def _reason_arrays(scored: pd.DataFrame) -> dict[str, Any]:
    """The reason-code columns of ``scored`` as typed Arrow arrays (nulls where none)."""
    import pyarrow as pa

    out: dict[str, Any] = {}
    for column in REASON_COLUMNS:
        if column not in scored.columns:
            continue
        values = scored[column].to_numpy()
        if column.endswith("_contribution"):
            out[column] = pa.array(values.astype(np.float64), pa.float64(), from_pandas=True)
        else:
            # None or NaN (pandas fills missing text with NaN when it concatenates parts)
            names = [v if isinstance(v, str) else None for v in values.tolist()]
            out[column] = pa.array(names, pa.string())
    return out


def _label(model: ScoringModel) -> str:
    return f"{model.name}:{model.version}"


def _split_label(label: str, model: ScoringModel) -> tuple[str, str]:
    name, _, version = label.rpartition(":")
    return (name, version) if name else (model.name, model.version)


def write_table_atomic(table: Any, path: Path) -> None:
    """Write an Arrow table as Parquet to a hidden temporary file, then rename it into place."""
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


# --------------------------------------------------------------------------- the manifest


def _now() -> str:
    return pd.Timestamp.now(tz="UTC").isoformat()


class Manifest:
    """The run manifest: model, contract, inputs, finished chunks, totals, checkpoint.

    Saved atomically after every finished chunk; the chunk list is what a resumed run skips.
    """

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path = path
        self.data = data

    @classmethod
    def open(cls, path: Path, model: dict[str, str], contract: dict[str, Any]) -> Manifest:
        """Load the manifest at ``path`` or start one; refuse one written under other settings."""
        if not path.is_file():
            return cls(path, {"model": model, "contract": contract, "files": {}, "state": None})
        data = read_json(path)
        if data.get("contract") != contract:
            raise ScoringInputError(
                f"{path} was written with other contract settings {data.get('contract')}; "
                "use --restart to rescore with the current ones"
            )
        return cls(path, data)

    def file(self, path: Path, sha256: str, chunk_rows: int) -> dict[str, Any]:
        """The entry of an input file; refuses a file whose content changed since it was scored."""
        files: dict[str, Any] = self.data["files"]
        entry = files.get(path.name)
        if entry is not None and entry["sha256"] != sha256 and entry["chunks"]:
            raise ScoringInputError(
                f"{path} changed since it was scored into {self.path.parent}; "
                "use --restart to rescore everything, or give the new data a new file name"
            )
        if entry is None or not entry["chunks"]:
            entry = {
                "path": str(path),
                "sha256": sha256,
                "chunk_rows": chunk_rows,
                "chunks": [],
                "complete": False,
            }
            files[path.name] = entry
        return entry

    @staticmethod
    def done_chunks(entry: dict[str, Any]) -> set[int]:
        """Chunks of a file that a previous run finished (and the checkpoint includes)."""
        return {int(c["chunk"]) for c in entry["chunks"]}

    def record(self, entry: dict[str, Any], record: dict[str, Any], state: str | None) -> None:
        """Record a finished chunk and the checkpoint that includes it, then save."""
        entry["chunks"] = [c for c in entry["chunks"] if c["chunk"] != record["chunk"]] + [record]
        entry["chunks"].sort(key=lambda c: c["chunk"])
        self.data["state"] = state
        self.save()

    def totals(self) -> dict[str, Any]:
        """Counts over every finished chunk of every file in the manifest."""
        chunks = [c for f in self.data["files"].values() for c in f["chunks"]]
        by_reason: dict[str, int] = {}
        for c in chunks:
            for reason, n in c["by_reason"].items():
                by_reason[reason] = by_reason.get(reason, 0) + n
        # retried_rows: with a feature state, rows whose id it had scored (their scores kept)
        keys = (
            "rows_in",
            "rows_scored",
            "rows_quarantined",
            "late_rows",
            "older_rows",
            "retried_rows",
        )
        out: dict[str, Any] = {k: sum(int(c.get(k, 0)) for c in chunks) for k in keys}
        out.update(
            by_reason=dict(sorted(by_reason.items())),
            chunks=len(chunks),
            files=len(self.data["files"]),
        )
        return out

    def save(self) -> None:
        """Write atomically with fresh totals."""
        self.data["totals"] = self.totals()
        self.data["updated_at"] = _now()
        write_json(self.data, self.path)


# --------------------------------------------------------------------------- a run


@dataclass
class ScoreRun:
    """Outcome of :func:`score_files`."""

    run_dir: Path
    manifest_path: Path
    model_name: str
    model_version: str
    totals: dict[str, Any]
    this_run: dict[str, int]
    complete: bool
    engine: str = "local"

    def describe(self) -> str:
        """Counts for the CLI: this invocation and the whole partition."""
        t, r = self.totals, self.this_run
        status = "complete" if self.complete else "INCOMPLETE (run again to resume)"
        older = t.get("older_rows", 0)  # rows tied with the newest second are exact: no note
        note = (
            f"note: {older:,} row(s) were older than rows already scored; sort inputs by time "
            "for exact point-in-time features\n"
            if older
            else ""
        )
        retried = t.get("retried_rows", 0)
        if retried:
            note += (
                f"note: {retried:,} row(s) had been scored before (same transaction id in the "
                "feature state): their first score is kept, and model_version names its model\n"
            )
        return (
            f"{self.model_name} v{self.model_version} ({self.engine}): this run scored "
            f"{r['chunks']} chunk(s), skipped {r['skipped_chunks']} finished: rows in "
            f"{r['rows_in']:,} = scored {r['rows_scored']:,} + quarantined "
            f"{r['rows_quarantined']:,}\n"
            f"all runs: rows in {t['rows_in']:,} = scored {t['rows_scored']:,} + quarantined "
            f"{t['rows_quarantined']:,}{_reasons(t['by_reason'])}\n{note}"
            f"{status}: predictions {self.run_dir}, manifest {self.manifest_path}"
        )


def _reasons(by_reason: dict[str, int]) -> str:
    return f" ({', '.join(f'{k}: {v:,}' for k, v in by_reason.items())})" if by_reason else ""


@dataclass
class _RunContext:
    """Everything one run's chunk loop needs."""

    model: ScoringModel
    scorer: LiveScorer
    manifest: Manifest
    contract: ContractParams
    timestamp_format: str | None
    quarantine_dir: Path
    counts: dict[str, int]
    on_chunk: Callable[[int], None]


def score_files(
    inputs: str | Path,
    output_dir: str | Path,
    *,
    model_uri: str,
    contract: ContractParams,
    chunk_rows: int = 100_000,
    quarantine_dir: str | Path | None = None,
    timestamp_format: str | None = None,
    max_chunks: int | None = None,
    restart: bool = False,
    progress: bool = False,
    chunk_delay: float = 0.0,
    state: FeatureState | None = None,
) -> ScoreRun:
    """Score every file of ``inputs`` with ``model_uri`` into ``output_dir``.

    Parameters
    ----------
    inputs : str or Path
        A CSV/Parquet file, a folder of them, or a glob; processed in name order.
    output_dir : str or Path
        Root of the predictions; this model version's parts go to ``<name>-v<version>/``.
    model_uri : str
        ``models:/name@alias``, ``models:/name/version`` or any pyfunc URI.
    contract : ContractParams
        Limits of the data contract (applied with ``require_target=False``).
    chunk_rows : int
        Rows per chunk: the unit of memory, of output parts and of resumption. A file that
        was partly scored keeps the chunk size it was started with.
    quarantine_dir : str or Path, optional
        Root of quarantined rows; ``output_dir/_quarantine`` by default.
    timestamp_format : str, optional
        ``strftime`` format of text timestamps (ISO 8601 by default).
    max_chunks : int, optional
        Stop after scoring this many chunks (the rest is left for a later run).
    restart : bool
        Delete this model version's previous outputs and manifest first.
    progress : bool
        Show a progress bar on stderr.
    chunk_delay : float
        Seconds to sleep after each finished chunk (lets tests kill a run mid-way).
    state : FeatureState, optional
        The feature state: each chunk reads its entities' events once and writes its scored
        events back in one transaction (seeded from the model when empty). The store is then
        the checkpoint of a resumed run: a chunk scored again after a kill finds its events
        and keeps their scores. None scores against the model's in-memory history, advanced
        chunk by chunk and checkpointed next to the predictions.

    Returns
    -------
    ScoreRun
        Counts of this invocation and totals of the partition.

    Raises
    ------
    ScoringInputError
        Unusable input: nothing matches, unreadable file, missing columns, changed content.
    """
    files = list_inputs(inputs)
    check_inputs(files, contract.dataset.scoring_columns, contract.layout)
    name, version, pinned = resolve_model(model_uri)
    run_dir = Path(output_dir) / partition_name(name, version)
    qroot = Path(quarantine_dir) if quarantine_dir is not None else Path(output_dir) / "_quarantine"
    qdir = qroot / partition_name(name, version)
    if restart:
        _clear_outputs(run_dir, qdir)
    _remove_temporaries(run_dir, qdir)
    info = {"name": name, "version": version, "uri": model_uri}
    # through JSON, as the manifest stores it: the dataset spec's tuples compare as lists
    applied = json.loads(json.dumps(asdict(replace(contract, require_target=False))))
    manifest = Manifest.open(run_dir / MANIFEST_NAME, info, applied)
    entries = [manifest.file(p, file_sha256(p), chunk_rows) for p in files]
    counts = dict.fromkeys(
        ("rows_in", "rows_scored", "rows_quarantined", "chunks", "skipped_chunks"), 0
    )
    if all(e["complete"] for e in entries):  # nothing to do: not even the manifest changes
        counts["skipped_chunks"] = sum(len(e["chunks"]) for e in entries)
        return _finish(manifest, name, version, counts, complete=True, save=False)
    manifest.data["complete"] = False
    model = load_scoring_model(pinned)  # the version resolved above, even if the alias moves
    check_inputs(files, model.model.input_columns, contract.layout)  # + a post-processed attribute
    if state is None:
        _restore_state(model, manifest)
        scorer = LiveScorer(model.model)
    else:
        seed_state(state, model.model)
        scorer = LiveScorer(model.model, state, label=_label(model))
    total = _rows_to_read(files, entries)
    with _progress_bar(total, progress) as bar:
        ctx = _RunContext(
            model,
            scorer,
            manifest,
            contract,
            timestamp_format,
            qdir,
            counts,
            lambda n: bar.update(n),
        )
        complete = _score_all(ctx, files, entries, max_chunks, chunk_delay)
    return _finish(manifest, name, version, counts, complete=complete)


def _finish(
    manifest: Manifest,
    name: str,
    version: str,
    counts: dict[str, int],
    *,
    complete: bool,
    save: bool = True,
) -> ScoreRun:
    if save or not manifest.path.is_file():
        manifest.data["complete"] = complete
        manifest.save()
    return ScoreRun(
        manifest.path.parent, manifest.path, name, version, manifest.totals(), counts, complete
    )


def _score_all(
    ctx: _RunContext,
    files: list[Path],
    entries: list[dict[str, Any]],
    max_chunks: int | None,
    chunk_delay: float,
) -> bool:
    """Score every unfinished chunk in file order; False if stopped by ``max_chunks``."""
    for path, entry in zip(files, entries, strict=True):
        if entry["complete"]:
            ctx.counts["skipped_chunks"] += len(entry["chunks"])
            continue
        done = ctx.manifest.done_chunks(entry)
        for chunk in iter_chunks(path, int(entry["chunk_rows"])):
            if chunk.index in done:
                ctx.counts["skipped_chunks"] += 1
                ctx.on_chunk(chunk.rows_in)
                continue
            if max_chunks is not None and ctx.counts["chunks"] >= max_chunks:
                return False
            _finish_chunk(ctx, path, entry, chunk)
            if chunk_delay:
                time.sleep(chunk_delay)
        entry["complete"] = True
        ctx.manifest.save()
    return True


def _finish_chunk(ctx: _RunContext, path: Path, entry: dict[str, Any], chunk: RawChunk) -> None:
    """Score one chunk, write its parts, checkpoint the featurizer and record the chunk."""
    outcome = score_chunk(chunk, ctx.scorer, ctx.model, ctx.contract, ctx.timestamp_format)
    part = f"part-{path.stem}-{chunk.index:05d}.parquet"
    run_dir = ctx.manifest.path.parent
    if outcome.rows_scored:
        write_table_atomic(outcome.scored, run_dir / part)
    if outcome.rows_quarantined:
        write_parquet(outcome.quarantine, ctx.quarantine_dir / part)
    record: dict[str, Any] = {
        "chunk": chunk.index,
        "rows_in": outcome.rows_in,
        "rows_scored": outcome.rows_scored,
        "rows_quarantined": outcome.rows_quarantined,
        "late_rows": outcome.late_rows,
        "older_rows": outcome.older_rows,
        "by_reason": outcome.by_reason,
        "output": part if outcome.rows_scored else None,
        "quarantine": str(ctx.quarantine_dir / part) if outcome.rows_quarantined else None,
        "scored_at": _now(),
    }
    if ctx.scorer.state is not None:  # the feature state holds the history
        record["retried_rows"] = outcome.retried_rows
        ctx.manifest.record(entry, record, None)
    else:
        _checkpoint(ctx, entry, record, run_dir)
    for key in ("rows_in", "rows_scored", "rows_quarantined"):
        ctx.counts[key] += record[key]
    ctx.counts["chunks"] += 1
    ctx.on_chunk(outcome.rows_in)


def _checkpoint(
    ctx: _RunContext, entry: dict[str, Any], record: dict[str, Any], run_dir: Path
) -> None:
    """Record the chunk with a checkpoint of the in-memory history (no feature state)."""
    previous = ctx.manifest.data.get("state")
    sequence = int(ctx.manifest.data.get("state_sequence", 0)) + 1
    ctx.manifest.data["state_sequence"] = sequence
    checkpoint = _save_state(ctx.model, run_dir, sequence)
    ctx.manifest.record(entry, record, checkpoint)
    if previous and previous != checkpoint:
        (run_dir / previous).unlink(missing_ok=True)


def _save_state(model: ScoringModel, run_dir: Path, sequence: int) -> str:
    """Checkpoint the featurizer (its history after every finished chunk)."""
    name = f"_state-{sequence:06d}.pkl"
    write_pickle(model.model.featurizer, run_dir / name)
    return name


def _restore_state(model: ScoringModel, manifest: Manifest) -> None:
    """Continue from the featurizer checkpoint of the last finished chunk, if any.

    The checkpoint is a pickle this scorer wrote next to the predictions: trust the output
    folder as you trust the model registry.
    """
    state = manifest.data.get("state")
    if state:
        model.model.featurizer = read_pickle(manifest.path.parent / state)


def _rows_to_read(files: list[Path], entries: list[dict[str, Any]]) -> int | None:
    total = 0
    for path, entry in zip(files, entries, strict=True):
        if entry["complete"]:
            continue
        rows = input_rows(path)
        if rows is None:
            return None
        total += rows
    return total


def _progress_bar(total: int | None, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(
        total=total, disable=not enabled, unit="rows", unit_scale=True, desc="score", leave=False
    )


def _clear_outputs(run_dir: Path, quarantine_dir: Path) -> None:
    """Remove this scorer's files (parts, manifest, checkpoints) from both folders."""
    for folder in (run_dir, quarantine_dir):
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            if (
                PART_FILE.match(path.name)
                or path.name == MANIFEST_NAME
                or path.name.startswith("_state-")
            ):
                path.unlink()


def _remove_temporaries(*folders: Path) -> None:
    """Delete temporary files a killed run left behind (never visible to readers)."""
    for folder in folders:
        if folder.is_dir():
            for path in folder.glob(".*.tmp"):
                path.unlink(missing_ok=True)


def reconcile(totals: dict[str, Any]) -> bool:
    """True when rows in = rows scored + rows quarantined."""
    return bool(totals["rows_in"] == totals["rows_scored"] + totals["rows_quarantined"])


def load_score_settings(
    params_path: str | Path,
) -> tuple[ScoreParams, ContractParams, str | None]:
    """The ``score`` section, the ``validate`` contract limits and ``data.timestamp_format``."""
    from inferloop.core.config import load_section, read_params

    score = load_section(ScoreParams, "score", params_path)
    contract = load_contract(params_path)
    data = read_params(params_path).get("data") or {}
    return score, contract, data.get("timestamp_format")


def write_summary(run: ScoreRun, path: str | Path) -> None:
    """The run's totals as a small JSON file (a DVC metric of the scoring stage)."""
    write_json(
        {
            "model_name": run.model_name,
            "model_version": run.model_version,
            "complete": run.complete,
            "manifest": str(run.manifest_path),
            **run.totals,
        },
        path,
    )
