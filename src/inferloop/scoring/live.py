"""The live scorer: score raw rows through the model, then fold them into its feature history.

Every path that scores a sequence of batches (batch files, the stream, the production
simulation, evaluation) uses :class:`LiveScorer`, so "score, then advance the history" is
written once. Loading a registered model for scoring is here too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from inferloop.core import schema as s

__all__ = [
    "HistoryScorer",
    "ScoringModel",
    "epoch_seconds",
    "history_end",
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


# --------------------------------------------------------------------------- time order


def epoch_seconds(values: pd.Series) -> np.ndarray:
    """Whole seconds since 1970 of naive-UTC datetimes (the featurizer's time unit)."""
    return np.asarray(values.to_numpy(dtype="datetime64[s]").astype(np.int64))


def history_end(featurizer: Any) -> int:
    """Epoch second of the newest event in a fitted featurizer's history (-1 if empty)."""
    times = featurizer.history_.time
    return int(times.max()) if len(times) else -1


class HistoryScorer:
    """Scores validated rows batch after batch and advances the model's history over them.

    Rows at or before the newest event already in the history are "late": they are scored
    first (the featurizer then uses the history strictly before the earliest of them) and
    added to the history before the on-time rows are scored, so on-time rows see them.
    """

    def __init__(self, model: Any) -> None:
        self.model = model
        self.late_rows = 0

    def score(self, valid: pd.DataFrame) -> pd.DataFrame:
        """``transaction_id``, ``score``, ``decision`` for ``valid`` (same order and index)."""
        if valid.empty:
            return _empty_scores()
        late = epoch_seconds(valid[s.TIMESTAMP]) <= history_end(self.model.featurizer)
        n_late = int(late.sum())
        self.late_rows += n_late
        if n_late in (0, len(valid)):
            return self._score_and_advance(valid)
        parts = [self._score_and_advance(valid[late]), self._score_and_advance(valid[~late])]
        return pd.concat(parts).loc[valid.index]

    def _score_and_advance(self, rows: pd.DataFrame) -> pd.DataFrame:
        scored = self.model.score_frame(rows)
        self.model.featurizer.update(rows)
        return scored


def _empty_scores() -> pd.DataFrame:
    return pd.DataFrame(
        {
            s.TRANSACTION_ID: pd.Series([], dtype="int64"),
            s.SCORE: pd.Series([], dtype="float64"),
            s.DECISION: pd.Series([], dtype="int8"),
        }
    )


# --------------------------------------------------------------------------- inputs
