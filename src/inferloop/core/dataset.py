"""The dataset spec: what each column of the user's data is (the ``dataset`` section of params).

The contract's core columns (transaction id, timestamp, customer, terminal, amount, label) are
named by :mod:`inferloop.core.schema`; a user's own names are mapped onto them by
``data.column_map``. Everything else a dataset carries is declared here by role:

* **categorical features**: column -> its categories. A declared list is part of the data
  contract (a value outside it follows ``unseen_category``); an empty list accepts any value,
  and the featurizer one-hot encodes the training data's most frequent ones.
* **numeric features**: columns used as they are (anonymised components, balances...).
* **sensitive attributes**: column -> its groups (empty: any value), or ``{bins: [edges]}``
  for a numeric one such as age, grouped into bands ``<25``, ``25-40``, ..., ``60+`` (each
  ``[low, high)``). Used for fairness only, never as features. None declared: fairness is
  reported as not assessed.
* **entities**: the entity kinds the data has keys for, zero or more of :data:`ENTITY_KINDS`:
  ``customer`` (velocity windows over ``customer_id``) and ``terminal`` (the delayed fraud
  rate over ``terminal_id``). An undeclared kind's column is not required, its window
  features are off and the feature-state store keeps no series for it.
* **timed**: whether the table has a timestamp. A table without time (``timed: false``, a
  credit-scoring table) is split at random, stratified by the label; it has no time-of-day
  features and no entities (windows need time). Its rows keep their order in the timestamp
  column (one second per row, like a generated id), and rows scored later are stamped with
  the time they were scored.

The contract, the featurizer, the model signature and the server's request checks, the
drift and fairness columns of monitoring and the model card all read this one object, so a
dataset with other columns needs params, not code. The card-fraud simulator's spec is
:data:`CARD_FRAUD`, the default.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from inferloop.core import schema as s
from inferloop.core.config import ParamsError, read_params

__all__ = [
    "CARD_FRAUD",
    "CORE_COLUMNS",
    "ENTITY_KINDS",
    "UNSEEN_CATEGORY_POLICIES",
    "DatasetSpec",
    "band_names",
    "dataset_spec",
    "load_dataset_spec",
]

#: What happens to a value outside a declared category list.
UNSEEN_CATEGORY_POLICIES: Final = ("quarantine", "other")

#: Columns with a fixed meaning in the contract; no declared role may reuse them.
CORE_COLUMNS: Final = (
    s.TRANSACTION_ID,
    s.TIMESTAMP,
    s.CUSTOMER_ID,
    s.TERMINAL_ID,
    s.AMOUNT,
    s.TARGET,
    s.LABEL_AVAILABLE_AT,
    s.FRAUD_SCENARIO,
)

#: The entity kinds the featurizer keys windows by, and the contract column of each key.
ENTITY_KINDS: Final = {"customer": s.CUSTOMER_ID, "terminal": s.TERMINAL_ID}

_KEYS: Final = (
    "name",
    "timed",
    "entities",
    "categorical_features",
    "numeric_features",
    "sensitive_attributes",
    "unseen_category",
    "max_learned_categories",
)


def _card_fraud_categories() -> dict[str, tuple[str, ...]]:
    return {s.CHANNEL: s.CHANNELS, s.MERCHANT_CATEGORY: s.MERCHANT_CATEGORIES}


def _card_fraud_attributes() -> dict[str, tuple[str, ...]]:
    return {s.AGE_BAND: s.AGE_BANDS, s.REGION: s.REGIONS}


@dataclass(frozen=True)
class DatasetSpec:
    """Column roles beyond the contract's core columns (see the module docstring)."""

    name: str = "card_fraud"
    # a plain tuple default (not a factory): a spec pickled before entities existed reads it
    entities: tuple[str, ...] = ("customer", "terminal")
    timed: bool = True
    categorical_features: Mapping[str, tuple[str, ...]] = field(
        default_factory=_card_fraud_categories
    )
    numeric_features: tuple[str, ...] = ()
    sensitive_attributes: Mapping[str, tuple[str, ...]] = field(
        default_factory=_card_fraud_attributes
    )
    unseen_category: str = "quarantine"
    max_learned_categories: int = 30
    #: numeric sensitive attributes -> their band edges (their groups are the band names)
    sensitive_bins: Mapping[str, tuple[float, ...]] = field(default_factory=dict)

    @property
    def categorical_columns(self) -> tuple[str, ...]:
        """The categorical feature columns, in declared order."""
        return tuple(self.categorical_features)

    @property
    def sensitive_columns(self) -> tuple[str, ...]:
        """The sensitive attribute columns, in declared order."""
        return tuple(self.sensitive_attributes)

    @property
    def entity_columns(self) -> tuple[str, ...]:
        """The key columns of the declared entity kinds, in declared order."""
        return tuple(ENTITY_KINDS[kind] for kind in self.entities)

    def has_entity(self, kind: str) -> bool:
        """Whether the data has keys for the entity kind ``kind`` (``customer``, ``terminal``)."""
        return kind in self.entities

    @property
    def scoring_columns(self) -> tuple[str, ...]:
        """Columns a transaction must carry to be scored (the model's input signature)."""
        return (
            s.TRANSACTION_ID,
            *((s.TIMESTAMP,) if self.timed else ()),
            *self.entity_columns,
            s.AMOUNT,
            *self.categorical_columns,
            *self.numeric_features,
        )

    @property
    def id_columns(self) -> tuple[str, ...]:
        """Columns that identify a transaction or an entity: never features."""
        return (s.TRANSACTION_ID, *self.entity_columns)

    def allowed_values(self, column: str) -> tuple[str, ...] | None:
        """The declared categories of a categorical or sensitive column (None: any value)."""
        values = self.categorical_features.get(column, self.sensitive_attributes.get(column))
        return tuple(values) if values else None

    def quarantines_unseen(self, column: str) -> bool:
        """Whether a value outside ``column``'s declared list is rejected by the contract.

        Sensitive attributes with declared groups always are (a typo would become a group of
        its own); categorical features follow ``unseen_category``.
        """
        if self.allowed_values(column) is None:
            return False
        return column in self.sensitive_attributes or self.unseen_category == "quarantine"

    def as_params(self) -> dict[str, Any]:
        """The spec as the ``dataset`` section of params.yaml (plain lists)."""
        return {
            "name": self.name,
            "timed": self.timed,
            "entities": list(self.entities),
            "categorical_features": {k: list(v) for k, v in self.categorical_features.items()},
            "numeric_features": list(self.numeric_features),
            "sensitive_attributes": {
                k: {"bins": list(self.sensitive_bins[k])} if k in self.sensitive_bins else list(v)
                for k, v in self.sensitive_attributes.items()
            },
            "unseen_category": self.unseen_category,
            "max_learned_categories": self.max_learned_categories,
        }


#: The card-fraud simulator's columns: today's default.
CARD_FRAUD: Final = DatasetSpec()


def dataset_spec(section: Any, where: str = "dataset") -> DatasetSpec:
    """Build and check a :class:`DatasetSpec` from the ``dataset`` params section.

    Raises
    ------
    ParamsError
        One message naming every problem: unknown keys, a role that is not a list or a
        mapping of lists, an unknown entity kind, a column in two roles or reusing a core column, an unknown
        ``unseen_category`` policy.
    """
    if section is None:
        return CARD_FRAUD
    if not isinstance(section, Mapping):
        raise ParamsError(f"{where}: expected a mapping of column roles, got {section!r}")
    problems: list[str] = []
    unknown = sorted(set(section) - set(_KEYS))
    if unknown:
        problems.append(f"unknown keys {unknown}; allowed {sorted(_KEYS)}")
    categorical = _column_lists(section.get("categorical_features", {}), "categorical_features")
    raw_attributes = section.get("sensitive_attributes", {})
    bins, bin_problems = _bins(raw_attributes)
    problems += bin_problems
    attributes = _column_lists(
        {
            k: band_names(bins[k]) if k in bins else [] if isinstance(v, Mapping) else v
            for k, v in (raw_attributes or {}).items()
        }
        if isinstance(raw_attributes, Mapping)
        else raw_attributes,
        "sensitive_attributes",
    )
    numeric = _column_names(section.get("numeric_features", []), "numeric_features")
    entities = _entity_kinds(section.get("entities", list(ENTITY_KINDS)))
    for result in (categorical, attributes, numeric, entities):
        problems += result[1]
    problems += _role_clashes(
        {
            "categorical_features": list(categorical[0]),
            "numeric_features": list(numeric[0]),
            "sensitive_attributes": list(attributes[0]),
        }
    )
    timed = section.get("timed", True)
    if not isinstance(timed, bool):
        problems.append(f"timed must be true or false, got {timed!r}")
    elif not timed and entities[0]:
        problems.append(
            f"entities {entities[0]} need time (their windows are spans of time): a table "
            "without time (timed: false) declares entities: []"
        )
    policy = section.get("unseen_category", "quarantine")
    if policy not in UNSEEN_CATEGORY_POLICIES:
        problems.append(
            f"unseen_category must be one of {list(UNSEEN_CATEGORY_POLICIES)}, got {policy!r}"
        )
    cap = section.get("max_learned_categories", 30)
    if not isinstance(cap, int) or isinstance(cap, bool) or cap < 1:
        problems.append(f"max_learned_categories must be a positive integer, got {cap!r}")
    if problems:
        raise ParamsError(f"{where}: " + "; ".join(problems))
    return DatasetSpec(
        name=str(section.get("name", "custom")),
        entities=tuple(entities[0]),
        timed=bool(timed),
        categorical_features=categorical[0],
        numeric_features=tuple(numeric[0]),
        sensitive_attributes=attributes[0],
        sensitive_bins=bins,
        unseen_category=policy,
        max_learned_categories=cap,
    )


def _column_names(value: Any, role: str) -> tuple[list[str], list[str]]:
    if value is None:
        return [], []
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v for v in value):
        return [], [f"{role} must be a list of column names, got {value!r}"]
    repeated = sorted({v for v in value if list(value).count(v) > 1})
    return list(value), [f"{role} names {repeated} more than once"] if repeated else []


def _entity_kinds(value: Any) -> tuple[list[str], list[str]]:
    """The declared entity kinds: a list drawn from :data:`ENTITY_KINDS` (``[]``: none)."""
    kinds, problems = _column_names(value, "entities")
    unknown = [k for k in kinds if k not in ENTITY_KINDS]
    if unknown:
        problems.append(
            f"entities {unknown} are not entity kinds the featurizer knows; declare a subset of "
            f"{list(ENTITY_KINDS)} (customer: velocity windows over customer_id, terminal: the "
            "delayed fraud rate over terminal_id) and map your key columns onto them with "
            "data.column_map"
        )
    return [k for k in kinds if k in ENTITY_KINDS], problems


def _column_lists(value: Any, role: str) -> tuple[dict[str, tuple[str, ...]], list[str]]:
    """A role given as ``column: [values]`` (``[]`` or null: any value)."""
    if value is None:
        return {}, []
    if isinstance(value, list | tuple):  # a bare list of columns: values learned / any
        names, issues = _column_names(value, role)
        return {n: () for n in names}, issues
    if not isinstance(value, Mapping):
        return {}, [f"{role} must map column names to lists of values, got {value!r}"]
    out: dict[str, tuple[str, ...]] = {}
    problems: list[str] = []
    for column, values in value.items():
        if values is None:
            values = []
        if not isinstance(values, list | tuple):
            problems.append(f"{role}.{column} must be a list of values, got {values!r}")
            continue
        texts = tuple(str(v) for v in values)
        if len(set(texts)) < len(texts):
            problems.append(f"{role}.{column} lists a value more than once: {list(texts)}")
        out[str(column)] = texts
    return out, problems


def band_names(edges: tuple[float, ...]) -> list[str]:
    """The group names of numeric bands with these edges: ``<25``, ``25-40``, ``40+``."""
    labels = [f"<{edges[0]:g}"]
    labels += [f"{lo:g}-{hi:g}" for lo, hi in itertools.pairwise(edges)]
    return [*labels, f"{edges[-1]:g}+"]


def _bins(attributes: Any) -> tuple[dict[str, tuple[float, ...]], list[str]]:
    """The ``{bins: [edges]}`` entries of ``sensitive_attributes``: increasing numbers."""
    if not isinstance(attributes, Mapping):
        return {}, []
    out: dict[str, tuple[float, ...]] = {}
    problems: list[str] = []
    for column, value in attributes.items():
        if not isinstance(value, Mapping):
            continue
        edges = value.get("bins")
        numeric = isinstance(edges, list | tuple) and all(
            isinstance(e, int | float) and not isinstance(e, bool) for e in edges
        )
        if set(value) != {"bins"} or not numeric or not edges or sorted(set(edges)) != list(edges):
            problems.append(
                f"sensitive_attributes.{column} must be a list of groups or {{bins: [increasing "
                f"numbers]}}, got {value!r}"
            )
            continue
        out[str(column)] = tuple(float(e) for e in edges)
    return out, problems


def _role_clashes(roles: dict[str, list[str]]) -> list[str]:
    problems: list[str] = []
    seen: dict[str, str] = {}
    for role, columns in roles.items():
        for column in columns:
            if column in CORE_COLUMNS:
                problems.append(
                    f"{role} names the core column {column!r} (map your columns onto the core "
                    "ones with data.column_map instead)"
                )
            elif column in seen:
                problems.append(f"column {column!r} is in both {seen[column]} and {role}")
            seen.setdefault(column, role)
    return problems


def load_dataset_spec(path: str | Path = "params.yaml") -> DatasetSpec:
    """The ``dataset`` section of a params file (the card-fraud spec when it has none)."""
    return dataset_spec(read_params(path).get("dataset"))
