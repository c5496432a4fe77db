"""The real ``dvc repro`` of the lifecycle on tiny params, in a temporary copy of the repo."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from pipeline_support import env as _env
from pipeline_support import fresh_repo as _fresh_repo
from pipeline_support import run as _run

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh git + DVC repo holding the project's pipeline, run once with tiny params."""
    repo = _fresh_repo(tmp_path_factory.mktemp("pipeline"))
    _run([str(Path(sys.executable).parent / "dvc"), "repro", "dvc.yaml"], repo)
    return repo


def test_data_stages_produce_reconciled_outputs(repo: Path) -> None:
    summary = json.loads((repo / "reports/metrics/validate.json").read_text())
    assert summary["rows_in"] == summary["rows_valid"] + summary["rows_quarantined"]
    raw = pd.read_parquet(repo / "data/raw/transactions.parquet")
    assert summary["rows_in"] == len(raw)
    split = json.loads((repo / "reports/metrics/split.json").read_text())
    assert split["train"]["rows"] > 0 and split["test"]["rows"] > 0
    for nb in ("01_simulate", "02_validate", "03_featurize", "04_split"):
        assert (repo / "reports/notebooks" / f"{nb}.ipynb").is_file(), nb
    assert (repo / "reports/data_summary.html").stat().st_size > 10_000


def test_second_repro_does_nothing_quickly(repo: Path) -> None:
    dvc = str(Path(sys.executable).parent / "dvc")
    start = time.perf_counter()
    proc = _run([dvc, "repro", "dvc.yaml"], repo)
    elapsed = time.perf_counter() - start
    assert "Running stage" not in proc.stdout
    print(f"no-op dvc repro: {elapsed:.2f} s")  # measured, not asserted: shared machines are noisy


DETERMINISTIC_STAGES = ("simulate", "validate", "featurize", "split", "train")
LINEAGE_OF_V1 = """
import json, mlflow
from inferloop.core.tracking import configure_mlflow
configure_mlflow()
tags = mlflow.MlflowClient().get_model_version("fraud-detector", "1").tags
print(json.dumps({k: tags[k] for k in ("data_dvc_md5", "params_hash")}))
"""


def _lock(repo: Path) -> dict[str, Any]:
    return yaml.safe_load((repo / "dvc.lock").read_text())["stages"]


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in d.items():
        out |= _flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {prefix + key: value}
    return out


def test_a_second_fresh_run_reproduces_hashes_metrics_and_lineage(
    repo: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Same code, params and seed in another copy: the same bytes, metrics and lineage tags."""
    other = _fresh_repo(tmp_path_factory.mktemp("pipeline-again"))
    _dvc(other, "repro", "register")  # the optimize stage measures time: nothing to compare
    first, second = _lock(repo), _lock(other)
    for stage in DETERMINISTIC_STAGES:
        assert first[stage]["outs"] == second[stage]["outs"], stage
        assert first[stage]["deps"] == second[stage]["deps"], stage
    for stage in ("evaluate", "register"):  # their outputs hold no ids or timings either
        assert first[stage]["outs"] == second[stage]["outs"], stage
    for name in ("train", "evaluate"):
        a, b = (
            _flat(json.loads((r / f"reports/metrics/{name}.json").read_text()))
            for r in (repo, other)
        )
        assert a.keys() == b.keys(), name
        for key, value in a.items():
            if isinstance(value, float):
                assert value == pytest.approx(b[key], rel=0, abs=1e-12, nan_ok=True), (name, key)
            else:
                assert value == b[key], (name, key)
    assert _python(repo, LINEAGE_OF_V1) == _python(other, LINEAGE_OF_V1)


# one module of the import closure of each stage (tests/unit/test_dvc_deps.py checks all of it)
STAGE_MODULES = {
    "simulate": "src/inferloop/data/simulate.py",
    "validate": "src/inferloop/data/contract.py",
    "featurize": "src/inferloop/data/features.py",
    "split": "src/inferloop/data/split.py",
    "train": "src/inferloop/training/candidates.py",
    "evaluate": "src/inferloop/evaluation/metrics.py",
    "register": "src/inferloop/core/registry.py",
    "optimize": "src/inferloop/edge/builders/compile.py",
}


def test_a_code_change_marks_the_stage_that_runs_it_as_changed(repo: Path) -> None:
    dvc = str(Path(sys.executable).parent / "dvc")
    assert "changed" not in _run([dvc, "status", "dvc.yaml"], repo).stdout
    for stage, module in STAGE_MODULES.items():
        path = repo / module
        original = path.read_bytes()
        try:
            path.write_bytes(original + b"\n# an edit\n")
            status = json.loads(_run([dvc, "status", "--json", stage], repo).stdout)
        finally:
            path.write_bytes(original)
        assert any(name.endswith(f":{stage}") or name == stage for name in status), (stage, status)
    assert "changed" not in _run([dvc, "status", "dvc.yaml"], repo).stdout


def test_a_failing_stage_exits_non_zero_and_keeps_the_executed_notebook(
    repo: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(repo, broken, ignore=shutil.ignore_patterns("data", ".dvc"))
    params = yaml.safe_load((broken / "params.yaml").read_text())
    params["split"]["train_days"] = 400  # more days than the data covers
    (broken / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    notebook = broken / "reports/notebooks/04_split.ipynb"
    notebook.unlink()
    env = _env(broken)
    cmd = [
        str(Path(sys.executable).parent / "papermill"),
        "notebooks/04_split.ipynb",
        str(notebook),
        "-k",
        "python3",
        "-p",
        "params_path",
        "params.yaml",
        "-p",
        "processed_path",
        str(repo / "data/processed/features.parquet"),
        "-p",
        "split_dir",
        str(tmp_path / "split"),
    ]
    proc = subprocess.run(cmd, cwd=broken, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0
    assert "the split needs" in proc.stderr + proc.stdout
    assert notebook.is_file() and "the split needs" in notebook.read_text()


def _dvc(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return _run([str(Path(sys.executable).parent / "dvc"), *args], repo)


def _python(repo: Path, code: str) -> str:
    return _run([sys.executable, "-c", code], repo).stdout


def test_champion_is_registered_and_scores_raw_rows_in_a_fresh_process(repo: Path) -> None:
    register = json.loads((repo / "reports/register.json").read_text())
    assert register["version"] == "1" and register["promoted"] is True
    assert register["champion"] == "1"
    out = _python(
        repo,
        """
import mlflow, pandas as pd
from inferloop.core.tracking import configure_mlflow
configure_mlflow()
rows = pd.read_parquet("data/processed/split/test.parquet").head(25)
model = mlflow.pyfunc.load_model("models:/fraud-detector@champion")
raw = rows[["transaction_id", "timestamp", "customer_id", "terminal_id", "amount", "channel", "merchant_category"]]
out = model.predict(raw)
assert list(out.columns) == ["transaction_id", "score", "decision"]
assert out["score"].between(0, 1).all() and len(out) == 25
print("scored", len(out))
""",
    )
    assert "scored 25" in out


def test_mlflow_holds_parent_and_child_runs_with_plots_card_and_lineage(repo: Path) -> None:
    out = _python(
        repo,
        """
import json, mlflow
from inferloop.core.tracking import configure_mlflow
configure_mlflow()
cands = json.load(open("reports/train/candidates.json"))
parent = mlflow.get_run(cands["parent_run_id"])
children = mlflow.search_runs(filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'", search_all_experiments=True)
assert set(children["tags.candidate"].dropna()) == {"lightgbm", "logistic", "mlp"}, children
assert "optimize" in set(children["tags.mlflow.runName"]), children
best = cands["candidates"][cands["best"]]["run_id"]
arts = {a.path for a in mlflow.MlflowClient().list_artifacts(best)} | {a.path for a in mlflow.MlflowClient().list_artifacts(best, "plots")}
assert "model_card.md" in arts and "plots/validation_pr_roc.png" in arts and "plots/test_fairness_by_group.png" in arts, arts
tags = mlflow.get_run(best).data.tags
assert tags["data_dvc_md5"] and tags["git_commit"] and tags["params_hash"]
v = mlflow.MlflowClient().get_model_version("fraud-detector", "1")
assert v.tags["gates_passed"] == "true" and "data_dvc_md5" in v.tags and "validation_average_precision" in v.tags
# the registry page shows the model card; monitoring reads the calibration from the tag
assert v.description.startswith("# Model card") and "## Gates" in v.description, v.description[:300]
from inferloop.evaluation.calibration import ScoreCalibration
calibration = ScoreCalibration.from_json(v.tags["calibration"])
assert calibration.kind == cands["candidates"][cands["best"]]["calibration_effect"]["kind"]
assert calibration.kind in v.description
model = mlflow.pyfunc.load_model("models:/fraud-detector/1").unwrap_python_model()
import numpy as np
grid = np.linspace(0, 1, 101)
assert np.allclose(model.calibration.apply(grid), calibration.apply(grid), atol=1e-5)
edge = mlflow.MlflowClient().get_model_version("fraud-detector-edge", "1")
assert "![Latency/accuracy frontier](get-artifact?path=plots%2Flatency_accuracy_frontier_small.png" in edge.description
print("ok")
""",
    )
    assert "ok" in out


def test_dvc_metrics_and_plots_show_model_quality(repo: Path) -> None:
    shown = _dvc(repo, "metrics", "show", "--json").stdout
    for key in (
        "average_precision",
        "roc_auc",
        "card_precision_at_k",
        "equalized_odds_difference",
        "rows_quarantined",
        "p50_speedup",  # the edge measurements: a top-level metrics file, not a stage output
    ):
        assert key in shown, key
    _dvc(repo, "plots", "show", "-o", "plots_html")
    assert (repo / "plots_html" / "index.html").is_file()


def test_a_dvc_experiment_with_a_new_seed_registers_version_2_against_version_1(
    repo: Path,
) -> None:
    """``dvc exp run -S simulate.seed=12``: the whole pipeline again, seen by DVC and MLflow.

    One rerun serves both checks (an experiment shows in ``dvc exp show`` and in MLflow; a
    changed seed registers version 2, compared with version 1 on the same test rows): each
    full rerun costs minutes of the suite.
    """
    _run(["git", "add", "-A"], repo)
    _run(
        ["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "-m", "baseline"], repo
    )
    # the same run trains the opt-in post-processed candidate through every stage
    candidates = "train.candidates=[lightgbm,logistic,mlp,lightgbm_post]"
    _dvc(
        repo, "exp", "run", "dvc.yaml", "-S", "simulate.seed=12", "-S", candidates, "-n", "new-seed"
    )
    assert "new-seed" in _dvc(repo, "exp", "show", "--json").stdout
    assert yaml.safe_load((repo / "params.yaml").read_text())["simulate"]["seed"] == 12
    register = json.loads((repo / "reports/register.json").read_text())
    decision = json.loads((repo / "reports/evaluate/decision.json").read_text())
    assert register["version"] == "2"
    assert decision["champion_version"] == "1"  # compared with v1 on the same test rows
    assert "ap_vs_champion" in decision["gates"]
    evaluation = json.loads((repo / "reports/metrics/evaluate.json").read_text())
    assert "champion" in evaluation and "lightgbm_post" in evaluation
    trained = json.loads((repo / "reports/train/candidates.json").read_text())
    card = (repo / "reports/evaluate/model_card.md").read_text()
    uses_attribute = "uses `age_band` at decision time" in card
    assert uses_attribute == (trained["best"] == "lightgbm_post"), card[:2000]
    expected_champion = "2" if decision["passed"] else "1"
    assert register["champion"] == expected_champion
    out = _python(
        repo,
        f"""
import mlflow
from inferloop.core.tracking import configure_mlflow
configure_mlflow()
runs = mlflow.search_runs(experiment_names=["fraud-detector"], filter_string="tags.registered_version = '2'")
print("runs", len(runs))
post = mlflow.models.get_model_info({trained["candidates"]["lightgbm_post"]["model_uri"]!r})
print("post inputs", sorted(post.metadata["input_columns"]))
""",
    )
    assert "runs 1" in out, out
    assert "'age_band'" in out.split("post inputs", 1)[1], out


def test_promote_refuses_failed_gates_and_rollback_restores(repo: Path) -> None:
    inferloop = str(Path(sys.executable).parent / "inferloop")
    env = _env(repo)
    # version 2 may or may not have passed; force it, then roll back to whatever was before
    before = json.loads((repo / "reports/register.json").read_text())["champion"]
    subprocess.run(
        [inferloop, "promote", "--version", "2", "--force"],
        cwd=repo,
        env=env,
        check=True,
        timeout=120,
    )
    if before != "2":
        proc = subprocess.run(
            [inferloop, "rollback"], cwd=repo, env=env, capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 0 and f"-> v{before}" in proc.stdout, proc.stdout + proc.stderr
    missing = subprocess.run(
        [inferloop, "promote", "--version", "99"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode != 0 and "no version 99" in missing.stderr


def test_daily_monitoring_schedule_scores_and_monitors_incoming_files(
    repo: Path, hook: tuple[str, Any]
) -> None:
    """What the crontab / systemd timer / CI schedule run: pipelines/schedules/daily_monitoring.sh."""
    inferloop = str(Path(sys.executable).parent / "inferloop")
    _run(
        [
            inferloop,
            "simulate",
            "--start-day",
            "35",
            "--days",
            "3",
            "--out",
            "data/incoming/daily.parquet",
        ],
        repo,
    )
    script = repo / "pipelines/schedules/daily_monitoring.sh"
    url, handler = hook
    proc = subprocess.run(
        [str(script)],
        cwd=repo,
        env={**_env(repo), "WEBHOOK": url},
        capture_output=True,
        text=True,
        timeout=900,
    )
    received = handler.received
    assert proc.returncode in (0, 1), proc.stderr[-3000:]  # 1 = a check breached (scheduler alerts)
    summaries = list((repo / "reports/monitoring").glob("daily-*/summary.json"))
    assert summaries, proc.stdout + proc.stderr
    summary = json.loads(summaries[0].read_text())
    assert summary["model"]["version"] and "drift_share" in summary["checks"]
    assert (summaries[0].parent / "report.html").stat().st_size > 10_000
    # one alert path: a breach is one POST with the documented body; an ok batch sends none
    assert len(received) == (0 if summary["status"] == "ok" else 1), received
    for body in received:
        assert body["batch"] == summary["batch"] and body["status"] == summary["status"]


def test_production_simulation_runs_the_whole_loop(repo: Path) -> None:
    """Weeks of traffic: score, monitor, retrain through DVC, promote through the gates."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["retrain"]["window_days"] = 35
    params["monitor"].update(
        {
            "min_labelled_rows": 200,
            "min_labelled_frauds": 3,
            "evidently_sample_size": 3000,
            "max_ap_drop": -1.0,  # every labelled window "breaches": forces the retrain path
        }
    )
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    inferloop = str(Path(sys.executable).parent / "inferloop")
    proc = _run(
        [
            inferloop,
            "production",
            "--weeks",
            "3",
            "--scenario",
            "new_fraud_pattern",
            "--drift-week",
            "1",
        ],
        repo,
    )
    timeline = pd.read_csv(repo / "reports/production/timeline.csv")
    assert list(timeline["week"]) == [0, 1, 2]
    assert timeline["retrained"].fillna("").str.startswith("v").any(), proc.stdout
    assert (repo / "reports/production/timeline.png").stat().st_size > 10_000
    for week in range(3):
        summary = json.loads(
            (repo / f"reports/production/monitoring/week_{week:02d}/summary.json").read_text()
        )
        assert summary["model"]["version"]
        assert (repo / f"reports/production/monitoring/week_{week:02d}/report.html").is_file()
        predictions = pd.read_parquet(repo / f"data/production/predictions/week_{week:02d}.parquet")
        assert {"model_name", "model_version", "score", "decision"} <= set(predictions.columns)
        # estimated before labels: the week's own rows, none labelled yet
        assert summary["estimate"]["n"] == len(predictions), summary["estimate"]
        assert summary["estimate"]["alerts"] == int(predictions["decision"].sum())
        assert summary["rows"]["quarantined"] >= 0
    estimated = ["est_precision", "est_recall", "est_ap", "precision", "recall"]
    assert set(estimated) <= set(timeline.columns)
    assert timeline[["est_recall", "est_ap"]].notna().all().all(), timeline[estimated]
    # no week is scored by a champion that has seen it
    trained = pd.to_datetime(timeline["champion_trained_through"])
    assert (trained < pd.to_datetime(timeline["start"])).all(), timeline
    register = json.loads((repo / "reports/retrain/register.json").read_text())
    assert register["model_name"] == "fraud-detector-production"
    out = _python(
        repo,
        f"""
import mlflow
from inferloop.core.tracking import configure_mlflow
configure_mlflow()
client = mlflow.MlflowClient()
v = client.get_model_version("fraud-detector-production", "{register["version"]}")
assert v.tags.get("trigger_report", "").startswith("reports/production/monitoring/"), v.tags
# the simulation's world is its own: it started from a copy of the serving champion and
# retrained into its own name, so the main champion (what a rerun starts from) is untouched
first = client.get_model_version("fraud-detector-production", "1")
main = client.get_model_version_by_alias("fraud-detector", "champion")
assert first.tags["copied_from"] == f"fraud-detector/{{main.version}}", first.tags
assert main.tags["trained_through"] < "{timeline["start"].iloc[0]}", main.tags
leaked = [m.version for m in client.search_model_versions("name='fraud-detector'")
          if m.tags.get("trigger_report", "").startswith("reports/production")]
assert leaked == [], leaked
print("ok")
""",
    )
    assert "ok" in out


def test_edge_model_serves_over_http_and_scores_in_batch_alike(repo: Path) -> None:
    """``fraud-detector-edge`` through ``inferloop serve`` (MLflow's server) and ``inferloop
    score``: the same raw-transaction input, the same scores by both paths."""
    import http.client

    from inferloop.scoring.serving import ServeConfig, free_port, stop_server, wait_until_ready

    edge_uri = "models:/fraud-detector-edge/1"
    chosen = json.loads((repo / "reports/metrics/optimize.json").read_text())["chosen"]
    assert chosen.endswith(("_lleaves", "_llvm")), chosen  # the tiny params allow only these
    rows = pd.read_parquet(repo / "data/processed/split/test.parquet").head(40)
    raw = rows[
        [
            "transaction_id",
            "timestamp",
            "customer_id",
            "terminal_id",
            "amount",
            "channel",
            "merchant_category",
        ]
    ]
    (repo / "edge_in").mkdir()
    raw.to_parquet(repo / "edge_in/rows.parquet")
    inferloop = str(Path(sys.executable).parent / "inferloop")
    _run(
        [inferloop, "score", "--model", edge_uri, "--input", "edge_in", "--output", "edge_out"],
        repo,
    )
    batch = pd.read_parquet(repo / "edge_out/fraud-detector-edge-v1")
    batch = batch.sort_values("transaction_id", ignore_index=True)

    config = ServeConfig(edge_uri, port=free_port(), workers=1)
    log_path = repo / "edge_server.log"
    cmd = [inferloop, "serve", "--model", edge_uri, "--port", str(config.port), "--workers", "1"]
    text = raw.assign(timestamp=raw["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%S"))
    body = json.dumps({"dataframe_split": text.to_dict(orient="split", index=False)})
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd,
            cwd=repo,
            env=_env(repo),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_until_ready(config, proc, log_path, timeout_s=240)
            conn = http.client.HTTPConnection(config.host, config.port, timeout=60)
            conn.request("POST", "/invocations", body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            payload = json.loads(response.read())
            assert response.status == 200, payload
            conn.request(
                "POST",
                "/invocations",
                '{"dataframe_split": {"columns": ["amount"], "data": [[1]]}}',
                {"Content-Type": "application/json"},
            )
            bad = conn.getresponse()
            assert bad.status == 400 and "missing required column" in bad.read().decode()
        finally:
            stop_server(proc)
    served = pd.DataFrame(payload["predictions"]).sort_values("transaction_id", ignore_index=True)
    assert served["transaction_id"].tolist() == batch["transaction_id"].tolist()
    assert (served["score"] - batch["score"]).abs().max() <= 1e-9
    assert served["decision"].tolist() == batch["decision"].astype(int).tolist()


# notebooks whose cells draw: each must show at least one image
DRAWING_NOTEBOOKS = (
    "01_simulate",
    "03_featurize",
    "04_split",
    "05_train",
    "06_evaluate",
    "09_optimize",
)


def _figure_outputs(notebook: Path) -> tuple[int, list[str]]:
    """(images shown, figure reprs shown as text instead of an image) of an executed notebook."""
    images, text_only = 0, []
    for cell in json.loads(notebook.read_text())["cells"]:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            text = "".join(data.get("text/plain", ""))
            if "image/png" in data:
                images += 1
            elif text.startswith("<Figure size"):
                text_only.append(text)
    return images, text_only


def test_every_executed_notebook_renders_its_figures_as_images(repo: Path) -> None:
    executed = sorted((repo / "reports/notebooks").glob("*.ipynb"))
    assert {p.stem for p in executed} >= set(DRAWING_NOTEBOOKS), executed
    for notebook in executed:
        images, text_only = _figure_outputs(notebook)
        assert not text_only, f"{notebook.name}: figures shown as text: {text_only}"
        if notebook.stem in DRAWING_NOTEBOOKS:
            assert images >= 1, f"{notebook.name} draws but shows no image"


# --------------------------------------------------------------------------- tracking servers

SERVED_CHECK = """
import mlflow, pandas as pd
from mlflow import MlflowClient
from inferloop.core.tracking import configure_mlflow
uri = configure_mlflow()
assert uri.startswith("http://"), uri
version = MlflowClient().get_model_version_by_alias("fraud-detector", "champion")
model = mlflow.pyfunc.load_model("models:/fraud-detector@champion")
rows = pd.read_parquet("data/processed/split/test.parquet").head(50)
scores = model.predict(rows)["score"]
assert len(scores) == 50 and scores.between(0, 1).all()
print("served", version.version, version.source)
"""


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _tracking_server(backend_uri: str, artifacts: Path, log: Path) -> Iterator[str]:
    """``mlflow server`` with proxied artifacts, started the way a user starts it."""
    import signal
    import urllib.request

    port = _free_port()
    cmd = [
        str(Path(sys.executable).parent / "mlflow"), "server", "--backend-store-uri", backend_uri,
        "--artifacts-destination", str(artifacts), "--serve-artifacts",
        "-h", "127.0.0.1", "-p", str(port), "--workers", "1",
    ]  # fmt: skip
    with log.open("w") as out:
        env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def _run_tracked_stages(repo: Path, copy: Path, url: str) -> str:
    """The stages that log and register (train, register) against ``url``, then serve from it.

    The data stages make no MLflow calls and evaluate's decision comes with the copy, so they
    are not run again: the suite's time goes to what the server changes.
    """
    shutil.copytree(repo, copy, ignore=shutil.ignore_patterns("mlruns", "plots_html"))
    env = {**_env(copy), "MLFLOW_TRACKING_URI": url}
    dvc = str(Path(sys.executable).parent / "dvc")
    for stage in ("train", "register"):
        proc = subprocess.run([dvc, "repro", "-f", "-s", stage], cwd=copy, env=env,
                              capture_output=True, text=True, timeout=900)  # fmt: skip
        assert proc.returncode == 0, f"{stage}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    proc = subprocess.run([sys.executable, "-c", SERVED_CHECK], cwd=copy, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert not (copy / "mlruns").exists()  # nothing went to the embedded store
    return proc.stdout


def _postgres_available() -> bool:
    import importlib.util
    import pwd

    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return False
    return bool(shutil.which("initdb") and shutil.which("pg_ctl")) and (
        importlib.util.find_spec("psycopg2") is not None
    )


@contextlib.contextmanager
def _postgres() -> Iterator[str]:
    """A throw-away PostgreSQL cluster on loopback; yields a ``postgresql+psycopg2`` URI."""
    import pwd
    import tempfile

    user = pwd.getpwnam("postgres")
    # not under pytest's tmp_path: its parents are private to root, and the server runs as
    # the postgres user (initdb refuses root)
    folder = Path(tempfile.mkdtemp(prefix="inferloop-pg-"))
    os.chown(folder, user.pw_uid, user.pw_gid)
    data, port = folder / "data", _free_port()
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run([*as_postgres, "initdb", "-D", str(data), "-A", "trust", "-U", "postgres"],
                   check=True, capture_output=True, timeout=120)  # fmt: skip
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1"
    subprocess.run([*as_postgres, "pg_ctl", "-D", str(data), "-o", options, "-w", "-l",
                    str(folder / "pg.log"), "start"], check=True, capture_output=True, timeout=120)  # fmt: skip
    try:
        subprocess.run([*as_postgres, "createdb", "-h", "127.0.0.1", "-p", str(port), "mlflow"],
                       check=True, capture_output=True, timeout=60)  # fmt: skip
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/mlflow"
    finally:
        subprocess.run([*as_postgres, "pg_ctl", "-D", str(data), "-m", "fast", "stop"],
                       capture_output=True, timeout=60)  # fmt: skip
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.skipif(not _postgres_available(), reason="needs PostgreSQL (initdb) and psycopg2")
def test_pipeline_runs_against_an_mlflow_server_on_postgresql(repo: Path, tmp_path: Path) -> None:
    artifacts = tmp_path / "artifacts"
    with (
        _postgres() as backend,
        _tracking_server(backend, artifacts, tmp_path / "server.log") as url,
    ):
        out = _run_tracked_stages(repo, tmp_path / "copy", url)
    assert "served 1 " in out, out
    assert any(artifacts.rglob("MLmodel"))
