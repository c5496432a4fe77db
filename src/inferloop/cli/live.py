"""Commands of online scoring and its feature state: ``serve``, ``state``, ``label``."""

from __future__ import annotations

from pathlib import Path

import click

from inferloop.cli import PARAMS, STATE, main, registered_name

__all__ = ["label", "serve", "state", "state_seed", "state_stats"]


@main.command()
@PARAMS
@click.option(
    "--model",
    "model_uri",
    default=None,
    help="Model URI (default: models:/<registry.model_name>@champion); "
    "models:/fraud-detector-edge@champion serves the edge model.",
)
@click.option("--port", default=5001, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int, help="One per core.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Keep on loopback: no auth.")
@click.option(
    "--max-rows",
    default=10_000,
    show_default=True,
    type=int,
    help="Largest batch per request (400 above); 0 for no limit.",
)
@click.option("--access-log", is_flag=True, help="Log one line per request (uvicorn).")
@STATE
def serve(
    params_path: str,
    model_uri: str | None,
    port: int,
    workers: int,
    host: str,
    max_rows: int,
    access_log: bool,
    state_location: str | None,
) -> None:
    """Serve MODEL with `mlflow models serve` (MLflow's protocol: POST /invocations).

    Every worker reads and writes the feature state (seeded from the model's training history
    when empty). The alias is resolved when the server starts: restart it after a promotion.
    """
    from inferloop.core.registry import RegistryError, resolve
    from inferloop.core.tracking import configure_mlflow, repo_root
    from inferloop.scoring.serving import ServeConfig, run_server

    uri = configure_mlflow()
    model_uri = model_uri or f"models:/{registered_name(None, params_path)}@champion"
    try:
        name, version = resolve(model_uri)
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from exc
    location = _prepared_state(state_location, params_path, repo_root(), model_uri)
    label = f"{name}:{version}" if version else name
    config = ServeConfig(
        model_uri, host, port, workers, max_rows or None, access_log=access_log,
        state=location, model_label=label,
    )  # fmt: skip
    served = f"{name} v{version}" if version else name
    click.echo(f"serving {served} on {config.url}/invocations  (store: {uri})", err=True)
    click.echo(f"feature state: {location}", err=True)
    raise SystemExit(run_server(config, uri))


def _prepared_state(explicit: str | None, params_path: str, root: Path, model_uri: str) -> str:
    """The state location, with the store seeded from ``model_uri`` if it is empty."""
    from inferloop.scoring.live_state import load_state_params, seed_state, state_location
    from inferloop.state.config import open_state

    params = load_state_params(root / params_path)
    location = state_location(explicit, params, root)
    store = open_state(location, redis_prefix=params.redis_prefix)
    if store is not None:
        with store:
            written = seed_state(store, _load_model(model_uri))
        if written:
            click.echo(f"seeded the feature state with {written:,} training events", err=True)
    return location


def _load_model(model_uri: str) -> object:
    import mlflow

    return mlflow.pyfunc.load_model(model_uri).unwrap_python_model()


@main.group()
def state() -> None:
    """The online feature state: seed it, inspect it, prune it."""


@state.command("seed")
@PARAMS
@STATE
@click.option("--model", "model_uri", default="models:/fraud-detector@champion", show_default=True)
@click.option("--force", is_flag=True, help="Seed even if the store already holds events.")
def state_seed(params_path: str, state_location: str | None, model_uri: str, force: bool) -> None:
    """Write MODEL's training history into the feature state (only if empty, unless --force)."""
    from inferloop.core.tracking import configure_mlflow, repo_root
    from inferloop.scoring.live_state import load_state_params, open_configured_state, seed_state

    configure_mlflow()
    root = repo_root()
    store = open_configured_state(state_location, load_state_params(root / params_path), root)
    if store is None:
        raise click.ClickException("the feature state is 'none': nothing to seed")
    with store:
        written = seed_state(store, _load_model(model_uri), only_if_empty=not force)
        click.echo(f"{store.location}: {written:,} events written")


@state.command("stats")
@PARAMS
@STATE
def state_stats(params_path: str, state_location: str | None) -> None:
    """Print the store's counts and size as JSON."""
    import json

    from inferloop.core.tracking import repo_root
    from inferloop.scoring.live_state import load_state_params, open_configured_state

    root = repo_root()
    store = open_configured_state(state_location, load_state_params(root / params_path), root)
    if store is None:
        raise click.ClickException("the feature state is 'none'")
    with store:
        click.echo(json.dumps(store.stats().as_dict(), indent=2))


@main.command()
@PARAMS
@STATE
@click.option("--input", "input_path", required=True, type=click.Path(dir_okay=False))
@click.option("--table", "table_dir", default="data/labels", show_default=True)
@click.option("--quarantine", "quarantine_dir", default="data/quarantine/labels", show_default=True)
def label(
    params_path: str,
    state_location: str | None,
    input_path: str,
    table_dir: str,
    quarantine_dir: str,
) -> None:
    """Deliver labels (transaction_id, label, label_time): the chargeback / case feed.

    Updates the feature state and appends to the labels table that retraining reads; bad rows
    go to quarantine with their reason. Exit 1 if any row was rejected.
    """
    from inferloop.core.tracking import repo_root
    from inferloop.scoring.live_state import (
        deliver_labels,
        load_state_params,
        open_configured_state,
        read_label_file,
    )

    root = repo_root()
    frame = read_label_file(input_path)
    try:
        store = open_configured_state(state_location, load_state_params(root / params_path), root)
        result = deliver_labels(
            store, frame, table_dir=table_dir, quarantine_dir=quarantine_dir,
            name=Path(input_path).stem,
        )  # fmt: skip
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    if store is not None:
        store.close()
    click.echo(result.describe())
    if result.rows_rejected:
        raise SystemExit(1)
