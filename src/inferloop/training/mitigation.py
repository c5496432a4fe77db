"""Bias-mitigated candidates: fairlearn's reductions around the LightGBM and logistic models.

:class:`ReductionsClassifier` trains fairlearn's :class:`~fairlearn.reductions.ExponentiatedGradient`
with an ``EqualizedOdds`` or ``TruePositiveRateParity`` constraint on the sensitive attribute
of the training rows. The attribute is needed to TRAIN only: the reduction reweights and
relabels the training rows and fits one base model per round, and the result is a weighted
mixture of those models over the ordinary features. Nothing about the attribute is needed at
prediction time, so the mitigated model serves, scores in batch and runs on the edge like the
others.

One deliberate departure from fairlearn's own ``predict``: fairlearn's mixture is randomized
(it draws one base model's hard 0/1 decision per row), which gives a handful of distinct
scores, an unusable precision-recall curve and decisions that change between two calls. Here
the score is the mixture's weighted average of the base models' fraud PROBABILITIES: the same
mixture, deterministic, with a full ranking. The constraint then holds only approximately at
the operating threshold; the fairness gates measure it on the test window like any other
candidate's (so a mitigated model is never trusted on its construction).

Costs: one base fit per round (``max_iter`` at most), and a score that sums the kept base
models (``weights_`` above ``min_weight``). Both are reported in the candidate's params.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from sklearn.base import BaseEstimator, ClassifierMixin, clone

__all__ = [
    "CONSTRAINTS",
    "MitigationParams",
    "ReductionsClassifier",
]


CONSTRAINTS: Final = ("equalized_odds", "true_positive_rate_parity")
SCORES: Final = ("vote", "mean")
# small enough that the mean probability never lifts a row over the next vote level
_TIE_BREAK: Final = 1e-3


@dataclass(frozen=True)
class MitigationParams:
    """``train.mitigation``: the reductions behind the ``*_fair`` candidates.

    Attributes
    ----------
    attribute : str
        The sensitive attribute the constraint holds across (a column of the training rows).
    constraint : {"equalized_odds", "true_positive_rate_parity"}
        fairlearn's ``EqualizedOdds`` or ``TruePositiveRateParity``.
    difference_bound : float
        The largest between-group difference the constraint allows on the training rows.
    max_iter : int
        Rounds of the exponentiated-gradient game (one base fit each).
    eps : float
        fairlearn's allowed constraint violation of the mixture.
    n_estimators : int
        Trees of each LightGBM base model (no early stopping inside the reduction).
    min_weight : float
        Base models lighter than this in the mixture are dropped (they cost time, not AP).
    score : {"vote", "mean"}
        ``vote``: the expected decision of fairlearn's randomized mixture (the weight of the
        base models that alert), ties broken by the mixture's mean probability. The
        constraint is enforced on exactly these decisions. ``mean``: the weighted mean of the
        base models' probabilities, a full ranking that does not keep the constraint at the
        operating threshold (measured: the gap barely moves).
    """

    attribute: str = "age_band"
    constraint: str = "equalized_odds"
    difference_bound: float = 0.05
    max_iter: int = 5
    eps: float = 0.01
    n_estimators: int = 80
    min_weight: float = 0.01
    score: str = "vote"

    def __post_init__(self) -> None:
        if self.constraint not in CONSTRAINTS:
            raise ValueError(
                f"train.mitigation.constraint must be one of {CONSTRAINTS}, got {self.constraint!r}"
            )
        if self.score not in SCORES:
            raise ValueError(f"train.mitigation.score must be one of {SCORES}, got {self.score!r}")
        if self.max_iter < 1 or self.n_estimators < 1:
            raise ValueError("train.mitigation.max_iter and n_estimators must be at least 1")


def _constraint(params: MitigationParams) -> Any:
    from fairlearn.reductions import EqualizedOdds, TruePositiveRateParity

    kind = EqualizedOdds if params.constraint == "equalized_odds" else TruePositiveRateParity
    return kind(difference_bound=params.difference_bound)


class ReductionsClassifier(ClassifierMixin, BaseEstimator):
    """A fairlearn reduction served as one deterministic fraud score.

    Parameters
    ----------
    base : estimator
        A scikit-learn classifier whose ``fit`` takes ``sample_weight`` (LightGBM, logistic
        regression). Cloned for every round.
    params : MitigationParams
        Constraint and rounds.
    scaler : transformer, optional
        Applied to the features before the base models (the logistic baseline standardizes;
        fairlearn passes ``sample_weight`` to ``fit`` directly, which a Pipeline refuses).
    """

    def __init__(
        self, base: Any, params: MitigationParams | None = None, scaler: Any = None
    ) -> None:
        self.base = base
        self.params = params
        self.scaler = scaler

    def fit(
        self, X: pd.DataFrame, y: Sequence[int] | NDArray[Any], *, sensitive_features: Any
    ) -> ReductionsClassifier:
        """Run the reduction and keep the weighted base models."""
        from fairlearn.reductions import ExponentiatedGradient

        p = self.params or MitigationParams()
        features = self._prepare(X, fit=True)
        game = ExponentiatedGradient(
            clone(self.base), constraints=_constraint(p), eps=p.eps, max_iter=p.max_iter
        )
        game.fit(features, np.asarray(y), sensitive_features=np.asarray(sensitive_features))
        weights = np.asarray(game.weights_, dtype=np.float64)
        keep = np.flatnonzero(weights >= p.min_weight)
        if keep.size == 0:  # every weight tiny: keep the heaviest model
            keep = np.array([int(np.argmax(weights))])
        self.estimators_ = [game.predictors_.iloc[i] for i in keep]
        self.weights_ = weights[keep] / weights[keep].sum()
        self.n_rounds_ = len(weights)
        self.classes_ = np.array([0, 1])
        self.n_features_in_ = features.shape[1]
        return self

    def _prepare(self, X: pd.DataFrame, *, fit: bool = False) -> Any:
        if self.scaler is None:
            return X
        if fit:
            self.scaler_ = clone(self.scaler).fit(X)
        return self.scaler_.transform(X)

    def predict_proba(self, X: pd.DataFrame) -> NDArray[np.float64]:
        """The mixture's weighted average of its base models' fraud probabilities."""
        features = self._prepare(X)
        mean = np.zeros(len(X), dtype=np.float64)
        vote = np.zeros(len(X), dtype=np.float64)
        for weight, estimator in zip(self.weights_, self.estimators_, strict=True):
            proba = np.asarray(estimator.predict_proba(features), dtype=np.float64)[:, 1]
            mean += weight * proba
            vote += weight * (proba >= 0.5)
        if (self.params or MitigationParams()).score == "mean":
            score = mean
        else:  # the mixture's alert probability; the mean orders rows within one level
            score = (vote + _TIE_BREAK * mean) / (1.0 + _TIE_BREAK)
        return np.column_stack([1.0 - score, score])

    def predict(self, X: pd.DataFrame) -> NDArray[np.int64]:
        """Decisions at 0.5 (the pipeline applies its own operating threshold)."""
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(np.int64)
