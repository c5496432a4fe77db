"""Load a registered model for scoring: resolve its alias to a pinned version, unwrap it.

Every scoring path pins ``models:/name/version`` once, so a champion that moves while a run
is under way cannot mix two versions in one output.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "ScoringModel",
    "load_scoring_model",
    "partition_name",
    "resolve_model",
]


@dataclass
class ScoringModel:
    """A loaded model and the registry coordinates every prediction row carries."""

    name: str
    version: str
    uri: str
    model: Any  # inferloop.model.FraudModel, as unpickled from the model's own code copy

    @property
    def label(self) -> str:
        """Folder name of this model's predictions, e.g. ``fraud-detector-v3``."""
        return partition_name(self.name, self.version)


def partition_name(name: str, version: str) -> str:
    """``<name>-v<version>`` made safe as a folder name (``<name>-unversioned`` if no version)."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name.rstrip("/")).name or name).strip("_")
    return f"{safe or 'model'}-{'v' + version if version else 'unversioned'}"


def resolve_model(model_uri: str) -> tuple[str, str, str]:
    """``(name, version, pinned_uri)``: an alias is resolved once, so one run = one version."""
    from inferloop.core.registry import resolve

    name, version = resolve(model_uri)
    pinned = f"models:/{name}/{version}" if model_uri.startswith("models:/") else model_uri
    return name, version, pinned


def load_scoring_model(model_uri: str) -> ScoringModel:
    """Load ``model_uri`` through ``mlflow.pyfunc`` and unwrap the :class:`FraudModel`."""
    import mlflow

    name, version, pinned = resolve_model(model_uri)
    pyfunc_model = mlflow.pyfunc.load_model(pinned)
    return ScoringModel(name, version, pinned, pyfunc_model.unwrap_python_model())
