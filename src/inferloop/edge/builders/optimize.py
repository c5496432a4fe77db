"""Make the teacher model small and fast for the edge: distil, prune, quantize, compile, pick.

:func:`optimize_teacher` builds every variant of the trained LightGBM teacher (students from
:mod:`~inferloop.edge.builders.students`, ONNX graphs, int8 graphs, compiled code), measures
them with :mod:`~inferloop.edge.builders.measure` and returns the table and the chosen one.

Only the model graph is measured; the deployed edge scorer also runs the featurizer
(:mod:`inferloop.data.features`) before the graph, which costs the same for every variant.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from inferloop.edge.builders.compile import compile_mlp
from inferloop.edge.builders.measure import (
    EvalSet,
    add_relative_columns,
    compile_lleaves,
    compile_teacher,
    compiled_path,
    measure_speed,
    plot_frontier,
    quality_metrics,
    select_variant,
)
from inferloop.edge.builders.onnx_export import (
    lightgbm_to_onnx,
    mlp_to_onnx,
    onnx_op_types,
    quantize_onnx_int8,
)
from inferloop.edge.builders.params import (
    COMPILERS,
    EDGE_FORMATS,
    TREE_COMPILERS,
    BenchParams,
    OptimizeParams,
)
from inferloop.edge.builders.students import (
    LightGBMPredictor,
    Predictor,
    ProbabilityHead,
    PruneResult,
    StudentMLP,
    booster_of,
    distil_lightgbm,
    expit,
    fit_mlp_student,
    n_tree_nodes,
    prune_mlp_structured,
    small_lightgbm_on_labels,
    teacher_logits,
)
from inferloop.edge.runtime.classifiers import CompiledClassifier, OnnxClassifier
from inferloop.edge.runtime.compiled import MLP_ENTRY, CompiledModel
from inferloop.edge.runtime.onnx_predictor import OnnxPredictor

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "OptimizeResult",
    "Variant",
    "compile_mlp_student",
    "optimize_teacher",
]


# --------------------------------------------------------------------------------------------
# parameters (the `optimize` section of params.yaml)
# --------------------------------------------------------------------------------------------


@dataclass
class Variant:
    """A candidate model: how to score with it and what it is."""

    name: str
    family: str
    format: str
    scorer: Predictor
    size_bytes: int
    path: Path | None = None
    n_params: int = 0
    note: str = ""


@dataclass
class OptimizeResult:
    """What :func:`optimize_teacher` produced.

    ``artifacts`` maps each deployable variant to its file: an ONNX graph, or x86-64 object
    code for the compiled forests and MLPs (whose loaded scorers are in ``compiled``).
    """

    table: pd.DataFrame
    chosen: str
    artifacts: dict[str, Path]
    compiled: dict[str, CompiledModel]
    prune: PruneResult | None
    skipped: dict[str, str]
    figure: Figure

    @property
    def onnx_paths(self) -> dict[str, Path]:
        """ONNX file of every variant exported to ONNX."""
        return {name: p for name, p in self.artifacts.items() if p.suffix == ".onnx"}

    @property
    def chosen_path(self) -> Path:
        """File of the chosen variant (ONNX graph or compiled object code)."""
        return self.artifacts[self.chosen]

    def edge_classifier(self) -> OnnxClassifier | CompiledClassifier:
        """The chosen variant as a picklable classifier for :class:`~inferloop.model.FraudModel`."""
        if self.chosen in self.compiled:
            return CompiledClassifier(self.compiled[self.chosen], self.chosen)
        if self.chosen in self.onnx_paths:
            return OnnxClassifier(self.onnx_paths[self.chosen].read_bytes(), self.chosen)
        raise ValueError(
            f"the chosen variant {self.chosen!r} is neither ONNX nor compiled; "
            f"optimize.selection.formats may list only {list(EDGE_FORMATS)} for the edge"
        )


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _onnx_variant(name: str, family: str, model: bytes, workdir: Path, **kw: Any) -> Variant:
    path = _write(workdir / f"{name}.onnx", model)
    return Variant(name, family, "onnx", OnnxPredictor(path), len(model), path, **kw)


def _native_variant(name: str, family: str, model: Any, workdir: Path, sigmoid: bool) -> Variant:
    path = workdir / f"{name}.txt"
    booster_of(model).save_model(path)
    scorer = LightGBMPredictor(model, sigmoid)
    return Variant(name, family, "lightgbm", scorer, path.stat().st_size, path, n_tree_nodes(model))


def _teacher_variants(
    teacher: Any, n_features: int, params: OptimizeParams, workdir: Path
) -> Iterator[Variant | tuple[str, str]]:
    """The teacher natively, in ONNX (float and int8) and compiled; skips as (name, reason)."""
    native = _native_variant("teacher", "teacher", teacher, workdir, sigmoid=False)
    yield native
    graph = lightgbm_to_onnx(teacher, n_features)
    yield _onnx_variant("teacher_onnx", "teacher", graph, workdir, n_params=native.n_params)
    if params.quantize_int8:
        note = "no quantizable ops in a tree graph"
        int8 = quantize_onnx_int8(graph)
        yield _onnx_variant(
            "teacher_onnx_int8", "teacher", int8, workdir, n_params=native.n_params, note=note
        )
    for compiler in (c for c in params.compilers if c in TREE_COMPILERS):
        compiled = compile_teacher(teacher, compiler, workdir)
        if isinstance(compiled, str):
            yield (f"teacher_{compiler}", compiled)
            continue
        scorer, size = compiled
        path = compiled_path(workdir, f"teacher_{compiler}")
        yield Variant(
            f"teacher_{compiler}", "teacher", compiler, scorer, size, path, native.n_params
        )


def _tree_student_variants(
    teacher: Any,
    X_unlabelled: np.ndarray,
    labelled: tuple[np.ndarray, np.ndarray] | None,
    params: OptimizeParams,
    workdir: Path,
) -> Iterator[Variant | tuple[str, str]]:
    """The distilled LightGBM (native and ONNX) and the same-size labels-only control."""
    n = X_unlabelled.shape[1]
    student = distil_lightgbm(teacher, X_unlabelled, params.distil)
    sigmoid = params.distil.target == "logit"
    native = _native_variant("gbm_distilled", "gbm_distilled", student, workdir, sigmoid)
    yield native
    graph = lightgbm_to_onnx(student, n, sigmoid=sigmoid)
    yield _onnx_variant(
        "gbm_distilled_onnx", "gbm_distilled", graph, workdir, n_params=native.n_params
    )
    if "lleaves" in params.compilers:
        yield _compiled_student(student, "logistic" if sigmoid else "identity", workdir, native)
    if labelled is not None and params.label_control:
        control = small_lightgbm_on_labels(labelled[0], labelled[1], params.distil)
        yield _onnx_variant(
            "gbm_labels_onnx",
            "gbm_labels",
            lightgbm_to_onnx(control, n),
            workdir,
            n_params=n_tree_nodes(control),
        )


def _compiled_student(
    student: Any, link: str, workdir: Path, native: Variant
) -> Variant | tuple[str, str]:
    """The distilled forest compiled by lleaves (same model as its ONNX form, native code)."""
    name = "gbm_distilled_lleaves"
    try:
        forest = compile_lleaves(student, name, workdir, link)
    except Exception as exc:  # optional, version-fragile dependency: report, never fail
        return name, f"lleaves unavailable: {type(exc).__name__}: {exc}"
    note = "x86-64 object code called through ctypes (llvmlite only)"
    return Variant(
        name,
        "gbm_distilled",
        "lleaves",
        forest,
        forest.size_bytes,
        compiled_path(workdir, name),
        native.n_params,
        note,
    )


def compile_mlp_student(net: StudentMLP) -> CompiledModel:
    """The MLP's scoring function (:class:`ProbabilityHead`) compiled to x86-64 code by LLVM."""
    head = ProbabilityHead(net)
    weights = [w.detach().numpy() for w in head.weights]
    biases = [b.detach().numpy() for b in head.biases]
    log_columns = np.flatnonzero(head.log_mask.numpy()).tolist()
    code = compile_mlp(weights, biases, log_columns)
    return CompiledModel(code, weights[0].shape[0], "logistic", MLP_ENTRY)


def _compiled_mlp(
    net: StudentMLP, name: str, workdir: Path, note: str
) -> Variant | tuple[str, str]:
    """An MLP student compiled by LLVM (same network as its ONNX form, native code)."""
    try:
        model = compile_mlp_student(net)
    except Exception as exc:  # llvmlite / LLVM trouble: report the variant as skipped
        return name, f"llvm unavailable: {type(exc).__name__}: {exc}"
    path = _write(compiled_path(workdir, name), model.object_code)
    note = f"{note}; x86-64 object code called through ctypes (llvmlite only)"
    return Variant(name, "mlp", "llvm", model, model.size_bytes, path, net.n_parameters(), note)


def _mlp_variants(
    teacher: Any,
    X_unlabelled: np.ndarray,
    params: OptimizeParams,
    workdir: Path,
    on_prune: Callable[[PruneResult], None],
) -> Iterator[Variant | tuple[str, str]]:
    n = X_unlabelled.shape[1]
    mlp = fit_mlp_student(teacher, X_unlabelled, params.mlp)

    def export(net: StudentMLP) -> bytes:
        return mlp_to_onnx(ProbabilityHead(net), n, exporter=params.onnx_exporter)

    graphs = {"mlp_onnx": (mlp, export(mlp))}
    soft = expit(teacher_logits(teacher, X_unlabelled) / params.mlp.temperature)
    pruned = prune_mlp_structured(
        mlp, X_unlabelled, params.prune.amount, soft_targets=soft, params=params.prune
    )
    on_prune(pruned)
    graphs["mlp_pruned_onnx"] = (pruned.model, export(pruned.model))
    for name, (net, graph) in graphs.items():
        note = f"hidden={list(net.hidden_sizes)}"
        yield _onnx_variant(name, "mlp", graph, workdir, n_params=net.n_parameters(), note=note)
        if "llvm" in params.compilers:
            yield _compiled_mlp(net, name.replace("_onnx", "_llvm"), workdir, note)
        if params.quantize_int8:
            q = quantize_onnx_int8(graph)
            yield _onnx_variant(
                f"{name}_int8",
                "mlp",
                q,
                workdir,
                n_params=net.n_parameters(),
                note=f"{note}; ops={sorted(set(onnx_op_types(q)))}",
            )


def optimize_teacher(
    teacher: Any,
    X_unlabelled: np.ndarray,
    validation: EvalSet,
    test: EvalSet,
    params: OptimizeParams,
    workdir: str | Path,
    *,
    labelled: tuple[np.ndarray, np.ndarray] | None = None,
    progress: bool = True,
) -> OptimizeResult:
    """Build, export and measure every variant of the teacher and choose the edge model.

    Parameters
    ----------
    teacher : lightgbm.LGBMClassifier or lightgbm.Booster
        The trained teacher.
    X_unlabelled : numpy.ndarray
        Raw feature rows for distillation (labels not needed), e.g. all rows before the
        validation window.
    validation : EvalSet
        Data the selection policy's losses are computed on (``val_*`` columns).
    test : EvalSet
        Data every reported metric and timing uses.
    params : OptimizeParams
    workdir : str or Path
        Folder for the artifacts (ONNX graphs, model files, compiled libraries); created.
    labelled : (X, y), optional
        Training rows with labels for the same-size labels-only control model.
    progress : bool, default True
        Show a tqdm progress bar.

    Returns
    -------
    OptimizeResult
    """
    from tqdm.auto import tqdm

    unknown = sorted(set(params.compilers) - set(COMPILERS))
    if unknown:
        raise ValueError(f"unknown optimize.compilers {unknown}; expected some of {COMPILERS}")
    not_edge = sorted(set(params.selection.formats) - set(EDGE_FORMATS))
    if not_edge:
        raise ValueError(
            f"optimize.selection.formats {not_edge} cannot be deployed at the edge; "
            f"expected some of {EDGE_FORMATS}"
        )
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    teacher_test = LightGBMPredictor(teacher).predict_scores(test.X)
    teacher_val = LightGBMPredictor(teacher).predict_scores(validation.X)
    rows: list[dict[str, Any]] = []
    paths: dict[str, Path] = {}
    compiled: dict[str, CompiledModel] = {}
    skipped: dict[str, str] = {}
    holder: list[PruneResult] = []
    scorers: dict[str, Predictor] = {}
    sources: list[Iterator[Variant | tuple[str, str]]] = [
        _teacher_variants(teacher, X_unlabelled.shape[1], params, workdir),
        _tree_student_variants(teacher, X_unlabelled, labelled, params, workdir),
        _mlp_variants(teacher, X_unlabelled, params, workdir, holder.append),
    ]
    bar = tqdm(desc="optimize", unit="variant", disable=not progress)
    for source in sources:
        for item in source:
            if isinstance(item, tuple):
                skipped[item[0]] = item[1]
                continue
            bar.set_postfix_str(item.name)
            rows.append(
                _quality_row(item, test, validation, teacher_test, teacher_val, params.bench)
            )
            scorers[item.name] = item.scorer
            if item.format in EDGE_FORMATS and item.path is not None:
                paths[item.name] = item.path
            if isinstance(item.scorer, CompiledModel):
                compiled[item.name] = item.scorer
            bar.update()
    bar.set_postfix_str("timing all variants, interleaved")
    speed = measure_speed(scorers, test.X, params.bench)
    bar.close()
    for row in rows:
        row.update(speed[row["name"]])
    table = add_relative_columns(pd.DataFrame(rows), params.selection.reference)
    chosen = select_variant(table, params.selection)
    prune = holder[0] if holder else None
    figure = plot_frontier(table, chosen)
    return OptimizeResult(table, chosen, paths, compiled, prune, skipped, figure)


def _quality_row(
    variant: Variant,
    test: EvalSet,
    validation: EvalSet,
    teacher_test: np.ndarray,
    teacher_val: np.ndarray,
    bench: BenchParams,
) -> dict[str, Any]:
    """Size and quality of one variant on test and validation; timing comes later, for all."""
    row = quality_metrics(
        variant.scorer.predict_scores(test.X),
        test.y,
        test.customer_ids,
        test.timestamps,
        teacher_test,
        k=bench.k,
        alert_rate=bench.alert_rate,
    )
    val = quality_metrics(
        variant.scorer.predict_scores(validation.X),
        validation.y,
        validation.customer_ids,
        validation.timestamps,
        teacher_val,
        k=bench.k,
        alert_rate=bench.alert_rate,
    )
    row.update({f"val_{key}": val[key] for key in ("roc_auc", "ap", "card_precision_at_k")})
    meta = {"family": variant.family, "format": variant.format, "n_params": variant.n_params}
    return {
        "name": variant.name,
        **meta,
        "size_bytes": int(variant.size_bytes),
        **row,
        "note": variant.note,
    }
