"""Shared fixtures: tiny simulated data generated in the test session (never the network)."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inferloop.data.features import FeatureParams
from inferloop.data.samples import SimulatedSplits, simulated_splits
from inferloop.data.simulate import SimulateParams
from inferloop.data.split import SplitParams

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")

TINY_SIM = SimulateParams(n_customers=300, n_terminals=200, n_days=35, seed=11)
TINY_SPLIT = SplitParams(train_days=14, validation_days=3, test_days=3, gap_days=3)


@pytest.fixture(scope="session")
def tiny_sim() -> SimulateParams:
    """Simulator params small enough for unit tests (~18k transactions)."""
    return TINY_SIM


@pytest.fixture(scope="session")
def tiny_split() -> SplitParams:
    """Short windows matching :func:`tiny_sim`."""
    return TINY_SPLIT


@pytest.fixture(scope="session")
def tiny_splits() -> SimulatedSplits:
    """Simulated, featurized and split tiny data (shared, read-only)."""
    return simulated_splits(TINY_SIM, FeatureParams(label_delay="3D"), TINY_SPLIT)


def _scores_in_a_child(classifier: Any, X: np.ndarray, tmp: Path) -> np.ndarray:
    """``classifier.predict_scores(X)`` in a fresh interpreter that must not import LightGBM
    or torch (what an edge process has)."""
    (tmp / "classifier.pkl").write_bytes(pickle.dumps(classifier))
    np.save(tmp / "rows.npy", X)
    child = textwrap.dedent(
        f"""
        import pickle, sys
        import numpy as np
        model = pickle.loads(open({str(tmp / "classifier.pkl")!r}, "rb").read())
        scores = model.predict_scores(np.load({str(tmp / "rows.npy")!r}))
        assert 'lightgbm' not in sys.modules, 'lightgbm was imported'
        assert 'torch' not in sys.modules, 'torch was imported'
        print(' '.join(repr(float(v)) for v in scores))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", child], capture_output=True, text=True, check=False, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return np.array(out.stdout.split(), dtype=float)


@pytest.fixture(scope="session")
def scores_in_a_child() -> Callable[[Any, np.ndarray, Path], np.ndarray]:
    """Score with a pickled edge classifier in a subprocess without LightGBM or torch."""
    return _scores_in_a_child


class _Hook(BaseHTTPRequestHandler):
    """Keeps the JSON body of every POST; answers with ``status``."""

    received: list[dict[str, Any]] = []  # noqa: RUF012 - shared with the test on purpose
    status = 200

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        type(self).received.append(json.loads(self.rfile.read(length)))
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # silence the test output
        return


@pytest.fixture()
def hook() -> Iterator[tuple[str, type[_Hook]]]:
    """A real local HTTP server standing in for the alert webhook: ``(url, handler)``.

    ``handler.received`` lists the bodies in arrival order; set ``handler.status`` to answer
    with an error.
    """
    handler = type("Hook", (_Hook,), {"received": [], "status": 200})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/alerts", handler
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def _redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int | None]:
    """A real ``redis-server`` on a free loopback port for the session (None if not installed)."""
    import shutil
    import socket
    import time

    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    folder = tmp_path_factory.mktemp("redis")
    cmd = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    with (folder / "redis.log").open("wb") as log:
        proc = subprocess.Popen(cmd, cwd=folder, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.fixture()
def redis_url(_redis_server: int | None) -> Callable[[], str]:
    """A factory of empty Redis databases (``redis://127.0.0.1:PORT/N``) on the real server.

    Skips the calling test where ``redis-server`` is not installed (``.ci/run`` installs it).
    """
    counter = iter(range(1, 10**6))

    def make() -> str:
        if _redis_server is None:
            pytest.skip("redis-server is not installed (apt-get install redis-server)")
        import redis

        url = f"redis://127.0.0.1:{_redis_server}/{next(counter) % 16}"
        redis.Redis.from_url(url).flushdb()
        return url

    return make
