"""Unit tests for inferloop.compiled: LightGBM forests compiled by lleaves, called via ctypes.

Tolerance: the compiled forest evaluates the same trees in float64, so its raw scores equal
LightGBM's to rounding (max |Δ| ≤ 1e-9, in practice ~1e-15).
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest

from inferloop.compiled import CompiledForest, _logistic, compile_forest
from inferloop.edge import CompiledClassifier


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    return np.random.default_rng(3).normal(size=(3000, 6)).astype(np.float32)


@pytest.fixture(scope="module")
def classifier(rows: np.ndarray) -> lgb.LGBMClassifier:
    y = (rows[:, 0] + rows[:, 1] * rows[:, 2] > 0.8).astype(int)
    return lgb.LGBMClassifier(n_estimators=25, num_leaves=7, verbose=-1, n_jobs=1).fit(rows, y)


def _compile(model: lgb.LGBMModel, tmp: Path, link: str) -> CompiledForest:
    model.booster_.save_model(tmp / "model.txt")
    code = compile_forest(tmp / "model.txt", tmp / "model.o")
    return CompiledForest(code, model.booster_.num_feature(), link)


@pytest.fixture(scope="module")
def forest(classifier: lgb.LGBMClassifier, tmp_path_factory: pytest.TempPathFactory):
    return _compile(classifier, tmp_path_factory.mktemp("forest"), "logistic")


def test_compiled_classifier_equals_lightgbm_in_batch_and_one_row(
    forest: CompiledForest, classifier: lgb.LGBMClassifier, rows: np.ndarray
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
    forest: CompiledForest, rows: np.ndarray
) -> None:
    expected = forest.predict_scores(rows[:400])
    results: dict[int, np.ndarray] = {}

    def work(t: int) -> None:
        results[t] = np.array([forest.predict_scores(rows[i : i + 1])[0] for i in range(400)])

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for got in results.values():  # math.exp (one row) and numpy's exp may differ by 1 ulp
        np.testing.assert_allclose(got, expected, rtol=1e-14, atol=0)


def test_pickled_forest_loads_again(forest: CompiledForest, rows: np.ndarray) -> None:
    clone = pickle.loads(pickle.dumps(CompiledClassifier(forest, "student")))
    assert clone.variant == "student"
    np.testing.assert_array_equal(clone.predict_scores(rows), forest.predict_scores(rows))
    proba = clone.predict_proba(rows[:5])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_bad_input_and_foreign_machine_are_named(forest: CompiledForest, rows: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"6 features.*shape \(4, 3\)"):
        forest.predict_scores(rows[:4, :3])
    with pytest.raises(ValueError, match="link must be"):
        CompiledForest(forest.object_code, 6, "softmax")
    foreign = CompiledForest(forest.object_code, 6, "logistic", machine="aarch64")
    with pytest.raises(RuntimeError, match=r"compiled for aarch64.*ONNX"):
        foreign.predict_scores(rows[:1])


def test_logistic_never_overflows() -> None:
    assert _logistic(-1000.0) == 0.0 and _logistic(1000.0) == 1.0
    assert _logistic(0.0) == 0.5


def test_compiled_scores_without_lightgbm_or_torch(
    forest: CompiledForest, rows: np.ndarray, tmp_path: Path
) -> None:
    """The edge process needs llvmlite (and lleaves' loader), never LightGBM or torch."""
    (tmp_path / "forest.pkl").write_bytes(pickle.dumps(CompiledClassifier(forest)))
    np.save(tmp_path / "rows.npy", rows[:20])
    child = textwrap.dedent(
        f"""
        import pickle, sys
        import numpy as np
        model = pickle.loads(open({str(tmp_path / "forest.pkl")!r}, "rb").read())
        scores = model.predict_scores(np.load({str(tmp_path / "rows.npy")!r}))
        assert 'lightgbm' not in sys.modules, 'lightgbm was imported'
        assert 'torch' not in sys.modules, 'torch was imported'
        print(' '.join(repr(float(v)) for v in scores))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", child], capture_output=True, text=True, check=False, timeout=60
    )
    assert out.returncode == 0, out.stderr
    got = np.array(out.stdout.split(), dtype=float)
    np.testing.assert_array_equal(got, forest.predict_scores(rows[:20]))
