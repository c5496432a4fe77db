"""Reason codes, in process: what one explained alert costs per model, and how the fast path
attribution's reasons compare with TreeSHAP's.

The world and the LightGBM model are ``bench_serving.py``'s (300 trees, 31 leaves, the
simulated card log); the logistic baseline and a small MLP are trained on the same rows. For
each model and method: the median time of explaining one alerting row (after scoring it), and
for LightGBM, over every alert of the test window, how often the path attribution's first
reason is TreeSHAP's first, and how many of the three reasons the two share. TreeSHAP is the
compiled kernel of ``inferloop.evaluation.treeshap``; LightGBM's own ``pred_contrib`` is timed
beside it (one row, and all the alerts at once), with the largest difference between the two
over the alerts, and the one-off cost of building the kernel for the model. The HTTP figure
(what an explained request costs through ``mlflow models serve``) is ``bench_serving.py``'s.

Run: ``python benchmarks/bench_explain.py`` (about a minute). Writes ``results/explain.json``.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).parent / "results" / "explain.json"
REPEATS = 400


def _median_ms(run: Callable[[], Any], repeats: int = REPEATS) -> float:
    run()
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        run()
        times.append(time.perf_counter() - began)
    return round(statistics.median(times) * 1e3, 4)


def _models() -> tuple[dict[str, Any], np.ndarray, list[str]]:
    import lightgbm as lgb
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from inferloop.core import schema as s
    from inferloop.data.features import FeatureParams
    from inferloop.data.samples import simulated_splits
    from inferloop.data.simulate import SimulateParams
    from inferloop.data.split import SplitParams
    from inferloop.training.nn import TorchMLPClassifier

    sim = SimulateParams(n_customers=3000, n_terminals=2000, n_days=42, seed=21)
    split = SplitParams(train_days=21, validation_days=4, test_days=4, gap_days=3)
    data = simulated_splits(sim, FeatureParams(label_delay="3D"), split)
    train, test = data.splits.train, data.splits.test
    X, y = train[data.features].to_numpy(np.float64), train[s.TARGET].to_numpy()
    models = {
        "lightgbm": lgb.LGBMClassifier(
            n_estimators=300, num_leaves=31, learning_rate=0.05, n_jobs=2, verbose=-1
        ).fit(X, y),
        "logistic": Pipeline(
            [("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=500))]
        ).fit(X, y),
        "mlp": TorchMLPClassifier(hidden=(64, 32), epochs=5, batch_size=1024).fit(X, y),
    }
    return models, test[data.features].to_numpy(np.float64), list(data.features)


def _alerts(model: Any, rows: np.ndarray) -> np.ndarray:
    """The test rows the model alerts on (score >= 0.5), or its top 200 if fewer."""
    scores = model.predict_proba(rows)[:, 1]
    alerts = np.flatnonzero(scores >= 0.5)
    return rows[alerts] if len(alerts) >= 50 else rows[np.argsort(-scores)[:200]]


def _agreement(model: Any, alerts: np.ndarray) -> dict[str, Any]:
    from inferloop.evaluation.reasons import feature_contributions

    fast = feature_contributions(model, alerts, "path")
    exact = feature_contributions(model, alerts)
    assert fast is not None and exact is not None
    top_fast = np.argsort(-fast.values, axis=1)[:, :3]
    top_exact = np.argsort(-exact.values, axis=1)[:, :3]
    shared = [len(set(a) & set(b)) for a, b in zip(top_fast, top_exact, strict=True)]
    margin = model.booster_.predict(alerts, raw_score=True)
    return {
        "alerts": len(alerts),
        "first_reason_same": round(float((top_fast[:, 0] == top_exact[:, 0]).mean()), 4),
        "top3_shared_mean": round(float(np.mean(shared)), 3),
        "top3_same_set": round(float(np.mean([n == 3 for n in shared])), 4),
        "path_margin_max_abs_error": float(np.abs(fast.margin - margin).max()),
        "base_abs_difference": float(np.abs(fast.base - exact.base).max()),
    }


def _against_pred_contrib(model: Any, alerts: np.ndarray) -> dict[str, float]:
    """LightGBM's own pred_contrib beside the kernel: one row, every alert, largest gap."""
    from inferloop.evaluation.reasons import feature_contributions
    from inferloop.evaluation.treeshap import shap_contributions, shap_table

    booster = model.booster_
    began = time.perf_counter()
    table = shap_table(booster)
    assert table is not None
    shap_contributions(table, alerts[:1])  # compiles the kernel (once per process)
    build_s = time.perf_counter() - began
    one = alerts[:1]
    exact = feature_contributions(model, alerts)
    assert exact is not None
    lightgbm = booster.predict(alerts, pred_contrib=True)
    timed = {
        "explain_pred_contrib_ms": _median_ms(
            lambda: booster.predict(one, pred_contrib=True, num_threads=1)
        ),
        "all_alerts_treeshap_ms": _median_ms(lambda: feature_contributions(model, alerts), 20),
        "all_alerts_pred_contrib_ms": _median_ms(
            lambda: booster.predict(alerts, pred_contrib=True), 20
        ),
    }
    return timed | {
        "treeshap_vs_pred_contrib_max_abs_diff": float(
            np.abs(exact.values - lightgbm[:, :-1]).max()
        ),
        "kernel_build_s": round(build_s, 3),
        "quadrature_nodes": table.q,
        "edges": len(table.z),
    }


def main() -> int:
    """Train the three models, time one explained row per method, compare LightGBM's."""
    from inferloop.evaluation.reasons import feature_contributions

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    models, test, names = _models()
    costs: dict[str, dict[str, float]] = {}
    agreement: dict[str, Any] = {}
    for name, model in models.items():
        alerts = _alerts(model, test)
        one = alerts[:1]
        costs[name] = {"score_ms": _median_ms(lambda m=model, r=one: m.predict_proba(r))}
        methods = ("treeshap", "path") if name == "lightgbm" else ("treeshap",)
        for method in methods:
            label = method if name == "lightgbm" else "exact"
            costs[name][f"explain_{label}_ms"] = _median_ms(
                lambda m=model, r=one, k=method: feature_contributions(m, r, k)
            )
        if name == "lightgbm":
            agreement = _agreement(model, alerts)
            costs[name] |= _against_pred_contrib(model, alerts)
    out = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
        },
        "settings": {"features": len(names), "repeats": REPEATS, "lightgbm_trees": 300},
        "one_row_ms": costs,
        "lightgbm_path_vs_treeshap": agreement,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
