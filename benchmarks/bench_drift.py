"""Drift detection cost: inferloop's binned PSI against Evidently's DataDriftPreset.

Both run on the same synthetic data, 30 columns (22 numeric of several shapes, 8 categorical),
with drift of known strength injected into 10 of them, at 100k and 1M rows per dataset. The
benchmark records the time of each and which columns each flags, and how far the sets agree.

Run: ``python benchmarks/bench_drift.py`` (or ``make bench``). Writes ``results/drift.json``.
Evidently takes minutes at 1M rows; ``--sizes 100k`` skips that size.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from inferloop.monitoring.drift import DriftThresholds, ReferenceProfile

RESULTS = Path(__file__).parent / "results"
SIZES = {"100k": 100_000, "1M": 1_000_000}
TARGET_SECONDS = 10.0
TARGET_SPEEDUP = 10.0
REPEATS = 3

# column -> (kind, generator of the reference values, drift applied to the current values)
Gen = Callable[[np.random.Generator, int], Any]
Drift = Callable[[np.random.Generator, int, Any], Any]


def _same(rng: np.random.Generator, n: int, values: Any) -> Any:
    return values


def _categories(k: int, seed: int) -> tuple[list[str], np.ndarray]:
    probs = np.random.default_rng(seed).dirichlet(np.full(k, 2.0))
    return [f"level_{i}" for i in range(k)], probs


def _categorical(k: int, seed: int) -> Gen:
    levels, probs = _categories(k, seed)
    return lambda rng, n: rng.choice(np.array(levels, dtype=object), n, p=probs)


def _recategorised(k: int, seed: int, weight: float) -> Drift:
    """Draw a share ``weight`` of the rows from a reversed category distribution."""
    levels, probs = _categories(k, seed)

    def apply(rng: np.random.Generator, n: int, values: Any) -> Any:
        swap = rng.random(n) < weight
        values = values.copy()
        values[swap] = rng.choice(np.array(levels, dtype=object), int(swap.sum()), p=probs[::-1])
        return values

    return apply


def _zero_inflated(rng: np.random.Generator, n: int, zero_share: float = 0.7) -> np.ndarray:
    return np.where(rng.random(n) < zero_share, 0, rng.poisson(3, n)).astype(float)


COLUMNS: dict[str, tuple[Gen, Drift]] = {
    # normal features: a strong shift, a strong scale change, a subtle shift
    **{f"normal_{i}": (lambda rng, n: rng.normal(0, 1, n), _same) for i in range(6)},
    # amount-like log-normals: the simulator's seasonal 1.5x, a subtle 1.1x
    **{f"amount_{i}": (lambda rng, n: rng.lognormal(3, 1, n), _same) for i in range(4)},
    **{f"wait_{i}": (lambda rng, n: rng.exponential(1, n), _same) for i in range(4)},
    **{f"count_{i}": (_zero_inflated, _same) for i in range(4)},
    **{f"flag_{i}": (lambda rng, n: (rng.random(n) < 0.1).astype(float), _same) for i in range(2)},
    **{f"hour_{i}": (lambda rng, n: rng.uniform(0, 24, n), _same) for i in range(2)},
    **{f"cat_{i}": (_categorical(3 + i, i), _same) for i in range(8)},
}
# Injected drift, strong and subtle on purpose: some of it is below any default threshold.
DRIFTS: dict[str, Drift] = {
    "normal_0": lambda rng, n, v: v + 0.5,
    "normal_1": lambda rng, n, v: v * 1.5,
    "normal_2": lambda rng, n, v: v + 0.15,
    "amount_0": lambda rng, n, v: v * 1.5,
    "amount_1": lambda rng, n, v: v * 1.1,
    "wait_0": lambda rng, n, v: v * 2.0,
    "count_0": lambda rng, n, v: _zero_inflated(rng, n, 0.5),
    "flag_0": lambda rng, n, v: (rng.random(n) < 0.2).astype(float),
    "cat_0": _recategorised(3, 0, 0.5),
    "cat_1": _recategorised(4, 1, 0.1),
}
INJECTED = {
    "normal_0": "+0.5 sd",
    "normal_1": "x1.5 spread",
    "normal_2": "+0.15 sd (subtle)",
    "amount_0": "x1.5 (the simulator's seasonal drift)",
    "amount_1": "x1.1 (subtle)",
    "wait_0": "x2",
    "count_0": "zero share 0.7 -> 0.5",
    "flag_0": "rate 0.1 -> 0.2",
    "cat_0": "half the rows from the reversed category mix",
    "cat_1": "10% of the rows from the reversed mix (subtle)",
}
NUMERIC = [c for c in COLUMNS if not c.startswith("cat_")]
CATEGORICAL = [c for c in COLUMNS if c.startswith("cat_")]


def make_data(n: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reference and current frames of ``n`` rows; only the columns of DRIFTS differ."""
    rng = np.random.default_rng(seed)
    reference = pd.DataFrame({c: gen(rng, n) for c, (gen, _) in COLUMNS.items()})
    current = pd.DataFrame({c: gen(rng, n) for c, (gen, _) in COLUMNS.items()})
    for column, drift in DRIFTS.items():
        current[column] = drift(rng, n, current[column].to_numpy())
    return reference, current


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def bench_ours(reference: pd.DataFrame, current: pd.DataFrame) -> dict[str, Any]:
    """Fit once; compare ``REPEATS`` times (median): PSI (+JS), then Evidently-style flags.

    The Evidently-style run flags a column on our statistics with Evidently's default rules
    for large samples: normed Wasserstein >= 0.1 (numeric) or Jensen-Shannon >= 0.1, PSI off.
    """
    profile, fit_s = _timed(lambda: ReferenceProfile.fit(reference, NUMERIC, CATEGORICAL))
    runs = [_timed(lambda: profile.compare(current)) for _ in range(REPEATS)]
    wd = DriftThresholds(psi=float("inf"), jensen_shannon=0.1, wasserstein=0.1)
    runs_wd = [_timed(lambda: profile.compare(current, wd)) for _ in range(REPEATS)]
    result, result_wd = runs[0][0], runs_wd[0][0]
    return {
        "fit_seconds": fit_s,
        "compare_seconds": statistics.median(t for _, t in runs),
        "compare_with_wasserstein_seconds": statistics.median(t for _, t in runs_wd),
        "drifted_psi": sorted(result.drifted_columns),
        "drifted_evidently_style": sorted(result_wd.drifted_columns),
        "psi": {c.column: round(c.psi, 4) for c in result.columns},
        "wasserstein": {c.column: round(c.wasserstein, 4) for c in result_wd.columns},
        "jensen_shannon": {c.column: round(c.jensen_shannon, 4) for c in result_wd.columns},
    }


def _evidently_drifted(snapshot: Any) -> tuple[list[str], dict[str, Any]]:
    """Columns whose ValueDrift test failed, and each column's drift value and method."""
    drifted, values = [], {}
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if str(config.get("type", "")).endswith(":ValueDrift"):
            values[config["column"]] = {
                "value": round(float(metric["value"]), 4),
                "method": config.get("method"),
                "threshold": config.get("threshold"),
            }
    for test in snapshot.dict()["tests"]:
        params = test["metric_config"]["params"]
        if str(params.get("type", "")).endswith(":ValueDrift") and test["status"] == "FAIL":
            drifted.append(params["column"])
    return sorted(drifted), values


def bench_evidently(
    reference: pd.DataFrame, current: pd.DataFrame, method: str | None = None
) -> dict[str, Any]:
    """One DataDriftPreset run over all 30 columns (``method`` None: Evidently's defaults)."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=NUMERIC, categorical_columns=CATEGORICAL)
    cur = Dataset.from_pandas(current, data_definition=definition)
    ref = Dataset.from_pandas(reference, data_definition=definition)
    report = Report([DataDriftPreset(method=method)], include_tests=True)
    snapshot, seconds = _timed(lambda: report.run(cur, ref))
    drifted, values = _evidently_drifted(snapshot)
    return {"method": method or "default", "seconds": seconds, "drifted": drifted, "values": values}


def agreement(a: list[str], b: list[str]) -> dict[str, Any]:
    """How far two sets of flagged columns agree (Jaccard index and both differences)."""
    sa, sb = set(a), set(b)
    union = sa | sb
    return {
        "same": sa == sb,
        "jaccard": len(sa & sb) / len(union) if union else 1.0,
        "only_first": sorted(sa - sb),
        "only_second": sorted(sb - sa),
        "columns_agreeing": len(COLUMNS) - len(sa ^ sb),
    }


def bench_size(label: str, n: int, evidently_psi: bool) -> dict[str, Any]:
    """Run both detectors on one size and compare their verdicts."""
    reference, current = make_data(n)
    ours = bench_ours(reference, current)
    evidently = bench_evidently(reference, current)
    row: dict[str, Any] = {
        "rows_per_dataset": n,
        "columns": len(COLUMNS),
        "ours": ours,
        "evidently_default": evidently,
        "speedup_vs_evidently": evidently["seconds"] / ours["compare_seconds"],
        "agreement_psi_vs_evidently": agreement(ours["drifted_psi"], evidently["drifted"]),
        "agreement_evidently_style_vs_evidently": agreement(
            ours["drifted_evidently_style"], evidently["drifted"]
        ),
        "agreement_psi_vs_injected": agreement(ours["drifted_psi"], sorted(DRIFTS)),
    }
    if evidently_psi:
        row["evidently_psi"] = bench_evidently(reference, current, method="psi")
        row["agreement_psi_vs_evidently_psi"] = agreement(
            ours["drifted_psi"], row["evidently_psi"]["drifted"]
        )
    print(
        f"{label:>5}: ours {ours['compare_seconds']:.2f} s (fit {ours['fit_seconds']:.2f} s) | "
        f"Evidently {evidently['seconds']:.1f} s | x{row['speedup_vs_evidently']:.0f} | "
        f"same columns: {row['agreement_psi_vs_evidently']['same']}",
        flush=True,
    )
    return row


def main() -> None:
    """Benchmark the requested sizes and write the JSON results."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    args = parser.parse_args()
    load_at_start = round(os.getloadavg()[0], 2)
    results = {label: bench_size(label, SIZES[label], label == "100k") for label in args.sizes}
    largest = results[args.sizes[-1]]
    out = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            # other work on the machine slows both detectors; Evidently's time varies most
            "load_average_at_start": load_at_start,
        },
        "targets": {"compare_seconds_max": TARGET_SECONDS, "speedup_min": TARGET_SPEEDUP},
        "met": {
            "compare_seconds": largest["ours"]["compare_seconds"] <= TARGET_SECONDS,
            "speedup": largest["speedup_vs_evidently"] >= TARGET_SPEEDUP,
        },
        "injected_drift": INJECTED,
        "thresholds": {
            "ours_psi": "PSI > 0.1 (monitor default)",
            "ours_evidently_style": "normed Wasserstein > 0.1 (numeric) or Jensen-Shannon > 0.1",
            "evidently_default": "Evidently's per-column defaults (Wasserstein/JS >= 0.1 here)",
        },
        "results": results,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "drift.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
