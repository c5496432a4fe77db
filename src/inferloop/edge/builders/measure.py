"""Measure edge variants on the same data and choose one.

Each variant is a scorer (``predict_scores(X) -> probabilities``); it is measured for size on
disk, 1-thread single-row latency, batch throughput, ranking quality and agreement with the
teacher, and :func:`select_variant` picks one under a quality-loss and size policy. Also the
compiled teachers (lleaves; tl2cgen when installed) and the frontier plot.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.metrics import average_precision_score, roc_auc_score

from inferloop.core import schema as s
from inferloop.edge.builders.compile import compile_forest
from inferloop.edge.builders.params import BenchParams, SelectionPolicy
from inferloop.edge.builders.students import Predictor, booster_of
from inferloop.edge.runtime.compiled import CompiledModel
from inferloop.evaluation.metrics import card_precision_at_k, investigation_units

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "EvalSet",
    "Tl2cgenPredictor",
    "add_relative_columns",
    "compile_lleaves",
    "compile_teacher",
    "compiled_path",
    "measure_speed",
    "measure_variant",
    "pareto_front",
    "plot_frontier",
    "quality_metrics",
    "select_variant",
]


# --------------------------------------------------------------------------------------------
# parameters (the `optimize` section of params.yaml)
# --------------------------------------------------------------------------------------------


class Tl2cgenPredictor:
    """A LightGBM model compiled to a shared library by tl2cgen (treelite), one thread."""

    def __init__(self, model: Any, libpath: Path, compile_threads: int = 2) -> None:
        import tl2cgen
        import treelite

        tree_model = treelite.frontend.from_lightgbm(booster_of(model))
        params = {"parallel_comp": max(compile_threads, 1)}
        tl2cgen.export_lib(tree_model, toolchain="gcc", libpath=libpath, params=params)
        self.libpath = Path(libpath)
        self._tl2cgen = tl2cgen
        self.predictor_ = tl2cgen.Predictor(libpath, nthread=1)

    def predict_scores(self, X: np.ndarray) -> np.ndarray:
        """Probabilities of the rows of ``X``."""
        dmat = self._tl2cgen.DMatrix(np.atleast_2d(X), dtype="float32")
        return np.asarray(self.predictor_.predict(dmat), np.float64).reshape(-1)


def compiled_path(workdir: Path, name: str) -> Path:
    """Where the compiled artifact of variant ``name`` is written (shared library for tl2cgen)."""
    return workdir / f"{name}.{'so' if name.endswith('_tl2cgen') else 'o'}"


def compile_lleaves(model: Any, name: str, workdir: Path, link: str = "logistic") -> CompiledModel:
    """Compile a LightGBM model with lleaves into a :class:`CompiledModel` (x86-64 code).

    The code returns the raw score and ``link`` is applied after it; the object file is
    written to :func:`compiled_path`.
    """
    model_file = workdir / f"{name}_for_lleaves.txt"
    booster = booster_of(model)
    booster.save_model(model_file)
    object_code = compile_forest(model_file, compiled_path(workdir, name))
    return CompiledModel(object_code, booster.num_feature(), link)


def _check_binary_logistic(model: Any) -> None:
    """The teacher's raw score must be a logit: a binary objective with sigmoid 1."""
    lines = booster_of(model).model_to_string().splitlines()
    objective = next((line for line in lines if line.startswith("objective=")), "objective=?")
    if objective.split("=", 1)[1].split() != ["binary", "sigmoid:1"]:
        raise ValueError(f"the teacher must be binary with sigmoid 1, got {objective!r}")


def compile_teacher(model: Any, compiler: str, workdir: Path) -> tuple[Predictor, int] | str:
    """Compile the teacher with ``compiler`` ("tl2cgen" or "lleaves").

    Returns
    -------
    (scorer, size_bytes) or str
        The compiled scorer and its artifact size, or the reason it is unavailable (the
        compilers are optional dependencies).
    """
    try:
        if compiler == "tl2cgen":
            scorer = Tl2cgenPredictor(model, compiled_path(workdir, "teacher_tl2cgen"))
            return scorer, scorer.libpath.stat().st_size
        if compiler == "lleaves":
            _check_binary_logistic(model)
            forest = compile_lleaves(model, "teacher_lleaves", workdir)
            return forest, forest.size_bytes
    except Exception as exc:  # optional, version-fragile dependencies: report, never fail
        return f"{compiler} unavailable: {type(exc).__name__}: {exc}"
    raise ValueError(f"unknown compiler {compiler!r}; expected 'tl2cgen' or 'lleaves'")


# --------------------------------------------------------------------------------------------
# measurement
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalSet:
    """Feature rows plus what the metrics need: labels, customers, timestamps."""

    X: np.ndarray
    y: np.ndarray
    customer_ids: np.ndarray
    timestamps: np.ndarray

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, features: Sequence[str]) -> EvalSet:
        """Build from a processed frame (contract columns + feature columns)."""
        return cls(
            frame[list(features)].to_numpy(np.float32),
            frame[s.TARGET].to_numpy(np.int64),
            investigation_units(frame),
            frame[s.TIMESTAMP].to_numpy(),
        )


def measure_speed(
    scorers: dict[str, Predictor], X: np.ndarray, params: BenchParams, rounds: int = 10
) -> dict[str, dict[str, float]]:
    """Single-row p50/p99 (µs) and batch rows/s of several scorers, measured interleaved.

    Each round times every scorer in turn (``latency_calls / rounds`` single-row calls, then
    one repeat of the batch), so a noisy neighbour slows all variants alike and the speed-up
    ratios stay fair on a shared machine; measuring one variant after another let a burst of
    load land on one of them (ratios moved by 2x between runs).

    Returns
    -------
    dict
        Per scorer name: ``p50_us``, ``p99_us`` and ``rows_per_s`` (median over repeats).
    """
    rows = [np.ascontiguousarray(X[i : i + 1], dtype=np.float32) for i in range(min(len(X), 512))]
    reps = math.ceil(params.throughput_rows / len(X))
    batch = np.ascontiguousarray(np.tile(X, (reps, 1))[: params.throughput_rows], np.float32)
    per_round = max(params.latency_calls // rounds, 1)
    times: dict[str, list[np.ndarray]] = {name: [] for name in scorers}
    batch_s: dict[str, list[float]] = {name: [] for name in scorers}
    for scorer in scorers.values():  # warm-up: sessions, caches, bound buffers
        for i in range(params.warmup_calls):
            scorer.predict_scores(rows[i % len(rows)])
        scorer.predict_scores(batch[:1000])
    n_batches = max(params.throughput_repeats, 1)
    for r in range(rounds):
        for name, scorer in scorers.items():
            times[name].append(_time_rows(scorer, rows, start=r * per_round, calls=per_round))
            if r % max(rounds // n_batches, 1) == 0 and len(batch_s[name]) < n_batches:
                start = time.perf_counter()
                scorer.predict_scores(batch)
                batch_s[name].append(time.perf_counter() - start)
    out = {}
    for name in scorers:
        p50, p99 = np.percentile(np.concatenate(times[name]), [50, 99]) / 1e3
        out[name] = {
            "p50_us": float(p50),
            "p99_us": float(p99),
            "rows_per_s": len(batch) / float(np.median(batch_s[name])),
        }
    return out


def _time_rows(scorer: Predictor, rows: list[np.ndarray], start: int, calls: int) -> np.ndarray:
    times = np.empty(calls, dtype=np.float64)
    for i in range(calls):
        row = rows[(start + i) % len(rows)]
        t0 = time.perf_counter_ns()
        scorer.predict_scores(row)
        times[i] = time.perf_counter_ns() - t0
    return times


def quality_metrics(
    scores: np.ndarray,
    y: np.ndarray,
    customer_ids: np.ndarray,
    timestamps: np.ndarray,
    teacher_scores: np.ndarray,
    *,
    k: int = 100,
    alert_rate: float = 0.01,
) -> dict[str, float]:
    """Ranking quality of ``scores`` and their agreement with the teacher's.

    Returns
    -------
    dict
        ``roc_auc``, ``ap``, ``card_precision_at_k``, ``max_abs_diff`` (vs teacher),
        ``rank_corr`` (Spearman vs teacher) and ``decision_flips``: rows whose alert decision
        differs from the teacher's at the teacher's top-``alert_rate`` threshold.
    """
    scores = np.asarray(scores, np.float64)
    teacher_scores = np.asarray(teacher_scores, np.float64)
    threshold = np.quantile(teacher_scores, 1.0 - alert_rate)
    flips = (scores >= threshold) != (teacher_scores >= threshold)
    return {
        "roc_auc": float(roc_auc_score(y, scores)),
        "ap": float(average_precision_score(y, scores)),
        "card_precision_at_k": card_precision_at_k(scores, y, customer_ids, timestamps, k=k),
        "max_abs_diff": float(np.max(np.abs(scores - teacher_scores))),
        "rank_corr": float(spearmanr(scores, teacher_scores)[0]),
        "decision_flips": int(flips.sum()),
    }


def measure_variant(
    name: str,
    scorer: Predictor,
    X_test: np.ndarray,
    y_test: np.ndarray,
    teacher_scores: np.ndarray,
    customer_ids: np.ndarray,
    timestamps: np.ndarray,
    *,
    size_bytes: int,
    params: BenchParams | None = None,
) -> dict[str, Any]:
    """Size, 1-thread latency and throughput, quality and teacher agreement of one variant.

    Parameters
    ----------
    name : str
        Variant name (a row label of the table).
    scorer : Predictor
        Called with float32 feature rows.
    X_test, y_test, customer_ids, timestamps : numpy.ndarray
        The evaluation rows.
    teacher_scores : numpy.ndarray
        The native teacher's probabilities on ``X_test``.
    size_bytes : int
        Size of the variant's artifact on disk.
    params : BenchParams, optional

    Returns
    -------
    dict
        ``name``, ``size_bytes``, ``p50_us``, ``p99_us``, ``rows_per_s`` and the entries of
        :func:`quality_metrics`.
    """
    params = params or BenchParams()
    scores = scorer.predict_scores(X_test)
    speed = measure_speed({name: scorer}, X_test, params)[name]
    quality = quality_metrics(
        scores,
        y_test,
        customer_ids,
        timestamps,
        teacher_scores,
        k=params.k,
        alert_rate=params.alert_rate,
    )
    return {
        "name": name,
        "size_bytes": int(size_bytes),
        **speed,
        **quality,
    }


# --------------------------------------------------------------------------------------------
# selection
# --------------------------------------------------------------------------------------------


def add_relative_columns(table: pd.DataFrame, reference: str = "teacher") -> pd.DataFrame:
    """Losses, size ratio and speed-ups of every variant against ``reference`` (a copy)."""
    out = table.copy()
    ref = out.set_index("name").loc[reference]
    for prefix in ("", "val_"):
        if f"{prefix}ap" in out:
            out[f"{prefix}ap_loss"] = ref[f"{prefix}ap"] - out[f"{prefix}ap"]
            out[f"{prefix}auc_loss"] = ref[f"{prefix}roc_auc"] - out[f"{prefix}roc_auc"]
    out["size_ratio"] = ref["size_bytes"] / out["size_bytes"]
    out["p50_speedup"] = ref["p50_us"] / out["p50_us"]
    out["throughput_speedup"] = out["rows_per_s"] / ref["rows_per_s"]
    return out


def select_variant(table: pd.DataFrame, policy: SelectionPolicy) -> str:
    """The fastest deployable variant within the quality-loss budget.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per variant with columns ``name``, ``format``, ``p50_us``, ``size_bytes``
        and ``ap`` / ``roc_auc`` (``val_ap`` / ``val_roc_auc`` when ``policy.losses_on`` is
        ``"validation"``); must contain ``policy.reference``.
    policy : SelectionPolicy

    Returns
    -------
    str
        Among variants of an allowed format, at least ``min_size_ratio`` times smaller than
        the reference, whose AP and ROC-AUC losses against it are within budget: those with p50 within ``latency_tolerance`` of the
        fastest, then the smallest. ``policy.fallback`` (or the reference) if none qualifies.
    """
    if policy.losses_on not in ("validation", "test"):
        raise ValueError(
            f"policy.losses_on must be 'validation' or 'test', got {policy.losses_on!r}"
        )
    prefix = "val_" if policy.losses_on == "validation" else ""
    names = set(table["name"])
    if policy.reference not in names:
        raise ValueError(f"reference variant {policy.reference!r} is not in the table")
    ref = table.set_index("name").loc[policy.reference]
    ap_loss = ref[f"{prefix}ap"] - table[f"{prefix}ap"]
    auc_loss = ref[f"{prefix}roc_auc"] - table[f"{prefix}roc_auc"]
    ok = (
        table["format"].isin(policy.formats)
        & (ap_loss <= policy.max_ap_loss + 1e-12)
        & (auc_loss <= policy.max_auc_loss + 1e-12)
        & (table["size_bytes"] * policy.min_size_ratio <= ref["size_bytes"])
    )
    candidates = table[ok]
    if candidates.empty:
        return policy.fallback if policy.fallback in names else policy.reference
    fastest = candidates["p50_us"].min()
    tied = candidates[candidates["p50_us"] <= fastest * (1.0 + policy.latency_tolerance)]
    return str(tied.sort_values(["size_bytes", "p50_us"], kind="stable")["name"].iloc[0])


# --------------------------------------------------------------------------------------------
# plot
# --------------------------------------------------------------------------------------------


def pareto_front(table: pd.DataFrame) -> list[str]:
    """Variants no other variant beats on both latency (lower) and AP (higher), by latency."""
    ordered = table.sort_values(["p50_us", "ap"], ascending=[True, False])
    front, best_ap = [], -np.inf
    for row in ordered.itertuples():
        if row.ap > best_ap:
            front.append(str(row.name))
            best_ap = row.ap
    return front


def _label_rows(positions: np.ndarray, widths: np.ndarray, height: float) -> np.ndarray:
    """Label heights (axes fraction) so that no two label boxes overlap.

    Labels start just above their point; in order of height each is pushed up past every
    placed label whose box it would cross (boxes span ``[x, x + width]`` by ``height``).
    """
    x, y = positions[:, 0], positions[:, 1] + 0.015
    placed: list[int] = []
    for i in np.argsort(y, kind="stable"):
        moved = True
        while moved:
            moved = False
            for j in placed:
                crosses = x[i] < x[j] + widths[j] and x[j] < x[i] + widths[i]
                if crosses and abs(y[i] - y[j]) < height - 1e-9:  # rounding: not "<= height"
                    y[i] = y[j] + height
                    moved = True
        placed.append(int(i))
    return y


def plot_frontier(table: pd.DataFrame, chosen: str | None = None) -> Figure:
    """Average precision against single-row p50 latency (log x), one labelled point per variant.

    The Pareto front (no variant is both faster and better) is drawn as a line, the chosen
    variant is a star, and labels are spread so that none overlaps another; a thin line
    joins each label that had to move to its point.

    Parameters
    ----------
    table : pandas.DataFrame
        Columns ``name``, ``p50_us``, ``ap`` (and optionally ``size_bytes`` for marker size).
    chosen : str, optional
        Variant to highlight.

    Returns
    -------
    matplotlib.figure.Figure
        Built without pyplot, so no global state is touched.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 5.5), layout="constrained")
    ax = fig.subplots()
    sizes = 20 + 40 * np.log10(table["size_bytes"].clip(lower=10)) if "size_bytes" in table else 40
    ax.scatter(table["p50_us"], table["ap"], s=sizes, alpha=0.55, color="tab:blue", label="variant")
    front = table.set_index("name").loc[pareto_front(table)]
    ax.plot(front["p50_us"], front["ap"], color="tab:green", lw=1.5, marker="o", mfc="none",
            ms=14, zorder=1, label="Pareto front")  # fmt: skip
    if chosen is not None and chosen in set(table["name"]):
        row = table.loc[table["name"] == chosen].iloc[0]
        ax.scatter([row.p50_us], [row.ap], marker="*", s=320, color="tab:red", zorder=3,
                   label=f"chosen: {chosen}")  # fmt: skip
    ax.set_xscale("log")
    _plain_log_ticks(ax)
    _annotate_variants(fig, ax, table, chosen)
    ax.set(
        xlabel="Single-row p50 latency, 1 thread (µs, log)",
        ylabel="Average precision (test)",
        title="Edge variants: quality against latency (marker area ~ log size)",
    )
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")  # off the points
    return fig


def _plain_log_ticks(ax: Any) -> None:
    """Ticks at 1, 2, 5 x 10^k labelled as plain numbers (µs), without crowded minor labels."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _annotate_variants(fig: Figure, ax: Any, table: pd.DataFrame, chosen: str | None) -> None:
    """Name every point, with labels spread out (see :func:`_label_rows`)."""
    x_lo, x_hi = np.log10(table["p50_us"].min()), np.log10(table["p50_us"].max())
    y_lo, y_hi = float(table["ap"].min()), float(table["ap"].max())
    pad_x, pad_y = 0.08 * (x_hi - x_lo or 1.0), 0.08 * (y_hi - y_lo or 0.1)
    n_rows_room = 0.045 * len(table)  # headroom for labels pushed upwards
    ax.set_xlim(10 ** (x_lo - pad_x), 10 ** (x_hi + 3 * pad_x))
    ax.set_ylim(y_lo - pad_y, y_hi + pad_y + n_rows_room * (y_hi - y_lo + 2 * pad_y))
    to_axes = ax.transAxes.inverted()
    points = np.column_stack([table["p50_us"], table["ap"]]).astype(float)
    axes_xy = to_axes.transform(ax.transData.transform(points))
    # a generous estimate of the axes' width and of a small-font character (the layout is
    # only final at draw time): labels may sit a little apart, never on top of each other
    width_px = fig.get_size_inches()[0] * fig.dpi * 0.72
    widths = np.array([(len(str(n)) * 7.0 + 8) / width_px for n in table["name"]])
    heights = _label_rows(axes_xy + np.array([0.01, 0.0]), widths, height=0.04)
    for (name, (px, py)), ly in zip(zip(table["name"], axes_xy, strict=True), heights, strict=True):
        moved = ly - py > 0.03
        ax.annotate(
            str(name),
            (px, py),
            xytext=(px + 0.01, ly),
            xycoords="axes fraction",
            textcoords="axes fraction",
            fontsize="small",
            fontweight="bold" if name == chosen else "normal",
            arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "0.5"} if moved else None,
        )


# --------------------------------------------------------------------------------------------
# orchestration
# --------------------------------------------------------------------------------------------
