"""Retraining policies backtested on the production simulation, and the estimates' error.

For every drift scenario (and none), ``inferloop production`` runs once per policy in the same
project copy, after one ``dvc repro`` of the main pipeline (default params). Each run starts
from a copy of the same serving champion with a fresh feature state, so runs differ only by
the policy:

* ``never``: monitoring reports, nothing is retrained;
* ``weekly``: every window with labels retrains (a performance check that always breaches);
* ``drift``: retrain when data or score drift persists 2 windows (performance and fairness
  checks out of reach);
* ``performance``: today's default (a labelled AP or ROC-AUC drop retrains at once, drift
  and fairness after 3 windows);
* ``estimate``: retrain at once when the AP estimated before labels drops
  (``monitor.retrain_on_estimate``), nothing else retrains.

Per run: the fraud amount missed over all weeks (frauds not alerted, summed amount), alerts,
retrains, and mean AP. The estimation error comes from the ``never`` runs (one model all
along, so estimate and truth are about the same scores): per week, the estimated precision at
the threshold and AP of the week's rows, before any of its labels, against the realized values
once all labels are in. Run: ``python benchmarks/bench_policies.py [--root DIR] [--weeks N]
[--scenarios a,b]`` (about 2 h; ``--root`` reuses a project copy where ``dvc repro`` ran).
Writes ``results/policies.json``, ``results/policies.png`` and ``results/estimation.json``
after every run; ``--resume`` keeps the runs they hold and does the rest.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from bench_bias import BIN, RESULTS, _project, _run

SCENARIOS = ("none", "customer_mix", "seasonal_amount", "merchant_shift", "new_fraud_pattern")
#: Scenarios where the calibration should hold (the features see the change).
COVARIATE = ("none", "customer_mix", "seasonal_amount", "merchant_shift")
MAX_PRECISION_MAE, MAX_AP_MAE = 0.05, 0.08
_OFF = {"max_ap_drop": 1.0, "max_roc_auc_drop": 1.0}
_NO_FAIRNESS = {"max_equalized_odds_difference": 1.0, "max_demographic_parity_difference": 1.0}
POLICIES: dict[str, dict[str, Any]] = {
    "never": {"consecutive_windows": 1000, "retrain_on_performance_at_once": False},
    "weekly": {"max_ap_drop": -1.0},
    "drift": {"consecutive_windows": 2, **_OFF, **_NO_FAIRNESS},
    "performance": {},
    "estimate": {
        "consecutive_windows": 1000,
        "retrain_on_performance_at_once": False,
        "retrain_on_estimate": True,
    },
}


def _params(root: Path, scenario: str, policy: str) -> str:
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["monitor"] = {**params["monitor"], **POLICIES[policy]}
    params["production"] = {
        **params["production"],
        "out_dir": f"reports/bench_policies/{scenario}/{policy}",
    }
    path = f"params.policies-{scenario}-{policy}.yaml"
    (root / path).write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def _missed(root: Path, weeks: int) -> dict[str, float]:
    """Fraud amount missed and caught over the run's weeks (read before the next run)."""
    frames = [
        pd.read_parquet(root / f"data/production/predictions/week_{w:02d}.parquet")
        for w in range(weeks)
    ]
    scored = pd.concat(frames, ignore_index=True)
    fraud = scored["is_fraud"] == 1
    missed = fraud & (scored["decision"] == 0)
    return {
        "fraud_amount": float(scored.loc[fraud, "amount"].sum()),
        "fraud_amount_missed": float(scored.loc[missed, "amount"].sum()),
        "frauds_missed": int(missed.sum()),
    }


def _run_summary(table: pd.DataFrame, missed: dict[str, float], seconds: float) -> dict[str, Any]:
    return {
        **missed,
        "share_of_fraud_amount_missed": missed["fraud_amount_missed"] / missed["fraud_amount"],
        "alerts": int(table["alerts"].sum()),
        "retrains": int(table["retrained"].fillna("").str.match(r"^v\d").sum()),
        "promotions": int(table["retrained"].fillna("").str.contains("promoted").sum()),
        "mean_ap": float(table["ap"].mean()),
        "seconds": seconds,
    }


def _estimation(table: pd.DataFrame) -> dict[str, Any]:
    err_p = (table["est_precision"] - table["precision"]).abs()
    err_ap = (table["est_ap"] - table["ap"]).abs()
    return {
        "precision_mae": float(err_p.mean()),
        "ap_mae": float(err_ap.mean()),
        "precision_max_error": float(err_p.max()),
        "ap_max_error": float(err_ap.max()),
        "weeks": json.loads(
            table[["week", "est_precision", "precision", "est_ap", "ap", "est_recall", "recall"]]
            .round(4)
            .to_json(orient="records")
        ),
    }


def _plot(results: dict[str, dict[str, dict[str, Any]]], out: Path) -> None:
    from matplotlib.figure import Figure

    frame = pd.DataFrame(
        [
            {"scenario": sc, "policy": po, **{k: v for k, v in r.items() if k != "seconds"}}
            for sc, runs in results.items()
            for po, r in runs.items()
        ]
    )
    fig = Figure(figsize=(13, 4.6), layout="constrained")
    axes = fig.subplots(1, 3)
    for ax, column, title in (
        (axes[0], "share_of_fraud_amount_missed", "Share of fraud amount missed"),
        (axes[1], "alerts", "Alerts raised"),
        (axes[2], "retrains", "Retrains run"),
    ):
        pivot = frame.pivot(index="scenario", columns="policy", values=column)
        pivot = pivot[[p for p in POLICIES if p in pivot.columns]]
        pivot.plot.bar(ax=ax, rot=30, width=0.8, legend=ax is axes[0])
        for label in ax.get_xticklabels():
            label.set_horizontalalignment("right")
        ax.set(title=title, xlabel="")
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("Retraining policies on the production simulation (drift from week 1)")
    fig.savefig(out, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=None, help="a project copy after dvc repro")
    parser.add_argument("--weeks", type=int, default=6)
    parser.add_argument("--drift-week", type=int, default=1)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--policies", default=",".join(POLICIES))
    parser.add_argument(
        "--resume", action="store_true", help="keep the runs in results/ and skip them"
    )
    args = parser.parse_args()
    started = time.perf_counter()
    root = (
        args.root.resolve() if args.root else _project(Path(tempfile.mkdtemp(prefix="bench-pol-")))
    )
    results: dict[str, dict[str, dict[str, Any]]] = {s: {} for s in args.scenarios.split(",")}
    estimation: dict[str, dict[str, Any]] = {}
    timelines: dict[str, Any] = {}
    if args.resume and (RESULTS / "policies.json").is_file():
        done = json.loads((RESULTS / "policies.json").read_text())
        for scenario, runs in done["results"].items():
            results.setdefault(scenario, {}).update(runs)
        timelines.update(done["timelines"])
        if (RESULTS / "estimation.json").is_file():
            estimation.update(json.loads((RESULTS / "estimation.json").read_text())["scenarios"])
    # every scenario under one policy first: the estimation table needs only ``never``
    for policy in args.policies.split(","):
        for scenario in args.scenarios.split(","):
            if policy in results.get(scenario, {}):
                continue  # measured by an earlier run (--resume)
            path = _params(root, scenario, policy)
            t0 = time.perf_counter()
            _run(
                [str(BIN / "inferloop"), "production", "--params", path, "--weeks",
                 str(args.weeks), "--scenario", scenario, "--drift-week", str(args.drift_week)],
                root,
            )  # fmt: skip
            seconds = time.perf_counter() - t0
            table = pd.read_csv(root / f"reports/bench_policies/{scenario}/{policy}/timeline.csv")
            results.setdefault(scenario, {})[policy] = _run_summary(
                table, _missed(root, args.weeks), seconds
            )
            timelines[f"{scenario}/{policy}"] = json.loads(
                table.drop(columns=["reasons"]).to_json(orient="records")
            )
            if policy == "never":
                estimation[scenario] = _estimation(table)
            _write(args, results, estimation, timelines, started)
    print(pd.DataFrame({f"{s}/{p}": r for s, rs in results.items() for p, r in rs.items()}).T)
    return 0


def _write(
    args: argparse.Namespace,
    results: dict[str, dict[str, dict[str, Any]]],
    estimation: dict[str, dict[str, Any]],
    timelines: dict[str, Any],
    started: float,
) -> None:
    """Results so far (each run takes minutes; a stopped benchmark keeps what it measured)."""
    RESULTS.mkdir(exist_ok=True)
    machine = {"python": platform.python_version(), "cpus": os.cpu_count()}
    common = {"machine": machine, "weeks": args.weeks, "drift_week": args.drift_week}
    (RESULTS / "policies.json").write_text(
        json.dumps(
            {"benchmark": "policies", **common, "policies": {k: v for k, v in POLICIES.items()},
             "seconds_total": time.perf_counter() - started, "results": results,
             "timelines": timelines},
            indent=2,
        ) + "\n"
    )  # fmt: skip
    acceptance = {
        scenario: {
            "precision_mae_ok": est["precision_mae"] <= MAX_PRECISION_MAE,
            "ap_mae_ok": est["ap_mae"] <= MAX_AP_MAE,
        }
        for scenario, est in estimation.items()
        if scenario in COVARIATE
    }
    (RESULTS / "estimation.json").write_text(
        json.dumps(
            {"benchmark": "estimation", **common, "targets": {"precision_mae": MAX_PRECISION_MAE,
             "ap_mae": MAX_AP_MAE, "scenarios": list(COVARIATE)}, "acceptance": acceptance,
             "scenarios": estimation},
            indent=2,
        ) + "\n"
    )  # fmt: skip
    if results:
        _plot(results, RESULTS / "policies.png")


if __name__ == "__main__":
    raise SystemExit(main())
