"""Calibration and performance estimates before labels: the maths, and monitoring's use of them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score

from inferloop.core import schema as s
from inferloop.evaluation.calibration import (
    ScoreCalibration,
    expected_average_precision,
    expected_calibration_error,
    fit_calibration,
)
from inferloop.monitoring.estimate import estimate_performance, realized_performance
from inferloop.monitoring.monitor import monitor_batch
from inferloop.monitoring.params import SUMMARY_FILE, MonitorParams

THRESHOLD = 0.5


def _world(n: int, seed: int, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores that are a distorted probability (s = p ** 0.5), labels drawn from p."""
    rng = np.random.default_rng(seed)
    logit = rng.normal(-4.5 + shift, 1.6, n)
    p = 1.0 / (1.0 + np.exp(-logit))
    y = (rng.random(n) < p).astype(np.int64)
    return np.sqrt(p), y, p


# --------------------------------------------------------------------------- calibration


def test_calibration_maps_a_distorted_score_back_to_the_probability() -> None:
    scores, y, p = _world(60_000, seed=1)
    calibration, effect = fit_calibration(y, scores)
    assert calibration.kind in ("isotonic", "platt")
    assert effect.brier < effect.brier_raw and effect.ece < effect.ece_raw
    assert effect.candidates[calibration.kind] == min(effect.candidates.values())
    calibrated = calibration.apply(scores)
    assert np.all(np.diff(calibrated[np.argsort(scores)]) >= -1e-12)  # monotone: ranking kept
    assert expected_calibration_error(y, calibrated) < 0.5 * expected_calibration_error(y, scores)
    assert np.abs(calibrated - p).mean() < 0.01


def test_platt_wins_where_a_sigmoid_is_the_truth_with_few_frauds() -> None:
    rng = np.random.default_rng(5)
    scores = rng.uniform(0.01, 0.99, 1000)
    true = 1.0 / (1.0 + np.exp(-(0.6 * np.log(scores / (1 - scores)) - 3.0)))
    y = (rng.random(1000) < true).astype(np.int64)  # about 70 frauds
    calibration, _ = fit_calibration(y, scores)
    assert calibration.kind == "platt"
    assert calibration.a == pytest.approx(0.6, abs=0.25)


def test_calibration_survives_json_and_fits_a_registry_tag() -> None:
    scores, y, _ = _world(40_000, seed=2)
    calibration, _ = fit_calibration(y, scores)
    text = calibration.to_json()
    assert len(text) < 5000  # MLflow's limit for a model version tag
    assert (calibration.n_rows, calibration.n_frauds) == (len(y), int(y.sum()))
    again = ScoreCalibration.from_json(text)
    np.testing.assert_allclose(again.apply(scores), calibration.apply(scores), atol=1e-5)


def test_too_few_frauds_keep_the_score_as_it_is() -> None:
    calibration, _ = fit_calibration([0] * 500 + [1] * 3, np.linspace(0, 1, 503))
    assert calibration.kind == "identity"
    assert calibration.apply([0.2, 0.7]).tolist() == [0.2, 0.7]
    with pytest.raises(ValueError, match="unknown calibration kind"):
        ScoreCalibration.from_dict({"kind": "beta"})
    with pytest.raises(ValueError, match="labels but"):
        fit_calibration([0, 1], [0.5])


# --------------------------------------------------------------------------- estimates


def test_expected_average_precision_matches_its_monte_carlo_mean() -> None:
    rng = np.random.default_rng(5)
    p = np.sort(rng.beta(0.3, 6.0, 400))[::-1]
    draws = [average_precision_score(y, -np.arange(400)) for y in _draws(rng, p, 3000)]
    assert expected_average_precision(p) == pytest.approx(np.mean(draws), abs=0.01)


def _draws(rng: np.random.Generator, p: np.ndarray, k: int) -> list[np.ndarray]:
    out = []
    while len(out) < k:
        y = (rng.random(len(p)) < p).astype(int)
        if 0 < y.sum() < len(p):
            out.append(y)
    return out


def test_estimates_track_realized_values_when_the_calibration_holds() -> None:
    """Covariate shift (more high-risk rows) moves both, and the estimate follows it."""
    scores, y, _ = _world(80_000, seed=6)
    calibration, _ = fit_calibration(y, scores, threshold=THRESHOLD)
    for shift in (0.0, 0.8):
        later, y_later, _ = _world(80_000, seed=7, shift=shift)
        estimate = estimate_performance(later, THRESHOLD, calibration)
        real = realized_performance(y_later, later, THRESHOLD)
        assert estimate.alerts == real["alerts"]
        assert estimate.precision == pytest.approx(real["precision"], abs=0.03)
        assert estimate.recall == pytest.approx(real["recall"], abs=0.03)
        assert estimate.average_precision == pytest.approx(real["average_precision"], abs=0.03)


def test_a_fraud_the_scores_do_not_see_leaves_the_estimate_blind() -> None:
    scores, y, _ = _world(80_000, seed=8)
    calibration, _ = fit_calibration(y, scores, threshold=THRESHOLD)
    later, y_later, _ = _world(80_000, seed=9)
    rng = np.random.default_rng(10)
    y_later = np.where(rng.random(len(y_later)) < 0.03, 1, y_later)  # invisible new fraud
    estimate = estimate_performance(later, THRESHOLD, calibration)
    real = realized_performance(y_later, later, THRESHOLD)
    # the alerts are as good as before; what is missed is unseen, so recall and AP look fine
    assert estimate.precision == pytest.approx(real["precision"], abs=0.05)
    assert real["recall"] < estimate.recall / 1.5
    assert real["average_precision"] < estimate.average_precision - 0.05


# --------------------------------------------------------------------------- in monitoring


def _week(start: str, seed: int) -> pd.DataFrame:
    scores, y, _ = _world(6000, seed=seed)
    times = pd.Timestamp(start) + pd.to_timedelta(np.linspace(60, 7 * 86400 - 60, 6000), unit="s")
    return pd.DataFrame(
        {
            s.TIMESTAMP: times,
            s.AMOUNT: np.random.default_rng(seed).gamma(2.0, 30.0, 6000),
            s.SCORE: scores,
            s.DECISION: (scores >= THRESHOLD).astype(int),
            s.TARGET: y,
            s.LABEL_AVAILABLE_AT: times + pd.Timedelta(days=7),
        }
    )


def _run(window: pd.DataFrame, reference: pd.DataFrame, out: Path, **kwargs: object) -> dict:
    calibration, _ = fit_calibration(reference[s.TARGET], reference[s.SCORE], threshold=THRESHOLD)
    return monitor_batch(
        window,
        reference,
        params=MonitorParams(evidently_sample_size=500, **kwargs.pop("params", {})),  # type: ignore[arg-type]
        model_validation_metrics={"average_precision": 0.9, "threshold": THRESHOLD},
        feature_cols=[s.AMOUNT],
        out_dir=out,
        calibration=calibration,
        **kwargs,  # type: ignore[arg-type]
    ).summary


def test_monitoring_estimates_unlabelled_rows_and_writes_the_realized_values_later(
    tmp_path: Path,
) -> None:
    reference = _week("2026-01-05", seed=11)
    week0, week1 = _week("2026-02-02", seed=12), _week("2026-02-09", seed=13)
    workspace = tmp_path / "evidently"
    first = _run(
        week0, reference, tmp_path, batch_name="week_00", as_of="2026-02-09",
        workspace_dir=workspace,
    )  # fmt: skip
    estimate = first["estimate"]
    assert estimate["n"] == len(week0) and estimate["realized"] is None
    assert estimate["alerts"] == int(week0[s.DECISION].sum())
    assert estimate["ap_drop"] == pytest.approx(0.9 - estimate["average_precision"])
    assert "estimated_ap_drop" not in first["checks"]  # the policy switch is off
    # a week later week 0's labels are in: its estimate gets the realized values beside it
    window = pd.concat([week0, week1], ignore_index=True)
    recorded = first["evidently"]["dashboard_snapshot_id"]
    second = _run(
        window, reference, tmp_path, batch_name="week_01", as_of="2026-02-16", history=[first],
        workspace_dir=workspace,
    )  # fmt: skip
    assert second["estimate"]["n"] == len(week1)
    realized = realized_performance(week0[s.TARGET], week0[s.SCORE], THRESHOLD)
    assert second["earlier_estimate"]["realized"]["precision"] == pytest.approx(
        realized["precision"]
    )
    saved = json.loads((tmp_path / "week_00" / SUMMARY_FILE).read_text())
    assert saved["estimate"]["realized"]["average_precision"] == pytest.approx(
        realized["average_precision"]
    )
    assert saved["estimate"]["precision"] == pytest.approx(estimate["precision"])
    # and week 0's dashboard figures were recorded again, the realized values beside
    assert saved["evidently"]["dashboard_snapshot_id"] != recorded


def test_an_estimated_drop_retrains_only_when_the_switch_is_on(tmp_path: Path) -> None:
    reference = _week("2026-01-05", seed=14)
    week = _week("2026-02-02", seed=15)
    on = _run(
        week, reference, tmp_path / "on", batch_name="w", as_of="2026-02-09",
        params={"retrain_on_estimate": True},
    )  # fmt: skip
    check = on["checks"]["estimated_ap_drop"]
    assert check["breached"] and check["value"] == pytest.approx(on["estimate"]["ap_drop"])
    assert on["action"]["kind"] == "retrain" and "estimate" in on["action"]["families"]
    off = _run(week, reference, tmp_path / "off", batch_name="w", as_of="2026-02-09")
    assert off["action"]["kind"] == "none"
