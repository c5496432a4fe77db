"""Streaming scoring: JSON lines in, scored JSON lines out, in micro-batches of bounded latency.

Records arrive on stdin (one JSON object per line) or as ``*.jsonl`` files landing in a watched
folder. A micro-batch closes when it holds ``max_batch_rows`` records, ``max_wait_ms`` after
its first record arrived, or as soon as the input pauses (``send_when_idle``; see
:mod:`inferloop.scoring.sources`), whichever comes first; it then goes through the same data contract
and the same :meth:`FraudModel.score_frame` as batch scoring (:mod:`inferloop.scoring.batch`).

Every accepted record ends up in exactly one place: a scored JSON line on the output, or a
quarantine JSON line with its reason (``invalid_json``, ``not_a_json_object`` or a contract
code; a transaction id already scored earlier in the run is a ``duplicate_transaction_id``).
On end of input or SIGTERM the current batch is flushed and a final count line
(``{"event": "stream_end", ...}``) goes to stderr; ``received == scored + quarantined``.

Point-in-time features: scored rows stay in a small "context" that is featurized together
with each new batch (its rows count as history for the new rows; only the new rows go to the
trees), and are folded into the model's history in a background thread every ``fold_rows``
rows, so no batch waits for the history rebuild (a sort of the whole history). Rows of the newest second are held back from a fold so that records arriving a little
out of order are not "late"; a record older than the folded history is scored against the
history before it and becomes visible to later records at the next fold.

Watched folders: drop files atomically (write ``.name.tmp``, then rename to ``name.jsonl``).
A file moves to ``<folder>/processed/`` once all its records are written out; a file in
flight when the process is killed (SIGKILL) is read again on restart (at-least-once).
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
import signal
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from inferloop.core import schema as s
from inferloop.data.contract import DUPLICATE_TRANSACTION_ID, ContractParams, validate_transactions
from inferloop.data.rows import InvalidInput, Transactions, read_request
from inferloop.evaluation.reasons import REASON_COLUMNS
from inferloop.model import LiveScorer, epoch_seconds, history_end
from inferloop.scoring.live_state import seed_state
from inferloop.scoring.loading import ScoringModel
from inferloop.scoring.sources import Batcher, Record, StdinSource, WatchSource
from inferloop.state.base import FeatureState

__all__ = [
    "INVALID_JSON",
    "NOT_AN_OBJECT",
    "BatchResult",
    "JsonLinesSink",
    "SeenIds",
    "StreamParams",
    "StreamRunner",
    "StreamScorer",
    "StreamStats",
    "install_stop_handlers",
    "json_lines",
    "load_stream_params",
    "output_lines",
    "parse_records",
    "records_frame",
    "score_batch",
    "stream_records",
]


INVALID_JSON = "invalid_json"
NOT_AN_OBJECT = "not_a_json_object"
_POS = "__stream_pos"


def _context_columns(model: Any) -> tuple[str, ...]:
    """Columns kept as context: the model's inputs and labels, and the sensitive columns (a
    post-processed model decides with one of them)."""
    spec = model.dataset_spec
    return (*model.input_columns, s.TARGET, *spec.sensitive_columns)


@dataclass(frozen=True)
class StreamParams:
    """The ``stream`` section of ``params.yaml``."""

    max_batch_rows: int = 500
    max_wait_ms: int = 50
    send_when_idle: bool = True
    fold_rows: int = 2000
    poll_ms: int = 200
    dedupe_ids: int = 1_000_000


# --------------------------------------------------------------------------- scoring


class StreamScorer(LiveScorer):
    """The live scorer of the stream: recent rows are context; folding happens off-thread.

    Folding the history after every micro-batch would cost more than scoring it, so scored
    rows stay as context of later batches (history that is not yet folded in) and are folded
    into an advanced copy of the featurizer on a background thread once ``fold_rows`` are
    pending. Late rows follow :meth:`LiveScorer.late_mask`.

    Parameters
    ----------
    model:
        The unwrapped :class:`~inferloop.model.FraudModel`; its ``featurizer`` is replaced by
        an advanced copy after each fold (the copy is built off the scoring thread).
    fold_rows:
        Context size that triggers a fold.
    """

    def __init__(self, model: Any, fold_rows: int) -> None:
        super().__init__(model)
        self.fold_rows = fold_rows
        self._context = pd.DataFrame()
        self._late: list[pd.DataFrame] = []
        self._seq = 0
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="history-fold")
        self._fold: Future[Any] | None = None
        self._folding = pd.Index([])

    def _score_rows(self, valid: pd.DataFrame, with_features: bool) -> pd.DataFrame:
        """``transaction_id``, ``score``, ``decision`` of ``valid`` (same order and index)."""
        self._collect_fold(wait=False)
        rows = self._context_rows(valid)
        late = self.late_mask(rows)
        on_time = self._with_context(rows[~late], with_features)
        if late.any():
            self._late.append(rows[late])
            scored_late = self._with_context(rows[late], with_features)
            on_time = pd.concat([on_time, scored_late]).loc[rows.index]
        self._context = (
            pd.concat([self._context, rows[~late]]) if len(self._context) else rows[~late]
        )
        self._maybe_fold()
        return on_time.set_axis(valid.index)

    def _context_rows(self, valid: pd.DataFrame) -> pd.DataFrame:
        """The featurizer's columns of ``valid``, indexed by a running sequence number."""
        columns = [c for c in dict.fromkeys(_context_columns(self.model)) if c in valid.columns]
        rows = valid[columns].set_axis(pd.RangeIndex(self._seq, self._seq + len(valid)))
        self._seq += len(valid)
        return rows

    def _with_context(self, rows: pd.DataFrame, with_features: bool = False) -> pd.DataFrame:
        """Scores of ``rows`` with the context rows as history before them (not rescored)."""
        if rows.empty:
            return _no_scores()
        return self.model.score_frame(rows, context=self._context, with_features=with_features)

    def _maybe_fold(self) -> None:
        """Start folding late rows and all but the newest second of the context, if enough."""
        pending = len(self._context) + sum(map(len, self._late))
        if self._fold is not None or pending < self.fold_rows:
            return
        ready = self._fold_ready()
        parts = [self._context[ready], *self._late] if ready.any() else list(self._late)
        if not parts:
            return
        self._late = []
        self._folding = self._context.index[ready]
        snapshot = pd.concat(parts)
        self._fold = self._pool.submit(_advanced, copy.copy(self.model.featurizer), snapshot)

    def _fold_ready(self) -> np.ndarray:
        """Context rows older than its newest second (those can join the history)."""
        if self._context.empty:
            return np.zeros(len(self._context), dtype=bool)
        seconds = epoch_seconds(self._context[s.TIMESTAMP])
        return np.asarray(seconds < seconds.max())

    def _collect_fold(self, *, wait: bool) -> None:
        """Swap in the advanced featurizer once its fold has finished."""
        if self._fold is None or not (wait or self._fold.done()):
            return
        self.model.featurizer = self._fold.result()
        context = self._context.drop(index=self._folding)
        # rows scored during the fold that the new history already covers wait for the next
        # fold (kept as context they would make every batch rebuild the history)
        if len(context):
            stale = epoch_seconds(context[s.TIMESTAMP]) <= history_end(self.model.featurizer)
            if stale.any():
                self._late.append(context[stale])
            context = context[~stale]
        self._context = context
        self._fold = None

    def close(self) -> None:
        """Finish a running fold and stop the fold thread."""
        self._collect_fold(wait=True)
        self._pool.shutdown(wait=True)


def _advanced(featurizer: Any, rows: pd.DataFrame) -> Any:
    """``featurizer`` (a shallow copy) with ``rows`` appended to its history.

    ``update`` rebinds the history and index attributes instead of mutating them, so the copy
    never touches the arrays the scoring thread is reading.
    """
    advanced = featurizer.update(rows)
    advanced.history_.build_views()  # sorted views are built lazily: build them here
    return advanced


def _no_scores() -> pd.DataFrame:
    return pd.DataFrame({s.TRANSACTION_ID: [], s.SCORE: [], s.DECISION: []})


# --------------------------------------------------------------------------- one batch


@dataclass
class StreamStats:
    """Counts of one stream run (the final stderr line)."""

    received: int = 0
    scored: int = 0
    quarantined: int = 0
    batches: int = 0
    late_rows: int = 0
    by_reason: Counter[str] = field(default_factory=Counter)
    ended_by: str = "eof"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready counts."""
        return {
            "event": "stream_end",
            "ended_by": self.ended_by,
            "received": self.received,
            "scored": self.scored,
            "quarantined": self.quarantined,
            "by_reason": dict(sorted(self.by_reason.items())),
            "batches": self.batches,
            "late_rows": self.late_rows,
        }


@dataclass
class BatchResult:
    """Output lines of one micro-batch."""

    scored_lines: list[str]
    quarantine_lines: list[str]
    by_reason: Counter[str]


def parse_records(batch: list[Record]) -> tuple[list[dict[str, Any]], list[tuple[Any, str]]]:
    """JSON objects of the batch, and ``(raw line, reason)`` of lines that are not objects."""
    objects: list[dict[str, Any]] = []
    bad: list[tuple[Any, str]] = []
    for record in batch:
        try:
            value = json.loads(record.line)
        except ValueError:
            bad.append((record.line, INVALID_JSON))
            continue
        if isinstance(value, dict):
            objects.append(value)
        else:
            bad.append((record.line, NOT_AN_OBJECT))
    return objects, bad


def records_frame(objects: list[dict[str, Any]], columns: Sequence[str]) -> pd.DataFrame:
    """A frame of the objects with every input column present (missing keys are nulls)."""
    frame = pd.DataFrame.from_records(objects)
    for column in columns:
        if column not in frame.columns:
            frame[column] = None
    frame[_POS] = np.arange(len(frame))
    return frame


class SeenIds:
    """Transaction ids already scored in this run: the newest ``capacity`` of them.

    The contract rejects a repeated id within one micro-batch; this catches a record sent
    again in a later batch (a client retry, a file dropped twice), which would otherwise be
    scored -- and alerted on -- twice. The memory is bounded: about 100 bytes per id.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError(f"stream.dedupe_ids must be >= 0, got {capacity}")
        self.capacity = capacity
        self._order: deque[Any] = deque()
        self._ids: set[Any] = set()

    def __len__(self) -> int:
        return len(self._ids)

    def seen(self, ids: list[Any]) -> np.ndarray:
        """Which of ``ids`` (canonical, as the contract writes them) were scored before."""
        return np.fromiter((i in self._ids for i in ids), dtype=bool, count=len(ids))

    def add(self, ids: list[Any]) -> None:
        """Remember ``ids``, forgetting the oldest beyond the capacity."""
        if self.capacity == 0:
            return
        for i in ids:
            if i not in self._ids:
                self._ids.add(i)
                self._order.append(i)
        while len(self._order) > self.capacity:
            self._ids.discard(self._order.popleft())


def score_batch(
    batch: list[Record],
    scorer: LiveScorer,
    model: ScoringModel,
    contract: ContractParams,
    timestamp_format: str | None = None,
    seen: SeenIds | None = None,
) -> BatchResult:
    """Parse, validate and score one micro-batch into output and quarantine lines.

    With ``seen``, rows whose transaction id was scored in an earlier batch are quarantined
    as ``duplicate_transaction_id`` (the contract's code for repeats within a batch).
    """
    now = pd.Timestamp.now(tz="UTC")
    objects, bad = parse_records(batch)
    result = BatchResult([], [_quarantine_line(raw, r, now) for raw, r in bad], Counter())
    result.by_reason.update(reason for _, reason in bad)
    if not objects:
        return result
    frame = records_frame(objects, model.model.input_columns)
    tx = _clean_batch(frame, scorer, contract, timestamp_format, seen)
    if tx is not None:  # the common case: every row passes (the server's cheap check)
        ids, scores, decisions, features = scorer.score_transactions(tx)
        reasons = model.model.reasons(features, decisions)
        lines = json_lines(ids, tx.timestamps, scores, decisions, model, now, reasons)
        result.scored_lines.extend(lines)
        if seen is not None:
            seen.add(ids.tolist())
        return result
    checked = validate_transactions(
        frame, contract, require_target=False, timestamp_format=timestamp_format
    )
    rejected: Iterable[tuple[Any, Any]] = zip(
        checked.quarantine[_POS], checked.quarantine[s.REJECT_REASON], strict=True
    )
    valid = checked.valid
    if seen is not None and len(valid):
        again = seen.seen(valid[s.TRANSACTION_ID].tolist())
        repeats = ((pos, DUPLICATE_TRANSACTION_ID) for pos in valid.loc[again, _POS])
        rejected = itertools.chain(rejected, repeats)
        valid = valid[~again]
    for pos, reason in rejected:
        result.quarantine_lines.append(_quarantine_line(objects[int(pos)], str(reason), now))
        result.by_reason[str(reason)] += 1
    if len(valid):
        scored = scorer.score(valid, with_reasons=True)
        result.scored_lines.extend(output_lines(valid, scored, model, now))
        if seen is not None:
            seen.add(valid[s.TRANSACTION_ID].tolist())
    return result


def _clean_batch(
    frame: pd.DataFrame,
    scorer: LiveScorer,
    contract: ContractParams,
    timestamp_format: str | None,
    seen: SeenIds | None,
) -> Transactions | None:
    """The batch's transactions when every row passes the contract and none is a repeat.

    The same check the server runs on a request (:func:`read_request`): microseconds where the
    full contract costs milliseconds per batch. None sends the batch to the full contract,
    which sorts rows into scored and quarantined (also for a custom timestamp format, which
    only the full contract parses, and for the in-memory scorer, which scores frames).
    """
    if scorer.state is None or timestamp_format is not None:
        return None
    try:
        tx = read_request(frame, contract)
    except InvalidInput:
        return None
    if seen is not None and seen.seen(tx.ids.tolist()).any():
        return None
    return tx


def output_lines(
    valid: pd.DataFrame, scored: pd.DataFrame, model: ScoringModel, scored_at: pd.Timestamp
) -> list[str]:
    """One JSON object per scored row: id, event time, score, decision, model, scoring time.

    Alerts carry their reason codes when ``scored`` has them.
    """
    reasons = {c: scored[c].to_numpy() for c in REASON_COLUMNS if c in scored.columns}
    return json_lines(
        scored[s.TRANSACTION_ID].to_numpy(),
        valid[s.TIMESTAMP].to_numpy(dtype="datetime64[us]"),
        scored[s.SCORE].to_numpy(),
        scored[s.DECISION].to_numpy(),
        model,
        scored_at,
        reasons or None,
    )


def json_lines(
    ids: np.ndarray,
    timestamps: np.ndarray,
    scores: np.ndarray,
    decisions: np.ndarray,
    model: ScoringModel,
    scored_at: pd.Timestamp,
    reasons: dict[str, np.ndarray] | None = None,
) -> list[str]:
    """The output lines of scored rows (``timestamps`` naive UTC), in the given order.

    ``reasons`` (:data:`~inferloop.evaluation.reasons.REASON_COLUMNS`) are written on the
    lines that have them: the alerts of a model that explains.
    """
    times = np.datetime_as_string(timestamps.astype("datetime64[us]"), unit="us", timezone="UTC")
    at = scored_at.isoformat().replace("+00:00", "Z")
    rows = zip(ids.tolist(), times.tolist(), scores.tolist(), decisions.tolist(), strict=True)
    objects = [
        {
            s.TRANSACTION_ID: tx,
            s.TIMESTAMP: ts,
            s.SCORE: score,
            s.DECISION: int(decision),
            s.MODEL_NAME: model.name,
            s.MODEL_VERSION: model.version,
            s.SCORED_AT: at,
        }
        for tx, ts, score, decision in rows
    ]
    if reasons:
        first = reasons.get("reason_1")
        explained = [] if first is None else np.flatnonzero(pd.notna(first)).tolist()
        for i in explained:
            objects[i].update({c: _plain(v[i]) for c, v in reasons.items()})
    return [json.dumps(o) for o in objects]


def _plain(value: Any) -> Any:
    """A JSON value: None for a missing one, Python scalars for numpy ones."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    return value.item() if isinstance(value, np.generic) else value


def _quarantine_line(record: Any, reason: str, at: pd.Timestamp) -> str:
    payload = {"record": record, s.REJECT_REASON: reason, "received_at": at.isoformat()}
    return json.dumps(payload, default=str)


# --------------------------------------------------------------------------- the loop


class JsonLinesSink:
    """Appends lines to a text stream and flushes after every batch."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def write(self, lines: list[str]) -> None:
        """Write the lines (each gets a newline) and flush."""
        if lines:
            self.stream.write("\n".join(lines) + "\n")
            self.stream.flush()


@dataclass
class StreamRunner:
    """Everything a stream run needs: where records go and how they are scored."""

    scorer: LiveScorer
    model: ScoringModel
    contract: ContractParams
    out: JsonLinesSink
    quarantine: JsonLinesSink
    timestamp_format: str | None = None
    seen: SeenIds = field(default_factory=lambda: SeenIds(StreamParams().dedupe_ids))

    def run(self, batcher: Batcher) -> StreamStats:
        """Score micro-batches until the input ends or a stop is requested; drop no record."""
        stats = StreamStats()
        try:
            while not batcher.finished:
                batch = batcher.next_batch()
                if batch:
                    self._handle(batch, stats)
                    batcher.source.acknowledge(batch)
        finally:
            self.scorer.close()
        stats.late_rows = self.scorer.late_rows
        stats.ended_by = "signal" if batcher.stop.is_set() else "eof"
        return stats

    def _handle(self, batch: list[Record], stats: StreamStats) -> None:
        result = score_batch(
            batch, self.scorer, self.model, self.contract, self.timestamp_format, self.seen
        )
        self.out.write(result.scored_lines)
        self.quarantine.write(result.quarantine_lines)
        stats.received += len(batch)
        stats.scored += len(result.scored_lines)
        stats.quarantined += len(result.quarantine_lines)
        stats.by_reason.update(result.by_reason)
        stats.batches += 1
        if stats.received != stats.scored + stats.quarantined:
            raise AssertionError(f"stream lost records: {stats.as_dict()}")


def install_stop_handlers(stop: threading.Event) -> Callable[[], None]:
    """Make SIGTERM and SIGINT request a clean stop; returns a function restoring the old ones."""
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def request_stop(signum: int, frame: Any) -> None:
        stop.set()

    for sig in previous:
        signal.signal(sig, request_stop)

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore


def load_stream_params(params_path: str | Path) -> StreamParams:
    """The ``stream`` section of ``params.yaml``."""
    from inferloop.core.config import load_section

    return load_section(StreamParams, "stream", params_path)


def stream_records(
    model_uri: str,
    params: StreamParams,
    contract: ContractParams,
    *,
    stop: threading.Event,
    watch_dir: str | Path | None = None,
    once: bool = False,
    output_path: str | Path | None = None,
    quarantine_path: str | Path = "data/quarantine/stream.jsonl",
    timestamp_format: str | None = None,
    on_ready: Callable[[ScoringModel], None] | None = None,
    state: FeatureState | None = None,
) -> StreamStats:
    """Load the model, then score records from stdin or ``watch_dir`` until EOF or ``stop``.

    Parameters
    ----------
    model_uri : str
        Resolved once to ``models:/name/version``: every output line names that version.
    params : StreamParams
        Micro-batch limits and the history fold size.
    contract : ContractParams
        Limits of the data contract (applied with ``require_target=False``).
    stop : threading.Event
        Set it (e.g. from a SIGTERM handler) to flush and end.
    watch_dir : str or Path, optional
        Read ``*.jsonl`` files landing here instead of stdin.
    once : bool
        With ``watch_dir``: end when no file is left.
    output_path : str or Path, optional
        Append scored lines to this file instead of stdout.
    quarantine_path : str or Path
        Append rejected records (JSON lines with ``reject_reason``) here.
    timestamp_format : str, optional
        ``strftime`` format of text timestamps (ISO 8601 by default).
    on_ready : callable, optional
        Called with the loaded model before the first record is read.
    state : FeatureState, optional
        The feature state shared with the server and batch scoring (seeded from the model
        when empty): each micro-batch is one read-score-write transaction, so a restarted
        stream or a second worker continues from the same history. None keeps the history in
        this process (:class:`StreamScorer`).

    Returns
    -------
    StreamStats
        ``received == scored + quarantined``.
    """
    import sys

    from inferloop.scoring.loading import load_scoring_model

    model = load_scoring_model(model_uri)
    scorer: LiveScorer
    if state is None:
        scorer = StreamScorer(model.model, params.fold_rows)
    else:
        seed_state(state, model.model)
        scorer = LiveScorer(model.model, state, label=f"{model.name}:{model.version}")
    source: Any = (
        WatchSource(Path(watch_dir), params.poll_ms / 1000, once=once)
        if watch_dir is not None
        else StdinSource(sys.stdin.fileno())
    )
    batcher = Batcher(
        source,
        params.max_batch_rows,
        params.max_wait_ms / 1000,
        stop,
        send_when_idle=params.send_when_idle,
    )
    Path(quarantine_path).parent.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as files:
        out = sys.stdout if output_path is None else files.enter_context(_append(output_path))
        rejected = files.enter_context(_append(quarantine_path))
        runner = StreamRunner(
            scorer,
            model,
            contract,
            JsonLinesSink(out),
            JsonLinesSink(rejected),
            timestamp_format,
            SeenIds(params.dedupe_ids),
        )
        if on_ready is not None:
            on_ready(model)
        return runner.run(batcher)


def _append(path: str | Path) -> IO[str]:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return Path(path).open("a", encoding="utf-8")
