"""The deployable fraud model: ONE MLflow pyfunc that takes raw transaction columns.

:class:`FraudModel` carries the fitted :class:`~inferloop.data.features.TransactionFeaturizer`
(with its point-in-time history), the classifier and the operating threshold. Batch scoring,
the stream and ``mlflow models serve`` all call the same :meth:`FraudModel.score_frame`, which
validates its input first (:func:`read_transactions`, reading each column once); ``predict``
turns :class:`InvalidInput` into MLflow's ``INVALID_PARAMETER_VALUE``, an HTTP 400 that names
the problem. The logged signature leaves the input to this check by default: MLflow's own
column-by-column enforcement costs more than the model per request (:func:`fraud_signature`).

Serialisation: MLflow cloudpickles the ``PythonModel`` object, and the model folder carries
a copy of the ``inferloop`` package (``code_paths``), so it loads in any process that has the
runtime dependencies listed in its ``requirements.txt`` — without ``inferloop`` installed.
``mlflow.sklearn`` is not used because its default skops format rejects LightGBM estimators,
and the deployable unit is featurizer + classifier + threshold, not a bare estimator.
Pickle-based formats execute code on load: load models only from a registry you trust.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import re
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from inferloop.core import schema as s
from inferloop.data.contract import canonical_ids
from inferloop.data.features import RawColumns, TransactionFeaturizer, concat_raw

__all__ = [
    "ARROW_STRINGS_ENV",
    "INPUT_CONTRACT",
    "MAX_ROWS_ENV",
    "OUTPUT_COLUMNS",
    "SERVER_MODEL_PATH_ENV",
    "SERVING_ENV",
    "SMALL_BATCH_ROWS",
    "FraudModel",
    "InputSchema",
    "InvalidInput",
    "Transactions",
    "as_frame",
    "coerce_input",
    "fraud_signature",
    "input_example",
    "log_fraud_model",
    "package_dir",
    "positive_scores",
    "read_transactions",
    "runtime_requirements",
]


OUTPUT_COLUMNS = (s.TRANSACTION_ID, s.SCORE, s.DECISION)
#: Batches up to this many rows take the small-batch paths (numpy timestamp parsing, one
#: LightGBM thread): per-call overheads, not per-row work, dominate there.
SMALL_BATCH_ROWS = 256
#: Environment variable: the most rows one ``predict`` call may carry (a request to the model
#: server; ``inferloop serve`` sets it). Unset means no limit, as for batch users of the pyfunc.
MAX_ROWS_ENV = "INFERLOOP_SERVING_MAX_ROWS"
#: Set to ``true`` by MLflow's scoring server in its worker processes (and while MLflow checks
#: an input example at log time); the model then answers with JSON-ready records.
SERVING_ENV = "_MLFLOW_IS_IN_SERVING_ENVIRONMENT"
#: Set by ``mlflow models serve`` for its worker processes: the model folder they load.
SERVER_MODEL_PATH_ENV = "__pyfunc_model_path__"
#: Opt-out of the server's plain-string pandas setting (see ``FraudModel.load_context``).
ARROW_STRINGS_ENV = "INFERLOOP_SERVER_ARROW_STRINGS"
_NAIVE_ISO = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)?")


class InvalidInput(ValueError):
    """A request or batch the model cannot score; the message names the problem."""


@dataclass(frozen=True)
class Transactions:
    """Validated raw transactions: ids to echo, naive-UTC timestamps, featurizer inputs."""

    ids: np.ndarray
    timestamps: np.ndarray
    raw: RawColumns


def read_transactions(frame: pd.DataFrame) -> Transactions:
    """Validate raw transactions, reading each column of ``frame`` once.

    Parameters
    ----------
    frame
        Rows with at least :data:`inferloop.schema.SCORING_COLUMNS`; other columns are ignored,
        except ``is_fraud`` whose labels the featurizer uses once the label delay has passed.

    Returns
    -------
    Transactions
        Canonical ids (as the data contract writes them: int64 when every id is an integer),
        timestamps and amounts.

    Raises
    ------
    InvalidInput
        Naming the problem: empty input, missing columns, missing or non-scalar ids,
        unparseable timestamps, non-numeric amounts, categories outside the contract.
    """
    if len(frame) == 0:
        raise InvalidInput("empty input: send at least one transaction")
    missing = [c for c in s.SCORING_COLUMNS if c not in frame.columns]
    if missing:
        raise InvalidInput(f"missing required column(s): {missing}")
    plain = _read_plain(frame)
    return plain if plain is not None else _read_columns(frame)


def _read_columns(frame: pd.DataFrame) -> Transactions:
    """The general path of :func:`read_transactions`: column by column, naming any problem."""
    timestamps = _as_timestamps(frame[s.TIMESTAMP])
    raw = RawColumns(
        seconds=timestamps.astype("datetime64[s]").astype(np.int64),
        customer=_as_keys(frame[s.CUSTOMER_ID]),
        terminal=_as_keys(frame[s.TERMINAL_ID]),
        amount=_as_amounts(frame[s.AMOUNT]),
        channel=_as_categories(frame[s.CHANNEL]),
        merchant_category=_as_categories(frame[s.MERCHANT_CATEGORY]),
        label=_labels(frame),
    )
    ids = frame[s.TRANSACTION_ID]
    id_values = ids.to_numpy()
    _check_keys(ids, id_values)
    return Transactions(id_values, timestamps, raw)


def _read_plain(frame: pd.DataFrame) -> Transactions | None:
    """A few rows of plain values (what a JSON request holds) read without pandas; else None.

    Reading the columns of a one-row frame through pandas costs more than featurizing and
    scoring it (figures in ``docs/serving.md``). Here the frame becomes one object array (one call), and each
    column is accepted only when every value is of the plain kind that cannot fail the checks
    of :func:`read_transactions`: integer ids, finite numeric amounts, naive ISO text
    timestamps, known categories, numeric or missing labels. Anything else returns None, and
    the general path reads the frame and names the problem; both give the same result on plain
    rows (tested).
    """
    names = [str(c) for c in frame.columns]
    if len(frame) > SMALL_BATCH_ROWS or len(set(names)) != len(names):
        return None
    values = frame.to_numpy(dtype=object)
    column = {name: values[:, i] for i, name in enumerate(names)}
    timestamps = _plain_timestamps(column[s.TIMESTAMP])
    amounts = _plain_floats(column[s.AMOUNT], allow_missing=False)
    ids, customer, terminal = (
        _plain_ints(column[c]) for c in (s.TRANSACTION_ID, s.CUSTOMER_ID, s.TERMINAL_ID)
    )
    channel = _plain_categories(column[s.CHANNEL], s.CHANNEL)
    category = _plain_categories(column[s.MERCHANT_CATEGORY], s.MERCHANT_CATEGORY)
    label = _plain_floats(column[s.TARGET], allow_missing=True) if s.TARGET in column else None
    if (
        timestamps is None
        or amounts is None
        or ids is None
        or customer is None
        or terminal is None
        or channel is None
        or category is None
        or (s.TARGET in column and label is None)
    ):
        return None
    raw = RawColumns(
        seconds=timestamps.astype("datetime64[s]").astype(np.int64),
        customer=customer,
        terminal=terminal,
        amount=amounts,
        channel=channel,
        merchant_category=category,
        label=label,
    )
    return Transactions(ids, timestamps, raw)


def _plain_ints(values: np.ndarray) -> np.ndarray | None:
    if not all(type(v) is int for v in values):  # exact type: bool is an int subclass
        return None
    try:
        return np.array(values.tolist(), dtype=np.int64)
    except OverflowError:
        return None


def _plain_floats(values: np.ndarray, *, allow_missing: bool) -> np.ndarray | None:
    kinds = (int, float, type(None)) if allow_missing else (int, float)
    if not all(type(v) in kinds for v in values):
        return None
    floats = np.array(values.tolist(), dtype=np.float64)
    return floats if allow_missing or np.isfinite(floats).all() else None


def _plain_timestamps(values: np.ndarray) -> np.ndarray | None:
    if not all(isinstance(v, str) and _NAIVE_ISO.fullmatch(v) for v in values):
        return None
    try:
        return np.array(values.tolist(), dtype="datetime64[us]")
    except ValueError:
        return None


def _plain_categories(values: np.ndarray, column: str) -> np.ndarray | None:
    allowed = s.ALLOWED_CATEGORIES[column]
    if not all(isinstance(v, str) and v in allowed for v in values):
        return None
    return np.array(values.tolist(), dtype=object)


def coerce_input(model_input: Any) -> pd.DataFrame:
    """Raw transactions as a validated DataFrame with the types the featurizer needs.

    Accepts a DataFrame, a list of records or a dict of columns; raises :class:`InvalidInput`
    as :func:`read_transactions` does.
    """
    frame = as_frame(model_input)
    tx = read_transactions(frame)
    return frame.assign(
        **{
            s.TIMESTAMP: tx.timestamps,
            s.CUSTOMER_ID: tx.raw.customer,
            s.TERMINAL_ID: tx.raw.terminal,
            s.AMOUNT: tx.raw.amount,
        }
    )


def as_frame(model_input: Any) -> pd.DataFrame:
    """``model_input`` as a DataFrame: records, a dict of columns or of one row's values."""
    if isinstance(model_input, pd.DataFrame):
        return model_input
    if isinstance(model_input, dict) and all(np.ndim(v) == 0 for v in model_input.values()):
        model_input = [{k: _scalar(v) for k, v in model_input.items()}]  # one transaction
    try:
        return pd.DataFrame(model_input)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"input is not tabular transaction data: {exc}") from exc


def _scalar(value: Any) -> Any:
    return value.item() if isinstance(value, (np.ndarray, np.generic)) else value


def _first(values: pd.Series, bad: np.ndarray) -> list[Any]:
    return values[bad].head(3).tolist()


def _as_timestamps(values: pd.Series) -> np.ndarray:
    """Naive-UTC datetime64 values: datetimes as they are (tz-aware converted), or ISO text."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        parsed = values.dt.tz_convert(None).to_numpy()
    elif values.dtype.kind == "M":
        parsed = values.to_numpy()
    elif values.dtype.kind in "biuf":
        raise InvalidInput(
            f"column 'timestamp' must hold ISO 8601 text or datetimes, got {values.dtype} values"
        )
    else:
        parsed = _parse_iso(values)
    bad = np.isnat(parsed)
    if bad.any():
        raise InvalidInput(f"unparseable timestamp(s) in column 'timestamp': {_first(values, bad)}")
    return parsed


def _parse_iso(values: pd.Series) -> np.ndarray:
    """ISO 8601 text to naive-UTC datetime64 (NaT where unparseable).

    A few plain ``YYYY-MM-DD[Thh:mm[:ss[.f]]]`` strings are parsed by numpy (microseconds);
    anything else -- offsets, ``Z``, large batches -- by pandas (hundreds of microseconds).
    """
    text = values.to_numpy()
    if len(text) <= SMALL_BATCH_ROWS and all(
        isinstance(v, str) and _NAIVE_ISO.fullmatch(v) for v in text
    ):
        try:
            return np.array(text, dtype="datetime64[us]")
        except ValueError:
            pass  # e.g. month 13: pandas turns it into NaT and the caller names it
    try:
        parsed = pd.to_datetime(values, errors="coerce", utc=True, format="ISO8601")
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"unparseable timestamp(s) in column 'timestamp': {exc}") from exc
    return parsed.dt.tz_convert(None).to_numpy()


def _as_amounts(values: pd.Series) -> np.ndarray:
    """Amounts as float64; numbers as text are accepted, anything non-finite is not."""
    if values.dtype.kind in "iuf":
        amounts = values.to_numpy(dtype=np.float64, na_value=np.nan)
    elif values.dtype.kind == "b":
        amounts = np.full(len(values), np.nan)
    else:
        try:
            numeric = pd.to_numeric(values, errors="coerce")
        except (TypeError, ValueError):
            numeric = pd.Series(np.nan, index=values.index)
        amounts = numeric.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(amounts)
    if bad.any():
        raise InvalidInput(
            f"non-numeric or missing amount(s) in column 'amount': {_first(values, bad)}"
        )
    return amounts


def _as_keys(values: pd.Series) -> np.ndarray:
    """Customer or terminal keys in the contract's canonical form (they index the history)."""
    keys = values.to_numpy()
    if keys.dtype.kind == "i":
        return keys
    _check_keys(values, keys)
    return np.asarray(canonical_ids(values).to_numpy())


def _check_keys(values: pd.Series, keys: np.ndarray) -> None:
    """Raise unless every key is a number or non-blank text."""
    if keys.dtype.kind in "iu":
        return
    if keys.dtype.kind == "f":
        bad = ~np.isfinite(keys)
    elif keys.dtype.kind == "O":
        bad = np.fromiter((not _is_key(v) for v in keys), dtype=bool, count=len(keys))
    else:
        bad = np.ones(len(keys), dtype=bool)
    if bad.any():
        raise InvalidInput(
            f"missing or invalid id(s) in column {values.name!r} (ids are numbers or text): "
            f"{_first(values, bad)}"
        )


def _is_key(value: Any) -> bool:
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, (int, np.integer)):
        return True
    return isinstance(value, (float, np.floating)) and bool(np.isfinite(value))


def _as_categories(values: pd.Series) -> np.ndarray:
    """Category values, each one of the contract's (an object array)."""
    column = str(values.name)
    allowed = s.ALLOWED_CATEGORIES[column]
    text = np.asarray(values.to_numpy(), dtype=object)
    try:
        seen = set(text.tolist()) if len(text) <= SMALL_BATCH_ROWS else set(pd.unique(text))
    except TypeError as exc:  # unhashable values such as lists
        raise InvalidInput(f"column {column!r} must hold text: {exc}") from exc
    unknown = seen.difference(allowed)
    if unknown:
        shown = sorted(map(repr, unknown))[:3]
        raise InvalidInput(
            f"unknown value(s) in column {column!r}: {', '.join(shown)}; allowed: {list(allowed)}"
        )
    return text


def _labels(frame: pd.DataFrame) -> np.ndarray | None:
    """Labels sent with the rows (used by the featurizer once the label delay has passed)."""
    if s.TARGET not in frame.columns:
        return None
    try:
        labels = pd.to_numeric(frame[s.TARGET], errors="coerce")
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"column {s.TARGET!r} must hold 0, 1 or nothing: {exc}") from exc
    return labels.to_numpy(dtype=np.float64, na_value=np.nan)


def positive_scores(
    estimator: Any, features: pd.DataFrame | np.ndarray, feature_names: list[str]
) -> np.ndarray:
    """Fraud probability from any fitted classifier, fastest path first.

    Parameters
    ----------
    estimator
        Fitted classifier: a LightGBM model (``booster_``), an edge classifier
        (``predict_scores`` on a float matrix) or anything with ``predict_proba``.
    features
        Featurized rows: a frame, or a float matrix whose columns are ``feature_names``.
    feature_names
        Column names for estimators that need a frame.

    Returns
    -------
    numpy.ndarray
        Probability of fraud per row.

    Notes
    -----
    LightGBM boosters are called directly on the float matrix (skipping the scikit-learn
    wrapper's per-call validation, which costs more than the trees for one row), and on one
    thread for small batches: starting OpenMP threads for one row costs far more than the
    trees, and a server already runs one worker process per core.
    """
    booster = getattr(estimator, "booster_", None)
    if booster is not None:
        matrix = (
            features.to_numpy(dtype=np.float64) if isinstance(features, pd.DataFrame) else features
        )
        threads = {"num_threads": 1} if len(matrix) <= SMALL_BATCH_ROWS else {}
        return np.asarray(booster.predict(matrix, **threads), dtype=np.float64)
    predict_scores = getattr(estimator, "predict_scores", None)
    if predict_scores is not None:  # the edge classifiers score float rows directly
        matrix = features.to_numpy(np.float64) if isinstance(features, pd.DataFrame) else features
        return np.asarray(predict_scores(matrix), dtype=np.float64)
    if isinstance(features, np.ndarray):
        features = pd.DataFrame(features, columns=feature_names, copy=False)
    return np.asarray(estimator.predict_proba(features)[:, 1], dtype=np.float64)


try:  # mlflow is a runtime dependency; the import guard keeps ``import inferloop.model`` cheap to type-check
    from mlflow.pyfunc import PythonModel
except ImportError:  # pragma: no cover - mlflow is always installed with inferloop
    PythonModel = object  # type: ignore[assignment,misc]


class FraudModel(PythonModel):
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

    def __init__(
        self, featurizer: TransactionFeaturizer, estimator: Any, threshold: float, candidate: str
    ) -> None:
        self.featurizer = featurizer
        self.estimator = estimator
        self.threshold = float(threshold)
        self.candidate = candidate

    def load_context(self, context: Any) -> None:
        """Called by MLflow once per process that loads the model.

        Inside ``mlflow models serve`` (its worker processes carry ``__pyfunc_model_path__``)
        pandas is told to keep text columns as plain Python strings. Each request becomes a
        DataFrame there, and pandas 3's default Arrow-backed strings cost more per one-row
        request to build and read back than featurizing and scoring (``docs/serving.md``). Scores are identical
        (the HTTP tests compare them with :meth:`score_frame`). Any other process -- a
        notebook, batch scoring -- is left as it is: a library must not change a user's pandas.
        Set ``INFERLOOP_SERVER_ARROW_STRINGS=1`` to keep pandas' default in the server too.
        """
        if os.environ.get(SERVER_MODEL_PATH_ENV) and not os.environ.get(ARROW_STRINGS_ENV):
            with suppress(KeyError, ValueError, pd.errors.OptionError):
                pd.set_option("future.infer_string", False)

    @property
    def feature_names(self) -> list[str]:
        """Model input features, in order."""
        return list(self.featurizer.feature_names_out_)

    def scores_for_features(self, features: pd.DataFrame) -> np.ndarray:
        """Scores for an already featurized frame (training-time evaluation)."""
        return positive_scores(self.estimator, features[self.feature_names], self.feature_names)

    def score_frame(self, frame: pd.DataFrame, context: pd.DataFrame | None = None) -> pd.DataFrame:
        """Score raw transactions: the one predict path of batch, stream and server.

        Parameters
        ----------
        frame
            Raw transactions (:data:`inferloop.schema.SCORING_COLUMNS`, more are ignored).
        context
            Earlier transactions (already scored; validated again here, ids canonicalized like
            ``frame``'s) that count as history before ``frame``'s rows but are not scored
            again: the stream's recent rows that are not yet folded into the featurizer's
            history.

        Returns
        -------
        pandas.DataFrame
            ``transaction_id``, ``score`` and ``decision`` per row, on ``frame``'s index.

        Raises
        ------
        InvalidInput
            When the rows break the input rules of :func:`read_transactions`.
        """
        ids, scores, decisions = self._score(frame, context)
        return pd.DataFrame(
            {s.TRANSACTION_ID: ids, s.SCORE: scores, s.DECISION: decisions},
            index=frame.index,
            copy=False,
        )

    def score_records(self, frame: pd.DataFrame) -> list[dict[str, Any]]:
        """:meth:`score_frame` as a list of JSON-ready records (what the model server sends).

        The server turns a DataFrame answer into these same records with ``to_dict``, which
        for one row costs more than scoring it; building them directly skips the frame.
        """
        ids, scores, decisions = self._score(frame)
        return [
            {s.TRANSACTION_ID: i, s.SCORE: p, s.DECISION: d}
            for i, p, d in zip(ids.tolist(), scores.tolist(), decisions.tolist(), strict=True)
        ]

    def _score(
        self, frame: pd.DataFrame, context: pd.DataFrame | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        tx = read_transactions(frame)
        if context is None or context.empty:
            features = self.featurizer.features_of(tx.raw)
        else:  # featurize context + rows together (both canonical); score only the rows
            both = concat_raw(read_transactions(context).raw, tx.raw)
            features = self.featurizer.features_of(both)[len(context) :]
        scores = positive_scores(self.estimator, features, self.feature_names)
        return tx.ids, scores, (scores >= self.threshold).astype(np.int8)

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame | list[dict[str, Any]]:
        """MLflow entry point: :meth:`score_frame`, with bad input as a 400 error.

        ``model_input`` is whatever MLflow parsed from the request: a DataFrame for
        ``dataframe_split`` / ``dataframe_records`` / CSV / Parquet, records or a dict of
        columns otherwise. Inside ``mlflow models serve`` (which sets
        ``_MLFLOW_IS_IN_SERVING_ENVIRONMENT``) the answer is :meth:`score_records`: the same
        JSON response, without building a frame only for the server to take apart.
        """
        try:
            frame = as_frame(model_input)
            _check_request_rows(len(frame))
            if os.environ.get(SERVING_ENV, "").lower() == "true":
                return self.score_records(frame)
            return self.score_frame(frame)
        except InvalidInput as exc:
            from mlflow.exceptions import MlflowException
            from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

            raise MlflowException(str(exc), error_code=INVALID_PARAMETER_VALUE) from exc


def _check_request_rows(n_rows: int) -> None:
    limit = os.environ.get(MAX_ROWS_ENV)
    if limit and n_rows > int(limit):
        raise InvalidInput(
            f"too many rows in one request: {n_rows:,} > {int(limit):,} "
            f"({MAX_ROWS_ENV}); split the batch or use batch scoring"
        )


def package_dir() -> Path:
    """The ``inferloop`` source folder, shipped inside every logged model (``code_paths``)."""
    return Path(__file__).resolve().parent


def runtime_requirements(candidate: str, estimator: Any = None) -> list[str]:
    """Pinned pip requirements a logged model needs to load and score.

    torch only for the MLP; the edge model (``edge:<variant>``) needs neither LightGBM nor
    torch, but what its classifier declares in ``runtime_packages`` (onnxruntime for an ONNX
    graph, llvmlite for compiled code).
    """
    names = ["mlflow", "numpy", "pandas", "scikit-learn", "scipy", "pyarrow"]
    if candidate.startswith("edge"):
        names.extend(getattr(estimator, "runtime_packages", ("onnxruntime",)))
    else:
        names.append("lightgbm")
    if candidate == "mlp":
        names.append("torch")
    return [f"{name}=={md.version(name)}" for name in names]


def input_example(frame: pd.DataFrame, rows: int = 3) -> pd.DataFrame:
    """A few raw rows in the signature's columns (timestamps as ISO strings for JSON)."""
    example = frame.loc[:, list(s.SCORING_COLUMNS)].head(rows).copy()
    return example


#: What the logged signature says about the input (see :func:`fraud_signature`).
InputSchema = Literal["model", "loose", "typed"]
#: The raw input columns and the values the model accepts, recorded in the MLmodel metadata.
INPUT_CONTRACT = {
    s.TRANSACTION_ID: "integer or text, not null",
    s.TIMESTAMP: "ISO 8601 text or datetime (naive = UTC)",
    s.CUSTOMER_ID: "integer or text, not null",
    s.TERMINAL_ID: "integer or text, not null",
    s.AMOUNT: "finite number",
    s.CHANNEL: f"one of {list(s.CHANNELS)}",
    s.MERCHANT_CATEGORY: f"one of {list(s.MERCHANT_CATEGORIES)}",
}


def fraud_signature(
    model: FraudModel, example: pd.DataFrame, input_schema: InputSchema = "model"
) -> Any:
    """The MLflow signature to log: the output schema, and the input as ``input_schema`` says.

    Parameters
    ----------
    model, example:
        The model and raw rows whose scores give the output schema.
    input_schema:
        ``"model"`` (default): no input schema, so MLflow passes requests straight to
        :meth:`FraudModel.predict`, which validates them itself (:func:`read_transactions`,
        400 naming the problem). ``"loose"``: the raw columns with type ``Any``; MLflow checks
        they are present. ``"typed"``: columns typed from ``example``; MLflow casts and checks
        every column. MLflow's enforcement runs column by column in pandas for every request:
        it costs more than the model for one transaction (``benchmarks/bench_serving.py``).

    Returns
    -------
    mlflow.models.ModelSignature
    """
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types.schema import AnyType, ColSpec, Schema

    typed = infer_signature(example, model.score_frame(example))
    if input_schema == "typed":
        return typed
    if input_schema == "loose":
        inputs = Schema([ColSpec(AnyType(), column) for column in s.SCORING_COLUMNS])
        return ModelSignature(inputs=inputs, outputs=typed.outputs)
    return ModelSignature(outputs=typed.outputs)


def log_fraud_model(
    model: FraudModel,
    example: pd.DataFrame,
    *,
    name: str = "model",
    input_schema: InputSchema = "model",
) -> Any:
    """Log ``model`` to the active MLflow run with signature, input example and input contract.

    Parameters
    ----------
    model:
        The fitted model.
    example:
        A few raw rows (:func:`input_example`), saved as the input example and the serving
        example (``serving_input_example.json``).
    name:
        Name of the logged model in the run.
    input_schema:
        See :func:`fraud_signature`; the default leaves input validation to the model.

    Returns
    -------
    mlflow.models.model.ModelInfo
        ``model_uri`` is ``models:/m-<id>``.
    """
    import mlflow

    return mlflow.pyfunc.log_model(
        name=name,
        python_model=model,
        signature=fraud_signature(model, example, input_schema),
        input_example=example,
        code_paths=[str(package_dir())],
        pip_requirements=runtime_requirements(model.candidate, model.estimator),
        metadata={"input_columns": INPUT_CONTRACT, "input_schema": input_schema},
    )
