"""The live feature state: what it buys (AP) and what it costs (latency, throughput, bytes).

Four measurements in one run, on one machine (``make bench``; ``--quick`` for a smoke run):

* **ap**: a model trained on simulated days, then the three weeks after its training data.
  Per week, the same sample of rows is scored (a) one request at a time through
  ``mlflow models serve -w 2`` with a SQLite feature state (every row of the week is sent, in
  time order, so the state sees them all), (b) one request at a time through the same server
  stateless (the history frozen in the model), (c) in batch with a live history (the live
  scorer over the whole week on a second seeded store). AP of each, and the largest
  difference between (a) and (c).
* **online**: one-row requests with fresh transaction ids at c=1 (p50/p99) and c=8 (req/s),
  ``-w 2``, for SQLite state, Redis state, stateless, and MLflow's server with a constant
  model (the floor). The four servers run at once; c=1 sends each request to each server in
  turn, so that a slow spell of a shared machine lands on all four alike; c=8 goes round
  them in five slices, each loading one server while the others idle.
* **stream**: ``inferloop stream`` with SQLite state fed 1,000 records/s: per-record latency
  from the write to stdin to the scored line on stdout.
* **store**: bytes per active entity and the per-request cost of one read-score-write
  transaction, in process, for 3,000 and 300,000 customers, on both backends.

Redis parts need ``redis-server`` on PATH (Debian's package); without it they are skipped and
say so. Writes ``results/state.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from bench_serving import (
    _Connection,
    _requests,
    interleaved_c1,
    load,
    machine,
    measured,
    rotated,
)

RESULTS = Path(__file__).parent / "results"
TARGETS = {
    "ap_with_state_min": 0.6,
    "sqlite_p50_over_stateless_ms_max": 0.5,
    "sqlite_c8_vs_stateless_min": 0.8,
    "stream_p50_ms_max": 40.0,
}


@dataclass(frozen=True)
class Settings:
    """Bounds of one run.

    ``world``: ``lifecycle`` trains the LightGBM candidate exactly as ``make run``'s train stage
    does (params.yaml's simulate, featurize, split and train sections) and scores the weeks after
    its data, as the issue's AP table did; ``small`` a quicker world of ``n_customers``.
    """

    world: str = "lifecycle"
    n_customers: int = 1500
    n_terminals: int = 1000
    train_days: int = 42
    weeks: int = 3
    sample_rows: int = 8000
    workers: int = 2
    c1_requests: int = 2000
    c1_seconds: float = 10.0
    c8_requests: int = 30_000
    c8_seconds: float = 10.0
    stream_rate: int = 1000
    stream_seconds: float = 10.0
    store_customers: tuple[int, ...] = (3000, 300_000)
    store_requests: int = 2000


QUICK = replace(
    Settings(),
    world="small",
    n_customers=400,
    n_terminals=300,
    train_days=28,
    weeks=1,
    sample_rows=500,
    c1_requests=200,
    c1_seconds=3,
    c8_requests=2000,
    c8_seconds=3,
    stream_seconds=3,
    store_customers=(3000,),
    store_requests=300,
)


# --------------------------------------------------------------------------- the world


@dataclass
class World:
    """A registered model and the weeks after its training data."""

    store: Path
    model_uri: str
    model: Any
    weeks: list[pd.DataFrame]


def build_world(store: Path, settings: Settings) -> World:
    """Train a LightGBM FraudModel on simulated days, register it, simulate the weeks after."""
    import lightgbm as lgb
    import mlflow

    from inferloop.core import schema as s
    from inferloop.core.registry import CHAMPION, register_version
    from inferloop.core.tracking import configure_mlflow, ensure_experiment
    from inferloop.data.features import FeatureParams
    from inferloop.data.samples import simulated_splits
    from inferloop.data.simulate import SimulateParams, simulate_transactions
    from inferloop.data.split import SplitParams
    from inferloop.model import FraudModel
    from inferloop.model_logging import input_example, log_fraud_model

    configure_mlflow(store)
    if settings.world == "lifecycle":
        sim, data, clf = _lifecycle_model()
        train_end = sim.n_days
    else:
        sim = SimulateParams(
            n_customers=settings.n_customers,
            n_terminals=settings.n_terminals,
            n_days=settings.train_days,
            seed=21,
        )
        days = settings.train_days - 22  # two label-delay gaps, a validation week, one spare day
        split = SplitParams(train_days=days, validation_days=7, test_days=0, gap_days=7)
        data = simulated_splits(sim, FeatureParams(), split)
        train = data.splits.train
        clf = lgb.LGBMClassifier(
            n_estimators=300, num_leaves=31, learning_rate=0.05, n_jobs=2, verbose=-1, seed=0
        ).fit(train[data.features], train[s.TARGET])
        train_end = settings.train_days
    model = FraudModel(data.featurizer, clf, 0.5, "lightgbm")
    weeks = [
        simulate_transactions(sim, start_day=train_end + 7 * w, n_days=7)
        for w in range(settings.weeks)
    ]
    with mlflow.start_run(experiment_id=ensure_experiment("bench-state", store)):
        info = log_fraud_model(model, input_example(weeks[0]))
    register_version(info.model_uri, "bench-state", {}, alias=CHAMPION)
    return World(store, f"models:/bench-state@{CHAMPION}", model, weeks)


def _lifecycle_model() -> tuple[Any, Any, Any]:
    """The LightGBM candidate of ``make run``'s train stage, on the same simulated data."""
    from inferloop.core.config import load_section
    from inferloop.data.features import FeatureParams
    from inferloop.data.samples import simulated_splits
    from inferloop.data.simulate import SimulateParams
    from inferloop.data.split import SplitParams
    from inferloop.training.candidates import TrainParams, train_candidates

    params = Path(__file__).resolve().parents[1] / "params.yaml"
    sim = load_section(SimulateParams, "simulate", params)
    data = simulated_splits(
        sim,
        load_section(FeatureParams, "featurize", params),
        load_section(SplitParams, "split", params),
    )
    train = replace(load_section(TrainParams, "train", params), candidates=("lightgbm",))
    trained = train_candidates(
        data.splits.train, data.splits.validation, data.features, train, progress=False
    )
    return sim, data, trained["lightgbm"].estimator


def _bodies(rows: pd.DataFrame) -> list[str]:
    from inferloop.core import schema as s

    plain = rows[list(s.SCORING_COLUMNS)].assign(
        **{s.TIMESTAMP: rows[s.TIMESTAMP].dt.strftime("%Y-%m-%dT%H:%M:%S")}
    )
    values = plain.to_numpy(dtype=object).tolist()
    columns = list(plain.columns)
    return [
        json.dumps({"dataframe_split": {"columns": columns, "data": [_plain(v)]}}) for v in values
    ]


def _plain(values: list[Any]) -> list[Any]:
    return [v.item() if isinstance(v, np.generic) else v for v in values]


@contextmanager
def served(world: World, state: str, workdir: Path, workers: int) -> Iterator[Any]:
    """``mlflow models serve`` of the world's model with the given feature state."""
    from inferloop.core.tracking import tracking_uri
    from inferloop.scoring.serving import ServeConfig, free_port, running_server

    config = ServeConfig(
        world.model_uri, port=free_port(), workers=workers, max_rows=None, state=state
    )
    log = workdir / f"server-{config.port}.log"
    with running_server(config, tracking_uri(world.store), log) as proc:
        yield config, proc


def _post_all(config: Any, bodies: list[str], what: str) -> np.ndarray:
    """One request at a time, in order, on one keep-alive connection; the scores."""
    from tqdm.auto import tqdm

    client = _Connection(config.host, config.port)
    requests = _requests(config.host, config.port, bodies)
    scores = np.empty(len(bodies))
    for i, request in enumerate(tqdm(requests, desc=what, unit="req", leave=False, mininterval=2)):
        status, body = client.post(request)
        if status != 200:
            raise RuntimeError(f"{what}: HTTP {status}: {body[:300]!r}")
        scores[i] = json.loads(body)["predictions"][0]["score"]
    client.sock.close()
    return scores


def _fresh_sqlite(path: Path, model: Any) -> str:
    from inferloop.scoring.live_state import seed_state
    from inferloop.state.sqlite import SqliteState

    for stale in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        stale.unlink(missing_ok=True)
    store = SqliteState(path)
    seed_state(store, model)
    store.close()
    return store.location


# --------------------------------------------------------------------------- ap


def bench_ap(world: World, workdir: Path, settings: Settings) -> dict[str, Any]:
    """The AP table: per request with state, per request stateless, batch with live history."""
    from sklearn.metrics import average_precision_score

    from inferloop.core import schema as s
    from inferloop.model import LiveScorer
    from inferloop.state.sqlite import SqliteState

    rng = np.random.default_rng(0)
    samples = [
        np.sort(rng.choice(len(w), size=min(settings.sample_rows, len(w)), replace=False))
        for w in world.weeks
    ]
    batch_db = workdir / "batch.db"
    _fresh_sqlite(batch_db, world.model)
    live = LiveScorer(world.model, SqliteState(batch_db))
    batch = [live.score(w)[s.SCORE].to_numpy() for w in world.weeks]
    state = _fresh_sqlite(workdir / "served.db", world.model)
    with served(world, state, workdir, settings.workers) as (config, _):
        with_state = [
            _post_all(config, _bodies(w), f"week {i} with state") for i, w in enumerate(world.weeks)
        ]
    with served(world, "none", workdir, settings.workers) as (config, _):
        stateless = [
            _post_all(config, _bodies(w.iloc[k]), f"week {i} stateless")
            for i, (w, k) in enumerate(zip(world.weeks, samples, strict=True))
        ]
    rows = []
    for i, (week, k) in enumerate(zip(world.weeks, samples, strict=True)):
        y = week[s.TARGET].to_numpy()[k]
        rows.append(
            {
                "week_after_training": i,
                "rows_sent_with_state": len(week),
                "sample_rows": len(k),
                "fraud_in_sample": int(y.sum()),
                "ap_per_request_with_state": round(average_precision_score(y, with_state[i][k]), 4),
                "ap_per_request_stateless": round(average_precision_score(y, stateless[i]), 4),
                "ap_batch_live_history": round(average_precision_score(y, batch[i][k]), 4),
                "max_abs_diff_state_vs_batch": float(np.abs(with_state[i] - batch[i]).max()),
                "rows_differing_over_1e-9": int((np.abs(with_state[i] - batch[i]) > 1e-9).sum()),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return {"weeks": rows}


# --------------------------------------------------------------------------- online


def bench_online(
    world: World, workdir: Path, settings: Settings, redis_url: str | None
) -> dict[str, Any]:
    """c=1 and c=8 one-row requests with fresh ids, per state backend and the floor."""
    import mlflow
    from bench_serving import _log_constant_model

    from inferloop.core.registry import CHAMPION, register_version

    with mlflow.start_run():
        info = _log_constant_model()
    register_version(info.model_uri, "bench-floor", {}, alias=CHAMPION)
    floor = replace(world, model_uri=f"models:/bench-floor@{CHAMPION}")
    rows = _fresh_rows(world, settings.c1_requests + settings.c8_requests + 600)
    bodies = _bodies(rows)
    variants: dict[str, tuple[World, str]] = {
        "sqlite_state": (world, "sqlite"),
        "redis_state": (world, "redis"),
        "stateless": (world, "none"),
        "mlflow_floor": (floor, "none"),
    }
    out: dict[str, Any] = {}
    if redis_url is None:
        out["redis_state"] = {"skipped": "redis-server is not installed"}
        del variants["redis_state"]
    warm, c1_bodies = bodies[:600], bodies[600 : 600 + settings.c1_requests]
    c8_bodies = bodies[600 + settings.c1_requests :]
    warm_path = workdir / "bodies-warm.json"
    warm_path.write_text(json.dumps(warm))
    with ExitStack() as stack:  # every server up at once: c=1 goes round the four in turn
        servers = {
            name: stack.enter_context(
                served(
                    target, _state_for(kind, world, workdir, redis_url), workdir, settings.workers
                )
            )
            for name, (target, kind) in variants.items()
        }
        for config, _ in servers.values():
            load(config.port, warm_path, 2, len(warm), 30.0)
        c1 = interleaved_c1(
            servers, dict.fromkeys(servers, c1_bodies), settings.c1_seconds * len(servers)
        )
        c8_all = _interleaved_c8(servers, c8_bodies, workdir, settings.c8_seconds)
        for name in servers:
            c8 = c8_all[name]
            if c1[name]["errors"] or c8["errors"]:
                raise RuntimeError(f"{name}: non-200 responses")
            summary = {
                "c1_p50_ms": c1[name]["p50_ms"],
                "c1_p99_ms": c1[name]["p99_ms"],
                "c8_req_per_s": c8["req_per_s"],
                "c8_p99_ms": c8["p99_ms"],
                "server_cpu_ms_per_request": c8.get("server_cpu_ms_per_request"),
            }
            state = servers[name][0].state or "none"
            out[name] = {"state": state.split("?")[0], "summary": summary, "c1": c1[name], "c8": c8}
            print(f"{name:<14} {json.dumps(summary)}", flush=True)
    return out


#: c=8 goes round the servers in this many slices of ``c8_seconds / _C8_SLICES`` each.
_C8_SLICES = 5


def _interleaved_c8(
    servers: dict[str, tuple[Any, Any]], bodies: list[str], workdir: Path, seconds: float
) -> dict[str, dict[str, Any]]:
    """8 clients in short slices, to each server in turn (rotating who goes first), as c=1.

    Run one server after another for the whole ``seconds``, the c=8 ratio of SQLite state to
    stateless moved between runs of the same code by more than the target's margin: a burst of
    background load fell on one variant. In slices, each server's total spans the same stretch
    of the run. Each slice sends its own rows, so no request repeats an id another slice sent.
    """
    names = list(servers)
    size = len(bodies) // _C8_SLICES
    slices: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    for i in range(_C8_SLICES):
        path = workdir / f"bodies-c8-{i}.json"
        path.write_text(json.dumps(bodies[i * size : (i + 1) * size]))
        for name in rotated(names, i):
            config, proc = servers[name]
            run = partial(load, config.port, path, 8, size, seconds / _C8_SLICES)
            slices[name].append(measured(proc.pid, run))
    return {name: _combined(parts) for name, parts in slices.items()}


def _combined(slices: list[dict[str, Any]]) -> dict[str, Any]:
    """One c=8 summary of a server's slices: throughput over their total time, the latency
    figures as the median over slices (the slices keep no raw latencies)."""
    requests = sum(r["requests"] for r in slices)
    elapsed = sum(r["seconds"] for r in slices)
    out: dict[str, Any] = {
        "concurrency": 8,
        "slices": len(slices),
        "requests": requests,
        "errors": sum(r["errors"] for r in slices),
        "seconds": round(elapsed, 3),
        "req_per_s": round(requests / elapsed, 1),
        "req_per_s_by_slice": [r["req_per_s"] for r in slices],
    }
    for key in ("p50_ms", "p90_ms", "p99_ms", "mean_ms"):
        out[key] = round(float(np.median([r[key] for r in slices])), 3)
    out["max_ms"] = max(r["max_ms"] for r in slices)
    cpu = [r.get("server_cpu_ms_per_request") for r in slices]
    if all(c is not None for c in cpu):
        weighted = sum(c * r["requests"] for c, r in zip(cpu, slices, strict=True))
        out["server_cpu_ms_per_request"] = round(weighted / requests, 3)
    return out


def _fresh_rows(world: World, n: int) -> pd.DataFrame:
    """``n`` rows after the model's history, each with a new id (no request is a retry)."""
    from inferloop.core import schema as s

    week = pd.concat(world.weeks, ignore_index=True)
    rows = week.iloc[np.arange(n) % len(week)].reset_index(drop=True)
    return rows.assign(**{s.TRANSACTION_ID: np.arange(n, dtype=np.int64) + 10**12})


def _state_for(kind: str, world: World, workdir: Path, redis_url: str | None) -> str:
    if kind == "sqlite":
        return _fresh_sqlite(workdir / "online.db", world.model)
    if kind == "redis":
        import redis

        from inferloop.scoring.live_state import seed_state
        from inferloop.state.redis_store import RedisState

        assert redis_url is not None
        redis.Redis.from_url(redis_url).flushdb()
        store = RedisState(redis_url)
        seed_state(store, world.model)
        store.close()
        return redis_url
    return "none"


# --------------------------------------------------------------------------- stream


def bench_stream(world: World, workdir: Path, settings: Settings) -> dict[str, Any]:
    """``inferloop stream`` with SQLite state at a fixed input rate: per-record latency."""
    from inferloop.core import schema as s
    from inferloop.core.tracking import tracking_uri

    state = _fresh_sqlite(workdir / "stream.db", world.model)
    n = int(settings.stream_rate * settings.stream_seconds)
    rows = _fresh_rows(world, n).assign(**{s.TRANSACTION_ID: np.arange(n) + 5 * 10**12})
    lines = [
        json.dumps(_plain(list(r)))
        for r in rows[list(s.SCORING_COLUMNS)]
        .assign(**{s.TIMESTAMP: rows[s.TIMESTAMP].dt.strftime("%Y-%m-%dT%H:%M:%S")})
        .to_numpy(dtype=object)
        .tolist()
    ]
    records = [
        json.dumps(dict(zip(s.SCORING_COLUMNS, json.loads(line), strict=True))) for line in lines
    ]
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": tracking_uri(world.store),
        "INFERLOOP_ROOT": str(world.store),
    }
    cmd = [str(Path(sys.executable).parent / "inferloop"), "stream", "--model", world.model_uri]
    cmd += ["--state", state, "--quarantine", str(workdir / "stream-q.jsonl")]
    (world.store / "params.yaml").write_text(_STREAM_PARAMS)
    proc = subprocess.Popen(
        cmd, cwd=world.store, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, bufsize=1,
    )  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    _wait_ready(proc.stderr)
    sent: dict[int, float] = {}
    latencies: list[float] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            got = time.perf_counter()
            tx = json.loads(line)[s.TRANSACTION_ID]
            latencies.append((got - sent[int(tx)]) * 1e3)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    start = time.perf_counter()
    for i, record in enumerate(records):
        due = start + i / settings.stream_rate
        while (now := time.perf_counter()) < due:
            time.sleep(min(0.001, due - now))
        sent[int(rows[s.TRANSACTION_ID].iat[i])] = time.perf_counter()
        proc.stdin.write(record + "\n")
        proc.stdin.flush()
    proc.stdin.close()
    proc.wait(timeout=120)
    reader.join(timeout=30)
    ordered = sorted(latencies)
    return {
        "rate_per_s": settings.stream_rate,
        "records": n,
        "scored": len(ordered),
        "p50_ms": round(ordered[len(ordered) // 2], 2),
        "p90_ms": round(ordered[int(len(ordered) * 0.9)], 2),
        "p99_ms": round(ordered[int(len(ordered) * 0.99)], 2),
        "max_ms": round(ordered[-1], 2),
    }


_STREAM_PARAMS = """\
validate: {max_amount: 50000.0, min_timestamp: "2000-01-01", max_timestamp: "2100-01-01",
           require_target: false}
data: {timestamp_format: null}
score: {model_uri: "models:/bench-state@champion", chunk_rows: 100000, spark_master: "local[2]"}
stream: {max_batch_rows: 500, max_wait_ms: 50, fold_rows: 2000, poll_ms: 50}
"""


def _wait_ready(stderr: Any) -> None:
    for line in stderr:
        if "stream_ready" in line:
            threading.Thread(target=lambda: [None for _ in stderr], daemon=True).start()
            return
    raise RuntimeError("inferloop stream ended before it was ready")


# --------------------------------------------------------------------------- store


def bench_store(settings: Settings, workdir: Path, redis_url: str | None) -> dict[str, Any]:
    """Bytes per active entity and the cost of one read-score-write, by store size."""
    out: dict[str, Any] = {}
    for customers in settings.store_customers:
        for backend in ("sqlite", "redis"):
            key = f"{backend}_{customers}_customers"
            if backend == "redis" and redis_url is None:
                out[key] = {"skipped": "redis-server is not installed"}
                continue
            out[key] = _bench_one_store(backend, customers, settings, workdir, redis_url)
            print(f"{key:<28} {json.dumps(out[key])}", flush=True)
    return out


def _bench_one_store(
    backend: str, customers: int, settings: Settings, workdir: Path, redis_url: str | None
) -> dict[str, Any]:
    """A store of ``customers`` customers with 30 days of events; timed one-row transactions."""
    from inferloop.data.features import FeatureParams, TransactionFeaturizer
    from inferloop.model import LiveScorer
    from inferloop.state.config import open_state

    rng = np.random.default_rng(1)
    terminals = max(1000, customers // 3)
    events = synthetic_events(rng, customers, terminals)
    if backend == "sqlite":
        path = workdir / f"store-{customers}.db"
        for stale in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            stale.unlink(missing_ok=True)
        location = str(path)
    else:
        import redis

        assert redis_url is not None
        redis.Redis.from_url(redis_url).flushdb()
        location = redis_url
    store = open_state(location)
    assert store is not None
    started = time.perf_counter()
    store.write_events(events)  # one bulk write: each key's series is built once
    load_s = time.perf_counter() - started
    stats = store.stats()
    featurizer = TransactionFeaturizer.from_params(FeatureParams()).fit(_empty_frame())
    model = _TimingModel(featurizer)
    scorer = LiveScorer(model, store, prune_every=10**9)
    last = int(events.time[-1])
    frames = _one_row_frames(rng, settings.store_requests, customers, terminals, last + 60)
    from inferloop.data.rows import read_transactions

    txs = [read_transactions(f) for f in frames]
    timings = []
    for tx in txs:
        t = time.perf_counter()
        scorer.score_transactions(tx)
        timings.append((time.perf_counter() - t) * 1e3)
    store.close()
    ordered = sorted(timings)
    return {
        "customers": customers,
        "events": stats.events,
        "active_entities": stats.entities,
        "bytes": stats.bytes,
        "bytes_per_active_entity": round(stats.bytes_per_entity, 1),
        "load_seconds": round(load_s, 1),
        "transaction_p50_ms": round(ordered[len(ordered) // 2], 3),
        "transaction_p99_ms": round(ordered[int(len(ordered) * 0.99)], 3),
    }


def synthetic_events(rng: np.random.Generator, customers: int, terminals: int) -> Any:
    """30 days of scored events, 10 per customer on average (one every 3 days), with labels
    known 7 days after each event: the ``ScoredEvents`` of a store part's store, in time order."""
    from inferloop.state.base import ScoredEvents

    n = customers * 10
    t0 = 1_767_225_600
    times = np.sort(rng.integers(t0, t0 + 30 * 86400, size=n))
    customer = rng.integers(0, customers, size=n).astype(str).astype(object)
    terminal = rng.integers(0, terminals, size=n).astype(str).astype(object)
    return ScoredEvents(
        ids=np.char.add("e", np.arange(n).astype(str)).astype(object),
        time=times,
        amount=rng.gamma(2.0, 30.0, size=n),
        keys={"customer": customer, "terminal": terminal},
        score=np.zeros(n),
        decision=np.zeros(n, dtype=np.int8),
        label=rng.binomial(1, 0.01, size=n).astype(float),
        label_time=times + 7 * 86400,
    )


class _TimingModel:
    """A model whose classifier is free: the timings are the store's and the featurizer's."""

    candidate = "timing"
    threshold = 0.5
    postprocess = None  # no per-group thresholds: the scores are final

    def __init__(self, featurizer: Any) -> None:
        self.featurizer = featurizer
        self.feature_names = list(featurizer.feature_names_out_)
        self.estimator = _Zero()
        self.dataset_spec = featurizer.dataset_spec

    def final_scores(self, scores: np.ndarray, tx: Any, rows: Any = None) -> np.ndarray:
        return scores


class _Zero:
    def predict_scores(self, matrix: np.ndarray) -> np.ndarray:
        return np.zeros(len(matrix))


def _empty_frame() -> pd.DataFrame:
    from inferloop.core import schema as s

    return pd.DataFrame(
        {
            s.TIMESTAMP: pd.Series([], dtype="datetime64[ns]"),
            s.CUSTOMER_ID: pd.Series([], dtype=object),
            s.TERMINAL_ID: pd.Series([], dtype=object),
            s.AMOUNT: pd.Series([], dtype=float),
            s.CHANNEL: pd.Series([], dtype=object),
            s.MERCHANT_CATEGORY: pd.Series([], dtype=object),
        }
    )


def _one_row_frames(
    rng: np.random.Generator, n: int, customers: int, terminals: int, t: int
) -> list[pd.DataFrame]:
    from inferloop.core import schema as s

    return [
        pd.DataFrame(
            {
                s.TRANSACTION_ID: [f"q{i}"],
                s.TIMESTAMP: [pd.Timestamp(t + i, unit="s").strftime("%Y-%m-%dT%H:%M:%S")],
                s.CUSTOMER_ID: [str(rng.integers(customers))],
                s.TERMINAL_ID: [str(rng.integers(terminals))],
                s.AMOUNT: [42.0],
                s.CHANNEL: [s.CHANNELS[0]],
                s.MERCHANT_CATEGORY: [s.MERCHANT_CATEGORIES[0]],
            }
        )
        for i in range(n)
    ]


# --------------------------------------------------------------------------- main


@contextmanager
def redis_server(workdir: Path) -> Iterator[str | None]:
    """A real ``redis-server`` on a free port for the run (None if not installed)."""
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(cmd, cwd=workdir, stdout=subprocess.DEVNULL)
    try:
        for _ in range(200):
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def checks(out: dict[str, Any]) -> dict[str, Any]:
    """The issue's acceptance figures from this run."""
    result: dict[str, Any] = {}
    weeks = out.get("ap", {}).get("weeks", [])
    if weeks:
        result["ap_with_state_min"] = min(w["ap_per_request_with_state"] for w in weeks)
        result["ap_with_state_ok"] = result["ap_with_state_min"] >= TARGETS["ap_with_state_min"]
        result["state_equals_batch_max_abs_diff"] = max(
            w["max_abs_diff_state_vs_batch"] for w in weeks
        )
    online = out.get("online", {})
    base = online.get("stateless", {}).get("summary")
    for name in ("sqlite_state", "redis_state"):
        got = online.get(name, {}).get("summary")
        if base and got:
            over = got["c1_p50_ms"] - base["c1_p50_ms"]
            ratio = got["c8_req_per_s"] / base["c8_req_per_s"]
            result[f"{name}_p50_over_stateless_ms"] = round(over, 3)
            result[f"{name}_p50_ok"] = over <= TARGETS["sqlite_p50_over_stateless_ms_max"]
            result[f"{name}_c8_vs_stateless"] = round(ratio, 3)
            result[f"{name}_c8_ok"] = ratio >= TARGETS["sqlite_c8_vs_stateless_min"]
    stream = out.get("stream")
    if stream:
        result["stream_p50_ms"] = stream["p50_ms"]
        result["stream_p50_ok"] = stream["p50_ms"] <= TARGETS["stream_p50_ms_max"]
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the parts (all by default), write ``results/state.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run (kept as .tmp)")
    parser.add_argument("--only", default="", help="comma-separated parts: ap,online,stream,store")
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else Settings()
    parts = args.only.split(",") if args.only else ["ap", "online", "stream", "store"]
    before = machine()
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-state-") as tmp:
        workdir = Path(tmp)
        os.environ["INFERLOOP_ROOT"] = str(workdir)
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        os.environ.pop("INFERLOOP_FEATURE_STATE", None)
        with redis_server(workdir) as redis_url:
            world = build_world(workdir, settings) if set(parts) - {"store"} else None
            if "ap" in parts and world is not None:
                out["ap"] = bench_ap(world, workdir, settings)
            if "online" in parts and world is not None:
                out["online"] = bench_online(world, workdir, settings, redis_url)
            if "stream" in parts and world is not None:
                out["stream"] = bench_stream(world, workdir, settings)
                print(f"stream {json.dumps(out['stream'])}", flush=True)
            if "store" in parts:
                out["store"] = bench_store(settings, workdir, redis_url)
    result = {
        "machine": {**before, "load_average_end": [round(x, 2) for x in os.getloadavg()]},
        "settings": asdict(settings),
        "targets": TARGETS,
        "checks": checks(out),
        **out,
    }
    RESULTS.mkdir(exist_ok=True)
    name = "state.json" if not (args.quick or args.only) else "state-partial.json.tmp"
    (RESULTS / name).write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps(result["checks"], indent=2))
    print(f"wrote {RESULTS / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
