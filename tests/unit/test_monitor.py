"""Monitoring: verdict files, bias on the simulator's bias scenario, policy, webhook, MLflow."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import lightgbm as lgb
import pandas as pd
import pytest
from click.testing import CliRunner

from inferloop.core import schema as s
from inferloop.data.features import FeatureParams
from inferloop.data.samples import SimulatedSplits, simulated_splits
from inferloop.data.simulate import DriftParams, SeasonalAmountDrift, SimulateParams
from inferloop.data.split import SplitParams
from inferloop.evaluation.metrics import compute_metrics
from inferloop.monitoring.evidently_adapter import add_to_workspace
from inferloop.monitoring.measure import infer_feature_columns, labelled_rows
from inferloop.monitoring.monitor import MonitorResult, monitor_batch
from inferloop.monitoring.params import REPORT_FILE, REVIEW_FILE, SUMMARY_FILE, MonitorParams
from inferloop.monitoring.policy import (
    Action,
    Policy,
    decide_action,
    fairness_retrains,
    load_history,
)
from inferloop.monitoring.sinks import alert_payload, log_to_mlflow, notify_breach, send_webhook

# Same sizes as the fairness fixtures of tests/model (a few hundred frauds in the batch).
# Per-group TPRs of one such window are noisy: over seeds 21-23 the fair world's worst
# equalized-odds gap ranged 0.10-0.53 and the biased world's age-band gap 0.25-0.57. Seed 23
# is one where the default 0.45 maximum separates them; the policy's persistence rule is what
# keeps that noise from retraining (see the module docstring of inferloop.monitoring). The check
# judges the gap's 90 % bootstrap interval: at the simulator's default bias (2 frauds per 1,000
# customers a day) this window's gap is 0.53 [0.42, 0.63], not a breach beyond its noise; the
# biased fixture doubles the bias, 0.64 [0.57, 0.73].
FAIR_SIM = SimulateParams(n_customers=2000, n_terminals=1300, n_days=45, seed=23)
SPLIT = SplitParams(train_days=21, validation_days=4, test_days=7, gap_days=3)
FEATURES = [s.AMOUNT, s.CHANNEL, s.MERCHANT_CATEGORY, s.AGE_BAND, "hour"]
THRESHOLD = 0.3
# small Evidently sample: the report's cost is mostly per column, the verdict uses all rows
PARAMS = MonitorParams(evidently_sample_size=2000)


@dataclass
class Scored:
    """A model's validation window (the reference) and its test window (the batch)."""

    reference: pd.DataFrame
    batch: pd.DataFrame
    validation: dict[str, float]
    model: lgb.LGBMClassifier


def _score(model: lgb.LGBMClassifier, data: SimulatedSplits, window: pd.DataFrame) -> pd.DataFrame:
    p = model.predict_proba(window[data.features])[:, 1]
    out = window[[*s.SCORING_COLUMNS, s.AGE_BAND, s.REGION, s.TARGET, s.LABEL_AVAILABLE_AT]]
    return out.assign(
        hour=window[s.TIMESTAMP].dt.hour, score=p, decision=(p >= THRESHOLD).astype(int)
    )


def _scored(data: SimulatedSplits) -> Scored:
    model = lgb.LGBMClassifier(
        n_estimators=150, learning_rate=0.08, num_leaves=15, min_child_samples=20,
        verbose=-1, seed=0, deterministic=True, force_row_wise=True, n_jobs=1,
    )  # fmt: skip
    model.fit(data.splits.train[data.features], data.splits.train[s.TARGET])
    reference = _score(model, data, data.splits.validation)
    validation = compute_metrics(
        reference[s.TARGET], reference["score"], THRESHOLD, reference[s.CUSTOMER_ID],
        reference[s.TIMESTAMP],
    ).as_dict()  # fmt: skip
    return Scored(reference, _score(model, data, data.splits.test), validation, model)


def _splits(sim: SimulateParams) -> SimulatedSplits:
    return simulated_splits(sim, FeatureParams(label_delay="3D"), SPLIT)


@pytest.fixture(scope="module")
def fair() -> Scored:
    return _scored(_splits(FAIR_SIM))


@pytest.fixture(scope="module")
def biased() -> Scored:
    bias = replace(FAIR_SIM.bias, enabled=True, extra_per_1k=4.0)
    return _scored(_splits(replace(FAIR_SIM, bias=bias)))


def _labels_arrived(batch: pd.DataFrame) -> pd.Timestamp:
    return pd.Timestamp(batch[s.LABEL_AVAILABLE_AT].max())


def _monitor(scored: Scored, out: Path, **kwargs: Any) -> MonitorResult:
    options: dict[str, Any] = {
        "params": PARAMS,
        "model_validation_metrics": scored.validation,
        "feature_cols": FEATURES,
        "out_dir": out,
        "as_of": _labels_arrived(scored.batch),
        **kwargs,
    }
    return monitor_batch(scored.batch, scored.reference, **options)


@pytest.fixture(scope="module")
def fair_result(fair: Scored, tmp_path_factory: pytest.TempPathFactory) -> MonitorResult:
    out = tmp_path_factory.mktemp("monitoring")
    return _monitor(
        fair,
        out,
        batch_name="fair",
        workspace_dir=out / "evidently",
        feature_cols=[s.AMOUNT, s.CHANNEL, s.AGE_BAND],  # Evidently's cost is per column
    )


# --------------------------------------------------------------------------- batch outputs


def test_a_batch_writes_its_verdict_and_one_report(fair_result: MonitorResult) -> None:
    summary = json.loads(fair_result.summary_path.read_text())
    assert fair_result.summary_path.name == SUMMARY_FILE
    assert summary["status"] in ("ok", "alert", "retrain")
    expected = {"drift_share", "score_psi", "ap_drop", "roc_auc_drop"}
    assert expected <= set(summary["checks"])
    for check in summary["checks"].values():
        assert {"value", "threshold", "breached"} <= set(check)
    report = fair_result.report_path.read_text()
    assert fair_result.report_path.name == REPORT_FILE
    assert report.index('id="inferloop-monitoring"') < report.index("drawDashboard")
    for section in ("Checks", "Drift per column", "Performance", "Bias by sensitive attribute"):
        assert section in report
    assert summary["evidently"]["drifted_columns_share"] is not None


def test_an_undrifted_fair_batch_passes(fair: Scored, fair_result: MonitorResult) -> None:
    checks = fair_result.summary["checks"]
    assert fair_result.breached == [], checks
    assert fair_result.status == "ok"
    perf = fair_result.performance
    assert perf is not None and perf.n == len(fair.batch)
    assert checks["ap_drop"]["value"] == pytest.approx(
        fair.validation["average_precision"] - perf.average_precision
    )
    assert checks[f"equalized_odds_difference:{s.AGE_BAND}"]["breached"] is False


def test_the_bias_scenario_breaches_the_fairness_check(
    biased: Scored, fair_result: MonitorResult, tmp_path: Path
) -> None:
    result = _monitor(biased, tmp_path)
    name = f"equalized_odds_difference:{s.AGE_BAND}"
    assert result.summary["checks"][name]["breached"], result.summary["checks"][name]
    assert not fair_result.summary["checks"][name]["breached"]
    tpr = result.fairness[s.AGE_BAND].by_group["tpr"]
    fair_tpr = fair_result.fairness[s.AGE_BAND].by_group["tpr"]
    assert tpr.idxmin() == "61+"  # the camouflaged group's fraud is missed
    assert tpr["61+"] < fair_tpr["61+"] - 0.15
    assert result.status == "alert"  # one window: bias must persist before retraining
    assert "61+" in result.report_path.read_text()


def test_no_performance_or_bias_verdict_before_labels_arrive(
    fair: Scored, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _without_evidently(monkeypatch)
    as_of = fair.batch[s.TIMESTAMP].max()  # end of the batch: labels come days later
    result = _monitor(fair, tmp_path, as_of=as_of)
    assert result.summary["performance"]["n_labelled"] == 0
    for name in ("ap_drop", f"equalized_odds_difference:{s.AGE_BAND}"):
        assert result.summary["checks"][name] == {
            "value": None,
            "threshold": pytest.approx(result.summary["checks"][name]["threshold"]),
            "breached": False,
            "evaluated": False,
        }
    assert labelled_rows(fair.batch, s.TARGET, as_of).empty


def _without_evidently(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("evidently is down")

    monkeypatch.setattr("inferloop.monitoring.monitor.run_evidently", broken)


def test_seasonal_drift_after_deployment_breaches_the_drift_check(
    fair: Scored, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Production amounts rise 1.5x from the first day of the batch; the model stays.

    Amount drifts and the scores drift with it: both breaches count 1 window of 3. The model's
    AP falls too (by 0.07-0.14 depending on the seed); past 0.1 that retrains at once.
    """
    first_batch_day = FAIR_SIM.n_days - SPLIT.test_days
    drift = DriftParams(seasonal_amount=SeasonalAmountDrift(True, first_batch_day, 1.5))
    data = _splits(replace(FAIR_SIM, drift=drift))
    drifted = replace(fair, batch=_score(fair.model, data, data.splits.test))
    _without_evidently(monkeypatch)  # covered elsewhere; keeps this test quick
    result = _monitor(drifted, tmp_path, feature_cols=[s.AMOUNT, "hour", s.CHANNEL])
    assert result.drift.drifted_columns == [s.AMOUNT]
    assert result.summary["checks"]["drift_share"]["breached"]
    assert result.summary["checks"]["score_psi"]["breached"]
    reasons = result.action.reasons
    assert any(r.startswith("data_drift") and "1/3" in r for r in reasons)
    assert any(r.startswith("score_drift") and "1/3" in r for r in reasons)
    performance_breached = result.summary["checks"]["ap_drop"]["breached"]
    assert result.status == ("retrain" if performance_breached else "alert")


def test_evidently_failure_keeps_the_verdict_and_our_report(
    fair: Scored, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _without_evidently(monkeypatch)
    result = _monitor(fair, tmp_path)
    assert "evidently is down" in result.summary["evidently"]["error"]
    assert result.snapshot is None and "Drift per column" in result.report_path.read_text()
    assert result.status == "ok"


def test_a_big_performance_drop_asks_for_retraining_at_once(
    fair: Scored, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _without_evidently(monkeypatch)
    boasting = {**fair.validation, "average_precision": 0.99, "roc_auc": 0.999}
    result = _monitor(fair, tmp_path, model_validation_metrics=boasting)
    assert result.summary["checks"]["ap_drop"]["breached"]
    assert result.status == "retrain" and result.action.families == ("performance",)


def test_feature_columns_default_to_everything_but_ids_labels_and_outputs(fair: Scored) -> None:
    columns = infer_feature_columns(fair.batch, fair.reference)
    assert set(columns) == {s.AMOUNT, s.CHANNEL, s.MERCHANT_CATEGORY, s.AGE_BAND, s.REGION, "hour"}


def test_empty_batch_and_missing_columns_are_refused(fair: Scored, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="empty"):
        _monitor(replace(fair, batch=fair.batch.iloc[:0]), tmp_path)
    with pytest.raises(ValueError, match="missing"):
        _monitor(fair, tmp_path, feature_cols=["no_such_column"])


# --------------------------------------------------------------------------- policy


def _summary(*breached: str, evaluated: tuple[str, ...] = ()) -> dict[str, Any]:
    """A hand-made summary: every standard check evaluated and passing unless named."""
    names = ["drift_share", "score_psi", "ap_drop", "roc_auc_drop", "equalized_odds_difference:x"]
    checks = {
        n: {"value": 1.0, "threshold": 0.5, "breached": n in breached, "evaluated": True}
        for n in names
    }
    for name in evaluated:  # here: listed checks NOT evaluated
        checks[name] = {"value": None, "threshold": 0.5, "breached": False, "evaluated": False}
    return {"checks": checks}


POLICY = MonitorParams(consecutive_windows=3, retrain_on_performance_at_once=True)


def test_policy_without_breach_does_nothing() -> None:
    assert decide_action([], POLICY).kind == "none"
    assert decide_action([_summary("drift_share"), _summary()], POLICY).kind == "none"


def test_policy_alerts_first_and_retrains_when_drift_persists() -> None:
    one = decide_action([_summary("drift_share")], POLICY)
    assert one.kind == "alert" and "1/3" in one.reasons[0]
    two = decide_action([_summary(), _summary("drift_share"), _summary("drift_share")], POLICY)
    assert two.kind == "alert"
    three = decide_action([_summary("drift_share")] * 3, POLICY)
    assert three == Action("retrain", three.reasons, ("data_drift",))


def test_policy_counts_each_family_on_its_own() -> None:
    history = [_summary("drift_share"), _summary("score_psi"), _summary("drift_share")]
    assert decide_action(history, POLICY).kind == "alert"
    fairness = [_summary("equalized_odds_difference:x")] * 3
    assert decide_action(fairness, POLICY).families == ("fairness",)


def test_policy_skips_windows_where_a_family_was_not_evaluated() -> None:
    unlabelled = _summary(evaluated=("ap_drop", "roc_auc_drop", "equalized_odds_difference:x"))
    history = [_summary("equalized_odds_difference:x"), unlabelled] * 2 + [
        _summary("equalized_odds_difference:x")
    ]
    assert Policy(3, True).trailing_breaches(history, "fairness") == 3
    assert decide_action(history, POLICY).kind == "retrain"


def test_policy_retrains_on_performance_at_once_unless_told_to_wait() -> None:
    history = [_summary("ap_drop")]
    assert decide_action(history, POLICY).kind == "retrain"
    patient = replace(POLICY, retrain_on_performance_at_once=False)
    assert decide_action(history, patient).kind == "alert"
    assert decide_action(history * 3, patient).kind == "retrain"


def _judged(
    summary: dict[str, Any], history: list[dict[str, Any]], previous: Any
) -> dict[str, Any]:
    """``summary`` with the action and escalation count that monitoring would write."""
    action = decide_action([*history, summary], POLICY, previous)
    count = fairness_retrains(previous, summary)
    return {**summary, "action": action.as_dict(), "escalation": {"fairness_retrains": count}}


def test_policy_asks_for_review_when_retraining_does_not_clear_a_fairness_breach() -> None:
    """Each champion keeps its own history; the escalation count survives the new champion."""
    unfair = "equalized_odds_difference:x"
    previous: dict[str, Any] | None = None
    kinds = []
    for _champion in range(3):  # three champions, each breaching fairness three times in a row
        history: list[dict[str, Any]] = []
        for _ in range(3):
            summary = _judged(_summary(unfair), history, previous)
            history.append(summary)
            previous = summary
            kinds.append(summary["action"]["kind"])
    assert kinds[:3] == ["alert", "alert", "retrain"]  # the first breach retrains after 3
    assert kinds[5] == "retrain"  # the second champion: one more retrain (1 failed so far)
    assert kinds[8] == "needs_review", kinds  # 2 retrains failed (max 2): a person must look
    assert previous is not None and previous["escalation"]["fairness_retrains"] == 2
    assert "needs review" in previous["action"]["reasons"][-1]
    # a window that only fails to show the breach beyond its noise keeps the count...
    noisy = _judged(_summary(), [], previous)
    assert noisy["escalation"]["fairness_retrains"] == 2
    # ...a window that clears fairness (upper bound under the maximum) starts it over
    fair = _summary()
    fair["checks"][unfair].update(value=0.1, high=0.2, low=0.05, rule="lower_bound")
    cleared = _judged(fair, [], noisy)
    assert cleared["escalation"]["fairness_retrains"] == 0
    assert _judged(_summary(unfair), [], cleared)["escalation"]["fairness_retrains"] == 0


def test_the_review_is_recorded_and_shown(biased: Scored, tmp_path: Path) -> None:
    params = replace(PARAMS, consecutive_windows=1, max_fairness_retrains=0)
    result = _monitor(biased, tmp_path, params=params, batch_name="w1")
    assert result.status == "needs_review" and result.action.families == ("fairness",)
    log = (tmp_path / REVIEW_FILE).read_text().splitlines()
    assert len(log) == 1 and json.loads(log[0])["batch"] == "w1"
    assert "NEEDS_REVIEW" in result.report_path.read_text()


def test_history_is_read_back_in_time_order_per_model_version(tmp_path: Path) -> None:
    for batch, as_of, version in (
        ("b", "2026-01-02", "1"),
        ("a", "2026-01-03", "1"),
        ("c", "2026-01-01", "2"),
    ):
        (tmp_path / batch).mkdir()
        summary = {"batch": batch, "as_of": as_of, "model": {"version": version}, "checks": {}}
        (tmp_path / batch / SUMMARY_FILE).write_text(json.dumps(summary))
    assert [h["batch"] for h in load_history(tmp_path)] == ["c", "b", "a"]
    assert [h["batch"] for h in load_history(tmp_path, model_version="1")] == ["b", "a"]


# --------------------------------------------------------------------------- webhook


def test_webhook_delivers_the_alert_as_json(
    hook: tuple[str, type[Any]], fair_result: MonitorResult
) -> None:
    url, handler = hook
    summary = {**fair_result.summary, "status": "alert"}
    summary["checks"] = {
        "drift_share": {"value": 0.5, "threshold": 0.3, "breached": True},
        "score_psi": {"value": 0.01, "threshold": 0.1, "breached": False},
    }
    assert send_webhook(url, alert_payload(summary))
    (body,) = handler.received
    assert body["status"] == "alert" and body["breached"] == ["drift_share"]
    assert "drift_share" in body["text"] and body["batch"] == "fair"


def test_webhook_failures_are_reported_not_raised(hook: tuple[str, type[Any]]) -> None:
    url, handler = hook
    handler.status = 500
    assert send_webhook(url, {"a": 1}) is False
    assert send_webhook("http://127.0.0.1:1/nothing-listens", {"a": 1}, timeout=1) is False
    assert send_webhook("file:///etc/passwd", {"a": 1}) is False


def test_monitor_batch_fires_the_webhook_on_a_breach(
    biased: Scored, tmp_path: Path, hook: tuple[str, type[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    _without_evidently(monkeypatch)
    url, handler = hook
    result = _monitor(biased, tmp_path, params=replace(PARAMS, webhook_url=url))
    assert result.summary["webhook_sent"] is True
    (body,) = handler.received  # one breach, one POST
    assert body["status"] == result.status == "alert"
    assert set(body) == {
        "text",
        "batch",
        "as_of",
        "status",
        "model",
        "breached",
        "action",
        "checks",
    }


def test_an_ok_batch_sends_nothing(fair_result: MonitorResult, hook: tuple[str, type[Any]]) -> None:
    url, handler = hook
    assert fair_result.status == "ok"
    assert notify_breach(fair_result.summary, replace(PARAMS, webhook_url=url)) is None
    assert handler.received == []


# --------------------------------------------------------------------------- MLflow, workspace


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh SQLite MLflow store shared by this module's tests (creating one takes seconds).

    Copied from the ``mlflow_store`` fixture of tests/model/conftest.py, module-scoped.
    """
    import mlflow

    from inferloop.core.tracking import configure_mlflow

    root = tmp_path_factory.mktemp("mlflow")
    (root / "dvc.yaml").write_text("stages: {}\n")
    (root / "params.yaml").write_text("{}\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("INFERLOOP_ROOT", str(root))
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        yield configure_mlflow(root)
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)  # type: ignore[arg-type]  # configure_mlflow set both


def test_results_are_logged_to_the_monitoring_experiment(
    mlflow_store: str, fair_result: MonitorResult
) -> None:
    import mlflow

    run_id = log_to_mlflow(fair_result, "fraud-detector", 3)
    run = mlflow.get_run(run_id)
    assert mlflow.get_experiment(run.info.experiment_id).name == "monitoring"
    assert run.data.tags["model_name"] == "fraud-detector"
    assert run.data.tags["model_version"] == "3" and run.data.tags["status"] == "ok"
    assert (
        run.data.metrics["check/drift_share"]
        == fair_result.summary["checks"]["drift_share"]["value"]
    )
    assert f"psi/{s.AMOUNT}" in run.data.metrics
    assert "check/equalized_odds_difference/age_band" in run.data.metrics
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run_id, "monitoring")}
    assert artifacts == {"monitoring/report.html", "monitoring/summary.json"}


def test_snapshots_accumulate_in_one_workspace_project(fair_result: MonitorResult) -> None:
    from evidently.ui.workspace import Workspace

    workspace_dir = fair_result.report_path.parent.parent / "evidently"
    assert fair_result.snapshot is not None
    add_to_workspace(fair_result.snapshot, workspace_dir, "inferloop monitoring")
    workspace = Workspace(str(workspace_dir))
    (project,) = workspace.list_projects()
    assert project.name == "inferloop monitoring"
    assert len(workspace.list_runs(project.id)) == 3  # the report and our figures, then again
    titles = {panel.title for panel in workspace.get_dashboard(project.id).panels}
    assert {"Drift share (inferloop, all rows)", "Score drift (Evidently, sampled)"} <= titles


# --------------------------------------------------------------------------- CLI


def test_cli_monitor_writes_the_verdict_and_fails_on_breach_when_asked(
    fair: Scored, mlflow_store: str, tmp_path: Path
) -> None:
    import mlflow

    from inferloop.cli import main

    reference, batch = tmp_path / "reference.parquet", tmp_path / "batch.parquet"
    fair.reference.to_parquet(reference)
    drifted = fair.batch.assign(**{s.AMOUNT: fair.batch[s.AMOUNT] * 3})
    drifted.assign(model_name="fraud-detector", model_version="7").to_parquet(batch)
    params = tmp_path / "params.yaml"
    params.write_text(
        "monitor:\n  evidently_sample_size: 1000\n"
        f"  feature_columns: [{s.AMOUNT}, {s.CHANNEL}]\n  fairness_attributes: [age_band]\n"
    )
    args = ["monitor", "--params", str(params), "--scored", str(batch)]
    args += ["--reference", str(reference), "--out", str(tmp_path / "out"), "--workspace", ""]
    ok = CliRunner().invoke(main, [*args, "--batch", "w1"])
    assert ok.exit_code == 0, ok.output
    assert "w1: alert" in ok.output and "drift_share" in ok.output
    summary = json.loads((tmp_path / "out" / "w1" / SUMMARY_FILE).read_text())
    assert summary["model"] == {"name": "fraud-detector", "version": "7"}
    # version 7 is not registered: no validation figures, but the run is still logged
    assert summary["checks"]["ap_drop"]["evaluated"] is False
    runs = mlflow.search_runs(
        experiment_names=["monitoring"], filter_string="tags.batch = 'w1'", output_format="list"
    )
    assert [r.data.tags["model_version"] for r in runs] == ["7"]
    failing = CliRunner().invoke(main, [*args, "--batch", "w2", "--fail-on-breach"])
    assert failing.exit_code == 1, failing.output
    params.write_text("monitor:\n  feature_columns: [no_such_column]\n")
    refused = CliRunner().invoke(main, [*args, "--batch", "w3"])
    assert refused.exit_code == 2 and "no_such_column" in refused.output
