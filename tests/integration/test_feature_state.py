"""The live feature state against real stores: a SQLite file and a real ``redis-server``.

What must hold, on both backends: scores through the store equal scores with an in-memory
live history (point-in-time exact); one request at a time equals the batch; a retried
transaction id keeps its score and counts once; the state survives a restart; labels count
from the second they arrive; concurrent clients keep every count exact; and a process killed
with ``kill -9`` in the middle of writes leaves whole transactions only. The HTTP tests run
``mlflow models serve`` with 2 workers sharing one SQLite state, as ``inferloop serve`` does.
"""

from __future__ import annotations

import copy
import dataclasses
import http.client
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from scoring_support import CHAMPION_URI, SCORING_SIM, Champion, fit_model, incoming_days

from inferloop.core import schema as s
from inferloop.core.dataset import CARD_FRAUD, dataset_spec
from inferloop.data.features import FeatureParams
from inferloop.data.processed import build_processed
from inferloop.data.simulate import simulate_transactions
from inferloop.model import FraudModel, LiveScorer
from inferloop.scoring.live_state import deliver_labels, read_label_table, seed_state
from inferloop.scoring.serving import ServeConfig, free_port, running_server
from inferloop.state.base import Compute, FeatureState, ScoredEvents, Snapshot, StateRequest
from inferloop.state.config import open_state
from inferloop.state.sqlite import SqliteState

pytestmark = pytest.mark.integration
INFERLOOP = str(Path(sys.executable).parent / "inferloop")


@pytest.fixture(scope="module")
def model() -> FraudModel:
    """The scoring tests' small model (its history ends right before ``incoming_days(0, ..)``)."""
    return fit_model()


@pytest.fixture(scope="module")
def day() -> pd.DataFrame:
    """One day of incoming transactions (about 1,300 rows), time-sorted, without labels."""
    return incoming_days(0, 1).reset_index(drop=True)


@pytest.fixture(params=["sqlite", "redis"])
def new_store(
    request: pytest.FixtureRequest, tmp_path: Path, redis_url: Callable[[], str]
) -> Iterator[Callable[[], FeatureState]]:
    """A factory of empty stores of one backend (each call: a new file or Redis database)."""
    opened: list[FeatureState] = []
    counter = iter(range(100))

    def make() -> FeatureState:
        n = next(counter)
        location = str(tmp_path / f"state-{n}.db") if request.param == "sqlite" else redis_url()
        store = open_state(location)
        assert store is not None
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


def _in_memory_scores(model: FraudModel, rows: pd.DataFrame) -> np.ndarray:
    return LiveScorer(copy.deepcopy(model)).score(rows)[s.SCORE].to_numpy()


def _seeded(make: Callable[[], FeatureState], model: FraudModel) -> FeatureState:
    store = make()
    assert seed_state(store, model) == len(model.featurizer.history_.time)
    return store


def test_store_scores_equal_the_in_memory_live_history_batch_and_one_by_one(
    model: FraudModel, day: pd.DataFrame, new_store: Callable[[], FeatureState]
) -> None:
    expected = _in_memory_scores(model, day)
    batch = LiveScorer(model, _seeded(new_store, model)).score(day)[s.SCORE].to_numpy()
    np.testing.assert_allclose(batch, expected, rtol=0, atol=1e-12)
    one_by_one = LiveScorer(model, _seeded(new_store, model))
    rows = day.head(300)
    singles = np.concatenate(
        [one_by_one.score(rows.iloc[[i]])[s.SCORE].to_numpy() for i in range(len(rows))]
    )
    np.testing.assert_allclose(singles, expected[: len(rows)], rtol=0, atol=1e-12)


def test_a_retried_transaction_keeps_its_score_and_counts_once(
    model: FraudModel, day: pd.DataFrame, new_store: Callable[[], FeatureState]
) -> None:
    store = _seeded(new_store, model)
    before = store.stats().events
    scorer = LiveScorer(model, store)
    first = scorer.score(day.head(200))[s.SCORE].to_numpy()
    retried = scorer.score(day.iloc[50:120])[s.SCORE].to_numpy()  # a client's retries
    np.testing.assert_array_equal(retried, first[50:120])
    assert scorer.retried_rows == 70
    assert store.stats().events == before + 200
    # the rest of the day scores as if no retry had happened
    rest = scorer.score(day.iloc[200:])[s.SCORE].to_numpy()
    np.testing.assert_allclose(rest, _in_memory_scores(model, day)[200:], rtol=0, atol=1e-12)


#: named entities beyond the built-in two: a shared device (velocity) and a merchant (risk)
_NAMED = {
    "customer": {},
    "device": {"column": "device_id", "features": "velocity"},
    "merchant": {"column": "merchant_id", "features": "risk", "prefix": "merch"},
}


def _with_named_keys(frame: pd.DataFrame) -> pd.DataFrame:
    """Key columns of the named entities: devices shared by a few customers, merchants owning
    several terminals (text and integer keys)."""
    return frame.assign(
        device_id="d" + (frame[s.CUSTOMER_ID] % 97).astype(str),
        merchant_id=frame[s.TERMINAL_ID] % 13,
    )


@pytest.mark.parametrize(
    "entities", [[], ["terminal"], _NAMED], ids=["no-keys", "terminal-only", "named"]
)
def test_declared_entities_score_through_the_store_as_in_memory(
    entities: object, day: pd.DataFrame, new_store: Callable[[], FeatureState]
) -> None:
    """Each declared entity is a series in the store, an undeclared one has no column and no
    series, and the scores are the in-memory ones exactly."""
    spec = dataclasses.replace(CARD_FRAUD, entities=dataset_spec({"entities": entities}).entities)
    absent = [c for c in (s.CUSTOMER_ID, s.TERMINAL_ID) if c not in spec.entity_columns]
    history = _with_named_keys(simulate_transactions(SCORING_SIM)).drop(columns=absent)
    processed, featurizer = build_processed(history, FeatureParams(label_delay="3D"), spec)
    features = list(featurizer.feature_names_out_)
    for e in spec.entities:
        assert any(f.startswith(f"{e.prefix}_") for f in features), (e, features)
    clf = lgb.LGBMClassifier(n_estimators=30, num_leaves=15, verbose=-1, seed=0, n_jobs=1)
    clf.fit(processed[features], processed[s.TARGET])
    model = FraudModel(featurizer, clf, 0.5, "lightgbm")
    rows = _with_named_keys(day).drop(columns=absent).head(400)
    expected = _in_memory_scores(model, rows)
    store = new_store()
    seeded = seed_state(store, model)
    assert seeded == (len(featurizer.history_.time) if entities else 0)
    scorer = LiveScorer(model, store)
    np.testing.assert_allclose(scorer.score(rows)[s.SCORE], expected, rtol=0, atol=1e-12)
    retried = scorer.score(rows.iloc[10:40])[s.SCORE].to_numpy()
    np.testing.assert_array_equal(retried, expected[10:40])
    stats = store.stats()
    assert stats.events == seeded + len(rows)
    assert set(stats.entities) == set(spec.entity_names)


def test_the_state_survives_a_restart(
    model: FraudModel, day: pd.DataFrame, tmp_path: Path, redis_url: Callable[[], str]
) -> None:
    expected = _in_memory_scores(model, day)
    for location in (str(tmp_path / "restart.db"), redis_url()):
        store = open_state(location)
        assert store is not None
        seed_state(store, model)
        LiveScorer(model, store).score(day.head(600))
        store.close()  # the process ends ...
        reopened = open_state(location)  # ... and a new one opens the same store
        assert reopened is not None
        assert seed_state(reopened, model) == 0, "a store with events is not seeded again"
        rest = LiveScorer(model, reopened).score(day.iloc[600:])[s.SCORE].to_numpy()
        reopened.close()
        np.testing.assert_allclose(rest, expected[600:], rtol=0, atol=1e-12, err_msg=location)


def test_labels_count_from_the_second_they_arrive(
    model: FraudModel, day: pd.DataFrame, new_store: Callable[[], FeatureState], tmp_path: Path
) -> None:
    store = _seeded(new_store, model)
    scorer = LiveScorer(model, store)
    delay = model.featurizer.label_delay_s_
    early = day.head(400)
    scorer.score(early)
    # chargebacks for the early rows, arriving one label delay after each transaction
    labels = early[[s.TRANSACTION_ID]].assign(
        **{s.TARGET: 1, s.LABEL_AVAILABLE_AT: early[s.TIMESTAMP] + pd.Timedelta(seconds=delay)}
    )
    result = deliver_labels(store, labels, table_dir=tmp_path / "labels")
    assert (result.rows_in, result.rows_applied, result.matched) == (400, 400, 400)
    assert len(read_label_table(tmp_path / "labels")) == 400
    terminal = early[s.TERMINAL_ID].iloc[0]
    labelled_at = early[s.TIMESTAMP].iloc[0] + pd.Timedelta(seconds=delay)
    probe = day.head(1).assign(**{s.TERMINAL_ID: terminal})
    before = probe.assign(
        **{s.TRANSACTION_ID: 10**9, s.TIMESTAMP: labelled_at - pd.Timedelta(seconds=1)}
    )
    after = probe.assign(**{s.TRANSACTION_ID: 10**9 + 1, s.TIMESTAMP: labelled_at})
    risk = f"term_risk_{model.featurizer.terminal_windows[0]}"
    count = f"term_count_{model.featurizer.terminal_windows[0]}"
    seen_before = scorer.score(before, with_features=True).iloc[0]
    seen_after = scorer.score(after, with_features=True).iloc[0]
    assert seen_after[count] == seen_before[count] + 1  # the label arrived: one more known
    assert seen_after[risk] > seen_before[risk]


def test_bad_label_rows_are_quarantined_with_their_reason(tmp_path: Path) -> None:
    store = SqliteState(tmp_path / "labels.db")
    frame = pd.DataFrame(
        {
            s.TRANSACTION_ID: [1, 2, None, 4],
            "label": [1, 7, 0, 0],
            "label_time": ["2026-01-01T00:00:00", "2026-01-01", "2026-01-01", "not a time"],
        }
    ).rename(columns={"label": s.TARGET, "label_time": s.LABEL_AVAILABLE_AT})
    result = deliver_labels(store, frame, table_dir=tmp_path / "table")
    assert result.rows_in == result.rows_applied + result.rows_rejected == 4
    assert result.by_reason == {
        "invalid_target": 1,
        "null_key:transaction_id": 1,
        "unparseable_label_available_at": 1,
    }
    assert result.quarantine_path is not None
    assert len(pd.read_parquet(result.quarantine_path)) == 3
    store.close()


def test_label_command_applies_a_file_and_names_rejected_rows(
    champion: Champion, tmp_path: Path
) -> None:
    labels = tmp_path / "chargebacks.csv"
    labels.write_text(
        "transaction_id,label,label_time\n1,1,2026-02-01T10:00:00\n2,0,2026-02-01T11:00:00\n3,,x\n"
    )
    state = tmp_path / "label-cli.db"
    cmd = [INFERLOOP, "label", "--input", str(labels), "--state", str(state)]
    cmd += ["--table", str(tmp_path / "table"), "--quarantine", str(tmp_path / "q")]
    done = subprocess.run(cmd, env=champion.env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr  # one row was rejected
    assert "3 in, 2 applied" in done.stdout and "invalid_target: 1" in done.stdout
    assert sqlite3.connect(state).execute("SELECT COUNT(*) FROM labels").fetchone()[0] == 2


def test_concurrent_writers_on_the_same_customers_keep_every_count_exact(
    model: FraudModel, day: pd.DataFrame, new_store: Callable[[], FeatureState]
) -> None:
    """8 threads, each with its own connection, score overlapping slices (with retries)."""
    rows = _same_customers(day.head(400), customers=5)
    reference = LiveScorer(model, _seeded(new_store, model))
    store = _seeded(new_store, model)
    location = store.location
    store.close()
    slices = [rows.iloc[i::8] for i in range(8)] + [rows.iloc[::5]]  # the last: all retries

    def worker(part: pd.DataFrame) -> None:
        own = open_state(location)
        scorer = LiveScorer(model, own)
        for i in range(len(part)):
            scorer.score(part.iloc[[i]])
        own.close()

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(worker, slices))
    checked = open_state(location)
    assert checked is not None
    assert checked.stats().events == len(model.featurizer.history_.time) + len(rows)
    # every event counted once: a later transaction of each customer sees exactly the history
    reference.score(rows)
    probes = _probes(rows, hours=1)
    np.testing.assert_allclose(
        LiveScorer(model, checked).score(probes, with_features=True)[model.feature_names],
        reference.score(probes, with_features=True)[model.feature_names],
        rtol=0,
        atol=1e-12,
    )
    checked.close()


@pytest.mark.parametrize("writer", ["another connection", "another thread, same connection"])
def test_sqlite_a_write_that_lands_while_a_request_scores_makes_it_score_again(
    model: FraudModel, day: pd.DataFrame, tmp_path: Path, writer: str
) -> None:
    """The optimistic path: a request reads and scores without the writers' lock; another
    writer then adds an event of the same customer; the request sees the change under the
    lock and scores again, so its features count that event, exactly as in time order.

    SQLite's ``data_version`` shows other connections' commits only, so a commit by another
    thread on the request's own connection (a server worker's thread pool) is checked too.
    """
    first = day.iloc[[0]].reset_index(drop=True)
    second = day.iloc[[1]].assign(
        **{
            s.CUSTOMER_ID: first[s.CUSTOMER_ID].iloc[0],
            s.TIMESTAMP: first[s.TIMESTAMP].iloc[0] + pd.Timedelta(minutes=5),
        }
    )
    reference = LiveScorer(model, _seeded(lambda: SqliteState(tmp_path / "ref.db"), model))
    reference.score(first)
    expected = reference.score(second, with_features=True)[model.feature_names]
    path = tmp_path / "shared.db"
    seed_state(SqliteState(path), model)
    request_store = SqliteState(path)
    other_store = SqliteState(path) if writer == "another connection" else request_store
    snapshots = _pause_first_compute(request_store)
    with ThreadPoolExecutor(1) as pool:
        scored = pool.submit(
            lambda: LiveScorer(model, request_store).score(second, with_features=True)
        )
        assert snapshots.read_done.wait(60)
        LiveScorer(model, other_store).score(first)  # lands between the read and the write
        snapshots.go.set()
        features = scored.result(60)[model.feature_names]
    assert len(snapshots.seen) == 2  # scored twice: the first read was stale
    np.testing.assert_allclose(features, expected, rtol=0, atol=1e-12)
    assert request_store.stats().events == len(model.featurizer.history_.time) + 2


def test_sqlite_a_write_elsewhere_while_a_request_scores_costs_no_second_scoring(
    model: FraudModel, day: pd.DataFrame, tmp_path: Path
) -> None:
    """A commit that touches none of the request's keys: the request reads its rows again
    under the lock, finds them unchanged and writes what it scored, once."""
    request_row = day.iloc[[0]].reset_index(drop=True)
    elsewhere = day[
        (day[s.CUSTOMER_ID] != request_row[s.CUSTOMER_ID].iloc[0])
        & (day[s.TERMINAL_ID] != request_row[s.TERMINAL_ID].iloc[0])
    ].iloc[[0]]
    reference = LiveScorer(model, _seeded(lambda: SqliteState(tmp_path / "ref.db"), model))
    expected = reference.score(request_row, with_features=True)[model.feature_names]
    path = tmp_path / "shared.db"
    seed_state(SqliteState(path), model)
    request_store = SqliteState(path)
    snapshots = _pause_first_compute(request_store)
    with ThreadPoolExecutor(1) as pool:
        scored = pool.submit(
            lambda: LiveScorer(model, request_store).score(request_row, with_features=True)
        )
        assert snapshots.read_done.wait(60)
        LiveScorer(model, SqliteState(path)).score(elsewhere)
        snapshots.go.set()
        features = scored.result(60)[model.feature_names]
    assert len(snapshots.seen) == 1
    np.testing.assert_allclose(features, expected, rtol=0, atol=1e-12)
    assert request_store.stats().events == len(model.featurizer.history_.time) + 2


@dataclasses.dataclass
class _Paused:
    """Snapshots the first caller's ``compute`` saw (other threads pass through); the first
    waits for ``go`` after ``read_done``."""

    seen: list[Snapshot] = dataclasses.field(default_factory=list)
    thread: int | None = None
    read_done: threading.Event = dataclasses.field(default_factory=threading.Event)
    go: threading.Event = dataclasses.field(default_factory=threading.Event)


def _pause_first_compute(store: SqliteState) -> _Paused:
    """Make ``store.transact`` stop in its first ``compute`` until released."""
    paused, transact = _Paused(), store.transact

    def wrapped(request: StateRequest, compute: Compute) -> tuple[Snapshot, ScoredEvents]:
        def first_waits(snapshot: Snapshot) -> ScoredEvents:
            if paused.thread not in (None, threading.get_ident()):
                return compute(snapshot)
            paused.thread = threading.get_ident()
            paused.seen.append(snapshot)
            if len(paused.seen) == 1:
                paused.read_done.set()
                paused.go.wait(60)
            return compute(snapshot)

        return transact(request, first_waits)

    store.transact = wrapped  # type: ignore[method-assign]
    return paused


def _same_customers(rows: pd.DataFrame, customers: int) -> pd.DataFrame:
    """``rows`` rewritten onto a few customers, so that every request touches shared keys."""
    keys = rows[s.CUSTOMER_ID].unique()[:customers]
    return rows.assign(**{s.CUSTOMER_ID: np.resize(keys, len(rows))})


def _probes(rows: pd.DataFrame, hours: int) -> pd.DataFrame:
    """One new transaction per customer, ``hours`` after the last row."""
    last = rows.drop_duplicates(s.CUSTOMER_ID, keep="last")
    return last.assign(
        **{
            s.TRANSACTION_ID: np.arange(len(last)) + 2 * 10**9,
            s.TIMESTAMP: rows[s.TIMESTAMP].max() + pd.Timedelta(hours=hours),
        }
    ).reset_index(drop=True)


def test_kill_9_in_the_middle_of_writes_leaves_whole_transactions(tmp_path: Path) -> None:
    path = tmp_path / "killed.db"
    script = textwrap.dedent(
        f"""
        import numpy as np
        from inferloop.state.base import ScoredEvents
        from inferloop.state.sqlite import SqliteState
        store = SqliteState({str(path)!r})
        print("ready", flush=True)
        for b in range(100000):
            ids = np.array([f"{{b}}-{{i}}" for i in range(50)], dtype=object)
            keys = np.array([str(i % 7) for i in range(50)], dtype=object)
            store.write_events(ScoredEvents(
                ids=ids, time=np.full(50, 1000 + b), amount=np.ones(50),
                keys={{"customer": keys, "terminal": keys}}, score=np.zeros(50),
                decision=np.zeros(50, dtype=np.int8)))
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=os.environ.copy()
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    time.sleep(1.5)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    db = sqlite3.connect(path)
    events = db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    assert events > 0 and events % 50 == 0, events  # whole transactions of 50 events
    # every stored event is in its keys' series exactly once, for both entity kinds
    per_entity: dict[str, int] = {}
    for entity, times in db.execute("SELECT entity, times FROM series WHERE kind = 0"):
        per_entity[entity] = per_entity.get(entity, 0) + len(times) // 8
    assert per_entity == {"customer": events, "terminal": events}
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


# --------------------------------------------------------------------------- over HTTP


@pytest.fixture(scope="module")
def stateful_server(
    champion: Champion, model_from_registry: FraudModel, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServeConfig, Path]]:
    """``mlflow models serve`` of the champion, 2 workers, one seeded SQLite state."""
    folder = tmp_path_factory.mktemp("stateful")
    state = folder / "features.db"
    store = SqliteState(state)
    seed_state(store, model_from_registry)
    store.close()
    config = ServeConfig(
        CHAMPION_URI, port=free_port(), workers=2, state=f"sqlite:///{state}", model_label="t:1"
    )
    env = champion.env()
    with running_server(config, champion.tracking_uri, folder / "server.log", env, 240):
        yield config, state


@pytest.fixture(scope="module")
def model_from_registry(champion: Champion) -> FraudModel:
    import mlflow

    # both: an earlier test in this worker may have pointed the registry elsewhere
    mlflow.set_tracking_uri(champion.tracking_uri)
    mlflow.set_registry_uri(champion.tracking_uri)
    try:
        loaded = mlflow.pyfunc.load_model(CHAMPION_URI).unwrap_python_model()
    finally:
        mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
        mlflow.set_registry_uri(None)  # type: ignore[arg-type]
    assert isinstance(loaded, FraudModel)
    return loaded


def _request(config: ServeConfig, rows: pd.DataFrame) -> list[dict[str, float]]:
    body = {
        "dataframe_records": rows[list(s.SCORING_COLUMNS)]
        .assign(**{s.TIMESTAMP: rows[s.TIMESTAMP].dt.strftime("%Y-%m-%dT%H:%M:%S")})
        .to_dict(orient="records")
    }
    conn = http.client.HTTPConnection(config.host, config.port, timeout=60)
    try:
        conn.request("POST", "/invocations", json.dumps(body), {"Content-Type": "application/json"})
        response = conn.getresponse()
        text = response.read().decode()
        assert response.status == 200, text
        return list(json.loads(text)["predictions"])
    finally:
        conn.close()


def test_one_request_at_a_time_over_http_equals_batch_with_a_live_history(
    stateful_server: tuple[ServeConfig, Path],
    model_from_registry: FraudModel,
    day: pd.DataFrame,
    tmp_path: Path,
) -> None:
    config, _ = stateful_server
    rows = day.head(400)
    served = np.array([_request(config, rows.iloc[[i]])[0][s.SCORE] for i in range(len(rows))])
    store = SqliteState(tmp_path / "batch.db")
    seed_state(store, model_from_registry)
    batch = LiveScorer(model_from_registry, store).score(rows)[s.SCORE].to_numpy()
    store.close()
    np.testing.assert_allclose(served, batch, rtol=0, atol=1e-9)
    # and a retry of any of them answers the same score
    again = _request(config, rows.iloc[[17]])[0][s.SCORE]
    assert again == served[17]


def test_two_workers_and_eight_clients_keep_every_count_exact(
    stateful_server: tuple[ServeConfig, Path],
    model_from_registry: FraudModel,
    day: pd.DataFrame,
    tmp_path: Path,
) -> None:
    config, state = stateful_server
    rows = _same_customers(day.iloc[400:800], customers=4).reset_index(drop=True)
    stored_before = sqlite3.connect(state).execute("SELECT COUNT(*) FROM events").fetchone()[0]
    jobs = [rows.iloc[[i]] for i in range(len(rows))] + [rows.iloc[[i]] for i in range(0, 400, 9)]
    with ThreadPoolExecutor(8) as pool:  # 8 clients, some sending a transaction twice
        answers = list(pool.map(lambda r: _request(config, r)[0], jobs))
    by_id: dict[int, float] = {}
    for answer in answers:  # a retried id got the same answer as its first request
        assert by_id.setdefault(answer[s.TRANSACTION_ID], answer[s.SCORE]) == answer[s.SCORE]
    db = sqlite3.connect(state)
    assert db.execute("SELECT COUNT(*) FROM events").fetchone()[0] == stored_before + len(rows)
    # every event counted once: a later probe per customer sees exactly the history
    reference = SqliteState(tmp_path / "reference.db")
    seed_state(reference, model_from_registry)
    sequential = LiveScorer(model_from_registry, reference)
    sequential.score(day.head(400))  # what the previous test sent to the server
    sequential.score(rows)
    probes = _probes(rows, hours=2)
    expected = sequential.score(probes)[s.SCORE].to_numpy()
    served = np.array([_request(config, probes.iloc[[i]])[0][s.SCORE] for i in range(len(probes))])
    np.testing.assert_allclose(served, expected, rtol=0, atol=1e-9)
    reference.close()


def test_pruning_bounds_the_state_and_keeps_each_keys_newest_time(
    new_store: Callable[[], FeatureState],
) -> None:
    from inferloop.data.events import EntityQuery
    from inferloop.state.base import Labels, ScoredEvents, StateRequest

    store = new_store()
    day = 86400
    n = 100  # one event a day for 100 days, keys "a" and "b" alternating; "c" only on day 3
    keys = np.array(["c" if i == 3 else "ab"[i % 2] for i in range(n)], dtype=object)
    ids = np.array([f"t{i}" for i in range(n)], dtype=object)
    store.write_events(
        ScoredEvents(
            ids=ids,
            time=np.arange(n) * day,
            amount=np.ones(n),
            keys={"customer": keys},
            score=np.zeros(n),
            decision=np.zeros(n, dtype=np.int8),
        )
    )
    store.add_labels(Labels(ids=ids, label=np.zeros(n), label_time=np.arange(n) * day + 1))
    assert store.prune(50 * day) == 50
    stats = store.stats()
    assert stats.events == 50 and stats.labels == 50
    query = EntityQuery("customer", np.array(["a", "b", "c"], dtype=object), -1, False)
    snapshot, _ = store.transact(
        StateRequest(ids=np.array(["new"], dtype=object), queries=[query], label_cutoff=200 * day),
        lambda snap: ScoredEvents(
            ids=np.empty(0, object),
            time=np.empty(0, np.int64),
            amount=np.empty(0),
            keys={"customer": np.empty(0, object)},
            score=np.empty(0),
            decision=np.empty(0, np.int8),
        ),
    )
    events = snapshot.events["customer"]
    assert events.time.min() >= 3 * day  # only recent events, and "c"'s single old one
    assert snapshot.events["customer"].last["c"] == 3 * day  # "time since last" survives


def test_the_location_comes_from_the_flag_then_the_environment_then_params(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from inferloop.scoring.live_state import state_location
    from inferloop.state.config import STATE_ENV, StateParams

    params = StateParams(location="state/features.db")
    monkeypatch.delenv(STATE_ENV, raising=False)
    assert state_location(None, params, tmp_path) == f"sqlite:///{tmp_path / 'state/features.db'}"
    monkeypatch.setenv(STATE_ENV, "redis://10.0.0.5:6379/2")
    assert state_location(None, params, tmp_path) == "redis://10.0.0.5:6379/2"
    assert state_location("none", params, tmp_path) == "none"
    assert open_state("none") is None
    with pytest.raises(ValueError, match="unknown feature-state location"):
        open_state("memcached://x")


def _labelled_series(path: Path) -> dict[tuple[str, str], tuple[bytes, bytes, bytes, str]]:
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT entity, key, times, a, b, ids FROM series WHERE kind = 1")
        return {(e, k): (t, a, b, i) for e, k, t, a, b, i in rows}


def _random_events(
    rng: np.random.Generator, n: int, step: int, start: int, *, customers: int, terminals: int
) -> ScoredEvents:
    """``n`` scored events ``step`` seconds apart on random customers and terminals."""
    return ScoredEvents(
        ids=np.asarray([f"t{i}" for i in range(n)], dtype=object),
        time=np.arange(n, dtype=np.int64) * step + start,
        amount=rng.uniform(1, 100, n),
        keys={
            "customer": np.asarray([f"c{i}" for i in rng.integers(0, customers, n)], dtype=object),
            "terminal": np.asarray([f"m{i}" for i in rng.integers(0, terminals, n)], dtype=object),
        },
        score=np.zeros(n),
        decision=np.zeros(n, np.int8),
    )


def test_labels_in_several_deliveries_equal_one_and_a_redelivery_replaces(
    tmp_path: Path,
) -> None:
    """The label feed's merge: per key, the same series whatever the deliveries' split."""
    from inferloop.state.base import Labels

    rng = np.random.default_rng(7)
    n = 600
    events = _random_events(rng, n, 60, 1_700_000_000, customers=40, terminals=15)
    labels = Labels(events.ids[::-1].copy(), rng.integers(0, 2, n).astype(float), events.time + 99)
    stores = [SqliteState(tmp_path / f"s{k}.db") for k in range(2)]
    for store in stores:
        store.write_events(events)
    assert stores[0].add_labels(labels) == (n, n)
    for part in np.array_split(np.arange(n), 5):
        stores[1].add_labels(Labels(labels.ids[part], labels.label[part], labels.label_time[part]))
    one, several = (_labelled_series(store.path) for store in stores)
    assert one == several and len(one) == len(set(events.keys["customer"])) + 15

    again = Labels(labels.ids[:3], 1.0 - labels.label[:3], labels.label_time[:3] + 5)
    assert stores[1].add_labels(again) == (3, 3)
    after = _labelled_series(stores[1].path)
    entries = sum(len(ids.split("\x1f")) for *_, ids in after.values())
    assert entries == 2 * n  # each event once per entity: replaced, not appended
    with sqlite3.connect(stores[1].path) as db:
        stored = dict(db.execute("SELECT id, label FROM labels").fetchall())
    assert [stored[i] for i in again.ids] == again.label.tolist()
    in_series = {
        i: float(v)
        for _, a, _, ids in after.values()
        for i, v in zip(ids.split("\x1f"), np.frombuffer(a, "<f8"), strict=True)
    }
    assert [in_series[i] for i in again.ids] == again.label.tolist()
    for store in stores:
        store.close()


def _every_window(store: FeatureState, entities: dict[str, np.ndarray], cutoff: int) -> list:
    """All the events a scoring request reads, plain and labelled, as sorted tuples."""
    from inferloop.data.events import EntityQuery
    from inferloop.state.base import StateRequest

    queries = [
        EntityQuery(entity, np.unique(keys).astype(object), -1, labelled)
        for entity, keys in entities.items()
        for labelled in (False, True)
    ]
    out: list = []
    for query in queries:
        request = StateRequest(ids=np.empty(0, object), queries=[query], label_cutoff=cutoff)
        snapshot, _ = store.transact(request, lambda _: _no_events(list(entities)))
        got = snapshot.events[query.entity]
        out += sorted(
            zip(
                [query.entity] * len(got.time), [query.labelled] * len(got.time),
                got.key.tolist(), got.time.tolist(), got.amount.tolist(),
                np.nan_to_num(got.label, nan=-1.0).tolist(),  # NaN: no label (NaN != NaN)
                got.label_time.tolist(), strict=True,
            )
        )  # fmt: skip
    return out


def _no_events(entities: list[str]) -> ScoredEvents:
    return ScoredEvents(
        ids=np.empty(0, object),
        time=np.empty(0, np.int64),
        amount=np.empty(0),
        keys={entity: np.empty(0, object) for entity in entities},
        score=np.empty(0),
        decision=np.empty(0, np.int8),
    )


def test_a_label_delivered_again_reads_as_if_delivered_once(
    new_store: Callable[[], FeatureState],
) -> None:
    """Both backends: labels in several deliveries, some delivered again with another value
    and arrival time, read exactly as the final labels delivered in one go; a label for an
    event the store does not hold is kept but reads nowhere."""
    from inferloop.state.base import Labels

    rng = np.random.default_rng(11)
    n = 300
    start = 1_700_000_000
    events = _random_events(rng, n, 600, start, customers=20, terminals=8)
    final = Labels(events.ids.copy(), rng.integers(0, 2, n).astype(float), events.time + 3600)
    redo = np.sort(rng.choice(n, 40, replace=False))
    first = Labels(final.ids, final.label.copy(), final.label_time.copy())
    first.label[redo] = 1.0 - final.label[redo]
    first.label_time[redo] = final.label_time[redo] - 60
    once, several = new_store(), new_store()
    for store in (once, several):
        store.write_events(events)
    assert once.add_labels(final) == (n, n)
    for part in np.array_split(rng.permutation(n), 3):
        several.add_labels(Labels(first.ids[part], first.label[part], first.label_time[part]))
    assert several.add_labels(Labels(final.ids[redo], final.label[redo], final.label_time[redo]))
    stray = Labels(np.asarray(["never-scored"], dtype=object), np.ones(1), np.array([start]))
    assert several.add_labels(stray) == (1, 0)
    cutoff = int(events.time.max()) + 3600
    expected = _every_window(once, events.keys, cutoff)
    assert _every_window(several, events.keys, cutoff) == expected
    assert sum(1 for entry in expected if entry[1]) == 2 * n  # once per entity, none twice
    assert several.stats().labels == n + 1


def test_redis_refuses_a_state_written_in_the_old_layout(redis_url: Callable[[], str]) -> None:
    """A Redis state from before the packed series would read as empty: it is refused."""
    import redis

    url = redis_url()
    redis.Redis.from_url(url).hset("inferloop:tx", "t1", "1|0.5|0|m|customer\x1fc1")
    with pytest.raises(RuntimeError, match=r"sorted-set layout.*inferloop state seed"):
        open_state(url)
    other = redis_url()
    fresh = open_state(other)  # an empty database is fine, and its first write marks it
    assert fresh is not None
    one = ScoredEvents(
        ids=np.asarray(["t1"], dtype=object), time=np.array([1_700_000_000]), amount=np.ones(1),
        keys={"customer": np.asarray(["c1"], dtype=object)}, score=np.zeros(1),
        decision=np.zeros(1, np.int8),
    )  # fmt: skip
    assert fresh.write_events(one) == 1
    fresh.close()
    reopened = open_state(other)
    assert reopened is not None and reopened.stats().events == 1
    reopened.close()


def _series_sql(path: Path) -> str:
    with sqlite3.connect(path) as db:
        return str(db.execute("SELECT sql FROM sqlite_master WHERE name = 'series'").fetchone()[0])


_OLD_SERIES = """CREATE TABLE series (
    entity TEXT NOT NULL, key TEXT NOT NULL, kind INTEGER NOT NULL,
    times BLOB NOT NULL, a BLOB NOT NULL, b BLOB, ids TEXT,
    PRIMARY KEY (entity, key, kind)
) WITHOUT ROWID"""


def test_sqlite_a_store_in_the_without_rowid_layout_is_converted_when_opened(
    tmp_path: Path,
) -> None:
    """A store written before ``series`` became a rowid table reads the same after its
    conversion on open, and then takes new events, for keys it had and for new ones, as a
    store made in the new layout does."""
    from inferloop.state.base import Labels

    rng = np.random.default_rng(5)
    n = 400
    events = _random_events(rng, n, 60, 1_700_000_000, customers=30, terminals=10)
    labels = Labels(events.ids[::2].copy(), np.ones(n // 2), events.time[::2] + 60)
    later = _random_events(rng, 50, 60, int(events.time.max()) + 60, customers=40, terminals=12)
    later = dataclasses.replace(later, ids=np.asarray([f"u{i}" for i in range(50)], dtype=object))
    cutoff = int(later.time.max()) + 60
    old, new = tmp_path / "old.db", tmp_path / "new.db"
    for path in (old, new):
        with SqliteState(path) as store:
            store.write_events(events)
            store.add_labels(labels)
    with SqliteState(new) as made_new:
        expected = _every_window(made_new, events.keys, cutoff)
    with sqlite3.connect(old) as db:  # the earlier layout, holding the same rows
        db.execute("ALTER TABLE series RENAME TO series_rowid")
        db.execute(_OLD_SERIES)
        db.execute("INSERT INTO series SELECT * FROM series_rowid")
        db.execute("DROP TABLE series_rowid")
    assert "WITHOUT ROWID" in _series_sql(old)

    with SqliteState(old) as reopened:
        assert "WITHOUT ROWID" not in _series_sql(old)
        assert _every_window(reopened, events.keys, cutoff) == expected
        assert reopened.write_events(later) == 50
        with SqliteState(new) as fresh:
            fresh.write_events(later)
            both = {e: np.concatenate([events.keys[e], later.keys[e]]) for e in events.keys}
            assert _every_window(reopened, both, cutoff) == _every_window(fresh, both, cutoff)
        assert reopened.stats().events == n + 50
