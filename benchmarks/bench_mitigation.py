"""What the bias-mitigated candidates cost and buy, against the plain ones, on the bias scenario.

The simulator's bias scenario (``simulate.bias``: fraud against the 61+ age band that mimics
each customer's normal spending, here at 4 frauds per 1,000 customers a day) in a world of
2,000 customers and 45 days, the size of the fairness tests. Each candidate (``lightgbm``,
``lightgbm_fair``, ``logistic``, ``logistic_fair``, with the ``train.mitigation`` defaults of
params.yaml, and ``lightgbm_post``, LightGBM with per-age-band thresholds from
``train.postprocess``) is trained on the training window, gets its threshold on validation by
the default policy (best recall at precision >= 0.5; ``lightgbm_post`` then its group
thresholds, on the same rows, as the train stage does), and is measured on the test window:
AP, ROC-AUC, recall and precision at the threshold, alerts, the age-band equalized-odds gap
with its 90 % bootstrap interval, the per-group TPR and FPR, training seconds, and scoring
cost (one row, and 10,000 rows, on the feature frame; the featurizer is the same for all and
left out). The fair world
(bias off) is measured too, so the cost of mitigation where nothing needs mitigating shows.

Run: ``python benchmarks/bench_mitigation.py`` (about 5 minutes). Writes
``results/mitigation.json``.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from inferloop.core import schema as s
from inferloop.core.config import load_section
from inferloop.data.features import FeatureParams
from inferloop.data.samples import simulated_splits
from inferloop.data.simulate import SimulateParams
from inferloop.data.split import SplitParams
from inferloop.evaluation.fairness import fairness_report
from inferloop.evaluation.group_thresholds import GroupThresholds, fit_group_thresholds
from inferloop.evaluation.metrics import ThresholdPolicy, choose_threshold
from inferloop.training.candidates import (
    POSTPROCESSED,
    TrainedCandidate,
    TrainParams,
    train_candidates,
)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
CANDIDATES = ("lightgbm", "lightgbm_fair", "lightgbm_post", "logistic", "logistic_fair")
SIM = SimulateParams(n_customers=2000, n_terminals=1300, n_days=45, seed=7)
SPLIT = SplitParams(train_days=21, validation_days=7, test_days=7, gap_days=3)


def _scores(
    cand: TrainedCandidate, post: GroupThresholds | None, frame: pd.DataFrame, features: list[str]
) -> Any:
    """The candidate's scores of ``frame``, per-group thresholds applied (as the model does)."""
    scores = cand.estimator.predict_proba(frame[features])[:, 1]
    return scores if post is None else post.adjust(scores, frame[s.AGE_BAND].to_numpy(object))


def _latency(
    cand: TrainedCandidate,
    post: GroupThresholds | None,
    frame: pd.DataFrame,
    features: list[str],
    repeats: int,
) -> float:
    """Median seconds of :func:`_scores` over ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        _scores(cand, post, frame, features)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _post(
    name: str, cand: TrainedCandidate, val: pd.DataFrame, threshold: float, params: TrainParams
) -> GroupThresholds | None:
    if name not in POSTPROCESSED:
        return None
    groups = val[s.AGE_BAND].to_numpy(object)
    return fit_group_thresholds(
        cand.validation_scores, val[s.TARGET].to_numpy(), groups, threshold, params.postprocess
    )


def _measure(world: str, sim: SimulateParams, params: TrainParams) -> dict[str, Any]:
    data = simulated_splits(sim, FeatureParams(label_delay="3D"), SPLIT)
    trained = train_candidates(data.splits.train, data.splits.validation, data.features, params)
    val, test = data.splits.validation, data.splits.test
    out: dict[str, Any] = {"train_rows": len(data.splits.train), "test_rows": len(test)}
    for name, cand in trained.items():
        threshold = choose_threshold(cand.validation_scores, val[s.TARGET], ThresholdPolicy()).threshold  # fmt: skip
        post = _post(name, cand, val, threshold, params)
        scores = _scores(cand, post, test, data.features)
        decisions = (scores >= threshold).astype(int)
        y = test[s.TARGET].to_numpy()
        report = fairness_report(
            test.assign(_s=scores, _d=decisions), y_col=s.TARGET, pred_col="_d", score_col="_s",
            attributes=[s.AGE_BAND],
        )[s.AGE_BAND]  # fmt: skip
        one, many = test.iloc[:1], test.iloc[:10_000]
        out[name] = {
            "average_precision": float(average_precision_score(y, scores)),
            "roc_auc": float(roc_auc_score(y, scores)),
            "recall": float(decisions[y == 1].mean()),
            "precision": float(y[decisions == 1].mean()) if decisions.any() else float("nan"),
            "alerts": int(decisions.sum()),
            "equalized_odds_difference": report.equalized_odds_difference,
            "equalized_odds_interval": list(report.interval("equalized_odds_difference")),
            "tpr_by_group": report.by_group["tpr"].round(4).to_dict(),
            "fpr_by_group": report.by_group["fpr"].round(5).to_dict(),
            "group_thresholds": None if post is None else post.thresholds,
            "train_seconds": cand.train_seconds,
            "predict_1_row_ms": 1e3 * _latency(cand, post, one, data.features, 200),
            "predict_10k_rows_ms": 1e3 * _latency(cand, post, many, data.features, 5),
            "models_in_mixture": cand.params.get(f"{name}.models_kept"),
        }
        print(world, name, json.dumps(out[name], default=str), flush=True)
    return out


def main() -> int:
    params = replace(load_section(TrainParams, "train", ROOT / "params.yaml"), candidates=CANDIDATES)  # fmt: skip
    started = time.perf_counter()
    biased = replace(SIM, bias=replace(SIM.bias, enabled=True, extra_per_1k=4.0))
    worlds = {"bias": _measure("bias", biased, params), "fair": _measure("fair", SIM, params)}
    RESULTS.mkdir(exist_ok=True)
    result = {
        "benchmark": "mitigation",
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "mitigation_params": params.mitigation.__dict__,
        "postprocess_params": params.postprocess.__dict__,
        "worlds": worlds,
        "seconds": time.perf_counter() - started,
    }
    (RESULTS / "mitigation.json").write_text(json.dumps(result, indent=2, default=float) + "\n")
    rows = {
        f"{w}/{n}": {k: v for k, v in m.items() if not isinstance(v, dict | list)}
        for w, ms in worlds.items()
        for n, m in ms.items()
        if isinstance(m, dict)
    }
    print(pd.DataFrame(rows).T.to_markdown(floatfmt=".3f"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
