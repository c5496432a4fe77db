"""Where the MLflow store lives, and how a process points at it.

Nothing here runs at import: callers invoke :func:`configure_mlflow` once at their edge
(stage notebook, CLI command, test fixture).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "ROOT_ENV",
    "artifact_root",
    "configure_mlflow",
    "default_tracking_uri",
    "ensure_experiment",
    "repo_root",
    "tracking_uri",
]


ROOT_ENV = "INFERLOOP_ROOT"


def repo_root(start: str | Path | None = None) -> Path:
    """The project root: ``$INFERLOOP_ROOT``, else the nearest parent holding ``dvc.yaml``.

    Falls back to the start directory (the cwd by default) when no marker is found.
    """
    if os.environ.get(ROOT_ENV):
        return Path(os.environ[ROOT_ENV]).resolve()
    here = Path(start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "dvc.yaml").is_file() and (candidate / "params.yaml").is_file():
            return candidate
    return here


def default_tracking_uri(root: Path) -> str:
    """``sqlite:///<absolute root>/mlruns/mlflow.db`` — the embedded store."""
    return f"sqlite:///{(root / 'mlruns' / 'mlflow.db').resolve()}"


def artifact_root(root: Path) -> Path:
    """Folder that holds run and model artifacts of the embedded store."""
    return (root / "mlruns" / "artifacts").resolve()


def tracking_uri(root: Path | None = None) -> str:
    """``$MLFLOW_TRACKING_URI`` if set, else the embedded SQLite store under ``root``."""
    return os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(root or repo_root())


def configure_mlflow(root: Path | None = None) -> str:
    """Point this process's MLflow client at the project store and return its URI.

    Turns telemetry off unless the user set the variable, creates the store folders for the
    embedded store, and sets both the tracking and the registry URI.
    """
    import mlflow  # imported here: keep ``import inferloop`` light

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    root = root or repo_root()
    uri = tracking_uri(root)
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        artifact_root(root).mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def ensure_experiment(name: str, root: Path | None = None) -> str:
    """Id of experiment ``name``, created with artifacts under ``mlruns/artifacts/<name>``.

    With a remote tracking server the server decides the artifact location.
    """
    import mlflow

    existing = mlflow.get_experiment_by_name(name)
    if existing is not None:
        return str(existing.experiment_id)
    location = None
    if tracking_uri(root).startswith("sqlite:"):
        location = (artifact_root(root or repo_root()) / name).as_uri()
    return str(mlflow.create_experiment(name, artifact_location=location))
