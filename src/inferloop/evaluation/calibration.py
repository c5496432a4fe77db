"""Score calibration: a monotone map from a model's score to the probability of fraud.

A model's score ranks well but need not be a probability: LightGBM on a 1 % fraud rate, a
post-processed score moved per group, an MLP trained with class weights. Monitoring needs
probabilities to estimate precision and AP before the labels arrive
(:mod:`inferloop.monitoring.estimate`), so every registered model carries a calibration
fitted on its validation window.

Two kinds are tried: **isotonic** (a monotone step function, flexible, needs many frauds)
and **Platt** (a sigmoid of the score's log-odds, two parameters, robust with few frauds).
The better one on the validation window wins, judged out of fold (in-sample the isotonic fit
always wins) by what the calibration is for: how far the precision at the operating
threshold and the AP estimated on each held-out fold land from the fold's realized values.
A global score such as Brier is dominated by the mass of legitimate rows at the bottom and
can prefer a map that is wrong exactly where the alerts are. Without a threshold the Brier
score decides. The chosen kind is then refitted on the whole window.

The calibration never changes the served score or the decision: the model's threshold was
chosen on the raw score, and batch, stream and server must give the scores they gave before.
It is stored as knots (isotonic) or two coefficients (Platt), a few kilobytes of JSON that
fit a registry tag, so monitoring can read it without loading the model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "CALIBRATION_TAG",
    "CalibrationEffect",
    "ScoreCalibration",
    "calibration_effect",
    "expected_average_precision",
    "expected_calibration_error",
    "fit_calibration",
]

#: The registry tag (model version) and MLflow artifact name that hold the calibration.
CALIBRATION_TAG: Final = "calibration"
#: Isotonic knots kept: quantiles of the validation scores, denser in the upper tail where
#: alerts are; small enough for a registry tag (MLflow caps a tag value at 5,000 chars).
_BODY_KNOTS: Final = 24
_TAIL_KNOTS: Final = 96
_EPS: Final = 1e-6
_FOLDS: Final = 5
_ECE_BINS: Final = 15

Kind = Literal["isotonic", "platt", "identity"]


def _logit(scores: NDArray[np.float64]) -> NDArray[np.float64]:
    clipped = np.clip(scores, _EPS, 1.0 - _EPS)
    return np.log(clipped / (1.0 - clipped))


@dataclass(frozen=True)
class ScoreCalibration:
    """A fitted monotone map from score to probability.

    ``isotonic``: linear interpolation through ``knots`` (score, probability), clipped at
    both ends. ``platt``: ``sigmoid(a * logit(score) + b)``. ``identity``: the score is
    taken as a probability (too few frauds to fit anything).
    """

    kind: Kind
    knots: tuple[tuple[float, float], ...] = ()
    a: float = 1.0
    b: float = 0.0
    n_rows: int = 0
    n_frauds: int = 0

    def apply(self, scores: ArrayLike) -> NDArray[np.float64]:
        """Calibrated probabilities of ``scores``."""
        values = np.asarray(scores, dtype=np.float64)
        if self.kind == "isotonic":
            x, y = np.asarray(self.knots, dtype=np.float64).T
            return np.interp(values, x, y)
        if self.kind == "platt":
            return 1.0 / (1.0 + np.exp(-(self.a * _logit(values) + self.b)))
        return np.clip(values, 0.0, 1.0)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (6 significant digits: it must fit a registry tag)."""
        out: dict[str, Any] = {"kind": self.kind, "n_rows": self.n_rows, "n_frauds": self.n_frauds}
        if self.kind == "isotonic":
            out["knots"] = [[float(f"{x:.6g}"), float(f"{y:.6g}")] for x, y in self.knots]
        elif self.kind == "platt":
            out.update(a=self.a, b=self.b)
        return out

    def to_json(self) -> str:
        """Compact JSON (the registry tag's value)."""
        return json.dumps(self.as_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScoreCalibration:
        """The calibration of :meth:`as_dict`; ValueError on an unknown kind."""
        kind = data.get("kind")
        if kind not in ("isotonic", "platt", "identity"):
            raise ValueError(f"unknown calibration kind {kind!r}")
        knots = tuple((float(x), float(y)) for x, y in data.get("knots", ()))
        if kind == "isotonic" and len(knots) < 2:
            raise ValueError("an isotonic calibration needs at least two knots")
        return cls(
            kind,
            knots,
            float(data.get("a", 1.0)),
            float(data.get("b", 0.0)),
            int(data.get("n_rows", 0)),
            int(data.get("n_frauds", 0)),
        )

    @classmethod
    def from_json(cls, text: str) -> ScoreCalibration:
        """The calibration of :meth:`to_json`."""
        return cls.from_dict(json.loads(text))


def _knot_levels() -> NDArray[np.float64]:
    body = np.linspace(0.0, 0.9, _BODY_KNOTS, endpoint=False)
    tail = 1.0 - np.geomspace(0.1, 1e-5, _TAIL_KNOTS)
    return np.unique(np.concatenate([body, tail, [1.0]]))


def _fit_isotonic(y: NDArray[np.int64], s: NDArray[np.float64]) -> ScoreCalibration:
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(s, y)
    x = np.unique(np.quantile(s, _knot_levels()))
    p = iso.predict(x)
    # a knot inside a flat run changes nothing under linear interpolation: drop it
    flat = np.zeros(len(x), dtype=bool)
    flat[1:-1] = (p[1:-1] == p[:-2]) & (p[1:-1] == p[2:])
    knots = tuple(zip(x[~flat].tolist(), p[~flat].tolist(), strict=True))
    if len(knots) < 2:  # a constant score: no map to fit
        return ScoreCalibration("identity", n_rows=len(y), n_frauds=int(y.sum()))
    return ScoreCalibration("isotonic", knots, n_rows=len(y), n_frauds=int(y.sum()))


def _fit_platt(y: NDArray[np.int64], s: NDArray[np.float64]) -> ScoreCalibration:
    from sklearn.linear_model import LogisticRegression

    fit = LogisticRegression(C=1e6, max_iter=1000).fit(_logit(s).reshape(-1, 1), y)
    return ScoreCalibration(
        "platt",
        a=float(fit.coef_[0, 0]),
        b=float(fit.intercept_[0]),
        n_rows=len(y),
        n_frauds=int(y.sum()),
    )


_FITTERS = {"isotonic": _fit_isotonic, "platt": _fit_platt}


def _folds(y: NDArray[np.int64], seed: int) -> list[tuple[NDArray[np.intp], NDArray[np.intp]]]:
    from sklearn.model_selection import StratifiedKFold

    folds = StratifiedKFold(n_splits=_FOLDS, shuffle=True, random_state=seed)
    return list(folds.split(np.zeros((len(y), 1)), y))


def _out_of_fold(
    y: NDArray[np.int64],
    s: NDArray[np.float64],
    kind: str,
    folds: list[tuple[NDArray[np.intp], NDArray[np.intp]]],
) -> NDArray[np.float64]:
    """Each row calibrated by a map fitted on the other folds."""
    out = np.empty(len(y), dtype=np.float64)
    for fit_rows, held_out in folds:
        out[held_out] = _FITTERS[kind](y[fit_rows], s[fit_rows]).apply(s[held_out])
    return out


def expected_average_precision(probabilities: NDArray[np.float64]) -> float:
    """Expected AP of rows already in score order (highest first), labels ~ Bernoulli(p).

    The expected precision at rank ``k`` of a fraud there is ``(1 + S_{k-1}) / k`` with ``S``
    the running sum of ``p``; weighted by ``p_k``, summed, and divided by the expected frauds
    (a ratio of expectations).
    """
    total = float(probabilities.sum())
    if total <= 0:
        return float("nan")
    ranks = np.arange(1, len(probabilities) + 1, dtype=np.float64)
    before = np.concatenate([[0.0], np.cumsum(probabilities)[:-1]])
    return float(np.sum(probabilities * (1.0 + before) / ranks) / total)


def _estimation_error(
    y: NDArray[np.int64],
    s: NDArray[np.float64],
    p: NDArray[np.float64],
    threshold: float,
    folds: list[tuple[NDArray[np.intp], NDArray[np.intp]]],
) -> float:
    """Mean over held-out folds of |estimated - realized| precision at ``threshold`` + AP."""
    from sklearn.metrics import average_precision_score

    errors = []
    for _, rows in folds:
        yf, sf, pf = y[rows], s[rows], p[rows]
        alerts = sf >= threshold
        if alerts.any():
            errors.append(abs(float(pf[alerts].mean()) - float(yf[alerts].mean())))
        order = np.argsort(-sf, kind="stable")
        errors.append(abs(expected_average_precision(pf[order]) - average_precision_score(yf, sf)))
    return float(np.mean(errors))


def _brier(y: NDArray[np.int64], p: NDArray[np.float64]) -> float:
    return float(np.mean((p - y) ** 2))


def _log_loss(y: NDArray[np.int64], p: NDArray[np.float64]) -> float:
    q = np.clip(p, _EPS, 1.0 - _EPS)
    return float(-np.mean(y * np.log(q) + (1 - y) * np.log(1.0 - q)))


def expected_calibration_error(y_true: ArrayLike, probabilities: ArrayLike) -> float:
    """Mean |observed rate - mean probability| over equal-count bins, weighted by rows.

    Equal-count bins, because at a 1 % fraud rate equal-width bins put almost every row in
    the first one.
    """
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(probabilities, dtype=np.float64)
    if len(y) == 0:
        return float("nan")
    order = np.argsort(p, kind="stable")
    total = 0.0
    for rows in np.array_split(order, min(_ECE_BINS, len(y))):
        total += len(rows) * abs(float(y[rows].mean()) - float(p[rows].mean()))
    return total / len(y)


@dataclass(frozen=True)
class CalibrationEffect:
    """Brier score, log loss and ECE of the raw and the calibrated scores (out of fold)."""

    kind: str
    brier_raw: float
    brier: float
    log_loss_raw: float
    log_loss: float
    ece_raw: float
    ece: float
    candidates: dict[str, float]

    def as_dict(self, prefix: str = "") -> dict[str, float]:
        """Flat numbers for MLflow (``prefix`` prepended)."""
        numbers = {
            "brier_raw": self.brier_raw,
            "brier": self.brier,
            "log_loss_raw": self.log_loss_raw,
            "log_loss": self.log_loss,
            "ece_raw": self.ece_raw,
            "ece": self.ece,
            **{f"brier_{k}": v for k, v in self.candidates.items()},
        }
        return {f"{prefix}{k}": float(v) for k, v in numbers.items()}


def calibration_effect(
    y: NDArray[np.int64], s: NDArray[np.float64], kind: str, oof: dict[str, NDArray[np.float64]]
) -> CalibrationEffect:
    """The effect of calibrating, from the out-of-fold probabilities of each kind."""
    chosen = oof.get(kind, np.clip(s, 0.0, 1.0))
    return CalibrationEffect(
        kind,
        _brier(y, np.clip(s, 0.0, 1.0)),
        _brier(y, chosen),
        _log_loss(y, s),
        _log_loss(y, chosen),
        expected_calibration_error(y, s),
        expected_calibration_error(y, chosen),
        {k: _brier(y, p) for k, p in oof.items()},
    )


def fit_calibration(
    y_true: ArrayLike,
    scores: ArrayLike,
    *,
    threshold: float | None = None,
    seed: int = 0,
    min_frauds: int = 2 * _FOLDS,
) -> tuple[ScoreCalibration, CalibrationEffect]:
    """The better of isotonic and Platt on this window, refitted on all of it.

    Parameters
    ----------
    y_true, scores : array-like
        Labels (0/1) and model scores of the validation window.
    threshold : float, optional
        The operating threshold: the kind whose held-out estimates of precision there and of
        AP are closer to the realized ones wins. Without it, the lower Brier score.
    seed : int
        Seeds the folds.
    min_frauds : int
        With fewer frauds than this the calibration is ``identity`` (nothing to fit on).

    Returns
    -------
    (ScoreCalibration, CalibrationEffect)
        The map, and the Brier score, log loss and ECE before and after (out of fold).
    """
    y = np.asarray(y_true, dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64)
    if len(y) != len(s):
        raise ValueError(f"{len(y)} labels but {len(s)} scores")
    finite = np.isfinite(s)
    y, s = y[finite], s[finite]
    n_frauds = int(y.sum())
    if n_frauds < min_frauds or len(y) - n_frauds < min_frauds:
        identity = ScoreCalibration("identity", n_rows=len(y), n_frauds=n_frauds)
        return identity, calibration_effect(y, s, "identity", {})
    folds = _folds(y, seed)
    oof = {kind: _out_of_fold(y, s, kind, folds) for kind in _FITTERS}
    if threshold is None:
        kind = min(oof, key=lambda k: (_brier(y, oof[k]), k))
    else:
        kind = min(oof, key=lambda k: (_estimation_error(y, s, oof[k], threshold, folds), k))
    calibration = _FITTERS[kind](y, s)
    return calibration, calibration_effect(y, s, calibration.kind, oof)
