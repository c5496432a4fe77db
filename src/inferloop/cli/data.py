"""``inferloop data``: look at a table before it enters the pipeline."""

from __future__ import annotations

import sys

import click
import yaml

from inferloop.cli import PARAMS, main

__all__ = ["check", "data", "inspect"]


@main.group()
def data() -> None:
    """Inspect a user's table: propose column roles, check it against params."""


@data.command()
@PARAMS
@click.argument("path", type=click.Path())
@click.option(
    "--check",
    is_flag=True,
    help="Check PATH against params.yaml (data.column_map and the dataset section) instead.",
)
def inspect(params_path: str, path: str, check: bool) -> None:
    """Propose the `data` and `dataset` sections for PATH (CSV or Parquet), or --check it.

    The proposal is a guess to confirm: paste it into params.yaml. --check prints every
    problem, one line each, and exits 1 when there is any.
    """
    from inferloop.core.config import ParamsError, load_section
    from inferloop.core.dataset import load_dataset_spec
    from inferloop.data.ingest import DataSourceParams, IngestError
    from inferloop.data.inspect import check_table, propose_roles

    try:
        if check:
            source = load_section(DataSourceParams, "data", params_path)
            problems = check_table(path, source, load_dataset_spec(params_path))
            for problem in problems:
                click.echo(f"- {problem}", err=True)
            if problems:
                sys.exit(1)
            click.echo(f"{path}: fits the data and dataset sections of {params_path}")
            return
        proposal = propose_roles(path)
    except (IngestError, ParamsError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"# {path}: {proposal.rows:,} rows")
    for c in proposal.columns:
        click.echo(f"#   {c.name:<24} {c.dtype:<10} {c.distinct:>9,} values  -> {c.role} ({c.why})")
    for note in proposal.notes:
        click.echo(f"# note: {note}")
    click.echo(yaml.safe_dump(proposal.as_params(), sort_keys=False))


@data.command()
@PARAMS
def check(params_path: str) -> None:
    """Check params before a run: the data, dataset and validate sections, and the file
    data.path names when data.source is file. Every problem, one line each; exit 1 on any.

    The pipeline's first stage runs the same check, so `dvc repro` stops on a bad spec with
    its message, not a notebook's traceback.
    """
    from inferloop.data.inspect import report_params

    if report_params(params_path):
        sys.exit(1)
    click.echo(f"{params_path}: the data, dataset and validate sections are fine")
