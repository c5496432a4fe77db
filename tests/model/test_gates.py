"""Promotion gates: thresholds, champion comparison, fairness on the bias scenario."""

from __future__ import annotations

import math
from typing import Any

from inferloop.core import schema as s
from inferloop.data.samples import SimulatedSplits
from inferloop.evaluation.fairness import fairness_report
from inferloop.evaluation.gates import Decision, Gate, GateParams, decide
from inferloop.evaluation.metrics import ClassificationMetrics, compute_metrics

GATES = GateParams(
    min_average_precision=0.3,
    min_roc_auc=0.75,
    max_ap_regression=0.02,
    max_equalized_odds_difference=0.3,
)


def _metrics(ap: float, auc: float) -> ClassificationMetrics:
    return ClassificationMetrics(auc, ap, 0.2, 100, 0.5, 0.5, 0.5, 0.01, 0.5, 1000, 10, 0.01, 5.0)


def test_gate_kinds_and_nan() -> None:
    assert Gate("a", 0.5, 0.3, "min").passed and not Gate("a", 0.2, 0.3, "min").passed
    assert Gate("b", 0.1, 0.3, "max").passed and not Gate("b", 0.4, 0.3, "max").passed
    assert not Gate("c", math.nan, 0.3, "min").passed


def test_a_worse_challenger_is_not_promoted() -> None:
    d = decide(
        "lightgbm",
        _metrics(0.50, 0.86),
        {},
        GATES,
        champion=_metrics(0.60, 0.88),
        champion_version="1",
    )
    assert not d.passed and "ap_vs_champion" in d.failed and "roc_auc_vs_champion" in d.failed


def test_a_slightly_worse_challenger_within_tolerance_passes() -> None:
    d = decide(
        "lightgbm",
        _metrics(0.59, 0.875),
        {},
        GATES,
        champion=_metrics(0.60, 0.88),
        champion_version="1",
    )
    assert d.passed, d.as_dict()


def test_absolute_minimums_apply_without_a_champion() -> None:
    d: Decision = decide("logistic", _metrics(0.2, 0.7), {}, GATES)
    assert set(d.failed) == {"min_average_precision", "min_roc_auc"}
    assert d.as_dict()["gates"]["min_roc_auc"]["threshold"] == 0.75


def _fairness(data: SimulatedSplits, fit_lgbm: Any) -> dict[str, Any]:
    model = fit_lgbm(data)
    test = data.splits.test
    scores = model.predict_proba(test[data.features])[:, 1]
    threshold = 0.3
    scored = test.assign(score=scores, decision=(scores >= threshold).astype(int))
    metrics = compute_metrics(
        test[s.TARGET], scores, threshold, test[s.CUSTOMER_ID], test[s.TIMESTAMP]
    )
    report = fairness_report(
        scored, y_col=s.TARGET, pred_col="decision", score_col="score", attributes=[s.AGE_BAND]
    )
    return {"metrics": metrics, "report": report}


def test_bias_scenario_fails_the_fairness_gate(
    fair_data: SimulatedSplits, biased_data: SimulatedSplits, fit_lgbm: Any
) -> None:
    fair, biased = _fairness(fair_data, fit_lgbm), _fairness(biased_data, fit_lgbm)
    tpr = lambda r: r["report"][s.AGE_BAND].by_group.loc["61+", "tpr"]  # noqa: E731
    assert tpr(biased) < tpr(fair) - 0.15  # the camouflaged group's fraud is missed
    eod = lambda r: r["report"][s.AGE_BAND].equalized_odds_difference  # noqa: E731
    assert eod(biased) > eod(fair)
    decision = decide(
        "lightgbm", biased["metrics"], biased["report"], GateParams()
    )  # default gates
    assert f"equalized_odds_difference:{s.AGE_BAND}" in decision.failed, decision.as_dict()
