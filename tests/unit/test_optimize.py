"""Unit tests for inferloop.edge.builders.optimize and inferloop.edge.builders.onnx_export on tiny simulated data.

Tolerances (what "agrees" means here):

* an ONNX graph of a LightGBM model vs LightGBM itself: max |Δscore| ≤ 1e-5 (float32 graph);
* an ONNX graph of a torch MLP vs torch: max |Δscore| ≤ 1e-5;
* int8 MLP vs float MLP: max |Δscore| ≤ 0.05 (weights quantized to 8 bits);
* a student vs the teacher: the student must rank the teacher's alerts (its top 2 % of rows)
  above the other rows with ROC-AUC ≥ 0.9, and the LightGBM student trained on the plain
  logit must reach Spearman rank correlation ≥ 0.6. Tiny data gives an over-confident
  teacher whose low scores are near-ties, so whole-range rank correlation is a loose bound.
"""

from __future__ import annotations

import importlib.util
import pickle
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from inferloop.data.features import FeatureParams
from inferloop.data.processed import build_processed
from inferloop.data.samples import simulated_splits
from inferloop.data.simulate import SimulateParams
from inferloop.data.split import SplitParams
from inferloop.edge.builders.measure import (
    EvalSet,
    compile_teacher,
    measure_variant,
    pareto_front,
    plot_frontier,
    select_variant,
)
from inferloop.edge.builders.onnx_export import (
    lightgbm_to_onnx,
    mlp_to_onnx,
    onnx_op_types,
    quantize_onnx_int8,
)
from inferloop.edge.builders.optimize import OptimizeResult, optimize_teacher
from inferloop.edge.builders.params import (
    BenchParams,
    DistilParams,
    OptimizeParams,
    PruneParams,
    SelectionPolicy,
    StudentMLPParams,
)
from inferloop.edge.builders.students import (
    LightGBMPredictor,
    ProbabilityHead,
    StudentMLP,
    build_student_mlp,
    distil_lightgbm,
    mlp_predict,
    n_tree_nodes,
    neuron_importance,
    prune_mlp_structured,
    small_lightgbm_on_labels,
    train_soft_targets,
)
from inferloop.edge.runtime.classifiers import OnnxClassifier
from inferloop.edge.runtime.onnx_predictor import OnnxPredictor

TINY_BENCH = BenchParams(
    latency_calls=50, warmup_calls=5, throughput_rows=2000, throughput_repeats=1
)
TINY_PARAMS = OptimizeParams(
    mlp=StudentMLPParams(epochs=3, batch_size=512),
    prune=PruneParams(finetune_epochs=1),
    bench=TINY_BENCH,
    compilers=(),
)


def _teacher_alert_auc(student: np.ndarray, teacher: np.ndarray, share: float = 0.02) -> float:
    alerts = teacher >= np.quantile(teacher, 1.0 - share)
    return float(roc_auc_score(alerts, student))


# --------------------------------------------------------------------------------------------
# fixtures: tiny simulated data, a teacher, one optimize run
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data() -> dict[str, object]:
    sim = SimulateParams(n_customers=300, n_terminals=200, n_days=35)
    split = SplitParams(train_days=14, validation_days=3, test_days=3, gap_days=3)
    d = simulated_splits(sim, split=split)
    processed, _ = build_processed(d.raw, FeatureParams())
    before_validation = processed["timestamp"] < d.splits.windows.validation.start
    features = d.features
    train = d.splits.train
    teacher = lgb.LGBMClassifier(
        n_estimators=300, num_leaves=31, learning_rate=0.05, verbose=-1, n_jobs=1
    ).fit(train[features].to_numpy(np.float32), train["is_fraud"].to_numpy())
    return {
        "teacher": teacher,
        "X_train": train[features].to_numpy(np.float32),
        "y_train": train["is_fraud"].to_numpy(),
        "X_unlabelled": processed.loc[before_validation, features].to_numpy(np.float32),
        "validation": EvalSet.from_frame(d.splits.validation, features),
        "test": EvalSet.from_frame(d.splits.test, features),
    }


@pytest.fixture(scope="module")
def result(data: dict, tmp_path_factory: pytest.TempPathFactory) -> OptimizeResult:
    return optimize_teacher(
        data["teacher"],
        data["X_unlabelled"],
        data["validation"],
        data["test"],
        TINY_PARAMS,
        tmp_path_factory.mktemp("optimize"),
        labelled=(data["X_train"], data["y_train"]),
        progress=False,
    )


# --------------------------------------------------------------------------------------------
# the whole stage
# --------------------------------------------------------------------------------------------


def test_optimize_builds_measures_and_chooses(result: OptimizeResult) -> None:
    table = result.table
    expected = {
        "teacher",
        "teacher_onnx",
        "teacher_onnx_int8",
        "gbm_distilled",
        "gbm_distilled_onnx",
        "gbm_labels_onnx",
        "mlp_onnx",
        "mlp_onnx_int8",
        "mlp_pruned_onnx",
        "mlp_pruned_onnx_int8",
    }
    assert set(table["name"]) == expected
    for column in ("size_bytes", "p50_us", "p99_us", "rows_per_s", "ap", "roc_auc"):
        assert (table[column] > 0).all(), column
    assert (table["p99_us"] >= table["p50_us"]).all()
    assert table["card_precision_at_k"].between(0, 1).all()
    assert result.chosen in set(table["name"])
    assert result.chosen_path.is_file()
    assert all(path.suffix == ".onnx" and path.is_file() for path in result.onnx_paths.values())
    assert isinstance(result.figure, Figure)
    teacher_row = table.set_index("name").loc["teacher"]
    assert teacher_row["ap_loss"] == 0 and teacher_row["size_ratio"] == 1


def test_onnx_teacher_matches_lightgbm(data: dict, result: OptimizeResult) -> None:
    X = data["test"].X
    native = data["teacher"].booster_.predict(X, num_threads=1)
    onnx_scores = OnnxPredictor(result.onnx_paths["teacher_onnx"]).predict_scores(X)
    assert np.max(np.abs(onnx_scores - native)) <= 1e-5
    assert result.table.set_index("name").loc["teacher_onnx", "decision_flips"] == 0


def test_tree_int8_changes_nothing(data: dict, result: OptimizeResult) -> None:
    X = data["test"].X
    plain = OnnxPredictor(result.onnx_paths["teacher_onnx"]).predict_scores(X)
    int8 = OnnxPredictor(result.onnx_paths["teacher_onnx_int8"]).predict_scores(X)
    np.testing.assert_allclose(int8, plain, atol=1e-7)
    assert "MatMulInteger" not in onnx_op_types(result.onnx_paths["teacher_onnx_int8"].read_bytes())


def test_students_agree_with_teacher(data: dict, result: OptimizeResult) -> None:
    X = data["test"].X
    teacher = data["teacher"].booster_.predict(X, num_threads=1)
    for name in ("gbm_distilled_onnx", "mlp_onnx", "mlp_pruned_onnx"):
        student = OnnxPredictor(result.onnx_paths[name]).predict_scores(X)
        assert _teacher_alert_auc(student, teacher) >= 0.9, name


def test_onnx_scores_without_torch_or_lightgbm(
    data: dict, result: OptimizeResult, tmp_path: Path, scores_in_a_child: Callable
) -> None:
    X = data["test"].X[:20]
    expected = OnnxPredictor(result.chosen_path).predict_scores(X)
    edge = OnnxClassifier(result.chosen_path.read_bytes(), result.chosen)
    np.testing.assert_allclose(scores_in_a_child(edge, X, tmp_path), expected, atol=1e-7)


# --------------------------------------------------------------------------------------------
# tree students
# --------------------------------------------------------------------------------------------


def test_distilled_lightgbm_is_small_and_follows_teacher(data: dict) -> None:
    params = DistilParams(n_estimators=20, num_leaves=7, weight_power=0.0)
    student = distil_lightgbm(data["teacher"], data["X_unlabelled"], params)
    assert student.booster_.num_trees() == 20
    assert n_tree_nodes(student) <= 20 * (2 * 7 - 1)
    X = data["test"].X
    teacher = data["teacher"].booster_.predict(X)
    native = LightGBMPredictor(student, sigmoid=True).predict_scores(X)
    assert spearmanr(native, teacher)[0] >= 0.6
    graph = OnnxPredictor(lightgbm_to_onnx(student, X.shape[1], sigmoid=True))
    assert np.max(np.abs(graph.predict_scores(X) - native)) <= 1e-5


def test_small_lightgbm_on_labels_has_student_size(data: dict) -> None:
    params = DistilParams(n_estimators=10, num_leaves=5)
    model = small_lightgbm_on_labels(data["X_train"], data["y_train"], params)
    assert model.booster_.num_trees() == 10
    assert n_tree_nodes(model) <= 10 * (2 * 5 - 1)


def test_distil_rejects_unknown_target(data: dict) -> None:
    with pytest.raises(ValueError, match="target"):
        distil_lightgbm(data["teacher"], data["X_unlabelled"][:100], DistilParams(target="x"))


# --------------------------------------------------------------------------------------------
# MLP, pruning, export, quantization (synthetic data: fast)
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def synthetic() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.exponential(100.0, 4000), rng.normal(size=(4000, 5))])
    logit = 0.02 * X[:, 0] - 3.0 + 1.5 * X[:, 1] - X[:, 2]
    return X.astype(np.float32), (1.0 / (1.0 + np.exp(-logit))).astype(np.float32)


@pytest.fixture(scope="module")
def mlp(synthetic: tuple[np.ndarray, np.ndarray]) -> StudentMLP:
    X, soft = synthetic
    params = StudentMLPParams(hidden=(16, 8), temperature=1.0)
    net = build_student_mlp(X, params)
    return train_soft_targets(net, X, soft, epochs=20, learning_rate=0.01, batch_size=256)


def test_mlp_preprocessing_lives_in_the_network(synthetic: tuple, mlp: StudentMLP) -> None:
    X, soft = synthetic
    assert mlp.log_mask.tolist() == [True, False, False, False, False, False]
    scores = mlp_predict(mlp, X)  # raw features in
    assert spearmanr(scores, soft)[0] >= 0.9


def test_mlp_onnx_matches_torch_with_dynamic_batch(synthetic: tuple, mlp: StudentMLP) -> None:
    X, _ = synthetic
    scorer = OnnxPredictor(mlp_to_onnx(ProbabilityHead(mlp), X.shape[1], exporter="torchscript"))
    reference = mlp_predict(mlp, X)
    assert np.max(np.abs(scorer.predict_scores(X) - reference)) <= 1e-5
    assert scorer.predict_scores(X[0]).shape == (1,)
    assert scorer.predict_scores(X[:7]).shape == (7,)


def test_one_row_calls_through_bound_buffers_equal_batch_scores_in_every_thread(
    synthetic: tuple, mlp: StudentMLP
) -> None:
    """Single rows go through a per-thread IOBinding; results must not leak between calls."""
    from concurrent.futures import ThreadPoolExecutor

    X, _ = synthetic
    scorer = OnnxPredictor(mlp_to_onnx(ProbabilityHead(mlp), X.shape[1], exporter="torchscript"))
    batch = scorer.predict_scores(X[:400])

    def one_by_one(start: int) -> np.ndarray:
        return np.concatenate([scorer.predict_scores(X[i : i + 1]) for i in range(start, 400, 4)])

    with ThreadPoolExecutor(max_workers=4) as pool:
        parts = list(pool.map(one_by_one, range(4)))
    for start, part in enumerate(parts):
        np.testing.assert_allclose(part, batch[start::4], rtol=0, atol=1e-6)
    first = scorer.predict_scores(X[:1])
    first[0] = -1.0  # callers own what they get: the bound output buffer is not handed out
    assert scorer.predict_scores(X[:1])[0] == pytest.approx(batch[0], abs=1e-6)


def test_mlp_dynamo_export(synthetic: tuple, mlp: StudentMLP) -> None:
    pytest.importorskip("onnxscript")
    X, _ = synthetic
    graph = mlp_to_onnx(ProbabilityHead(mlp), X.shape[1], exporter="dynamo")
    scores = OnnxPredictor(graph).predict_scores(X[:5])
    assert np.max(np.abs(scores - mlp_predict(mlp, X[:5]))) <= 1e-5


def test_int8_quantizes_mlp_matmuls(synthetic: tuple, mlp: StudentMLP) -> None:
    X, _ = synthetic
    graph = mlp_to_onnx(ProbabilityHead(mlp), X.shape[1], exporter="torchscript")
    quantized = quantize_onnx_int8(graph)
    assert "MatMulInteger" in onnx_op_types(quantized)
    delta = OnnxPredictor(quantized).predict_scores(X) - OnnxPredictor(graph).predict_scores(X)
    assert np.max(np.abs(delta)) <= 0.05


def test_prune_rebuilds_smaller_layers(synthetic: tuple, mlp: StudentMLP) -> None:
    X, soft = synthetic
    pruned = prune_mlp_structured(mlp, X, 0.5, soft_targets=soft)
    assert pruned.hidden_before == (16, 8) and pruned.hidden_after == (8, 4)
    widths = [(layer.in_features, layer.out_features) for layer in pruned.model.linears]
    assert widths == [(6, 8), (8, 4), (4, 1)]
    assert pruned.n_parameters_after == pruned.model.n_parameters() < pruned.n_parameters_before
    assert pruned.n_parameters_after == 6 * 8 + 8 + 8 * 4 + 4 + 4 + 1
    assert spearmanr(mlp_predict(pruned.model, X), soft)[0] >= 0.8
    assert mlp.hidden_sizes == (16, 8)  # the input model is left unchanged


def test_prune_nothing_is_exact(synthetic: tuple, mlp: StudentMLP) -> None:
    X, _ = synthetic
    same = prune_mlp_structured(mlp, X, 0.0)
    assert same.n_parameters_after == same.n_parameters_before
    np.testing.assert_allclose(mlp_predict(same.model, X), mlp_predict(mlp, X), atol=1e-6)


def test_prune_keeps_the_important_neurons(synthetic: tuple, mlp: StudentMLP) -> None:
    X, _ = synthetic
    importance = neuron_importance(mlp, X)
    pruned = prune_mlp_structured(mlp, X, 0.75)
    for scores, kept in zip(importance, pruned.kept, strict=True):
        top = set(np.argsort(-scores.numpy())[: len(kept)].tolist())
        assert set(kept) == top


def test_prune_rejects_bad_amount(synthetic: tuple, mlp: StudentMLP) -> None:
    with pytest.raises(ValueError, match="amount"):
        prune_mlp_structured(mlp, synthetic[0], 1.0)


# --------------------------------------------------------------------------------------------
# measurement
# --------------------------------------------------------------------------------------------


def test_measure_variant_reports_everything(synthetic: tuple, mlp: StudentMLP) -> None:
    X, soft = synthetic
    y = (soft > 0.5).astype(int)
    customers = np.arange(len(X)) % 50
    times = pd.date_range("2026-01-01", periods=len(X), freq="min").to_numpy()
    scorer = OnnxPredictor(mlp_to_onnx(ProbabilityHead(mlp), X.shape[1], exporter="torchscript"))
    row = measure_variant(
        "mlp", scorer, X, y, soft, customers, times, size_bytes=123, params=TINY_BENCH
    )
    assert row["name"] == "mlp" and row["size_bytes"] == 123
    assert 0 < row["p50_us"] <= row["p99_us"] and row["rows_per_s"] > 0
    assert 0.5 < row["roc_auc"] <= 1 and 0 < row["ap"] <= 1
    assert 0 <= row["card_precision_at_k"] <= 1 and row["rank_corr"] > 0.9
    assert row["max_abs_diff"] < 0.5 and row["decision_flips"] >= 0


def test_optional_compilers_match_the_teacher(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(2000, 8)).astype(np.float32)
    y = (X[:, 0] + rng.normal(size=2000) > 1.5).astype(int)
    model = lgb.LGBMClassifier(n_estimators=10, num_leaves=7, verbose=-1, n_jobs=1).fit(X, y)
    native = model.booster_.predict(X)
    for compiler in ("tl2cgen", "lleaves"):
        compiled = compile_teacher(model, compiler, tmp_path)
        # lleaves is a dependency; tl2cgen is optional (it also needs a C compiler)
        if compiler == "tl2cgen" and importlib.util.find_spec(compiler) is None:
            assert isinstance(compiled, str) and compiler in compiled
            continue
        assert not isinstance(compiled, str), compiled
        scorer, size = compiled
        assert size > 0
        assert np.max(np.abs(scorer.predict_scores(X) - native)) <= 1e-5, compiler
    with pytest.raises(ValueError, match="unknown compiler"):
        compile_teacher(model, "gcc", tmp_path)
    bad = replace(TINY_PARAMS, compilers=("lleaves", "gcc"))
    with pytest.raises(ValueError, match=r"unknown optimize.compilers \['gcc'\]"):
        optimize_teacher(model, X, None, None, bad, tmp_path)  # type: ignore[arg-type]
    not_edge = replace(TINY_PARAMS, selection=SelectionPolicy(formats=("onnx", "tl2cgen")))
    with pytest.raises(ValueError, match=r"\['tl2cgen'\] cannot be deployed at the edge"):
        optimize_teacher(model, X, None, None, not_edge, tmp_path)  # type: ignore[arg-type]
    regressor = lgb.LGBMRegressor(n_estimators=5, verbose=-1).fit(X, X[:, 0])
    assert "binary with sigmoid 1" in str(compile_teacher(regressor, "lleaves", tmp_path))


def test_compiled_students_are_measured_chosen_and_deployable(data: dict, tmp_path: Path) -> None:
    """With lleaves and llvm, the distilled forest and the MLPs also run as x86-64 code with
    their own scores, and the chosen variant becomes a classifier that pickles and scores."""
    teacher = lgb.LGBMClassifier(n_estimators=40, num_leaves=15, verbose=-1, n_jobs=1)
    teacher.fit(data["X_train"], data["y_train"])
    loose = SelectionPolicy(
        max_ap_loss=1.0, max_auc_loss=1.0, formats=("lleaves", "llvm"), latency_tolerance=0.0
    )
    params = replace(
        TINY_PARAMS, compilers=("lleaves", "llvm"), selection=loose, label_control=False
    )
    result = optimize_teacher(
        teacher,
        data["X_unlabelled"],
        data["validation"],
        data["test"],
        params,
        tmp_path,
        progress=False,
    )
    table = result.table.set_index("name")
    compiled_names = {"teacher_lleaves", "gbm_distilled_lleaves", "mlp_llvm", "mlp_pruned_llvm"}
    assert compiled_names <= set(table.index) and compiled_names == set(result.compiled)
    assert table.loc["gbm_distilled_lleaves", "format"] == "lleaves"
    assert table.loc["mlp_pruned_llvm", "format"] == "llvm"
    for name in ("mlp", "mlp_pruned"):
        graph = OnnxPredictor(result.onnx_paths[f"{name}_onnx"]).predict_scores(data["test"].X)
        native = result.compiled[f"{name}_llvm"].predict_scores(data["test"].X)
        np.testing.assert_allclose(native, graph, rtol=0, atol=1e-5)
    assert table.loc["teacher_lleaves", "decision_flips"] == 0
    assert table.loc["teacher_lleaves", "max_abs_diff"] <= 1e-9
    X = data["test"].X
    student = LightGBMPredictor(
        lgb.Booster(model_file=str(tmp_path / "gbm_distilled.txt")), sigmoid=True
    ).predict_scores(X)
    compiled = result.compiled["gbm_distilled_lleaves"].predict_scores(X)
    np.testing.assert_allclose(compiled, student, rtol=0, atol=1e-9)
    assert result.chosen in compiled_names
    assert result.chosen_path.suffix == ".o" and result.chosen_path.is_file()
    edge = pickle.loads(pickle.dumps(result.edge_classifier()))
    np.testing.assert_array_equal(
        edge.predict_scores(X), result.compiled[result.chosen].predict_scores(X)
    )


# --------------------------------------------------------------------------------------------
# selection policy on hand-made tables
# --------------------------------------------------------------------------------------------


def _table(*rows: tuple[str, str, float, int, float, float]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["name", "format", "p50_us", "size_bytes", "ap", "roc_auc"])
    frame["val_ap"], frame["val_roc_auc"] = frame["ap"], frame["roc_auc"]
    return frame


BASE = [
    ("teacher", "lightgbm", 50.0, 1_000_000, 0.60, 0.880),
    ("teacher_onnx", "onnx", 30.0, 700_000, 0.60, 0.880),
]


def test_select_fastest_within_budget() -> None:
    table = _table(
        *BASE,
        ("fast_but_bad", "onnx", 5.0, 10_000, 0.55, 0.879),  # AP loss 0.05
        ("auc_too_low", "onnx", 6.0, 10_000, 0.60, 0.870),  # AUC loss 0.01
        ("good", "onnx", 10.0, 40_000, 0.595, 0.877),
        ("good_slower", "onnx", 12.0, 20_000, 0.61, 0.885),
    )
    assert select_variant(table, SelectionPolicy(latency_tolerance=0.0)) == "good"


def test_select_ties_go_to_the_smaller() -> None:
    table = _table(
        *BASE, ("big", "onnx", 10.0, 40_000, 0.6, 0.88), ("small", "onnx", 10.3, 9, 0.6, 0.88)
    )
    assert select_variant(table, SelectionPolicy(latency_tolerance=0.05)) == "small"
    assert select_variant(table, SelectionPolicy(latency_tolerance=0.0)) == "big"
    exact = _table(
        *BASE, ("big", "onnx", 10.0, 40_000, 0.6, 0.88), ("small", "onnx", 10.0, 9, 0.6, 0.88)
    )
    assert select_variant(exact, SelectionPolicy(latency_tolerance=0.0)) == "small"


def test_select_only_allowed_formats() -> None:
    table = _table(*BASE, ("compiled", "tl2cgen", 1.0, 100, 0.6, 0.88))
    assert select_variant(table, SelectionPolicy()) == "teacher_onnx"
    policy = SelectionPolicy(formats=("onnx", "tl2cgen"))
    assert select_variant(table, policy) == "compiled"


def test_select_respects_the_size_budget() -> None:
    table = _table(
        *BASE,
        ("fast_but_big", "onnx", 5.0, 200_000, 0.6, 0.88),  # 5x smaller
        ("small", "onnx", 9.0, 50_000, 0.6, 0.88),  # 20x smaller
    )
    assert select_variant(table, SelectionPolicy()) == "fast_but_big"
    assert select_variant(table, SelectionPolicy(min_size_ratio=10)) == "small"
    assert select_variant(table, SelectionPolicy(min_size_ratio=100)) == "teacher_onnx"


def test_select_none_qualifies_returns_the_teacher() -> None:
    table = _table(
        ("teacher", "lightgbm", 50.0, 1_000_000, 0.60, 0.880),
        ("bad", "onnx", 5.0, 10_000, 0.50, 0.80),
    )
    assert select_variant(table, SelectionPolicy()) == "teacher"
    with_onnx_teacher = _table(*BASE, ("bad", "onnx", 5.0, 10_000, 0.50, 0.80))
    strict = SelectionPolicy(formats=("tflite",))
    assert select_variant(with_onnx_teacher, strict) == "teacher_onnx"


def test_select_uses_validation_columns_by_default() -> None:
    table = _table(*BASE, ("student", "onnx", 5.0, 10_000, 0.60, 0.88))
    table.loc[table["name"] == "student", "val_ap"] = 0.3  # fails on validation only
    assert select_variant(table, SelectionPolicy()) == "teacher_onnx"
    assert select_variant(table, SelectionPolicy(losses_on="test")) == "student"
    with pytest.raises(ValueError, match="losses_on"):
        select_variant(table, SelectionPolicy(losses_on="train"))
    with pytest.raises(ValueError, match="reference"):
        select_variant(table, SelectionPolicy(reference="nope"))


# --------------------------------------------------------------------------------------------
# plot and import hygiene
# --------------------------------------------------------------------------------------------


def test_plot_frontier_is_log_latency() -> None:
    table = _table(*BASE, ("student", "onnx", 5.0, 10_000, 0.59, 0.88))
    fig = plot_frontier(table, chosen="student")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert {t.get_text() for t in ax.texts} == {"teacher", "teacher_onnx", "student"}
    legend = {t.get_text() for t in ax.get_legend().get_texts()}
    assert {"Pareto front", "chosen: student"} <= legend


def test_pareto_front_keeps_only_variants_nothing_beats_on_both_axes() -> None:
    table = pd.DataFrame(
        {
            "name": ["slow_best", "fast_good", "fast_bad", "mid_worse", "fastest_ok"],
            "p50_us": [50.0, 5.0, 5.0, 20.0, 2.0],
            "ap": [0.70, 0.65, 0.40, 0.60, 0.50],
        }
    )
    assert pareto_front(table) == ["fastest_ok", "fast_good", "slow_best"]


def test_frontier_labels_never_overlap_even_for_clustered_variants() -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.text import Text

    # sixteen variants packed like the real ones: ties in latency and AP, long names
    rows = [(f"variant_with_a_long_name_{i}", "onnx", 3.0 + 0.2 * (i % 4), 10_000 + i, 0.51 + 0.002 * (i % 3), 0.9) for i in range(16)]  # fmt: skip
    fig = plot_frontier(_table(*rows), chosen=rows[0][0])
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    ax = fig.axes[0]
    # the text of each label (an Annotation's own extent would include its leader line)
    boxes = [Text.get_window_extent(t, renderer) for t in ax.texts]
    boxes.append(ax.get_legend().get_window_extent(renderer))
    names = [t.get_text() for t in ax.texts] + ["legend"]
    pairs = [
        (names[i], names[j])
        for i in range(len(boxes))
        for j in range(i + 1, len(boxes))
        if boxes[i].overlaps(boxes[j])
    ]
    assert len(boxes) == 17 and not pairs, pairs


def test_import_has_no_pyplot_side_effect() -> None:
    code = "import sys, inferloop.edge.builders.optimize; assert 'matplotlib.pyplot' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
