"""Promotion gates and the model card: absolute minimums, champion comparison, fairness.

Gates compare a candidate's test-window metrics with thresholds from ``params.yaml`` and with
the current champion scored on the SAME rows. A failed gate is a result, not an exception.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from inferloop.core.dataset import CARD_FRAUD, DatasetSpec
from inferloop.evaluation.fairness import GroupFairness, fairness_table
from inferloop.evaluation.fairness_ci import IntervalParams, passes_rule
from inferloop.evaluation.group_thresholds import GroupThresholds
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
    min_group_size: int = 30
    gates: GateParams = field(default_factory=GateParams)
    fairness_gate: IntervalParams = field(default_factory=IntervalParams)


@dataclass(frozen=True)
class Gate:
    """One gate: ``value`` must be ``>= threshold`` (kind ``min``) or ``<= threshold`` (``max``).

    A fairness gate also carries its bootstrap interval (``low``, ``high``) and the ``rule``
    that judges it (see :mod:`inferloop.evaluation.fairness_ci`); ``note`` says why a value
    could not be assessed.
    """

    name: str
    value: float
    threshold: float
    kind: str
    low: float = math.nan
    high: float = math.nan
    rule: str = "point"
    note: str = ""

    @property
    def passed(self) -> bool:
        """NaN values fail: a metric that cannot be computed proves nothing."""
        if math.isnan(self.value):
            return False
        if self.kind == "max" and self.rule != "point":
            return passes_rule(self.value, self.low, self.high, self.threshold, self.rule)
        return self.value >= self.threshold if self.kind == "min" else self.value <= self.threshold

    def as_dict(self) -> dict[str, Any]:
        """Value, threshold, kind, interval, rule and verdict."""
        return {**asdict(self), "passed": self.passed}

    def describe(self) -> str:
        """The gate's value in words: the interval and the rule when there is one."""
        if self.note and math.isnan(self.value):
            return f"not assessable: {self.note}"
        if self.rule == "point":
            return _fmt(self.value)
        return f"{_fmt(self.value)} [{_fmt(self.low)}, {_fmt(self.high)}] ({self.rule.replace('_', ' ')})"


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
    fairness_gate: IntervalParams | None = None,
) -> Decision:
    """Evaluate every gate for ``candidate``; champion gates apply only when one exists.

    Fairness gates judge each gap's bootstrap interval by ``fairness_gate.rule`` (default
    :class:`IntervalParams`). A gap that cannot be assessed fails with a note that names the
    attribute and its group sizes; no sensitive attribute at all adds no fairness gate.
    """
    rule = (fairness_gate or IntervalParams()).rule
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
    limits = {
        "equalized_odds_difference": params.max_equalized_odds_difference,
        "demographic_parity_difference": params.max_demographic_parity_difference,
    }
    for report in fairness.values():
        gates += [_fairness_gate(report, gap, limit, rule) for gap, limit in limits.items()]
    return Decision(candidate, tuple(gates), champion_version)


def _fairness_gate(report: GroupFairness, gap: str, limit: float, rule: str) -> Gate:
    low, high = report.interval(gap)
    return Gate(
        f"{gap}:{report.attribute}",
        float(getattr(report, gap)),
        limit,
        "max",
        low=low,
        high=high,
        rule=rule,
        note=report.not_assessable.get(gap, ""),
    )


def _fmt(value: float) -> str:
    return "n/a" if isinstance(value, float) and math.isnan(value) else f"{value:.4f}"


def _fairness_lines(fairness: Mapping[str, GroupFairness]) -> list[str]:
    """The per-group table with intervals, and what could not be assessed, in words."""
    if not fairness:
        return ["Fairness not assessed: no sensitive attribute is declared.", ""]
    confidence = next(iter(fairness.values())).confidence
    table = fairness_table(fairness)
    lines = [
        f"Rates with their {confidence:.0%} bootstrap interval; groups in the `note` column "
        "stay out of the gaps.",
        "",
        table.to_markdown(index=False, floatfmt=".3f"),
        "",
    ]
    for result in fairness.values():
        lines += [
            f"- Not assessable: {why}" for why in dict.fromkeys(result.not_assessable.values())
        ]
    return [*lines, ""]


def _calibration_lines(effect: Mapping[str, Any] | None) -> list[str]:
    """The calibration's kind and its effect (out of fold on the validation window)."""
    if not effect:
        return []
    row = " | ".join(
        f"{_fmt(float(effect.get(f'{m}_raw', math.nan)))} -> {_fmt(float(effect.get(m, math.nan)))}"
        for m in ("brier", "log_loss", "ece")
    )
    return [
        "",
        f"## Calibration ({effect.get('kind')}, fitted on the validation window)",
        "",
        "Monitoring maps the score to a probability with it, to estimate precision and AP",
        "before the chargebacks arrive. Raw -> calibrated, out of fold:",
        "",
        "| Brier | log loss | ECE |",
        "| --- | --- | --- |",
        f"| {row} |",
    ]


def _data_lines(spec: DatasetSpec, categories: Mapping[str, Sequence[str]] | None) -> list[str]:
    """What the model reads (the dataset spec's roles) and what it never reads."""
    encoded = dict(categories or spec.categorical_features)
    lines = [f"## Data: `{spec.name}`", ""]
    lines.append(
        "- Core columns: transaction id, timestamp, customer and terminal keys, amount; "
        "window features per customer and per terminal."
    )
    for column, values in encoded.items():
        how = "declared" if spec.categorical_features.get(column) else "learned"
        lines.append(f"- Categorical feature `{column}` ({how}): {', '.join(map(str, values))}")
    if spec.numeric_features:
        lines.append(f"- Numeric features: {', '.join(f'`{c}`' for c in spec.numeric_features)}")
    if spec.sensitive_columns:
        lines.append(
            "- Sensitive attributes (fairness only, never features): "
            + ", ".join(f"`{c}`" for c in spec.sensitive_columns)
        )
    else:
        lines.append("- No sensitive attribute declared: fairness not assessed.")
    return [*lines, ""]


def model_card(
    *,
    candidate: str,
    windows: Mapping[str, Mapping[str, Any]],
    metrics: Mapping[str, ClassificationMetrics],
    fairness: Mapping[str, GroupFairness],
    decision: Decision,
    lineage: Mapping[str, str],
    train_seconds: Mapping[str, float],
    postprocess: GroupThresholds | None = None,
    calibration: Mapping[str, Any] | None = None,
    dataset: DatasetSpec = CARD_FRAUD,
    categories: Mapping[str, Sequence[str]] | None = None,
    model_name: str = "fraud-detector",
) -> str:
    """A markdown model card: data, windows, metrics, fairness table, gates, known limits.

    ``dataset`` is the spec the model was trained under and ``categories`` the categories its
    featurizer encodes (declared or learned): the card's "Data" section says which columns
    the model reads and which it never does.

    With ``postprocess`` (the model decides with per-group thresholds) the card says first, in
    plain words, which attribute it reads at decision time and gives each group's threshold.
    ``calibration`` is the effect of the model's calibration on the validation window
    (:class:`~inferloop.evaluation.calibration.CalibrationEffect` with its ``kind``).
    """
    lines = [f"# Model card: {model_name} ({candidate})", ""]
    if postprocess is not None:
        lines += ["## Uses a sensitive attribute at decision time", "", *postprocess.card_lines()]
    lines += _data_lines(dataset, categories)
    lines += ["## Data windows", ""]
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
    lines += _calibration_lines(calibration)
    lines += ["", "## Fairness (at the operating threshold)", ""]
    lines += _fairness_lines(fairness)
    lines += [
        "## Gates",
        "",
        "| gate | value [interval] | threshold | kind | passed |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| {g.name} | {g.describe()} | {_fmt(g.threshold)} | {g.kind} | {'yes' if g.passed else '**no**'} |"
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
        (
            "- Trained and tested on simulated transactions; real fraud patterns differ."
            if dataset.name == CARD_FRAUD.name
            else f"- Trained and tested on the `{dataset.name}` data only."
        ),
        "- Features use the history known at training time; serving a long time after training",
        "  without refreshing the history (retraining) degrades the window features.",
        "- The score is not a calibrated probability: decisions use the threshold, and the",
        "  calibration above serves only monitoring's estimates before labels arrive.",
        "- Fairness is measured on the sensitive attributes present in the data only.",
    ]
    if candidate.endswith("_fair"):
        lines.append(
            "- Bias-mitigated (fairlearn reductions): the sensitive attribute was used to TRAIN "
            "this model only; it scores without any sensitive attribute."
        )
    if postprocess is not None:
        lines.append(
            f"- Post-processed: decisions depend on `{postprocess.attribute}`. A request without "
            "that column is refused; a row with a missing or unseen group is decided at the "
            "overall threshold."
        )
    return "\n".join(lines) + "\n"
