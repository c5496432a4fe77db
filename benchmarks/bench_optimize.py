"""Optimize stage on the default simulated data: every variant's size, speed and quality.

Run: ``python benchmarks/bench_optimize.py`` (or ``make bench``). Writes
``results/optimize.json`` and prints a markdown table.

The teacher is the stage's reference LightGBM (300 trees x 31 leaves) trained on the training
window; students are distilled on every row before the validation window (labels ignored).
Timings are single-threaded and cover the model graph only: the edge scorer also runs the
featurizer (numpy) before the graph, which costs the same for every variant.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from inferloop.core.config import load_section
from inferloop.data.features import FeatureParams
from inferloop.data.processed import build_processed
from inferloop.data.samples import simulated_splits
from inferloop.data.simulate import SimulateParams
from inferloop.data.split import SplitParams
from inferloop.edge.builders.measure import EvalSet
from inferloop.edge.builders.optimize import optimize_teacher
from inferloop.edge.builders.params import OptimizeParams

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
COLUMNS = {
    "name": "variant",
    "format": "format",
    "size_bytes": "size (B)",
    "size_ratio": "x smaller",
    "p50_us": "p50 (µs)",
    "p99_us": "p99 (µs)",
    "p50_speedup": "x faster p50",
    "rows_per_s": "rows/s",
    "throughput_speedup": "x rows/s",
    "roc_auc": "AUC",
    "ap": "AP",
    "card_precision_at_k": "CP@100",
    "val_ap_loss": "val AP loss",
    "val_auc_loss": "val AUC loss",
    "ap_loss": "AP loss",
    "auc_loss": "AUC loss",
    "max_abs_diff": "max |Δ|",
    "decision_flips": "flips@1%",
}


def _markdown(table: pd.DataFrame) -> str:
    frame = table[list(COLUMNS)].rename(columns=COLUMNS)
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    for row in frame.itertuples(index=False):
        cells = [_cell(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float | np.floating):
        magnitude = abs(float(value))
        if magnitude >= 1000:
            return f"{value:,.0f}"
        return f"{value:.4f}" if magnitude < 10 else f"{value:.1f}"
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    return str(value)


def _targets(table: pd.DataFrame, chosen: str) -> dict[str, Any]:
    rows = table.set_index("name")
    pick = rows.loc[chosen]
    compiled = rows[rows.index.isin(["teacher_onnx", "teacher_tl2cgen", "teacher_lleaves"])]
    best = compiled["throughput_speedup"].idxmax()
    return {
        "chosen": chosen,
        "size_ratio": float(pick["size_ratio"]),
        "size_ratio_ge_10": bool(pick["size_ratio"] >= 10),
        "p50_speedup": float(pick["p50_speedup"]),
        "p50_speedup_ge_5": bool(pick["p50_speedup"] >= 5),
        "test_ap_loss": float(pick["ap_loss"]),
        "test_ap_loss_le_0.01": bool(pick["ap_loss"] <= 0.01),
        "test_auc_loss": float(pick["auc_loss"]),
        "test_auc_loss_le_0.005": bool(pick["auc_loss"] <= 0.005),
        "best_compiled_teacher": best,
        "compiled_throughput_speedup": float(compiled.loc[best, "throughput_speedup"]),
        "compiled_throughput_ge_2": bool(compiled.loc[best, "throughput_speedup"] >= 2),
        "compiled_decision_flips": int(compiled.loc[best, "decision_flips"]),
    }


def main() -> None:
    """Simulate, train the teacher, run the optimize stage, write and print the results."""
    params_file = ROOT / "params.yaml"
    sim = load_section(SimulateParams, "simulate", params_file)
    feat = load_section(FeatureParams, "featurize", params_file)
    split = load_section(SplitParams, "split", params_file)
    params = load_section(OptimizeParams, "optimize", params_file)
    started = time.perf_counter()
    data = simulated_splits(sim, feat, split)
    processed, _ = build_processed(data.raw, feat)
    features = data.features
    unlabelled = processed.loc[
        processed["timestamp"] < data.splits.windows.validation.start, features
    ].to_numpy(np.float32)
    train = data.splits.train
    X_train, y_train = train[features].to_numpy(np.float32), train["is_fraud"].to_numpy()
    # n_jobs=1: on a busy 2-core machine LightGBM's OpenMP threads slow training down a lot
    teacher = lgb.LGBMClassifier(
        n_estimators=300, num_leaves=31, learning_rate=0.05, verbose=-1, n_jobs=1
    ).fit(X_train, y_train)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as workdir:
        result = optimize_teacher(
            teacher,
            unlabelled,
            EvalSet.from_frame(data.splits.validation, features),
            EvalSet.from_frame(data.splits.test, features),
            params,
            workdir,
            labelled=(X_train, y_train),
        )
    table = result.table
    report = {
        "machine": {
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
        },
        "rows": {
            "unlabelled": len(unlabelled),
            "train": len(train),
            "validation": len(data.splits.validation),
            "test": len(data.splits.test),
        },
        "targets": _targets(table, result.chosen),
        "prune": None
        if result.prune is None
        else {
            "hidden_before": list(result.prune.hidden_before),
            "hidden_after": list(result.prune.hidden_after),
            "parameters_before": result.prune.n_parameters_before,
            "parameters_after": result.prune.n_parameters_after,
        },
        "skipped": result.skipped,
        "variants": json.loads(table.to_json(orient="records")),
        "seconds": time.perf_counter() - started,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "optimize.json").write_text(json.dumps(report, indent=2) + "\n")
    print(_markdown(table))
    print()
    print(json.dumps(report["targets"], indent=2))


if __name__ == "__main__":
    main()
