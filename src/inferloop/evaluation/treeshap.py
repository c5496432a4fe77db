"""Exact TreeSHAP of a LightGBM model in time linear in its size, compiled for this CPU.

LightGBM's ``pred_contrib`` runs the original TreeSHAP recursion: O(leaves x depth²) per
tree, about 1.5 ms for one row of a 300-tree model on this project's machines -- more than
the rest of a request. This module computes the same values (path-dependent TreeSHAP, covers
from LightGBM's per-node data counts; equal to ``pred_contrib`` to rounding, which the tests
check row by row) in O(edges x q), with q about half the depth:

* For a leaf ``l`` whose path splits on the features ``P`` (splits on one feature merged:
  ``z_j`` the product of their cover ratios, ``o_j`` = 1 when the row follows all of them),
  the Shapley weights ``|S|!(d-|S|-1)!/d!`` are the integral over [0, 1] of
  ``t^|S| (1-t)^(d-1-|S|)``. So feature ``i`` gets
  ``v_l (o_i - z_i) ∫ Π_{j≠i} (z_j + (o_j - z_j) t) dt``, a polynomial of degree ``d-1``
  that Gauss-Legendre quadrature on ``q = ceil(d_max / 2)`` nodes integrates exactly.
* Going down, each edge's path product ``G(t) = Π_j g_j(t)`` at the q nodes is its parent's,
  times the new factor, over the factor the same feature had higher up. Coming back up, ``S``
  sums ``v_l G_l`` over the leaves below an edge; an edge on feature ``i`` then adds
  ``Σ_q w_q S(t_q) [(o - z) / g(t_q)]`` for its merged split and subtracts the same for the
  split on ``i`` above it, so each leaf is credited once, with its deepest merged split.

The kernel walks the edges of all trees in pre-order once per row, keeping the path it is on
in a stack indexed by depth (a few KB, so it stays in the fastest cache however cold the rest
of the process left it); the model's arrays are read in order. It is LLVM IR built here with
llvmlite -- already a dependency, for the edge models -- and compiled once per process for the
host CPU; no C compiler is needed. Which child a row takes at each split is decided in the
kernel as LightGBM decides it, by the rule the path attribution's walk follows (NaN, zero as
missing, default sides). A model this does not cover (categorical splits, more than one tree
per iteration, linear trees, a node without data counts) gets None from :func:`shap_table`,
and its caller falls back to ``pred_contrib``.
"""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from inferloop.core.native import JitFunction, ir_loop, ir_while, jit_function
from inferloop.evaluation.path_attribution import MISSING_TYPES, ZERO_THRESHOLD

__all__ = ["ShapTable", "shap_contributions", "shap_table"]

_ENTRY: Final = "treeshap_rows"
_I64P, _F64P = ctypes.POINTER(ctypes.c_int64), ctypes.POINTER(ctypes.c_double)
_PROTOTYPE = ctypes.CFUNCTYPE(None, _I64P, _I64P, _F64P, ctypes.c_int32, _F64P, ctypes.c_int32)
_KERNELS: dict[tuple[tuple[float, ...], tuple[float, ...]], JitFunction] = {}
_COMPILE_LOCK = threading.Lock()
#: Quadrature nodes are padded to whole SIMD vectors of this many doubles.
_LANES: Final = 4
_SCRATCH = threading.local()
#: Vectors of q values per stack level: G, S, 1/g and (o - z)/g of the level's edge.
_LEVEL_VECTORS: Final = 4


@dataclass(frozen=True)
class ShapTable:
    """A LightGBM model as the kernel reads it: its edges in pre-order, trees one after another.

    For each edge ``e`` (the link from a split node to one child): ``depth[e]`` (1 under a
    root), ``prev_depth[e]`` the depth of the nearest edge above it on the same feature (0 if
    none), ``z[e]`` its merged cover ratio, ``leaf_value[e]`` the child's value if
    ``is_leaf[e]``. ``split_node[e]`` / ``is_left[e]`` say which split it leaves and to which
    side; ``node_*`` describe the splits (feature, threshold, missing type, default side).
    """

    depth: np.ndarray
    prev_depth: np.ndarray
    feature: np.ndarray
    is_leaf: np.ndarray
    z: np.ndarray
    leaf_value: np.ndarray
    split_node: np.ndarray
    is_left: np.ndarray
    node_feature: np.ndarray
    node_threshold: np.ndarray
    node_missing: np.ndarray
    node_default_left: np.ndarray
    nodes: np.ndarray  # t_q: Gauss-Legendre nodes on [0, 1]
    weights: np.ndarray
    base: float
    n_features: int
    max_depth: int

    @property
    def q(self) -> int:
        """Quadrature nodes per edge (padded to whole vectors)."""
        return len(self.nodes)


def shap_table(booster: Any) -> ShapTable | None:
    """The :class:`ShapTable` of a LightGBM ``Booster``; None for a model it does not cover.

    The trees are read from the model's text form (``model_to_string``), which writes every
    threshold and leaf value to 17 significant digits, so they read back exactly; its JSON
    dump holds the same values but takes about ten times as long to make and parse.
    """
    header, trees = _text_trees(booster.model_to_string())
    if int(header.get("num_tree_per_iteration", "1")) != 1:
        return None
    edges = _Edges()
    for tree in trees:
        if not edges.add_tree(tree):
            return None
    return edges.table(n_features=int(header["max_feature_idx"]) + 1)


#: Bits of a split's ``decision_type`` in LightGBM's text model, and its missing types.
_CATEGORICAL, _DEFAULT_LEFT = 1, 2
_MISSING_OF_BITS = {0: MISSING_TYPES["None"], 1: MISSING_TYPES["Zero"], 2: MISSING_TYPES["NaN"]}


def _text_trees(text: str) -> tuple[dict[str, str], list[_Tree]]:
    """The header fields and the trees of a LightGBM text model."""
    head, _, body = text.partition("\nTree=")
    header = dict(line.split("=", 1) for line in head.splitlines() if "=" in line)
    body = body.split("\nend of trees", 1)[0]
    trees = []
    for block in body.split("\nTree=") if body else []:
        # the block's first line is the tree's index; the rest are ``name=values``
        fields = dict(line.split("=", 1) for line in block.splitlines()[1:] if "=" in line)
        trees.append(_Tree.of({name: values.split() for name, values in fields.items()}))
    return header, trees


@dataclass(frozen=True)
class _Tree:
    """One tree's arrays as Python lists. Split ``i``'s children are split ``c`` when
    ``c >= 0``, else leaf ``~c``; split 0 is the root."""

    split_feature: list[int]
    threshold: list[float]
    decision_type: list[int]
    left_child: list[int]
    right_child: list[int]
    leaf_value: list[float]
    leaf_count: list[float]
    internal_count: list[float]
    linear: bool

    @staticmethod
    def of(fields: dict[str, list[str]]) -> _Tree:
        """The tree of a text model's ``name=values`` fields."""

        def numbers(name: str, kind: type[int] | type[float]) -> list[Any]:
            return [kind(v) for v in fields.get(name, [])]

        return _Tree(
            split_feature=numbers("split_feature", int),
            threshold=numbers("threshold", float),
            decision_type=numbers("decision_type", int),
            left_child=numbers("left_child", int),
            right_child=numbers("right_child", int),
            leaf_value=numbers("leaf_value", float),
            leaf_count=numbers("leaf_count", float),
            internal_count=numbers("internal_count", float),
            linear=fields.get("is_linear", ["0"])[0] != "0",
        )

    def count(self, node: int) -> float:
        """A node's training-row count, LightGBM's cover for TreeSHAP (0 if absent)."""
        counts, at = (self.internal_count, node) if node >= 0 else (self.leaf_count, ~node)
        return counts[at] if at < len(counts) else 0.0


class _Edges:
    """Collects the edges of the trees in pre-order (the builder of a :class:`ShapTable`)."""

    def __init__(self) -> None:
        self.columns: dict[str, list[Any]] = {
            name: []
            for name in (
                "depth",
                "prev_depth",
                "feature",
                "is_leaf",
                "z",
                "leaf_value",
                "split_node",
                "is_left",
            )
        }
        self.nodes: list[tuple[int, float, int, bool]] = []
        self.base = 0.0
        self.max_path = 0
        self.max_depth = 0

    def add_tree(self, tree: _Tree) -> bool:
        """Add one tree; False if it has a split or a node the kernel cannot take."""
        if tree.linear:  # a linear tree's leaves are not constants
            return False
        if not tree.split_feature:  # a constant tree: its value is all expectation
            self.base += tree.leaf_value[0] if tree.leaf_value else 0.0
            return True
        root_count = tree.count(0)
        if not root_count:
            return False
        return self._visit(tree, 0, 0, {}, 1.0 / root_count)

    def _visit(
        self, tree: _Tree, node: int, depth: int, path: dict[int, tuple[int, float]], share: float
    ) -> bool:
        """Add the edges below ``node`` (at ``depth``); ``path``: feature -> (depth, z)."""
        if node < 0:  # a leaf
            self.max_path = max(self.max_path, len(path))
            self.base += tree.leaf_value[~node] * tree.count(node) * share
            return True
        count, decision = tree.count(node), tree.decision_type[node]
        if decision & _CATEGORICAL or not count:
            return False
        at, feature = len(self.nodes), tree.split_feature[node]
        missing = _MISSING_OF_BITS.get((decision >> 2) & 3, 0)
        self.nodes.append((feature, tree.threshold[node], missing, bool(decision & _DEFAULT_LEFT)))
        self.max_depth = max(self.max_depth, depth + 1)
        for child, left in ((tree.left_child[node], True), (tree.right_child[node], False)):
            ratio = tree.count(child) / count
            if ratio <= 0.0:  # an empty child: its factor z(1 - t) would vanish
                return False
            prev_depth, prev_z = path.get(feature, (0, 1.0))
            leaf = child < 0
            value = tree.leaf_value[~child] if leaf else 0.0
            z = ratio * prev_z
            row = (depth + 1, prev_depth, feature, leaf, z, value, at, left)
            for key, item in zip(self.columns, row, strict=True):
                self.columns[key].append(item)
            if not self._visit(tree, child, depth + 1, {**path, feature: (depth + 1, z)}, share):
                return False
        return True

    def table(self, n_features: int) -> ShapTable:
        """The collected edges as arrays, with the quadrature for the longest path."""
        c = self.columns
        exact = max(1, (self.max_path + 1) // 2)  # for the integrand's degree, max_path - 1
        x, w = np.polynomial.legendre.leggauss(exact)
        pad = -exact % _LANES  # lanes of weight 0 (any t in (0, 1)) fill the last vector
        t = np.concatenate([(x + 1.0) / 2.0, np.full(pad, 0.5)])
        w = np.concatenate([w / 2.0, np.zeros(pad)])
        nodes: list[Any] = list(zip(*self.nodes, strict=True)) if self.nodes else [()] * 4
        return ShapTable(
            depth=np.asarray(c["depth"], np.int32),
            prev_depth=np.asarray(c["prev_depth"], np.int32),
            feature=np.asarray(c["feature"], np.int32),
            is_leaf=np.asarray(c["is_leaf"], np.int8),
            z=np.asarray(c["z"], np.float64),
            leaf_value=np.asarray(c["leaf_value"], np.float64),
            split_node=np.asarray(c["split_node"], np.int32),
            is_left=np.asarray(c["is_left"], np.int8),
            node_feature=np.asarray(nodes[0], np.int32),
            node_threshold=np.asarray(nodes[1], np.float64),
            node_missing=np.asarray(nodes[2], np.int8),
            node_default_left=np.asarray(nodes[3], np.int8),
            nodes=t,
            weights=w,
            base=self.base,
            n_features=n_features,
            max_depth=self.max_depth,
        )


def shap_contributions(table: ShapTable, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row, per-feature TreeSHAP values and the base of each row, as ``pred_contrib``.

    ``values.sum(axis=1) + base`` is each row's raw margin. Rows may have more columns than
    the model reads; the first ``n_features`` are used.
    """
    x = np.ascontiguousarray(matrix, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < table.n_features:
        raise ValueError(f"expected rows of {table.n_features} features, got shape {x.shape}")
    values = np.zeros((len(x), table.n_features), dtype=np.float64)
    if len(x):
        _kernel(table)(
            _model_pointers(table).ctypes.data_as(_I64P),
            _work_pointers(table).ctypes.data_as(_I64P),
            x.ctypes.data_as(_F64P),
            x.shape[1],
            values.ctypes.data_as(_F64P),
            len(x),
        )
    return values, np.full(len(x), table.base)


#: The arrays of a :class:`ShapTable` the kernel reads, in the order of its model table.
_MODEL_ARRAYS: Final = (
    "node_feature",
    "node_threshold",
    "node_missing",
    "node_default_left",
    "depth",
    "prev_depth",
    "feature",
    "is_leaf",
    "split_node",
    "is_left",
    "z",
    "leaf_value",
)
#: The kernel's working arrays: the side each split sends the row (int8, one per split); the
#: stack's vectors, o and (feature, prev depth) per level; the features' partial sums.
_WORK_ARRAYS: Final = ("left", "stack", "stack_o", "stack_ids", "acc")


def _model_pointers(table: ShapTable) -> np.ndarray:
    """Sizes and array addresses of ``table`` as the kernel's int64 model table (cached)."""
    cached = table.__dict__.get("_pointers")
    if cached is not None:
        return cached
    sizes = [len(table.z), len(table.node_feature), table.n_features]
    addresses = [getattr(table, name).ctypes.data for name in _MODEL_ARRAYS]
    out = np.asarray(sizes + addresses, dtype=np.int64)
    object.__setattr__(table, "_pointers", out)  # frozen: a cache, not a field
    return out


def _work_pointers(table: ShapTable) -> np.ndarray:
    """This thread's working arrays as the kernel's int64 work table, grown when too small."""
    levels = table.max_depth + 1
    sizes = (
        len(table.node_feature),
        levels * _LEVEL_VECTORS * table.q,
        levels,
        2 * levels,
        table.n_features * table.q,
    )
    work = getattr(_SCRATCH, "work", None)
    if work is None or any(a.size < n for a, n in zip(work[0], sizes, strict=True)):
        kinds = (np.int8, np.float64, np.float64, np.int32, np.float64)
        arrays = tuple(np.zeros(max(n, 1), k) for n, k in zip(sizes, kinds, strict=True))
        work = _SCRATCH.work = (arrays, np.asarray([a.ctypes.data for a in arrays], np.int64))
    return work[1]


def _kernel(table: ShapTable) -> JitFunction:
    """The compiled kernel for the table's quadrature, built on first use in this process
    (tables with the same quadrature share it) and then kept on the table."""
    cached = table.__dict__.get("_kernel")
    if cached is not None:
        return cached
    key = (tuple(table.nodes.tolist()), tuple(table.weights.tolist()))
    with _COMPILE_LOCK:
        kernel = _KERNELS.get(key)
        if kernel is None:
            kernel = _KERNELS[key] = jit_function(_kernel_ir(*key), _ENTRY, _PROTOTYPE)
    object.__setattr__(table, "_kernel", kernel)  # frozen: a cache, not a field
    return kernel


def _kernel_ir(nodes: tuple[float, ...], weights: tuple[float, ...]) -> str:
    """LLVM IR of ``treeshap_rows(model, work, x, stride, phi, rows)``.

    ``model`` is :func:`_model_pointers`' table, ``work`` :func:`_work_pointers`'. Per row:
    the side each split sends the row, then one pass over the edges in pre-order with the
    current path on a stack (level 0: the empty path); an edge at depth d first closes the
    levels d and deeper (their ``S`` is complete: its term, and into the parent's ``S``), then
    a leaf adds its term and its ``v G`` to its parent's ``S``, a split's edge is pushed.
    Each feature's q partial sums go into ``phi`` (rows x features, added to) at the end.
    """
    return str(_Kernel(nodes, weights).module)


class _Kernel:
    """Builds the kernel's LLVM module (see :func:`_kernel_ir`); one small method per part."""

    def __init__(self, nodes: tuple[float, ...], weights: tuple[float, ...]) -> None:
        import llvmlite.ir as ir

        self.ir, self.q = ir, len(nodes)
        self.f64, self.i64, self.i32, self.i8 = (
            ir.DoubleType(),
            ir.IntType(64),
            ir.IntType(32),
            ir.IntType(8),
        )
        self.vec = ir.VectorType(self.f64, self.q)
        self.module = ir.Module(name="inferloop_treeshap")
        self.t = self.lanes(nodes)
        self.w = self.lanes(weights)
        self.inv_rest = self.lanes(1.0 / (1.0 - v) for v in nodes)  # 1 / (1 - t)
        self.minus_inv_rest = self.lanes(-1.0 / (1.0 - v) for v in nodes)
        self.fabs = self.module.declare_intrinsic("llvm.fabs", [self.f64])
        inner = self.build_rows()
        self.build_entry(inner)

    # -- values and memory
    def c(self, value: float) -> Any:
        return self.ir.Constant(self.f64, value)

    def lanes(self, values: Any) -> Any:
        return self.ir.Constant(self.vec, [float(v) for v in values])

    def n64(self, value: int) -> Any:
        return self.ir.Constant(self.i64, value)

    def wide(self, value: Any) -> Any:
        return self.b.sext(value, self.i64)

    def get(self, name: str, index: Any) -> Any:
        return self.b.load(self.b.gep(self.arrays[name], [index]))

    def vptr(self, array: Any, row: Any) -> Any:  # the q values of ``row`` as a vector
        at = self.b.gep(array, [self.b.mul(row, self.n64(self.q))])
        return self.b.bitcast(at, self.vec.as_pointer())

    def vload(self, array: Any, row: Any) -> Any:
        return self.b.load(self.vptr(array, row), align=8)

    def vstore(self, value: Any, array: Any, row: Any) -> None:
        self.b.store(value, self.vptr(array, row), align=8)

    def vadd_into(self, array: Any, row: Any, value: Any) -> None:
        target = self.vptr(array, row)
        self.b.store(self.b.fadd(self.b.load(target, align=8), value), target, align=8)

    def splat(self, value: Any) -> Any:
        ir, b = self.ir, self.b
        one = b.insert_element(ir.Constant(self.vec, None), value, ir.Constant(self.i32, 0))
        mask = ir.Constant(ir.VectorType(self.i32, self.q), [0] * self.q)
        return b.shuffle_vector(one, ir.Constant(self.vec, None), mask)

    # -- the stack: level L's vector k is row L * 4 + k of the stack array
    def level(self, depth: Any, k: int) -> Any:
        return self.b.add(self.b.mul(depth, self.n64(_LEVEL_VECTORS)), self.n64(k))

    def level_id(self, depth: Any, k: int) -> Any:  # k 0: feature, 1: prev depth
        return self.b.gep(
            self.work["stack_ids"], [self.b.add(self.b.mul(depth, self.n64(2)), self.n64(k))]
        )

    # -- the parts
    def build_rows(self) -> Any:
        ir = self.ir
        pointer_types = [self.model_types[name].as_pointer() for name in _MODEL_ARRAYS]
        pointer_types += [self.work_types[name].as_pointer() for name in _WORK_ARRAYS]
        args = [*pointer_types, self.f64.as_pointer(), self.i32, self.f64.as_pointer()]
        args += [self.i32] * 4  # rows, edges, splits, features
        fn = ir.Function(self.module, ir.FunctionType(ir.VoidType(), args), name="rows")
        fn.linkage = "internal"
        for arg in fn.args:
            if isinstance(arg.type, ir.PointerType):
                arg.add_attribute("noalias")  # distinct buffers: LLVM may reorder, keep values
        n_model = len(_MODEL_ARRAYS)
        self.arrays = dict(zip(_MODEL_ARRAYS, fn.args[:n_model], strict=True))
        self.work = dict(zip(_WORK_ARRAYS, fn.args[n_model : n_model + 5], strict=True))
        x, stride, phi, n_rows, n_edges, n_splits, n_features = fn.args[n_model + 5 :]
        self.b = ir.IRBuilder(fn.append_basic_block("entry"))
        self.top = self.b.alloca(self.i64)  # the deepest open level
        zero = ir.Constant(self.i32, 0)

        def row(r: Any) -> None:
            b, r64 = self.b, self.wide(r)
            row_x = b.gep(x, [b.mul(r64, self.wide(stride))])
            row_phi = b.gep(phi, [b.mul(r64, self.wide(n_features))])
            ir_loop(b, zero, n_splits, lambda n: self.decide(row_x, n))
            ir_loop(b, zero, n_features, self.reset)
            self.open_root()
            ir_loop(b, zero, n_edges, self.edge)
            self.close_down_to(self.n64(1))
            ir_loop(b, zero, n_features, lambda f: self.collect(row_phi, f))

        ir_loop(self.b, zero, n_rows, row)
        self.b.ret_void()
        return fn

    @property
    def model_types(self) -> dict[str, Any]:
        doubles = ("node_threshold", "z", "leaf_value")
        bytes_ = ("node_missing", "node_default_left", "is_leaf", "is_left")
        return {
            n: self.f64 if n in doubles else self.i8 if n in bytes_ else self.i32
            for n in _MODEL_ARRAYS
        }

    @property
    def work_types(self) -> dict[str, Any]:
        return {
            "left": self.i8,
            "stack": self.f64,
            "stack_o": self.f64,
            "stack_ids": self.i32,
            "acc": self.f64,
        }

    def decide(self, row_x: Any, n32: Any) -> None:
        """``left[n]``: the side split ``n`` sends the row, as LightGBM decides it."""
        ir, b = self.ir, self.b
        n = self.wide(n32)
        value = b.load(b.gep(row_x, [self.wide(self.get("node_feature", n))]))
        missing = self.get("node_missing", n)
        nan = b.fcmp_unordered("uno", value, value)
        nan_is_missing = b.icmp_signed("==", missing, ir.Constant(self.i8, 2))
        zero_is_missing = b.icmp_signed("==", missing, ir.Constant(self.i8, 1))
        value = b.select(b.and_(nan, b.not_(nan_is_missing)), self.c(0.0), value)
        is_zero = b.fcmp_ordered("<=", b.call(self.fabs, [value]), self.c(ZERO_THRESHOLD))
        is_missing = b.or_(b.and_(zero_is_missing, is_zero), b.and_(nan_is_missing, nan))
        default = b.icmp_signed("!=", self.get("node_default_left", n), ir.Constant(self.i8, 0))
        below = b.fcmp_ordered("<=", value, self.get("node_threshold", n))
        b.store(
            b.zext(b.select(is_missing, default, below), self.i8), b.gep(self.work["left"], [n])
        )

    def reset(self, f: Any) -> None:
        self.vstore(self.lanes([0.0] * self.q), self.work["acc"], self.wide(f))

    def open_root(self) -> None:
        """Level 0, the empty path: G 1, 1/g 1, term 0, o 1."""
        stack, zero = self.work["stack"], self.n64(0)
        for k, value in enumerate((1.0, 0.0, 1.0, 0.0)):
            self.vstore(self.lanes([value] * self.q), stack, self.level(zero, k))
        self.b.store(self.c(1.0), self.b.gep(self.work["stack_o"], [zero]))
        self.b.store(zero, self.top)

    def close_down_to(self, depth: Any) -> None:
        """Close the open levels at ``depth`` and deeper, deepest first."""
        b = self.b

        def close() -> None:
            level = b.load(self.top)
            self.close(level)
            b.store(b.sub(level, self.n64(1)), self.top)

        ir_while(b, lambda: b.icmp_signed(">=", b.load(self.top), depth), close)

    def close(self, level: Any) -> None:
        """A split's edge whose subtree is done: its term on S, and S into the parent's S."""
        b, stack = self.b, self.work["stack"]
        s = self.vload(stack, self.level(level, 1))
        self.vadd_into(stack, self.level(b.sub(level, self.n64(1)), 1), s)
        prev = self.wide(b.load(self.level_id(level, 1)))
        delta = b.fsub(
            self.vload(stack, self.level(level, 3)), self.vload(stack, self.level(prev, 3))
        )
        feature = self.wide(b.load(self.level_id(level, 0)))
        self.vadd_into(self.work["acc"], feature, b.fmul(self.w, b.fmul(s, delta)))

    def edge(self, e32: Any) -> None:
        """Visit one edge: close what it leaves behind, then add a leaf or push a split."""
        b, stack = self.b, self.work["stack"]
        e = self.wide(e32)
        depth = self.wide(self.get("depth", e))
        self.close_down_to(depth)
        parent = b.sub(depth, self.n64(1))
        prev = self.wide(self.get("prev_depth", e))
        o_prev = b.load(b.gep(self.work["stack_o"], [prev]))
        side = b.load(b.gep(self.work["left"], [self.wide(self.get("split_node", e))]))
        takes = b.icmp_signed("==", side, self.get("is_left", e))
        o_e = b.select(takes, o_prev, self.c(0.0))  # followed here and at the split above
        z_e = self.get("z", e)
        change = b.fsub(o_e, z_e)
        g = b.fadd(self.splat(z_e), b.fmul(self.splat(change), self.t))
        # G of the path to e, over g_e: the parent's G over the factor the feature had above
        share = b.fmul(
            self.vload(stack, self.level(parent, 0)), self.vload(stack, self.level(prev, 2))
        )
        leaf = b.icmp_signed("!=", self.get("is_leaf", e), self.ir.Constant(self.i8, 0))
        with b.if_else(leaf) as (then, otherwise):
            with then:
                share_v = b.fmul(self.splat(self.get("leaf_value", e)), share)
                s = b.fmul(share_v, g)
                self.vadd_into(stack, self.level(parent, 1), s)
                # the leaf's own term: v G / g_e (o_e - z_e), g_e cancels
                own = b.fmul(share_v, self.splat(change))
                term = b.fsub(own, b.fmul(s, self.vload(stack, self.level(prev, 3))))
                self.vadd_into(
                    self.work["acc"], self.wide(self.get("feature", e)), b.fmul(self.w, term)
                )
            with otherwise:
                self.push(e, depth, prev, o_e, z_e, b.fmul(share, g))

    def push(self, e: Any, depth: Any, prev: Any, o_e: Any, z_e: Any, product: Any) -> None:
        """Open level ``depth`` for the split's edge ``e``: G, S 0, 1/g, term, o, ids."""
        b, stack = self.b, self.work["stack"]
        followed = b.fcmp_ordered(">", o_e, self.c(0.5))
        one_minus_z = self.splat(b.fsub(self.c(1.0), z_e))
        # 1 / g if followed, 1 / (z + (1 - z) t): computed, not read from a table, to keep
        # the memory the kernel sweeps per row (and evicts from the cache) small
        g_one = b.fadd(self.splat(z_e), b.fmul(one_minus_z, self.t))
        inv_one = b.fdiv(self.lanes([1.0] * self.q), g_one)
        inv_z = b.fdiv(self.c(1.0), z_e)
        inv_g = b.select(followed, inv_one, b.fmul(self.splat(inv_z), self.inv_rest))
        term = b.select(followed, b.fmul(one_minus_z, inv_one), self.minus_inv_rest)
        for k, value in enumerate((product, self.lanes([0.0] * self.q), inv_g, term)):
            self.vstore(value, stack, self.level(depth, k))
        b.store(o_e, b.gep(self.work["stack_o"], [depth]))
        b.store(self.get("feature", e), self.level_id(depth, 0))
        b.store(b.trunc(prev, self.i32), self.level_id(depth, 1))
        b.store(depth, self.top)

    def collect(self, row_phi: Any, f: Any) -> None:
        """phi[f] += the sum of feature f's q partial sums."""
        ir, b = self.ir, self.b
        values = self.vload(self.work["acc"], self.wide(f))
        total = b.extract_element(values, ir.Constant(self.i32, 0))
        for k in range(1, self.q):
            total = b.fadd(total, b.extract_element(values, ir.Constant(self.i32, k)))
        target = b.gep(row_phi, [self.wide(f)])
        b.store(b.fadd(b.load(target), total), target)

    def build_entry(self, inner: Any) -> None:
        """``treeshap_rows``: unpacks the two int64 tables into pointers and calls ``rows``."""
        ir = self.ir
        p64, p_f64 = self.i64.as_pointer(), self.f64.as_pointer()
        kind = ir.FunctionType(ir.VoidType(), [p64, p64, p_f64, self.i32, p_f64, self.i32])
        fn = ir.Function(self.module, kind, name=_ENTRY)
        model, work, x, stride, phi, n_rows = fn.args
        b = ir.IRBuilder(fn.append_basic_block("entry"))

        def word(table: Any, k: int) -> Any:
            return b.load(b.gep(table, [ir.Constant(self.i32, k)]))

        n_edges, n_splits, n_features = (b.trunc(word(model, k), self.i32) for k in range(3))
        types = self.model_types
        pointers = [
            b.inttoptr(word(model, 3 + k), types[name].as_pointer())
            for k, name in enumerate(_MODEL_ARRAYS)
        ]
        pointers += [
            b.inttoptr(word(work, k), self.work_types[name].as_pointer())
            for k, name in enumerate(_WORK_ARRAYS)
        ]
        b.call(inner, [*pointers, x, stride, phi, n_rows, n_edges, n_splits, n_features])
        b.ret_void()
