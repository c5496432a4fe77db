"""Promotion gates and the model card: absolute minimums, champion comparison, fairness.

Gates compare a candidate's test-window metrics with thresholds from ``params.yaml`` and with
the current champion scored on the SAME rows. A failed gate is a result, not an exception.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from inferloop.evaluation.fairness import GroupFairness, fairness_table
from inferloop.evaluation.metrics import ClassificationMetrics

__all__ = [
    "Decision",
    "EvaluateParams",
    "Gate",
    "GateParams",
    "decide",
    "model_card",
]


@dataclass(frozen=True)
class GateParams:
    """Thresholds of the promotion gates (section ``evaluate.gates``)."""

    min_average_precision: float = 0.3
    min_roc_auc: float = 0.75
    max_ap_regression: float = 0.02
    max_auc_regression: float = 0.01
    max_equalized_odds_difference: float = 0.45
    max_demographic_parity_difference: float = 0.05


@dataclass(frozen=True)
class EvaluateParams:
    """The ``evaluate`` section of params.yaml."""

    k: int = 100
    fairness_attributes: tuple[str, ...] = ("age_band", "region")
    min_group_size: int = 30
    gates: GateParams = field(default_factory=GateParams)


@dataclass(frozen=True)
class Gate:
    """One gate: ``value`` must be ``>= threshold`` (kind ``min``) or ``<= threshold`` (``max``)."""

    name: str
    value: float
    threshold: float
    kind: str

    @property
    def passed(self) -> bool:
        """NaN values fail: a metric that cannot be computed proves nothing."""
        if math.isnan(self.value):
            return False
        return self.value >= self.threshold if self.kind == "min" else self.value <= self.threshold

    def as_dict(self) -> dict[str, Any]:
        """Value, threshold, kind and verdict."""
        return {**asdict(self), "passed": self.passed}


@dataclass(frozen=True)
class Decision:
    """The gates of one candidate and the overall verdict."""

    candidate: str
    gates: tuple[Gate, ...]
    champion_version: str | None = None

    @property
    def passed(self) -> bool:
        """True when every gate passed."""
        return all(g.passed for g in self.gates)

    @property
    def failed(self) -> list[str]:
        """Names of the failed gates."""
        return [g.name for g in self.gates if not g.passed]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (the decision file)."""
        return {
            "candidate": self.candidate,
            "passed": self.passed,
            "failed": self.failed,
            "champion_version": self.champion_version,
            "gates": {g.name: g.as_dict() for g in self.gates},
        }


def decide(
    candidate: str,
    metrics: ClassificationMetrics,
    fairness: Mapping[str, GroupFairness],
    params: GateParams,
    champion: ClassificationMetrics | None = None,
    champion_version: str | None = None,
) -> Decision:
    """Evaluate every gate for ``candidate``; champion gates apply only when one exists."""
    gates = [
        Gate(
            "min_average_precision", metrics.average_precision, params.min_average_precision, "min"
        ),
        Gate("min_roc_auc", metrics.roc_auc, params.min_roc_auc, "min"),
    ]
    if champion is not None:
        gates += [
            Gate(
                "ap_vs_champion",
                metrics.average_precision - champion.average_precision,
                -params.max_ap_regression,
                "min",
            ),
            Gate(
                "roc_auc_vs_champion",
                metrics.roc_auc - champion.roc_auc,
                -params.max_auc_regression,
                "min",
            ),
        ]
    for attribute, report in fairness.items():
        gates += [
            Gate(
                f"equalized_odds_difference:{attribute}",
                report.equalized_odds_difference,
                params.max_equalized_odds_difference,
                "max",
            ),
            Gate(
                f"demographic_parity_difference:{attribute}",
                report.demographic_parity_difference,
                params.max_demographic_parity_difference,
                "max",
            ),
        ]
    return Decision(candidate, tuple(gates), champion_version)


def _fmt(value: float) -> str:
    return "n/a" if isinstance(value, float) and math.isnan(value) else f"{value:.4f}"


def model_card(
    *,
    candidate: str,
    windows: Mapping[str, Mapping[str, Any]],
    metrics: Mapping[str, ClassificationMetrics],
    fairness: Mapping[str, GroupFairness],
    decision: Decision,
    lineage: Mapping[str, str],
    train_seconds: Mapping[str, float],
) -> str:
    """A markdown model card: data windows, metrics, fairness table, gates, known limits."""
    lines = [f"# Model card: fraud-detector ({candidate})", "", "## Data windows", ""]
    lines += ["| window | start | end | rows | frauds |", "| --- | --- | --- | --- | --- |"]
    lines += [
        f"| {n} | {w['start']} | {w['end']} | {w['rows']:,} | {w['frauds']:,} |"
        for n, w in windows.items()
    ]
    lines += ["", "## Test-window metrics (all candidates and the champion, same rows)", ""]
    lines += [
        "| model | ROC-AUC | AP | CP@k/day | precision | recall | Brier | train s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, m in metrics.items():
        secs = train_seconds.get(name)
        lines.append(
            f"| {name} | {_fmt(m.roc_auc)} | {_fmt(m.average_precision)} | {_fmt(m.card_precision_at_k)} | "
            f"{_fmt(m.precision)} | {_fmt(m.recall)} | {_fmt(m.brier)} | {'' if secs is None else f'{secs:.1f}'} |"
        )
    lines += ["", "## Fairness (at the operating threshold)", ""]
    table = fairness_table(fairness) if fairness else pd.DataFrame()
    lines += [
        table.to_markdown(index=False, floatfmt=".3f") if len(table) else "no sensitive attributes",
        "",
    ]
    lines += [
        "## Gates",
        "",
        "| gate | value | threshold | kind | passed |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| {g.name} | {_fmt(g.value)} | {_fmt(g.threshold)} | {g.kind} | {'yes' if g.passed else '**no**'} |"
        for g in decision.gates
    ]
    verdict = (
        "PASSED: eligible for champion"
        if decision.passed
        else f"FAILED: {', '.join(decision.failed)}"
    )
    lines += ["", f"**Decision:** {verdict}", "", "## Lineage", ""]
    lines += [f"- {k}: `{v}`" for k, v in lineage.items()]
    lines += [
        "",
        "## Known limits",
        "",
        "- Trained and tested on simulated transactions; real fraud patterns differ.",
        "- Features use the history known at training time; serving a long time after training",
        "  without refreshing the history (retraining) degrades the window features.",
        "- Scores of class-weighted models are not calibrated probabilities; use the threshold.",
        "- Fairness is measured on the sensitive attributes present in the data only.",
    ]
    return "\n".join(lines) + "\n"
