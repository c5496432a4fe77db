"""Path attribution of a LightGBM model: cheap reason codes for one-row requests.

TreeSHAP as LightGBM's ``pred_contrib`` computes it costs milliseconds for one row of a model
of a few hundred trees: more than the request itself. (The compiled kernel of
:mod:`inferloop.evaluation.treeshap`, which reason codes now use, costs about as much as this
method.) Path attribution (Saabas,
the ``treeinterpreter`` method) follows the row's path down each tree and credits each split's
feature with the change of the node's expected value, from the node to the child the row went
to. The changes telescope: per tree they add up to ``leaf value - expected value of the tree``,
so the contributions plus the base reproduce the raw margin exactly, as TreeSHAP's do, and the
base is the same (the trees' expected values, weighted by the training rows in each node).

What it gives up: a feature is credited only where it is split on along the path, so
features split on near the root get more credit than their Shapley value. The top reasons
mostly agree with TreeSHAP's (``benchmarks/bench_explain.py`` reports how often). TreeSHAP
stays the default; this method is there for a request that asks for it.

All trees are walked together, one level at a time, over arrays of shape (rows, trees), so
the cost is about ``depth`` numpy steps whatever the number of trees.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "MISSING_TYPES",
    "ZERO_THRESHOLD",
    "PathTable",
    "path_contributions",
    "path_table",
]

#: LightGBM's kZeroThreshold: ``|x| <=`` this is zero for missing type Zero.
ZERO_THRESHOLD = 1e-35


@dataclass(frozen=True)
class PathTable:
    """A LightGBM model's trees as arrays of shape (trees, nodes); a leaf's feature is -1."""

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    default_left: np.ndarray
    missing: np.ndarray  # 0: None (NaN reads as 0), 1: Zero, 2: NaN
    value: np.ndarray  # expected value of each node (a leaf: its value)
    depth: int
    n_features: int

    @property
    def base(self) -> float:
        """The model's expected raw margin: the sum of the trees' root values."""
        return float(self.value[:, 0].sum())


#: LightGBM's missing types as the codes of :attr:`PathTable.missing` (0: None, 1: Zero, 2: NaN).
MISSING_TYPES = {"None": 0, "Zero": 1, "NaN": 2}


def path_table(booster: Any) -> PathTable | None:
    """The trees of a LightGBM ``Booster`` as a :class:`PathTable`; None when a tree has a
    split this walk does not know (a categorical split) or the model is not binary."""
    model = booster.dump_model()
    if model.get("num_tree_per_iteration", 1) != 1:
        return None
    nodes: list[list[dict[str, Any]]] = []
    for tree in model["tree_info"]:
        flat = _flatten(tree["tree_structure"])
        if flat is None:
            return None
        nodes.append(flat)
    width = max(len(n) for n in nodes)
    shape = (len(nodes), width)
    table = {
        "feature": np.full(shape, -1, np.int64),
        "threshold": np.zeros(shape),
        "left": np.zeros(shape, np.int64),
        "right": np.zeros(shape, np.int64),
        "default_left": np.zeros(shape, bool),
        "missing": np.zeros(shape, np.int8),
        "value": np.zeros(shape),
    }
    depth = 0
    for t, flat in enumerate(nodes):
        for i, node in enumerate(flat):
            for key in table:
                table[key][t, i] = node[key]
            depth = max(depth, node["depth"])
    return PathTable(**table, depth=depth, n_features=int(model["max_feature_idx"]) + 1)


def _flatten(root: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The nodes of one dumped tree in pre-order (root first), with child positions and the
    count-weighted expected value of each node."""
    out: list[dict[str, Any]] = []

    def visit(node: dict[str, Any], depth: int) -> tuple[int, float, float] | None:
        at = len(out)
        if "leaf_value" in node or "split_feature" not in node:
            value = float(node.get("leaf_value", 0.0))
            out.append(_leaf(value, depth))
            return at, value, float(node.get("leaf_count", 1) or 1)
        if node.get("decision_type", "<=") != "<=":
            return None
        out.append({})
        left, right = visit(node["left_child"], depth + 1), visit(node["right_child"], depth + 1)
        if left is None or right is None:
            return None
        count = left[2] + right[2]
        value = (left[1] * left[2] + right[1] * right[2]) / count
        out[at] = {
            "feature": int(node["split_feature"]),
            "threshold": float(node["threshold"]),
            "left": left[0],
            "right": right[0],
            "default_left": bool(node.get("default_left", True)),
            "missing": MISSING_TYPES.get(str(node.get("missing_type", "None")), 0),
            "value": value,
            "depth": depth,
        }
        return at, value, count

    return out if visit(root, 0) is not None else None


def _leaf(value: float, depth: int) -> dict[str, Any]:
    return {
        "feature": -1,
        "threshold": 0.0,
        "left": 0,
        "right": 0,
        "default_left": False,
        "missing": 0,
        "value": value,
        "depth": depth,
    }


def path_contributions(table: PathTable, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row, per-feature contributions to the raw margin, and the base of each row.

    ``contributions.sum(axis=1) + base`` is the margin LightGBM's ``raw_score`` gives. The
    walk keeps only the (row, tree) pairs still at a split, so each level costs what is left.
    """
    x = np.asarray(matrix, dtype=np.float64)
    n, trees = len(x), table.feature.shape[0]
    flat = _flat(table)
    row = np.repeat(np.arange(n), trees)
    at = np.tile(flat["root"], n)  # each pair's node, as a position in the flattened arrays
    sums = np.zeros(n * table.n_features)
    for _ in range(table.depth + 1):
        feature = flat["feature"][at]
        split = feature >= 0
        if not split.all():
            row, at, feature = row[split], at[split], feature[split]
        if not len(at):
            break
        nxt = _child(flat, at, x[row, feature])
        delta = flat["value"][nxt] - flat["value"][at]
        sums += np.bincount(row * table.n_features + feature, delta, minlength=sums.size)
        at = nxt
    return sums.reshape(n, table.n_features), np.full(n, table.base)


def _flat(table: PathTable) -> dict[str, np.ndarray]:
    """The table's arrays flattened, children as flat positions (cached on the table)."""
    cached = table.__dict__.get("_flat")
    if cached is not None:
        return cached
    width = table.feature.shape[1]
    offset = (np.arange(table.feature.shape[0]) * width)[:, None]
    out = {
        "root": offset[:, 0].copy(),
        "feature": table.feature.ravel(),
        "threshold": table.threshold.ravel(),
        "left": (table.left + offset).ravel(),
        "right": (table.right + offset).ravel(),
        "default_left": table.default_left.ravel(),
        "missing": table.missing.ravel(),
        "value": table.value.ravel(),
    }
    object.__setattr__(table, "_flat", out)  # frozen: a cache, not a field
    return out


def _child(flat: dict[str, np.ndarray], at: np.ndarray, value: np.ndarray) -> np.ndarray:
    """The child each (row, tree) pair goes to from node ``at``, as LightGBM decides it."""
    missing = flat["missing"][at]
    nan = np.isnan(value)
    if nan.any() or (missing == 1).any():
        value = np.where(nan & (missing != 2), 0.0, value)  # NaN reads as 0 unless NaN is missing
        is_missing = ((missing == 1) & (np.abs(value) <= ZERO_THRESHOLD)) | ((missing == 2) & nan)
        left = np.where(is_missing, flat["default_left"][at], value <= flat["threshold"][at])
    else:
        left = value <= flat["threshold"][at]
    return np.where(left, flat["left"][at], flat["right"][at])
