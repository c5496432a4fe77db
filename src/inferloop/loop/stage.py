"""Production-simulation stage entry: run the simulated weeks, write the timeline and its plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from inferloop.core.config import load_section, read_params
from inferloop.core.storage import write_json
from inferloop.loop.production import ProductionLoop, ProductionParams, ProductionRun

__all__ = [
    "plot_timeline",
    "read_production_params",
    "run_production",
    "write_outputs",
]


def run_production(
    root: Path,
    *,
    params_path: str = "params.yaml",
    weeks: int | None = None,
    scenario: str | None = None,
    drift_week: int | None = None,
    progress: bool = True,
) -> ProductionRun:
    """Simulate ``weeks`` of production after the training data and run the loop each week."""
    from inferloop.core.tracking import configure_mlflow

    configure_mlflow(root)
    prod = load_section(ProductionParams, "production", root / params_path)
    loop = ProductionLoop(
        root,
        params_path,
        scenario or prod.scenario,
        weeks or prod.weeks,
        prod.drift_week if drift_week is None else drift_week,
    )
    for w in tqdm(
        range(loop.weeks), desc=f"production ({loop.scenario})", unit="week", disable=not progress
    ):
        loop.week(w)
    table = loop.timeline()
    write_outputs(table, loop.out, scenario=loop.scenario, drift_week=loop.drift_week)
    return ProductionRun(table, loop.out)


def write_outputs(table: pd.DataFrame, out: Path, *, scenario: str, drift_week: int) -> None:
    """Timeline as CSV, JSON, markdown and a PNG plot."""
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "timeline.csv", index=False)
    write_json(
        {"scenario": scenario, "drift_week": drift_week, "weeks": table.to_dict("records")},
        out / "timeline.json",
    )
    (out / "timeline.md").write_text(
        table.drop(columns=["reasons"]).to_markdown(index=False, floatfmt=".3f") + "\n"
    )
    plot_timeline(table, scenario=scenario, drift_week=drift_week).savefig(
        out / "timeline.png", dpi=110, bbox_inches="tight"
    )


def plot_timeline(table: pd.DataFrame, *, scenario: str, drift_week: int) -> Any:
    """AP per week (realized, and estimated before labels) with the drift share, the fairness
    gap, drift start and retraining marked.

    Weeks whose action is ``needs_review`` are shaded.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4.2))
    ax = fig.add_subplot(111)
    ax.plot(
        table["week"], table["ap"], marker="o", label="AP (champion, that week)", color="tab:blue"
    )
    if "est_ap" in table and table["est_ap"].notna().any():
        ax.plot(
            table["week"], table["est_ap"], marker="x", ls="--", color="tab:blue", alpha=0.6,
            label="AP estimated before labels (calibrated scores)",
        )  # fmt: skip
    ax.plot(
        table["week"], table["roc_auc"], marker=".", label="ROC-AUC", color="tab:cyan", alpha=0.7
    )
    ax.bar(table["week"], table["drift_share"], alpha=0.25, color="tab:orange", label="drift share")
    if "fairness_gap" in table and table["fairness_gap"].notna().any():
        ax.plot(
            table["week"], table["fairness_gap"], marker="s", color="tab:purple",
            label="largest fairness gap (90% interval)",
        )  # fmt: skip
        ax.fill_between(
            table["week"], table["fairness_gap_low"], table["fairness_gap_high"],
            color="tab:purple", alpha=0.12,
        )  # fmt: skip
    ax.axvline(drift_week - 0.5, color="tab:red", ls="--", label=f"{scenario} starts")
    for _, row in table[table["action"] == "needs_review"].iterrows():
        ax.axvspan(row["week"] - 0.5, row["week"] + 0.5, color="tab:purple", alpha=0.08)
    for _, row in table[table["retrained"] != ""].iterrows():
        ax.annotate(
            row["retrained"],
            (row["week"], row["ap"]),
            textcoords="offset points",
            xytext=(0, 12),
            ha="center",
            fontsize=8,
        )
        ax.axvline(row["week"] + 0.5, color="tab:green", ls=":", alpha=0.8)
    ax.set_xlabel("week after training")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"Production timeline — scenario: {scenario}")
    ax.legend(loc="lower left", fontsize=8)
    return fig


def read_production_params(root: Path, params_path: str = "params.yaml") -> dict[str, Any]:
    """The raw ``production`` section (for notebooks)."""
    return dict(read_params(root / params_path).get("production", {}))
