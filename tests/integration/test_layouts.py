"""Bring your own data: each dataset preset runs the real pipeline from params alone.

The files are built from the simulator's rows in the preset's layout (its column names,
nothing fabricated on top), written where the preset's ``data.path`` says, and the project
is switched with ``inferloop init --preset NAME``: no code change, no extra column.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from pipeline_support import DVC, TINY, env, fresh_repo, run, tiny_params

from inferloop.core import schema as s
from inferloop.data.samples import LAYOUTS, as_layout
from inferloop.data.simulate import SimulateParams, simulate_transactions
from inferloop.scoring.serving import ServeConfig, free_port, stop_server, wait_until_ready

pytestmark = pytest.mark.integration

INFERLOOP = str(Path(sys.executable).parent / "inferloop")
# the main model only: the layouts differ in their columns, not in the candidates
FAST = {"train": {**TINY["train"], "candidates": ["lightgbm"]}}


def _simulated() -> pd.DataFrame:
    return simulate_transactions(SimulateParams(**TINY["simulate"]))  # type: ignore[arg-type]


def _python(repo: Path, code: str) -> str:
    return run([sys.executable, "-c", code], repo).stdout


#: The layouts this file runs; test_layouts_more.py runs the others (two files: pytest-xdist
#: hands each file to one worker, so the layouts' pipelines run on both cores).
HERE = ("handbook", "mobile_money")
ELSEWHERE = ("anonymised_log", "credit_scoring")


def test_every_layout_runs_in_one_of_the_two_files() -> None:
    assert sorted((*HERE, *ELSEWHERE)) == sorted(LAYOUTS)


@pytest.mark.parametrize("preset", HERE)
def test_a_preset_runs_the_pipeline_from_params_alone(preset: str, tmp_path: Path) -> None:
    check_layout(preset, tmp_path)


def check_layout(preset: str, tmp_path: Path) -> None:
    """The whole lifecycle on ``preset``'s layout: register, score, serve, monitor."""
    (tmp_path / preset).mkdir()
    # one layout also names its registered model: every command finds it through params
    name = "anonymised-detector" if preset == "anonymised_log" else "fraud-detector"
    repo = fresh_repo(tmp_path / preset, tiny_params({**FAST, "registry": {"model_name": name}}))
    run([INFERLOOP, "init", "--preset", preset], repo)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    table = as_layout(_simulated(), preset)
    path = repo / params["data"]["path"]
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False)

    began = time.perf_counter()
    run([DVC, "repro", "register"], repo)
    elapsed = time.perf_counter() - began

    validated = json.loads((repo / "reports/metrics/validate.json").read_text())
    assert validated["rows_in"] == len(table)
    assert validated["rows_valid"] + validated["rows_quarantined"] == len(table)
    decision = json.loads((repo / "reports/evaluate/decision.json").read_text())
    register = json.loads((repo / "reports/register.json").read_text())
    assert decision["passed"], decision
    assert register["promoted"] is True and register["champion"] == "1"
    card = (repo / "reports/evaluate/model_card.md").read_text()
    sensitive = yaml.safe_load((repo / "params.yaml").read_text())["dataset"][
        "sensitive_attributes"
    ]
    assert ("Fairness not assessed" in card) == (not sensitive)
    metrics = json.loads((repo / "reports/metrics/evaluate.json").read_text())
    print(
        f"{preset}: {len(table):,} rows, dvc repro to register {elapsed:.0f} s, "
        f"metrics {json.dumps(metrics)[:300]}"
    )
    out = _python(repo, _SCORE_CODE.replace("fraud-detector", name))
    assert "scored 20" in out and "rejected non_positive_amount" in out
    if params["data"]["column_map"].get("step") == s.TIMESTAMP:  # PaySim's hourly step
        assert "own names ['step']" in out, out
    features = json.loads(out.splitlines()[-1])
    # only what the layout has: no card-fraud columns, the declared ones encoded
    assert not any(f.startswith(("channel_", "category_")) for f in features)
    if preset == "mobile_money":
        assert {"type_TRANSFER", "oldbalanceOrg", "newbalanceDest"} <= set(features)
        # two named entities on the file's own account columns, served through the SQLite state
        assert {"orig_count_1h", "orig_log_seconds_since_last", "dest_risk_7D"} <= set(features)
        assert not any(f.startswith(("cust_", "term_")) for f in features)
        _serves_the_layout_over_http(repo, name, [], ("type", "BARTER"))
    if preset == "anonymised_log":
        # no entity keys: no window features, and the feature state keeps no series
        assert not any(f.startswith(("cust_", "term_")) for f in features)
        assert {"V1", "V28", "log_amount", "hour"} <= set(features)
        _serves_the_layout_over_http(repo, name, [], ("V7", None))
    if preset == "credit_scoring":
        # no time: no hour or weekday, a request without a timestamp, groups for age bands
        assert not {"hour", "is_weekend", "is_night"} & set(features)
        assert set(metrics["fairness"]) == {"sex", "age"}, metrics["fairness"]
        _serves_the_layout_over_http(repo, name, [], ("sex", "other"))
    _monitors_the_layout(repo)


def _monitors_the_layout(repo: Path) -> None:
    """The daily schedule on the layout: score with the champion, then drift and performance."""
    incoming = repo / "data/incoming/layout.parquet"
    incoming.parent.mkdir(parents=True, exist_ok=True)
    _test_rows(repo).to_parquet(incoming, index=False)
    proc = subprocess.run(
        [INFERLOOP, "monitor", "--incoming", str(incoming), "--batch", "layout"],
        cwd=repo, env=env(repo), capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode in (0, 1), proc.stderr[-3000:]  # 1: a check breached
    summary = json.loads((repo / "reports/monitoring/layout/summary.json").read_text())
    assert "drift_share" in summary["checks"]
    fairness = [c for c in summary["checks"] if "parity" in c or "equalized" in c]
    declared = yaml.safe_load((repo / "params.yaml").read_text())["dataset"]["sensitive_attributes"]
    assert bool(fairness) == bool(declared), summary["checks"]


def _serves_the_layout_over_http(
    repo: Path, name: str, state: list[str], bad: tuple[str, object]
) -> None:
    """``inferloop serve``: the layout's columns score, a retry gets the same answer, and a
    row that batch would quarantine for ``bad`` (column, value) is a 400 naming the reason."""
    port = free_port()
    config = ServeConfig(f"models:/{name}@champion", port=port, workers=1)
    log_path = repo / "server.log"
    cmd = [INFERLOOP, "serve", "--port", str(port), "--workers", "1", *state]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd, cwd=repo, env=env(repo), stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        try:
            wait_until_ready(config, proc, log_path, timeout_s=240)
            test = _test_rows(repo).head(3)
            columns = _input_columns(repo, name)
            rows = test[columns]
            if s.TIMESTAMP in columns:
                rows = rows.assign(**{s.TIMESTAMP: test[s.TIMESTAMP].astype(str)})
            good = _post(port, {"dataframe_records": rows.to_dict("records")})
            assert good[0] == 200 and len(json.loads(good[1])["predictions"]) == 3, good
            assert _post(port, {"dataframe_records": rows.to_dict("records")}) == good
            column, value = bad
            wrong = rows.tail(1).assign(**{column: value, s.TRANSACTION_ID: -1})
            answer = _post(port, {"dataframe_records": wrong.to_dict("records")})
            reason = "unknown_category" if isinstance(value, str) else "invalid_numeric"
            assert answer[0] == 400 and f"{reason}:{column}" in answer[1], answer
        finally:
            stop_server(proc)


def _test_rows(repo: Path) -> pd.DataFrame:
    """The test window's rows as the contract wrote them (raw columns, no features)."""
    validated = pd.read_parquet(repo / "data/validated/transactions.parquet")
    test = pd.read_parquet(repo / "data/processed/split/test.parquet", columns=[s.TRANSACTION_ID])
    return validated[validated[s.TRANSACTION_ID].isin(test[s.TRANSACTION_ID])]


def _post(port: int, body: dict[str, object]) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("POST", "/invocations", json.dumps(body), {"Content-Type": "application/json"})
    response = conn.getresponse()
    return response.status, response.read().decode()


def _input_columns(repo: Path, name: str) -> list[str]:
    code = (
        "import mlflow, json\n"
        "from inferloop.core.tracking import configure_mlflow\n"
        "configure_mlflow()\n"
        f"m = mlflow.pyfunc.load_model('models:/{name}@champion').unwrap_python_model()\n"
        "print(json.dumps(list(m.input_columns)))"
    )
    return list(json.loads(_python(repo, code).splitlines()[-1]))


# a fresh process scores the champion with the layout's own columns only, and rejects a row
# that batch would quarantine with the same reason code
_SCORE_CODE = """
import json, mlflow, pandas as pd
from inferloop.core.tracking import configure_mlflow
configure_mlflow()
model = mlflow.pyfunc.load_model("models:/fraud-detector@champion")
inner = model.unwrap_python_model()
columns = list(inner.input_columns)
rows = pd.read_parquet("data/processed/split/test.parquet").head(20)[columns]
out = model.predict(rows)
assert out["score"].between(0, 1).all()
print("scored", len(out))
try:
    model.predict(rows.head(1).assign(amount=-5.0))
except Exception as exc:
    print("rejected", "non_positive_amount" if "non_positive_amount" in str(exc) else exc)
# the same rows in the training file's own names (data.column_map, numeric time) score the same
import yaml
data = yaml.safe_load(open("params.yaml"))["data"]
inverse = {dst: src for src, dst in data["column_map"].items()}
own = rows.rename(columns=inverse)
unit = data.get("timestamp_unit")
if unit and "timestamp" in inverse and "timestamp" in rows:
    since = pd.to_datetime(rows["timestamp"]) - pd.Timestamp(data["timestamp_origin"])
    own[inverse["timestamp"]] = since / pd.Timedelta(1, unit=unit)
same = model.predict(own)
assert (same["score"].to_numpy() == out["score"].to_numpy()).all(), (same, out)
print("own names", sorted(set(own.columns) - set(rows.columns)))
print(json.dumps(inner.feature_names))
"""


def test_a_bad_spec_stops_dvc_repro_with_its_message_and_no_traceback(tmp_path: Path) -> None:
    (tmp_path / "bad").mkdir()
    bad = {"dataset": {"entities": ["device"], "numeric_features": ["amount"]}}
    repo = fresh_repo(tmp_path / "bad", tiny_params(bad))
    proc = subprocess.run(
        [DVC, "repro", "simulate"], cwd=repo, env=env(repo), capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "entities ['device'] are not built in" in output, output[-2000:]
    assert "numeric_features names the core column 'amount'" in output, output[-2000:]
    assert "Traceback" not in output and not (repo / "data/raw/transactions.parquet").exists()
