"""Unit tests for inferloop.training.candidates and inferloop.training.nn on a tiny simulated dataset."""

from __future__ import annotations

import dataclasses
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import cloudpickle
import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure
from sklearn.base import clone
from sklearn.metrics import average_precision_score

from inferloop.data.samples import SimulatedSplits, simulated_splits
from inferloop.data.simulate import SimulateParams
from inferloop.data.split import SplitParams
from inferloop.evaluation.group_thresholds import PostprocessParams, fit_group_thresholds
from inferloop.training.candidates import (
    LightGBMParams,
    MLPParams,
    SearchParams,
    TrainParams,
    downsample_genuine,
    search_lightgbm,
    train_candidate,
    train_candidates,
)
from inferloop.training.importance import feature_importance, plot_feature_importance
from inferloop.training.nn import TorchMLPClassifier

FAST = TrainParams(
    seed=3,
    lightgbm=LightGBMParams(n_estimators=60, learning_rate=0.1, early_stopping_rounds=20, n_jobs=1),
    mlp=MLPParams(hidden=(16, 8), epochs=6, batch_size=256, patience=3),
)


@pytest.fixture(scope="module")
def data() -> SimulatedSplits:
    return simulated_splits(
        SimulateParams(n_customers=300, n_terminals=200, n_days=35),
        split=SplitParams(train_days=14, validation_days=3, test_days=3, gap_days=3),
    )


@pytest.fixture(scope="module")
def xy(data: SimulatedSplits) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame, np.ndarray]:
    train, val = data.splits.train, data.splits.validation
    cols = data.features
    return train[cols], train["is_fraud"].to_numpy(), val[cols], val["is_fraud"].to_numpy()


@pytest.fixture(scope="module")
def trained(data: SimulatedSplits) -> dict:
    return train_candidates(
        data.splits.train, data.splits.validation, data.features, FAST, progress=False
    )


def test_every_candidate_beats_random_on_validation(trained: dict, xy: tuple) -> None:
    y_val = xy[3]
    assert list(trained) == ["lightgbm", "logistic", "mlp"]
    for name, cand in trained.items():
        assert cand.name == name
        assert cand.validation_scores.shape == (len(y_val),)
        ap = average_precision_score(y_val, cand.validation_scores)
        assert ap > 2 * y_val.mean(), f"{name}: AP {ap:.3f} vs base rate {y_val.mean():.3f}"
        assert cand.train_seconds > 0
        assert cand.params["candidate"] == name
        assert all(np.isscalar(v) for v in cand.params.values())
    assert trained["logistic"].best_iteration is None
    assert trained["lightgbm"].best_iteration >= 1
    assert trained["mlp"].best_iteration >= 1


def test_validation_scores_equal_predict_proba(trained: dict, xy: tuple) -> None:
    X_val = xy[2]
    for cand in trained.values():
        np.testing.assert_allclose(
            cand.estimator.predict_proba(X_val)[:, 1], cand.validation_scores
        )


@pytest.mark.parametrize("name", ["lightgbm", "logistic", "mlp"])
def test_training_is_deterministic(name: str, trained: dict, xy: tuple) -> None:
    again = train_candidate(name, *xy, FAST)
    np.testing.assert_allclose(again.validation_scores, trained[name].validation_scores, atol=1e-6)


def test_class_weight_and_downsample_change_training(xy: tuple) -> None:
    X, y = xy[0], xy[1]
    weighted = train_candidate("lightgbm", *xy, dataclasses.replace(FAST, imbalance="class_weight"))
    assert weighted.params["lightgbm.scale_pos_weight"] == pytest.approx((y == 0).sum() / y.sum())
    down = train_candidate(
        "logistic", *xy, dataclasses.replace(FAST, imbalance="downsample", downsample_ratio=5)
    )
    assert down.params["train_rows"] == 6 * int(y.sum())
    assert down.params["train_frauds"] == int(y.sum())
    assert len(X) > down.params["train_rows"]


def test_downsample_keeps_frauds_ratio_and_order() -> None:
    y = np.array([0] * 90 + [1] * 10)
    X = pd.DataFrame({"t": np.arange(100)})
    Xd, yd = downsample_genuine(X, y, ratio=3, seed=0)
    assert len(Xd) == 40 and yd.sum() == 10
    assert Xd["t"].is_monotonic_increasing
    assert (X["t"].to_numpy()[y == 1] == Xd["t"].to_numpy()[yd == 1]).all()
    Xs, ys = downsample_genuine(X, y, ratio=1000, seed=0)  # more than available: keep all
    assert ys.sum() == 10
    assert len(Xs) == 100
    np.testing.assert_array_equal(downsample_genuine(X, y, 3, seed=0)[0], Xd)


def test_search_returns_one_row_per_trial(xy: tuple) -> None:
    params = dataclasses.replace(FAST, search=SearchParams(enabled=True, trials=3, seed=1))
    best, trials = search_lightgbm(*xy, params, progress=False)
    assert len(trials) == 3
    assert trials["trial"].tolist() == [0, 1, 2]
    assert trials.loc[0, "num_leaves"] == FAST.lightgbm.num_leaves  # trial 0 is the base
    top = trials.loc[trials["val_average_precision"].idxmax()]
    assert best.num_leaves == top["num_leaves"]
    assert isinstance(best.num_leaves, int)
    assert trials.drop(columns=["trial", "seconds"]).notna().all().all()


def test_params_reject_unknown_candidate_and_mode() -> None:
    with pytest.raises(ValueError, match="candidates"):
        TrainParams(candidates=("xgboost",))
    with pytest.raises(ValueError, match="imbalance"):
        TrainParams(imbalance="smote")
    with pytest.raises(ValueError, match="space"):
        TrainParams(search=SearchParams(space={"depth": (1, 2)}))


def test_feature_importance_and_plot(trained: dict, data: SimulatedSplits) -> None:
    for cand in trained.values():
        imp = feature_importance(cand, data.features)
        assert sorted(imp["feature"]) == sorted(data.features)
        assert imp["importance"].is_monotonic_decreasing
        assert imp["share"].sum() == pytest.approx(1.0)
        assert imp.attrs["method"]
    fig = plot_feature_importance(imp, top=5)
    assert isinstance(fig, Figure)
    assert len(fig.axes[0].patches) == 5


# --------------------------------------------------------------------------------------------
# TorchMLPClassifier
# --------------------------------------------------------------------------------------------


def test_mlp_follows_sklearn_contract_and_restores_threads(trained: dict, xy: tuple) -> None:
    mlp = trained["mlp"].estimator
    fresh = clone(mlp)
    assert not hasattr(fresh, "layers_")
    assert fresh.get_params()["hidden"] == (16, 8)
    before = torch.get_num_threads()
    TorchMLPClassifier(hidden=(4,), epochs=1, threads=1).fit(xy[0].iloc[:500], xy[1][:500])
    assert torch.get_num_threads() == before
    proba = mlp.predict_proba(xy[2])
    assert proba.shape == (len(xy[2]), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert set(np.unique(mlp.predict(xy[2]))) <= {0, 1}
    assert isinstance(mlp.module_, torch.nn.Sequential)


def test_mlp_export_layers_reproduce_predictions(trained: dict, xy: tuple) -> None:
    mlp = trained["mlp"].estimator
    X = xy[2].to_numpy(dtype=np.float64)
    h = X
    layers = mlp.export_layers()
    for i, (w, b) in enumerate(layers):
        h = h @ w.T.astype(np.float64) + b
        if i < len(layers) - 1:
            h = np.maximum(h, 0.0)
    np.testing.assert_allclose(h[:, 0], mlp.decision_function(xy[2]), rtol=1e-3, atol=1e-3)
    raw = mlp.export_layers(fold_standardizer=False)
    np.testing.assert_array_equal(raw[0][0], mlp.layers_[0][0])


def test_mlp_pickles_small_and_loads_in_fresh_process(
    trained: dict, xy: tuple, tmp_path: Path
) -> None:
    mlp = trained["mlp"].estimator
    _ = mlp.module_  # build the cache: it must not be pickled
    X_val = xy[2].iloc[:200]
    expected = mlp.predict_proba(X_val)[:, 1]
    np.save(tmp_path / "X.npy", X_val.to_numpy())
    names = ("pickle", "cloudpickle")
    for name, dumps in zip(names, (pickle.dumps, cloudpickle.dumps), strict=True):
        blob = dumps(mlp)
        assert len(blob) < 50_000
        (tmp_path / f"{name}.pkl").write_bytes(blob)
    script = textwrap.dedent(
        f"""
        import pickle, numpy as np, pandas as pd
        for name in {names!r}:
            model = pickle.loads(open(f"{tmp_path}/{{name}}.pkl", "rb").read())
            X = pd.DataFrame(np.load("{tmp_path}/X.npy"), columns=model.feature_names_in_)
            np.save(f"{tmp_path}/{{name}}_out.npy", model.predict_proba(X)[:, 1])
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    for name in names:
        np.testing.assert_array_equal(np.load(tmp_path / f"{name}_out.npy"), expected)


def test_single_class_training_data_is_a_clear_error(xy: tuple) -> None:
    X, y, X_val, y_val = xy
    with pytest.raises(ValueError, match="both fraud and genuine"):
        train_candidate("logistic", X, np.zeros_like(y), X_val, y_val, FAST)


def test_retraining_with_the_same_seed_writes_byte_identical_model_files(
    data: SimulatedSplits, trained: dict, tmp_path: Path
) -> None:
    """The train stage's hashed output: same data, params and seed give the same bytes."""
    from inferloop.training.stage import write_model_files

    again = train_candidates(
        data.splits.train, data.splits.validation, data.features, FAST, progress=False
    )
    write_model_files(trained, tmp_path / "first")
    write_model_files(again, tmp_path / "second")
    names = sorted(p.name for p in (tmp_path / "first").iterdir())
    assert names == [f"{n}.pkl" for n in sorted(trained)]
    for name in names:
        assert (tmp_path / "first" / name).read_bytes() == (
            tmp_path / "second" / name
        ).read_bytes(), name
    # a changed seed changes them: the test can fail
    other = train_candidates(
        data.splits.train, data.splits.validation, data.features,
        dataclasses.replace(FAST, seed=FAST.seed + 1), progress=False,
    )  # fmt: skip
    write_model_files(other, tmp_path / "other")
    assert (tmp_path / "other" / "mlp.pkl").read_bytes() != (
        tmp_path / "first" / "mlp.pkl"
    ).read_bytes()


# --------------------------------------------------------------------------- mitigated candidates


def _biased_world(n: int = 6000, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, pd.Series]:
    """Two groups; group B's frauds carry a weaker signal, so a plain model misses them."""
    rng = np.random.default_rng(seed)
    group = pd.Series(np.where(rng.random(n) < 0.4, "B", "A"), name="age_band")
    y = (rng.random(n) < 0.06).astype(np.int64)
    signal = np.where(group == "B", 0.6, 2.5) * y
    X = pd.DataFrame({"x1": rng.normal(size=n) + signal, "x2": rng.normal(size=n)})
    return X, y, group


def _tpr_gap(scores: np.ndarray, y: np.ndarray, group: pd.Series, alert_rate: float) -> float:
    alert = scores >= np.quantile(scores, 1 - alert_rate)
    tprs = [alert[(group == g).to_numpy() & (y == 1)].mean() for g in ("A", "B")]
    return float(abs(tprs[0] - tprs[1]))


def test_a_mitigated_candidate_narrows_the_tpr_gap_without_the_attribute_at_prediction() -> None:
    X, y, group = _biased_world()
    Xv, yv, _ = _biased_world(seed=1)
    params = dataclasses.replace(FAST, candidates=("logistic", "logistic_fair"))
    plain = train_candidate("logistic", X, y, Xv, yv, params)
    fair = train_candidate("logistic_fair", X, y, Xv, yv, params, sensitive=group)
    assert fair.params["logistic_fair.models_kept"] >= 1 and fair.params["n_features"] == 2
    Xt, yt, gt = _biased_world(seed=2)
    scores = {c.name: c.estimator.predict_proba(Xt)[:, 1] for c in (plain, fair)}  # no attribute
    rate = float(y.mean())
    assert _tpr_gap(scores["logistic_fair"], yt, gt, rate) < _tpr_gap(
        scores["logistic"], yt, gt, rate
    )
    assert np.array_equal(scores["logistic_fair"], fair.estimator.predict_proba(Xt)[:, 1])
    assert feature_importance(fair, ["x1", "x2"])["feature"].iloc[0] == "x1"
    restored = pickle.loads(cloudpickle.dumps(fair.estimator))
    assert np.array_equal(restored.predict_proba(Xt)[:, 1], scores["logistic_fair"])


def test_a_mitigated_candidate_needs_the_sensitive_attribute_to_train() -> None:
    X, y, _ = _biased_world(n=500)
    with pytest.raises(ValueError, match="needs the sensitive attribute 'age_band'"):
        train_candidate("logistic_fair", X, y, X, y, FAST)


# --------------------------------------------------------------------------- post-processing


def _post_params(**kw: object) -> PostprocessParams:
    return dataclasses.replace(PostprocessParams(), **kw)  # type: ignore[arg-type]


def test_group_thresholds_equalize_the_true_positive_rate_at_the_operating_point() -> None:
    X, y, _ = _biased_world(n=20000)
    Xv, yv, gv = _biased_world(n=20000, seed=1)
    base = train_candidate("logistic", X, y, Xv, yv, FAST)
    threshold = float(np.quantile(base.validation_scores, 0.96))
    post = fit_group_thresholds(
        base.validation_scores, yv, gv.to_numpy(), threshold, _post_params()
    )
    Xt, yt, gt = _biased_world(n=20000, seed=2)
    raw = base.estimator.predict_proba(Xt)[:, 1]
    adjusted = post.adjust(raw, gt.to_numpy())
    gap_before = _tpr_gap_at(raw >= threshold, yt, gt)
    gap_after = _tpr_gap_at(adjusted >= threshold, yt, gt)
    assert post.thresholds["B"] < threshold < post.thresholds["A"] + 1e-12
    assert gap_before > 0.3 and gap_after < gap_before / 3
    # the decision is exactly "score >= the group's threshold", and the ranking within a group
    # is the base model's
    assert np.array_equal(adjusted >= threshold, raw >= post.group_thresholds(gt.to_numpy()))
    for g in ("A", "B"):
        mask = (gt == g).to_numpy()
        assert (np.diff(adjusted[mask][np.argsort(raw[mask])]) >= 0).all()
    assert post.report["B"]["tpr_after"] == pytest.approx(post.target_tpr, abs=0.02)


def _tpr_gap_at(alert: np.ndarray, y: np.ndarray, group: pd.Series) -> float:
    tprs = [alert[(group == g).to_numpy() & (y == 1)].mean() for g in ("A", "B")]
    return float(abs(tprs[0] - tprs[1]))


def test_a_group_with_too_few_frauds_or_unseen_keeps_the_overall_threshold() -> None:
    scores = np.array([0.9, 0.8, 0.2, 0.7, 0.1, 0.6, 0.3])
    y = np.array([1, 1, 0, 1, 0, 1, 0])
    groups = np.array(["A", "A", "A", "B", "B", "B", "B"], dtype=object)
    post = fit_group_thresholds(scores, y, groups, 0.75, _post_params(min_group_positives=2))
    assert set(post.thresholds) == {"A", "B"} and post.target_tpr == 0.5
    few = fit_group_thresholds(scores, y, groups, 0.75, _post_params(min_group_positives=3))
    assert few.thresholds == {} and "2 frauds (< 3)" in few.report["A"]["note"]
    unseen = np.array(["C", None, "A"], dtype=object)
    assert np.array_equal(post.group_thresholds(unseen), [0.75, 0.75, post.thresholds["A"]])
    assert "uses `age_band` at decision time" in "\n".join(post.card_lines())
