"""Where the feature state lives: configuration only, never inside the registered model.

The location is, in order: the ``INFERLOOP_FEATURE_STATE`` environment variable, then the
``state.location`` param. Forms: a file path or ``sqlite:///abs/path.db`` (SQLite),
``redis://host:port/db`` or ``rediss://...`` (Redis), ``none`` (stateless: score against the
history frozen in the model at training time).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from inferloop.state.base import FeatureState

__all__ = [
    "STATELESS",
    "STATE_ENV",
    "StateParams",
    "open_state",
    "resolve_location",
]

#: Environment variable naming the feature-state location (it wins over params).
STATE_ENV = "INFERLOOP_FEATURE_STATE"
#: The location that means "no store".
STATELESS = "none"


@dataclass(frozen=True)
class StateParams:
    """The ``state`` section of params.yaml."""

    location: str = "state/features.db"
    redis_prefix: str = "inferloop"


def resolve_location(
    location: str | None, root: Path | None = None, *, use_env: bool = True
) -> str:
    """The effective location: ``$INFERLOOP_FEATURE_STATE`` (if ``use_env``), else ``location``.

    A relative file path is taken from ``root`` (the repository) and returned as an absolute
    ``sqlite:///`` URL, so that server workers started elsewhere open the same file.
    """
    chosen = (os.environ.get(STATE_ENV) if use_env else None) or location or STATELESS
    if chosen.lower() == STATELESS or "://" in chosen:
        return chosen.lower() if chosen.lower() == STATELESS else chosen
    path = Path(chosen).expanduser()
    if not path.is_absolute():
        path = (root or Path.cwd()) / path
    return f"sqlite:///{path.resolve()}"


def open_state(location: str, *, redis_prefix: str = "inferloop") -> FeatureState | None:
    """Open the store at ``location`` (see the module docstring); None for ``none``.

    Raises
    ------
    ValueError
        For a scheme that is neither a file, ``sqlite``, ``redis`` nor ``rediss``.
    """
    if location.lower() == STATELESS:
        return None
    if location.startswith(("redis://", "rediss://", "unix://")):
        from inferloop.state.redis_store import RedisState

        return RedisState(location, prefix=redis_prefix)
    if location.startswith("sqlite:///"):
        from inferloop.state.sqlite import SqliteState

        # sqlite:////abs/file.db and sqlite:///relative.db, as SQLAlchemy spells them
        return SqliteState(location[len("sqlite:///") :])
    if "://" in location:
        raise ValueError(
            f"unknown feature-state location {location!r}: use a file path, sqlite:///path, "
            f"redis://host:port/db or {STATELESS!r}"
        )
    from inferloop.state.sqlite import SqliteState

    return SqliteState(location)
