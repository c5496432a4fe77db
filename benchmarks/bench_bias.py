"""The bias scenario under four policies: no action, plain, mitigated, post-processed retraining.

Each policy runs ``inferloop production --weeks 12 --scenario bias --drift-week 1`` in the same
project copy, after one ``dvc repro`` of the main pipeline (default params). Every run starts
from a copy of the same serving champion (the simulation's own namespace), with a fresh
feature state, so the timelines differ only by the policy:

* ``no_action``: monitoring reports, nothing is retrained (``consecutive_windows`` out of
  reach, no retrain on a performance drop);
* ``retrain``: today's default policy (plain LightGBM retraining, escalation to
  ``needs_review`` after ``max_fairness_retrains``);
* ``mitigated``: the same, but a retrain decided while fairness is breached trains
  ``retrain.mitigated_candidates`` (fairlearn's reductions) instead;
* ``postprocessed``: the same with ``lightgbm_post`` as the mitigated candidate (LightGBM
  with one threshold per age band, which reads the attribute at decision time).

Per week: the largest equalized-odds gap with its bootstrap interval, AP, model alerts, the
monitoring status and what the loop did. Per policy: weeks breached beyond noise (interval
lower bound over the maximum), weeks cleared (upper bound under it), monitoring alerts,
retrains, reviews, mean AP from the drift week, and the AP cost of fairness against plain
retraining. Run: ``python benchmarks/bench_bias.py [--root DIR] [--weeks N]`` (about 50 min;
``--root`` reuses a project copy where ``dvc repro`` has run). Writes ``results/bias.json``
and ``results/bias.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
BIN = Path(sys.executable).parent
#: Per policy: overrides of params sections.
POLICIES: dict[str, dict[str, dict[str, Any]]] = {
    "postprocessed": {
        "monitor": {"mitigate_on_fairness": True},
        "retrain": {"mitigated_candidates": ["lightgbm_post"]},
    },
    "mitigated": {"monitor": {"mitigate_on_fairness": True}},
    "retrain": {},
    "no_action": {
        "monitor": {"consecutive_windows": 1000, "retrain_on_performance_at_once": False}
    },
}


def _env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        INFERLOOP_ROOT=str(root),
        MLFLOW_DISABLE_TELEMETRY="true",
    )
    return env


def _run(cmd: list[str], root: Path) -> None:
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=root, env=_env(root), check=True)


def _project(work: Path) -> Path:
    """A git + DVC copy of the project with the main pipeline run on default params."""
    repo = work / "project"
    repo.mkdir(parents=True)
    for name in ("dvc.yaml", "notebooks", "src", "pipelines", ".dvcignore", ".gitignore"):
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, repo / name)
    shutil.copy2(ROOT / "params.yaml", repo / "params.yaml")
    _run(["git", "init", "-q"], repo)
    _run(["git", "-c", "user.email=b@b", "-c", "user.name=b", "commit", "-q", "--allow-empty", "-m", "b"], repo)  # fmt: skip
    _run([str(BIN / "dvc"), "init", "-q"], repo)
    _run([str(BIN / "dvc"), "repro", "dvc.yaml"], repo)
    return repo


def _policy_params(root: Path, name: str, overrides: dict[str, dict[str, Any]]) -> str:
    params = yaml.safe_load((root / "params.yaml").read_text())
    for section, values in overrides.items():
        params[section] = {**params[section], **values}
    params["production"] = {**params["production"], "out_dir": f"reports/bench_bias/{name}"}
    path = f"params.bias-{name}.yaml"
    (root / path).write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def _summary(table: pd.DataFrame, limit: float, drift_week: int) -> dict[str, Any]:
    after = table[table["week"] >= drift_week]
    breached = after["fairness_gap_low"] > limit
    cleared = after["fairness_gap_high"] < limit
    first = after.loc[breached, "week"].min() if breached.any() else None
    held = None  # the first week from which every later week stays cleared
    for week in after["week"]:
        if cleared[after["week"] >= week].all():
            held = int(week)
            break
    return {
        "weeks_breached_beyond_noise": int(breached.sum()),
        "weeks_cleared_with_upper_bound": int(cleared.sum()),
        "first_breach_week": None if first is None else int(first),
        "cleared_and_held_from_week": held,
        "monitoring_alerts": int((table["status"] != "ok").sum()),
        "retrains": int(table["retrained"].fillna("").str.match(r"^v\d").sum()),
        "needs_review_weeks": int((table["action"] == "needs_review").sum()),
        "mean_ap_from_drift_week": float(after["ap"].mean()),
        "mean_gap_from_drift_week": float(after["fairness_gap"].mean()),
        "model_alerts": int(table["alerts"].sum()),
    }


def _plot(timelines: dict[str, pd.DataFrame], limit: float, out: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.4), layout="constrained")
    gap_ax, ap_ax = fig.subplots(1, 2)
    for name, table in timelines.items():
        line = gap_ax.plot(table["week"], table["fairness_gap"], marker="o", label=name)[0]
        gap_ax.fill_between(
            table["week"], table["fairness_gap_low"], table["fairness_gap_high"],
            color=line.get_color(), alpha=0.15,
        )  # fmt: skip
        ap_ax.plot(table["week"], table["ap"], marker="o", label=name, color=line.get_color())
    gap_ax.axhline(limit, color="black", ls="--", lw=1, label=f"gate max {limit}")
    gap_ax.set(title="Largest equalized-odds gap (90% interval)", xlabel="week", ylim=(0, 1))
    ap_ax.set(title="Average precision", xlabel="week", ylim=(0, 1))
    for ax in (gap_ax, ap_ax):
        ax.axvline(0.5, color="tab:red", ls=":", lw=1)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"Bias scenario from week 1 (red): {len(timelines)} retraining policies")
    fig.savefig(out, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=None, help="a project copy after dvc repro")
    parser.add_argument("--weeks", type=int, default=12)  # escalation needs > 9
    parser.add_argument("--drift-week", type=int, default=1)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-bias-"))
    started = time.perf_counter()
    root = args.root.resolve() if args.root else _project(work)
    limit = float(yaml.safe_load((root / "params.yaml").read_text())["monitor"]["max_equalized_odds_difference"])  # fmt: skip
    timelines: dict[str, pd.DataFrame] = {}
    seconds: dict[str, float] = {}
    for name, overrides in POLICIES.items():
        path = _policy_params(root, name, overrides)
        t0 = time.perf_counter()
        _run(
            [str(BIN / "inferloop"), "production", "--params", path, "--weeks", str(args.weeks),
             "--scenario", "bias", "--drift-week", str(args.drift_week)],
            root,
        )  # fmt: skip
        seconds[name] = time.perf_counter() - t0
        timelines[name] = pd.read_csv(root / f"reports/bench_bias/{name}/timeline.csv")
    summaries = {n: _summary(t, limit, args.drift_week) for n, t in timelines.items()}
    plain_ap = summaries["retrain"]["mean_ap_from_drift_week"]
    for s in summaries.values():
        s["ap_cost_of_fairness_vs_retrain"] = plain_ap - s["mean_ap_from_drift_week"]
    RESULTS.mkdir(exist_ok=True)
    _plot(timelines, limit, RESULTS / "bias.png")
    result = {
        "benchmark": "bias",
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "weeks": args.weeks,
        "drift_week": args.drift_week,
        "gate_max_equalized_odds_difference": limit,
        "seconds": {**seconds, "total": time.perf_counter() - started},
        "policies": summaries,
        "timelines": {
            n: json.loads(t.drop(columns=["reasons"]).to_json(orient="records"))
            for n, t in timelines.items()
        },
    }
    (RESULTS / "bias.json").write_text(json.dumps(result, indent=2) + "\n")
    print(pd.DataFrame(summaries).T.to_markdown(floatfmt=".3f"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
