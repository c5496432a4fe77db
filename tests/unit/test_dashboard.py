"""The Evidently dashboard of the monitoring project, read back the way the Evidently UI reads it.

The UI asks its storage, panel by panel, for the series matching the panel's values
(``POST /api/v2/snapshots/<project>/data_series_batch`` with one filter per value) and names
each series by the legend of the value it matched (``filter_index``), ``{{label}}`` replaced
by the series' labels. These tests do the same against a fresh storage of the workspace folder,
as the stand-alone ``evidently ui`` process would.
"""

from __future__ import annotations

import asyncio
import copy
import math
import re
from pathlib import Path
from typing import Any

import pytest

from inferloop.monitoring.dashboard import (
    FIGURE_KEYS,
    FIGURES_TAG,
    add_dashboard_snapshot,
    dashboard_figures,
    figures_snapshot,
    open_project,
    replace_dashboard_snapshot,
)

PROJECT = "inferloop monitoring"


def _fairness(attribute: str, gap: float) -> dict[str, Any]:
    return {
        f"{attribute}/equalized_odds_difference": gap,
        f"{attribute}/demographic_parity_difference": gap / 10,
        "by_group": [],
    }


def _summary(
    batch: str,
    as_of: str,
    *,
    drift_share: float,
    psi: float,
    estimate: dict[str, Any] | None,
    current: dict[str, float] | None,
    fairness: dict[str, float],
    earlier: dict[str, Any] | None = None,
    status: str = "ok",
    kind: str = "none",
    n: int = 1000,
    quarantined: int | None = None,
) -> dict[str, Any]:
    rows: dict[str, Any] = {"n": n, "reference": 500, "alert_rate": 0.02}
    if quarantined is not None:
        rows["quarantined"] = quarantined
    return {
        "batch": batch,
        "as_of": as_of,
        "status": status,
        "action": {"kind": kind, "families": [], "reasons": []},
        "rows": rows,
        "drift": {"drift_share": drift_share, "score_psi": psi, "columns": {}},
        "checks": {"score_psi": {"value": psi}},
        "estimate": estimate,
        "earlier_estimate": earlier,
        "performance": {"n_labelled": n, "current": current, "validation": None},
        "fairness": {a: _fairness(a, gap) for a, gap in fairness.items()},
    }


#: Three batches: labels missing in the first (its realized values come with the second and
#: its figures are recorded again), an estimate missing in the second, every row labelled in
#: the third (realized at once), and an attribute the dashboard was not made with in the third.
SUMMARIES = [
    _summary(
        "week_00", "2026-04-06T00:00:00", drift_share=0.0, psi=0.001,
        estimate={"precision": 0.41, "average_precision": 0.61}, current=None, fairness={},
        quarantined=3,
    ),
    _summary(
        "week_01", "2026-04-13T00:00:00", drift_share=0.03125, psi=0.0123456789,
        estimate=None, current={"precision": 0.47, "average_precision": 0.66},
        fairness={"age_band": 0.25, "region": 0.19}, status="retrain", kind="retrain", n=2000,
        quarantined=0,
        earlier={"batch": "week_00", "as_of": "2026-04-06T00:00:00", "precision": 0.41,
                 "realized": {"precision": 0.47, "average_precision": 0.66}},
    ),
    _summary(
        "week_02", "2026-04-20T00:00:00", drift_share=0.5, psi=0.2,
        estimate={"precision": 0.39, "average_precision": 0.58,
                  "realized": {"precision": 0.40, "average_precision": 0.59}},
        current={"precision": 0.40, "average_precision": 0.59},
        fairness={"age_band": 0.12, "region": 0.08, "channel": 0.3}, status="needs_review",
        kind="needs_review", n=1500, quarantined=7,
    ),
]  # fmt: skip


def _ui_label(legend: str, params: dict[str, str]) -> str:
    """The legend the UI shows: ``{{label}}`` replaced by the series' label value."""
    return re.sub(r"\{\{([a-zA-Z_0-9]+)?\}\}", lambda m: params.get(m.group(1), m.group(0)), legend)


def _panel_series(workspace_dir: Path, project_id: Any, panel: Any) -> dict[str, Any]:
    """The panel's series as the UI gets them, by the legend it shows."""
    from evidently.ui.service.base import SeriesFilter
    from evidently.ui.service.storage.local.base import InMemoryDataStorage

    filters = [
        SeriesFilter(
            tags=v.tags, metadata=v.metadata, metric=v.metric, metric_labels=v.metric_labels
        )
        for v in panel.values
    ]
    storage = InMemoryDataStorage(path=str(workspace_dir))  # what `evidently ui` loads
    response = asyncio.run(storage.get_data_series(project_id, filters, None, None))
    return {
        _ui_label(panel.values[series.filter_index].legend or "", series.params): (
            response.sources,
            series,
        )
        for series in response.series
    }


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, list[str]]:
    folder = tmp_path_factory.mktemp("evidently")
    first = copy.deepcopy(SUMMARIES[0])
    ids = [add_dashboard_snapshot(first, folder, PROJECT)]
    # week 0's labels arrive with week 1: its figures are recorded again, realized beside
    first["evidently"] = {"dashboard_snapshot_id": ids[0]}
    first["estimate"]["realized"] = {"precision": 0.47, "average_precision": 0.66}
    ids[0] = replace_dashboard_snapshot(first, folder, PROJECT)
    ids += [add_dashboard_snapshot(summary, folder, PROJECT) for summary in SUMMARIES[1:]]
    _, project = open_project(folder, PROJECT)
    return folder, project.id, ids


# the panels, by title: the figure of each series (its ``column`` label), by legend
EXPECTED = {
    "Drift share (inferloop, all rows)": {"drift share": "drift_share"},
    "Score PSI": {"score PSI": "score_psi"},
    "Precision at the threshold: estimated and realized": {
        "estimated": "estimated_precision",
        "realized": "realized_precision",
    },
    "Average precision: estimated and realized": {
        "estimated": "estimated_average_precision",
        "realized": "realized_average_precision",
    },
    "Fairness gap (equalized odds) per attribute": {
        "age_band": "fairness_gap:age_band",
        "region": "fairness_gap:region",
        # not known when the dashboard was made: named by the catch-all filter's {{column}}
        "fairness_gap:channel": "fairness_gap:channel",
    },
    "Rows scored and quarantined": {"scored": "rows_scored", "quarantined": "rows_quarantined"},
    "Alerts": {"alerts": "alerts"},
    "Retrains and reviews": {"retrain": "retrain", "needs review": "needs_review"},
}


def test_each_panel_plots_one_series_per_figure_with_its_values(
    workspace: tuple[Path, Any, list[str]],
) -> None:
    from evidently.ui.workspace import Workspace

    folder, project_id, ids = workspace
    dashboard = Workspace(str(folder)).get_dashboard(project_id)
    panels = {panel.title: panel for panel in dashboard.panels}
    assert set(EXPECTED) <= set(panels)
    figures = [dashboard_figures(summary) for summary in SUMMARIES]
    for title, legends in EXPECTED.items():
        series = _panel_series(folder, project_id, panels[title])
        assert set(series) == set(legends), title  # one series per figure, named readably
        for legend, key in legends.items():
            sources, one = series[legend]
            assert one.params["column"] == key
            if key.startswith("realized_"):  # some come later, for an earlier batch's time
                continue  # (test_a_missing_figure_leaves_a_gap_in_its_series)
            # the batches that have this figure, in time order, one point each, exact values
            batches = [i for i, f in enumerate(figures) if not math.isnan(f.get(key, math.nan))]
            points = zip([str(s.snapshot_id) for s in sources], one.values, strict=False)
            assert [(sid, v) for sid, v in points if v is not None] == [
                (ids[i], figures[i][key]) for i in batches
            ], (title, legend)
            assert len(one.values) <= len(sources) <= len(ids)


def test_a_series_has_one_point_per_batch_at_its_as_of(
    workspace: tuple[Path, Any, list[str]],
) -> None:
    from evidently.ui.workspace import Workspace

    folder, project_id, ids = workspace
    dashboard = Workspace(str(folder)).get_dashboard(project_id)
    (panel,) = [p for p in dashboard.panels if p.title == "Score PSI"]
    sources, series = _panel_series(folder, project_id, panel)["score PSI"]
    assert [str(s.snapshot_id) for s in sources] == ids
    assert [s.timestamp.isoformat() for s in sources] == [x["as_of"] for x in SUMMARIES]
    assert all(FIGURES_TAG in s.tags for s in sources)
    assert series.values == [0.001, 0.0123456789, 0.2]  # exact, through Evidently's MeanValue


def test_a_missing_figure_leaves_a_gap_in_its_series(
    workspace: tuple[Path, Any, list[str]],
) -> None:
    from evidently.ui.workspace import Workspace

    folder, project_id, ids = workspace
    dashboard = Workspace(str(folder)).get_dashboard(project_id)
    (panel,) = [p for p in dashboard.panels if p.title.startswith("Precision at the threshold")]
    series = _panel_series(folder, project_id, panel)
    sources, estimated = series["estimated"]
    _, realized = series["realized"]
    # week 0's realized values came with week 1: one snapshot at week 0's time holds both
    assert [str(s.snapshot_id) for s in sources] == [ids[0], ids[2]]
    assert estimated.values == [0.41, 0.39]
    assert realized.values == [0.47, 0.40]
    assert len(Workspace(str(folder)).list_runs(project_id)) == 3  # the first record is gone


def test_the_figures_snapshot_uses_only_evidentlys_own_metrics() -> None:
    snapshot = figures_snapshot(SUMMARIES[2])
    data = snapshot.dict()
    kinds = {m["config"]["type"] for m in data["metrics"]}
    assert kinds == {"evidently:metric_v2:MeanValue", "evidently:metric_v2:MaxValue"}
    values = {m["config"]["column"]: m["value"] for m in data["metrics"]}
    assert values == dashboard_figures(SUMMARIES[2])
    assert snapshot.get_name() == "week_02 figures"


def test_an_old_dashboard_is_replaced_and_ours_kept(tmp_path: Path) -> None:
    from evidently.sdk.models import PanelMetric
    from evidently.sdk.panels import line_plot_panel

    workspace, project = open_project(tmp_path, "old")
    workspace.save_dashboard(
        project.id,
        workspace.get_dashboard(project.id).copy(
            update={
                "panels": [
                    line_plot_panel(
                        "Share of drifted columns (Evidently, sampled)",
                        [PanelMetric(metric="DriftedColumnsCount", legend="share")],
                    )
                ],
                "tabs": [],
            }
        ),
    )
    _, again = open_project(tmp_path, "old")  # a dashboard without our figures: replaced
    titles = [p.title for p in workspace.get_dashboard(again.id).panels]
    assert again.id == project.id
    assert "Share of drifted columns (Evidently, sampled)" not in titles
    assert "Drift share (inferloop, all rows)" in titles
    open_project(tmp_path, "old")  # ours: kept as it is
    assert [p.title for p in workspace.get_dashboard(again.id).panels] == titles


# --------------------------------------------------------------------------- the figures


def test_figures_of_a_complete_summary() -> None:
    figures = dashboard_figures(SUMMARIES[1])
    assert list(figures)[: len(FIGURE_KEYS)] == list(FIGURE_KEYS)
    assert figures["drift_share"] == 0.03125
    assert figures["score_psi"] == 0.0123456789
    assert math.isnan(figures["realized_precision"])  # week 0's: added at week 0's time
    assert dashboard_figures(SUMMARIES[2])["realized_average_precision"] == 0.59
    assert figures["rows_scored"] == 2000.0
    assert figures["rows_quarantined"] == 0.0
    assert figures["alerts"] == 40.0  # round(alert_rate * n) without rows.alerts
    assert (figures["retrain"], figures["needs_review"]) == (1.0, 0.0)
    assert figures["fairness_gap:age_band"] == 0.25
    assert figures["fairness_gap:region"] == 0.19
    assert math.isnan(figures["estimated_precision"])  # estimate None


def test_figures_of_a_summary_missing_keys_are_nan_never_an_error() -> None:
    for summary in (
        {},
        {"rows": None, "drift": None, "performance": {"current": None}, "estimate": None},
        {"fairness": {"age_band": None, "region": {}}, "action": None, "status": None},
        {"drift": {"drift_share": "high"}, "rows": {"n": float("inf")}},
    ):
        figures = dashboard_figures(summary)
        assert set(FIGURE_KEYS) <= set(figures)
        for key in FIGURE_KEYS:
            assert math.isnan(figures[key]), (summary, key)
    gaps = dashboard_figures({"fairness": {"age_band": None, "region": {}}})
    assert math.isnan(gaps["fairness_gap:age_band"]) and math.isnan(gaps["fairness_gap:region"])


def test_figures_take_the_fallbacks_and_the_counted_alerts() -> None:
    figures = dashboard_figures(
        {
            "checks": {"score_psi": {"value": 0.07}},
            "rows": {"n": 10, "alert_rate": 0.5, "alerts": 4},
            "status": "ok",
            "action": {"kind": "none"},
        }
    )
    assert figures["score_psi"] == 0.07
    assert figures["alerts"] == 4.0
    assert (figures["retrain"], figures["needs_review"]) == (0.0, 0.0)
    assert math.isnan(figures["rows_quarantined"])


def test_a_summary_without_any_figure_is_refused() -> None:
    with pytest.raises(ValueError, match="no figure"):
        figures_snapshot({"batch": "empty"})
