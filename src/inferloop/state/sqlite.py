"""The embedded feature-state store: one SQLite file in WAL mode, standard library only.

Every process that opens the same file -- each ``mlflow models serve`` worker, the stream,
batch scoring -- shares one state. WAL lets readers run while one writer writes. A scoring
request reads its rows in one read transaction and scores without any lock; then, under the
write lock (``BEGIN IMMEDIATE``), it writes at once if no transaction has committed since its
read (``PRAGMA data_version`` and this connection's own count of commits tell), else it
reads its rows again and writes only if none changed -- else it scores again there. Either
way the read, the scores and the write of one batch are one serializable step, the workers'
featurizing and scoring run side by side, and the lock is held only while writing. A process
killed in the middle of a transaction leaves nothing of it behind (SQLite rolls the
transaction back on the next open). ``synchronous=NORMAL``: a committed transaction survives a crash of the process; after
a power loss the last few transactions may be lost, never half of one.

Layout. ``events`` holds one row per transaction id (its time, amount, score, decision, model
and entity keys): the exactly-once record, and where a late label finds its entities.
``series`` holds one row per entity key and kind, with that key's recent events packed as
arrays (little-endian int64 / float64 bytes; :mod:`inferloop.state.series`): kind 0 the
events (times, amounts), kind 1 the labelled events (times, labels, label times, ids).
Scoring keeps kind 0 up to date for the kinds a feature reads unlabelled (the customer) and
kind 1 through the label feed (the terminal). A window read is then one row per key,
decoded with ``numpy.frombuffer`` -- microseconds -- instead of one SQL row per event, and a
write rewrites the few small rows it touched.

``series`` is an ordinary rowid table, not ``WITHOUT ROWID`` like the other two. Its rows are
a few kilobytes, and a ``WITHOUT ROWID`` table keeps whole rows in the interior pages of its
one b-tree: with rows that large, a page holds only a few and the tree grows deep, so every
lookup walks more pages (SQLite's documentation advises ``WITHOUT ROWID`` only for rows
under about a twentieth of a page). A key's row is rewritten with ``UPDATE`` in place, which
keeps its rowid and leaves the primary-key index alone; ``INSERT OR REPLACE`` would delete
the row and insert it again, rewriting the index entry and the row's overflow pages. A
store made with the earlier ``WITHOUT ROWID`` layout is converted when it is opened.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inferloop.data.events import EntityQuery, first_of_each
from inferloop.state.base import (
    Compute,
    FeatureState,
    Labels,
    ScoredEvents,
    Snapshot,
    StateRequest,
    StateStats,
)
from inferloop.state.series import SEP, Series, by_key, merged, trimmed, window

__all__ = ["SqliteState"]

_SERIES_TABLE = """
CREATE TABLE IF NOT EXISTS series (
    entity TEXT NOT NULL, key TEXT NOT NULL, kind INTEGER NOT NULL,
    times BLOB NOT NULL, a BLOB NOT NULL, b BLOB, ids TEXT,
    PRIMARY KEY (entity, key, kind)
)"""
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY, time INTEGER NOT NULL, amount REAL NOT NULL,
    score REAL, decision INTEGER, model TEXT NOT NULL DEFAULT '', keys TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_by_time ON events (time);
{_SERIES_TABLE};
CREATE TABLE IF NOT EXISTS labels (
    id TEXT PRIMARY KEY, label REAL NOT NULL, label_time INTEGER NOT NULL
) WITHOUT ROWID;
"""
_EVENTS, _LABELLED = 0, 1
#: Every connection's settings. No ``mmap_size``: memory-mapped reads cost nothing more for
#: one connection alone, but with two connections writing in turn (the server's workers)
#: each transaction took about 0.1 ms more CPU with a 1 GB map than with none, and an I/O
#: error on a mapped page kills the process with a signal instead of raising an error.
_PRAGMAS = ("journal_mode=WAL", "synchronous=NORMAL", "cache_size=-65536")
_MANY = "IN (SELECT value FROM json_each(?))"  # many keys as one JSON parameter
_ONE = "= ?"
_SERIES = "SELECT key, times, a, b, ids FROM series WHERE entity = ? AND kind = ? AND key {}"
_INSERT_SERIES = "INSERT INTO series VALUES (?, ?, ?, ?, ?, ?, ?)"
_UPDATE_SERIES = (
    "UPDATE series SET times = ?, a = ?, b = ?, ids = ? WHERE entity = ? AND key = ? AND kind = ?"
)
_SCORED = "SELECT id, score, decision, model FROM events WHERE id {}"


def _in(values: np.ndarray | list[str]) -> tuple[str, str]:
    """The SQL condition and its parameter for ``column IN values``."""
    if len(values) == 1:
        return _ONE, str(values[0])
    return _MANY, json.dumps([str(v) for v in values])


class SqliteState(FeatureState):
    """Feature state in one SQLite file (created with its folder if missing).

    Parameters
    ----------
    path
        The database file, e.g. ``state/features.db``.
    timeout
        Seconds a writer waits for another's transaction before giving up.
    """

    def __init__(self, path: str | Path, timeout: float = 30.0) -> None:
        self.path = Path(path).expanduser().resolve()
        self.location = f"sqlite:///{self.path}"
        self.timeout = timeout
        # One connection per process, used under ``_thread_lock``: MLflow's server calls the
        # model from a pool of threads, and one connection keeps one warm page cache.
        self._db: sqlite3.Connection | None = None
        self._db_pid = -1
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Writers queue on an OS file lock, not on SQLite's busy handler: that one sleeps
        # 1, 2, 5 ... 100 ms between retries, which at 8 concurrent clients put waits of half
        # a second into the tail; a blocked flock wakes the moment the lock is free.
        self._lock_path = Path(f"{self.path}.lock")
        self._lock_fd: int | None = None
        self._lock_pid = -1
        self._thread_lock = threading.Lock()
        # Write transactions this process committed on its connection: ``data_version``
        # does not count them, and another thread's may land between a read and its write.
        self._commits = 0
        self._create_schema()

    # ------------------------------------------------------------------ connections
    def _connection(self) -> sqlite3.Connection:
        """This process's connection (shared by its threads: every use holds the lock)."""
        if self._db is None or self._db_pid != os.getpid():
            db = sqlite3.connect(
                self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
            )
            for pragma in _PRAGMAS:
                db.execute(f"PRAGMA {pragma}")
            self._db, self._db_pid = db, os.getpid()
        return self._db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: the lock is taken before anything is read."""
        with self._locked(), self._transaction() as db:
            yield db

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (rolled back on any error); hold the locks."""
        db = self._connection()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        self._commits += 1

    def _version(self, db: sqlite3.Connection) -> tuple[int, int]:
        """What changes when any transaction commits: other connections' (SQLite's
        ``data_version``, as of this connection's current snapshot) and this one's."""
        return int(db.execute("PRAGMA data_version").fetchone()[0]), self._commits

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold this process's thread lock and the writers' lock shared by every process.

        The writers' lock is an ``flock`` on a side file, opened lazily so that a process
        forked after opening the store gets its own.
        """
        with self._thread_lock:
            if self._lock_fd is None or self._lock_pid != os.getpid():
                self._lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
                self._lock_pid = os.getpid()
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _create_schema(self) -> None:
        with self._thread_lock:
            db = self._connection()
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            old_layout = _series_without_rowid(db)
        if old_layout:
            with self._write() as db:
                if _series_without_rowid(db):  # another process may have converted it first
                    _convert_series(db)

    def close(self) -> None:
        """Close the connection and the writers' lock file."""
        with self._thread_lock:
            if self._db is not None and self._db_pid == os.getpid():
                self._db.close()
            self._db = None
        if self._lock_fd is not None and self._lock_pid == os.getpid():
            os.close(self._lock_fd)
        self._lock_fd = None

    # ------------------------------------------------------------------ scoring
    def transact(self, request: StateRequest, compute: Compute) -> tuple[Snapshot, ScoredEvents]:
        """See :meth:`FeatureState.transact`: optimistic, with the write serializable.

        The rows are read in one read transaction, and ``compute`` (featurizing and scoring:
        most of a request's time) runs with no lock held. Under the write lock, when nothing
        has committed since the read, the events are written at once; otherwise the rows are
        read again and, unchanged, written in the same transaction. Had another writer
        changed one (the same customer scored at the same moment), the work is redone under
        the lock, as if it had held it all along. The lock is held only for the check and
        the write, so the server's workers score side by side (holding it through the
        scoring, as an earlier version did when it found the lock free, left the other
        worker waiting on it); a lone request reads once.
        """
        with self._thread_lock:
            db = self._connection()
            db.execute("BEGIN")  # the reads see one snapshot
            try:
                read = _decoded(request, *_read_rows(db, request))
                seen = self._version(db)
            finally:
                db.execute("COMMIT")
        written = compute(read.snapshot)
        with self._write() as db:
            if self._version(db) != seen:  # a commit since the read: compare the rows
                rows, scored = _read_rows(db, request)
                if rows != read.rows or scored != read.snapshot.scored:  # a conflicting write
                    read = _decoded(request, rows, scored)
                    written = compute(read.snapshot)
            _insert(db, written, known=read.plain(request), horizon=request.horizon)
        return read.snapshot, written

    def scored(self, ids: np.ndarray) -> dict[str, tuple[float, int, str]]:
        """Stored ``(score, decision, model)`` per known id."""
        with self._thread_lock:
            return _scored(self._connection(), ids)

    def write_events(self, events: ScoredEvents) -> int:
        """Bulk write, skipping ids already stored; one transaction."""
        with self._write() as db:
            written = _insert(db, events, known=None)
            if events.label is not None and events.label_time is not None:
                known = ~np.isnan(events.label)
                if known.any():
                    labelled = events.take(known)
                    labels = Labels(labelled.ids, events.label[known], events.label_time[known])
                    _add_labels(db, labels, labelled)
            return written

    def add_labels(self, labels: Labels) -> tuple[int, int]:
        """Store the feed's labels; count those whose event is in the store."""
        with self._write() as db:
            matched = _add_labels(db, labels)
        return len(labels), matched

    # ------------------------------------------------------------------ upkeep
    def prune(self, before: int) -> int:
        """Drop events older than ``before`` with their labels, but keep each key's newest."""
        with self._write() as db:
            old = "SELECT id FROM events WHERE time < ?"
            db.execute(f"DELETE FROM labels WHERE id IN ({old})", (before,))
            dropped = db.execute("DELETE FROM events WHERE time < ?", (before,)).rowcount
            rows = db.execute("SELECT entity, key, kind, times, a, b, ids FROM series").fetchall()
            for entity, key, kind, *packed in rows:
                times = np.frombuffer(packed[0], dtype="<i8")
                if len(times) and times.min() >= before:  # nothing old: no decode, no write
                    continue
                kept = trimmed(Series.decode((key, *packed)), before, keep_newest=kind == _EVENTS)
                if kept is None:
                    db.execute(
                        "DELETE FROM series WHERE entity = ? AND key = ? AND kind = ?",
                        (entity, key, kind),
                    )
                elif len(kept.times) < len(times):
                    db.execute(_UPDATE_SERIES, (*kept.encode(), entity, key, kind))
        return int(dropped)

    def stats(self) -> StateStats:
        """Counts, active keys per entity kind, bytes in use (database pages)."""
        with self._thread_lock:
            return self._stats(self._connection())

    def _stats(self, db: sqlite3.Connection) -> StateStats:
        events, newest = db.execute(
            "SELECT COUNT(*), COALESCE(MAX(time), -1) FROM events"
        ).fetchone()
        labels = db.execute("SELECT COUNT(*) FROM labels").fetchone()[0]
        entities = dict(
            db.execute("SELECT entity, COUNT(DISTINCT key) FROM series GROUP BY entity")
        )
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        pages, free = (
            db.execute(f"PRAGMA {p}").fetchone()[0] for p in ("page_count", "freelist_count")
        )
        return StateStats(
            location=self.location,
            events=int(events),
            labels=int(labels),
            entities={str(k): int(v) for k, v in entities.items()},
            bytes=int((pages - free) * page_size),
            newest_time=int(newest),
            extra={"file_bytes": _file_bytes(self.path)},
        )


@dataclass
class _Read:
    """What one scoring request read: the raw ``series`` rows, decoded, and its snapshot."""

    rows: dict[str, list[tuple[Any, ...]]]
    series: dict[str, dict[str, Series]]
    snapshot: Snapshot

    def plain(self, request: StateRequest) -> dict[str, dict[str, Series]]:
        """The event series the write appends to: kinds a feature reads unlabelled.

        A kind read only for its labels (the terminal) gets its labelled entries from the
        label feed; its plain series is not kept up by scoring (no feature reads it).
        """
        return {q.entity: self.series[q.entity] for q in request.queries if not q.labelled}


def _read_rows(
    db: sqlite3.Connection, request: StateRequest
) -> tuple[dict[str, list[tuple[Any, ...]]], dict[str, tuple[float, int, str]]]:
    """The raw ``series`` rows of the request's keys, and its ids already scored."""
    rows = {q.entity: _series_rows(db, q.entity, q.keys, _kind(q)) for q in request.queries}
    return rows, _scored(db, request.ids)


def _decoded(
    request: StateRequest,
    rows: dict[str, list[tuple[Any, ...]]],
    scored: dict[str, tuple[float, int, str]],
) -> _Read:
    """:func:`_read_rows`' rows decoded, with each query's window of events."""
    series: dict[str, dict[str, Series]] = {}
    events = {}
    for q in request.queries:
        # a labelled series read here is never written back: its ids are not needed
        series[q.entity] = {
            str(row[0]): Series.decode(row, not q.labelled) for row in rows[q.entity]
        }
        events[q.entity] = window(q, series[q.entity], request.label_cutoff)
    return _Read(rows, series, Snapshot(scored=scored, events=events))


def _kind(query: EntityQuery) -> int:
    return _LABELLED if query.labelled else _EVENTS


def _file_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


def _series_without_rowid(db: sqlite3.Connection) -> bool:
    """Whether ``series`` has the earlier ``WITHOUT ROWID`` layout (see the module docstring)."""
    row = db.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'series'")
    sql = row.fetchone()
    return sql is not None and "WITHOUT ROWID" in str(sql[0]).upper()


def _convert_series(db: sqlite3.Connection) -> None:
    """Copy ``series`` into the rowid layout, in the caller's transaction (all or nothing)."""
    db.execute("ALTER TABLE series RENAME TO series_without_rowid")
    db.execute(_SERIES_TABLE)
    db.execute("INSERT INTO series SELECT * FROM series_without_rowid")
    db.execute("DROP TABLE series_without_rowid")


def _scored(db: sqlite3.Connection, ids: np.ndarray) -> dict[str, tuple[float, int, str]]:
    if len(ids) == 0:
        return {}
    condition, param = _in(ids)
    rows = db.execute(_SCORED.format(condition), (param,)).fetchall()
    return {str(i): (float(score), int(decision), str(model)) for i, score, decision, model in rows}


def _read_series(
    db: sqlite3.Connection, entity: str, keys: np.ndarray | list[str], kind: int
) -> dict[str, Series]:
    return {str(row[0]): Series.decode(row) for row in _series_rows(db, entity, keys, kind)}


def _series_rows(
    db: sqlite3.Connection, entity: str, keys: np.ndarray | list[str], kind: int
) -> list[tuple[Any, ...]]:
    """The ``series`` rows of ``keys``, in key order (so two reads compare row for row)."""
    if len(keys) == 0:
        return []
    condition, param = _in(keys)
    return db.execute(_SERIES.format(condition) + " ORDER BY key", (entity, kind, param)).fetchall()


def _insert(
    db: sqlite3.Connection,
    events: ScoredEvents,
    known: dict[str, dict[str, Series]] | None,
    horizon: int | None = None,
) -> int:
    """Insert new events and append them to their keys' series; returns how many were new.

    ``known``: the event series this transaction already read, per entity, with the ids of
    ``events`` already checked as new (:meth:`SqliteState.transact`); entities missing there
    are read here; ``horizon`` trims each rewritten series (see ``StateRequest``). None: a
    bulk write,
    which checks the ids and reads the series here; ids already stored are skipped, so a bulk
    write is idempotent.
    """
    if len(events) == 0:
        return 0
    if known is None:
        stored = _scored(db, events.ids)
        fresh = np.fromiter((i not in stored for i in events.ids.tolist()), bool, len(events))
        once = np.zeros(len(events), dtype=bool)
        once[first_of_each(events.ids)] = True
        events = events.take(fresh & once)
        if len(events) == 0:
            return 0
    entities = list(events.keys)
    key_lists = [events.keys[e].tolist() for e in entities]
    # "customer<SEP>c1<SEP>terminal<SEP>t7": where a late label finds its event's keys
    escaped = (e.replace("{", "{{").replace("}", "}}") for e in entities)
    template = SEP.join(f"{entity}{SEP}{{}}" for entity in escaped)
    # no entity kinds (a log without keys): the event is only the exactly-once record
    joined = list(map(template.format, *key_lists)) if key_lists else [""] * len(events)
    rows = zip(
        events.ids.tolist(),
        events.time.astype(np.int64).tolist(),
        events.amount.astype(np.float64).tolist(),
        events.score.astype(np.float64).tolist(),
        events.decision.astype(np.int64).tolist(),
        [events.model] * len(events),
        joined,
        strict=True,
    )
    _execute_rows(db, "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)", rows, len(events))
    for entity in entities if known is None else list(known):
        _append_events(db, entity, events, None if known is None else known[entity], horizon)
    return len(events)


def _append_events(
    db: sqlite3.Connection,
    entity: str,
    events: ScoredEvents,
    current: dict[str, Series] | None,
    horizon: int | None = None,
) -> None:
    """Append each event to its key's kind-0 series (one row rewritten per key).

    ``current``: the keys' series as this transaction read them (a key absent there has none
    yet); None reads them here.
    """
    groups = by_key(events.keys[entity])
    unique = [key for key, _ in groups]
    existing = current if current is not None else _read_series(db, entity, unique, _EVENTS)
    times, amounts = events.time.astype(np.int64), events.amount.astype(np.float64)
    written = []
    for key, pick in groups:
        old = existing.get(key)
        new_times = times[pick] if old is None else np.concatenate([old.times, times[pick]])
        new_amounts = amounts[pick] if old is None else np.concatenate([old.a, amounts[pick]])
        series = Series(new_times, new_amounts)
        if horizon is not None and old is not None:
            cutoff = int(new_times.max()) - horizon
            if int(new_times.min()) < cutoff:  # most writes have nothing to trim
                series = trimmed(series, cutoff, keep_newest=True) or series
        written.append((key, series))
    _write_series(db, entity, _EVENTS, written, existing)


def _write_series(
    db: sqlite3.Connection,
    entity: str,
    kind: int,
    written: list[tuple[str, Series]],
    existing: dict[str, Series],
) -> None:
    """Write keys' series: ``UPDATE`` in place where ``existing`` has the key, else ``INSERT``.

    ``existing`` is what this transaction read under the write lock, so it is exact; a key
    wrongly taken for new fails on the primary key instead of replacing a row unseen.
    """
    updates = [(*series.encode(), entity, key, kind) for key, series in written if key in existing]
    inserts = [
        (entity, key, kind, *series.encode()) for key, series in written if key not in existing
    ]
    _execute_rows(db, _UPDATE_SERIES, updates, len(updates))
    _execute_rows(db, _INSERT_SERIES, inserts, len(inserts))


def _execute_rows(
    db: sqlite3.Connection, statement: str, rows: Iterable[tuple[Any, ...]], count: int
) -> None:
    """``statement`` for each of the ``count`` ``rows``: one ``execute`` for a request's single
    row (no ``executemany`` set-up), ``executemany`` for a batch (rows consumed as they come),
    nothing for none."""
    if count == 1:
        db.execute(statement, next(iter(rows)))
    elif count:
        db.executemany(statement, rows)


def _add_labels(db: sqlite3.Connection, labels: Labels, events: ScoredEvents | None = None) -> int:
    """Store labels and add each to the labelled series of its event's keys; returns matches.

    ``events``: the labels' own events, in the same order (a bulk write with labels), so
    their keys need not be looked up.
    """
    ids = [str(i) for i in labels.ids.tolist()]
    values = labels.label.astype(np.float64)
    at = labels.label_time.astype(np.int64)
    db.executemany(
        "INSERT INTO labels VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
        "label = excluded.label, label_time = excluded.label_time",
        zip(ids, values.tolist(), at.tolist(), strict=True),
    )
    if events is not None:
        hit = np.ones(len(ids), dtype=bool)
        times = events.time.astype(np.int64)
        keys = {entity: np.asarray(k, dtype=object) for entity, k in events.keys.items()}
        matched = ids
    else:
        hit, times, keys = _locate(db, ids)
        matched = [ids[n] for n in np.flatnonzero(hit).tolist()]
    for entity, entity_keys in keys.items():
        _merge_labels(db, entity, entity_keys, matched, times, values[hit], at[hit])
    return len(set(matched))


def _locate(
    db: sqlite3.Connection, ids: list[str]
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Which ids have a stored event, and those events' times and keys per entity."""
    found: dict[str, tuple[int, str]] = {}
    for start in range(0, len(ids), _READ_CHUNK):
        condition, param = _in(ids[start : start + _READ_CHUNK])
        for i, time, keys in db.execute(
            f"SELECT id, time, keys FROM events WHERE id {condition}", (param,)
        ):
            found[str(i)] = (int(time), str(keys))
    hit = np.fromiter((i in found for i in ids), dtype=bool, count=len(ids))
    located = [found[ids[n]] for n in np.flatnonzero(hit).tolist()]
    times = np.fromiter((time for time, _ in located), dtype=np.int64, count=len(located))
    split = [keys.split(SEP) for _, keys in located]
    entities = split[0][0::2] if split else []
    keys = {
        entity: np.asarray([parts[2 * n + 1] for parts in split], dtype=object)
        for n, entity in enumerate(entities)
    }
    return hit, times, keys


#: Keys or ids per ``IN (json_each(?))`` read.
_READ_CHUNK = 20_000


def _merge_labels(
    db: sqlite3.Connection,
    entity: str,
    keys: np.ndarray,
    ids: list[str],
    times: np.ndarray,
    values: np.ndarray,
    arrived: np.ndarray,
) -> None:
    """Add labelled events to their keys' kind-1 series, one row rewritten per key.

    A label delivered again (same id) replaces its entry in place; new ids are appended in
    delivery order, so a series reads the same whether its labels came in one delivery or
    in several.
    """
    groups = by_key(keys)
    unique = [key for key, _ in groups]
    current: dict[str, Series] = {}
    for start in range(0, len(unique), _READ_CHUNK):
        current.update(_read_series(db, entity, unique[start : start + _READ_CHUNK], _LABELLED))
    written = []
    for key, pick in groups:
        new_ids = [ids[n] for n in pick.tolist()]
        series = merged(current.get(key), new_ids, times[pick], values[pick], arrived[pick])
        written.append((key, series))
    _write_series(db, entity, _LABELLED, written, current)
