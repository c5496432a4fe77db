"""The model registry: register, move aliases, promote and roll back — by evidence.

Aliases, never the deprecated stages: ``champion`` is what serves, ``challenger`` the newest
candidate. Each version carries its gate results as tags; promotion of a version whose gates
failed is refused unless forced, and every promotion records the previous champion so that
:func:`rollback` is one call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "EDGE_MODEL",
    "FULL_MODEL",
    "TAG_COPIED_FROM",
    "TAG_FAILED_GATES",
    "TAG_GATES_PASSED",
    "TAG_PREVIOUS_CHAMPION",
    "TAG_TRAINED_THROUGH",
    "AliasMove",
    "RegistryError",
    "RegistryParams",
    "alias_version",
    "copy_as_champion",
    "promote",
    "register_version",
    "resolve",
    "rollback",
    "version_tags",
]


FULL_MODEL = "fraud-detector"
EDGE_MODEL = "fraud-detector-edge"
CHAMPION = "champion"
CHALLENGER = "challenger"

TAG_GATES_PASSED = "gates_passed"
TAG_PREVIOUS_CHAMPION = "previous_champion"
TAG_FAILED_GATES = "failed_gates"
#: The last day of data (train, validation or test window) the version has seen, ISO date.
TAG_TRAINED_THROUGH = "trained_through"
TAG_COPIED_FROM = "copied_from"


@dataclass(frozen=True)
class RegistryParams:
    """The ``registry`` section of params.yaml: the registered model the pipeline writes.

    The production simulation points its retraining at a name of its own, so that the models
    it trains on simulated weeks never become the champion of the main pipeline.
    """

    model_name: str = FULL_MODEL
    #: the edge model the optimize stage registers, distilled from ``model_name``'s version
    edge_model_name: str = EDGE_MODEL


class RegistryError(RuntimeError):
    """A registry operation was refused; the message says why and what to do."""


@dataclass(frozen=True)
class AliasMove:
    """What a promotion or rollback did."""

    model: str
    alias: str
    version: str
    previous: str | None
    forced: bool = False

    def describe(self) -> str:
        """One line for the CLI and the notebooks."""
        before = f"v{self.previous}" if self.previous else "none"
        forced = " (forced)" if self.forced else ""
        return f"{self.model}@{self.alias}: {before} -> v{self.version}{forced}"


def _client() -> Any:
    from mlflow import MlflowClient

    return MlflowClient()


def alias_version(name: str, alias: str) -> str | None:
    """Version number behind ``name@alias``, or None if the alias (or model) does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return str(_client().get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def register_version(
    model_uri: str,
    name: str,
    tags: dict[str, str],
    *,
    alias: str = CHALLENGER,
    description: str | None = None,
) -> str:
    """Register ``model_uri`` as a new version of ``name`` with ``tags`` and point ``alias`` at it.

    ``description`` (the model card) is shown on the version's page in the MLflow UI.
    """
    import mlflow

    version = mlflow.register_model(model_uri, name, tags={k: str(v) for k, v in tags.items()})
    if description:
        _client().update_model_version(name, version.version, description=description)
    _client().set_registered_model_alias(name, alias, version.version)
    return str(version.version)


def version_tags(name: str, version: str) -> dict[str, str]:
    """Tags of one model version."""
    return dict(_client().get_model_version(name, version).tags)


def validation_figures(name: str, version: str) -> dict[str, float]:
    """A registered version's validation figures, from the tags the register stage writes.

    Every ``validation_<metric>`` tag becomes ``<metric>`` (``average_precision``,
    ``roc_auc``, ...) and the ``threshold`` tag stays ``threshold``; tags that are missing or
    not numbers are left out. This is the one reader of these figures (monitoring, the daily
    job and the production simulation all call it).
    """
    figures: dict[str, float] = {}
    for key, value in version_tags(name, version).items():
        if key.startswith("validation_") or key == "threshold":
            try:
                figures[key.removeprefix("validation_")] = float(value)
            except ValueError:
                continue
    return figures


def promote(name: str, version: str, *, force: bool = False) -> AliasMove:
    """Point ``name@champion`` at ``version``.

    Refuses (:class:`RegistryError`) a version whose recorded gates failed unless ``force``;
    records the previous champion on the promoted version for :func:`rollback`. The alias
    move is a single registry write, so readers see either the old or the new champion.
    """
    from mlflow.exceptions import MlflowException

    client = _client()
    try:
        tags = dict(client.get_model_version(name, version).tags)
    except MlflowException as exc:
        raise RegistryError(f"{name} has no version {version}") from exc
    if tags.get(TAG_GATES_PASSED) != "true" and not force:
        failed = tags.get(TAG_FAILED_GATES, "no gate results recorded")
        raise RegistryError(
            f"refusing to promote {name} v{version}: gates failed ({failed}); use --force to override"
        )
    previous = alias_version(name, CHAMPION)
    if previous == str(version):
        return AliasMove(name, CHAMPION, str(version), previous, force)
    if previous is not None:
        client.set_model_version_tag(name, version, TAG_PREVIOUS_CHAMPION, previous)
    client.set_registered_model_alias(name, CHAMPION, version)
    return AliasMove(name, CHAMPION, str(version), previous, force)


def copy_as_champion(source: str, version: str, name: str, tags: dict[str, str]) -> str:
    """Copy ``source`` v``version`` into ``name`` as a new version and make it the champion.

    The copy keeps the source's tags (gate results, validation figures, ``trained_through``,
    the calibration) and description (the model card), plus ``tags`` and ``copied_from``; it passed its gates as the source, so no gate is rerun.
    """
    client = _client()
    original = client.get_model_version(source, version)
    source_tags = dict(original.tags)
    copied = client.copy_model_version(f"models:/{source}/{version}", name)
    if original.description:  # the model card goes with the model
        client.update_model_version(name, copied.version, description=original.description)
    for key, value in {
        **source_tags,
        **tags,
        TAG_COPIED_FROM: f"{source}/{version}",
    }.items():
        client.set_model_version_tag(name, copied.version, key, str(value))
    client.set_registered_model_alias(name, CHAMPION, copied.version)
    return str(copied.version)


def rollback(name: str) -> AliasMove:
    """Move ``name@champion`` back to the version it replaced."""
    current = alias_version(name, CHAMPION)
    if current is None:
        raise RegistryError(f"{name} has no champion to roll back")
    previous = version_tags(name, current).get(TAG_PREVIOUS_CHAMPION)
    if not previous:
        raise RegistryError(
            f"{name} v{current} has no previous champion recorded: nothing to roll back to"
        )
    _client().set_registered_model_alias(name, CHAMPION, previous)
    return AliasMove(name, CHAMPION, previous, current)


def resolve(model_uri: str) -> tuple[str, str]:
    """``(name, version)`` behind a ``models:/name@alias`` or ``models:/name/version`` URI.

    Other URIs (``runs:/``, paths) resolve to ``(uri, "")``.
    """
    if not model_uri.startswith("models:/"):
        return model_uri, ""
    ref = model_uri.removeprefix("models:/")
    if "@" in ref:
        name, alias = ref.split("@", 1)
        version = alias_version(name, alias)
        if version is None:
            raise RegistryError(
                f"{name}@{alias} does not exist: register and promote a model first (make run)"
            )
        return name, version
    name, _, version = ref.partition("/")
    return name, version
