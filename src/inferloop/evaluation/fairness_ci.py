"""Bootstrap confidence intervals for group fairness, and the rule a gate applies to them.

A fairness gap measured on a few days of traffic is noisy: with 30 to 40 frauds per group a
group's true positive rate has a standard error near 0.08, and the largest-minus-smallest gap
over five groups moves by 0.3 or more between two windows of the same world. A gate that
compares the point value with its threshold is then a coin toss. Here each group metric and
each gap carries a percentile bootstrap interval, and the gate decides on the interval:

* ``lower_bound`` (default): fail only when even the interval's lower end is over the
  threshold, i.e. the window shows a breach beyond its noise. At a true gap equal to the
  threshold this fails ``(1 - confidence) / 2`` of the time; below it, less.
* ``upper_bound``: pass only when the interval's upper end is under the threshold, i.e. the
  window shows fairness beyond its noise. Strict: short windows fail it often.
* ``point``: the point value against the threshold (the behaviour before intervals).

The bootstrap is stratified by group (each group keeps its size) and multinomial over the
four (label, decision) cells of each group, which is exactly a row resample within groups
but costs nothing per row: 1,000 resamples of a million rows take milliseconds.

A rate needs enough rows behind it to mean anything: a group's TPR with fewer than
``min_group_positives`` frauds (or its FPR with fewer genuine rows) is "not assessable" and
left out of that gap, and a gap with fewer than two assessable groups is not assessable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "GATE_RULES",
    "IntervalParams",
    "bootstrap_cells",
    "cell_rates",
    "gap_of",
    "passes_rule",
    "percentile_interval",
]


GATE_RULES: Final = ("lower_bound", "upper_bound", "point")

# cell index = label * 2 + decision (see fairness._reduce)
_TN, _FP, _FN, _TP = 0, 1, 2, 3


@dataclass(frozen=True)
class IntervalParams:
    """How fairness gaps are bounded and judged (``evaluate.fairness_gate``, ``monitor.fairness_gate``).

    Attributes
    ----------
    rule : {"lower_bound", "upper_bound", "point"}
        What must stay under the threshold; see the module docstring.
    confidence : float
        Two-sided confidence of every interval (0.9: 5 % in each tail).
    n_boot : int
        Bootstrap resamples.
    min_group_positives : int
        Frauds (and genuine rows) a group needs for its TPR (FPR) to be assessable.
    seed : int
        Seed of the resampling, so a verdict is reproducible.
    """

    rule: str = "lower_bound"
    confidence: float = 0.9
    n_boot: int = 1000
    min_group_positives: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        if self.rule not in GATE_RULES:
            raise ValueError(f"fairness_gate.rule must be one of {GATE_RULES}, got {self.rule!r}")
        if not 0.0 < self.confidence < 1.0:
            raise ValueError(
                f"fairness_gate.confidence must be between 0 and 1, got {self.confidence}"
            )
        if self.n_boot < 1 or self.min_group_positives < 1:
            raise ValueError("fairness_gate.n_boot and min_group_positives must be at least 1")


def bootstrap_cells(cells: NDArray[np.int64], n_boot: int, seed: int) -> NDArray[np.int64]:
    """``n_boot`` stratified resamples of per-group (label, decision) counts.

    Parameters
    ----------
    cells : array of shape (groups, 4)
        Rows per group in the cells true negative, false positive, false negative, true
        positive.
    n_boot, seed : int

    Returns
    -------
    array of shape (n_boot, groups, 4)
    """
    rng = np.random.default_rng(seed)
    out = np.zeros((n_boot, *cells.shape), dtype=np.int64)
    for g, counts in enumerate(cells):
        n = int(counts.sum())
        if n:
            out[:, g, :] = rng.multinomial(n, counts / n, size=n_boot)
    return out


def _ratio(num: NDArray[np.int64], den: NDArray[np.int64]) -> NDArray[np.float64]:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.maximum(den, 1), np.nan)


def cell_rates(cells: NDArray[np.int64]) -> dict[str, NDArray[np.float64]]:
    """TPR, FPR and alert (selection) rate per group from (..., groups, 4) cell counts."""
    tp, fn, fp, tn = (cells[..., i] for i in (_TP, _FN, _FP, _TN))
    return {
        "tpr": _ratio(tp, tp + fn),
        "fpr": _ratio(fp, fp + tn),
        "selection_rate": _ratio(tp + fp, tp + fn + fp + tn),
    }


def gap_of(rates: NDArray[np.float64], mask: NDArray[np.bool_]) -> NDArray[np.float64]:
    """Largest minus smallest rate over the ``mask`` groups (last axis); NaN with fewer than two."""
    chosen = rates[..., mask]
    defined = np.isfinite(chosen).sum(axis=-1)
    with np.errstate(invalid="ignore"):
        hi = np.max(np.where(np.isfinite(chosen), chosen, -np.inf), axis=-1, initial=-np.inf)
        lo = np.min(np.where(np.isfinite(chosen), chosen, np.inf), axis=-1, initial=np.inf)
    return np.where(defined >= 2, hi - lo, np.nan)


def percentile_interval(values: NDArray[np.float64], confidence: float) -> tuple[float, float]:
    """The central ``confidence`` interval of the finite bootstrap values (NaNs when none)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return math.nan, math.nan
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(finite, [tail, 100.0 - tail])
    return float(low), float(high)


def passes_rule(value: float, low: float, high: float, threshold: float, rule: str) -> bool:
    """Whether a gap passes its ``max`` threshold under ``rule``; NaN never passes."""
    judged = {"lower_bound": low, "upper_bound": high, "point": value}[rule]
    return math.isfinite(judged) and judged <= threshold
