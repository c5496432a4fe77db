"""The ``inferloop`` command line: everything a user does outside ``dvc repro``.

Commands import their modules lazily so that ``inferloop --help`` stays fast.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click

from inferloop.config import ParamsError


class _Group(click.Group):
    """Turns known, user-caused errors into one clear line and exit code 2 (no traceback)."""

    def invoke(self, ctx: click.Context) -> object:
        from inferloop.contract import ContractError
        from inferloop.ingest import IngestError

        try:
            return super().invoke(ctx)
        except (ParamsError, ContractError, IngestError, FileNotFoundError) as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            ctx.exit(2)


@click.group(cls=_Group)
@click.version_option(package_name="inferloop")
def main() -> None:
    """inferloop: train, validate, optimize, register, score, monitor and retrain fraud models."""


PARAMS = click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path())


@main.command()
@PARAMS
@click.option("--out", default="data/raw/transactions.parquet", show_default=True, type=click.Path())
@click.option("--seed", type=int, default=None, help="Override simulate.seed.")
@click.option("--days", type=int, default=None, help="Override simulate.n_days.")
@click.option("--start-day", type=int, default=0, show_default=True, help="First day of the window.")
def simulate(params_path: str, out: str, seed: int | None, days: int | None, start_day: int) -> None:
    """Simulate card transactions (section `simulate` of params.yaml) to a Parquet file."""
    from dataclasses import replace

    from inferloop.config import load_section
    from inferloop.simulate import SimulateParams, simulate_transactions
    from inferloop.storage import write_parquet

    params = load_section(SimulateParams, "simulate", params_path)
    params = replace(params, seed=params.seed if seed is None else seed)
    df = simulate_transactions(params, start_day=start_day, n_days=days or params.n_days, progress=True)
    write_parquet(df, out)
    click.echo(f"{len(df):,} transactions ({df['is_fraud'].mean():.2%} fraud) -> {out}")


@main.command()
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--host", default="127.0.0.1", show_default=True, help="Keep on loopback: no auth.")
def ui(port: int, host: str) -> None:
    """Start the MLflow UI against the project's store."""
    from inferloop.tracking import artifact_root, repo_root, tracking_uri

    root = repo_root()
    uri = tracking_uri(root)
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", host, "--port", str(port)]
    if uri.startswith("sqlite:"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        cmd += ["--default-artifact-root", str(artifact_root(root))]
    click.echo(f"MLflow UI on http://{host}:{port}  (store: {uri})")
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": os.environ.get("MLFLOW_DISABLE_TELEMETRY", "true")}
    raise SystemExit(subprocess.call(cmd, env=env))


MODEL_NAME = click.option("--name", default="fraud-detector", show_default=True, help="Registered model name.")


@main.command()
@MODEL_NAME
@click.option("--version", "version", required=True, help="Version to make champion.")
@click.option("--force", is_flag=True, help="Promote even if the version's gates failed.")
def promote(name: str, version: str, force: bool) -> None:
    """Point NAME@champion at VERSION (refused if its gates failed, unless --force)."""
    from inferloop.registry import RegistryError
    from inferloop.registry import promote as promote_version
    from inferloop.tracking import configure_mlflow

    configure_mlflow()
    try:
        move = promote_version(name, version, force=force)
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"promoted: {move.describe()}")


@main.command()
@MODEL_NAME
def rollback(name: str) -> None:
    """Move NAME@champion back to the version it replaced."""
    from inferloop.registry import RegistryError
    from inferloop.registry import rollback as rollback_champion
    from inferloop.tracking import configure_mlflow

    configure_mlflow()
    try:
        move = rollback_champion(name)
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"rolled back: {move.describe()}")


@main.command()
def where() -> None:
    """Print where the lifecycle's outputs are."""
    from inferloop.tracking import repo_root, tracking_uri

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
