"""Post-processing (opt-in): one decision threshold per group of a sensitive attribute.

The ``lightgbm_post`` candidate keeps the LightGBM score and its operating threshold ``T``
(chosen on the validation window like any candidate's), and gives each group ``g`` of the
attribute its own threshold ``t_g``, also chosen on the validation window: the highest
threshold at which the group catches at least the share of its fraud that the model catches
overall at ``T``. That is equal opportunity (true-positive-rate parity, Hardt, Price & Srebro
2016), the constraint fairlearn's ``ThresholdOptimizer`` applies with
``constraints="true_positive_rate_parity"``.

Why not fairlearn's ``ThresholdOptimizer`` itself:

* its decisions are randomized between two thresholds per group: the same payment, retried,
  can get the other answer, and a server's answer could not be reproduced by batch scoring;
* its objectives (accuracy, balanced accuracy, selection rate, TPR, TNR) cannot hold the
  project's operating point (best recall at a precision floor, or an alert budget). At a 1 %
  fraud rate, accuracy is best with no alerts and balanced accuracy with thousands a day.

Here the thresholds are deterministic and hold the operating point, group by group.

Serving: the attribute is needed AT DECISION TIME. The model's score becomes a per-group
monotone map of the base score that sends ``t_g`` to ``T`` (:meth:`GroupThresholds.adjust`),
so ``decision = adjusted >= T`` holds in every scoring path unchanged, and the ranking within
a group is the base model's. A row whose group is missing or unseen is decided at ``T``.
A group with fewer than ``min_group_positives`` frauds on the validation window keeps ``T``:
its true-positive rate cannot be measured.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "GroupThresholds",
    "PostprocessParams",
    "fit_group_thresholds",
]

# thresholds stay strictly inside (0, 1) so that the piecewise map is defined on both sides
_EDGE = 1e-9


@dataclass(frozen=True)
class PostprocessParams:
    """``train.postprocess``: the group thresholds behind the ``*_post`` candidates.

    Attributes
    ----------
    attribute : str
        The sensitive attribute (a column of the rows) whose groups get their own threshold.
        Every request to the served model must carry it.
    min_group_positives : int
        A group with fewer frauds on the validation window keeps the overall threshold.
    """

    attribute: str = "age_band"
    min_group_positives: int = 10

    def __post_init__(self) -> None:
        if self.min_group_positives < 1:
            raise ValueError("train.postprocess.min_group_positives must be at least 1")


@dataclass(frozen=True)
class GroupThresholds:
    """A fitted per-group threshold map (see the module docstring).

    Attributes
    ----------
    attribute : str
        The column the groups are read from.
    threshold : float
        The operating threshold ``T`` of the adjusted score (the model's threshold).
    thresholds : dict of str to float
        ``t_g`` on the base score, per group; groups not listed are decided at ``T``.
    target_tpr : float
        The overall true-positive rate at ``T`` on the validation window, which each group's
        threshold reaches.
    report : dict
        Per group, on the validation window: rows, frauds, threshold, TPR and FPR before and
        after, or why the group kept ``T``. For the model card.
    """

    attribute: str
    threshold: float
    thresholds: dict[str, float]
    target_tpr: float
    report: dict[str, dict[str, Any]] = field(default_factory=dict)

    def group_thresholds(self, groups: Sequence[Any] | np.ndarray) -> np.ndarray:
        """``t_g`` of each row (``T`` for a missing or unseen group)."""
        keys = np.asarray(groups, dtype=object)
        out = np.full(len(keys), self.threshold, dtype=np.float64)
        for group, t in self.thresholds.items():
            out[keys == group] = t
        return out

    def adjust(self, scores: np.ndarray, groups: Sequence[Any] | np.ndarray) -> np.ndarray:
        """Scores mapped so that ``adjusted >= T`` exactly when ``score >= t_g``.

        Piecewise linear per group: ``[0, t_g]`` onto ``[0, T]`` and ``[t_g, 1]`` onto
        ``[T, 1]``; monotone, so a group's ranking is the base model's.
        """
        t_g = self.group_thresholds(groups)
        T = self.threshold
        scores = np.asarray(scores, dtype=np.float64)
        below = scores * (T / t_g)
        above = T + (scores - t_g) * ((1.0 - T) / (1.0 - t_g))
        return np.where(scores >= t_g, np.minimum(above, 1.0), np.minimum(below, T - _EDGE))

    def card_lines(self) -> list[str]:
        """The model card's plain-words section on the attribute used at decision time."""
        lines = [
            f"**This model uses `{self.attribute}` at decision time.** Its alert threshold differs "
            f"by `{self.attribute}` group, so that each group has about the same share of its fraud "
            f"caught ({self.target_tpr:.0%} on the validation window): customers of different "
            f"`{self.attribute}` with the same base score can get different decisions. Every "
            f"request must carry `{self.attribute}`; a missing or unseen group is decided at the "
            f"overall threshold {self.threshold:.4f}. Check that this use of a protected "
            "attribute is lawful where the model is deployed.",
            "",
            "| group | validation rows | frauds | threshold (base score) | TPR before | TPR after | FPR before | FPR after | note |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for group, r in self.report.items():
            lines.append(
                f"| {group} | {r['rows']:,} | {r['frauds']:,} | {r['threshold']:.4f} | "
                f"{_pct(r['tpr_before'])} | {_pct(r['tpr_after'])} | {_pct(r['fpr_before'])} | "
                f"{_pct(r['fpr_after'])} | {r.get('note', '')} |"
            )
        return [*lines, ""]


def _pct(value: float) -> str:
    return "n/a" if value is None or np.isnan(value) else f"{value:.3f}"


def _rate(hits: np.ndarray, mask: np.ndarray) -> float:
    return float(hits[mask].mean()) if mask.any() else float("nan")


def fit_group_thresholds(
    scores: np.ndarray,
    y: np.ndarray,
    groups: Sequence[Any] | np.ndarray,
    threshold: float,
    params: PostprocessParams,
) -> GroupThresholds:
    """Choose each group's threshold on held-out rows (the validation window).

    Parameters
    ----------
    scores, y, groups
        Base-model fraud scores, 0/1 labels and the attribute's value of each row.
    threshold
        The base model's operating threshold ``T`` on these rows.
    params
        The attribute and the minimum frauds for a group to get its own threshold.

    Returns
    -------
    GroupThresholds
    """
    scores = np.asarray(scores, dtype=np.float64)
    y = np.asarray(y).astype(bool)
    keys = np.asarray(groups, dtype=object)
    if not y.any():
        raise ValueError("group thresholds need frauds on the validation window; it has none")
    target = float((scores[y] >= threshold).mean())
    chosen: dict[str, float] = {}
    notes: dict[str, str] = {}
    for group in sorted({g for g in keys if isinstance(g, str)}):
        frauds = np.sort(scores[(keys == group) & y])[::-1]
        if len(frauds) < params.min_group_positives:
            notes[group] = (
                f"kept the overall threshold: {len(frauds)} frauds (< {params.min_group_positives})"
            )
            continue
        caught = int(np.ceil(target * len(frauds) - 1e-12))
        t = threshold if caught == 0 else float(frauds[caught - 1])
        chosen[group] = float(np.clip(t, _EDGE, 1.0 - _EDGE))
    fitted = GroupThresholds(params.attribute, float(threshold), chosen, target)
    return GroupThresholds(
        fitted.attribute,
        fitted.threshold,
        fitted.thresholds,
        target,
        _report(fitted, scores, y, keys, notes),
    )


def _report(
    fitted: GroupThresholds,
    scores: np.ndarray,
    y: np.ndarray,
    keys: np.ndarray,
    notes: Mapping[str, str],
) -> dict[str, dict[str, Any]]:
    before = scores >= fitted.threshold
    after = fitted.adjust(scores, keys) >= fitted.threshold
    out: dict[str, dict[str, Any]] = {}
    for group in [*fitted.thresholds, *notes]:
        mask = keys == group
        out[group] = {
            "rows": int(mask.sum()),
            "frauds": int((mask & y).sum()),
            "threshold": fitted.thresholds.get(group, fitted.threshold),
            "tpr_before": _rate(before, mask & y),
            "tpr_after": _rate(after, mask & y),
            "fpr_before": _rate(before, mask & ~y),
            "fpr_after": _rate(after, mask & ~y),
            **({"note": notes[group]} if group in notes else {}),
        }
    return dict(sorted(out.items()))
