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
* Top-down, each edge keeps its path's product ``G(t) = Π_j g_j(t)`` at the q nodes (the
  parent's, times the new factor, over the factor the same feature had higher up). Bottom-up,
  ``S`` sums ``v_l G_l`` over the leaves below; each edge on feature ``i`` then adds
  ``Σ_q w_q S(t_q) [(o - z) / g(t_q)]`` for its merged split and subtracts the same for the
  split on ``i`` above it, so each leaf is credited once, with its deepest merged split.

The kernel (two passes over the edges of all trees, per row) is LLVM IR built here with
llvmlite -- already a dependency, for the edge models -- and compiled once per process for the
host CPU; no C compiler is needed. Which child each row takes at each split is decided in
numpy by :func:`~inferloop.evaluation.path_attribution.goes_left`, the same rule the path
attribution uses. A model this does not cover (categorical splits, more than one tree per
iteration, a node without data counts) gets None from :func:`shap_table`, and its caller falls
back to ``pred_contrib``.
"""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from inferloop.core.native import JitFunction, ir_loop, jit_function
from inferloop.evaluation.path_attribution import MISSING_TYPES, ZERO_THRESHOLD

__all__ = ["ShapTable", "shap_contributions", "shap_table"]

_ENTRY: Final = "treeshap_rows"
_I64P, _F64P = ctypes.POINTER(ctypes.c_int64), ctypes.POINTER(ctypes.c_double)
_PROTOTYPE = ctypes.CFUNCTYPE(None, _I64P, _I64P, _F64P, ctypes.c_int32, _F64P, ctypes.c_int32)
_KERNELS: dict[tuple[tuple[float, ...], tuple[float, ...]], JitFunction] = {}
_COMPILE_LOCK = threading.Lock()
_LANES: Final = 4
_SCRATCH = threading.local()


@dataclass(frozen=True)
class ShapTable:
    """A LightGBM model as the kernel reads it: its edges in pre-order, trees one after another.

    Edge 0 is a sentinel (the empty path above every root: ``z`` 1, ``o`` 1). For each other
    edge ``e`` (the link from a split node to one child): ``parent[e]`` is the edge into the
    split node (0 at a root), ``prev[e]`` the nearest edge above on the same feature (0 if
    none), ``z[e]`` its merged cover ratio, ``leaf_value[e]`` the child's value if it is a
    leaf, else 0. ``split_node[e]`` / ``is_left[e]`` say which split it leaves and to which
    side; ``node_*`` describe the splits (as :func:`goes_left` reads them). ``internal`` lists
    the edges into split nodes in pre-order, ``leaves`` the edges into leaves.
    """

    parent: np.ndarray
    prev: np.ndarray
    feature: np.ndarray
    z: np.ndarray
    leaf_value: np.ndarray
    split_node: np.ndarray
    is_left: np.ndarray
    node_feature: np.ndarray
    node_threshold: np.ndarray
    node_missing: np.ndarray
    node_default_left: np.ndarray
    internal: np.ndarray
    leaves: np.ndarray
    inv_one: np.ndarray  # (edges, q): 1 / (z + (1 - z) t_q), the merged split's factor if followed
    inv_z: np.ndarray  # 1 / z (the factor of a split not followed is z (1 - t_q))
    nodes: np.ndarray  # t_q: Gauss-Legendre nodes on [0, 1]
    weights: np.ndarray
    base: float
    n_features: int

    @property
    def q(self) -> int:
        """Quadrature nodes per edge."""
        return len(self.nodes)


def shap_table(booster: Any) -> ShapTable | None:
    """The :class:`ShapTable` of a LightGBM ``Booster``; None for a model it does not cover."""
    model = booster.dump_model()
    if model.get("num_tree_per_iteration", 1) != 1:
        return None
    edges = _Edges()
    for tree in model["tree_info"]:
        if not edges.add_tree(tree["tree_structure"]):
            return None
    return edges.table(n_features=int(model["max_feature_idx"]) + 1)


class _Edges:
    """Collects the edges of the trees in pre-order (the builder of a :class:`ShapTable`)."""

    def __init__(self) -> None:
        self.columns: dict[str, list[Any]] = {
            "parent": [0],
            "prev": [0],
            "feature": [0],
            "z": [1.0],
            "leaf_value": [0.0],
            "split_node": [0],
            "is_left": [False],
        }
        self.nodes: list[tuple[int, float, int, bool]] = []
        self.leaf_edges: list[bool] = [False]
        self.base = 0.0
        self.max_path = 0

    def add_tree(self, root: dict[str, Any]) -> bool:
        """Add one dumped tree; False if it has a split or a node the kernel cannot take."""
        if "split_feature" not in root:  # a constant tree: its value is all expectation
            self.base += float(root.get("leaf_value", 0.0))
            return True
        root_count = _count(root)
        if not root_count:
            return False
        return self._visit(root, 0, {}, 1.0 / root_count)

    def _visit(self, node: dict[str, Any], into: int, path: dict[int, int], share: float) -> bool:
        if "split_feature" not in node:
            if "leaf_coeff" in node:  # a linear tree's leaf: not a constant
                return False
            self.max_path = max(self.max_path, len(path))
            self.base += float(node["leaf_value"]) * _count(node) * share
            return True
        count = _count(node)
        if node.get("decision_type", "<=") != "<=" or not count:
            return False
        at, feature = len(self.nodes), int(node["split_feature"])
        self.nodes.append(
            (
                feature,
                float(node["threshold"]),
                MISSING_TYPES.get(str(node.get("missing_type", "None")), 0),
                bool(node.get("default_left", True)),
            )
        )
        for child, left in ((node["left_child"], True), (node["right_child"], False)):
            ratio = _count(child) / count
            if ratio <= 0.0:  # an empty child: its factor z(1 - t) would vanish
                return False
            prev = path.get(feature, 0)
            edge = len(self.columns["parent"])
            leaf = "split_feature" not in child
            values = (into, prev, feature, ratio * self.columns["z"][prev], 0.0, at, left)
            for key, value in zip(self.columns, values, strict=True):
                self.columns[key].append(value)
            self.leaf_edges.append(leaf)
            if leaf:
                self.columns["leaf_value"][edge] = float(child.get("leaf_value", 0.0))
            if not self._visit(child, edge, {**path, feature: edge}, share):
                return False
        return True

    def table(self, n_features: int) -> ShapTable:
        c = self.columns
        exact = max(1, (self.max_path + 1) // 2)  # for the integrand's degree, max_path - 1
        x, w = np.polynomial.legendre.leggauss(exact)
        # padded to whole SIMD vectors of 4 doubles with lanes of weight 0 (any t in (0, 1))
        pad = -exact % _LANES
        t = np.concatenate([(x + 1.0) / 2.0, np.full(pad, 0.5)])
        w = np.concatenate([w, np.zeros(pad)])
        z = np.asarray(c["z"], np.float64)
        nodes: list[Any] = list(zip(*self.nodes, strict=True)) if self.nodes else [()] * 4
        leaf = np.asarray(self.leaf_edges, bool)
        leaf[0] = False  # the sentinel is neither
        return ShapTable(
            parent=np.asarray(c["parent"], np.int32),
            prev=np.asarray(c["prev"], np.int32),
            feature=np.asarray(c["feature"], np.int32),
            z=z,
            leaf_value=np.asarray(c["leaf_value"], np.float64),
            split_node=np.asarray(c["split_node"], np.int32),
            is_left=np.asarray(c["is_left"], np.int8),
            node_feature=np.asarray(nodes[0], np.int32),
            node_threshold=np.asarray(nodes[1], np.float64),
            node_missing=np.asarray(nodes[2], np.int8),
            node_default_left=np.asarray(nodes[3], np.int8),
            internal=np.flatnonzero(~leaf[1:]).astype(np.int32) + 1,
            leaves=np.flatnonzero(leaf).astype(np.int32),
            inv_one=np.ascontiguousarray(1.0 / (z[:, None] + (1.0 - z[:, None]) * t[None, :])),
            inv_z=1.0 / z,
            nodes=t,
            weights=w / 2.0,
            base=self.base,
            n_features=n_features,
        )


def _count(node: dict[str, Any]) -> float:
    """A dumped node's training-row count, LightGBM's cover for TreeSHAP (0 if absent)."""
    return float(node.get("leaf_count", node.get("internal_count", 0)) or 0)


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
    "internal",
    "leaves",
    "parent",
    "prev",
    "feature",
    "split_node",
    "is_left",
    "z",
    "leaf_value",
    "inv_one",
    "inv_z",
)


def _model_pointers(table: ShapTable) -> np.ndarray:
    """Sizes and array addresses of ``table`` as the kernel's int64 model table (cached)."""
    cached = table.__dict__.get("_pointers")
    if cached is not None:
        return cached
    sizes = [len(table.internal), len(table.leaves), len(table.node_feature), table.n_features]
    addresses = [getattr(table, name).ctypes.data for name in _MODEL_ARRAYS]
    out = np.asarray(sizes + addresses, dtype=np.int64)
    object.__setattr__(table, "_pointers", out)  # frozen: a cache, not a field
    return out


def _work_pointers(table: ShapTable) -> np.ndarray:
    """This thread's working arrays as the kernel's int64 work table, grown when too small.

    left (one int8 per split), G and S (edges x q), o (edges), the features' partial sums.
    """
    edges = len(table.z)
    sizes = (
        len(table.node_feature),
        edges * table.q,
        edges * table.q,
        edges,
        table.n_features * table.q,
    )
    work = getattr(_SCRATCH, "work", None)
    if work is None or any(a.size < n for a, n in zip(work[0], sizes, strict=True)):
        arrays: tuple[np.ndarray, ...] = (
            np.empty(max(sizes[0], 1), np.int8),
            *(np.empty(max(n, 1)) for n in sizes[1:]),
        )
        work = _SCRATCH.work = (arrays, np.asarray([a.ctypes.data for a in arrays], np.int64))
    return work[1]


def _kernel(table: ShapTable) -> JitFunction:
    """The compiled kernel for the table's quadrature, built on first use in this process."""
    key = (tuple(table.nodes.tolist()), tuple(table.weights.tolist()))
    kernel = _KERNELS.get(key)
    if kernel is None:
        with _COMPILE_LOCK:
            kernel = _KERNELS.get(key)
            if kernel is None:
                kernel = _KERNELS[key] = jit_function(_kernel_ir(*key), _ENTRY, _PROTOTYPE)
    return kernel


def _kernel_ir(nodes: tuple[float, ...], weights: tuple[float, ...]) -> str:
    """LLVM IR of ``treeshap_rows(model, work, x, stride, phi, rows)``.

    ``model`` is :func:`_model_pointers`' table, ``work`` :func:`_work_pointers`'. Per row:
    which side each split sends the row; top-down over the internal edges (``o``, ``G``);
    the leaf edges (their terms, and ``S`` of their parents); bottom-up over the internal
    edges (``S`` into the parent, their terms); then each feature's q partial sums into
    ``phi`` (rows x features, added to). The q values of an edge are one LLVM vector.
    """
    import llvmlite.ir as ir

    q = len(nodes)
    f64, i64, i32, i8 = ir.DoubleType(), ir.IntType(64), ir.IntType(32), ir.IntType(8)
    vec = ir.VectorType(f64, q)
    module = ir.Module(name="inferloop_treeshap")
    types = {"node_threshold": f64, "node_missing": i8, "node_default_left": i8, "is_left": i8}
    types |= {name: f64 for name in ("z", "leaf_value", "inv_one", "inv_z")}
    model_types = [types.get(name, i32) for name in _MODEL_ARRAYS]
    work_types = [i8, f64, f64, f64, f64]  # left (nodes), G, S (edges x q), o (edges), acc
    inner_args = [t_.as_pointer() for t_ in (*model_types, *work_types)]
    inner_args += [f64.as_pointer(), i32, f64.as_pointer(), i32, i32, i32, i32, i32]
    inner = ir.Function(module, ir.FunctionType(ir.VoidType(), inner_args), name="rows")
    inner.linkage = "internal"
    for arg in inner.args:
        if isinstance(arg.type, ir.PointerType):
            arg.add_attribute("noalias")  # distinct buffers: LLVM may reorder and keep values
    arrays = dict(zip(_MODEL_ARRAYS, inner.args, strict=False))
    left, G, S, o, acc = inner.args[len(_MODEL_ARRAYS) : len(_MODEL_ARRAYS) + 5]
    x, stride, phi, n_rows, n_internal, n_leaves, n_nodes, n_features = inner.args[-8:]
    b = ir.IRBuilder(inner.append_basic_block("entry"))
    fabs = module.declare_intrinsic("llvm.fabs", [f64])

    def c(value: float) -> Any:
        return ir.Constant(f64, value)

    def lanes(values: Any) -> Any:
        return ir.Constant(vec, [float(v) for v in values])

    t_vec, w_vec = lanes(nodes), lanes(weights)
    inv_rest = lanes(1.0 / (1.0 - v) for v in nodes)  # 1 / (1 - t): a split not followed
    minus_inv_rest = lanes(-1.0 / (1.0 - v) for v in nodes)

    def at(array: Any, index: Any) -> Any:
        return b.gep(array, [index])

    def get(name: str, index: Any) -> Any:
        return b.load(at(arrays[name], index))

    def wide(value: Any) -> Any:
        return b.sext(value, i64)

    def pointer(array: Any, row: Any) -> Any:  # the q values of row ``row`` as a vector
        return b.bitcast(at(array, b.mul(row, ir.Constant(i64, q))), vec.as_pointer())

    def vload(array: Any, row: Any) -> Any:
        return b.load(pointer(array, row), align=8)

    def vstore(value: Any, array: Any, row: Any) -> None:
        b.store(value, pointer(array, row), align=8)

    def vadd_into(array: Any, row: Any, value: Any) -> None:
        target = pointer(array, row)
        b.store(b.fadd(b.load(target, align=8), value), target, align=8)

    def splat(value: Any) -> Any:
        one = b.insert_element(ir.Constant(vec, None), value, ir.Constant(i32, 0))
        return b.shuffle_vector(
            one, ir.Constant(vec, None), ir.Constant(ir.VectorType(i32, q), [0] * q)
        )

    def decide(row_x: Any, n32: Any) -> None:  # goes_left of one split, in IR
        n = wide(n32)
        value = b.load(at(row_x, wide(get("node_feature", n))))
        missing = get("node_missing", n)
        nan = b.fcmp_unordered("uno", value, value)
        nan_is_missing = b.icmp_signed("==", missing, ir.Constant(i8, 2))
        zero_is_missing = b.icmp_signed("==", missing, ir.Constant(i8, 1))
        value = b.select(b.and_(nan, b.not_(nan_is_missing)), c(0.0), value)
        is_zero = b.fcmp_ordered("<=", b.call(fabs, [value]), c(ZERO_THRESHOLD))
        is_missing = b.or_(b.and_(zero_is_missing, is_zero), b.and_(nan_is_missing, nan))
        default = b.icmp_signed("!=", get("node_default_left", n), ir.Constant(i8, 0))
        goes = b.select(is_missing, default, b.fcmp_ordered("<=", value, get("node_threshold", n)))
        b.store(b.zext(goes, i8), at(left, n))

    def followed(e: Any, above: Any) -> Any:  # o of edge e: the row takes it and all above
        side = b.load(at(left, wide(get("split_node", e))))
        return b.select(b.icmp_signed("==", side, get("is_left", e)), above, c(0.0))

    def factor(z: Any, o_: Any) -> Any:  # g(t) = z + (o - z) t of a merged split
        return b.fadd(splat(z), b.fmul(splat(b.fsub(o_, z)), t_vec))

    def inv_factor(edge: Any, edge_followed: Any) -> Any:  # 1 / g(t)
        return b.select(
            edge_followed,
            vload(arrays["inv_one"], edge),
            b.fmul(splat(get("inv_z", edge)), inv_rest),
        )

    def term(edge: Any, edge_followed: Any) -> Any:  # (o - z) / g(t) of a merged split
        one_minus_z = splat(b.fsub(c(1.0), get("z", edge)))
        followed_term = b.fmul(one_minus_z, vload(arrays["inv_one"], edge))
        return b.select(edge_followed, followed_term, minus_inv_rest)

    def edge_parts(j: Any, listing: str) -> tuple[Any, Any, Any, Any, Any]:
        e = wide(get(listing, wide(j)))
        p, pv = wide(get("parent", e)), wide(get("prev", e))
        o_pv = b.load(at(o, pv))
        return e, p, pv, o_pv, b.fcmp_ordered(">", o_pv, c(0.5))

    def top_down(j: Any) -> None:
        e, p, pv, o_pv, above_followed = edge_parts(j, "internal")
        o_e = followed(e, o_pv)
        b.store(o_e, at(o, e))
        product = b.fmul(vload(G, p), factor(get("z", e), o_e))
        vstore(b.fmul(product, inv_factor(pv, above_followed)), G, e)
        vstore(ir.Constant(vec, [0.0] * q), S, e)

    def add_term(e: Any, value: Any) -> None:  # into the feature's q partial sums
        vadd_into(acc, wide(get("feature", e)), b.fmul(w_vec, value))

    def leaf(j: Any) -> None:
        e, p, pv, o_pv, above_followed = edge_parts(j, "leaves")
        o_e = followed(e, o_pv)
        z_e, value = get("z", e), get("leaf_value", e)
        # v G_l / g_e: the leaf's own factor cancels from its own term
        share = b.fmul(b.fmul(splat(value), vload(G, p)), inv_factor(pv, above_followed))
        s = b.fmul(share, factor(z_e, o_e))
        vadd_into(S, p, s)
        own = b.fmul(share, splat(b.fsub(o_e, z_e)))
        add_term(e, b.fsub(own, b.fmul(s, term(pv, above_followed))))

    def bottom_up(i: Any) -> None:
        e, p, pv, _, above_followed = edge_parts(b.sub(n_internal, i), "internal")
        edge_followed = b.fcmp_ordered(">", b.load(at(o, e)), c(0.5))
        s = vload(S, e)
        vadd_into(S, p, s)
        add_term(e, b.fmul(s, b.fsub(term(e, edge_followed), term(pv, above_followed))))

    def reset(f: Any) -> None:
        vstore(ir.Constant(vec, [0.0] * q), acc, wide(f))

    def collect(row_phi: Any, f: Any) -> None:  # phi[f] += the sum of its q partial sums
        values = vload(acc, wide(f))
        total = b.extract_element(values, ir.Constant(i32, 0))
        for k in range(1, q):
            total = b.fadd(total, b.extract_element(values, ir.Constant(i32, k)))
        target = at(row_phi, wide(f))
        b.store(b.fadd(b.load(target), total), target)

    def row(r: Any) -> None:
        r64 = wide(r)
        row_x = at(x, b.mul(r64, wide(stride)))
        row_phi = at(phi, b.mul(r64, wide(n_features)))
        zero, one = ir.Constant(i32, 0), ir.Constant(i32, 1)
        ir_loop(b, zero, n_nodes, lambda n: decide(row_x, n))
        ir_loop(b, zero, n_features, reset)
        b.store(c(1.0), at(o, ir.Constant(i64, 0)))  # the sentinel: the empty path
        vstore(ir.Constant(vec, [1.0] * q), G, ir.Constant(i64, 0))
        ir_loop(b, zero, n_internal, top_down)
        ir_loop(b, zero, n_leaves, leaf)
        ir_loop(b, one, b.add(n_internal, one), bottom_up)
        ir_loop(b, zero, n_features, lambda f: collect(row_phi, f))

    ir_loop(b, ir.Constant(i32, 0), n_rows, row)
    b.ret_void()
    _entry(module, inner, model_types, work_types)
    return str(module)


def _entry(module: Any, inner: Any, model_types: list[Any], work_types: list[Any]) -> None:
    """``treeshap_rows``: unpacks the two int64 tables into pointers and calls ``rows``."""
    import llvmlite.ir as ir

    f64, i64, i32 = ir.DoubleType(), ir.IntType(64), ir.IntType(32)
    p64, p_f64 = i64.as_pointer(), f64.as_pointer()
    kind = ir.FunctionType(ir.VoidType(), [p64, p64, p_f64, i32, p_f64, i32])
    fn = ir.Function(module, kind, name=_ENTRY)
    model, work, x, stride, phi, n_rows = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))

    def word(table: Any, k: int) -> Any:
        return b.load(b.gep(table, [ir.Constant(i32, k)]))

    sizes = [b.trunc(word(model, k), i32) for k in range(4)]
    pointers = [b.inttoptr(word(model, 4 + k), t.as_pointer()) for k, t in enumerate(model_types)]
    pointers += [b.inttoptr(word(work, k), t.as_pointer()) for k, t in enumerate(work_types)]
    b.call(inner, [*pointers, x, stride, phi, n_rows, *sizes])
    b.ret_void()
