"""Unit tests for inferloop.edge.runtime.compiled: forests (lleaves) and MLPs (LLVM) called via ctypes.

Tolerances: the compiled forest evaluates the same trees in float64, so its raw scores equal
LightGBM's to rounding (max |Δ| ≤ 1e-9, in practice ~1e-15). The compiled MLP computes in
float32 like torch and onnxruntime, with another summation order: max |Δscore| ≤ 1e-5.
"""

from __future__ import annotations

import pickle
import threading
import warnings
from collections.abc import Callable
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest

from inferloop.edge.builders.compile import compile_forest, compile_mlp
from inferloop.edge.builders.optimize import compile_mlp_student
from inferloop.edge.builders.params import StudentMLPParams
from inferloop.edge.builders.students import (
    StudentMLP,
    build_student_mlp,
    mlp_predict,
    train_soft_targets,
)
from inferloop.edge.runtime.classifiers import CompiledClassifier, OnnxClassifier
from inferloop.edge.runtime.compiled import MLP_ENTRY, CompiledModel, _logistic
from inferloop.model_logging import runtime_requirements


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    return np.random.default_rng(3).normal(size=(3000, 6)).astype(np.float32)


@pytest.fixture(scope="module")
def classifier(rows: np.ndarray) -> lgb.LGBMClassifier:
    y = (rows[:, 0] + rows[:, 1] * rows[:, 2] > 0.8).astype(int)
    return lgb.LGBMClassifier(n_estimators=25, num_leaves=7, verbose=-1, n_jobs=1).fit(rows, y)


def _compile(model: lgb.LGBMModel, tmp: Path, link: str) -> CompiledModel:
    model.booster_.save_model(tmp / "model.txt")
    code = compile_forest(tmp / "model.txt", tmp / "model.o")
    return CompiledModel(code, model.booster_.num_feature(), link)


@pytest.fixture(scope="module")
def forest(classifier: lgb.LGBMClassifier, tmp_path_factory: pytest.TempPathFactory):
    return _compile(classifier, tmp_path_factory.mktemp("forest"), "logistic")


def test_compiled_classifier_equals_lightgbm_in_batch_and_one_row(
    forest: CompiledModel, classifier: lgb.LGBMClassifier, rows: np.ndarray
) -> None:
    expected = classifier.booster_.predict(rows, num_threads=1)
    np.testing.assert_allclose(forest.predict_scores(rows), expected, rtol=0, atol=1e-9)
    one = np.array([forest.predict_scores(rows[i : i + 1])[0] for i in range(200)])
    np.testing.assert_allclose(one, expected[:200], rtol=0, atol=1e-9)
    raw = classifier.booster_.predict(rows, raw_score=True, num_threads=1)
    np.testing.assert_allclose(forest.raw_scores(rows), raw, rtol=0, atol=1e-9)
    assert forest.size_bytes == len(forest.object_code) > 0


def test_identity_link_returns_the_regression_output(rows: np.ndarray, tmp_path: Path) -> None:
    target = rows[:, 0] * 2.0 + rows[:, 3]
    model = lgb.LGBMRegressor(n_estimators=15, num_leaves=5, verbose=-1, n_jobs=1)
    model.fit(rows, target)
    forest = _compile(model, tmp_path, "identity")
    expected = model.booster_.predict(rows, num_threads=1)
    np.testing.assert_allclose(forest.predict_scores(rows), expected, rtol=0, atol=1e-9)
    np.testing.assert_allclose(forest.predict_scores(rows[:1]), expected[:1], rtol=0, atol=1e-9)


def test_one_row_calls_in_many_threads_equal_batch_scores(
    forest: CompiledModel, rows: np.ndarray
) -> None:
    expected = forest.predict_scores(rows[:400])
    fresh = pickle.loads(pickle.dumps(forest))  # not loaded yet: the threads race to load it
    start = threading.Barrier(4)
    results: dict[int, np.ndarray] = {}

    def work(t: int) -> None:
        start.wait()
        results[t] = np.array([fresh.predict_scores(rows[i : i + 1])[0] for i in range(400)])

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4  # a thread that raised leaves no result
    for got in results.values():  # math.exp (one row) and expit may differ by 1 ulp
        np.testing.assert_allclose(got, expected, rtol=1e-14, atol=0)


def test_pickled_forest_loads_again(forest: CompiledModel, rows: np.ndarray) -> None:
    clone = pickle.loads(pickle.dumps(CompiledClassifier(forest, "student")))
    assert clone.variant == "student"
    np.testing.assert_array_equal(clone.predict_scores(rows), forest.predict_scores(rows))
    proba = clone.predict_proba(rows[:5])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_bad_input_and_foreign_machine_are_named(forest: CompiledModel, rows: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"6 features.*shape \(4, 3\)"):
        forest.predict_scores(rows[:4, :3])
    with pytest.raises(ValueError, match="link must be"):
        CompiledModel(forest.object_code, 6, "softmax")
    for triple in ("aarch64-unknown-linux-gnu", "x86_64-apple-darwin23"):
        foreign = CompiledModel(forest.object_code, 6, "logistic", triple=triple)
        with pytest.raises(RuntimeError, match=rf"compiled for {triple}.*ONNX"):
            foreign.predict_scores(rows[:1])


def test_logistic_never_overflows() -> None:
    assert _logistic(-1000.0) == 0.0 and _logistic(1000.0) == 1.0
    assert _logistic(0.0) == 0.5
    # logit = -1000 * relu(x): huge negative logits through the batch path, no warning
    weights = [np.ones((1, 1), np.float32), np.full((1, 1), -1000.0, np.float32)]
    biases = [np.zeros(1, np.float32), np.zeros(1, np.float32)]
    model = CompiledModel(compile_mlp(weights, biases, []), 1, "logistic", MLP_ENTRY)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores = model.predict_scores(np.array([[5.0], [0.0], [-5.0]]))
    np.testing.assert_array_equal(scores, [0.0, 0.5, 0.5])


def test_compiled_forest_scores_without_lightgbm_or_torch(
    forest: CompiledModel, rows: np.ndarray, tmp_path: Path, scores_in_a_child: Callable
) -> None:
    """The edge process needs llvmlite, never LightGBM or torch."""
    got = scores_in_a_child(CompiledClassifier(forest), rows[:20], tmp_path)
    np.testing.assert_array_equal(got, forest.predict_scores(rows[:20]))


@pytest.fixture(scope="module")
def student() -> tuple[StudentMLP, np.ndarray]:
    rng = np.random.default_rng(5)
    X = np.column_stack([rng.exponential(100.0, 3000), rng.normal(size=(3000, 4))])
    X = X.astype(np.float32)
    soft = 1.0 / (1.0 + np.exp(-(0.02 * X[:, 0] - 2.0 + X[:, 1])))
    net = build_student_mlp(X, StudentMLPParams(hidden=(16, 8), temperature=2.0))
    train_soft_targets(net, X, soft.astype(np.float32), epochs=3, learning_rate=0.01)
    return net, X


def test_compiled_mlp_equals_torch_in_batch_and_one_row(student: tuple) -> None:
    net, X = student
    assert net.log_mask.tolist()[0]  # the heavy-tailed column goes through log1p
    compiled = compile_mlp_student(net)
    assert compiled.entry == MLP_ENTRY and compiled.n_features == X.shape[1]
    expected = mlp_predict(net, X)
    np.testing.assert_allclose(compiled.predict_scores(X), expected, rtol=0, atol=1e-5)
    one = np.array([compiled.predict_scores(X[i : i + 1])[0] for i in range(100)])
    np.testing.assert_allclose(one, expected[:100], rtol=0, atol=1e-5)
    clone = pickle.loads(pickle.dumps(CompiledClassifier(compiled)))
    np.testing.assert_array_equal(clone.predict_scores(X), compiled.predict_scores(X))


def test_compile_mlp_rejects_shapes_that_do_not_chain() -> None:
    w = [np.ones((3, 2), np.float32)]
    with pytest.raises(ValueError, match="one output"):
        compile_mlp(w, [np.zeros(2, np.float32)], [])
    with pytest.raises(ValueError, match="same non-zero length"):
        compile_mlp(w, [], [])
    two = [np.ones((3, 2), np.float32), np.ones((4, 1), np.float32)]
    with pytest.raises(ValueError, match="layer 1 takes 4 inputs but layer 0 gives 2"):
        compile_mlp(two, [np.zeros(2, np.float32), np.zeros(1, np.float32)], [])
    with pytest.raises(ValueError, match=r"layer 0: bias of shape \(3,\)"):
        compile_mlp([two[0], np.ones((2, 1), np.float32)], [np.zeros(3), np.zeros(1)], [])
    with pytest.raises(ValueError, match="log_columns must index the 3 inputs"):
        compile_mlp([np.ones((3, 1), np.float32)], [np.zeros(1, np.float32)], [3])


def test_compiled_mlp_keeps_nan_like_torch(student: tuple) -> None:
    net, X = student
    rows = X[:3].copy()
    rows[1, 2] = np.nan
    scores = compile_mlp_student(net).predict_scores(rows)
    assert np.isnan(scores[1]) and np.isfinite(scores[[0, 2]]).all()
    assert np.isnan(mlp_predict(net, rows)[1])


def test_compiled_mlp_scores_without_torch(
    student: tuple, tmp_path: Path, scores_in_a_child: Callable
) -> None:
    net, X = student
    compiled = compile_mlp_student(net)
    got = scores_in_a_child(CompiledClassifier(compiled), X[:20], tmp_path)
    np.testing.assert_array_equal(got, compiled.predict_scores(X[:20]))


def test_edge_model_requirements_follow_its_classifier(forest: CompiledModel) -> None:
    """MLflow environments of the edge model get the runtime its classifier needs."""

    def names(classifier: object) -> set[str]:
        return {r.split("==")[0] for r in runtime_requirements("edge:x", classifier)}

    compiled = names(CompiledClassifier(forest))
    assert "llvmlite" in compiled and not {"onnxruntime", "lightgbm", "torch"} & compiled
    graph = names(OnnxClassifier(b"not loaded until used"))
    assert "onnxruntime" in graph and not {"llvmlite", "lightgbm", "torch"} & graph
    assert "lightgbm" in {r.split("==")[0] for r in runtime_requirements("lightgbm")}
