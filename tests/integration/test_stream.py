"""Streaming: EOF and SIGTERM lose no accepted record; micro-batches close on time; watch mode."""

from __future__ import annotations

import json
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scoring_support import CHAMPION_URI, Champion

from inferloop.core import schema as s
from inferloop.scoring.loading import load_scoring_model

pytestmark = pytest.mark.integration
INFERLOOP = str(Path(sys.executable).parent / "inferloop")


def _params(champion: Champion, tmp_path: Path, **stream: int | bool) -> Path:
    params = yaml.safe_load(champion.params_path.read_text())
    params["stream"].update(stream)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def _lines(rows: pd.DataFrame) -> list[str]:
    text = rows.assign(**{s.TIMESTAMP: rows[s.TIMESTAMP].dt.strftime("%Y-%m-%dT%H:%M:%S")})
    return text.to_json(orient="records", lines=True).splitlines()


def _start(champion: Champion, params: Path, *args: str) -> subprocess.Popen[str]:
    cmd = [INFERLOOP, "stream", "--params", str(params), *args]
    return subprocess.Popen(
        cmd,
        env=champion.env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_ready(proc: subprocess.Popen[str], timeout: float = 120) -> None:
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stderr], [], [], 1.0)
        if ready and "stream_ready" in proc.stderr.readline():
            return
        assert proc.poll() is None, proc.communicate()
    raise AssertionError("stream did not get ready")


def _end_stats(stderr: str) -> dict:
    last = [x for x in stderr.splitlines() if x.startswith('{"event": "stream_end"')]
    assert len(last) == 1, stderr
    return json.loads(last[0])


def test_eof_scores_every_record_like_the_batch_path(
    champion: Champion, use_champion: Champion, incoming: pd.DataFrame, tmp_path: Path
) -> None:
    """Small batches and frequent history folds still give the whole-file scores; a record
    sent again in a later batch is quarantined, not scored twice."""
    rows = incoming.head(1500)
    lines = _lines(rows)
    resent = lines[5:7]
    lines[700:700] = resent  # batches are 37 rows: far from the first copies
    lines[100:100] = ["not json", "[1, 2]", json.dumps({s.TRANSACTION_ID: 1})]
    params = _params(champion, tmp_path, max_batch_rows=37, fold_rows=100)
    quarantine = tmp_path / "q.jsonl"
    proc = subprocess.run(
        # a store of its own: ids that other tests scored on the shared store would answer
        # their stored scores, and a stored score carries no reason codes
        [
            INFERLOOP,
            "stream",
            "--params",
            str(params),
            "--quarantine",
            str(quarantine),
            "--state",
            str(tmp_path / "state.db"),
        ],
        input="\n".join(lines) + "\n",
        env=champion.env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    stats = _end_stats(proc.stderr)
    assert stats["ended_by"] == "eof" and stats["received"] == len(lines) == 1505
    assert stats["scored"] == 1500 and stats["quarantined"] == 5
    assert stats["by_reason"] == {
        "duplicate_transaction_id": 2,
        "invalid_json": 1,
        "not_a_json_object": 1,
        "null_key:customer_id": 1,
    }
    rejected = [json.loads(x) for x in quarantine.read_text().splitlines()]
    assert [r["reject_reason"] for r in rejected] == [
        "invalid_json",
        "not_a_json_object",
        "null_key:customer_id",
        "duplicate_transaction_id",
        "duplicate_transaction_id",
    ]
    assert [r["record"] for r in rejected[3:]] == [json.loads(x) for x in resent]
    out = pd.read_json(pd.io.common.StringIO(proc.stdout), lines=True)
    assert out[s.TRANSACTION_ID].tolist() == rows[s.TRANSACTION_ID].tolist()
    assert set(out[s.MODEL_NAME]) == {"fraud-detector"} and set(
        out[s.MODEL_VERSION].astype(str)
    ) == {"1"}
    whole = load_scoring_model(CHAMPION_URI).model.score_frame(rows)
    np.testing.assert_allclose(out[s.SCORE], whole[s.SCORE], rtol=0, atol=1e-12)
    # alerts carry their reason codes, as batch output does; other lines have none
    alerts = out[s.DECISION] == 1
    assert alerts.any() and out.loc[alerts, "reason_1"].notna().all()
    assert out.loc[~alerts, "reason_1"].isna().all()
    assert (
        out.loc[alerts, "reason_1_contribution"] >= out.loc[alerts, "reason_3_contribution"]
    ).all()


def test_sigterm_flushes_the_open_batch(
    champion: Champion, incoming: pd.DataFrame, tmp_path: Path
) -> None:
    """Records read into a batch that has not closed yet are scored before the exit."""
    params = _params(
        champion, tmp_path, max_batch_rows=100_000, max_wait_ms=600_000, send_when_idle=False
    )
    proc = _start(champion, params, "--quarantine", str(tmp_path / "q.jsonl"))
    _wait_ready(proc)
    assert proc.stdin is not None
    lines = _lines(incoming.head(700))
    proc.stdin.write("\n".join(lines) + "\n")
    proc.stdin.flush()
    time.sleep(1.5)  # read by the stream, but the batch waits for 10 minutes or 100k rows
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    stats = _end_stats(stderr)
    assert stats["ended_by"] == "signal"
    assert stats["received"] == stats["scored"] == len(stdout.splitlines()) == 700


def test_sigterm_while_records_keep_coming_loses_none(
    champion: Champion, incoming: pd.DataFrame, tmp_path: Path
) -> None:
    params = _params(champion, tmp_path, max_batch_rows=50, max_wait_ms=20)
    out_path = tmp_path / "out.jsonl"
    proc = _start(
        champion, params, "--quarantine", str(tmp_path / "q.jsonl"), "--output", str(out_path)
    )
    _wait_ready(proc)
    assert proc.stdin is not None
    lines = _lines(incoming.head(2000))
    for i, line in enumerate(lines):
        proc.stdin.write(line + "\n")
        if i % 50 == 0:
            proc.stdin.flush()
            time.sleep(0.01)
        if i == 1000:
            proc.send_signal(signal.SIGTERM)
            break
    proc.stdin.flush()
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    stats = _end_stats(stderr)
    out = [json.loads(x)[s.TRANSACTION_ID] for x in out_path.read_text().splitlines()]
    sent = [json.loads(x)[s.TRANSACTION_ID] for x in lines[:1001]]
    assert stats["ended_by"] == "signal"
    assert stats["received"] == stats["scored"] + stats["quarantined"] == len(out)
    assert out == sent[: len(out)]  # every accepted record, in order, once
    assert len(out) >= 500  # lines still in the pipe at SIGTERM were never accepted


def test_a_batch_closes_after_max_wait(
    champion: Champion, incoming: pd.DataFrame, tmp_path: Path
) -> None:
    params = _params(
        champion, tmp_path, max_batch_rows=100_000, max_wait_ms=50, send_when_idle=False
    )
    proc = _start(champion, params, "--quarantine", str(tmp_path / "q.jsonl"))
    try:
        _wait_ready(proc)
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write("\n".join(_lines(incoming.head(3))) + "\n")
        proc.stdin.flush()
        sent = time.monotonic()
        ready, _, _ = select.select([proc.stdout], [], [], 10)
        assert ready, "no output 10 s after the batch deadline"
        assert (
            json.loads(proc.stdout.readline())[s.TRANSACTION_ID]
            == incoming[s.TRANSACTION_ID].iloc[0]
        )
        assert time.monotonic() - sent < 5
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)


def test_watch_folder_once(champion: Champion, incoming: pd.DataFrame, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for i, part in enumerate((incoming.head(300), incoming.iloc[300:500])):
        tmp = inbox / f".batch-{i}.tmp"
        tmp.write_text("\n".join(_lines(part)) + "\n")
        tmp.rename(inbox / f"batch-{i}.jsonl")
    params = _params(champion, tmp_path)
    out = tmp_path / "scored.jsonl"
    proc = subprocess.run(
        [INFERLOOP, "stream", "--params", str(params), "--watch", str(inbox), "--once",
         "--output", str(out), "--quarantine", str(tmp_path / "q.jsonl")],
        env=champion.env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert _end_stats(proc.stderr)["scored"] == 500
    ids = [json.loads(x)[s.TRANSACTION_ID] for x in out.read_text().splitlines()]
    assert ids == incoming[s.TRANSACTION_ID].head(500).tolist()
    assert sorted(p.name for p in (inbox / "processed").iterdir()) == [
        "batch-0.jsonl",
        "batch-1.jsonl",
    ]
    assert not list(inbox.glob("*.jsonl"))


class _CountProbe:
    """A stand-in classifier whose "score" is the customer's 1-day count: exposes features."""

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        x = features["cust_count_1D"].to_numpy()
        return np.c_[-x, x]


def test_context_and_background_folds_keep_features_exact(incoming: pd.DataFrame) -> None:
    """Scored rows are history for later ones through the context, across history folds."""
    import copy

    from scoring_support import SCORING_SIM

    from inferloop.data.features import FeatureParams, featurize_frame
    from inferloop.data.simulate import simulate_transactions
    from inferloop.model import FraudModel
    from inferloop.scoring.stream import StreamScorer

    _, featurizer = featurize_frame(
        simulate_transactions(SCORING_SIM), FeatureParams(label_delay="3D")
    )
    rows = incoming.head(1500).reset_index(drop=True)
    late = rows.iloc[[100]].assign(**{s.TRANSACTION_ID: -1})  # re-sent long after its time
    stream = pd.concat([rows.iloc[:1200], late, rows.iloc[1200:]], ignore_index=True)
    scorer = StreamScorer(FraudModel(copy.deepcopy(featurizer), _CountProbe(), 0.5, "p"), 100)
    parts = [scorer.score(stream.iloc[i : i + 37]) for i in range(0, len(stream), 37)]
    scorer.close()
    streamed = pd.concat(parts)[s.SCORE].to_numpy()
    assert scorer.late_rows == 1

    def whole(frame: pd.DataFrame) -> np.ndarray:
        model = FraudModel(copy.deepcopy(featurizer), _CountProbe(), 0.5, "probe")
        return model.score_frame(frame)[s.SCORE].to_numpy()

    # rows before the late one: exactly the whole-file features of what had arrived
    np.testing.assert_array_equal(streamed[:1200], whole(rows.iloc[:1200]))
    # the late row itself: exactly its point-in-time features (history before its time)
    everything = whole(stream)
    assert streamed[1200] == everything[1200]
    # after it, only the late row's customer may differ, until the next history fold
    differs = streamed != everything
    assert set(stream.loc[differs, s.CUSTOMER_ID]) <= {late[s.CUSTOMER_ID].iloc[0]}
