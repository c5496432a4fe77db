"""The HTML report of one batch: our verdict section inserted at the top of Evidently's HTML.

The section uses no JavaScript, so it survives changes of Evidently's front-end; if Evidently
fails on a batch, the report keeps our section alone.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

import pandas as pd

from inferloop.evaluation.fairness import GroupFairness
from inferloop.monitoring.drift import (
    DriftResult,
)

if TYPE_CHECKING:
    pass

__all__ = [
    "compose_report",
    "render_section",
]


logger = logging.getLogger(__name__)


_CSS: Final = """
<style>
#inferloop-monitoring {font-family: Roboto, Helvetica, Arial, sans-serif; margin: 24px;
  color: #222; font-size: 14px}
#inferloop-monitoring table {border-collapse: collapse; margin: 8px 0 18px}
#inferloop-monitoring th, #inferloop-monitoring td {border: 1px solid #ddd; padding: 3px 8px;
  text-align: right}
#inferloop-monitoring th {background: #f3f3f3}
#inferloop-monitoring .status {display: inline-block; padding: 2px 10px; border-radius: 4px;
  color: white; font-weight: bold}
#inferloop-monitoring .ok {background: #2e7d32} #inferloop-monitoring .alert {background: #ef6c00}
#inferloop-monitoring .retrain {background: #c62828}
#inferloop-monitoring .needs_review {background: #6a1b9a}
</style>
"""


def _table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="-", border=0)


def _checks_frame(summary: Mapping[str, Any]) -> pd.DataFrame:
    def verdict(check: Mapping[str, Any]) -> str:
        if not check.get("evaluated", True):
            return "not evaluated"
        return "BREACHED" if check["breached"] else "ok"

    def interval(check: Mapping[str, Any]) -> str:
        if check.get("low") is None or check.get("high") is None:
            return ""
        return f"[{check['low']:.3f}, {check['high']:.3f}] {str(check.get('rule', '')).replace('_', ' ')}"

    rows = [
        {
            "check": name,
            "value": c["value"],
            "interval": interval(c),
            "threshold": c["threshold"],
            "verdict": verdict(c),
        }
        for name, c in summary["checks"].items()
    ]
    return pd.DataFrame(rows, columns=["check", "value", "interval", "threshold", "verdict"])


def _performance_frame(summary: Mapping[str, Any]) -> pd.DataFrame:
    perf = summary["performance"]
    current, validation = perf.get("current") or {}, perf.get("validation") or {}
    names = ("average_precision", "roc_auc", "precision", "recall", "card_precision_at_k")
    return pd.DataFrame(
        [{"metric": n, "current": current.get(n), "validation": validation.get(n)} for n in names]
    )


def _estimate_html(summary: Mapping[str, Any]) -> str:
    """Estimated against realized precision, recall and AP, this window's and the last's."""
    rows = []
    for label, part in (
        ("this window (no labels yet)", summary.get("estimate")),
        ("previous window (labels arrived)", summary.get("earlier_estimate")),
    ):
        if not part:
            continue
        realized = part.get("realized") or {}
        for name in ("precision", "recall", "average_precision"):
            rows.append(
                {"rows": label, "metric": name, "estimated": part.get(name),
                 "realized": realized.get(name)}
            )  # fmt: skip
    if not rows:
        return "<p>Not estimated: the model carries no calibration.</p>"
    note = (
        "<p><em>Estimated from calibrated scores (confidence-based). A new fraud pattern "
        "that the features do not see leaves the estimate blind: trust the realized values "
        "when they arrive.</em></p>"
    )
    return _table(pd.DataFrame(rows)) + note


def _fairness_html(fairness: Mapping[str, GroupFairness]) -> str:
    if not fairness:
        return "<p>Not evaluated: too few labelled rows or frauds in this batch.</p>"
    parts = []
    for attribute, result in fairness.items():
        gaps = ", ".join(
            f"{name.replace('_', ' ')} {getattr(result, name):.3f}"
            for name in ("equalized_odds_difference", "demographic_parity_difference")
        )
        table = result.by_group.rename_axis(attribute).reset_index()
        parts.append(f"<h4>{html.escape(attribute)} ({html.escape(gaps)})</h4>{_table(table)}")
    return "".join(parts)


def _reasons_html(reasons: list[Mapping[str, Any]]) -> str:
    if not reasons:
        return "<p>No explained alerts in this window (or the model gives no reason codes).</p>"
    frame = pd.DataFrame(reasons).rename(
        columns={"alerts": "alerts naming it", "share": "share of explained alerts"}
    )
    return _table(frame)


def render_section(
    summary: Mapping[str, Any], drift: DriftResult, fairness: Mapping[str, GroupFairness]
) -> str:
    """Our part of the report: verdict, checks, PSI, performance and bias tables, as HTML.

    Parameters
    ----------
    summary : dict
        The batch summary (see :func:`monitor_batch`).
    drift : DriftResult
    fairness : mapping of str to GroupFairness

    Returns
    -------
    str
        A self-contained ``<section>`` (styles included, no scripts).
    """
    status = str(summary["status"])
    reasons = "".join(f"<li>{html.escape(r)}</li>" for r in summary["action"]["reasons"])
    perf = summary["performance"]
    evidently_note = (
        f"The Evidently report below runs on a seeded sample of at most "
        f"{summary['evidently']['sample_size']:,} rows of each dataset; the checks above use "
        f"every row."
    )
    return (
        f'{_CSS}<section id="inferloop-monitoring">'
        f"<h2>inferloop monitoring: {html.escape(str(summary['batch']))} "
        f'<span class="status {html.escape(status)}">{html.escape(status.upper())}</span></h2>'
        f"<p>as of {html.escape(str(summary['as_of']))}; {summary['rows']['n']:,} rows, "
        f"{perf['n_labelled']:,} labelled; reference {drift.n_reference:,} rows.</p>"
        f"<ul>{reasons}</ul><h3>Checks</h3>{_table(_checks_frame(summary))}"
        f"<h3>Drift per column (PSI on reference quantile bins)</h3>{_table(drift.table())}"
        f"<h3>Performance on labelled rows</h3>{_table(_performance_frame(summary))}"
        f"<h3>Estimated performance before labels</h3>{_estimate_html(summary)}"
        f"<h3>Bias by sensitive attribute</h3>{_fairness_html(fairness)}"
        f"<h3>Most frequent reasons for alerts</h3>{_reasons_html(summary.get('reasons') or [])}"
        f"<p><em>{html.escape(evidently_note)}</em></p></section>"
    )


def compose_report(evidently_html: str | None, section: str) -> str:
    """Insert ``section`` at the top of Evidently's page body (or make a page of it alone)."""
    if evidently_html is None:
        return (
            f'<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>{section}</body></html>'
        )
    lower = evidently_html.lower()
    start = lower.find("<body")
    end = lower.find(">", start) if start >= 0 else -1
    if end < 0:
        return evidently_html + section
    return evidently_html[: end + 1] + section + evidently_html[end + 1 :]


# --------------------------------------------------------------------------------------------
# the batch
# --------------------------------------------------------------------------------------------
