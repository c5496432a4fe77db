"""Train the candidate fraud models on the training window, early-stopped on validation.

Three candidates share one interface (:class:`TrainedCandidate`): a LightGBM gradient-boosted
tree model, a standardized logistic regression baseline and a small PyTorch MLP
(:class:`inferloop.training.nn.TorchMLPClassifier`). All take the numeric feature columns of the
processed data and return fraud probabilities from ``predict_proba(features)[:, 1]``. Two
opt-in bias-mitigated candidates, ``lightgbm_fair`` and ``logistic_fair``, wrap the LightGBM and
logistic models in fairlearn's reductions (:mod:`inferloop.training.mitigation`); they need the
sensitive attribute to train, never to predict. The opt-in post-processed ``lightgbm_post`` is
the LightGBM model with one threshold per group of the attribute
(:mod:`inferloop.evaluation.group_thresholds`, fitted on the validation window once the
operating threshold is chosen); it needs the attribute AT DECISION TIME.

Time awareness: the validation window is later than the training window (with a label-delay
gap, see :mod:`inferloop.data.split`), so early stopping and the optional random search over LightGBM
hyperparameters select on data from the "future" of the training rows, as in production.

Class imbalance (``train.imbalance``):

* ``none`` — plain likelihood; scores are probabilities on the training fraud rate.
* ``class_weight`` — positives weighted by ``n_genuine / n_fraud`` (LightGBM
  ``scale_pos_weight``, logistic ``class_weight="balanced"``, MLP ``pos_weight``). Scores
  are then *not calibrated* probabilities (they overstate fraud); average precision and ROC-AUC
  are rank metrics and unaffected by that, but thresholds must be chosen on these scores.
* ``downsample`` — keep every fraud and ``downsample_ratio`` random genuine rows per fraud
  (also uncalibrated: the model sees a higher fraud rate than production).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, NamedTuple, Protocol

import lightgbm as lgb
import numpy as np
import pandas as pd
from numpy.typing import NDArray
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from tqdm.auto import tqdm

from inferloop.core import schema as s
from inferloop.evaluation.group_thresholds import PostprocessParams
from inferloop.training.mitigation import MitigationParams, ReductionsClassifier
from inferloop.training.nn import TorchMLPClassifier

if TYPE_CHECKING:
    pass

__all__ = [
    "CANDIDATES",
    "DEFAULT_CANDIDATES",
    "IMBALANCE_MODES",
    "MITIGATED",
    "POSTPROCESSED",
    "LightGBMParams",
    "LogisticParams",
    "MLPParams",
    "ProbabilisticClassifier",
    "SearchParams",
    "SearchResult",
    "TrainParams",
    "TrainedCandidate",
    "downsample_genuine",
    "fraud_scores",
    "sample_lightgbm_params",
    "search_lightgbm",
    "train_candidate",
    "train_candidates",
]


CANDIDATES: Final = (
    "lightgbm",
    "logistic",
    "mlp",
    "lightgbm_fair",
    "logistic_fair",
    "lightgbm_post",
)
#: What ``train.candidates`` defaults to: the mitigated and post-processed ones are opt-in.
DEFAULT_CANDIDATES: Final = ("lightgbm", "logistic", "mlp")
#: Candidates trained with fairlearn's reductions: they need the sensitive attribute to train.
MITIGATED: Final = ("lightgbm_fair", "logistic_fair")
#: Candidates with per-group thresholds: they need the sensitive attribute to DECIDE.
POSTPROCESSED: Final = ("lightgbm_post",)
_SENSITIVE: Final = "__sensitive__"
IMBALANCE_MODES: Final = ("none", "class_weight", "downsample")


# --------------------------------------------------------------------------------------------
# params
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LightGBMParams:
    """``train.lightgbm``: hyperparameters of :class:`lightgbm.LGBMClassifier`."""

    n_estimators: int = 600
    learning_rate: float = 0.05
    num_leaves: int = 31
    min_child_samples: int = 50
    subsample: float = 0.8
    subsample_freq: int = 1
    colsample_bytree: float = 0.8
    reg_lambda: float = 1.0
    early_stopping_rounds: int = 50
    n_jobs: int = 1


@dataclass(frozen=True)
class LogisticParams:
    """``train.logistic``: the standardized logistic-regression baseline."""

    C: float = 1.0
    max_iter: int = 2000


@dataclass(frozen=True)
class MLPParams:
    """``train.mlp``: arguments of :class:`inferloop.training.nn.TorchMLPClassifier`."""

    hidden: tuple[int, ...] = (64, 32)
    dropout: float = 0.1
    epochs: int = 30
    batch_size: int = 1024
    lr: float = 2e-3
    weight_decay: float = 1e-4
    patience: int = 4
    threads: int = 1


def _default_space() -> dict[str, tuple[float, ...]]:
    return {
        "learning_rate": (0.02, 0.05, 0.1),
        "num_leaves": (15, 31, 63),
        "min_child_samples": (20, 50, 100, 200),
        "colsample_bytree": (0.5, 0.7, 0.9),
        "subsample": (0.6, 0.8, 1.0),
        "reg_lambda": (0.0, 1.0, 10.0),
    }


@dataclass(frozen=True)
class SearchParams:
    """``train.search``: random search over LightGBM hyperparameters.

    ``space`` maps a :class:`LightGBMParams` field to the values to draw from. The first trial
    is always the configured ``train.lightgbm`` parameters, so the search never selects a
    model that is worse on validation than the default.
    """

    enabled: bool = False
    trials: int = 10
    seed: int = 0
    space: dict[str, tuple[float, ...]] = field(default_factory=_default_space)


@dataclass(frozen=True)
class TrainParams:
    """The ``train`` section of params.yaml."""

    seed: int = 42
    candidates: tuple[str, ...] = DEFAULT_CANDIDATES
    imbalance: str = "none"
    downsample_ratio: float = 20.0
    lightgbm: LightGBMParams = field(default_factory=LightGBMParams)
    logistic: LogisticParams = field(default_factory=LogisticParams)
    mlp: MLPParams = field(default_factory=MLPParams)
    search: SearchParams = field(default_factory=SearchParams)
    mitigation: MitigationParams = field(default_factory=MitigationParams)
    postprocess: PostprocessParams = field(default_factory=PostprocessParams)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.candidates) - set(CANDIDATES))
        if unknown:
            raise ValueError(f"train.candidates: unknown {unknown}; choose from {CANDIDATES}")
        if self.imbalance not in IMBALANCE_MODES:
            raise ValueError(f"train.imbalance must be one of {IMBALANCE_MODES}")
        if self.downsample_ratio <= 0:
            raise ValueError("train.downsample_ratio must be positive")
        bad = sorted(set(self.search.space) - {f.name for f in dataclasses.fields(LightGBMParams)})
        if bad:
            raise ValueError(f"train.search.space: {bad} are not train.lightgbm keys")


# --------------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------------


class ProbabilisticClassifier(Protocol):
    """Anything with scikit-learn's ``predict_proba``."""

    def predict_proba(self, X: Any) -> Any: ...


@dataclass
class TrainedCandidate:
    """One trained model and what to log about it.

    Attributes
    ----------
    name:
        Candidate name (``lightgbm``, ``logistic`` or ``mlp``).
    estimator:
        Fitted model; ``estimator.predict_proba(features_df)[:, 1]`` is the fraud score.
    params:
        Flat ``{name: scalar}`` parameters, ready for ``mlflow.log_params``.
    train_seconds:
        Wall-clock fitting time (including early stopping, excluding any search).
    best_iteration:
        Boosting rounds (LightGBM) or epoch (MLP) that early stopping kept; ``None`` for
        the logistic regression.
    validation_scores:
        Fraud scores of the validation rows, in their order.
    search_trials:
        The LightGBM random-search trials when ``train.search.enabled``, else ``None``.
    """

    name: str
    estimator: ProbabilisticClassifier
    params: dict[str, Any]
    train_seconds: float
    best_iteration: int | None
    validation_scores: NDArray[np.float64]
    search_trials: pd.DataFrame | None = None


class SearchResult(NamedTuple):
    """Best LightGBM parameters and one row per trial (unpacks as ``best, trials``)."""

    best: LightGBMParams
    trials: pd.DataFrame


# --------------------------------------------------------------------------------------------
# data preparation
# --------------------------------------------------------------------------------------------


def downsample_genuine(
    X: pd.DataFrame, y: pd.Series | NDArray[Any], ratio: float, seed: int
) -> tuple[pd.DataFrame, NDArray[np.int64]]:
    """Keep every fraud and ``ratio`` random genuine rows per fraud, in the original order.

    Parameters
    ----------
    X, y:
        Training features and 0/1 labels.
    ratio:
        Genuine rows kept per fraud; all genuine rows are kept if there are fewer.
    seed:
        Seed of the row sample.

    Returns
    -------
    tuple of (DataFrame, ndarray)
        The kept rows of ``X`` (index reset) and their labels.
    """
    labels = np.asarray(y).astype(np.int64)
    genuine = np.flatnonzero(labels == 0)
    n_keep = min(len(genuine), round(ratio * int(labels.sum())))
    kept = np.random.default_rng(seed).choice(genuine, size=n_keep, replace=False)
    rows = np.sort(np.concatenate([np.flatnonzero(labels == 1), kept]))
    return X.iloc[rows].reset_index(drop=True), labels[rows]


def _training_rows(
    X: pd.DataFrame, y: pd.Series | NDArray[Any], params: TrainParams
) -> tuple[pd.DataFrame, NDArray[np.int64]]:
    """The rows a candidate is fitted on under ``params.imbalance``."""
    if params.imbalance == "downsample":
        return downsample_genuine(X, y, params.downsample_ratio, params.seed)
    return X, np.asarray(y).astype(np.int64)


def _check_both_classes(y: NDArray[np.int64], what: str) -> None:
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == len(y):
        raise ValueError(f"{what} rows must include both fraud and genuine transactions")


def _positive_weight(y: NDArray[np.int64]) -> float:
    """``n_genuine / n_fraud``: the positive-class weight that balances the classes."""
    return (len(y) - int(y.sum())) / int(y.sum())


def _flat(prefix: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """``{prefix.key: value}`` with sequences joined by commas (MLflow params are scalars)."""
    return {
        f"{prefix}.{key}": ",".join(map(str, v)) if isinstance(v, tuple | list) else v
        for key, v in values.items()
    }


# --------------------------------------------------------------------------------------------
# the three candidates
# --------------------------------------------------------------------------------------------

_Fitted = tuple[ProbabilisticClassifier, int | None, dict[str, Any]]


def _lgbm(settings: dict[str, Any], params: TrainParams, **extra: Any) -> lgb.LGBMClassifier:
    """A deterministic binary LightGBM classifier from ``train.lightgbm`` settings."""
    return lgb.LGBMClassifier(
        **settings,
        **extra,
        objective="binary",
        random_state=params.seed,
        deterministic=True,
        force_row_wise=True,
        verbose=-1,
    )


def _fit_lightgbm(
    X: pd.DataFrame,
    y: NDArray[np.int64],
    X_val: pd.DataFrame,
    y_val: NDArray[np.int64],
    params: TrainParams,
    lgb_params: LightGBMParams | None = None,
) -> _Fitted:
    p = lgb_params or params.lightgbm
    settings = dataclasses.asdict(p)
    stopping = settings.pop("early_stopping_rounds")
    spw = _positive_weight(y) if params.imbalance == "class_weight" else 1.0
    model = _lgbm(settings, params, scale_pos_weight=spw, metric="average_precision")
    # Only AP is computed and watched: with the default logloss also watched, class-weighted
    # runs stopped at iteration 1 (weighted logloss on validation worsens from the start).
    model.fit(
        X,
        y,
        eval_X=X_val,
        eval_y=y_val,
        eval_metric="average_precision",
        callbacks=[lgb.early_stopping(stopping, first_metric_only=True, verbose=False)],
    )
    flat = {**_flat("lightgbm", dataclasses.asdict(p)), "lightgbm.scale_pos_weight": spw}
    return model, int(model.best_iteration_ or p.n_estimators), flat


def _fit_logistic(
    X: pd.DataFrame,
    y: NDArray[np.int64],
    X_val: pd.DataFrame,
    y_val: NDArray[np.int64],
    params: TrainParams,
) -> _Fitted:
    weight = "balanced" if params.imbalance == "class_weight" else None
    model = Pipeline(
        [
            ("scale", StandardScaler()),
            (
                "model",
                LogisticRegression(
                    C=params.logistic.C,
                    max_iter=params.logistic.max_iter,
                    class_weight=weight,
                    random_state=params.seed,
                ),
            ),
        ]
    )
    model.fit(X, y)
    flat = {
        **_flat("logistic", dataclasses.asdict(params.logistic)),
        "logistic.class_weight": str(weight),
    }
    return model, None, flat


def _fit_mlp(
    X: pd.DataFrame,
    y: NDArray[np.int64],
    X_val: pd.DataFrame,
    y_val: NDArray[np.int64],
    params: TrainParams,
) -> _Fitted:
    settings = dataclasses.asdict(params.mlp)
    weight = "balanced" if params.imbalance == "class_weight" else None
    model = TorchMLPClassifier(**settings, class_weight=weight, seed=params.seed)
    model.fit(X, y, eval_set=(X_val, y_val))
    flat = {**_flat("mlp", settings), "mlp.pos_weight": model.pos_weight_}
    return model, model.best_epoch_, flat


def _fit_reduction(
    base: Any, scaler: Any, X: pd.DataFrame, y: NDArray[np.int64], params: TrainParams, name: str
) -> _Fitted:
    sensitive = X[_SENSITIVE].astype(str).to_numpy()
    m = params.mitigation
    model = ReductionsClassifier(base, m, scaler).fit(
        X.drop(columns=[_SENSITIVE]), y, sensitive_features=sensitive
    )
    flat = {
        **_flat(name, dataclasses.asdict(m)),
        f"{name}.rounds": model.n_rounds_,
        f"{name}.models_kept": len(model.estimators_),
    }
    return model, None, flat


def _fit_lightgbm_fair(
    X: pd.DataFrame,
    y: NDArray[np.int64],
    X_val: pd.DataFrame,
    y_val: NDArray[np.int64],
    params: TrainParams,
) -> _Fitted:
    settings = dataclasses.asdict(params.lightgbm)
    settings.pop("early_stopping_rounds")
    settings["n_estimators"] = params.mitigation.n_estimators  # no early stopping in the game
    base = _lgbm(settings, params)
    return _fit_reduction(base, None, X, y, params, "lightgbm_fair")


def _fit_logistic_fair(
    X: pd.DataFrame,
    y: NDArray[np.int64],
    X_val: pd.DataFrame,
    y_val: NDArray[np.int64],
    params: TrainParams,
) -> _Fitted:
    base = LogisticRegression(
        C=params.logistic.C, max_iter=params.logistic.max_iter, random_state=params.seed
    )
    return _fit_reduction(base, StandardScaler(), X, y, params, "logistic_fair")


_FITTERS: Final[dict[str, Callable[..., _Fitted]]] = {
    "lightgbm": _fit_lightgbm,
    "logistic": _fit_logistic,
    "mlp": _fit_mlp,
    "lightgbm_fair": _fit_lightgbm_fair,
    "logistic_fair": _fit_logistic_fair,
    # the base model; its group thresholds are fitted once the operating threshold is chosen
    "lightgbm_post": _fit_lightgbm,
}


def fraud_scores(estimator: ProbabilisticClassifier, X: pd.DataFrame) -> NDArray[np.float64]:
    """Fraud probability (column 1 of ``predict_proba``) for each row of ``X``."""
    return np.asarray(estimator.predict_proba(X), dtype=np.float64)[:, 1]


def train_candidate(
    name: str,
    X_train: pd.DataFrame,
    y_train: pd.Series | NDArray[Any],
    X_val: pd.DataFrame,
    y_val: pd.Series | NDArray[Any],
    params: TrainParams,
    *,
    lightgbm_params: LightGBMParams | None = None,
    sensitive: pd.Series | None = None,
) -> TrainedCandidate:
    """Fit one candidate on the training window, early-stopping on the validation window.

    Parameters
    ----------
    name:
        ``"lightgbm"``, ``"logistic"`` or ``"mlp"``.
    X_train, y_train:
        Training features (numeric columns only) and 0/1 labels. ``params.imbalance`` is
        applied here (``downsample`` drops genuine training rows).
    X_val, y_val:
        The later validation window, used for early stopping and for
        :attr:`TrainedCandidate.validation_scores`; never resampled.
    params:
        The ``train`` section.
    lightgbm_params:
        Overrides ``params.lightgbm`` (e.g. the result of :func:`search_lightgbm`).
    sensitive:
        The sensitive attribute of each training row (aligned by position): required by the
        mitigated candidates (:data:`MITIGATED`), which need it to train, never to predict.

    Returns
    -------
    TrainedCandidate
    """
    if name not in _FITTERS:
        raise ValueError(f"unknown candidate {name!r}; choose from {CANDIDATES}")
    if name in MITIGATED:
        if sensitive is None:
            raise ValueError(
                f"candidate {name} needs the sensitive attribute "
                f"{params.mitigation.attribute!r} in the training rows"
            )
        # carried as a column so that downsampling keeps it aligned; dropped before fitting
        X_train = X_train.assign(**{_SENSITIVE: np.asarray(sensitive)})
    X, y = _training_rows(X_train, y_train, params)
    yv = np.asarray(y_val).astype(np.int64)
    _check_both_classes(y, "training")
    _check_both_classes(yv, "validation")
    extra = {"lgb_params": lightgbm_params} if name in ("lightgbm", *POSTPROCESSED) else {}
    start = time.perf_counter()
    estimator, best_iteration, flat = _FITTERS[name](X, y, X_val, yv, params, **extra)
    seconds = time.perf_counter() - start
    common = {
        "candidate": name,
        "seed": params.seed,
        "imbalance": params.imbalance,
        "train_rows": len(X),
        "train_frauds": int(y.sum()),
        "n_features": X.shape[1] - int(_SENSITIVE in X.columns),
    }
    if params.imbalance == "downsample":
        common["downsample_ratio"] = params.downsample_ratio
    scores = fraud_scores(estimator, X_val)
    return TrainedCandidate(name, estimator, {**common, **flat}, seconds, best_iteration, scores)


def _split_xy(
    df: pd.DataFrame, feature_cols: Sequence[str], what: str
) -> tuple[pd.DataFrame, NDArray[np.int64]]:
    missing = [c for c in (*feature_cols, s.TARGET) if c not in df.columns]
    if missing:
        raise ValueError(f"{what} frame lacks columns {missing}")
    if df.empty:
        raise ValueError(f"{what} frame is empty")
    return df[list(feature_cols)], df[s.TARGET].to_numpy().astype(np.int64)


def train_candidates(
    train_df: pd.DataFrame,
    validation_df: pd.DataFrame,
    feature_cols: Sequence[str],
    params: TrainParams,
    progress: bool = True,
) -> dict[str, TrainedCandidate]:
    """Train every candidate in ``params.candidates`` (running the LightGBM search if enabled).

    Parameters
    ----------
    train_df, validation_df:
        Processed frames of the two windows: the feature columns and ``is_fraud``.
    feature_cols:
        The model's input columns, in order.
    params:
        The ``train`` section.
    progress:
        Show a progress bar over candidates (and search trials).

    Returns
    -------
    dict of str to TrainedCandidate
        In the order of ``params.candidates``.
    """
    X, y = _split_xy(train_df, feature_cols, "training")
    X_val, y_val = _split_xy(validation_df, feature_cols, "validation")
    search = None
    if params.search.enabled and "lightgbm" in params.candidates:
        search = search_lightgbm(X, y, X_val, y_val, params, progress=progress)
    attribute = params.mitigation.attribute
    sensitive = train_df[attribute] if attribute in train_df.columns else None
    out: dict[str, TrainedCandidate] = {}
    for name in tqdm(params.candidates, desc="train", disable=not progress):
        lgb_like = name in ("lightgbm", *POSTPROCESSED)
        best = search.best if search is not None and lgb_like else None
        out[name] = train_candidate(
            name, X, y, X_val, y_val, params, lightgbm_params=best, sensitive=sensitive
        )
        if best is not None and search is not None:
            out[name].search_trials = search.trials
    return out


# --------------------------------------------------------------------------------------------
# random search
# --------------------------------------------------------------------------------------------


def sample_lightgbm_params(base: LightGBMParams, search: SearchParams) -> list[LightGBMParams]:
    """``search.trials`` parameter sets: ``base`` first, then distinct random grid points.

    Points are drawn without replacement from the grid ``search.space`` spans, so no trial
    repeats another (fewer trials if the grid is smaller than the budget).
    """
    keys = sorted(search.space)
    grid = [tuple(search.space[k]) for k in keys]
    size = int(np.prod([len(values) for values in grid]))
    n = min(max(search.trials - 1, 0), size)
    picks = np.random.default_rng(search.seed).choice(size, size=n, replace=False)
    out = [base]
    for flat_index in picks:
        point = np.unravel_index(int(flat_index), [len(values) for values in grid])
        changes = {
            k: type(getattr(base, k))(values[i])
            for k, values, i in zip(keys, grid, point, strict=True)
        }
        out.append(dataclasses.replace(base, **changes))
    return out[: max(search.trials, 1)]


def search_lightgbm(
    X_train: pd.DataFrame,
    y_train: pd.Series | NDArray[Any],
    X_val: pd.DataFrame,
    y_val: pd.Series | NDArray[Any],
    params: TrainParams,
    progress: bool = True,
) -> SearchResult:
    """Random search over LightGBM hyperparameters, scored on the validation window.

    Each trial trains on the training window (with ``params.imbalance`` applied) and is
    early-stopped and scored by average precision on the *later* validation window, so the
    selection respects time. Reuse the test window only for the final, untouched estimate.

    Parameters
    ----------
    X_train, y_train, X_val, y_val:
        Features and 0/1 labels of the two windows.
    params:
        The ``train`` section; ``params.search`` sets the budget, seed and space and
        ``params.lightgbm`` is the first trial.
    progress:
        Show a progress bar over trials.

    Returns
    -------
    SearchResult
        ``best`` parameters and ``trials`` (one row per trial: its parameters,
        ``val_average_precision``, ``val_roc_auc``, ``best_iteration``, ``seconds``).
    """
    candidates = sample_lightgbm_params(params.lightgbm, params.search)
    rows = []
    for trial, lgb_params in enumerate(tqdm(candidates, desc="search", disable=not progress)):
        fitted = train_candidate(
            "lightgbm", X_train, y_train, X_val, y_val, params, lightgbm_params=lgb_params
        )
        rows.append(_trial_row(trial, lgb_params, fitted, np.asarray(y_val)))
    trials = pd.DataFrame(rows)
    best = int(trials["val_average_precision"].to_numpy().argmax())
    return SearchResult(candidates[best], trials)


def _trial_row(
    trial: int, lgb_params: LightGBMParams, fitted: TrainedCandidate, y_val: NDArray[Any]
) -> dict[str, Any]:
    return {
        "trial": trial,
        **dataclasses.asdict(lgb_params),
        "val_average_precision": float(average_precision_score(y_val, fitted.validation_scores)),
        "val_roc_auc": float(roc_auc_score(y_val, fitted.validation_scores)),
        "best_iteration": fitted.best_iteration,
        "seconds": fitted.train_seconds,
    }
