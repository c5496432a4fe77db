"""The embedded feature-state store: one SQLite file in WAL mode, standard library only.

Every process that opens the same file -- each ``mlflow models serve`` worker, the stream,
batch scoring -- shares one state. WAL lets readers run while one writer writes; a scoring
transaction takes the write lock (``BEGIN IMMEDIATE``) before it reads, so the read, the
scores and the write of one batch are one serializable step. A process killed in the middle
of a transaction leaves nothing of it behind (SQLite rolls the transaction back on the next
open). ``synchronous=NORMAL``: a committed transaction survives a crash of the process; after
a power loss the last few transactions may be lost, never half of one.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from inferloop.data.features import EntityEvents, EntityQuery
from inferloop.state.base import (
    Compute,
    FeatureState,
    Labels,
    ScoredEvents,
    Snapshot,
    StateRequest,
    StateStats,
)

__all__ = ["SqliteState"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY, time INTEGER NOT NULL, amount REAL NOT NULL,
    score REAL, decision INTEGER, model TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS entity_events (
    entity TEXT NOT NULL, key TEXT NOT NULL, time INTEGER NOT NULL, id TEXT NOT NULL,
    amount REAL NOT NULL, PRIMARY KEY (entity, key, time, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entity_events_by_time ON entity_events (time);
CREATE TABLE IF NOT EXISTS labels (
    id TEXT PRIMARY KEY, label REAL NOT NULL, label_time INTEGER NOT NULL
) WITHOUT ROWID;
"""
# Each write touches the fewest B-trees that a read and a prune need: an index on event time
# exists only for entity_events (pruning); events are found by id.
# Many keys travel as one JSON array parameter (no limit on how many a batch reads); one key
# (a served request) as a plain parameter, which SQLite plans as a direct index range.
_MANY = "IN (SELECT value FROM json_each(?))"
_ONE = "= ?"
_PLAIN = "SELECT key, time, amount FROM entity_events WHERE entity = ? AND key {} AND time > ?"
_LABELLED = (
    "SELECT e.key, e.time, e.amount, l.label, l.label_time FROM entity_events e "
    "JOIN labels l ON l.id = e.id "
    "WHERE e.entity = ? AND e.key {} AND e.time > ? AND l.label_time <= ?"
)
# a key's newest event, which pruning never drops: "time since the previous transaction"
_LAST = "SELECT key, MAX(time) FROM entity_events WHERE entity = ? AND key {} GROUP BY key"
_SCORED = "SELECT id, score, decision, model FROM events WHERE id {}"


def _in(values: np.ndarray) -> tuple[str, str]:
    """The SQL condition and its parameter for ``column IN values``."""
    if len(values) == 1:
        return _ONE, str(values[0])
    return _MANY, json.dumps(values.tolist())


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
        self._local = threading.local()  # one connection per thread (server thread pools)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._create_schema()

    # ------------------------------------------------------------------ connections
    def _connection(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(
                self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
            )
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA mmap_size=1073741824")  # reads from the page cache, no syscalls
            db.execute("PRAGMA cache_size=-65536")
            self._local.db = db
        return db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: the lock is taken before anything is read."""
        db = self._connection()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _create_schema(self) -> None:
        db = self._connection()
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                db.execute(statement)

    def close(self) -> None:
        """Close this thread's connection."""
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    # ------------------------------------------------------------------ scoring
    def transact(self, request: StateRequest, compute: Compute) -> tuple[Snapshot, ScoredEvents]:
        """See :meth:`FeatureState.transact`: all of it inside one write transaction."""
        with self._write() as db:
            snapshot = Snapshot(
                scored=_scored(db, request.ids),
                events={q.entity: _read(db, q, request.label_cutoff) for q in request.queries},
            )
            events = compute(snapshot)
            _insert(db, events)
        return snapshot, events

    def scored(self, ids: np.ndarray) -> dict[str, tuple[float, int, str]]:
        """Stored ``(score, decision, model)`` per known id."""
        return _scored(self._connection(), ids)

    def write_events(self, events: ScoredEvents) -> int:
        """Bulk write, skipping ids already stored; one transaction."""
        with self._write() as db:
            return _insert(db, events)

    def add_labels(self, labels: Labels) -> tuple[int, int]:
        """Store the feed's labels; count those whose event is in the store."""
        rows = list(
            zip(
                labels.ids.tolist(),
                labels.label.astype(float).tolist(),
                labels.label_time.astype(int).tolist(),
                strict=True,
            )
        )
        with self._write() as db:
            db.executemany(
                "INSERT INTO labels VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                "label = excluded.label, label_time = excluded.label_time",
                rows,
            )
            matched = db.execute(
                f"SELECT COUNT(*) FROM events WHERE id {_MANY}", (json.dumps(labels.ids.tolist()),)
            ).fetchone()[0]
        return len(rows), int(matched)

    # ------------------------------------------------------------------ upkeep
    def prune(self, before: int) -> int:
        """Drop events older than ``before`` with their labels, but keep each key's newest."""
        with self._write() as db:
            old = "SELECT id FROM entity_events WHERE time < ?"
            db.execute(f"DELETE FROM labels WHERE id IN ({old})", (before,))
            dropped = db.execute(f"DELETE FROM events WHERE id IN ({old})", (before,)).rowcount
            db.execute(
                "DELETE FROM entity_events WHERE time < ? AND time < (SELECT MAX(x.time) "
                "FROM entity_events x WHERE x.entity = entity_events.entity "
                "AND x.key = entity_events.key)",
                (before,),
            )
        return int(dropped)

    def stats(self) -> StateStats:
        """Counts, active keys per entity kind, file bytes (database + WAL)."""
        db = self._connection()
        events, newest = db.execute(
            "SELECT COUNT(*), COALESCE(MAX(time), -1) FROM events"
        ).fetchone()
        labels = db.execute("SELECT COUNT(*) FROM labels").fetchone()[0]
        entities = dict(
            db.execute("SELECT entity, COUNT(DISTINCT key) FROM entity_events GROUP BY entity")
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


def _file_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


def _scored(db: sqlite3.Connection, ids: np.ndarray) -> dict[str, tuple[float, int, str]]:
    if len(ids) == 0:
        return {}
    condition, param = _in(ids)
    rows = db.execute(_SCORED.format(condition), (param,)).fetchall()
    return {str(i): (float(score), int(decision), str(model)) for i, score, decision, model in rows}


def _read(db: sqlite3.Connection, query: EntityQuery, label_cutoff: int) -> EntityEvents:
    condition, keys = _in(query.keys)
    params: tuple[Any, ...] = (query.entity, keys, query.since)
    if query.labelled:
        sql, params = _LABELLED, (*params, label_cutoff)
    else:
        sql = _PLAIN
    rows = db.execute(sql.format(condition), params).fetchall()
    last = dict(db.execute(_LAST.format(condition), (query.entity, keys)).fetchall())
    return _events_of(rows, query.labelled, last)


def _events_of(rows: list[tuple], labelled: bool, last: dict[str, int]) -> EntityEvents:
    if not rows:
        return EntityEvents.empty(last)
    columns = list(zip(*rows, strict=True))
    n = len(rows)
    return EntityEvents(
        key=np.asarray(columns[0], dtype=object),
        time=np.asarray(columns[1], dtype=np.int64),
        amount=np.asarray(columns[2], dtype=np.float64),
        label=np.asarray(columns[3], dtype=np.float64) if labelled else np.full(n, np.nan),
        label_time=np.asarray(columns[4], dtype=np.int64) if labelled else np.zeros(n, np.int64),
        last=last,
    )


def _insert(db: sqlite3.Connection, events: ScoredEvents) -> int:
    """Insert events (ids already stored are skipped); returns how many were new."""
    if len(events) == 0:
        return 0
    ids = events.ids.tolist()
    times = events.time.astype(np.int64).tolist()
    amounts = events.amount.astype(np.float64).tolist()
    written = db.executemany(
        "INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?, ?, ?)",
        zip(
            ids,
            times,
            amounts,
            events.score.astype(np.float64).tolist(),
            events.decision.astype(np.int64).tolist(),
            [events.model] * len(ids),
            strict=True,
        ),
    )
    for entity, keys in events.keys.items():
        db.executemany(
            "INSERT OR IGNORE INTO entity_events VALUES (?, ?, ?, ?, ?)",
            zip([entity] * len(ids), keys.tolist(), times, ids, amounts, strict=True),
        )
    if events.label is not None and events.label_time is not None:
        known = ~np.isnan(events.label)
        db.executemany(
            "INSERT OR IGNORE INTO labels VALUES (?, ?, ?)",
            zip(
                events.ids[known].tolist(),
                events.label[known].tolist(),
                events.label_time[known].astype(np.int64).tolist(),
                strict=True,
            ),
        )
    return int(written.rowcount)
