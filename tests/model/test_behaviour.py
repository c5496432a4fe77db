"""Behaviour of the deployable model: invariance, direction, minimum functionality, loading."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from inferloop.core import schema as s
from inferloop.data.rows import InvalidInput, coerce_input
from inferloop.data.samples import SimulatedSplits
from inferloop.model import FraudModel


def _raw(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[list(s.SCORING_COLUMNS)].reset_index(drop=True)


def test_ids_and_irrelevant_columns_do_not_change_the_score(
    fraud_model: FraudModel, model_data: SimulatedSplits
) -> None:
    rows = model_data.splits.test.head(300)
    base = fraud_model.score_frame(_raw(rows))[s.SCORE]
    renamed = _raw(rows).assign(**{s.TRANSACTION_ID: np.arange(len(rows)) + 10**12})
    extra = renamed.assign(note="anything", **{s.AGE_BAND: "61+", s.REGION: "north"})
    np.testing.assert_allclose(fraud_model.score_frame(extra)[s.SCORE], base, rtol=0, atol=0)


def test_a_card_testing_burst_raises_the_score(
    fraud_model: FraudModel, model_data: SimulatedSplits
) -> None:
    test = model_data.splits.test
    normal = test[(test[s.TARGET] == 0) & (test[s.CHANNEL] == "online")].iloc[[0]]
    alone = fraud_model.score_frame(_raw(normal))[s.SCORE].iloc[0]
    t = normal[s.TIMESTAMP].iloc[0]
    burst = pd.concat([normal] * 12, ignore_index=True)
    burst[s.TIMESTAMP] = [t - pd.Timedelta(minutes=3 * (11 - i)) for i in range(12)]
    burst[s.AMOUNT] = 1.5
    burst[s.TRANSACTION_ID] = np.arange(12) + 10**12
    after_burst = fraud_model.score_frame(_raw(burst))[s.SCORE].iloc[-1]
    assert after_burst > alone + 0.2


def test_context_rows_count_as_history_but_are_not_scored(
    fraud_model: FraudModel, model_data: SimulatedSplits
) -> None:
    """``score_frame(rows, context=earlier)`` equals scoring earlier + rows together."""
    both = _raw(model_data.splits.test.head(400))  # moved past the fitted history
    both[s.TIMESTAMP] = both[s.TIMESTAMP] + pd.Timedelta(days=90)
    earlier, rows = both.iloc[:300], both.iloc[300:]
    together = fraud_model.score_frame(both).iloc[300:]
    with_context = fraud_model.score_frame(rows, context=earlier)
    assert with_context.index.equals(rows.index) and len(with_context) == 100
    np.testing.assert_allclose(with_context[s.SCORE], together[s.SCORE], rtol=0, atol=1e-12)
    alone = fraud_model.score_frame(rows.reset_index(drop=True))[s.SCORE].to_numpy()
    assert not np.allclose(alone, together[s.SCORE].to_numpy())  # the context mattered
    # ids sent as text are canonicalized in the rows and in the context alike
    as_text = {c: both[c].astype(str) for c in (s.CUSTOMER_ID, s.TERMINAL_ID)}
    text_rows = rows.assign(**{c: v.iloc[300:] for c, v in as_text.items()})
    mixed = fraud_model.score_frame(text_rows, context=earlier)
    np.testing.assert_allclose(mixed[s.SCORE], together[s.SCORE], rtol=0, atol=1e-12)


def test_obvious_simulated_fraud_is_caught(
    fraud_model: FraudModel, model_data: SimulatedSplits
) -> None:
    test = model_data.splits.test
    scored = fraud_model.score_frame(_raw(test))
    obvious = test[s.FRAUD_SCENARIO].isin([s.SCENARIO_CODES["card_testing"]]).to_numpy()
    assert obvious.sum() > 10
    assert scored[s.DECISION].to_numpy()[obvious].mean() > 0.8
    genuine = (test[s.TARGET] == 0).to_numpy()
    assert scored[s.DECISION].to_numpy()[genuine].mean() < 0.01


def test_input_errors_name_the_problem() -> None:
    good = {c: ["x"] for c in s.SCORING_COLUMNS} | {
        s.TIMESTAMP: ["2026-01-01T10:00:00"],
        s.AMOUNT: [1.0],
    }
    with pytest.raises(InvalidInput, match=r"missing required column.*amount"):
        coerce_input(pd.DataFrame({k: v for k, v in good.items() if k != s.AMOUNT}))
    with pytest.raises(InvalidInput, match="timestamp"):
        coerce_input(pd.DataFrame(good | {s.TIMESTAMP: ["yesterday-ish"]}))
    with pytest.raises(InvalidInput, match="amount"):
        coerce_input(pd.DataFrame(good | {s.AMOUNT: ["ten"]}))
    with pytest.raises(InvalidInput, match="empty"):
        coerce_input(pd.DataFrame(columns=list(s.SCORING_COLUMNS)))


def test_logged_model_loads_in_a_fresh_process_and_scores_raw_rows(
    fraud_model: FraudModel, model_data: SimulatedSplits, mlflow_store: str, tmp_path: Path
) -> None:
    import mlflow

    from inferloop.model_logging import input_example, log_fraud_model

    rows = _raw(model_data.splits.test.head(50))
    with mlflow.start_run():
        info = log_fraud_model(fraud_model, input_example(rows))
    rows.to_parquet(tmp_path / "rows.parquet")
    expected = fraud_model.score_frame(rows)[s.SCORE].to_numpy()
    np.save(tmp_path / "expected.npy", expected)
    code = f"""
import sys, numpy as np, pandas as pd, mlflow
mlflow.set_tracking_uri({mlflow_store!r})
model = mlflow.pyfunc.load_model({info.model_uri!r})
out = model.predict(pd.read_parquet({str(tmp_path / "rows.parquet")!r}))
assert list(out.columns) == ["transaction_id", "score", "decision"], out.columns
np.testing.assert_allclose(out["score"].to_numpy(), np.load({str(tmp_path / "expected.npy")!r}), rtol=1e-12)
print("ok", len(out))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ok 50" in proc.stdout


def _request_frames(rows: pd.DataFrame) -> list[pd.DataFrame]:
    """``rows`` as MLflow's server would parse a JSON request: ISO text times, with pandas'
    default Arrow strings and with the plain strings the server uses."""
    raw = _raw(rows)
    text = raw.assign(**{s.TIMESTAMP: raw[s.TIMESTAMP].dt.strftime("%Y-%m-%dT%H:%M:%S")})
    records = text.to_dict(orient="records")
    frames = [pd.DataFrame(records)]
    with pd.option_context("future.infer_string", False):
        frames.append(pd.DataFrame(records))
    return frames


@pytest.mark.parametrize("n_rows", [1, 3, 40])
def test_the_plain_request_path_reads_what_the_general_path_reads(
    model_data: SimulatedSplits, n_rows: int
) -> None:
    from inferloop.core.dataset import CARD_FRAUD
    from inferloop.data.rows import _read_columns, _read_plain

    rows = model_data.splits.test.sample(n_rows, random_state=n_rows)
    frames = _request_frames(rows)
    labelled = frames[0].assign(**{s.TARGET: rows[s.TARGET].to_numpy()})
    for frame in [*frames, labelled]:
        plain, general = _read_plain(frame, CARD_FRAUD), _read_columns(frame, CARD_FRAUD)
        assert plain is not None
        np.testing.assert_array_equal(plain.ids, general.ids)
        np.testing.assert_array_equal(plain.timestamps, general.timestamps)
        for field in ("seconds", "amount"):
            np.testing.assert_array_equal(getattr(plain.raw, field), getattr(general.raw, field))
            assert getattr(plain.raw, field).dtype == getattr(general.raw, field).dtype, field
        assert set(plain.raw.keys) == set(general.raw.keys) == {"customer", "terminal"}
        for entity, keys in general.raw.keys.items():
            np.testing.assert_array_equal(plain.raw.keys[entity], keys)
            assert plain.raw.keys[entity].dtype == keys.dtype, entity
        assert set(plain.raw.categories) == {s.CHANNEL, s.MERCHANT_CATEGORY}
        for column, values in general.raw.categories.items():
            np.testing.assert_array_equal(plain.raw.categories[column], values)
            assert plain.raw.categories[column].dtype == values.dtype, column
        if frame is labelled:
            np.testing.assert_array_equal(plain.raw.label, general.raw.label)


@pytest.mark.parametrize(
    ("column", "value"),
    [
        (s.TRANSACTION_ID, True),
        (s.CUSTOMER_ID, "c-17"),
        (s.AMOUNT, float("nan")),
        (s.AMOUNT, "12.50"),
        (s.TIMESTAMP, "2026-02-12T00:00:10Z"),
        (s.TIMESTAMP, "2026-13-12T00:00:10"),
        (s.CHANNEL, "telepathy"),
        (s.MERCHANT_CATEGORY, None),
    ],
)
def test_anything_not_plain_goes_to_the_general_path(
    model_data: SimulatedSplits, column: str, value: object
) -> None:
    """The plain path never decides on odd values: the general path accepts or names them."""
    from inferloop.core.dataset import CARD_FRAUD
    from inferloop.data.rows import _read_plain, read_transactions

    frame = _request_frames(model_data.splits.test.head(2))[1]
    frame[column] = frame[column].astype(object)
    frame.loc[1, column] = value
    assert _read_plain(frame, CARD_FRAUD) is None
    try:
        read_transactions(frame)
    except InvalidInput as exc:
        assert column in str(exc)


def test_inside_the_model_server_predict_answers_with_the_same_records(
    fraud_model: FraudModel, model_data: SimulatedSplits, monkeypatch: pytest.MonkeyPatch
) -> None:
    from inferloop.model import SERVING_ENV

    frame = _request_frames(model_data.splits.test.head(5))[0]
    expected = fraud_model.predict(None, frame)
    assert isinstance(expected, pd.DataFrame)
    monkeypatch.setenv(SERVING_ENV, "true")
    records = fraud_model.predict(None, frame)
    assert records == expected.to_dict(orient="records")
    assert all(type(r[s.TRANSACTION_ID]) is int for r in records)  # JSON-ready, no numpy


# --------------------------------------------------------------------------- post-processed


@pytest.fixture(scope="module")
def post_model(biased_data: SimulatedSplits, fit_lgbm: Any) -> FraudModel:
    """A LightGBM model with per-age-band thresholds fitted on its validation window."""
    from inferloop.evaluation.group_thresholds import PostprocessParams, fit_group_thresholds

    estimator = fit_lgbm(biased_data)
    val = biased_data.splits.validation
    scores = estimator.predict_proba(val[biased_data.features])[:, 1]
    threshold = float(np.quantile(scores, 0.99))
    post = fit_group_thresholds(
        scores,
        val[s.TARGET].to_numpy(),
        val[s.AGE_BAND].to_numpy(dtype=object),
        threshold,
        PostprocessParams(min_group_positives=3),
    )
    return FraudModel(biased_data.featurizer, estimator, threshold, "lightgbm_post", None, post)


def test_a_post_processed_model_decides_with_each_groups_threshold(
    post_model: FraudModel, biased_data: SimulatedSplits
) -> None:
    rows = biased_data.splits.test.head(2000).reset_index(drop=True)
    post = post_model.postprocess
    assert post is not None and len(post.thresholds) >= 2
    assert post_model.input_columns == (*s.SCORING_COLUMNS, s.AGE_BAND)
    with pytest.raises(InvalidInput, match=r"missing required column.*age_band.*per-group"):
        post_model.score_frame(_raw(rows))
    plain = FraudModel(post_model.featurizer, post_model.estimator, post_model.threshold, "x")
    base = plain.score_frame(_raw(rows))[s.SCORE].to_numpy()
    out = post_model.score_frame(rows[list(post_model.input_columns)])
    groups = rows[s.AGE_BAND].to_numpy(dtype=object)
    expected = (base >= post.group_thresholds(groups)).astype(np.int8)
    assert np.array_equal(out[s.DECISION].to_numpy(), expected)
    assert not np.array_equal(expected, (base >= post_model.threshold).astype(np.int8))
    np.testing.assert_allclose(out[s.SCORE], post.adjust(base, groups), rtol=0, atol=0)


def test_a_post_processed_model_scores_alike_through_mlflow_and_a_sqlite_state(
    post_model: FraudModel, biased_data: SimulatedSplits, mlflow_store: str, tmp_path: Path
) -> None:
    import mlflow

    from inferloop.model import LiveScorer
    from inferloop.model_logging import input_example, log_fraud_model
    from inferloop.scoring.live_state import seed_state
    from inferloop.state.config import open_state

    rows = biased_data.splits.test.head(400).reset_index(drop=True)
    rows = rows[list(post_model.input_columns)]
    expected = post_model.score_frame(rows)
    with mlflow.start_run():
        info = log_fraud_model(post_model, input_example(rows, columns=post_model.input_columns))
    assert "age_band" in (info.metadata or {})["input_columns"]
    loaded = mlflow.pyfunc.load_model(info.model_uri)
    pd.testing.assert_frame_equal(loaded.predict(rows), expected)
    # through a real SQLite feature state: the plain model's live scores, post-processed
    plain = FraudModel(post_model.featurizer, post_model.estimator, post_model.threshold, "x")
    live: dict[str, pd.DataFrame] = {}
    for name, model in (("plain", plain), ("post", post_model)):
        state = open_state(str(tmp_path / f"{name}.db"))
        assert state is not None
        seed_state(state, model)
        scorer = LiveScorer(model, state)
        if name == "post":
            with pytest.raises(InvalidInput, match="age_band"):
                scorer.score(rows.drop(columns=[s.AGE_BAND]))
        live[name] = scorer.score(rows)
        state.close()
    assert post_model.postprocess is not None
    groups = rows[s.AGE_BAND].to_numpy(dtype=object)
    adjusted = post_model.postprocess.adjust(live["plain"][s.SCORE].to_numpy(), groups)
    np.testing.assert_allclose(live["post"][s.SCORE], adjusted, rtol=0, atol=0)
    decisions = (adjusted >= post_model.threshold).astype(np.int8)
    assert np.array_equal(live["post"][s.DECISION].to_numpy(), decisions)


def test_a_request_carrying_sensitive_attributes_is_checked_by_the_contract(
    fraud_model: FraudModel, model_data: SimulatedSplits
) -> None:
    frame = _request_frames(model_data.splits.test.head(2))[1]
    fine = frame.assign(**{s.AGE_BAND: ["61+", None]})
    assert fraud_model.predict(None, fine)[s.SCORE].notna().all()
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException, match=r"unknown_category:age_band \(row 1\)"):
        fraud_model.predict(None, frame.assign(**{s.AGE_BAND: ["61+", "elderly"]}))


def test_a_request_asking_for_reasons_gets_each_alerts_top_contributions(
    fraud_model: FraudModel, model_data: SimulatedSplits, monkeypatch: pytest.MonkeyPatch
) -> None:
    from inferloop.evaluation.reasons import REASON_COLUMNS, feature_contributions
    from inferloop.model import SERVING_ENV

    rows = model_data.splits.test.head(1500)
    frame = _request_frames(rows)[1]
    plain = fraud_model.predict(None, frame)
    assert list(plain.columns) == [s.TRANSACTION_ID, s.SCORE, s.DECISION]
    explained = fraud_model.predict(None, frame, params={"explain": True})
    assert list(explained.columns) == [*plain.columns, *REASON_COLUMNS]
    pd.testing.assert_frame_equal(explained[plain.columns], plain)
    alerts = (explained[s.DECISION] == 1).to_numpy()
    assert alerts.sum() >= 3
    features = fraud_model.score_frame(_raw(rows), with_features=True)[fraud_model.feature_names]
    contrib = feature_contributions(fraud_model.estimator, features.to_numpy()[alerts])
    assert contrib is not None
    np.testing.assert_allclose(
        explained.loc[alerts, "reason_1_contribution"], contrib.values.max(axis=1), rtol=1e-12
    )
    monkeypatch.setenv(SERVING_ENV, "true")  # the server's JSON records: the same values
    records = pd.DataFrame(fraud_model.predict(None, frame, params={"explain": "true"}))
    pd.testing.assert_frame_equal(records, explained, check_dtype=False)
