"""The ``optimize`` stage: variants of the registered teacher, measured, chosen, registered.

Reads the model the register stage just registered (the teacher), builds every optimized
variant with :func:`inferloop.edge.builders.optimize.optimize_teacher`, wraps the chosen variant (an ONNX
graph, or a forest or MLP compiled to x86-64 code) as a :class:`~inferloop.model.FraudModel`
(same raw-transaction input, same featurizer), and registers it as ``fraud-detector-edge``
tagged with its teacher's version. The edge model gets ``champion`` when its teacher is the
champion.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pandas as pd

from inferloop.core import schema as s
from inferloop.core.config import load_section
from inferloop.core.registry import (
    CHALLENGER,
    CHAMPION,
    RegistryParams,
    alias_version,
    register_version,
)
from inferloop.core.storage import read_json, write_json
from inferloop.core.tracking import configure_mlflow, repo_root
from inferloop.data.contract import load_contract
from inferloop.data.stage import ProcessedData, load_processed
from inferloop.edge.builders.measure import EvalSet
from inferloop.edge.builders.optimize import OptimizeResult, optimize_teacher
from inferloop.edge.builders.params import OptimizeParams
from inferloop.evaluation.gates import EvaluateParams
from inferloop.evaluation.metrics import ThresholdPolicy, choose_threshold
from inferloop.model import FraudModel
from inferloop.model_logging import input_example, log_fraud_model

__all__ = [
    "METRIC_COLUMNS",
    "EdgeOutcome",
    "run_optimize",
]


#: Columns of the variant table that go to DVC metrics for the teacher and the chosen variant.
METRIC_COLUMNS = (
    "size_bytes",
    "p50_us",
    "p99_us",
    "rows_per_s",
    "roc_auc",
    "ap",
    "card_precision_at_k",
    "max_abs_diff",
)


@dataclass
class EdgeOutcome:
    """What the optimize stage produced."""

    result: OptimizeResult
    teacher_version: str
    edge_version: str
    edge_is_champion: bool
    threshold: float


def _teacher(
    candidates: dict[str, Any], register: dict[str, Any], name: str
) -> tuple[Any, str, str]:
    """The LightGBM estimator to optimize, the registry version it serves, and its model URI.

    The registered version is the teacher when it is a LightGBM model; otherwise (the MLP or
    the baseline won) the pipeline's LightGBM candidate is distilled instead.
    """
    import mlflow

    version = str(register["version"])
    model = mlflow.pyfunc.load_model(f"models:/{name}/{version}").unwrap_python_model()
    if getattr(model.estimator, "booster_", None) is not None:
        return model.estimator, version, f"models:/{name}/{version}"
    lgbm = candidates["candidates"]["lightgbm"]["model_uri"]
    return mlflow.pyfunc.load_model(lgbm).unwrap_python_model().estimator, version, lgbm


def _dropped_postprocess(teacher_uri: str) -> str | None:
    """The attribute of the teacher's per-group thresholds, which an edge model leaves out."""
    import mlflow

    post = getattr(mlflow.pyfunc.load_model(teacher_uri).unwrap_python_model(), "postprocess", None)
    return None if post is None else str(post.attribute)


def run_optimize(
    params_path: str | Path,
    split_dir: str,
    featurizer_path: str,
    processed_path: str,
    candidates_path: str,
    register_path: str,
    out_dir: str,
    metrics_path: str,
) -> EdgeOutcome:
    """Build, measure and choose the edge variant; register it as ``registry.edge_model_name``
    (default ``fraud-detector-edge``), distilled from ``registry.model_name``'s version."""
    import mlflow

    root = repo_root(Path(params_path).resolve().parent)
    configure_mlflow(root)
    params = load_section(OptimizeParams, "optimize", params_path)
    policy = load_section(ThresholdPolicy, "threshold", params_path)
    data = load_processed(split_dir, featurizer_path)
    candidates, register = read_json(candidates_path), read_json(register_path)
    names = load_section(RegistryParams, "registry", params_path)
    teacher, teacher_version, teacher_uri = _teacher(candidates, register, names.model_name)
    result = optimize_teacher(
        teacher,
        _unlabelled_before_validation(processed_path, data),
        EvalSet.from_frame(data.validation, data.features),
        EvalSet.from_frame(data.test, data.features),
        params,
        Path(out_dir) / "variants",
        labelled=(data.train[data.features].to_numpy(np.float32), data.train[s.TARGET].to_numpy()),
    )
    classifier = result.edge_classifier()
    val_scores = classifier.predict_scores(data.validation[data.features].to_numpy(np.float32))
    choice = choose_threshold(
        val_scores,
        data.validation[s.TARGET].to_numpy(),
        policy,
        timestamps=data.validation[s.TIMESTAMP].to_numpy(),
    )
    contract = load_contract(params_path)
    edge = FraudModel(
        data.featurizer, classifier, choice.threshold, f"edge:{result.chosen}", contract
    )
    _write_reports(result, Path(out_dir), metrics_path)
    with (
        mlflow.start_run(run_id=candidates["parent_run_id"]),
        mlflow.start_run(run_name="optimize", nested=True),
    ):
        edge_version = _log_and_register(
            edge,
            result,
            teacher_version,
            choice.threshold,
            data.validation,
            Path(out_dir),
            teacher_uri,
            names.edge_model_name,
        )
    is_champion = alias_version(names.model_name, CHAMPION) == teacher_version
    if is_champion:
        from mlflow import MlflowClient

        MlflowClient().set_registered_model_alias(names.edge_model_name, CHAMPION, edge_version)
    k = load_section(EvaluateParams, "evaluate", params_path).k
    write_json(
        {
            **read_json(metrics_path),
            "edge_version": edge_version,
            "teacher_version": teacher_version,
            "edge_is_champion": is_champion,
            "k": k,
        },
        metrics_path,
    )
    return EdgeOutcome(result, teacher_version, edge_version, is_champion, choice.threshold)


def _unlabelled_before_validation(processed_path: str, data: ProcessedData) -> np.ndarray:
    """Feature rows before the validation window, labels ignored: the distillation set.

    A table without time has no "before": its training rows are the set.
    """
    if not data.featurizer.dataset_spec.timed:
        return data.train[data.features].to_numpy(np.float32)
    start = pd.to_datetime(data.validation[s.TIMESTAMP]).min()
    history = pd.read_parquet(processed_path, columns=[s.TIMESTAMP, *data.features])
    before = pd.to_datetime(history[s.TIMESTAMP]) < start
    return history.loc[before, data.features].to_numpy(np.float32)


def _row_metrics(table: pd.DataFrame, name: str) -> dict[str, float]:
    row = table.set_index("name").loc[name]
    return {c: float(row[c]) for c in METRIC_COLUMNS if c in row.index and pd.notna(row[c])}


def _write_reports(result: OptimizeResult, out: Path, metrics_path: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    table = result.table
    table.to_csv(out / "variants.csv", index=False)
    (out / "variants.md").write_text(table.to_markdown(index=False, floatfmt=".4g") + "\n")
    result.figure.savefig(out / "frontier.png", dpi=110, bbox_inches="tight")
    teacher, edge = _row_metrics(table, "teacher"), _row_metrics(table, result.chosen)
    metrics: dict[str, Any] = {"chosen": result.chosen, "teacher": teacher, "edge": edge}
    if edge and teacher:
        metrics["size_ratio"] = teacher["size_bytes"] / edge["size_bytes"]
        metrics["p50_speedup"] = teacher["p50_us"] / edge["p50_us"]
        metrics["ap_loss"] = teacher["ap"] - edge["ap"]
        metrics["roc_auc_loss"] = teacher["roc_auc"] - edge["roc_auc"]
    write_json(metrics, metrics_path)


def _log_and_register(
    edge: FraudModel,
    result: OptimizeResult,
    teacher_version: str,
    threshold: float,
    validation: pd.DataFrame,
    out: Path,
    teacher_uri: str,
    edge_name: str,
) -> str:
    import mlflow

    mlflow.log_params(
        {
            "chosen_variant": result.chosen,
            "teacher_version": teacher_version,
            "threshold": threshold,
        }
    )
    mlflow.log_artifact(str(out / "variants.md"))
    mlflow.log_artifact(str(out / "variants.csv"))
    mlflow.log_figure(result.figure, "plots/latency_accuracy_frontier.png")
    # the registry page shows images at their pixel size and its markdown allows no width
    mlflow.log_figure(
        result.figure, DESCRIPTION_FRONTIER, save_kwargs={"dpi": 64, "bbox_inches": "tight"}
    )
    for variant, row in result.table.set_index("name").iterrows():
        mlflow.log_metrics(
            {
                f"{variant}.{c}": float(row[c])
                for c in METRIC_COLUMNS
                if c in row.index and pd.notna(row[c])
            }
        )
    info = log_fraud_model(edge, input_example(validation, columns=edge.input_columns))
    # teacher_version: the fraud-detector version this edge model stands in for;
    # teacher_model: the LightGBM model actually distilled (the pipeline's LightGBM candidate
    # when another candidate won the registered version).
    tags = {
        "teacher_version": teacher_version,
        "teacher_model": teacher_uri,
        "variant": result.chosen,
        "threshold": str(threshold),
    }
    dropped = _dropped_postprocess(teacher_uri)
    if dropped:  # the edge model is distilled from the base score, decided at one threshold
        tags["postprocess"] = (
            f"not carried: the teacher decides with per-group thresholds on {dropped}; "
            "this edge model decides at one threshold, without it"
        )
    tags.update({f"edge.{k}": str(v) for k, v in _row_metrics(result.table, result.chosen).items()})
    description = _edge_description(result, teacher_version, mlflow.active_run())
    return register_version(
        info.model_uri, edge_name, tags, alias=CHALLENGER, description=description
    )


#: The variant columns the edge version's description shows (the run has them all).
_DESCRIBED = ("name", "format", "size_bytes", "ap", "val_ap", "p50_us", "decision_flips")
#: The frontier figure's artifact path in the optimize run, and its copy sized for the edge
#: version's page (the registry shows it in the description).
FRONTIER_ARTIFACT = "plots/latency_accuracy_frontier.png"
DESCRIPTION_FRONTIER = "plots/latency_accuracy_frontier_small.png"


def _edge_description(result: OptimizeResult, teacher_version: str, run: Any) -> str:
    """The edge version's registry description: the choice, its frontier plot, the variants.

    The plot is the optimize run's artifact, shown through the tracking server's
    ``get-artifact`` endpoint (the UI renders the markdown image; the file stays in the run).
    """
    run_id = run.info.run_id if run is not None else ""
    image = f"get-artifact?path={quote(DESCRIPTION_FRONTIER, safe='')}&run_uuid={run_id}"
    shown = [c for c in _DESCRIBED if c in result.table.columns]
    variants = result.table[shown].to_markdown(index=False, floatfmt=".4g")
    text = (
        f"# Edge model: {result.chosen}\n\n"
        f"Distilled from fraud-detector v{teacher_version}; the variant chosen on the "
        f"latency/accuracy frontier below (artifact `{FRONTIER_ARTIFACT}` of run `{run_id}`)."
        f"\n\n![Latency/accuracy frontier]({image})\n\n## Variants\n\n{variants}\n\n"
        f"All columns: artifact `variants.md` of the same run."
    )
    return text[:5000]  # the registry keeps 5,000 characters of a description
