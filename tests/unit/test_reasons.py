"""Reason codes: additive contributions that reproduce the raw margin, top three per alert."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from inferloop.evaluation.reasons import (
    REASON_COLUMNS,
    explains,
    feature_contributions,
    reason_columns,
    reason_counts,
)
from inferloop.training.nn import TorchMLPClassifier

NAMES = ["amount", "count_1h", "night", "noise"]


def _data(n: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, len(NAMES)))
    logit = 2.0 * X[:, 0] + 1.2 * X[:, 1] + 0.5 * X[:, 2] - 3.0
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return X, y


@pytest.fixture(scope="module")
def models() -> dict[str, object]:
    X, y = _data()
    gbm = lgb.LGBMClassifier(n_estimators=60, num_leaves=15, verbose=-1, n_jobs=1, seed=0)
    logistic = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression())])
    mlp = TorchMLPClassifier(hidden=(16, 8), epochs=30, batch_size=128, dropout=0.0)
    return {"lightgbm": gbm.fit(X, y), "logistic": logistic.fit(X, y), "mlp": mlp.fit(X, y)}


#: torch computes the MLP's logit in float32; the contributions are float64 sums of it
MARGIN_ATOL = {"lightgbm": 1e-6, "logistic": 1e-6, "mlp": 1e-5}
PROBA_ATOL = {"lightgbm": 1e-9, "logistic": 1e-9, "mlp": 1e-6}


@pytest.mark.parametrize("name", ["lightgbm", "logistic", "mlp"])
def test_contributions_plus_base_reproduce_the_raw_margin(
    models: dict[str, object], name: str
) -> None:
    model = models[name]
    X, _ = _data(500, seed=1)
    contrib = feature_contributions(model, X)
    assert contrib is not None and contrib.values.shape == X.shape
    if name == "lightgbm":
        margin = model.booster_.predict(X, raw_score=True)  # type: ignore[attr-defined]
    else:
        margin = model.decision_function(X)  # type: ignore[attr-defined]
    np.testing.assert_allclose(contrib.margin, margin, rtol=0, atol=MARGIN_ATOL[name])
    # and the margin is the score the model gives
    proba = model.predict_proba(X)[:, 1]  # type: ignore[attr-defined]
    np.testing.assert_allclose(
        1 / (1 + np.exp(-contrib.margin)), proba, rtol=0, atol=PROBA_ATOL[name]
    )


def test_the_mlp_contributions_add_up_exactly_and_credit_what_moved_the_logit(
    models: dict[str, object],
) -> None:
    """DeepLIFT against the training mean: exact in float64, and zero for an unmoved feature."""
    mlp = models["mlp"]
    X, _ = _data(300, seed=3)
    X[:, 3] = mlp.mean_[3]  # type: ignore[attr-defined]  # "noise" at its mean: no change
    contrib = feature_contributions(mlp, X)
    assert contrib is not None
    h = (X - mlp.mean_) / mlp.scale_  # type: ignore[attr-defined]
    layers = mlp.export_layers(fold_standardizer=False)  # type: ignore[attr-defined]
    for w, b in layers[:-1]:
        h = np.maximum(h @ w.T.astype(np.float64) + b, 0.0)
    exact = (h @ layers[-1][0].T.astype(np.float64) + layers[-1][1])[:, 0]
    np.testing.assert_allclose(contrib.margin, exact, rtol=0, atol=1e-9)
    np.testing.assert_allclose(contrib.values[:, 3], 0.0, atol=1e-12)
    # the feature that drives the label moves the logit most, on average
    assert np.abs(contrib.values).mean(axis=0).argmax() == 0


@pytest.mark.parametrize("name", ["lightgbm", "logistic", "mlp"])
def test_each_alert_gets_its_top_three_features_and_other_rows_none(
    models: dict[str, object], name: str
) -> None:
    X, _ = _data(400, seed=2)
    proba = models[name].predict_proba(X)[:, 1]  # type: ignore[attr-defined]
    decisions = (proba >= np.quantile(proba, 0.9)).astype(np.int8)
    X[5] = np.nan  # a retried transaction: stored score, no features
    decisions[5] = 1
    cols = reason_columns(models[name], X, NAMES, decisions)
    assert list(cols) == list(REASON_COLUMNS)
    alerts = np.flatnonzero(decisions == 1)
    alerts = alerts[alerts != 5]
    frame = pd.DataFrame(cols)
    assert frame.loc[alerts, "reason_1"].notna().all()
    assert frame.loc[decisions == 0].isna().all().all() and frame.loc[5].isna().all()
    contributions = frame.loc[alerts, ["reason_1_contribution", "reason_2_contribution", "reason_3_contribution"]]  # fmt: skip
    assert (np.diff(contributions.to_numpy(), axis=1) <= 0).all()  # largest first
    full = feature_contributions(models[name], X[alerts])
    assert full is not None
    np.testing.assert_allclose(contributions["reason_1_contribution"], full.values.max(axis=1))
    # the strongest signal leads most alerts
    assert frame.loc[alerts, "reason_1"].value_counts().index[0] == "amount"
    counts = reason_counts(frame)
    assert counts[0]["feature"] == "amount" and 0 < counts[0]["share"] <= 1


def test_a_model_without_additive_contributions_gives_no_reasons() -> None:
    class Opaque:
        def predict_proba(self, X: np.ndarray) -> np.ndarray:
            return np.column_stack([1 - X[:, 0] * 0, X[:, 0] * 0])

    X, _ = _data(20)
    assert not explains(Opaque()) and feature_contributions(Opaque(), X) is None
    cols = reason_columns(Opaque(), X, NAMES, np.ones(len(X), dtype=np.int8))
    assert all(pd.isna(v).all() for v in cols.values())
    assert reason_counts(pd.DataFrame(cols)) == []


def test_path_attribution_reproduces_lightgbms_margin_with_missing_values_and_zeros() -> None:
    """The fast method walks each tree as LightGBM does (NaN, zero-as-missing, default
    directions): contributions + base == raw margin, with TreeSHAP's base."""
    rng = np.random.default_rng(4)
    X = rng.normal(size=(4000, 6))
    X[rng.random(X.shape) < 0.05] = np.nan  # missing_type NaN in the trees
    X[:, 5] = np.round(X[:, 5])  # many exact zeros
    y = (np.nan_to_num(X[:, 0]) + (X[:, 5] == 0) + rng.normal(size=len(X)) > 1).astype(int)
    for zero_as_missing in (False, True):
        gbm = lgb.LGBMClassifier(
            n_estimators=40, num_leaves=15, verbose=-1, n_jobs=1, seed=0,
            zero_as_missing=zero_as_missing,
        ).fit(X, y)  # fmt: skip
        test = rng.normal(size=(300, 6))
        test[rng.random(test.shape) < 0.1] = np.nan
        test[::3, 5] = 0.0
        fast = feature_contributions(gbm, test, "path")
        exact = feature_contributions(gbm, test)
        assert fast is not None and exact is not None
        margin = gbm.booster_.predict(test, raw_score=True)
        np.testing.assert_allclose(fast.margin, margin, rtol=0, atol=1e-9)
        np.testing.assert_allclose(fast.base, exact.base, rtol=0, atol=1e-9)
        # one row at a time gives the rows of the batch
        one = feature_contributions(gbm, test[7:8], "path")
        assert one is not None
        np.testing.assert_allclose(one.values[0], fast.values[7], rtol=0, atol=1e-12)


def test_path_attribution_credits_the_features_the_model_splits_on(
    models: dict[str, object],
) -> None:
    X, _ = _data(400, seed=2)
    fast = feature_contributions(models["lightgbm"], X, "path")
    exact = feature_contributions(models["lightgbm"], X)
    assert fast is not None and exact is not None
    # the strongest feature leads both, row by row, almost always
    agree = (fast.values.argmax(axis=1) == exact.values.argmax(axis=1)).mean()
    assert agree > 0.8, agree
    with pytest.raises(ValueError, match=r"unknown explanation method 'saabas'"):
        feature_contributions(models["lightgbm"], X, "saabas")
    # estimators without a fast method give their one exact method for either name
    np.testing.assert_array_equal(
        feature_contributions(models["logistic"], X, "path").values,  # type: ignore[union-attr]
        feature_contributions(models["logistic"], X).values,  # type: ignore[union-attr]
    )
