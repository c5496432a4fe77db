"""Batch scoring: chunked == whole file, kill + resume, idempotency, quarantine, exit codes."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scoring_support import CHAMPION_URI, Champion

from inferloop.core import schema as s
from inferloop.data.contract import ContractParams
from inferloop.evaluation.reasons import REASON_COLUMNS
from inferloop.scoring.batch import score_files
from inferloop.scoring.inputs import iter_chunks
from inferloop.scoring.loading import load_scoring_model

pytestmark = pytest.mark.integration
RUN_DIR = "fraud-detector-v1"
INFERLOOP = str(Path(sys.executable).parent / "inferloop")


def _cli(champion: Champion, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    cmd = [INFERLOOP, "score", "--params", str(champion.params_path)]
    return subprocess.run(
        [*cmd, *args], env=champion.env(), capture_output=True, text=True, timeout=timeout
    )


def _predictions(out: Path) -> pd.DataFrame:
    return pd.read_parquet(out / RUN_DIR).sort_values(s.TRANSACTION_ID, ignore_index=True)


def _manifest(out: Path) -> dict:
    return json.loads((out / RUN_DIR / "_manifest.json").read_text())


def _with_tied_boundary(incoming: pd.DataFrame, at: int) -> pd.DataFrame:
    """Rows ``at-5 .. at+5`` share one timestamp and, with row ``at+10``, one customer.

    A chunk boundary at ``at`` then splits a timestamp tie, and row ``at+10`` must see the
    tied rows of the previous chunk in its customer windows, as it does in the whole file.
    """
    df = incoming.copy()
    tied = df.index[at - 5 : at + 6]
    df.loc[tied, s.TIMESTAMP] = df.loc[tied[0], s.TIMESTAMP]
    df.loc[[*tied, df.index[at + 10]], s.CUSTOMER_ID] = df.loc[tied[0], s.CUSTOMER_ID]
    return df


@pytest.fixture()
def contract() -> ContractParams:
    return ContractParams()


def test_chunked_scoring_equals_whole_file_scoring(
    use_champion: Champion, incoming: pd.DataFrame, contract: ContractParams, tmp_path: Path
) -> None:
    data = _with_tied_boundary(incoming, at=400)
    data.to_parquet(tmp_path / "day.parquet", index=False)
    whole = score_files(
        tmp_path / "day.parquet",
        tmp_path / "whole",
        model_uri=CHAMPION_URI,
        contract=contract,
        chunk_rows=10**7,
    )
    chunked = score_files(
        tmp_path / "day.parquet",
        tmp_path / "chunked",
        model_uri=CHAMPION_URI,
        contract=contract,
        chunk_rows=400,
    )
    assert whole.totals["chunks"] == 1 and chunked.totals["chunks"] == -(-len(data) // 400)
    a, b = _predictions(tmp_path / "whole"), _predictions(tmp_path / "chunked")
    assert len(a) == len(b) == len(data) and a[s.TRANSACTION_ID].is_unique
    np.testing.assert_allclose(a[s.SCORE], b[s.SCORE], rtol=0, atol=1e-12)
    assert (a[s.DECISION] == b[s.DECISION]).all()
    assert chunked.totals["late_rows"] == 6  # rows 400..405 tie with rows 395..399
    # ties are scored exactly: no "out of time order" note for a time-sorted file
    assert chunked.totals["older_rows"] == 0 and "note:" not in chunked.describe()

    direct = load_scoring_model(CHAMPION_URI).model.score_frame(data)  # the pyfunc's own path
    direct = direct.sort_values(s.TRANSACTION_ID, ignore_index=True)
    np.testing.assert_allclose(a[s.SCORE], direct[s.SCORE], rtol=0, atol=1e-12)


def test_every_row_carries_model_and_scoring_time(
    use_champion: Champion, incoming: pd.DataFrame, contract: ContractParams, tmp_path: Path
) -> None:
    incoming.head(500).to_parquet(tmp_path / "d.parquet", index=False)
    score_files(tmp_path / "d.parquet", tmp_path / "out", model_uri=CHAMPION_URI, contract=contract)
    pred = _predictions(tmp_path / "out")
    assert list(pred.columns) == [
        s.TRANSACTION_ID,
        s.TIMESTAMP,
        s.SCORE,
        s.DECISION,
        s.MODEL_NAME,
        s.MODEL_VERSION,
        s.SCORED_AT,
        *REASON_COLUMNS,
    ]
    assert set(pred[s.MODEL_NAME]) == {"fraud-detector"} and set(pred[s.MODEL_VERSION]) == {"1"}
    # each alert names its top reasons (the champion is a LightGBM model); other rows none
    alerts = pred[s.DECISION] == 1
    assert alerts.any() and pred.loc[alerts, "reason_1"].notna().all()
    assert pred.loc[~alerts, list(REASON_COLUMNS)].isna().all().all()
    assert pred[s.SCORED_AT].notna().all() and str(pred[s.SCORED_AT].dt.tz) == "UTC"
    assert pred[s.SCORE].between(0, 1).all() and set(pred[s.DECISION]) <= {0, 1}


def test_kill_after_first_chunk_then_resume(
    champion: Champion,
    use_champion: Champion,
    incoming: pd.DataFrame,
    contract: ContractParams,
    tmp_path: Path,
) -> None:
    incoming.to_parquet(tmp_path / "day.parquet", index=False)
    out, state = tmp_path / "out", tmp_path / "state.db"
    args = ["--input", str(tmp_path / "day.parquet"), "--output", str(out), "--chunk-rows", "300"]
    args += ["--state", str(state)]  # a feature state of its own: the resume must not double count
    cmd = [INFERLOOP, "score", "--params", str(champion.params_path)]
    proc = subprocess.Popen(
        [*cmd, *args, "--chunk-delay", "30"],
        env=champion.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for_chunks(out / RUN_DIR / "_manifest.json", 1, proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    assert _manifest(out)["totals"]["chunks"] == 1 and not _manifest(out)["complete"]
    visible = sorted(p.name for p in (out / RUN_DIR).glob("part-*"))
    assert visible == ["part-day-00000.parquet"]  # nothing partial is visible

    resumed = _cli(champion, *args)
    assert resumed.returncode == 0, resumed.stderr
    assert "skipped 1 finished" in resumed.stdout
    totals = _manifest(out)["totals"]
    assert totals["rows_in"] == len(incoming) == totals["rows_scored"] + totals["rows_quarantined"]
    pred = _predictions(out)
    assert len(pred) == len(incoming) and pred[s.TRANSACTION_ID].is_unique
    # every event once in the state: the seeded history plus each scored row
    seeded = int(sqlite3.connect(state).execute(
        "SELECT COUNT(*) FROM events WHERE id LIKE 'seed:%'").fetchone()[0])  # fmt: skip
    stored = int(sqlite3.connect(state).execute("SELECT COUNT(*) FROM events").fetchone()[0])
    assert seeded > 0 and stored == seeded + len(incoming)
    # the resumed run continued from the state: the same scores as one clean in-memory run
    clean = score_files(
        tmp_path / "day.parquet",
        tmp_path / "clean",
        model_uri=CHAMPION_URI,
        contract=contract,
        chunk_rows=300,
    )
    assert clean.complete
    np.testing.assert_allclose(
        pred[s.SCORE], _predictions(tmp_path / "clean")[s.SCORE], rtol=0, atol=1e-12
    )


def _wait_for_chunks(
    manifest: Path, n: int, proc: subprocess.Popen[bytes], timeout: float = 120
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if manifest.is_file() and json.loads(manifest.read_text())["totals"]["chunks"] >= n:
            return
        time.sleep(0.1)
    raise AssertionError(f"no {n} finished chunk(s) in {timeout} s")


def test_second_run_rewrites_nothing(
    champion: Champion, incoming: pd.DataFrame, tmp_path: Path
) -> None:
    incoming.to_parquet(tmp_path / "day.parquet", index=False)
    out = tmp_path / "out"
    args = ["--input", str(tmp_path), "--output", str(out), "--chunk-rows", "1000"]
    first = _cli(champion, *args)
    assert first.returncode == 0, first.stderr
    parts = sorted((out / RUN_DIR).glob("part-*.parquet"))
    parts.append(out / RUN_DIR / "_manifest.json")
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in parts}
    second = _cli(champion, *args)
    assert second.returncode == 0, second.stderr
    assert "scored 0 chunk(s), skipped 3 finished" in second.stdout
    assert sorted(p.name for p in (out / RUN_DIR).glob("part-*.parquet")) == sorted(
        p.name for p in parts[:-1]
    )
    after = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in parts}
    assert after == before
    assert _manifest(out)["totals"]["rows_scored"] == len(incoming)


def _broken_csv(incoming: pd.DataFrame, path: Path) -> dict[str, int]:
    """Write 300 rows as CSV with known defects; return the expected quarantine reasons."""
    df = incoming.head(300).astype({s.AMOUNT: object, s.CUSTOMER_ID: object, s.TIMESTAMP: object})
    df.loc[df.index[10], s.AMOUNT] = "abc"
    df.loc[df.index[11], s.CHANNEL] = "fax"
    df.loc[df.index[12], s.CUSTOMER_ID] = None
    df.loc[df.index[13], s.AMOUNT] = -5.0
    df.loc[df.index[14], s.TRANSACTION_ID] = df.loc[df.index[15], s.TRANSACTION_ID]
    df.loc[df.index[16], s.TIMESTAMP] = "not a time"
    text = df.to_csv(index=False).splitlines()
    text.insert(50, "1,2,3")  # a line with the wrong number of fields
    path.write_text("\n".join(text) + "\n")
    return {
        "non_numeric_amount": 1,
        "unknown_category:channel": 1,
        "null_key:customer_id": 1,
        "non_positive_amount": 1,
        "duplicate_transaction_id": 1,
        "unparseable_timestamp": 1,
        "malformed_csv_row": 1,
    }


def test_quarantine_counts_reasons_and_exit_codes(
    champion: Champion, incoming: pd.DataFrame, tmp_path: Path
) -> None:
    expected = _broken_csv(incoming, tmp_path / "bad.csv")
    out, quarantine = tmp_path / "out", tmp_path / "quarantine"
    args = [
        "--input",
        str(tmp_path / "*.csv"),
        "--output",
        str(out),
        "--quarantine",
        str(quarantine),
        "--chunk-rows",
        "100",
    ]
    ok = _cli(champion, *args)
    assert ok.returncode == 0, ok.stderr
    totals = _manifest(out)["totals"]
    assert totals["by_reason"] == expected
    assert (
        totals["rows_in"] == 301
        and totals["rows_quarantined"] == 7
        and totals["rows_scored"] == 294
    )
    assert "rows in 301 = scored 294 + quarantined 7" in ok.stdout
    rejected = pd.read_parquet(quarantine / RUN_DIR)
    assert rejected[s.REJECT_REASON].value_counts().to_dict() == expected
    assert rejected.loc[rejected[s.REJECT_REASON] == "malformed_csv_row", "raw_line"].tolist() == [
        "1,2,3"
    ]
    assert len(_predictions(out)) == 294

    strict = _cli(champion, *args, "--fail-on-quarantine")
    assert strict.returncode == 1, strict.stderr


def test_csv_and_parquet_inputs_score_the_same(
    use_champion: Champion, incoming: pd.DataFrame, contract: ContractParams, tmp_path: Path
) -> None:
    rows = incoming.head(800)
    rows.to_parquet(tmp_path / "a.parquet", index=False)
    rows.assign(**{s.TIMESTAMP: rows[s.TIMESTAMP].dt.strftime("%Y-%m-%dT%H:%M:%S")}).to_csv(
        tmp_path / "b.csv", index=False
    )
    for name in ("a.parquet", "b.csv"):
        score_files(
            tmp_path / name,
            tmp_path / name.split(".")[0],
            model_uri=CHAMPION_URI,
            contract=contract,
            chunk_rows=250,
        )
    a, b = _predictions(tmp_path / "a"), _predictions(tmp_path / "b")
    np.testing.assert_allclose(a[s.SCORE], b[s.SCORE], rtol=0, atol=1e-12)


def test_unusable_input_exits_2_and_writes_nothing(
    champion: Champion, incoming: pd.DataFrame, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    nothing = _cli(champion, "--input", str(tmp_path / "none-*.parquet"), "--output", str(out))
    assert nothing.returncode == 2 and "no CSV or Parquet files match" in nothing.stderr
    incoming.drop(columns=[s.AMOUNT]).head(10).to_parquet(tmp_path / "x.parquet", index=False)
    missing = _cli(champion, "--input", str(tmp_path / "x.parquet"), "--output", str(out))
    assert missing.returncode == 2 and "lacks required column(s) ['amount']" in missing.stderr
    (tmp_path / "y.parquet").write_text("not parquet")
    corrupt = _cli(champion, "--input", str(tmp_path / "y.parquet"), "--output", str(out))
    assert corrupt.returncode == 2 and "cannot read" in corrupt.stderr
    incoming.head(10).to_parquet(tmp_path / "z.parquet", index=False)
    unknown = _cli(
        champion,
        "--input",
        str(tmp_path / "z.parquet"),
        "--output",
        str(out),
        "--model",
        "models:/nope@champion",
    )
    assert unknown.returncode == 2 and "nope@champion does not exist" in unknown.stderr
    assert not out.exists()
    for result in (nothing, missing, corrupt, unknown):
        assert "Traceback" not in result.stderr


def test_changed_input_is_refused_until_restart(
    champion: Champion, incoming: pd.DataFrame, tmp_path: Path
) -> None:
    path, out = tmp_path / "day.parquet", tmp_path / "out"
    incoming.head(400).to_parquet(path, index=False)
    assert _cli(champion, "--input", str(path), "--output", str(out)).returncode == 0
    incoming.head(500).to_parquet(path, index=False)
    changed = _cli(champion, "--input", str(path), "--output", str(out))
    assert changed.returncode == 2 and "changed since it was scored" in changed.stderr
    restarted = _cli(champion, "--input", str(path), "--output", str(out), "--restart")
    assert restarted.returncode == 0, restarted.stderr
    assert _manifest(out)["totals"]["rows_scored"] == 500 == len(_predictions(out))


def test_chunks_have_exact_sizes_and_keep_every_row(incoming: pd.DataFrame, tmp_path: Path) -> None:
    incoming.to_parquet(tmp_path / "d.parquet", index=False, row_group_size=333)
    chunks = list(iter_chunks(tmp_path / "d.parquet", 500))
    assert [c.rows_in for c in chunks[:-1]] == [500] * (len(chunks) - 1)
    assert sum(c.rows_in for c in chunks) == len(incoming)
    ids = pd.concat([c.frame[s.TRANSACTION_ID] for c in chunks], ignore_index=True)
    assert ids.equals(incoming[s.TRANSACTION_ID].reset_index(drop=True))


class _CountProbe:
    """A stand-in classifier whose "score" is the customer's 1-day count: exposes features."""

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        x = features["cust_count_1D"].to_numpy()
        return np.c_[-x, x]


def test_live_scorer_is_exact_across_a_split_timestamp_tie(incoming: pd.DataFrame) -> None:
    """Row 410 must count the tied rows 395..399 of the previous chunk, as in the whole file.

    Without scoring the tied ("late") rows of the next chunk first, the featurizer would drop
    every history event at the tie's second and row 410's count would be short by 5.
    """
    import copy

    from scoring_support import SCORING_SIM

    from inferloop.data.features import FeatureParams, featurize_frame
    from inferloop.data.simulate import simulate_transactions
    from inferloop.model import FraudModel, LiveScorer

    _, featurizer = featurize_frame(
        simulate_transactions(SCORING_SIM), FeatureParams(label_delay="3D")
    )
    data = _with_tied_boundary(incoming, at=400)
    whole = FraudModel(copy.deepcopy(featurizer), _CountProbe(), 0.5, "probe").score_frame(data)
    scorer = LiveScorer(FraudModel(copy.deepcopy(featurizer), _CountProbe(), 0.5, "probe"))
    chunked = pd.concat([scorer.score(data.iloc[i : i + 400]) for i in range(0, len(data), 400)])
    assert scorer.late_rows == 6
    np.testing.assert_array_equal(chunked[s.SCORE].to_numpy(), whole[s.SCORE].to_numpy())


def test_production_weeks_go_through_the_live_scorer(incoming: pd.DataFrame) -> None:
    """The production simulation scores a week exactly as the live scorer does, late rows too.

    It used to featurize and score the week itself, skipping the late-row rule: a row tied
    with the newest event of the history then lost the tied events from its counts.
    """
    import copy

    from scoring_support import SCORING_SIM

    from inferloop.data.features import FeatureParams, featurize_frame
    from inferloop.data.simulate import simulate_transactions
    from inferloop.loop.production import Champion, score_week
    from inferloop.model import FraudModel, LiveScorer
    from inferloop.monitoring.drift import ReferenceProfile

    _, featurizer = featurize_frame(
        simulate_transactions(SCORING_SIM), FeatureParams(label_delay="3D")
    )
    data = _with_tied_boundary(incoming, at=400)
    first, second = data.iloc[:400], data.iloc[400:]
    model = FraudModel(copy.deepcopy(featurizer), _CountProbe(), 0.5, "probe")
    reference = data.head(50).assign(**{s.SCORE: 0.5})
    profile = ReferenceProfile.fit(reference, numeric_cols=[], n_bins=5, score_col=s.SCORE)
    champion = Champion("7", model, {}, reference, profile)
    weeks = [score_week(champion, first), score_week(champion, second)]
    live = LiveScorer(FraudModel(copy.deepcopy(featurizer), _CountProbe(), 0.5, "probe"))
    expected = pd.concat([live.score(first), live.score(second)])
    got = pd.concat(weeks)
    assert champion.scorer.late_rows == live.late_rows == 6
    np.testing.assert_array_equal(got[s.SCORE].to_numpy(), expected[s.SCORE].to_numpy())
    assert set(model.feature_names) <= set(got.columns)  # monitoring profiles the features
    assert (got[s.MODEL_VERSION] == "7").all() and (got[s.MODEL_NAME] == "fraud-detector").all()


def test_rows_out_of_time_order_are_counted_and_named(
    use_champion: Champion, incoming: pd.DataFrame, contract: ContractParams, tmp_path: Path
) -> None:
    """A row older than the rows scored before it is reported; a time-sorted file is not."""
    data = incoming.sort_values(s.TIMESTAMP, kind="stable", ignore_index=True)
    moved = data.iloc[[900]].assign(**{s.TIMESTAMP: data[s.TIMESTAMP].iloc[10]})
    shuffled = pd.concat([data.drop(index=900), moved], ignore_index=True)  # now the last row
    shuffled.to_parquet(tmp_path / "day.parquet", index=False)
    run = score_files(
        tmp_path / "day.parquet", tmp_path / "out", model_uri=CHAMPION_URI, contract=contract,
        chunk_rows=400,
    )  # fmt: skip
    assert run.totals["older_rows"] == 1
    assert "note: 1 row(s) were older than rows already scored" in run.describe()
