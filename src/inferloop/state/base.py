"""The feature-state interface that every backend implements, and the records it moves.

A store holds, per entity kind (``customer``, ``terminal``, any kind a dataset declares) and
key, the recent events (transaction id, time, amount), the score each event got, and the
labels delivered by the label feed with the time they arrived. Keys and ids are text.

Exactly-once: an event is written once per transaction id. :meth:`FeatureState.transact`
reads the ids already scored and the events of the batch's entities, lets the caller compute
scores for the new ids, and writes them in the same transaction (SQLite: one ``BEGIN
IMMEDIATE`` transaction; Redis: a compare-and-set on the entities' versions, retried). So a
retried request returns its first score, and concurrent requests on one customer are
featurized one after another, each seeing the other's event.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from inferloop.data.events import EntityEvents, EntityQuery

__all__ = [
    "FeatureState",
    "Labels",
    "ScoredEvents",
    "Snapshot",
    "StateRequest",
    "StateStats",
]


@dataclass(frozen=True)
class StateRequest:
    """One scoring batch's read: its transaction ids and, per entity kind, what to read.

    ``label_cutoff``: labels that arrived after this time (the batch's last timestamp) are not
    read; the featurizer checks the rest against each row's own time, so a score never uses
    a label delivered after its transaction. ``horizon``: seconds of events a feature reads
    back; a write drops a key's events older than that before its newest (each key keeps its
    newest event), so the keys in use stay bounded between full prunes.
    """

    ids: np.ndarray
    queries: list[EntityQuery]
    label_cutoff: int
    horizon: int | None = None


@dataclass(frozen=True)
class Snapshot:
    """What a store held for a request: stored scores of known ids, events per entity kind.

    ``scored`` maps an id to its stored ``(score, decision, model)``.
    """

    scored: dict[str, tuple[float, int, str]]
    events: dict[str, EntityEvents]


@dataclass(frozen=True)
class ScoredEvents:
    """Events to write: one per transaction id, with its entity keys and its score."""

    ids: np.ndarray
    time: np.ndarray
    amount: np.ndarray
    keys: dict[str, np.ndarray]
    score: np.ndarray
    decision: np.ndarray
    model: str = ""
    label: np.ndarray | None = None
    label_time: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, rows: np.ndarray | slice) -> ScoredEvents:
        """The events at ``rows`` (a boolean mask, positions or a slice)."""

        def cut(values: np.ndarray | None) -> np.ndarray | None:
            return None if values is None else values[rows]

        return ScoredEvents(
            ids=self.ids[rows],
            time=self.time[rows],
            amount=self.amount[rows],
            keys={e: k[rows] for e, k in self.keys.items()},
            score=self.score[rows],
            decision=self.decision[rows],
            model=self.model,
            label=cut(self.label),
            label_time=cut(self.label_time),
        )


@dataclass(frozen=True)
class Labels:
    """Labels from the label feed: transaction id, label (0/1), epoch second it arrived."""

    ids: np.ndarray
    label: np.ndarray
    label_time: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class StateStats:
    """Size of a store: events, labels, keys per entity kind, bytes, newest event time."""

    location: str
    events: int
    labels: int
    entities: dict[str, int]
    bytes: int
    newest_time: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def bytes_per_entity(self) -> float:
        """Store bytes per active entity key (all kinds together)."""
        keys = sum(self.entities.values())
        return self.bytes / keys if keys else 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready figures."""
        return {
            "location": self.location,
            "events": self.events,
            "labels": self.labels,
            "entities": self.entities,
            "bytes": self.bytes,
            "bytes_per_entity": round(self.bytes_per_entity, 1),
            "newest_time": self.newest_time,
            **self.extra,
        }


#: What :meth:`FeatureState.transact` calls with the snapshot: the new events to write.
Compute = Callable[[Snapshot], ScoredEvents]


class FeatureState(ABC):
    """A feature-state store (see the module docstring)."""

    location: str

    @abstractmethod
    def transact(self, request: StateRequest, compute: Compute) -> tuple[Snapshot, ScoredEvents]:
        """Read ``request``, call ``compute`` with what was read, write its events atomically.

        ``compute`` returns only events whose ids are not in ``snapshot.scored``. It may be
        called more than once (a backend retries after a conflicting write); the returned
        pair is the one that was committed.
        """

    @abstractmethod
    def write_events(self, events: ScoredEvents) -> int:
        """Write events in bulk (seeding, batch resume), skipping ids already stored.

        Returns the number of events written.
        """

    @abstractmethod
    def add_labels(self, labels: Labels) -> tuple[int, int]:
        """Store labels (a later delivery for an id replaces the earlier one).

        Returns ``(labels stored, labels whose transaction is in the store)``.
        """

    @abstractmethod
    def prune(self, before: int) -> int:
        """Drop events (and their labels) older than ``before``; returns events dropped."""

    @abstractmethod
    def stats(self) -> StateStats:
        """Counts and size."""

    @abstractmethod
    def scored(self, ids: np.ndarray) -> dict[str, tuple[float, int, str]]:
        """Stored ``(score, decision, model)`` of the ids already written."""

    @abstractmethod
    def close(self) -> None:
        """Release connections."""

    def is_empty(self) -> bool:
        """True when no event has been written."""
        return self.stats().events == 0

    def __enter__(self) -> FeatureState:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
