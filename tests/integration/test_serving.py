"""Online serving: real HTTP against ``inferloop serve`` (MLflow's model server) on loopback.

One server for the module, started the way users start it (``inferloop serve`` on a free
port, the champion of the session's throw-away store), torn down afterwards. Every bad
request must get its 4xx naming the problem, and the same server must answer the next good
request; scores over HTTP must equal :meth:`FraudModel.score_frame` in this process.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scoring_support import CHAMPION_URI, Champion

from inferloop.core import schema as s
from inferloop.data.contract import ContractParams, contract_violations
from inferloop.evaluation.reasons import REASON_COLUMNS
from inferloop.model import MAX_ROWS_ENV, FraudModel
from inferloop.scoring.serving import (
    EDGE_MODEL_URI,
    ServeConfig,
    free_port,
    ping,
    serve_command,
    serve_env,
    stop_server,
    wait_until_ready,
)

pytestmark = pytest.mark.integration
INFERLOOP = str(Path(sys.executable).parent / "inferloop")
MAX_ROWS = 50


@pytest.fixture(scope="module")
def server(champion: Champion, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeConfig]:
    """``inferloop serve`` of the session's champion, one worker, at most ``MAX_ROWS`` rows."""
    config = ServeConfig(CHAMPION_URI, port=free_port(), workers=1, max_rows=MAX_ROWS)
    log_path = tmp_path_factory.mktemp("serve") / "server.log"
    cmd = [INFERLOOP, "serve", "--model", config.model_uri, "--port", str(config.port)]
    cmd += ["--workers", "1", "--max-rows", str(MAX_ROWS)]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd, env=champion.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            wait_until_ready(config, proc, log_path, timeout_s=240)
            yield config
        finally:
            stop_server(proc)
    assert not ping(config), "the server still answers after teardown"


@pytest.fixture(scope="module")
def local_model(champion: Champion) -> FraudModel:
    """The champion loaded in this process, as the server loads it."""
    import mlflow

    # both: an earlier test in this worker may have pointed the registry elsewhere
    mlflow.set_tracking_uri(champion.tracking_uri)
    mlflow.set_registry_uri(champion.tracking_uri)
    try:
        model = mlflow.pyfunc.load_model(CHAMPION_URI).unwrap_python_model()
    finally:
        mlflow.set_tracking_uri(None)  # type: ignore[arg-type]  # None: back to the default
        mlflow.set_registry_uri(None)  # type: ignore[arg-type]
    assert isinstance(model, FraudModel)
    return model


@pytest.fixture(scope="module")
def rows(incoming: pd.DataFrame) -> pd.DataFrame:
    """Raw rows right after the model's history, as a client would send them."""
    return incoming[list(s.SCORING_COLUMNS)].head(30).reset_index(drop=True)


def _post(
    config: ServeConfig, body: str | bytes, content_type: str = "application/json"
) -> tuple[int, str]:
    conn = http.client.HTTPConnection(config.host, config.port, timeout=120)
    try:
        conn.request("POST", "/invocations", body=body, headers={"Content-Type": content_type})
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def _jsonable(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.assign(**{s.TIMESTAMP: rows[s.TIMESTAMP].dt.strftime("%Y-%m-%dT%H:%M:%S")})


def _split_body(rows: pd.DataFrame) -> str:
    return json.dumps({"dataframe_split": _jsonable(rows).to_dict(orient="split", index=False)})


def _records_body(rows: pd.DataFrame) -> str:
    return json.dumps({"dataframe_records": _jsonable(rows).to_dict(orient="records")})


def _predictions(config: ServeConfig, body: str) -> pd.DataFrame:
    status, text = _post(config, body)
    assert status == 200, text
    return pd.DataFrame(json.loads(text)["predictions"])


def _assert_scores_equal(served: pd.DataFrame, local: pd.DataFrame) -> None:
    assert list(served.columns) == [s.TRANSACTION_ID, s.SCORE, s.DECISION]
    np.testing.assert_array_equal(served[s.TRANSACTION_ID], local[s.TRANSACTION_ID])
    np.testing.assert_allclose(served[s.SCORE], local[s.SCORE], rtol=1e-12, atol=0)
    np.testing.assert_array_equal(served[s.DECISION], local[s.DECISION])


@pytest.mark.parametrize("body", [_split_body, _records_body], ids=["split", "records"])
def test_served_scores_equal_score_frame(
    server: ServeConfig, local_model: FraudModel, rows: pd.DataFrame, body: Any
) -> None:
    _assert_scores_equal(_predictions(server, body(rows)), local_model.score_frame(rows))
    one = rows.iloc[[7]].reset_index(drop=True)
    _assert_scores_equal(_predictions(server, body(one)), local_model.score_frame(one))


def test_ids_as_text_score_like_the_same_ids_as_numbers(
    server: ServeConfig, rows: pd.DataFrame
) -> None:
    one = _jsonable(rows.iloc[[3]])
    as_text = one.astype({s.CUSTOMER_ID: str, s.TERMINAL_ID: str})
    by_number = _predictions(server, json.dumps({"dataframe_records": one.to_dict("records")}))
    by_text = _predictions(server, json.dumps({"dataframe_records": as_text.to_dict("records")}))
    assert by_text[s.SCORE].tolist() == by_number[s.SCORE].tolist()


def _split_with(rows: pd.DataFrame, **changes: Any) -> str:
    split = _jsonable(rows).to_dict(orient="split", index=False)
    for column, value in changes.items():
        position = split["columns"].index(column)
        for record in split["data"]:
            record[position] = value
    return json.dumps({"dataframe_split": split})


def _without(rows: pd.DataFrame, column: str) -> str:
    return _split_body(rows.drop(columns=[column]))


def _many(rows: pd.DataFrame, n: int) -> str:
    return _split_body(pd.concat([rows.head(1)] * n, ignore_index=True))


# (body from the good rows, content type, expected status, fragment of the error message)
BAD_REQUESTS: dict[str, tuple[Any, str, int, str]] = {
    "missing_column": (lambda r: _without(r, s.AMOUNT), "application/json", 400, "amount"),
    "amount_as_word": (lambda r: _split_with(r, amount="ten"), "application/json", 400, "amount"),
    "amount_missing": (lambda r: _split_with(r, amount=None), "application/json", 400, "amount"),
    "timestamp_as_number": (
        lambda r: _split_with(r, timestamp=1_767_225_600),
        "application/json",
        400,
        "timestamp",
    ),
    "timestamp_unparseable": (
        lambda r: _split_with(r, timestamp="yesterday-ish"),
        "application/json",
        400,
        "timestamp",
    ),
    "customer_id_null": (
        lambda r: _split_with(r, customer_id=None),
        "application/json",
        400,
        "customer_id",
    ),
    "customer_id_nested": (
        lambda r: _split_with(r, customer_id=[1, 2]),
        "application/json",
        400,
        "customer_id",
    ),
    "unknown_channel": (
        lambda r: _split_with(r, channel="carrier-pigeon"),
        "application/json",
        400,
        "channel",
    ),
    "empty_batch": (lambda r: _split_body(r.head(0)), "application/json", 400, "empty"),
    "empty_records": (
        lambda r: json.dumps({"dataframe_records": []}),
        "application/json",
        400,
        "empty",
    ),
    "malformed_json": (
        lambda r: _split_body(r)[:-7],
        "application/json",
        400,
        "valid JSON",
    ),
    "no_format_key": (
        lambda r: json.dumps({"rows": []}),
        "application/json",
        400,
        "dataframe_split",
    ),
    "too_many_rows": (lambda r: _many(r, MAX_ROWS + 1), "application/json", 400, "too many rows"),
    "oversized_body": (lambda r: _many(r, 20_000), "application/json", 400, "too many rows"),
    "not_json": (lambda r: "transaction_id,amount\n1,2\n", "text/plain", 415, "content type"),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_request_gets_4xx_naming_the_problem_and_the_server_keeps_serving(
    server: ServeConfig, rows: pd.DataFrame, case: str
) -> None:
    make_body, content_type, status, fragment = BAD_REQUESTS[case]
    got, text = _post(server, make_body(rows), content_type)
    assert got == status, text[:500]
    assert fragment.lower() in text.lower(), text[:500]
    assert _predictions(server, _split_body(rows.head(2))).shape == (2, 3)


# rows that batch scoring quarantines: the server must refuse them with the same reason code
CONTRACT_CASES: dict[str, dict[str, Any]] = {
    "negative_amount": {s.AMOUNT: -5.0},
    "huge_amount": {s.AMOUNT: 1e300},
    "year_1900": {s.TIMESTAMP: "1900-01-01T00:00:00"},
    "year_9999": {s.TIMESTAMP: "9999-01-01T00:00:00"},
    "fractional_terminal_id": {s.TERMINAL_ID: 1.5},
}


@pytest.mark.parametrize("case", list(CONTRACT_CASES))
def test_a_row_batch_would_quarantine_gets_a_400_naming_the_same_reason(
    server: ServeConfig, rows: pd.DataFrame, case: str
) -> None:
    records = _jsonable(rows.head(2)).to_dict(orient="records")
    records[1].update(CONTRACT_CASES[case])
    batch = contract_violations(pd.DataFrame(records), ContractParams(require_target=False))
    assert list(batch) and batch[next(iter(batch))] == [1], batch  # batch rejects row 1 only
    status, text = _post(server, json.dumps({"dataframe_records": records}))
    assert status == 400, text[:500]
    assert next(iter(batch)) in text, text[:500]
    # the same id sent twice in one request is refused as batch refuses it
    twice = [records[0], records[0]]
    status, text = _post(server, json.dumps({"dataframe_records": twice}))
    assert status == 400 and "duplicate_transaction_id" in text, text[:500]


def test_serve_command_and_environment_for_the_edge_model() -> None:
    config = ServeConfig(EDGE_MODEL_URI, port=5999, workers=2, max_rows=100)
    cmd = serve_command(config)
    assert cmd[-12:] == [
        "models",
        "serve",
        "-m",
        EDGE_MODEL_URI,
        "--env-manager",
        "local",
        "-h",
        "127.0.0.1",
        "-p",
        "5999",
        "-w",
        "2",
    ]
    env = serve_env(config, "sqlite:////tmp/x/mlflow.db", base={"PATH": "/usr/bin"})
    assert env["MLFLOW_TRACKING_URI"] == "sqlite:////tmp/x/mlflow.db"
    assert env["PATH"].split(":")[0] == str(Path(sys.executable).parent)  # uvicorn by name
    assert env[MAX_ROWS_ENV] == "100"
    assert env["UVICORN_ACCESS_LOG"] == "false"


def test_serving_a_model_that_is_not_registered_is_one_clear_error(champion: Champion) -> None:
    proc = subprocess.run(
        [INFERLOOP, "serve", "--model", EDGE_MODEL_URI, "--port", str(free_port())],
        env=champion.env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "fraud-detector-edge@champion does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_request_asking_for_reasons_gets_them_for_each_alert(
    server: ServeConfig, local_model: FraudModel, incoming: pd.DataFrame
) -> None:
    """MLflow's ``params`` reach ``predict``: alerts carry three reasons, largest first.

    The server keeps a live feature state (earlier tests' requests are in its history), so
    its contributions are compared with the local model's on their shape, not their values;
    ``tests/model`` compares values on one model.
    """
    pool = incoming[list(s.SCORING_COLUMNS)].head(3000).reset_index(drop=True)
    top = local_model.score_frame(pool)[s.SCORE].nlargest(4).index
    picked = pool.loc[sorted({*top, 0, 1, 2})].reset_index(drop=True)
    records = _jsonable(picked).to_dict(orient="records")
    body = json.dumps({"dataframe_records": records, "params": {"explain": True}})
    served = _predictions(server, body)
    assert served[s.DECISION].sum() >= 1  # the top scores alert
    alerts = served[s.DECISION] == 1
    for column in REASON_COLUMNS:
        assert served.loc[alerts, column].notna().all(), column
        assert served.loc[~alerts, column].isna().all(), column
    names = served.loc[alerts, ["reason_1", "reason_2", "reason_3"]].to_numpy()
    assert set(names.ravel()) <= set(local_model.feature_names)
    values = served.loc[alerts, [f"reason_{i}_contribution" for i in (1, 2, 3)]].astype(float)
    assert (np.diff(values.to_numpy(), axis=1) <= 0).all()
    # without the param the response is unchanged
    plain = _predictions(
        server, _records_body(picked.assign(**{s.TRANSACTION_ID: -1 - picked.index}))
    )
    assert list(plain.columns) == [s.TRANSACTION_ID, s.SCORE, s.DECISION]
    # the fast method for the payment path: reasons for each alert, from the model's features
    fresh = _jsonable(picked.assign(**{s.TRANSACTION_ID: -100 - picked.index}))
    body = {"dataframe_records": fresh.to_dict(orient="records")}
    fast = _predictions(
        server, json.dumps({**body, "params": {"explain": True, "explain_method": "path"}})
    )
    fast_alerts = fast[s.DECISION] == 1
    assert fast.loc[fast_alerts, "reason_1"].notna().all() and fast_alerts.any()
    assert set(fast.loc[fast_alerts, "reason_1"]) <= set(local_model.feature_names)
    status, text = _post(
        server, json.dumps({**body, "params": {"explain": True, "explain_method": "saabas"}})
    )
    assert status == 400 and "params.explain_method must be one of ['treeshap', 'path']" in text
