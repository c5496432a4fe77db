"""Plots of model quality: PR and ROC curves, calibration, score distributions.

The helpers build :class:`matplotlib.figure.Figure` objects directly, so importing this module
or calling them never touches pyplot's global state or the matplotlib backend.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike
from sklearn.metrics import (
    average_precision_score,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

from inferloop.evaluation.metrics import (
    calibration_table,
    labels_and_scores,
    require_both_classes,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "plot_calibration",
    "plot_pr_roc",
    "plot_score_distribution",
]


def _new_figure(
    ncols: int = 1, width: float = 6.0, height: float = 4.5
) -> tuple[Figure, list[Axes]]:
    """A pyplot-free figure with ``ncols`` side-by-side axes."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def _as_model_dict(scores: ArrayLike | Mapping[str, ArrayLike]) -> dict[str, ArrayLike]:
    if isinstance(scores, Mapping):
        return dict(scores)
    return {"model": scores}


def plot_pr_roc(y_true: ArrayLike, scores_by_model: Mapping[str, ArrayLike]) -> Figure:
    """Precision-recall (left) and ROC (right) curves, one line per model.

    Parameters
    ----------
    y_true : array-like of {0, 1}
        Labels shared by all models (same rows, same order).
    scores_by_model : mapping of str to array-like
        Model name to its scores.

    Returns
    -------
    matplotlib.figure.Figure
        Legends show each model's average precision and ROC-AUC.
    """
    fig, (ax_pr, ax_roc) = _new_figure(ncols=2)
    prevalence = float(np.mean(np.asarray(y_true)))
    for name, model_scores in scores_by_model.items():
        y, s = labels_and_scores(y_true, model_scores)
        require_both_classes(y, "plot_pr_roc")
        precision, recall, _ = precision_recall_curve(y, s)
        fpr, tpr, _ = roc_curve(y, s)
        ax_pr.step(
            recall,
            precision,
            where="post",
            label=f"{name} (AP={average_precision_score(y, s):.3f})",
        )
        ax_roc.plot(fpr, tpr, label=f"{name} (AUC={roc_auc_score(y, s):.3f})")
    ax_pr.axhline(prevalence, color="grey", linestyle=":", label=f"prevalence {prevalence:.3%}")
    ax_roc.plot([0, 1], [0, 1], color="grey", linestyle=":")
    _label_axes(ax_pr, "Recall", "Precision", "Precision-recall")
    _label_axes(ax_roc, "False positive rate", "True positive rate", "ROC")
    return fig


def _label_axes(ax: Axes, xlabel: str, ylabel: str, title: str) -> None:
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title, xlim=(0, 1), ylim=(0, 1.02))
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")


def plot_calibration(
    y_true: ArrayLike,
    scores: ArrayLike | Mapping[str, ArrayLike],
    n_bins: int = 10,
    log_scale: bool = True,
) -> Figure:
    """Reliability diagram: observed fraud rate against mean score per quantile bin.

    Fraud is rare, so most equal-count bins sit near zero and a linear diagram shows one
    point away from the corner. Log-log axes (the default) spread them out. A bin with no
    fraud has no place on a log axis: it is drawn as a hollow marker at half of one fraud in
    that bin (``1 / (2 n)``), the bound below which its true rate most likely lies.

    Parameters
    ----------
    y_true : array-like of {0, 1}
    scores : array-like of float, or mapping of model name to array-like
        One model's scores or several models' scores (one line each).
    n_bins : int, default 10
        Quantile bins per model (see :func:`calibration_table`).
    log_scale : bool, default True
        Log-log axes; False draws linear axes from 0 to 1.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, (ax,) = _new_figure()
    lows: list[float] = []
    for name, model_scores in _as_model_dict(scores).items():
        table = calibration_table(y_true, model_scores, n_bins=n_bins)
        x, rate, count = (
            table[c].to_numpy(dtype=float) for c in ("mean_score", "fraud_rate", "count")
        )
        if not log_scale:
            ax.plot(x, rate, marker="o", label=name)
            continue
        x = np.maximum(x, 1e-6)
        none = rate == 0
        shown = np.where(none, 0.5 / np.maximum(count, 1), rate)
        (line,) = ax.plot(x, shown, marker="o", label=name)
        if none.any():
            ax.plot(x[none], shown[none], "o", markerfacecolor="white", color=line.get_color(),
                    label=f"{name}: no fraud in bin (at 1/2n)")  # fmt: skip
        lows += [float(x.min()), float(shown.min())]
    lo = max(min(lows, default=1e-4) / 2, 1e-6) if log_scale else 0.0
    ax.plot([lo, 1], [lo, 1], color="grey", linestyle=":", label="perfectly calibrated")
    if log_scale:
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set(xlim=(lo, 1.2), ylim=(lo, 1.2))
    ax.set(
        xlabel="Mean score in bin",
        ylabel="Observed fraud rate",
        title=f"Calibration ({n_bins} equal-count bins)",
    )
    ax.grid(alpha=0.3, which="both" if not log_scale else "major")
    ax.legend(loc="upper left", fontsize="small")
    return fig


def plot_score_distribution(y_true: ArrayLike, scores: ArrayLike, bins: int = 50) -> Figure:
    """Histogram of scores by class on a log count axis.

    Parameters
    ----------
    y_true : array-like of {0, 1}
    scores : array-like of float
    bins : int, default 50
        Number of equal-width bins over the score range.

    Returns
    -------
    matplotlib.figure.Figure
    """
    y, s = labels_and_scores(y_true, scores)
    fig, (ax,) = _new_figure()
    low, high = float(s.min()), float(s.max())
    edges = np.linspace(low, high if high > low else low + 1.0, bins + 1)
    for label, name in ((0, "legitimate"), (1, "fraud")):
        ax.hist(
            s[y == label],
            bins=edges.tolist(),
            alpha=0.6,
            label=f"{name} (n={int((y == label).sum())})",
        )
    ax.set_yscale("log")
    ax.set(xlabel="Score", ylabel="Transactions (log)", title="Score distribution by class")
    ax.legend(loc="best", fontsize="small")
    return fig
