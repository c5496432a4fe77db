"""Reason codes: the features that pushed an alert's score up, each with its contribution.

Contributions are additive on the model's raw margin (log-odds), so for every row the
contributions plus the base value give the margin the score came from:

* LightGBM: exact path-dependent TreeSHAP, the values of LightGBM's own
  ``Booster.predict(..., pred_contrib=True)``, computed by the compiled linear-time kernel of
  :mod:`inferloop.evaluation.treeshap` (several times faster than ``pred_contrib`` on one row;
  ``pred_contrib`` itself where the kernel does not cover the model or cannot be compiled). A
  caller may ask for ``method="path"``, the path attribution of
  :mod:`inferloop.evaluation.path_attribution`: the same margin and base, cheaper still, less
  even credit between features;
* the logistic baseline (standardizer + logistic regression): coefficient x standardized value,
  the intercept as the base;
* the MLP (ReLU layers, :class:`~inferloop.training.nn.TorchMLPClassifier`): DeepLIFT with the
  Rescale rule against the training mean (the standardized origin). Each layer passes on
  ``delta-out / delta-in`` (the weights for a linear layer, the ratio of the ReLU's change to
  its input's change), so the contributions add up to ``logit(x) - logit(mean)`` exactly,
  with the logit at the mean as the base. Unlike a gradient, a saturated unit still passes on
  the change it saw;
* anything else -- the fairlearn mixtures (a vote over models is not additive), the edge
  models (compiled or ONNX graphs expose no per-feature terms) -- gives none: the reason
  columns stay empty rather than carry a guess.

Each alert (decision 1) gets its top :data:`REASON_COUNT` features by contribution, largest
first (the ones that raised the fraud score most); rows that did not alert get none, as they
need no explanation and computing it costs time on the payment path.
"""

from __future__ import annotations

import logging
import weakref
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from inferloop.data.rows import SMALL_BATCH_ROWS
from inferloop.evaluation.path_attribution import PathTable, path_contributions, path_table
from inferloop.evaluation.treeshap import ShapTable, shap_contributions, shap_table

__all__ = [
    "METHODS",
    "REASON_COLUMNS",
    "REASON_COUNT",
    "Contributions",
    "explains",
    "feature_contributions",
    "prepare_explanations",
    "reason_columns",
    "reason_counts",
]

REASON_COUNT: Final = 3
#: How a LightGBM model's contributions are computed: TreeSHAP (the default) or path attribution.
METHODS: Final = ("treeshap", "path")
# a booster's trees as arrays, built on the first request that asks (never pickled with it)
_TABLES: weakref.WeakKeyDictionary[Any, PathTable | None] = weakref.WeakKeyDictionary()
_SHAP_TABLES: weakref.WeakKeyDictionary[Any, ShapTable | None] = weakref.WeakKeyDictionary()
_log = logging.getLogger(__name__)
#: ``reason_1``, ``reason_1_contribution``, ... : the output columns, in order.
REASON_COLUMNS: Final = tuple(
    name for i in range(1, REASON_COUNT + 1) for name in (f"reason_{i}", f"reason_{i}_contribution")
)


@dataclass(frozen=True)
class Contributions:
    """Per-row, per-feature contributions to the raw margin, and the base value.

    ``values.sum(axis=1) + base`` is the raw margin (log-odds) of each row.
    """

    values: np.ndarray
    base: np.ndarray

    @property
    def margin(self) -> np.ndarray:
        """The raw margin the contributions add up to."""
        return np.asarray(self.values.sum(axis=1) + self.base)


def _linear_parts(estimator: Any) -> tuple[Any, Any] | None:
    """(standardizer, logistic regression) of the baseline's two-step pipeline, else None."""
    steps = getattr(estimator, "steps", None)
    if not steps or len(steps) != 2:
        return None
    scaler, clf = steps[0][1], steps[1][1]
    coef = getattr(clf, "coef_", None)
    if hasattr(scaler, "scale_") and coef is not None and np.asarray(coef).shape[0] == 1:
        return scaler, clf
    return None


def _relu_layers(estimator: Any) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """The MLP's layers on standardized inputs, (weight, bias) in float64, else None."""
    export = getattr(estimator, "export_layers", None)
    if export is None or not hasattr(estimator, "mean_") or not hasattr(estimator, "scale_"):
        return None
    return [(np.asarray(w, np.float64), np.asarray(b, np.float64)) for w, b in export(False)]


def _deeplift(layers: list[tuple[np.ndarray, np.ndarray]], z: np.ndarray) -> Contributions:
    """DeepLIFT (Rescale) of a ReLU network on standardized rows ``z``, reference 0."""
    inputs, references = [z], [np.zeros((1, z.shape[1]))]
    for w, b in layers[:-1]:  # forward both, keeping each ReLU's input
        inputs.append(inputs[-1] @ w.T + b)
        references.append(references[-1] @ w.T + b)
        inputs.append(np.maximum(inputs[-1], 0.0))
        references.append(np.maximum(references[-1], 0.0))
    w_out, b_out = layers[-1]
    base = (references[-1] @ w_out.T + b_out)[:, 0]
    multiplier = np.repeat(w_out, len(z), axis=0)  # d logit / d last hidden
    for i in range(len(layers) - 2, -1, -1):
        pre, pre_ref = inputs[2 * i + 1], references[2 * i + 1]
        delta = pre - pre_ref
        tiny = np.abs(delta) < 1e-12
        ratio = (np.maximum(pre, 0.0) - np.maximum(pre_ref, 0.0)) / np.where(tiny, 1.0, delta)
        ratio = np.where(tiny, (pre > 0).astype(np.float64), ratio)  # no change: the gradient
        multiplier = (multiplier * ratio) @ layers[i][0]
    return Contributions(multiplier * z, np.full(len(z), float(base[0])))


def explains(estimator: Any) -> bool:
    """Whether ``estimator`` gives additive contributions (LightGBM, logistic, the MLP)."""
    return (
        getattr(estimator, "booster_", None) is not None
        or _linear_parts(estimator) is not None
        or _relu_layers(estimator) is not None
    )


def feature_contributions(
    estimator: Any, matrix: np.ndarray, method: str = "treeshap"
) -> Contributions | None:
    """Contributions of each feature (columns of ``matrix``) to each row's raw margin.

    ``method`` (one of :data:`METHODS`) picks LightGBM's: ``path`` is the fast path
    attribution; other estimators have one method each. None when the estimator gives no
    additive contributions (see the module docstring).
    """
    if method not in METHODS:
        raise ValueError(f"unknown explanation method {method!r}; one of {list(METHODS)}")
    matrix = np.asarray(matrix, dtype=np.float64)
    booster = getattr(estimator, "booster_", None)
    table = _path_table(booster) if booster is not None and method == "path" else None
    if table is not None:
        values, base = path_contributions(table, matrix)
        return Contributions(values, base)
    shap = _shap_table(booster) if booster is not None else None
    if shap is not None:
        values, base = shap_contributions(shap, matrix)
        return Contributions(values, base)
    if booster is not None:
        # a request's few rows: one thread, as for scoring (inferloop.model.positive_scores)
        threads = {"num_threads": 1} if len(matrix) <= SMALL_BATCH_ROWS else {}
        out = np.asarray(booster.predict(matrix, pred_contrib=True, **threads), dtype=np.float64)
        return Contributions(out[:, :-1], out[:, -1])
    layers = _relu_layers(estimator)
    if layers is not None:
        mean = np.asarray(estimator.mean_, dtype=np.float64)
        return _deeplift(layers, (matrix - mean) / np.asarray(estimator.scale_, np.float64))
    linear = _linear_parts(estimator)
    if linear is None:
        return None
    scaler, clf = linear
    z = (matrix - np.asarray(scaler.mean_)) / np.asarray(scaler.scale_)
    values = z * np.asarray(clf.coef_, dtype=np.float64)[0]
    return Contributions(values, np.full(len(matrix), float(np.asarray(clf.intercept_)[0])))


def prepare_explanations(estimator: Any) -> None:
    """Build what explaining ``estimator`` needs now (LightGBM: the TreeSHAP table and its
    compiled kernel, a few tenths of a second), so that the first explained request does not
    wait for it. A no-op for other estimators."""
    booster = getattr(estimator, "booster_", None)
    if booster is not None:
        _shap_table(booster)


def _shap_table(booster: Any) -> ShapTable | None:
    """The booster's :class:`ShapTable` with its kernel compiled, built once; None when the
    kernel does not cover the model or cannot be compiled here (then ``pred_contrib``)."""
    if booster not in _SHAP_TABLES:
        try:
            table = shap_table(booster)
            if table is not None:  # compile now, and check the kernel runs on this machine
                shap_contributions(table, np.zeros((1, table.n_features)))
        except Exception as error:  # any failure here falls back to LightGBM's own
            _log.warning("TreeSHAP kernel unavailable (%s); using pred_contrib", error)
            table = None
        _SHAP_TABLES[booster] = table
    return _SHAP_TABLES[booster]


def _path_table(booster: Any) -> PathTable | None:
    """The booster's :class:`PathTable`, built once (None: a tree the walk cannot follow)."""
    if booster not in _TABLES:
        _TABLES[booster] = path_table(booster)
    return _TABLES[booster]


def reason_columns(
    estimator: Any,
    features: np.ndarray,
    feature_names: list[str],
    decisions: np.ndarray,
    method: str = "treeshap",
) -> dict[str, np.ndarray]:
    """The :data:`REASON_COLUMNS` of each row: filled for alerts the estimator can explain.

    Rows that did not alert, rows without features (NaN: a retried transaction whose stored
    score was returned) and estimators without contributions get None / NaN.
    """
    n = len(decisions)
    names = np.full((n, REASON_COUNT), None, dtype=object)
    values = np.full((n, REASON_COUNT), np.nan)
    features = np.asarray(features, dtype=np.float64)
    rows = np.flatnonzero(np.asarray(decisions) == 1)
    if rows.size and features.ndim == 2:
        rows = rows[~np.isnan(features[rows]).all(axis=1)]
    contrib = feature_contributions(estimator, features[rows], method) if rows.size else None
    if contrib is not None:
        k = min(REASON_COUNT, contrib.values.shape[1])
        order = np.argsort(-contrib.values, axis=1, kind="stable")[:, :k]
        names[rows, :k] = np.asarray(feature_names, dtype=object)[order]
        values[rows, :k] = np.take_along_axis(contrib.values, order, axis=1)
    out: dict[str, np.ndarray] = {}
    for i in range(REASON_COUNT):
        out[f"reason_{i + 1}"] = names[:, i]
        out[f"reason_{i + 1}_contribution"] = values[:, i]
    return out


def reason_counts(frame: Any, top: int = 10) -> list[dict[str, Any]]:
    """The features most often among the alerts' reasons: ``feature``, ``alerts``, ``share``.

    ``frame`` holds :data:`REASON_COLUMNS` (batch or stream output, a scored window); ``share``
    is the fraction of explained alerts that name the feature in one of their reasons.
    """
    columns = [f"reason_{i}" for i in range(1, REASON_COUNT + 1)]
    if not set(columns) <= set(frame.columns):
        return []
    named = frame[columns]
    explained = int(named.notna().any(axis=1).sum())
    if explained == 0:
        return []
    counts = named.stack().value_counts().head(top)
    return [
        {"feature": str(f), "alerts": int(c), "share": float(c) / explained}
        for f, c in counts.items()
    ]
