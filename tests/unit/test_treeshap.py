"""The compiled TreeSHAP kernel gives LightGBM's own pred_contrib values, row by row."""

from __future__ import annotations

import threading

import lightgbm as lgb
import numpy as np
import pytest

from inferloop.evaluation.reasons import feature_contributions
from inferloop.evaluation.treeshap import shap_contributions, shap_table


def _rows(n: int, seed: int) -> np.ndarray:
    """Rows with NaN, exact zeros and a feature the trees split on again and again.

    Column 4 has no NaN, so its splits have missing type None (a NaN then reads as 0)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 7))
    X[rng.random(X.shape) < 0.06] = np.nan
    X[:, 4] = rng.normal(size=n)
    X[:, 5] = np.round(X[:, 5])  # many exact zeros
    X[::4, 6] = 0.0
    return X


def _label(X: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.nan_to_num(X)
    logit = 1.5 * x[:, 0] + np.sin(3 * x[:, 1]) + (x[:, 5] == 0) + x[:, 2] * x[:, 3] - 1.0
    return (logit + rng.normal(size=len(X)) > 0.5).astype(int)


def _pred_contrib(gbm: lgb.LGBMClassifier, X: np.ndarray) -> np.ndarray:
    return np.asarray(gbm.booster_.predict(X, pred_contrib=True))


@pytest.fixture(scope="module", params=[False, True], ids=["nan-missing", "zero-as-missing"])
def gbm(request: pytest.FixtureRequest) -> lgb.LGBMClassifier:
    X = _rows(5000, seed=0)
    # deep, leaf-wise trees: paths of 10+ splits that revisit features (merged splits)
    return lgb.LGBMClassifier(
        n_estimators=80, num_leaves=48, min_child_samples=5, verbose=-1, n_jobs=1, seed=0,
        zero_as_missing=request.param,
    ).fit(X, _label(X, seed=1))  # fmt: skip


def test_kernel_equals_lightgbms_pred_contrib_row_by_row(gbm: lgb.LGBMClassifier) -> None:
    table = shap_table(gbm.booster_)
    assert table is not None
    X = _rows(600, seed=2)
    X[::5, 4] = np.nan  # NaN where the trees never saw one
    values, base = shap_contributions(table, X)
    expected = _pred_contrib(gbm, X)
    np.testing.assert_allclose(values, expected[:, :-1], rtol=0, atol=1e-9)
    np.testing.assert_allclose(base, expected[:, -1], rtol=0, atol=1e-9)
    # contributions + base reproduce the raw margin
    margin = gbm.booster_.predict(X, raw_score=True)
    np.testing.assert_allclose(values.sum(axis=1) + base, margin, rtol=0, atol=1e-9)
    # one row at a time gives the rows of the batch, and extra columns are ignored
    wide = np.hstack([X[11:12], np.full((1, 3), 7.0)])
    one, _ = shap_contributions(table, wide)
    np.testing.assert_allclose(one[0], values[11], rtol=0, atol=1e-12)


def test_the_trees_exercise_merged_splits_and_each_missing_type(
    gbm: lgb.LGBMClassifier,
) -> None:
    """Guards the test above: its trees are deep, split on one feature twice along a path, and
    have splits of missing type None and NaN (or, zero as missing, Zero)."""
    table = shap_table(gbm.booster_)
    assert table is not None
    revisits = int((table.prev_depth > 0).sum())
    assert revisits > 100 and table.q >= 4
    kinds = set(table.node_missing.tolist())
    assert kinds >= ({1} if gbm.get_params()["zero_as_missing"] else {0, 2})


def test_reason_codes_use_the_kernel_and_keep_pred_contribs_values(
    gbm: lgb.LGBMClassifier,
) -> None:
    X = _rows(50, seed=3)
    contrib = feature_contributions(gbm, X)
    assert contrib is not None
    np.testing.assert_allclose(contrib.values, _pred_contrib(gbm, X)[:, :-1], rtol=0, atol=1e-9)


def test_threads_score_at_once_without_sharing_working_memory(gbm: lgb.LGBMClassifier) -> None:
    """MLflow's server explains requests on a thread pool: each thread has its own scratch."""
    table = shap_table(gbm.booster_)
    assert table is not None
    X = _rows(200, seed=4)
    expected = _pred_contrib(gbm, X)[:, :-1]
    errors: list[float] = []

    def explain(offset: int) -> None:
        for i in range(offset, len(X), 4):
            values, _ = shap_contributions(table, X[i : i + 1])
            errors.append(float(np.abs(values[0] - expected[i]).max()))

    threads = [threading.Thread(target=explain, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(errors) == len(X) and max(errors) < 1e-9


def test_a_model_the_kernel_does_not_cover_falls_back_to_pred_contrib() -> None:
    """A categorical split: no table, and reason codes still come, from pred_contrib."""
    rng = np.random.default_rng(5)
    X = np.column_stack([rng.integers(0, 6, 3000), rng.normal(size=3000)]).astype(float)
    y = (np.isin(X[:, 0], [1, 4]) ^ (rng.random(3000) < 0.1)).astype(int)
    gbm = lgb.LGBMClassifier(n_estimators=20, num_leaves=7, verbose=-1, n_jobs=1)
    gbm.fit(X, y, categorical_feature=[0])
    assert shap_table(gbm.booster_) is None
    contrib = feature_contributions(gbm, X[:40])
    assert contrib is not None
    np.testing.assert_allclose(contrib.values, _pred_contrib(gbm, X[:40])[:, :-1], atol=1e-12)


def test_a_model_with_constant_trees_puts_them_in_the_base() -> None:
    X = _rows(400, seed=6)
    y = np.zeros(len(X), dtype=int)
    y[:40] = 1
    gbm = lgb.LGBMClassifier(n_estimators=5, num_leaves=4, min_child_samples=300, verbose=-1)
    gbm.fit(X, y)  # no split has enough rows: every tree is one leaf
    table = shap_table(gbm.booster_)
    assert table is not None and len(table.node_feature) == 0
    values, base = shap_contributions(table, X[:10])
    expected = _pred_contrib(gbm, X[:10])
    np.testing.assert_allclose(values, expected[:, :-1], atol=1e-12)
    np.testing.assert_allclose(base, expected[:, -1], atol=1e-12)
