"""The project's pipeline in a fresh git + DVC repo, with tiny params: shared by the
pipeline and the dataset-layout tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DVC = str(Path(sys.executable).parent / "dvc")

TINY = {
    "simulate": {"n_customers": 400, "n_terminals": 260, "n_days": 35, "seed": 11},
    "featurize": {"label_delay": "3D", "extra_history": "4D"},
    "split": {"train_days": 14, "validation_days": 4, "test_days": 4, "gap_days": 3},
    "train": {"lightgbm": {"n_estimators": 120, "early_stopping_rounds": 20}, "mlp": {"epochs": 3}},
    "production": {"weeks": 3, "drift_week": 1},
    # the edge model as x86-64 code (the ONNX edge path is unit-tested in a subprocess)
    "optimize": {
        "selection": {
            "max_ap_loss": 1.0,
            "max_auc_loss": 1.0,
            "reference": "teacher",
            "fallback": "teacher_onnx",
            "formats": ["lleaves", "llvm"],
            "min_size_ratio": 1,
            "losses_on": "validation",
            "latency_tolerance": 0.15,
        }
    },
    "evaluate": {
        "k": 10,
        "gates": {  # tiny windows: gates that a sane model passes; the real ones are tested in tests/model
            "min_average_precision": 0.05,
            "min_roc_auc": 0.5,
            "max_ap_regression": 1.0,
            "max_auc_regression": 1.0,
            "max_equalized_odds_difference": 1.0,
            "max_demographic_parity_difference": 1.0,
        },
        # a tiny test window has a handful of frauds per group: let every TPR enter the gap
        "fairness_gate": {"min_group_positives": 1},
    },
}


def tiny_params(extra: dict[str, dict[str, object]] | None = None) -> dict[str, object]:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for section, values in {**TINY, **(extra or {})}.items():
        params[section] = {**params.get(section, {}), **values}
    return params


def env(repo: Path) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    out["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{out.get('PATH', '')}"
    out["INFERLOOP_ROOT"] = str(repo)
    out["MLFLOW_DISABLE_TELEMETRY"] = "true"
    return out


def run(cmd: list[str], repo: Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        cmd, cwd=repo, env=env(repo), capture_output=True, text=True, timeout=1500
    )
    assert proc.returncode == 0, (
        f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    )
    return proc


def fresh_repo(repo: Path, params: dict[str, Any] | None = None) -> Path:
    """The project's pipeline, code and tiny params in a new git + DVC repo (nothing run yet)."""
    for name in (
        "dvc.yaml",
        "notebooks",
        "src",
        "pipelines",
        "configs",
        ".dvcignore",
        ".gitignore",
    ):
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(
                src, repo / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
            )
        elif src.exists():
            shutil.copy2(src, repo / name)
    (repo / "params.yaml").write_text(
        yaml.safe_dump(tiny_params() if params is None else params, sort_keys=False)
    )
    dvc = str(Path(sys.executable).parent / "dvc")
    run(["git", "init", "-q"], repo)
    run(
        [
            "git",
            "-c",
            "user.email=t@t",
            "-c",
            "user.name=t",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "init",
        ],
        repo,
    )
    run([dvc, "init", "-q"], repo)
    run([dvc, "config", "core.analytics", "false"], repo)
    return repo
