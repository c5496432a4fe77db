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
* **entities**: zero or more named key columns (customer, terminal, device, account,
  merchant...), each keyed by its name in the feature-state store. An entity has one kind of
  window features: ``velocity`` (count, mean amount and time since the previous event of the
  same key, over ``featurize.customer_windows``) or ``risk`` (the fraud rate of the key's
  labelled events, delayed by ``featurize.label_delay``, over ``featurize.terminal_windows``).
  ``customer`` (velocity over ``customer_id``, features ``cust_*``) and ``terminal`` (risk over
  ``terminal_id``, ``term_*``) are built in: ``entities: [customer, terminal]``. Others are
  declared with their column, ``{device: {column: device_id, features: velocity}}``, and their
  features are named after them (``device_count_1h``). An undeclared entity's column is not
  required and the feature-state store keeps no series for it.
* **has_amount**: whether the data has an amount (``data.column_map`` -> ``amount``). Without
  one (``has_amount: false``) there are no amount features, no mean-amount windows and no
  amount rules in the contract; velocity windows still count events and time the last one.
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

import dataclasses
import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from inferloop.core import schema as s
from inferloop.core.config import ParamsError, read_params

__all__ = [
    "BUILTIN_ENTITIES",
    "CARD_FRAUD",
    "CORE_COLUMNS",
    "ENTITY_FEATURES",
    "UNSEEN_CATEGORY_POLICIES",
    "DatasetSpec",
    "Entity",
    "band_names",
    "dataset_spec",
    "load_dataset_spec",
    "upgraded_spec",
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

#: The kinds of window features an entity can have (see the module docstring).
ENTITY_FEATURES: Final = ("velocity", "risk")
_ENTITY_KEYS: Final = ("column", "features", "prefix")
_PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Entity:
    """A declared entity: its name (what the state store keys by), its key column, the kind of
    window features it has (one of :data:`ENTITY_FEATURES`) and their name prefix."""

    name: str
    column: str
    features: str
    prefix: str

    @property
    def is_velocity(self) -> bool:
        """Whether the entity has velocity windows (else the delayed fraud rate)."""
        return self.features == "velocity"


#: The built-in entities, declared by name alone; their features keep the names they always had.
BUILTIN_ENTITIES: Final = {
    "customer": Entity("customer", s.CUSTOMER_ID, "velocity", "cust"),
    "terminal": Entity("terminal", s.TERMINAL_ID, "risk", "term"),
}

_KEYS: Final = (
    "name",
    "timed",
    "has_amount",
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
    entities: tuple[Entity, ...] = tuple(BUILTIN_ENTITIES.values())
    timed: bool = True
    has_amount: bool = True
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
    def entity_names(self) -> tuple[str, ...]:
        """The names of the declared entities, in declared order."""
        return tuple(e.name for e in self.entities)

    @property
    def entity_columns(self) -> tuple[str, ...]:
        """The key columns of the declared entities, in declared order."""
        return tuple(e.column for e in self.entities)

    def has_entity(self, name: str) -> bool:
        """Whether the data declares the entity ``name`` (``customer``, ``device``...)."""
        return name in self.entity_names

    @property
    def scoring_columns(self) -> tuple[str, ...]:
        """Columns a transaction must carry to be scored (the model's input signature)."""
        return (
            s.TRANSACTION_ID,
            *((s.TIMESTAMP,) if self.timed else ()),
            *self.entity_columns,
            *((s.AMOUNT,) if self.has_amount else ()),
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
            "has_amount": self.has_amount,
            "entities": _entities_as_params(self.entities),
            "categorical_features": {k: list(v) for k, v in self.categorical_features.items()},
            "numeric_features": list(self.numeric_features),
            "sensitive_attributes": {
                k: {"bins": list(self.sensitive_bins[k])} if k in self.sensitive_bins else list(v)
                for k, v in self.sensitive_attributes.items()
            },
            "unseen_category": self.unseen_category,
            "max_learned_categories": self.max_learned_categories,
        }


def _entities_as_params(entities: tuple[Entity, ...]) -> list[str] | dict[str, dict[str, str]]:
    """Built-in entities as a list of names; otherwise the mapping form."""
    if all(BUILTIN_ENTITIES.get(e.name) == e for e in entities):
        return [e.name for e in entities]
    return {
        e.name: {"column": e.column, "features": e.features, "prefix": e.prefix} for e in entities
    }


#: The card-fraud simulator's columns: today's default.
CARD_FRAUD: Final = DatasetSpec()


def dataset_spec(section: Any, where: str = "dataset") -> DatasetSpec:
    """Build and check a :class:`DatasetSpec` from the ``dataset`` params section.

    Raises
    ------
    ParamsError
        One message naming every problem: unknown keys, a role that is not a list or a
        mapping of lists, an unknown or ill-declared entity, a column in two roles or reusing a
        core column, an unknown
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
    entities = _entities(section.get("entities", list(BUILTIN_ENTITIES)))
    for result in (categorical, attributes, numeric, entities):
        problems += result[1]
    problems += _role_clashes(
        {
            "categorical_features": list(categorical[0]),
            "numeric_features": list(numeric[0]),
            "sensitive_attributes": list(attributes[0]),
            "entities": [e.column for e in entities[0] if e.column not in _ENTITY_CORE_COLUMNS],
        }
    )
    timed = section.get("timed", True)
    if not isinstance(timed, bool):
        problems.append(f"timed must be true or false, got {timed!r}")
    elif not timed and entities[0]:
        problems.append(
            f"entities {[e.name for e in entities[0]]} need time (their windows are spans of time): a table "
            "without time (timed: false) declares entities: []"
        )
    has_amount = section.get("has_amount", True)
    if not isinstance(has_amount, bool):
        problems.append(f"has_amount must be true or false, got {has_amount!r}")
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
        has_amount=bool(has_amount),
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


#: Core columns an entity may key by (the built-in entities' columns).
_ENTITY_CORE_COLUMNS: Final = (s.CUSTOMER_ID, s.TERMINAL_ID)


def _entities(value: Any) -> tuple[list[Entity], list[str]]:
    """The declared entities: built-in names, or a mapping of name -> ``{column, features}``."""
    if value is None:
        return [], []
    if isinstance(value, list | tuple):
        names, problems = _column_names(value, "entities")
        unknown = [n for n in names if n not in BUILTIN_ENTITIES]
        if unknown:
            problems.append(
                f"entities {unknown} are not built in (built in: {list(BUILTIN_ENTITIES)}); "
                "declare others with their key column and window features, e.g. "
                "entities: {device: {column: device_id, features: velocity}}"
            )
        return [BUILTIN_ENTITIES[n] for n in names if n in BUILTIN_ENTITIES], problems
    if not isinstance(value, Mapping):
        return [], [f"entities must be a list of names or a mapping, got {value!r}"]
    found = [_entity(str(name), decl) for name, decl in value.items()]
    entities = [e for e, _ in found if e is not None]
    problems = [p for _, issues in found for p in issues]
    for what in ("column", "prefix"):
        values = [getattr(e, what) for e in entities]
        repeated = sorted({v for v in values if values.count(v) > 1})
        if repeated:
            problems.append(f"entities share the {what} {repeated}: each needs its own")
    return entities, problems


def _entity(name: str, decl: Any) -> tuple[Entity | None, list[str]]:
    """One entity of the mapping form (a built-in name may leave out what it has by default)."""
    where = f"entities.{name}"
    decl = {} if decl is None else decl
    if not isinstance(decl, Mapping):
        return None, [f"{where} must be a mapping with column and features, got {decl!r}"]
    unknown = sorted(set(map(str, decl)) - set(_ENTITY_KEYS))
    if unknown:
        return None, [f"{where}: unknown keys {unknown}; allowed {list(_ENTITY_KEYS)}"]
    builtin = BUILTIN_ENTITIES.get(name)
    column = decl.get("column", builtin.column if builtin else None)
    features = decl.get("features", builtin.features if builtin else None)
    prefix = decl.get("prefix", builtin.prefix if builtin else name)
    problems = []
    if not isinstance(column, str) or not column:
        problems.append(f"{where}.column must name the key column, got {column!r}")
    elif column in CORE_COLUMNS and column not in _ENTITY_CORE_COLUMNS:
        problems.append(f"{where}.column names the core column {column!r}, which is not a key")
    if features not in ENTITY_FEATURES:
        problems.append(
            f"{where}.features must be one of {list(ENTITY_FEATURES)} (velocity: count, mean "
            f"amount and time since the last event; risk: the delayed fraud rate), got {features!r}"
        )
    if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix):
        problems.append(f"{where}.prefix must be a name of letters, digits and _, got {prefix!r}")
    if problems:
        return None, problems
    return Entity(name, str(column), str(features), str(prefix)), []


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


def upgraded_spec(spec: DatasetSpec) -> DatasetSpec:
    """A spec pickled before entities were named (their names as text) with :class:`Entity`
    values; any other spec as it is."""
    if all(isinstance(e, Entity) for e in spec.entities):
        return spec
    entities = tuple(
        e if isinstance(e, Entity) else BUILTIN_ENTITIES[str(e)] for e in spec.entities
    )
    return dataclasses.replace(spec, entities=entities)


def load_dataset_spec(path: str | Path = "params.yaml") -> DatasetSpec:
    """The ``dataset`` section of a params file (the card-fraud spec when it has none)."""
    return dataset_spec(read_params(path).get("dataset"))
