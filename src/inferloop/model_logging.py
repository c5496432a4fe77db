"""Log a :class:`~inferloop.model.FraudModel` to MLflow: signature, input example, requirements.

Apart from :mod:`inferloop.model` because logging is a training-time concern: a process that
only loads and scores a model never needs it.
"""

from __future__ import annotations

import importlib.metadata as md
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from inferloop.core import schema as s
from inferloop.evaluation.reasons import METHODS
from inferloop.model import EXPLAIN_METHOD_PARAM, EXPLAIN_PARAM, FraudModel

__all__ = [
    "INPUT_CONTRACT",
    "InputSchema",
    "fraud_signature",
    "input_contract",
    "input_example",
    "log_fraud_model",
    "package_dir",
    "runtime_requirements",
]


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


def input_example(
    frame: pd.DataFrame, rows: int = 3, columns: tuple[str, ...] = s.SCORING_COLUMNS
) -> pd.DataFrame:
    """A few raw rows in the signature's columns (a model's ``input_columns``; the default is
    the card-fraud spec's)."""
    return frame.loc[:, list(columns)].head(rows).copy()


#: What the logged signature says about the input (see :func:`fraud_signature`).
InputSchema = Literal["model", "loose", "typed"]
#: The core raw input columns and the values the model accepts (MLmodel metadata); the
#: dataset spec's feature columns follow (:func:`input_contract`).
INPUT_CONTRACT = {
    s.TRANSACTION_ID: "integer or text, not null",
    s.TIMESTAMP: "ISO 8601 text or datetime (naive = UTC)",
    s.CUSTOMER_ID: "integer or text, not null",
    s.TERMINAL_ID: "integer or text, not null",
    s.AMOUNT: "finite number",
}


def input_contract(model: FraudModel) -> dict[str, str]:
    """What each raw input column must hold: the core columns, the dataset spec's feature
    columns, and the attribute a post-processed model decides with."""
    spec = model.dataset_spec
    out = {c: rule for c, rule in INPUT_CONTRACT.items() if c in spec.scoring_columns}
    for column in spec.entity_columns:  # a declared entity's own key column
        out.setdefault(column, INPUT_CONTRACT[s.CUSTOMER_ID])
    for column, values in model.featurizer.categories.items():
        if spec.quarantines_unseen(column):
            out[column] = f"one of {list(values)}"
        else:
            out[column] = f"text, not null (encoded: {list(values)}; others: none of them)"
    out.update({column: "finite number" for column in spec.numeric_features})
    post = model.postprocess
    if post is not None:
        groups = sorted(post.thresholds)
        out[post.attribute] = (
            f"text, picks the decision threshold (groups {groups}; others: overall)"
        )
    return out


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
    from mlflow.types.schema import AnyType, ColSpec, ParamSchema, ParamSpec, Schema

    # ``"params": {"explain": true}`` in a request adds the reason-code columns
    params = ParamSchema(
        [
            ParamSpec(EXPLAIN_PARAM, "boolean", False),
            ParamSpec(EXPLAIN_METHOD_PARAM, "string", METHODS[0]),
        ]
    )
    typed = infer_signature(
        example,
        model.score_frame(example),
        params={EXPLAIN_PARAM: False, EXPLAIN_METHOD_PARAM: METHODS[0]},
    )
    if input_schema == "typed":
        return typed
    if input_schema == "loose":
        inputs = Schema([ColSpec(AnyType(), column) for column in model.input_columns])
        return ModelSignature(inputs=inputs, outputs=typed.outputs, params=params)
    return ModelSignature(outputs=typed.outputs, params=params)


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
        metadata={"input_columns": input_contract(model), "input_schema": input_schema},
    )
