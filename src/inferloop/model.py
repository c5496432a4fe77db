"""The deployable fraud model: ONE MLflow pyfunc that takes raw transaction columns.

:class:`FraudModel` carries the fitted :class:`~inferloop.features.TransactionFeaturizer`
(with its point-in-time history), the classifier and the operating threshold. Batch scoring,
the stream and ``mlflow models serve`` all call the same :meth:`FraudModel.score_frame`.

Serialisation: MLflow cloudpickles the ``PythonModel`` object, and the model folder carries
a copy of the ``inferloop`` package (``code_paths``), so it loads in any process that has the
runtime dependencies listed in its ``requirements.txt`` — without ``inferloop`` installed.
``mlflow.sklearn`` is not used because its default skops format rejects LightGBM estimators,
and the deployable unit is featurizer + classifier + threshold, not a bare estimator.
Pickle-based formats execute code on load: load models only from a registry you trust.
"""

from __future__ import annotations

import importlib.metadata as md
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from inferloop import schema as s
from inferloop.features import TransactionFeaturizer

OUTPUT_COLUMNS = (s.TRANSACTION_ID, s.SCORE, s.DECISION)
_NUMERIC_INPUTS = (s.AMOUNT,)
_TEXT_INPUTS = (s.CHANNEL, s.MERCHANT_CATEGORY)


class InvalidInput(ValueError):
    """A request or batch the model cannot score; the message names the problem."""


def coerce_input(model_input: Any) -> pd.DataFrame:
    """Raw transactions as a DataFrame with the types the featurizer needs.

    Accepts a DataFrame, a list of records or a dict of columns. Raises :class:`InvalidInput`
    naming missing columns, empty input, unparseable timestamps or non-numeric amounts.
    """
    frame = model_input if isinstance(model_input, pd.DataFrame) else _to_frame(model_input)
    if len(frame) == 0:
        raise InvalidInput("empty input: send at least one transaction")
    missing = [c for c in s.SCORING_COLUMNS if c not in frame.columns]
    if missing:
        raise InvalidInput(f"missing required column(s): {missing}")
    return frame.assign(
        **{
            s.TIMESTAMP: _as_timestamps(frame[s.TIMESTAMP]),
            s.AMOUNT: _as_amounts(frame[s.AMOUNT]),
        }
    )


def _to_frame(model_input: Any) -> pd.DataFrame:
    try:
        return pd.DataFrame(model_input)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"input is not tabular transaction data: {exc}") from exc


def _as_timestamps(values: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(values):
        return values.dt.tz_convert(None) if getattr(values.dt, "tz", None) is not None else values
    parsed = pd.to_datetime(values, errors="coerce", utc=True, format="ISO8601")
    bad = parsed.isna()
    if bad.any():
        raise InvalidInput(f"unparseable timestamp(s) in column 'timestamp': {list(values[bad].head(3))}")
    return parsed.dt.tz_convert(None)


def _as_amounts(values: pd.Series) -> pd.Series:
    if pd.api.types.is_float_dtype(values) or pd.api.types.is_integer_dtype(values):
        amounts = values.astype(np.float64)
    else:
        amounts = pd.to_numeric(values, errors="coerce")
    bad = amounts.isna() | ~np.isfinite(amounts)
    if bad.any():
        raise InvalidInput(f"non-numeric or missing amount(s) in column 'amount': {list(values[bad].head(3))}")
    return amounts


def positive_scores(estimator: Any, features: pd.DataFrame) -> np.ndarray:
    """Fraud probability from any fitted classifier, fastest path first.

    LightGBM boosters are called directly on the float matrix (skipping the scikit-learn
    wrapper's per-call validation, which costs more than the trees for one row).
    """
    booster = getattr(estimator, "booster_", None)
    if booster is not None:
        return np.asarray(booster.predict(features.to_numpy(dtype=np.float64)), dtype=np.float64)
    return np.asarray(estimator.predict_proba(features)[:, 1], dtype=np.float64)


try:  # mlflow is a runtime dependency; the import guard keeps ``import inferloop.model`` cheap to type-check
    from mlflow.pyfunc import PythonModel
except ImportError:  # pragma: no cover - mlflow is always installed with inferloop
    PythonModel = object  # type: ignore[assignment,misc]


class FraudModel(PythonModel):  # type: ignore[misc]
    """Raw transactions in; ``transaction_id``, ``score`` and ``decision`` out.

    Parameters
    ----------
    featurizer:
        Fitted featurizer holding the point-in-time history.
    estimator:
        Fitted classifier with ``predict_proba`` (or a LightGBM ``booster_``).
    threshold:
        Alert when ``score >= threshold``.
    candidate:
        The candidate's name (``lightgbm``, ``logistic``, ``mlp``) for model cards and tags.
    """

    def __init__(self, featurizer: TransactionFeaturizer, estimator: Any, threshold: float, candidate: str) -> None:
        self.featurizer = featurizer
        self.estimator = estimator
        self.threshold = float(threshold)
        self.candidate = candidate

    @property
    def feature_names(self) -> list[str]:
        """Model input features, in order."""
        return list(self.featurizer.feature_names_out_)

    def scores_for_features(self, features: pd.DataFrame) -> np.ndarray:
        """Scores for an already featurized frame (training-time evaluation)."""
        return positive_scores(self.estimator, features[self.feature_names])

    def score_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Score validated raw transactions: the one predict path of batch, stream and server."""
        features = self.featurizer.transform(frame)
        scores = self.scores_for_features(features)
        return pd.DataFrame(
            {
                s.TRANSACTION_ID: frame[s.TRANSACTION_ID].to_numpy(),
                s.SCORE: scores,
                s.DECISION: (scores >= self.threshold).astype(np.int8),
            },
            index=frame.index,
        )

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """MLflow entry point: validates input (400 on bad requests) and scores it."""
        try:
            frame = coerce_input(model_input)
        except InvalidInput as exc:
            from mlflow.exceptions import MlflowException
            from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

            raise MlflowException(str(exc), error_code=INVALID_PARAMETER_VALUE) from exc
        return self.score_frame(frame)


def package_dir() -> Path:
    """The ``inferloop`` source folder, shipped inside every logged model (``code_paths``)."""
    return Path(__file__).resolve().parent


def runtime_requirements(candidate: str) -> list[str]:
    """Pinned pip requirements a logged model needs to load (torch only for the MLP)."""
    names = ["mlflow", "numpy", "pandas", "scikit-learn", "scipy", "pyarrow", "lightgbm"]
    if candidate == "mlp":
        names.append("torch")
    return [f"{name}=={md.version(name)}" for name in names]


def input_example(frame: pd.DataFrame, rows: int = 3) -> pd.DataFrame:
    """A few raw rows in the signature's columns (timestamps as ISO strings for JSON)."""
    example = frame.loc[:, list(s.SCORING_COLUMNS)].head(rows).copy()
    return example


def log_fraud_model(model: FraudModel, example: pd.DataFrame, *, name: str = "model") -> Any:
    """Log ``model`` to the active MLflow run with signature and input example.

    Returns the :class:`mlflow.models.model.ModelInfo` (``model_uri`` is ``models:/m-<id>``).
    """
    import mlflow
    from mlflow.models import infer_signature

    signature = infer_signature(example, model.score_frame(example))
    return mlflow.pyfunc.log_model(
        name=name,
        python_model=model,
        signature=signature,
        input_example=example,
        code_paths=[str(package_dir())],
        pip_requirements=runtime_requirements(model.candidate),
    )
