"""The Evidently UI dashboard of the monitoring project: our figures over time, one series each.

The stand-alone ``evidently ui`` process does not import inferloop, so a custom Evidently
metric could not be shown there. Our figures of a batch (:func:`dashboard_figures`) are
therefore stored through Evidently's OWN metrics: a one-row table of them goes through a
``Report`` of ``MeanValue(column=<figure>)`` (the mean of one value is that value), and that
snapshot, tagged ``inferloop-figures`` and stamped with the batch's ``as_of``, joins the Evidently
data-drift snapshots in the same project. A panel asks for ``MeanValue`` with
``metric_labels={"column": <figure>}``: one stable series per figure, whatever the batch's
columns, which is what a panel on an Evidently drift metric cannot give (its configuration, and
so its series, changes with the monitored columns).

Fairness gaps are stored as ``MaxValue`` (equal to the value too) so that one panel filter on
that metric type also catches attributes that appear later. The dashboard is made once, when
the project is created: the attributes known then (``params.fairness_attributes``, or those
of the first summary) get a series named after them; any other attribute still gets one,
named by its figure key (``fairness_gap:<attribute>``).

A figure that is missing (NaN) is left out of the batch's report: its series has a gap there.
"""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pandas as pd

from inferloop.core import schema as s
from inferloop.monitoring.params import DEFAULT_PROJECT

if TYPE_CHECKING:
    from evidently.core.report import Snapshot
    from evidently.sdk.models import DashboardPanelPlot, PanelMetric

__all__ = [
    "FAIRNESS_METRIC",
    "FAIRNESS_PREFIX",
    "FIGURES_TAG",
    "FIGURE_KEYS",
    "FIGURE_METRIC",
    "add_dashboard_snapshot",
    "dashboard_figures",
    "dashboard_panels",
    "figures_snapshot",
    "open_project",
    "replace_dashboard_snapshot",
]


logger = logging.getLogger(__name__)

#: Tag of the figures snapshots; every figure panel filters on it.
FIGURES_TAG: Final = "inferloop-figures"
#: The Evidently metric carrying one figure (its ``column`` label is the figure key).
FIGURE_METRIC: Final = "MeanValue"
#: The Evidently metric carrying one attribute's fairness gap.
FAIRNESS_METRIC: Final = "MaxValue"
#: Figure key of an attribute's fairness gap: ``fairness_gap:<attribute>``.
FAIRNESS_PREFIX: Final = "fairness_gap:"
#: The figures of every batch, in the order of :func:`dashboard_figures`.
FIGURE_KEYS: Final = (
    "drift_share",
    "score_psi",
    "estimated_precision",
    "estimated_average_precision",
    "realized_precision",
    "realized_average_precision",
    "rows_scored",
    "rows_quarantined",
    "alerts",
    "retrain",
    "needs_review",
)
_TAB: Final = "inferloop"
_NAN: Final = float("nan")


# --------------------------------------------------------------------------------------------
# figures
# --------------------------------------------------------------------------------------------


def _at(mapping: Any, *path: str) -> Any:
    """``mapping[path[0]][path[1]]...``, or None where a level is missing or not a mapping."""
    value = mapping
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _number(value: Any) -> float:
    """``value`` as a float; NaN for None, non-numbers and non-finite values."""
    if not isinstance(value, numbers.Real):
        return _NAN
    number = float(value)
    return number if math.isfinite(number) else _NAN


def _first(*values: Any) -> float:
    """The first of ``values`` that is a finite number, else NaN."""
    for value in values:
        number = _number(value)
        if not math.isnan(number):
            return number
    return _NAN


def _flag(value: Any, expected: str) -> float:
    return _NAN if value is None else float(value == expected)


def _alerts(rows: Any) -> float:
    counted = _number(_at(rows, "alerts"))
    if not math.isnan(counted):
        return counted
    rate, n = _number(_at(rows, "alert_rate")), _number(_at(rows, "n"))
    return _NAN if math.isnan(rate) or math.isnan(n) else float(round(rate * n))


def dashboard_figures(summary: Mapping[str, Any]) -> dict[str, float]:
    """Our figures of one batch, from its monitoring summary (the dict of ``summary.json``).

    Parameters
    ----------
    summary : mapping
        One batch's summary. Any part may be missing or None (older summaries have no
        ``estimate`` and no ``rows.quarantined``; ``performance.current`` is None before
        labels arrive): its figures are then NaN. Never raises.

    Returns
    -------
    dict of str to float
        The :data:`FIGURE_KEYS` in that order, then ``fairness_gap:<attribute>`` (the
        equalized-odds difference) for every attribute of ``summary["fairness"]``. ``retrain``
        and ``needs_review`` are 1.0 or 0.0; ``alerts`` is ``rows.alerts``, else
        ``round(rows.alert_rate * rows.n)``.
    """
    rows, action = _at(summary, "rows"), _at(summary, "action")
    figures = {
        "drift_share": _number(_at(summary, "drift", "drift_share")),
        "score_psi": _first(
            _at(summary, "drift", "score_psi"), _at(summary, "checks", "score_psi", "value")
        ),
        "estimated_precision": _number(_at(summary, "estimate", "precision")),
        "estimated_average_precision": _number(_at(summary, "estimate", "average_precision")),
        # realized on the estimate's own rows: known at once only when they are all labelled;
        # otherwise the batch's figures are recorded again when its labels arrive
        # (replace_dashboard_snapshot)
        "realized_precision": _number(_at(summary, "estimate", "realized", "precision")),
        "realized_average_precision": _number(
            _at(summary, "estimate", "realized", "average_precision")
        ),
        "rows_scored": _number(_at(rows, "n")),
        "rows_quarantined": _number(_at(rows, "quarantined")),
        "alerts": _alerts(rows),
        "retrain": _flag(_at(action, "kind"), "retrain"),
        "needs_review": _flag(_at(summary, "status"), "needs_review"),
    }
    fairness = _at(summary, "fairness")
    if isinstance(fairness, Mapping):
        for attribute, block in fairness.items():
            value = _at(block, f"{attribute}/equalized_odds_difference")
            figures[f"{FAIRNESS_PREFIX}{attribute}"] = _number(value)
    return figures


def _attributes(summary: Mapping[str, Any]) -> list[str]:
    fairness = _at(summary, "fairness")
    return [str(a) for a in fairness] if isinstance(fairness, Mapping) else []


# --------------------------------------------------------------------------------------------
# the figures snapshot
# --------------------------------------------------------------------------------------------


def figures_snapshot(summary: Mapping[str, Any]) -> Snapshot:
    """The Evidently snapshot of one batch's figures (one-row report of built-in metrics).

    Parameters
    ----------
    summary : mapping
        The batch's monitoring summary; ``batch``, ``as_of`` and ``status`` name, stamp and
        tag the snapshot.

    Returns
    -------
    evidently.core.report.Snapshot
        Named ``"<batch> figures"``, timestamped ``as_of``, tagged :data:`FIGURES_TAG` (and the
        status), with one ``MeanValue`` per finite figure and one ``MaxValue`` per finite
        fairness gap, each equal to the figure.

    Raises
    ------
    ValueError
        If the summary has no finite figure at all.
    """
    figures = {k: v for k, v in dashboard_figures(summary).items() if not math.isnan(v)}
    batch, status = summary.get("batch"), summary.get("status")
    return _snapshot(
        figures, batch, summary.get("as_of"), [FIGURES_TAG, *([str(status)] if status else [])],
        f"{batch} figures",
    )  # fmt: skip


def _snapshot(
    figures: Mapping[str, float], batch: Any, as_of: Any, tags: list[str], name: str
) -> Snapshot:
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import MaxValue, MeanValue

    if not figures:
        raise ValueError(f"no figure to record for batch {batch!r}")
    metrics = [
        MaxValue(column=key) if key.startswith(FAIRNESS_PREFIX) else MeanValue(column=key)
        for key in figures
    ]
    dataset = Dataset.from_pandas(
        pd.DataFrame([dict(figures)]),
        data_definition=DataDefinition(numerical_columns=list(figures)),
    )
    return Report(metrics).run(
        dataset,
        None,
        timestamp=pd.Timestamp(as_of).to_pydatetime() if as_of else None,
        metadata={"batch": str(batch)} if batch is not None else {},
        tags=tags,
        name=name,
    )


def add_dashboard_snapshot(
    summary: Mapping[str, Any],
    workspace_dir: str | Path,
    project_name: str = DEFAULT_PROJECT,
    *,
    attributes: Sequence[str] | None = None,
) -> str:
    """Add one batch's figures snapshot to the workspace project, creating it when missing.

    Parameters
    ----------
    summary : mapping
        The batch's monitoring summary (see :func:`dashboard_figures`).
    workspace_dir : str or Path
        The local Evidently workspace (created if missing).
    project_name : str, default "inferloop monitoring"
    attributes : sequence of str, optional
        Only used when the project is created: the sensitive attributes whose fairness gap
        gets a series named after them (default those of ``summary["fairness"]``, else
        :data:`inferloop.core.schema.SENSITIVE_COLUMNS`).

    Returns
    -------
    str
        The stored snapshot's id.
    """
    snapshot = figures_snapshot(summary)
    known = list(attributes) if attributes is not None else _attributes(summary)
    workspace, project = open_project(workspace_dir, project_name, attributes=known or None)
    return str(workspace.add_run(project.id, snapshot).id)


def replace_dashboard_snapshot(
    summary: Mapping[str, Any],
    workspace_dir: str | Path,
    project_name: str = DEFAULT_PROJECT,
    *,
    attributes: Sequence[str] | None = None,
) -> str:
    """Record an earlier batch's figures again, now with its realized values beside the estimate.

    The batch's labels arrived after its snapshot was stored; its old figures snapshot
    (``summary["evidently"]["dashboard_snapshot_id"]``) is deleted and a new one added at the
    same time, so every batch keeps one point per series and the estimated and realized lines
    stay unbroken. Returns the new snapshot's id.
    """
    workspace, project = open_project(
        workspace_dir, project_name, attributes=list(attributes) if attributes else None
    )
    old = _at(summary, "evidently", "dashboard_snapshot_id")
    if old:
        try:
            workspace.delete_run(project.id, old)
        except Exception as exc:  # already gone (a pruned workspace): the new one still goes in
            logger.info("figures snapshot %s of %s not deleted: %s", old, summary.get("batch"), exc)
    return str(workspace.add_run(project.id, figures_snapshot(summary)).id)


# --------------------------------------------------------------------------------------------
# the workspace, the project and its dashboard
# --------------------------------------------------------------------------------------------

#: Workspaces opened by this process, with the folder's identity when opened.
_OPEN: dict[Path, tuple[tuple[int, int], Any]] = {}


def _open_workspace(folder: Path) -> Any:
    """The local Evidently workspace in ``folder``, opened once per process.

    Opening one reads every snapshot stored in it, which grows with each monitored batch
    (the production simulation opens it once a week). The cached one is reused while the
    folder is the same one: a folder deleted and made again (a fresh run) is opened anew.
    """
    from evidently.ui.workspace import Workspace

    folder.mkdir(parents=True, exist_ok=True)
    key = folder.resolve()
    stat = key.stat()
    identity = (stat.st_ino, stat.st_mtime_ns)  # a new project or a new folder changes it
    cached = _OPEN.get(key)
    if cached is not None and cached[0] == identity:
        return cached[1]
    workspace = Workspace(str(key))
    _OPEN[key] = (identity, workspace)
    return workspace


def open_project(
    workspace_dir: str | Path,
    project_name: str = DEFAULT_PROJECT,
    *,
    attributes: Sequence[str] | None = None,
) -> tuple[Any, Any]:
    """The workspace in ``workspace_dir`` and its project, made with its dashboard if missing.

    A project whose dashboard shows none of our figures (made before this module, with its
    per-report drift-share series) gets this dashboard in place of its own; any other
    existing dashboard is left as is.

    Parameters
    ----------
    workspace_dir : str or Path
    project_name : str, default "inferloop monitoring"
    attributes : sequence of str, optional
        For a new dashboard: see :func:`dashboard_panels` (default
        :data:`inferloop.core.schema.SENSITIVE_COLUMNS`).

    Returns
    -------
    (evidently.ui.workspace.Workspace, evidently.ui.workspace.Project)
    """
    workspace = _open_workspace(Path(workspace_dir))
    found = workspace.search_project(project_name)
    if found:
        project = found[0]
        if not _shows_figures(workspace.get_dashboard(project.id)):
            _save_dashboard(workspace, project.id, attributes)
        return workspace, project
    project = workspace.create_project(
        project_name,
        description="inferloop: drift, performance, fairness and decisions per monitored batch",
    )
    _save_dashboard(workspace, project.id, attributes)
    return workspace, project


def _shows_figures(dashboard: Any) -> bool:
    return any(FIGURES_TAG in value.tags for panel in dashboard.panels for value in panel.values)


def _save_dashboard(workspace: Any, project_id: Any, attributes: Sequence[str] | None) -> None:
    from evidently.sdk.models import DashboardModel, DashboardTabModel

    panels = dashboard_panels(s.SENSITIVE_COLUMNS if attributes is None else attributes)
    tab = DashboardTabModel(title=_TAB, panels=[panel.id for panel in panels])
    workspace.save_dashboard(project_id, DashboardModel(tabs=[tab], panels=panels))


def _figure(key: str, legend: str) -> PanelMetric:
    from evidently.sdk.models import PanelMetric

    return PanelMetric(
        legend=legend, tags=[FIGURES_TAG], metric=FIGURE_METRIC, metric_labels={"column": key}
    )


def dashboard_panels(attributes: Sequence[str] = s.SENSITIVE_COLUMNS) -> list[DashboardPanelPlot]:
    """The panels of the monitoring dashboard, each one series per figure over time.

    Parameters
    ----------
    attributes : sequence of str
        Sensitive attributes whose fairness gap is a series named after the attribute; a gap
        of any other attribute is a series named ``fairness_gap:<attribute>``.

    Returns
    -------
    list of evidently.sdk.models.DashboardPanelPlot
        Drift share, score PSI, precision and average precision (estimated and realized),
        the fairness gap per attribute, Evidently's score drift, rows scored and
        quarantined, alerts, and the retrain / needs-review decisions.
    """
    from evidently.sdk.models import PanelMetric
    from evidently.sdk.panels import bar_plot_panel, line_plot_panel

    gaps = [
        PanelMetric(
            legend=str(attribute),
            tags=[FIGURES_TAG],
            metric=FAIRNESS_METRIC,
            metric_labels={"column": f"{FAIRNESS_PREFIX}{attribute}"},
        )
        for attribute in attributes
    ]
    # any other attribute: the first matching filter wins, so the named ones come first
    gaps.append(PanelMetric(legend="{{column}}", tags=[FIGURES_TAG], metric=FAIRNESS_METRIC))
    return [
        line_plot_panel(
            "Drift share (inferloop, all rows)",
            [_figure("drift_share", "drift share")],
            description="share of monitored feature columns whose drift breaches its threshold",
            size="half",
        ),
        line_plot_panel(
            "Score PSI",
            [_figure("score_psi", "score PSI")],
            description="population stability index of the model score against the reference",
            size="half",
        ),
        line_plot_panel(
            "Precision at the threshold: estimated and realized",
            [
                _figure("estimated_precision", "estimated"),
                _figure("realized_precision", "realized"),
            ],
            description="estimated before labels arrive; realized once they have",
            size="half",
        ),
        line_plot_panel(
            "Average precision: estimated and realized",
            [
                _figure("estimated_average_precision", "estimated"),
                _figure("realized_average_precision", "realized"),
            ],
            description="estimated before labels arrive; realized once they have",
            size="half",
        ),
        line_plot_panel(
            "Fairness gap (equalized odds) per attribute",
            gaps,
            description="largest between-group TPR or FPR difference, once labels have arrived",
            size="half",
        ),
        line_plot_panel(
            "Score drift (Evidently, sampled)",
            [
                PanelMetric(
                    legend="score: {{method}}",
                    metric="ValueDrift",
                    metric_labels={"column": s.SCORE},
                )
            ],
            description="Evidently's drift of the score column on the seeded sample",
            size="half",
        ),
        bar_plot_panel(
            "Rows scored and quarantined",
            [_figure("rows_scored", "scored"), _figure("rows_quarantined", "quarantined")],
            description="rows of the batch scored, and rows the data contract quarantined",
            size="half",
        ),
        line_plot_panel(
            "Alerts",
            [_figure("alerts", "alerts")],
            description="transactions flagged at the model's threshold",
            size="half",
        ),
        bar_plot_panel(
            "Retrains and reviews",
            [_figure("retrain", "retrain"), _figure("needs_review", "needs review")],
            description="1 when the batch's verdict was to retrain / to ask for a human review",
            size="full",
        ),
    ]
