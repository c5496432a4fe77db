"""Bring your own data, measured: each dataset preset through the real pipeline, from params alone.

For every preset that has a layout (``inferloop.data.samples.LAYOUTS``), the default
simulation (the same rows ``make run`` trains on) is written in that layout's columns, a
fresh git + DVC copy of the project is switched to the preset with ``inferloop init
--preset NAME``, and ``dvc repro register`` runs: validate, featurize, split, train, evaluate,
register. The card-fraud layout itself (the simulator, the default) runs the same way, as
the reference. Results: ``results/layouts.json``, per layout: rows in / valid / quarantined,
the run time, the chosen candidate's test AP and ROC-AUC, and whether the gates passed (and
which failed, with their values).

    python benchmarks/bench_layouts.py [--layouts handbook,mobile_money] [--days 84] [--edge]

``--edge`` also runs the optimize stage after register (the edge model: distilled,
compressed, compiled) and records the chosen variant's size, latency and losses.

A run of some layouts on the same simulation keeps the other layouts' results in the file.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from inferloop.core.config import load_section
from inferloop.data.samples import LAYOUTS, as_layout
from inferloop.data.simulate import SimulateParams, simulate_transactions

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "layouts.json"
BIN = Path(sys.executable).parent
COPIED = ("dvc.yaml", "notebooks", "src", "pipelines", "configs", ".dvcignore", ".gitignore")


def _run(cmd: list[str], cwd: Path) -> None:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.update({"INFERLOOP_ROOT": str(cwd), "MLFLOW_DISABLE_TELEMETRY": "true"})
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")


def _project(where: Path) -> Path:
    """A copy of the project's pipeline, code, params and presets in a new git + DVC repo."""
    where.mkdir(parents=True, exist_ok=True)
    for name in (*COPIED, "params.yaml"):
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(
                src, where / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
            )
        elif src.exists():
            shutil.copy2(src, where / name)
    _run(["git", "init", "-q"], where)
    _run(
        [
            "git",
            "-c",
            "user.email=b@b",
            "-c",
            "user.name=b",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "init",
        ],
        where,
    )
    _run([str(BIN / "dvc"), "init", "-q"], where)
    _run([str(BIN / "dvc"), "config", "core.analytics", "false"], where)
    return where


def _read(path: Path) -> Any:
    return json.loads(path.read_text())


def run_layout(layout: str, raw: Any, where: Path, edge: bool = False) -> dict[str, Any]:
    """One preset end to end; the figures the closing note quotes."""
    repo = _project(where)
    if layout != "card_fraud":
        _run([str(BIN / "inferloop"), "init", "--preset", layout], repo)
        data_path = repo / yaml.safe_load((repo / "params.yaml").read_text())["data"]["path"]
        data_path.parent.mkdir(parents=True, exist_ok=True)
        as_layout(raw, layout).to_csv(data_path, index=False)
    began = time.perf_counter()
    _run([str(BIN / "dvc"), "repro", "register"], repo)
    seconds = time.perf_counter() - began
    validated = _read(repo / "reports/metrics/validate.json")
    evaluated = _read(repo / "reports/metrics/evaluate.json")
    decision = _read(repo / "reports/evaluate/decision.json")
    register = _read(repo / "reports/register.json")
    chosen = evaluated["chosen"]
    failed = {
        name: gate
        for name, gate in decision.get("gates", {}).items()
        if not gate.get("passed", True)
    }
    out = {
        "rows_in": validated["rows_in"],
        "rows_valid": validated["rows_valid"],
        "rows_quarantined": validated["rows_quarantined"],
        "quarantined_by_reason": validated["by_reason"],
        "seconds_to_register": round(seconds, 1),
        "chosen": chosen,
        "test_average_precision": evaluated[chosen]["average_precision"],
        "test_roc_auc": evaluated[chosen]["roc_auc"],
        "gates_passed": bool(decision["passed"]),
        "failed_gates": failed,
        "fairness_assessed": bool(evaluated.get("fairness")),
        "champion_registered": bool(register.get("promoted")),
    }
    if edge:
        out["edge"] = _edge(repo)
    return out


def _edge(repo: Path) -> dict[str, Any]:
    """``dvc repro optimize`` after register: the edge variant chosen, its size and speed."""
    began = time.perf_counter()
    _run([str(BIN / "dvc"), "repro", "optimize"], repo)
    seconds = time.perf_counter() - began
    optimized = _read(repo / "reports/metrics/optimize.json")
    edge, teacher = optimized["edge"], optimized["teacher"]
    return {
        "seconds_to_optimize": round(seconds, 1),
        "chosen": optimized["chosen"],
        "edge_registered": bool(optimized.get("edge_is_champion")),
        "edge_ap": edge["ap"],
        "edge_roc_auc": edge["roc_auc"],
        "teacher_ap": teacher["ap"],
        "ap_loss": optimized["ap_loss"],
        "roc_auc_loss": optimized["roc_auc_loss"],
        "edge_size_bytes": edge["size_bytes"],
        "teacher_size_bytes": teacher["size_bytes"],
        "edge_p50_us": edge["p50_us"],
        "teacher_p50_us": teacher["p50_us"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--layouts", default=",".join(["card_fraud", *sorted(LAYOUTS)]))
    parser.add_argument("--days", type=int, default=None, help="simulate.n_days (default: params)")
    parser.add_argument("--edge", action="store_true", help="also run the optimize stage")
    args = parser.parse_args()
    sim = load_section(SimulateParams, "simulate", ROOT / "params.yaml")
    if args.days:
        sim = SimulateParams(**{**sim.__dict__, "n_days": args.days})
    raw = simulate_transactions(sim, progress=False)
    simulated = {"n_days": sim.n_days, "n_customers": sim.n_customers, "seed": sim.seed}
    results: dict[str, Any] = {"simulate": simulated}
    if RESULTS.exists() and _read(RESULTS).get("simulate") == simulated:
        results = _read(RESULTS)  # the same rows: a run of some layouts keeps the others'
    with tempfile.TemporaryDirectory(prefix="inferloop-layouts-") as tmp:
        for layout in args.layouts.split(","):
            print(f"-- {layout}", flush=True)
            previous = results.get(layout, {})
            results[layout] = run_layout(layout, raw, Path(tmp) / layout, args.edge)
            if not args.edge and "edge" in previous:  # keep an earlier edge measurement
                results[layout]["edge"] = previous["edge"]
            print(json.dumps(results[layout], indent=1), flush=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"-> {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
