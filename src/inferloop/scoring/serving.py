"""Online scoring with MLflow's own model server: build, start, wait for and stop it.

``inferloop serve`` (and ``make serve``) runs::

    mlflow models serve -m models:/fraud-detector@champion --env-manager local \\
        -h 127.0.0.1 -p PORT -w WORKERS

with ``MLFLOW_TRACKING_URI`` pointing at the project's store and the interpreter's ``bin``
folder first on ``PATH`` (MLflow starts ``uvicorn`` by name). The protocol is MLflow's:
``POST /invocations`` with ``dataframe_split`` or ``dataframe_records`` JSON (see
``docs/serving.md``); ``GET /ping`` is the health check.

MLflow's server has no request-size limit (it reads the whole body) and answers ``504`` after
``MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT`` seconds (default 60). The model itself refuses
requests with more than ``INFERLOOP_SERVING_MAX_ROWS`` rows with a 400 (see
:data:`inferloop.model.MAX_ROWS_ENV`); ``inferloop serve`` sets it. A byte limit belongs in a
reverse proxy in front of the server.

The same helpers start the server for the integration tests and the serving benchmark, so
they exercise exactly what users run.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from inferloop.model import MAX_ROWS_ENV, MODEL_LABEL_ENV
from inferloop.state.config import STATE_ENV

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_MAX_ROWS",
    "DEFAULT_MODEL_URI",
    "DEFAULT_PORT",
    "DEFAULT_WORKERS",
    "EDGE_MODEL_URI",
    "ServeConfig",
    "ServerError",
    "free_port",
    "ping",
    "run_server",
    "running_server",
    "serve_command",
    "serve_env",
    "start_server",
    "stop_server",
    "wait_until_ready",
]


DEFAULT_MODEL_URI = "models:/fraud-detector@champion"
EDGE_MODEL_URI = "models:/fraud-detector-edge@champion"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5001
DEFAULT_WORKERS = 2
DEFAULT_MAX_ROWS = 10_000


class ServerError(RuntimeError):
    """The model server did not start, or stopped; the message carries its log's tail."""


@dataclass(frozen=True)
class ServeConfig:
    """How to run ``mlflow models serve``.

    Parameters
    ----------
    model_uri:
        Any MLflow model URI; ``models:/fraud-detector-edge@champion`` serves the edge model.
    host:
        Interface to bind. The server has no authentication: keep it on loopback unless a
        proxy in front of it handles access.
    port:
        TCP port.
    workers:
        uvicorn worker processes; one per core is the sweet spot (each holds a model copy).
    max_rows:
        Largest batch one request may carry (400 above it); ``None`` for no limit.
    timeout_s:
        MLflow's per-request timeout (504 after it); ``None`` keeps MLflow's default (60 s).
    access_log:
        uvicorn's line per request (on in plain ``mlflow models serve``); off by default here,
        where hundreds of requests a second would flood the log (its CPU cost measured within
        noise, ``benchmarks/bench_serving.py``).
    state:
        Feature-state location the workers open (``$INFERLOOP_FEATURE_STATE``): a SQLite URL
        or path, ``redis://...``, or ``none`` for stateless. None leaves the environment's.
    model_label:
        ``name:version`` kept with every event the server writes to the state.
    """

    model_uri: str = DEFAULT_MODEL_URI
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    workers: int = DEFAULT_WORKERS
    max_rows: int | None = DEFAULT_MAX_ROWS
    timeout_s: int | None = None
    access_log: bool = False
    state: str | None = None
    model_label: str = ""

    @property
    def url(self) -> str:
        """Base URL of the server."""
        return f"http://{self.host}:{self.port}"


def serve_command(config: ServeConfig) -> list[str]:
    """The ``mlflow models serve`` command line for ``config``."""
    return [
        *_mlflow_cli(),
        "models",
        "serve",
        "-m",
        config.model_uri,
        "--env-manager",
        "local",
        "-h",
        config.host,
        "-p",
        str(config.port),
        "-w",
        str(config.workers),
    ]


def _mlflow_cli() -> list[str]:
    """The ``mlflow`` executable next to this interpreter, else ``python -m mlflow``."""
    cli = Path(sys.executable).parent / "mlflow"
    return [str(cli)] if cli.is_file() else [sys.executable, "-m", "mlflow"]


def serve_env(
    config: ServeConfig, tracking_uri: str, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Environment of the server: our store, the venv's ``bin`` on PATH, limits, no telemetry.

    Parameters
    ----------
    config:
        The server settings (row limit and timeout become environment variables).
    tracking_uri:
        Store that resolves ``models:/`` URIs (``inferloop.core.tracking.tracking_uri()``).
    base:
        Environment to start from; the current one by default.
    """
    env = dict(os.environ if base is None else base)
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", "")])
    env["MLFLOW_TRACKING_URI"] = tracking_uri
    env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    env.setdefault("DO_NOT_TRACK", "1")
    env.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one line per file otherwise
    env.pop(MAX_ROWS_ENV, None)
    if config.max_rows is not None:
        env[MAX_ROWS_ENV] = str(config.max_rows)
    if config.timeout_s is not None:
        env["MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT"] = str(config.timeout_s)
    env["UVICORN_ACCESS_LOG"] = "true" if config.access_log else "false"  # uvicorn reads UVICORN_*
    if config.state is not None:
        env[STATE_ENV] = config.state
    if config.model_label:
        env[MODEL_LABEL_ENV] = config.model_label
    return env


def run_server(config: ServeConfig, tracking_uri: str) -> int:
    """Run the server in the foreground until it exits or Ctrl-C; return its exit code."""
    proc = subprocess.Popen(serve_command(config), env=serve_env(config, tracking_uri))
    try:
        return proc.wait()
    except KeyboardInterrupt:  # the terminal sent SIGINT to the server too; let it finish
        return proc.wait()
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait()


def free_port(host: str = DEFAULT_HOST) -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def start_server(
    config: ServeConfig, tracking_uri: str, log: IO[bytes], env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``mlflow models serve`` in its own process group, output to ``log``.

    Parameters
    ----------
    config, tracking_uri:
        As for :func:`serve_env`.
    log:
        Binary file that receives the server's stdout and stderr.
    env:
        Base environment (the current one by default).
    """
    return subprocess.Popen(
        serve_command(config),
        env=serve_env(config, tracking_uri, env),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_until_ready(
    config: ServeConfig, proc: subprocess.Popen[bytes], log_path: Path, timeout_s: float = 180.0
) -> None:
    """Poll ``GET /ping`` until it answers 200; raise :class:`ServerError` if the server dies."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerError(f"model server exited with {proc.returncode}:\n{_tail(log_path)}")
        if ping(config):
            return
        time.sleep(0.25)
    raise ServerError(f"model server not ready after {timeout_s:.0f} s:\n{_tail(log_path)}")


def ping(config: ServeConfig, timeout_s: float = 2.0) -> bool:
    """Whether ``GET /ping`` answers 200."""
    conn = http.client.HTTPConnection(config.host, config.port, timeout=timeout_s)
    try:
        conn.request("GET", "/ping")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def stop_server(proc: subprocess.Popen[bytes], grace_s: float = 20.0) -> None:
    """Stop the server's whole process group: SIGTERM, then SIGKILL after ``grace_s``.

    Returns once no process of the group is left (uvicorn's workers outlive the
    ``mlflow`` process that started them by a moment while they shut down).
    """
    _signal_group(proc, signal.SIGTERM)
    if not _group_gone(proc, grace_s):
        _signal_group(proc, signal.SIGKILL)
        _group_gone(proc, 5.0)


def _group_gone(proc: subprocess.Popen[bytes], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        proc.poll()  # reap our direct child so that it does not linger as a zombie
        try:
            os.killpg(proc.pid, 0)  # signal 0: does any process of the group still exist?
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)  # the group this module created with start_new_session


@contextmanager
def running_server(
    config: ServeConfig,
    tracking_uri: str,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 180.0,
) -> Iterator[subprocess.Popen[bytes]]:
    """A started, ready server for the ``with`` block; stopped afterwards, even on errors."""
    with log_path.open("wb") as log:
        proc = start_server(config, tracking_uri, log, env)
        try:
            wait_until_ready(config, proc, log_path, timeout_s)
            yield proc
        finally:
            stop_server(proc)


def _tail(path: Path, chars: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"
