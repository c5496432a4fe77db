"""Where a one-row request's feature-state cost goes, outside MLflow's server.

``bench_state.py`` measures the state through the real server; this measures parts of it in
process, so that the server's own costs drop out:

* **in_process**: the same registered 300-tree model loaded twice, stateless and on a SQLite
  state seeded from its history, ``predict`` on one-row frames (new ids, after the history),
  the two in turn: wall-clock p50 and CPU per call of each, and their difference.
* **in_process_invocations**: the same, through MLflow's request function (``invocations``:
  JSON body in, JSON out) in a pool thread, with the serving environment set, as each request
  runs inside ``mlflow models serve``.
* **two_connections**: one-row read-score-write transactions (a free classifier, as in
  ``bench_state.py``'s store part, 3,000 customers) through one connection, and through two
  connections to the same file taking turns, as the server's two workers do at c=8. SQLite
  drops a connection's page cache whenever another connection has committed, so every turn
  re-reads its pages; the difference in CPU per transaction is that cost.
* **series_layout**: the statements of one one-row transaction (``BEGIN IMMEDIATE``, the
  exactly-once lookup, the customer's series, the terminal's labelled series, the event
  insert, the series rewrite, ``COMMIT``), timed one by one on two copies of the seeded store
  the first two parts use (3,000 customers, rows of 1-4 KB): ``series`` as the rowid table
  rewritten with ``UPDATE`` that the store uses, and as the ``WITHOUT ROWID`` table rewritten
  with ``INSERT OR REPLACE`` that it used before. Blocks of transactions alternate between the
  copies; p50 and mean per statement, and each copy's size (both vacuumed first).

Each part alternates its variants, call by call or block by block, and reports medians (a
shared machine's load moves in bursts).
Run: ``python benchmarks/bench_state_cost.py`` (about 2 minutes). Writes
``results/state-cost.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from bench_scoring import URI, Settings, _seeded_state, prepared_world
from bench_serving import machine
from bench_state import _bodies, _empty_frame, _one_row_frames, _TimingModel, synthetic_events

RESULTS = Path(__file__).parent / "results"
WORLD = replace(Settings(), incoming_rows=20_000)
IN_PROCESS_CALLS, WARM_CALLS = 3000, 300
CONNECTION_BLOCKS, BLOCK_TRANSACTIONS = 6, 800


def in_process(root: Path, *, through_mlflow: bool, first_id: int) -> dict[str, Any]:
    """Stateless and SQLite-state one-row calls, interleaved call by call.

    ``through_mlflow``: JSON bodies through MLflow's ``invocations`` in a pool thread, with
    the serving environment set (records out, plain pandas strings), as the server runs them;
    else ``predict`` on one-row frames. ``first_id``: ids start there (each call is new).
    """
    import mlflow

    from inferloop.core import schema as s
    from inferloop.state.config import STATE_ENV

    db = root / f"inproc-{first_id}.db"
    shutil.copyfile(root / "seeded.db", db)
    serving = {"_MLFLOW_IS_IN_SERVING_ENVIRONMENT": "true"} if through_mlflow else {}
    models = {}
    with _environ(serving), pd.option_context("future.infer_string", not through_mlflow):
        for name, location in (("stateless", "none"), ("sqlite_state", str(db))):
            with _environ({STATE_ENV: location}):
                models[name] = mlflow.pyfunc.load_model(URI)
        rows = pd.read_parquet(root / "incoming.parquet").head(IN_PROCESS_CALLS + WARM_CALLS)
        rows[s.TRANSACTION_ID] = np.arange(len(rows), dtype=np.int64) + first_id
        plain = rows[list(s.SCORING_COLUMNS)].assign(
            **{s.TIMESTAMP: rows[s.TIMESTAMP].dt.strftime("%Y-%m-%dT%H:%M:%S")}
        )
        calls = _mlflow_calls(rows) if through_mlflow else _predict_calls(plain)
        wall, cpu = _interleaved(models, calls)
    names = list(models)
    out: dict[str, Any] = {
        name: {
            "calls": len(wall[name]),
            "p50_ms": round(statistics.median(wall[name]) * 1e3, 3),
            "cpu_ms_per_call": round(cpu[name] / len(wall[name]) * 1e3, 3),
        }
        for name in names
    }
    out["sqlite_over_stateless"] = {
        "p50_ms": round(out["sqlite_state"]["p50_ms"] - out["stateless"]["p50_ms"], 3),
        "cpu_ms_per_call": round(
            out["sqlite_state"]["cpu_ms_per_call"] - out["stateless"]["cpu_ms_per_call"], 3
        ),
    }
    return out


@contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    """``os.environ`` with ``values`` set, restored afterwards."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


Call = Callable[[Any], Any]


def _predict_calls(plain: pd.DataFrame) -> list[Call]:
    frames = [plain.iloc[[i]].reset_index(drop=True) for i in range(len(plain))]
    return [partial(lambda frame, model: model.predict(frame), frame) for frame in frames]


def _mlflow_calls(rows: pd.DataFrame) -> list[Call]:
    """One ``invocations`` call per row (the body ``bench_state.py`` sends), run in a pool
    thread as the server's handler does."""
    from mlflow.pyfunc.scoring_server import invocations

    pool = ThreadPoolExecutor(max_workers=8)
    bodies = [body.encode() for body in _bodies(rows)]

    def call(body: bytes, model: Any) -> Any:
        result = pool.submit(invocations, body, "application/json", model, None).result()
        if result.status != 200:
            raise RuntimeError(result.response[:500])
        return result

    return [partial(call, body) for body in bodies]


def _interleaved(
    models: dict[str, Any], calls: list[Call]
) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Each call on every model in turn (who goes first alternates), after a warm-up."""
    for call in calls[:WARM_CALLS]:
        for model in models.values():
            call(model)
    names = list(models)
    wall: dict[str, list[float]] = {n: [] for n in names}
    cpu = dict.fromkeys(names, 0.0)
    for i, call in enumerate(calls[WARM_CALLS:]):
        for name in names if i % 2 else names[::-1]:
            c0, t0 = time.process_time(), time.perf_counter()
            call(models[name])
            wall[name].append(time.perf_counter() - t0)
            cpu[name] += time.process_time() - c0
    return wall, cpu


def two_connections(root: Path) -> dict[str, Any]:
    """CPU per transaction through one connection, and through two taking turns."""
    from inferloop.data.features import FeatureParams, TransactionFeaturizer
    from inferloop.data.rows import read_transactions
    from inferloop.model import LiveScorer
    from inferloop.state.sqlite import SqliteState

    rng = np.random.default_rng(1)
    customers, terminals = 3000, 1000
    events = synthetic_events(rng, customers, terminals)
    path = root / "two-connections.db"
    store = SqliteState(path)
    store.write_events(events)
    store.close()
    featurizer = TransactionFeaturizer.from_params(FeatureParams()).fit(_empty_frame())
    first, second = (
        LiveScorer(_TimingModel(featurizer), SqliteState(path), prune_every=10**9) for _ in range(2)
    )
    count = 200 + 2 * CONNECTION_BLOCKS * BLOCK_TRANSACTIONS
    frames = _one_row_frames(rng, count, customers, terminals, int(events.time[-1]) + 60)
    txs = [read_transactions(f) for f in frames]
    for tx in txs[:200]:
        first.score_transactions(tx)
    cpu: dict[str, list[float]] = {"one_connection": [], "two_connections": []}
    at = 200
    for block in range(2 * CONNECTION_BLOCKS):
        # one, two, two, one, one, two, ...: neither always runs first
        turns = block % 2 == (block // 2) % 2
        batch = txs[at : at + BLOCK_TRANSACTIONS]
        at += BLOCK_TRANSACTIONS
        c0 = time.process_time()
        for i, tx in enumerate(batch):
            (second if turns and i % 2 else first).score_transactions(tx)
        seconds = (time.process_time() - c0) / len(batch)
        cpu["two_connections" if turns else "one_connection"].append(seconds * 1e3)
    for scorer in (first, second):
        assert scorer.state is not None
        scorer.state.close()
    one, two = (statistics.median(cpu[k]) for k in ("one_connection", "two_connections"))
    return {
        "customers": customers,
        "transactions_per_block": BLOCK_TRANSACTIONS,
        "cpu_ms_per_transaction_by_block": {k: [round(x, 3) for x in v] for k, v in cpu.items()},
        "one_connection_cpu_ms": round(one, 3),
        "two_connections_cpu_ms": round(two, 3),
        "turn_taking_cost_cpu_ms": round(two - one, 3),
    }


#: The series table as it was before the store made it a rowid table (see
#: ``inferloop.state.sqlite``), and how a request rewrote a key's row then.
_WITHOUT_ROWID_SERIES = """CREATE TABLE series (
    entity TEXT NOT NULL, key TEXT NOT NULL, kind INTEGER NOT NULL,
    times BLOB NOT NULL, a BLOB NOT NULL, b BLOB, ids TEXT,
    PRIMARY KEY (entity, key, kind)
) WITHOUT ROWID"""
_REPLACE_SERIES = "INSERT OR REPLACE INTO series VALUES (?, ?, ?, ?, ?, ?, ?)"
LAYOUT_BLOCKS, LAYOUT_TRANSACTIONS = 8, 500
_KEYS = "SELECT key FROM series WHERE entity = ? AND kind = ?"
_STATEMENTS = ("begin", "scored", "customer_series", "terminal_series", "insert", "rewrite")


def series_layout(root: Path) -> dict[str, Any]:
    """Per-statement cost of a one-row transaction on the rowid and the WITHOUT ROWID layout."""
    import sqlite3

    from inferloop.state.sqlite import SqliteState

    rng = np.random.default_rng(2)
    rowid, without = root / "layout-rowid.db", root / "layout-without-rowid.db"
    shutil.copyfile(root / "seeded.db", rowid)  # the benchmark world's history, 1-4 KB rows
    with SqliteState(rowid) as store:  # opened once as the store opens it
        start = store.stats().newest_time + 60
    shutil.copyfile(rowid, without)
    db = sqlite3.connect(without, isolation_level=None)  # the same rows, the earlier layout
    db.execute("BEGIN")
    db.execute("ALTER TABLE series RENAME TO series_rowid")
    db.execute(_WITHOUT_ROWID_SERIES)
    db.execute("INSERT INTO series SELECT * FROM series_rowid")
    db.execute("DROP TABLE series_rowid")
    db.execute("COMMIT")
    db.close()
    layouts = {"rowid_update": rowid, "without_rowid_replace": without}
    sizes = {name: _vacuumed_bytes(path) for name, path in layouts.items()}
    conns = {name: _store_connection(path) for name, path in layouts.items()}
    keys = {
        entity: [row[0] for row in conns["rowid_update"].execute(_KEYS, (entity, kind))]
        for entity, kind in (("customer", 0), ("terminal", 1))
    }
    times: dict[str, dict[str, list[float]]] = {
        name: {k: [] for k in (*_STATEMENTS, "commit", "transaction")} for name in layouts
    }
    names = list(layouts)
    for block in range(2 * LAYOUT_BLOCKS):
        name = names[(block + block // 2) % 2]  # a, b, b, a, a, b, ...: neither always first
        for i in range(LAYOUT_TRANSACTIONS):
            n = block * LAYOUT_TRANSACTIONS + i
            customer, terminal = (str(rng.choice(keys[e])) for e in ("customer", "terminal"))
            one = _layout_transaction(conns[name], name, f"x{n}", start + n, customer, terminal)
            for key, seconds in one.items():
                times[name][key].append(seconds)
    for db in conns.values():
        db.close()
    out: dict[str, Any] = {
        "customers": len(keys["customer"]),
        "transactions": LAYOUT_BLOCKS * LAYOUT_TRANSACTIONS,  # per layout
    }
    for name in layouts:
        warm = {k: v[LAYOUT_TRANSACTIONS // 5 :] for k, v in times[name].items()}
        out[name] = {
            "p50_us": {k: round(statistics.median(v) * 1e6, 1) for k, v in warm.items()},
            "mean_us": {k: round(statistics.mean(v) * 1e6, 1) for k, v in warm.items()},
            "store_bytes": sizes[name],
        }
    return out


def _vacuumed_bytes(path: Path) -> int:
    """The store's size once vacuumed (both copies compacted alike)."""
    import sqlite3

    db = sqlite3.connect(path, isolation_level=None)
    db.execute("VACUUM")
    pages, size = (db.execute(f"PRAGMA {p}").fetchone()[0] for p in ("page_count", "page_size"))
    db.close()
    return int(pages * size)


def _store_connection(path: Path) -> Any:
    """A connection set up as ``SqliteState`` sets up its own."""
    import sqlite3

    from inferloop.state.sqlite import _PRAGMAS

    db = sqlite3.connect(path, isolation_level=None)
    for pragma in _PRAGMAS:
        db.execute(f"PRAGMA {pragma}")
    return db


def _layout_transaction(
    db: Any, layout: str, tx_id: str, at: int, customer: str, terminal: str
) -> dict[str, float]:
    """One one-row read-write transaction on ``db``, each statement timed (seconds)."""
    from inferloop.state.sqlite import _INSERT_SERIES, _ONE, _SCORED, _SERIES, _UPDATE_SERIES

    out: dict[str, float] = {}
    t_start = time.perf_counter()

    def timed(name: str, statement: str, params: tuple[Any, ...] = ()) -> list[Any]:
        t0 = time.perf_counter()
        rows = db.execute(statement, params).fetchall()
        out[name] = time.perf_counter() - t0
        return rows

    timed("begin", "BEGIN IMMEDIATE")
    timed("scored", _SCORED.format(_ONE), (tx_id,))
    series = timed("customer_series", _SERIES.format(_ONE), ("customer", 0, customer))
    timed("terminal_series", _SERIES.format(_ONE), ("terminal", 1, terminal))
    timed(
        "insert",
        "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)",
        (tx_id, at, 10.0, 0.0, 0, "", f"customer\x1f{customer}\x1fterminal\x1f{terminal}"),
    )
    # the key's series with the event appended (little-endian int64 / float64, as stored)
    new_time, new_amount = at.to_bytes(8, "little", signed=True), np.float64(10.0).tobytes()
    packed = (new_time, new_amount)
    if series:
        _, old_times, old_amounts, *_ = series[0]
        packed = (old_times + new_time, old_amounts + new_amount)
    if layout == "rowid_update" and series:
        timed("rewrite", _UPDATE_SERIES, (*packed, None, None, "customer", customer, 0))
    else:
        statement = _INSERT_SERIES if layout == "rowid_update" else _REPLACE_SERIES
        timed("rewrite", statement, ("customer", customer, 0, *packed, None, None))
    timed("commit", "COMMIT")
    out["transaction"] = time.perf_counter() - t_start
    return out


def main() -> int:
    """Build the scoring benchmark's world, run the four parts, write the JSON."""
    before = machine()
    with tempfile.TemporaryDirectory(prefix="bench-state-cost-") as tmp:
        root = Path(tmp)
        prepared_world(WORLD, root)
        _seeded_state(root / "seeded.db")
        out = {
            "in_process": in_process(root, through_mlflow=False, first_id=10**12),
            "in_process_invocations": in_process(root, through_mlflow=True, first_id=2 * 10**12),
            "two_connections": two_connections(root),
            "series_layout": series_layout(root),
        }
    result = {
        "machine": {**before, "load_average_end": [round(x, 2) for x in os.getloadavg()]},
        **out,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "state-cost.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
