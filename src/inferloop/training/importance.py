"""Model-intrinsic feature importance of every candidate kind, and its plot."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from numpy.typing import NDArray
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from inferloop.training.candidates import TrainedCandidate
from inferloop.training.mitigation import ReductionsClassifier
from inferloop.training.nn import TorchMLPClassifier

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["feature_importance", "plot_feature_importance"]


def feature_importance(candidate: TrainedCandidate, feature_cols: Sequence[str]) -> pd.DataFrame:
    """Model-intrinsic feature importance (no permutation, so it costs nothing).

    * LightGBM: total split gain of each feature.
    * Logistic regression: ``|coefficient|`` on standardized features (change in log-odds per
      standard deviation).
    * MLP: L2 norm of each feature's first-layer weights on standardized inputs — a cheap proxy
      for how strongly the network can use the feature, blind to later layers and
      interactions; use permutation importance when it matters.

    Parameters
    ----------
    candidate:
        A trained candidate.
    feature_cols:
        The model's input columns, in training order.

    Returns
    -------
    DataFrame
        Columns ``feature``, ``importance``, ``share`` (of the total), sorted by importance,
        descending; ``attrs["method"]`` names the measure.
    """
    values, method = _raw_importance(candidate.estimator)
    if len(values) != len(feature_cols):
        raise ValueError(f"model has {len(values)} inputs but {len(feature_cols)} names were given")
    total = float(values.sum())
    frame = pd.DataFrame(
        {
            "feature": list(feature_cols),
            "importance": values,
            "share": values / total if total > 0 else np.zeros_like(values),
        }
    )
    frame = frame.sort_values("importance", ascending=False, kind="stable").reset_index(drop=True)
    frame.attrs["method"] = method
    return frame


def _raw_importance(estimator: Any) -> tuple[NDArray[np.float64], str]:
    if isinstance(estimator, lgb.LGBMClassifier):
        gain = estimator.booster_.feature_importance(importance_type="gain")
        return np.asarray(gain, dtype=np.float64), "split gain"
    if isinstance(estimator, Pipeline) and isinstance(estimator[-1], LogisticRegression):
        return np.abs(estimator[-1].coef_.ravel()).astype(
            np.float64
        ), "|coefficient| (standardized)"
    if isinstance(estimator, TorchMLPClassifier):
        first, _ = estimator.export_layers(fold_standardizer=False)[0]
        return np.linalg.norm(first, axis=0).astype(np.float64), "first-layer weight norm"
    if isinstance(estimator, ReductionsClassifier):  # the mixture's weighted importance
        parts = [
            (w, _raw_importance(e))
            for w, e in zip(estimator.weights_, estimator.estimators_, strict=True)
        ]
        total = sum(w * values for w, (values, _) in parts)
        return np.asarray(total, dtype=np.float64), f"mixture-weighted {parts[0][1][1]}"
    if isinstance(estimator, LogisticRegression):  # a base model of a reduction (scaled inputs)
        return np.abs(estimator.coef_.ravel()).astype(np.float64), "|coefficient| (standardized)"
    raise TypeError(f"no feature importance for {type(estimator).__name__}")


def plot_feature_importance(importance: pd.DataFrame, top: int = 20) -> Figure:
    """Horizontal bar chart of the ``top`` most important features (largest at the top).

    Parameters
    ----------
    importance:
        Output of :func:`feature_importance`.
    top:
        Number of features shown.

    Returns
    -------
    matplotlib.figure.Figure
        Built without pyplot, so no global figure state is touched.
    """
    from matplotlib.figure import Figure

    shown = importance.head(top).iloc[::-1]
    fig = Figure(figsize=(7, 0.3 * len(shown) + 1.2), layout="constrained")
    ax = fig.add_subplot()
    ax.barh(shown["feature"], shown["share"], color="#4c72b0")
    ax.set_xlabel(f"share of total importance ({importance.attrs.get('method', 'importance')})")
    ax.set_title(f"Top {len(shown)} features")
    return fig
