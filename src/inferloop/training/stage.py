"""Model stages of the DVC pipeline: train, evaluate, register — tracked in MLflow.

One parent MLflow run per pipeline run (opened by ``train``, reused by ``evaluate`` and
``register``), one child run per candidate. Stage outputs that DVC tracks are small JSON and
CSV files under ``reports/``; models live in the MLflow store.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from inferloop.core import schema as s
from inferloop.core.config import load_section, read_params
from inferloop.core.dataset import DatasetSpec, load_dataset_spec
from inferloop.core.lineage import dvc_out_hash, git_commit, params_hash
from inferloop.core.registry import (
    CHAMPION,
    FULL_MODEL,
    TAG_FAILED_GATES,
    TAG_GATES_PASSED,
    TAG_TRAINED_THROUGH,
    AliasMove,
    RegistryParams,
    alias_version,
    promote,
    register_version,
)
from inferloop.core.storage import jsonable, read_json, write_json, write_pickle
from inferloop.core.tracking import configure_mlflow, ensure_experiment, repo_root
from inferloop.data.contract import ContractParams, load_contract
from inferloop.data.features import TransactionFeaturizer
from inferloop.data.stage import ProcessedData, load_processed
from inferloop.evaluation.calibration import CALIBRATION_TAG, fit_calibration
from inferloop.evaluation.fairness import (
    GroupFairness,
    fairness_report,
    fairness_table,
    plot_group_metrics,
)
from inferloop.evaluation.gates import Decision, EvaluateParams, decide, model_card
from inferloop.evaluation.group_thresholds import (
    GroupThresholds,
    PostprocessParams,
    fit_group_thresholds,
)
from inferloop.evaluation.metrics import (
    ClassificationMetrics,
    ThresholdPolicy,
    choose_threshold,
    compute_metrics,
    investigation_units,
    pr_curve_points,
    roc_curve_points,
)
from inferloop.evaluation.plots import plot_calibration, plot_pr_roc, plot_score_distribution
from inferloop.model import FraudModel, LiveScorer
from inferloop.model_logging import input_example, log_fraud_model
from inferloop.training.candidates import (
    POSTPROCESSED,
    TrainedCandidate,
    TrainParams,
    train_candidates,
)
from inferloop.training.importance import feature_importance, plot_feature_importance

__all__ = [
    "EXPERIMENT",
    "LINEAGE_TAGS",
    "EvaluateOutcome",
    "RegisterOutcome",
    "TrainOutcome",
    "run_evaluate",
    "run_register",
    "run_train",
    "score_with",
    "write_model_files",
]


EXPERIMENT = "fraud-detector"
#: Run tags copied onto registered versions: data, code and params lineage, and what triggered a retrain.
LINEAGE_TAGS = ("data_dvc_md5", "git_commit", "params_hash", "trigger_report", "retrain_reason")


def _metrics_for(
    frame: pd.DataFrame, scores: np.ndarray, threshold: float, k: int
) -> ClassificationMetrics:
    return compute_metrics(
        frame[s.TARGET].to_numpy(),
        scores,
        threshold,
        investigation_units(frame),
        frame[s.TIMESTAMP].to_numpy(),
        k=k,
    )


def _lineage(root: Path, params_path: str | Path, split_dir: str) -> dict[str, str]:
    params = read_params(params_path)
    used = {
        k: params.get(k) for k in ("data", "simulate", "featurize", "split", "train", "threshold")
    }
    tags = {
        "data_dvc_md5": dvc_out_hash(root, split_dir),
        "git_commit": git_commit(root),
        "params_hash": params_hash(used),
    }
    trigger = params.get("retrain") or {}
    if trigger.get("trigger_report"):  # set by `inferloop retrain`
        tags["trigger_report"] = str(trigger["trigger_report"])
        tags["retrain_reason"] = str(trigger.get("reason", ""))
    return tags


def _log_candidate_plots(
    candidate: TrainedCandidate, frame: pd.DataFrame, features: list[str]
) -> None:
    import mlflow

    y = frame[s.TARGET].to_numpy()
    scores = candidate.validation_scores
    for fig, name in (
        (plot_pr_roc(y, {candidate.name: scores}), "validation_pr_roc.png"),
        (plot_calibration(y, scores), "validation_calibration.png"),
        (plot_score_distribution(y, scores), "validation_score_distribution.png"),
        (
            plot_feature_importance(feature_importance(candidate, features)),
            "feature_importance.png",
        ),
    ):
        mlflow.log_figure(fig, f"plots/{name}")


@dataclass
class TrainOutcome:
    """What the train stage produced (also written to ``candidates.json``)."""

    parent_run_id: str
    best: str
    candidates: dict[str, dict[str, Any]]


def run_train(
    params_path: str | Path,
    split_dir: str,
    featurizer_path: str,
    candidates_path: str | Path,
    metrics_path: str | Path,
    models_dir: str | Path,
) -> TrainOutcome:
    """Train every candidate, log each as a deployable model in a child run, pick the best.

    The best candidate is the one with the highest validation average precision (the test
    window is kept for the evaluate stage, so it never influences the choice). Writes the
    estimators to ``models_dir`` and their validation metrics to ``metrics_path`` (both
    reproducible to the byte), and the run record -- MLflow run ids, model URIs, training
    seconds -- to ``candidates_path``, which later stages read for the ids.
    """
    import mlflow

    root = repo_root(Path(params_path).resolve().parent)
    configure_mlflow(root)
    experiment_id = ensure_experiment(EXPERIMENT, root)
    train_params = load_section(TrainParams, "train", params_path)
    policy = load_section(ThresholdPolicy, "threshold", params_path)
    k = load_section(EvaluateParams, "evaluate", params_path).k
    contract = load_contract(params_path)
    data = load_processed(split_dir, featurizer_path)
    lineage = _lineage(root, params_path, split_dir)
    example = input_example(data.validation, columns=contract.dataset.scoring_columns)
    summary: dict[str, dict[str, Any]] = {}
    with mlflow.start_run(
        experiment_id=experiment_id, run_name=f"pipeline-{time.strftime('%Y%m%d-%H%M%S')}"
    ) as parent:
        mlflow.set_tags({**lineage, "stage": "pipeline"})
        mlflow.log_params({f"split.{k2}": v for k2, v in _split_windows(data).items()})
        trained = train_candidates(data.train, data.validation, data.features, train_params)
        for name, candidate in trained.items():
            with mlflow.start_run(experiment_id=experiment_id, run_name=name, nested=True) as child:
                summary[name] = _log_candidate(
                    candidate, data, policy, k, example, lineage, contract, train_params.postprocess
                )
                summary[name]["run_id"] = child.info.run_id
        best = max(summary, key=lambda n: summary[n]["validation"]["average_precision"])
        mlflow.set_tag("best_candidate", best)
    outcome = TrainOutcome(parent.info.run_id, best, summary)
    # the run record (MLflow ids, timings) differs on every run: it stays out of DVC's hashes
    write_json(
        {"parent_run_id": outcome.parent_run_id, "best": best, "candidates": summary},
        candidates_path,
    )
    write_json({n: c["validation"] for n, c in summary.items()}, metrics_path)
    write_model_files(trained, models_dir)
    return outcome


def write_model_files(trained: Mapping[str, TrainedCandidate], models_dir: str | Path) -> None:
    """Each fitted estimator pickled to ``<models_dir>/<name>.pkl``: the stage's hashed output.

    With the same data, params and seed these bytes are the same on every run (LightGBM and
    torch on one thread, seeded), which is what makes the train stage reproducible; the
    deployable MLflow model of each candidate wraps the same estimator.
    """
    out = Path(models_dir)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.pkl"):
        stale.unlink()
    for name, candidate in trained.items():
        write_pickle(candidate.estimator, out / f"{name}.pkl")


def _split_windows(data: ProcessedData) -> dict[str, str]:
    """Flat ``<window>_start`` / ``<window>_end`` dates, for MLflow params."""
    return {
        f"{name}_{edge}": w[edge] for name, w in _windows(data).items() for edge in ("start", "end")
    }


def _log_candidate(
    candidate: TrainedCandidate,
    data: Any,
    policy: ThresholdPolicy,
    k: int,
    example: pd.DataFrame,
    lineage: dict[str, str],
    contract: ContractParams,
    postprocess: PostprocessParams,
) -> dict[str, Any]:
    import mlflow

    val = data.validation
    choice = choose_threshold(
        candidate.validation_scores,
        val[s.TARGET].to_numpy(),
        policy,
        timestamps=val[s.TIMESTAMP].to_numpy(),
    )
    post = _group_thresholds(candidate, val, choice.threshold, postprocess)
    if post is not None:  # everything below sees the scores the served model gives
        groups = val[post.attribute].to_numpy(dtype=object)
        candidate.validation_scores = post.adjust(candidate.validation_scores, groups)
        mlflow.log_dict(jsonable(dataclasses.asdict(post)), "postprocess/group_thresholds.json")
        example = input_example(val, columns=(*contract.dataset.scoring_columns, post.attribute))
    metrics = _metrics_for(val, candidate.validation_scores, choice.threshold, k)
    # fitted on the served score, so monitoring can estimate before labels (never decides)
    calibration, effect = fit_calibration(
        val[s.TARGET].to_numpy(), candidate.validation_scores, threshold=choice.threshold
    )
    mlflow.log_metrics(effect.as_dict("calibration_"))
    mlflow.log_dict(calibration.as_dict(), f"{CALIBRATION_TAG}/{CALIBRATION_TAG}.json")
    mlflow.set_tags(
        {
            **lineage,
            "candidate": candidate.name,
            "threshold_fell_back": str(choice.fell_back),
            CALIBRATION_TAG: calibration.kind,
        }
    )
    mlflow.log_params(
        {**candidate.params, "threshold_policy": policy.kind, "threshold": choice.threshold}
    )
    mlflow.log_metrics({**metrics.as_dict("validation_"), "train_seconds": candidate.train_seconds})
    _log_candidate_plots(candidate, val, data.features)
    model = FraudModel(
        data.featurizer,
        candidate.estimator,
        choice.threshold,
        candidate.name,
        contract,
        post,
        calibration,
    )
    info = log_fraud_model(model, example)
    return {
        "model_uri": info.model_uri,
        "threshold": choice.threshold,
        "train_seconds": candidate.train_seconds,
        "validation": jsonable(metrics.as_dict()),
        "calibration": calibration.to_json(),
        "calibration_effect": {"kind": calibration.kind, **jsonable(effect.as_dict())},
    }


def _fairness_attributes(spec: DatasetSpec, test: pd.DataFrame) -> list[str]:
    """The declared sensitive attributes; each must be in the test rows (never dropped quietly)."""
    missing = [a for a in spec.sensitive_columns if a not in test.columns]
    if missing:
        raise ValueError(
            f"sensitive attribute(s) {missing} declared in dataset.sensitive_attributes are not "
            f"in the test rows (columns: {sorted(map(str, test.columns))})"
        )
    return list(spec.sensitive_columns)


def _group_thresholds(
    candidate: TrainedCandidate, val: pd.DataFrame, threshold: float, params: PostprocessParams
) -> GroupThresholds | None:
    """The per-group thresholds of a post-processed candidate (None for the others)."""
    if candidate.name not in POSTPROCESSED:
        return None
    if params.attribute not in val.columns:
        raise ValueError(
            f"candidate {candidate.name} needs the attribute {params.attribute!r} "
            "(train.postprocess.attribute) in the validation rows"
        )
    return fit_group_thresholds(
        candidate.validation_scores,
        val[s.TARGET].to_numpy(),
        val[params.attribute].to_numpy(dtype=object),
        threshold,
        params,
    )


# --------------------------------------------------------------------------- evaluate


@dataclass
class EvaluateOutcome:
    """Results of the evaluate stage for notebooks."""

    decision: Decision
    metrics: dict[str, ClassificationMetrics]
    fairness: dict[str, GroupFairness]
    scores: dict[str, np.ndarray]
    card: str


def score_with(
    model_uri: str, frame: pd.DataFrame, history: TransactionFeaturizer | None = None
) -> np.ndarray:
    """Scores of a logged/registered model on raw rows, through ``mlflow.pyfunc`` (the deploy path).

    With ``history``, the model's own (possibly older) feature history is replaced by a copy of
    it when both compute the same features, and the rows go through the live scorer: the
    champion is then compared on exactly the features the challenger sees, as it would be in
    production where the history is live. ``history`` itself is left as it is.
    """
    import mlflow

    model = mlflow.pyfunc.load_model(model_uri)
    raw = frame[list(model.unwrap_python_model().input_columns)]
    if history is not None:
        live = copy.copy(model.unwrap_python_model())
        if list(live.featurizer.feature_names_out_) == list(history.feature_names_out_):
            live.featurizer = copy.copy(history)  # the live scorer advances its featurizer
            return LiveScorer(live).score(raw)[s.SCORE].to_numpy()
    return model.predict(raw)[s.SCORE].to_numpy()


def run_evaluate(
    params_path: str | Path,
    split_dir: str,
    featurizer_path: str,
    candidates_path: str | Path,
    decision_path: str | Path,
    metrics_path: str | Path,
    plots_dir: str | Path,
    card_path: str | Path,
) -> EvaluateOutcome:
    """Score every candidate and the champion on the test window; apply the gates to the best."""
    import mlflow

    root = repo_root(Path(params_path).resolve().parent)
    configure_mlflow(root)
    params = load_section(EvaluateParams, "evaluate", params_path)
    trained = read_json(candidates_path)
    processed = load_processed(split_dir, featurizer_path)
    test = processed.test
    best = trained["best"]
    model_name = load_section(RegistryParams, "registry", params_path).model_name
    scores, thresholds, champion_version = _score_on_test(trained, processed, model_name)
    metrics = {n: _metrics_for(test, sc, thresholds[n], params.k) for n, sc in scores.items()}
    decisions = (scores[best] >= thresholds[best]).astype(int)
    scored = test.assign(**{s.SCORE: scores[best], s.DECISION: decisions})
    spec = load_dataset_spec(params_path)
    attributes = _fairness_attributes(spec, test)
    fairness = fairness_report(
        scored,
        y_col=s.TARGET,
        pred_col=s.DECISION,
        score_col=s.SCORE,
        attributes=attributes,
        min_group_size=params.min_group_size,
        interval=params.fairness_gate,
    )
    decision = decide(
        best,
        metrics[best],
        fairness,
        params.gates,
        metrics.get("champion"),
        champion_version,
        fairness_gate=params.fairness_gate,
    )
    windows = _windows(processed)
    card = model_card(
        candidate=best,
        windows=windows,
        metrics=metrics,
        fairness=fairness,
        decision=decision,
        lineage={
            k: v
            for k, v in mlflow.get_run(trained["candidates"][best]["run_id"]).data.tags.items()
            if k in ("data_dvc_md5", "git_commit", "params_hash")
        },
        train_seconds={n: c["train_seconds"] for n, c in trained["candidates"].items()},
        postprocess=_postprocess_of(trained["candidates"][best]["model_uri"]),
        calibration=trained["candidates"][best].get("calibration_effect"),
        dataset=spec,
        categories=processed.featurizer.categories,
        model_name=model_name,
    )
    _write_evaluation(
        decision,
        metrics,
        fairness,
        scores,
        test,
        best,
        decision_path,
        metrics_path,
        plots_dir,
        card_path,
        card,
    )
    _log_evaluation(
        trained, best, decision, metrics, fairness, scores, test, card_path, decision_path
    )
    return EvaluateOutcome(decision, metrics, fairness, scores, card)


def _postprocess_of(model_uri: str) -> GroupThresholds | None:
    """The per-group thresholds of a logged model, if it has them."""
    import mlflow

    model = mlflow.pyfunc.load_model(model_uri).unwrap_python_model()
    return getattr(model, "postprocess", None)


def _score_on_test(
    trained: dict[str, Any], processed: ProcessedData, model_name: str
) -> tuple[dict[str, np.ndarray], dict[str, float], str | None]:
    """Test-window scores and thresholds of every candidate and of the champion (if any)."""
    import mlflow

    test = processed.test
    scores = {name: score_with(c["model_uri"], test) for name, c in trained["candidates"].items()}
    thresholds = {name: c["threshold"] for name, c in trained["candidates"].items()}
    champion_version = alias_version(model_name, CHAMPION)
    if champion_version is not None:
        champ_uri = f"models:/{model_name}@{CHAMPION}"
        scores["champion"] = score_with(champ_uri, test, history=processed.featurizer)
        thresholds["champion"] = mlflow.pyfunc.load_model(champ_uri).unwrap_python_model().threshold
    return scores, thresholds, champion_version


def _windows(data: ProcessedData) -> dict[str, dict[str, Any]]:
    """First and last day, rows and frauds of each split window (model card, MLflow params)."""
    out = {}
    for name in ("train", "validation", "test"):
        frame = getattr(data, name)
        ts = pd.to_datetime(frame[s.TIMESTAMP])
        out[name] = {
            "start": str(ts.min().date()),
            "end": str(ts.max().date()),
            "rows": len(frame),
            "frauds": int(frame[s.TARGET].sum()),
        }
    return out


def _write_evaluation(
    decision: Decision,
    metrics: dict[str, ClassificationMetrics],
    fairness: dict[str, GroupFairness],
    scores: dict[str, np.ndarray],
    test: pd.DataFrame,
    best: str,
    decision_path: str | Path,
    metrics_path: str | Path,
    plots_dir: str | Path,
    card_path: str | Path,
    card: str,
) -> None:
    write_json(decision.as_dict(), decision_path)
    flat: dict[str, Any] = {"chosen": best, "gates_passed": decision.passed}
    for name, m in metrics.items():
        flat[name] = jsonable(
            {
                k: m.as_dict()[k]
                for k in (
                    "roc_auc",
                    "average_precision",
                    "card_precision_at_k",
                    "precision",
                    "recall",
                    "brier",
                )
            }
        )
    flat["fairness"] = {
        a: jsonable({k: v for k, v in f.as_dict(prefix="").items()}) for a, f in fairness.items()
    }
    write_json(flat, metrics_path)
    plots = Path(plots_dir)
    plots.mkdir(parents=True, exist_ok=True)
    y = test[s.TARGET].to_numpy()
    pr = pd.concat([pr_curve_points(y, sc).assign(model=n) for n, sc in scores.items()])
    roc = pd.concat([roc_curve_points(y, sc).assign(model=n) for n, sc in scores.items()])
    pr.to_csv(plots / "test_pr.csv", index=False)
    roc.to_csv(plots / "test_roc.csv", index=False)
    Path(card_path).parent.mkdir(parents=True, exist_ok=True)
    Path(card_path).write_text(card)


def _log_evaluation(
    trained: dict[str, Any],
    best: str,
    decision: Decision,
    metrics: dict[str, ClassificationMetrics],
    fairness: dict[str, GroupFairness],
    scores: dict[str, np.ndarray],
    test: pd.DataFrame,
    card_path: str | Path,
    decision_path: str | Path,
) -> None:
    import mlflow

    y = test[s.TARGET].to_numpy()
    for name, cand in trained["candidates"].items():
        with mlflow.start_run(run_id=cand["run_id"]):
            mlflow.log_metrics(_finite_only(metrics[name].as_dict("test_")))
            if name == best:
                for report in fairness.values():
                    mlflow.log_metrics(
                        _finite_only(report.as_dict(prefix="test_fairness/", per_group=True))
                    )
                mlflow.log_artifact(str(card_path))
                mlflow.log_artifact(str(decision_path))
                mlflow.log_text(
                    fairness_table(fairness).to_csv(index=False), "fairness_by_group.csv"
                )
                mlflow.log_figure(plot_pr_roc(y, scores), "plots/test_pr_roc_vs_champion.png")
                mlflow.log_figure(plot_group_metrics(fairness), "plots/test_fairness_by_group.png")
                mlflow.set_tags(
                    {
                        TAG_GATES_PASSED: str(decision.passed).lower(),
                        TAG_FAILED_GATES: ",".join(decision.failed) or "none",
                    }
                )
    with mlflow.start_run(run_id=trained["parent_run_id"]):
        mlflow.log_metrics(_finite_only(metrics[best].as_dict("test_")))
        mlflow.set_tag(TAG_GATES_PASSED, str(decision.passed).lower())


def _finite_only(d: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in d.items() if np.isfinite(v)}


# --------------------------------------------------------------------------- register


@dataclass
class RegisterOutcome:
    """What the register stage did."""

    version: str
    promoted: bool
    move: AliasMove | None
    reason: str
    model_name: str = FULL_MODEL

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        champion = self.move.version if self.move else alias_version(self.model_name, CHAMPION)
        return {
            "model_name": self.model_name,
            "version": self.version,
            "promoted": self.promoted,
            "reason": self.reason,
            "champion": champion,
            "previous_champion": self.move.previous if self.move else None,
        }


def _trained_through(parent_run_id: str) -> str:
    """The last day of any split window of the training run (the version has seen it)."""
    import mlflow

    params = mlflow.get_run(parent_run_id).data.params
    ends = [v for k, v in params.items() if k.startswith("split.") and k.endswith("_end")]
    return max(ends) if ends else ""


#: The model card's file name beside the evaluate stage's decision.
CARD_FILE = "model_card.md"
#: MLflow stores a version's description in 5,000 characters (a PostgreSQL store enforces it).
_DESCRIPTION_CHARS = 5000


def _card_text(card: Path, run_id: str) -> str | None:
    """The model card as a registry description, cut to fit with a pointer to the full one."""
    if not card.is_file():
        return None
    text = card.read_text(encoding="utf-8")
    if len(text) <= _DESCRIPTION_CHARS:
        return text
    tail = f"\n\n... (cut; the full card is the artifact `{CARD_FILE}` of run `{run_id}`)\n"
    return text[: _DESCRIPTION_CHARS - len(tail)] + tail


def run_register(
    candidates_path: str | Path,
    decision_path: str | Path,
    out_path: str | Path,
    *,
    params_path: str | Path | None = None,
    card_path: str | Path | None = None,
) -> RegisterOutcome:
    """Register the evaluated candidate as ``challenger``; promote it if every gate passed.

    The registered model is ``registry.model_name`` of ``params_path`` (default
    ``fraud-detector``). The version is tagged with the last day of data it has seen
    (``trained_through``), which the production simulation checks before scoring, and with
    its calibration (which monitoring estimates with). Its description in the registry is
    the model card (``card_path``, default ``model_card.md`` beside the decision).
    """
    import mlflow

    configure_mlflow(repo_root(Path(candidates_path).resolve().parent))
    name = (
        load_section(RegistryParams, "registry", params_path).model_name
        if params_path is not None
        else FULL_MODEL
    )
    trained = read_json(candidates_path)
    decision = read_json(decision_path)
    best = trained["candidates"][decision["candidate"]]
    run_tags = mlflow.get_run(best["run_id"]).data.tags
    tags: dict[str, str] = {
        **{k: run_tags[k] for k in LINEAGE_TAGS if k in run_tags},
        TAG_TRAINED_THROUGH: _trained_through(trained["parent_run_id"]),
        "candidate": decision["candidate"],
        "run_id": best["run_id"],
        "threshold": str(best["threshold"]),
        TAG_GATES_PASSED: str(decision["passed"]).lower(),
        TAG_FAILED_GATES: ",".join(decision["failed"]) or "none",
        **{
            f"validation_{k}": str(v)
            for k, v in best["validation"].items()
            if k in ("average_precision", "roc_auc", "card_precision_at_k")
        },
        **{
            f"gate.{name}": f"{g['value']:.4f} ({'pass' if g['passed'] else 'FAIL'})"
            for name, g in decision["gates"].items()
            if g["value"] is not None
        },
    }
    if best.get("calibration"):
        tags[CALIBRATION_TAG] = best["calibration"]
    card = Path(card_path) if card_path else Path(decision_path).with_name(CARD_FILE)
    version = register_version(
        best["model_uri"], name, tags, description=_card_text(card, best["run_id"])
    )
    if decision["passed"]:
        move = promote(name, version)
        outcome = RegisterOutcome(version, True, move, f"all gates passed: {move.describe()}", name)
    else:
        champion = alias_version(name, CHAMPION)
        reason = (
            f"gates failed ({', '.join(decision['failed'])}); champion stays v{champion}"
            if champion
            else f"gates failed ({', '.join(decision['failed'])}); no champion yet"
        )
        outcome = RegisterOutcome(version, False, None, reason, name)
    with mlflow.start_run(run_id=trained["parent_run_id"]):
        mlflow.set_tags({"registered_version": version, "promoted": str(outcome.promoted).lower()})
    write_json(outcome.as_dict(), out_path)
    return outcome
