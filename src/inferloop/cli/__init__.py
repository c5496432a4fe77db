"""The ``inferloop`` command line: everything a user does outside ``dvc repro``.

Commands import their modules lazily so that ``inferloop --help`` stays fast.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from inferloop.core.config import ParamsError

__all__ = [
    "MODEL_NAME",
    "PARAMS",
    "STATE",
    "main",
    "monitor",
    "production",
    "promote",
    "registered_name",
    "retrain",
    "rollback",
    "score",
    "simulate",
    "stream",
    "ui",
    "where",
]


class _Group(click.Group):
    """Turns known, user-caused errors into one clear line and exit code 2 (no traceback)."""

    def invoke(self, ctx: click.Context) -> object:
        from inferloop.data.contract import ContractError
        from inferloop.data.ingest import IngestError

        try:
            return super().invoke(ctx)
        except (ParamsError, ContractError, IngestError, FileNotFoundError) as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            ctx.exit(2)


@click.group(cls=_Group)
@click.version_option(package_name="inferloop")
def main() -> None:
    """inferloop: train, validate, optimize, register, score, monitor and retrain fraud models."""


PARAMS = click.option(
    "--params", "params_path", default="params.yaml", show_default=True, type=click.Path()
)
STATE = click.option(
    "--state",
    "state_location",
    default=None,
    help="Feature state: a SQLite path, redis://host:port/db, or none (stateless)  "
    "[default: $INFERLOOP_FEATURE_STATE, else state.location]",
)


@main.command()
@PARAMS
@click.option(
    "--out", default="data/raw/transactions.parquet", show_default=True, type=click.Path()
)
@click.option("--seed", type=int, default=None, help="Override simulate.seed.")
@click.option("--days", type=int, default=None, help="Override simulate.n_days.")
@click.option(
    "--start-day", type=int, default=0, show_default=True, help="First day of the window."
)
def simulate(
    params_path: str, out: str, seed: int | None, days: int | None, start_day: int
) -> None:
    """Simulate card transactions (section `simulate` of params.yaml) to a Parquet file."""
    from dataclasses import replace

    from inferloop.core.config import load_section
    from inferloop.core.storage import write_parquet
    from inferloop.data.simulate import SimulateParams, simulate_transactions

    params = load_section(SimulateParams, "simulate", params_path)
    params = replace(params, seed=params.seed if seed is None else seed)
    df = simulate_transactions(
        params, start_day=start_day, n_days=days or params.n_days, progress=True
    )
    write_parquet(df, out)
    click.echo(f"{len(df):,} transactions ({df['is_fraud'].mean():.2%} fraud) -> {out}")


@main.command()
@PARAMS
@click.option("--preset", required=True, help="A preset under configs/ (e.g. handbook).")
def init(params_path: str, preset: str) -> None:
    """Write a dataset preset (its `dataset` section and the params it needs) into params.yaml."""
    from inferloop.core.config import ParamsError
    from inferloop.core.presets import apply_preset, preset_path

    root = Path(params_path).resolve().parent
    try:
        written = apply_preset(params_path, preset_path(preset, root))
    except ParamsError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"preset {preset}: wrote {', '.join(written)} into {params_path}")


@main.command()
@click.option("--port", default=None, type=int, help="[default: 5000; 8000 with --monitoring]")
@click.option("--host", default="127.0.0.1", show_default=True, help="Keep on loopback: no auth.")
@click.option(
    "--monitoring", is_flag=True, help="Start the Evidently UI on reports/evidently instead."
)
def ui(port: int | None, host: str, monitoring: bool) -> None:
    """Start the MLflow UI against the project's store (--monitoring: the Evidently UI)."""
    from inferloop.core.tracking import artifact_root, repo_root, tracking_uri

    root = repo_root()
    if monitoring:
        _evidently_ui(root / "reports" / "evidently", host, port or 8000)
    port = port or 5000
    uri = tracking_uri(root)
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        uri,
        "--host",
        host,
        "--port",
        str(port),
    ]
    if uri.startswith("sqlite:"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        cmd += ["--default-artifact-root", str(artifact_root(root))]
    click.echo(f"MLflow UI on http://{host}:{port}  (store: {uri})")
    env = {
        **os.environ,
        "MLFLOW_DISABLE_TELEMETRY": os.environ.get("MLFLOW_DISABLE_TELEMETRY", "true"),
    }
    raise SystemExit(subprocess.call(cmd, env=env))


def _evidently_ui(workspace: Path, host: str, port: int) -> None:
    """Run ``evidently ui`` on the monitoring workspace until it stops; exit with its code."""
    workspace.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "evidently.cli", "ui", "--workspace", str(workspace)]
    cmd += ["--host", host, "--port", str(port)]
    click.echo(f"Evidently UI on http://{host}:{port}  (workspace: {workspace})")
    env = {**os.environ, "DO_NOT_TRACK": os.environ.get("DO_NOT_TRACK", "1")}
    raise SystemExit(subprocess.call(cmd, env=env))


MODEL_NAME = click.option(
    "--name", default=None, help="Registered model name (default: registry.model_name)."
)


def registered_name(name: str | None, params_path: str = "params.yaml") -> str:
    """``name``, or the registered model the params' ``registry.model_name`` names."""
    if name:
        return name
    from inferloop.core.config import load_section
    from inferloop.core.registry import RegistryParams

    return load_section(RegistryParams, "registry", params_path).model_name


@main.command()
@MODEL_NAME
@click.option("--version", "version", required=True, help="Version to make champion.")
@click.option("--force", is_flag=True, help="Promote even if the version's gates failed.")
def promote(name: str | None, version: str, force: bool) -> None:
    """Point NAME@champion at VERSION (refused if its gates failed, unless --force)."""
    from inferloop.core.registry import RegistryError
    from inferloop.core.registry import promote as promote_version
    from inferloop.core.tracking import configure_mlflow

    configure_mlflow()
    name = registered_name(name)
    try:
        move = promote_version(name, version, force=force)
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"promoted: {move.describe()}")
    _seed_empty_state(f"models:/{name}/{version}")


def _seed_empty_state(model_uri: str) -> None:
    """Seed the configured feature state from ``model_uri`` if it holds no events yet."""
    import mlflow

    from inferloop.scoring.live_state import seed_state

    store = _open_state(None, "params.yaml")
    if store is None:
        return
    with store:
        if store.is_empty():
            model = mlflow.pyfunc.load_model(model_uri).unwrap_python_model()
            written = seed_state(store, model)
            click.echo(f"seeded the feature state {store.location} with {written:,} events")


@main.command()
@MODEL_NAME
def rollback(name: str | None) -> None:
    """Move NAME@champion back to the version it replaced."""
    from inferloop.core.registry import RegistryError
    from inferloop.core.registry import rollback as rollback_champion
    from inferloop.core.tracking import configure_mlflow

    configure_mlflow()
    try:
        move = rollback_champion(registered_name(name))
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"rolled back: {move.describe()}")


@main.command()
@PARAMS
@click.option("--model", "model_uri", default=None, help="Model URI  [default: score.model_uri]")
@click.option(
    "--input", "input_spec", required=True, help="A CSV/Parquet file, a folder or a glob."
)
@click.option("--output", "output_dir", required=True, type=click.Path(file_okay=False))
@click.option(
    "--quarantine",
    "quarantine_dir",
    default=None,
    type=click.Path(file_okay=False),
    help="Rejected rows  [default: OUTPUT/_quarantine]",
)
@click.option(
    "--engine",
    type=click.Choice(["local", "spark"]),
    default="local",
    show_default=True,
    help="spark: mlflow.pyfunc.spark_udf on score.spark_master; rewrites the version's "
    "partition as a whole (no chunks: --chunk-rows, --max-chunks, --restart do not apply).",
)
@click.option(
    "--chunk-rows",
    type=click.IntRange(min=1),
    default=None,
    help="Rows per chunk  [default: score.chunk_rows]",
)
@click.option(
    "--max-chunks",
    type=click.IntRange(min=1),
    default=None,
    help="Stop after N chunks (run again to resume).",
)
@click.option("--restart", is_flag=True, help="Delete this model version's previous outputs first.")
@click.option("--fail-on-quarantine", is_flag=True, help="Exit 1 if any row was quarantined.")
@click.option(
    "--summary",
    "summary_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="Also write the totals to this JSON file.",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress bar  [default: if stderr is a terminal]",
)
@click.option(
    "--chunk-delay",
    type=float,
    default=0.0,
    hidden=True,
    help="Seconds to pause after each chunk (tests).",
)
@STATE
def score(
    params_path: str,
    model_uri: str | None,
    input_spec: str,
    output_dir: str,
    quarantine_dir: str | None,
    engine: str,
    chunk_rows: int | None,
    max_chunks: int | None,
    restart: bool,
    fail_on_quarantine: bool,
    summary_path: str | None,
    progress: bool | None,
    chunk_delay: float,
    state_location: str | None,
) -> None:
    """Score transaction files with the registered model: chunked, resumable, idempotent.

    Exit codes: 0 done; 1 rows were quarantined and --fail-on-quarantine is set;
    2 bad invocation or unusable input (nothing scored).
    """
    from inferloop.core.tracking import configure_mlflow
    from inferloop.scoring.batch import load_score_settings, score_files, write_summary

    settings, contract, ts_format = load_score_settings(params_path)
    configure_mlflow()
    uri = model_uri or settings.model_uri
    with _scoring_errors():
        if engine == "spark" and max_chunks is not None:
            raise click.UsageError("--max-chunks applies to the local engine only")
        if engine == "spark":
            from inferloop.scoring.spark import score_with_spark

            run = score_with_spark(
                input_spec,
                output_dir,
                model_uri=uri,
                contract=contract,
                quarantine_dir=quarantine_dir,
                timestamp_format=ts_format,
                master=settings.spark_master,
            )
        else:
            store = _open_state(state_location, params_path)
            run = score_files(
                input_spec,
                output_dir,
                model_uri=uri,
                contract=contract,
                chunk_rows=chunk_rows or settings.chunk_rows,
                quarantine_dir=quarantine_dir,
                timestamp_format=ts_format,
                max_chunks=max_chunks,
                restart=restart,
                progress=sys.stderr.isatty() if progress is None else progress,
                chunk_delay=chunk_delay,
                state=store,
            )
    click.echo(run.describe())
    if summary_path:
        write_summary(run, summary_path)
    if fail_on_quarantine and run.totals["rows_quarantined"]:
        raise SystemExit(1)


def _open_state(explicit: str | None, params_path: str) -> Any:
    """The configured feature state (None when stateless)."""
    from inferloop.core.tracking import repo_root
    from inferloop.scoring.live_state import load_state_params, open_configured_state

    root = repo_root()
    params_file = Path(params_path) if Path(params_path).is_absolute() else root / params_path
    return open_configured_state(explicit, load_state_params(params_file), root)


@contextlib.contextmanager
def _scoring_errors() -> Iterator[None]:
    """Unusable input, an unknown model or an unreachable registry: one line and exit 2."""
    from mlflow.exceptions import MlflowException

    from inferloop.core.registry import RegistryError
    from inferloop.scoring.inputs import ScoringInputError

    try:
        yield
    except (ScoringInputError, RegistryError, MlflowException) as exc:
        click.secho(f"error: {exc}", fg="red", err=True)
        raise SystemExit(2) from exc


@main.command()
@PARAMS
@click.option("--model", "model_uri", default=None, help="Model URI  [default: score.model_uri]")
@click.option(
    "--watch",
    "watch_dir",
    default=None,
    type=click.Path(file_okay=False),
    help="Score *.jsonl files landing in this folder instead of stdin.",
)
@click.option("--once", is_flag=True, help="With --watch: stop when no file is left.")
@click.option(
    "--output",
    "output_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="Append scored lines here  [default: stdout]",
)
@click.option(
    "--quarantine",
    "quarantine_path",
    default="data/quarantine/stream.jsonl",
    show_default=True,
    type=click.Path(dir_okay=False),
)
@STATE
def stream(
    params_path: str,
    model_uri: str | None,
    watch_dir: str | None,
    once: bool,
    output_path: str | None,
    quarantine_path: str,
    state_location: str | None,
) -> None:
    """Score JSON lines from stdin (or files landing in --watch) in micro-batches.

    Stops on end of input or SIGTERM after flushing the current batch; the final counts go
    to stderr as one JSON line. Exit codes: 0 done; 2 bad invocation or unknown model.
    """
    import json
    import threading

    from inferloop.core.tracking import configure_mlflow
    from inferloop.scoring.batch import load_score_settings
    from inferloop.scoring.stream import install_stop_handlers, load_stream_params, stream_records

    settings, contract, ts_format = load_score_settings(params_path)
    params = load_stream_params(params_path)
    configure_mlflow()
    stop = threading.Event()
    restore = install_stop_handlers(stop)
    ready = {"event": "stream_ready", "max_batch_rows": params.max_batch_rows}
    try:
        with _scoring_errors():
            stats = stream_records(
                model_uri or settings.model_uri, params, contract, stop=stop, watch_dir=watch_dir,
                once=once, output_path=output_path, quarantine_path=quarantine_path,
                timestamp_format=ts_format, state=_open_state(state_location, params_path),
                on_ready=lambda m: click.echo(json.dumps({**ready, "model": m.label}), err=True),
            )  # fmt: skip
    finally:
        restore()
    click.echo(json.dumps(stats.as_dict()), err=True)


@main.command()
@PARAMS
@click.option(
    "--scored",
    "scored_path",
    default=None,
    type=click.Path(exists=True),
    help="Scored batch: CSV/Parquet file or folder.",
)
@click.option(
    "--reference",
    "reference_path",
    default=None,
    type=click.Path(exists=True),
    help="Reference window scored by the same model.",
)
@click.option(
    "--incoming",
    default=None,
    help="Instead of --scored/--reference: raw transaction files (glob) to score with the champion and monitor (the daily schedule).",
)
@click.option("--model-name", default=None, help="[default: the batch's model_name column]")
@click.option("--model-version", default=None, help="[default: the batch's model_version column]")
@click.option(
    "--out",
    "out_dir",
    default="reports/monitoring",
    show_default=True,
    type=click.Path(file_okay=False),
)
@click.option(
    "--workspace",
    default="reports/evidently",
    show_default=True,
    help="Evidently workspace; '' to skip.",
)
@click.option("--batch", "batch_name", default=None, help="Batch name  [default: batch-<as of>]")
@click.option(
    "--as-of", default=None, help="When labels are judged arrived  [default: last timestamp]"
)
@click.option(
    "--fail-on-breach",
    "--fail-on-drift",
    "fail_on_breach",
    is_flag=True,
    help="Exit 1 if a check breached.",
)
@click.option("--webhook", default=None, help="POST alerts here  [default: monitor.webhook_url]")
def monitor(
    params_path: str,
    scored_path: str | None,
    reference_path: str | None,
    incoming: str | None,
    model_name: str | None,
    model_version: str | None,
    out_dir: str,
    workspace: str,
    batch_name: str | None,
    as_of: str | None,
    fail_on_breach: bool,
    webhook: str | None,
) -> None:
    """Drift, performance and bias of a scored batch: OUT/<batch>/report.html + summary.json.

    Exit codes: 0 done; 1 a check breached and --fail-on-breach is set; 2 unusable input.
    """
    from dataclasses import replace

    from inferloop.core.tracking import configure_mlflow
    from inferloop.monitoring.params import load_monitor_params
    from inferloop.monitoring.stage import monitor_files

    if incoming is not None:
        _monitor_incoming(params_path, incoming, out_dir, batch_name, webhook, fail_on_breach)
        return
    if scored_path is None or reference_path is None:
        raise click.UsageError("give --scored and --reference, or --incoming")
    params = load_monitor_params(params_path)
    params = params if webhook is None else replace(params, webhook_url=webhook)
    configure_mlflow()
    try:
        result = monitor_files(
            scored_path, reference_path, params=params, out_dir=out_dir, workspace_dir=workspace or None,
            model_name=model_name, model_version=model_version, batch_name=batch_name, as_of=as_of,
        )  # fmt: skip
    except ValueError as exc:
        click.secho(f"error: {exc}", fg="red", err=True)
        raise SystemExit(2) from exc
    breached = ", ".join(result.breached) or "none"
    click.echo(f"{result.batch}: {result.status} (breached: {breached}) -> {result.report_path}")
    if fail_on_breach and result.breached:
        raise SystemExit(1)


@main.command()
@PARAMS
@click.option(
    "--raw",
    "raw_paths",
    multiple=True,
    type=click.Path(exists=True),
    help="Labelled transactions (Parquet); repeatable.  [default: data/validated + data/incoming/week_*]",
)
@click.option(
    "--as-of",
    default=None,
    help="Time the retraining happens (labels known before it)  [default: last transaction]",
)
@click.option("--reason", default="manual retrain", show_default=True)
@click.option(
    "--trigger-report",
    default="",
    help="Monitoring report that triggered this retrain (tagged on the run).",
)
def retrain(
    params_path: str,
    raw_paths: tuple[str, ...],
    as_of: str | None,
    reason: str,
    trigger_report: str,
) -> None:
    """Retrain on the newest labelled window through DVC (pipelines/retrain); promote only through the gates."""
    import pandas as pd

    from inferloop.core.config import load_section
    from inferloop.core.tracking import repo_root
    from inferloop.data.simulate import SimulateParams
    from inferloop.loop.retrain import RetrainParams, labelled_window, run_retrain

    root = repo_root()
    paths = [Path(p) for p in raw_paths] or [
        root / "data/validated/transactions.parquet",
        *sorted((root / "data/production/labelled").glob("*.parquet")),
    ]
    from inferloop.scoring.live_state import attach_labels, read_label_table

    delivered = read_label_table(root / "data/labels")
    # rows that came without labels get the ones the label feed delivered (`inferloop label`)
    frames = [
        f if "is_fraud" in f else attach_labels(f, delivered)
        for f in (pd.read_parquet(p) for p in paths)
    ]
    when = (
        pd.Timestamp(as_of) if as_of else max(pd.to_datetime(f["timestamp"]).max() for f in frames)
    )
    params = load_section(RetrainParams, "retrain", params_path)
    delay = load_section(SimulateParams, "simulate", params_path).label_delay_days
    window = labelled_window(frames, when, params.window_days, delay)
    click.echo(f"retraining on {len(window):,} labelled transactions up to {when} ...")
    outcome = run_retrain(
        root, window, params_path=params_path, trigger_report=trigger_report, reason=reason
    )
    click.echo(outcome.describe())


@main.command()
@PARAMS
@click.option(
    "--weeks", type=int, default=None, help="Weeks to simulate  [default: production.weeks]"
)
@click.option(
    "--scenario",
    type=click.Choice(
        ["none", "new_fraud_pattern", "customer_mix", "seasonal_amount", "merchant_shift", "bias"]
    ),
    default=None,
    help="[default: production.scenario]",
)
@click.option(
    "--drift-week",
    type=int,
    default=None,
    help="First drifted week  [default: production.drift_week]",
)
def production(
    params_path: str, weeks: int | None, scenario: str | None, drift_week: int | None
) -> None:
    """Simulate weeks of production traffic through the whole loop: score, monitor, retrain, promote."""
    from inferloop.core.tracking import repo_root
    from inferloop.loop.stage import run_production

    run = run_production(
        repo_root(), params_path=params_path, weeks=weeks, scenario=scenario, drift_week=drift_week
    )
    click.echo(
        run.timeline.drop(columns=["reasons"]).to_string(
            index=False, float_format=lambda v: f"{v:.3f}"
        )
    )
    click.echo(f"timeline: {run.out_dir / 'timeline.md'}  plot: {run.out_dir / 'timeline.png'}")


def _monitor_incoming(
    params_path: str,
    incoming: str,
    out_dir: str,
    batch_name: str | None,
    webhook: str | None,
    fail_on_breach: bool,
) -> None:
    """``inferloop monitor --incoming``: score raw files with the champion, then monitor them."""
    import glob

    from inferloop.core.tracking import repo_root
    from inferloop.loop.daily import monitor_incoming

    files = [Path(p) for p in sorted(glob.glob(incoming))]
    result = monitor_incoming(
        repo_root(),
        files,
        params_path=params_path,
        out_dir=out_dir,
        batch_name=batch_name,
        webhook_url=webhook,
    )
    breached = ", ".join(result.breached) or "none"
    click.echo(
        f"{result.batch}: {result.status} (breached: {breached}; action: {result.action.kind}) -> {result.report_path}"
    )
    if fail_on_breach and result.breached:
        raise SystemExit(1)


@main.command()
def where() -> None:
    """Print where the lifecycle's outputs are."""
    from inferloop.core.tracking import repo_root, tracking_uri

    root = repo_root()
    rows = [
        ("executed notebooks", root / "reports" / "notebooks"),
        ("metrics (dvc metrics show)", root / "reports" / "metrics"),
        ("plots (dvc plots show)", root / "reports" / "plots"),
        ("data summary report", root / "reports" / "data_summary.html"),
        ("monitoring reports", root / "reports" / "monitoring"),
        ("MLflow store", tracking_uri(root)),
    ]
    click.echo("inferloop outputs:")
    for label, path in rows:
        click.echo(f"  {label:<28} {path}")
    click.echo("  MLflow UI                    make ui  ->  http://127.0.0.1:5000")


# commands of the live feature state (serve, state, label) and of `inferloop data` live in
# their own modules
from inferloop.cli import data as _data  # noqa: E402,F401  (registers them on ``main``)
from inferloop.cli import live as _live  # noqa: E402,F401
