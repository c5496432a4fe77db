"""Models compiled to native code with LLVM and called without per-call overhead.

Why this exists: for one-row requests the cost of a small model is the *call*, not the math.
``Booster.predict`` spends ~40-50 µs on one row, and onnxruntime's Python ``run`` at least ~9 µs
even for a one-node graph, while the 900 comparisons of a 60 x 15 forest or the 4,000
multiply-adds of a 64-32 MLP take about a microsecond. :class:`CompiledModel` calls a compiled
``root(double* X, double* out, int start, int end)`` function through ``ctypes`` with input and
output buffers bound once per thread, so a one-row score costs a copy of the row, one foreign
call and one ``exp``: ~3 µs.

Two compilers produce such functions:

* :func:`compile_forest` -- a LightGBM model through lleaves (entry ``forest_root``);
* :func:`compile_mlp` -- an MLP (ReLU layers, ``log1p`` on chosen inputs) written here as LLVM
  IR with llvmlite and optimized by LLVM (entry ``mlp_root``); weights are float32 constants.

The artifact is object code for generic **x86-64** (no host-specific CPU features, so it runs
on any x86-64 machine with the same OS); loading it needs only ``llvmlite``, not LightGBM,
torch or a C compiler. On another architecture loading fails with a message that says so:
deploy the ONNX form of the same model there (``optimize.selection.formats: [onnx]``).

Only numpy and the standard library are imported at module level.
"""

from __future__ import annotations

import ctypes
import math
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: Entry point of a forest compiled by lleaves.
FOREST_ENTRY = "forest_root"
#: Entry point of an MLP compiled by :func:`compile_mlp`.
MLP_ENTRY = "mlp_root"
#: Fast-math flags of the dot products: reassociation lets LLVM vectorize the sums; not
#: ``fast`` as a whole, whose no-NaN assumption would turn NaN inputs into finite scores.
_FAST = ("reassoc", "nsz", "contract")
#: Generic x86-64: the object must not depend on the build machine's CPU extensions.
TARGET_CPU = "x86-64"
LINKS = ("identity", "logistic")
_DOUBLE_P = ctypes.POINTER(ctypes.c_double)
_ROOT_FN = ctypes.CFUNCTYPE(None, _DOUBLE_P, _DOUBLE_P, ctypes.c_int32, ctypes.c_int32)


def compile_forest(model_file: str | Path, object_file: str | Path) -> bytes:
    """Compile a LightGBM text model to x86-64 object code returning raw scores.

    Parameters
    ----------
    model_file : path
        A LightGBM model saved with ``Booster.save_model`` (lleaves parses it itself).
    object_file : path
        Where the object code is written (replaced if it exists).

    Returns
    -------
    bytes
        The object code; :class:`CompiledModel` loads it (entry :data:`FOREST_ENTRY`).
    """
    import lleaves

    model = lleaves.Model(model_file=str(model_file))
    out = Path(object_file)
    out.unlink(missing_ok=True)  # lleaves would silently load a stale object at that path
    model.compile(cache=str(out), raw_score=True, target_cpu=TARGET_CPU, target_cpu_features="")
    return out.read_bytes()


def compile_mlp(
    weights: Sequence[np.ndarray], biases: Sequence[np.ndarray], log_columns: Sequence[int]
) -> bytes:
    """Compile an MLP to x86-64 object code returning its output (the logit).

    Computes in float32, like the torch and ONNX forms, ``x' = x`` with ``log(1 + max(x, 0))``
    on ``log_columns``, then ``h = relu(h @ W + b)`` per hidden layer and ``h @ W + b`` last.
    Dot products may be summed in another order (vectorized), so results agree with onnxruntime
    to ~1e-6, not bit for bit. NaN inputs give NaN, as in torch.

    Parameters
    ----------
    weights, biases : sequences of numpy.ndarray
        Layer ``i`` maps ``h`` to ``h @ weights[i] + biases[i]`` (``weights[i]`` is
        ``[n_in, n_out]``); the last layer has one output.
    log_columns : sequence of int
        Input columns compressed with ``log1p``.

    Returns
    -------
    bytes
        The object code; :class:`CompiledModel` loads it (entry :data:`MLP_ENTRY`).
    """
    import llvmlite.binding as llvm

    _check_layers(weights, biases, log_columns)
    module = llvm.parse_assembly(_mlp_ir(weights, biases, log_columns))
    module.verify()
    machine = _target_machine()
    tuning = llvm.create_pipeline_tuning_options(speed_level=3, size_level=0)
    tuning.loop_vectorization = True
    tuning.slp_vectorization = True
    builder = llvm.create_pass_builder(machine, tuning)
    builder.getModulePassManager().run(module, builder)
    return bytes(machine.emit_object(module))


def _check_layers(
    weights: Sequence[np.ndarray], biases: Sequence[np.ndarray], log_columns: Sequence[int]
) -> None:
    """Shapes that chain: the compiled code trusts them (a mismatch would read out of bounds)."""
    if not weights or len(weights) != len(biases):
        raise ValueError("weights and biases: same non-zero length, one pair per layer")
    if any(np.ndim(w) != 2 for w in weights) or weights[-1].shape[1] != 1:
        raise ValueError("every weight matrix is [n_in, n_out], with one output at the end")
    for k, (w, b) in enumerate(zip(weights, biases, strict=True)):
        if np.shape(b) != (w.shape[1],):
            raise ValueError(f"layer {k}: bias of shape {np.shape(b)}, expected ({w.shape[1]},)")
        if k and weights[k - 1].shape[1] != w.shape[0]:
            raise ValueError(
                f"layer {k} takes {w.shape[0]} inputs but layer {k - 1} gives {weights[k - 1].shape[1]}"
            )
    if any(not 0 <= int(c) < weights[0].shape[0] for c in log_columns):
        raise ValueError(f"log_columns must index the {weights[0].shape[0]} inputs")


def _target_machine() -> Any:
    import llvmlite.binding as llvm

    llvm.initialize()
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    target = llvm.Target.from_triple(llvm.get_process_triple())
    return target.create_target_machine(
        cpu=TARGET_CPU, features="", reloc="pic", codemodel="small", opt=3
    )


def _mlp_ir(
    weights: Sequence[np.ndarray], biases: Sequence[np.ndarray], log_columns: Sequence[int]
) -> str:
    """LLVM IR of ``mlp_root``: a loop over rows, each a chain of dot-product loops."""
    import llvmlite.ir as ir

    f32, f64, i32 = ir.FloatType(), ir.DoubleType(), ir.IntType(32)
    module = ir.Module(name="inferloop_mlp")
    root = ir.Function(
        module,
        ir.FunctionType(ir.VoidType(), [f64.as_pointer(), f64.as_pointer(), i32, i32]),
        name=MLP_ENTRY,
    )
    X, out, start, end = root.args
    layers = [
        (_constant(module, f"w{k}", np.asarray(w, np.float32).T), _constant(module, f"b{k}", b))
        for k, (w, b) in enumerate(zip(weights, biases, strict=True))
    ]
    widths = [int(w.shape[0]) for w in weights] + [1]
    b = ir.IRBuilder(root.append_basic_block("entry"))
    buffers = [b.alloca(f32, size=ir.Constant(i32, n)) for n in widths[:-1]]
    log = module.declare_intrinsic("llvm.log", [f32])
    zero, one = ir.Constant(f32, 0.0), ir.Constant(f32, 1.0)
    logged = {int(c) for c in log_columns}

    def relu(value: Any) -> Any:  # 0 where value < 0, else value: NaN stays NaN, as in torch
        return b.select(b.fcmp_ordered("<", value, zero), zero, value)

    def load_row(r: Any) -> None:
        base = b.mul(r, ir.Constant(i32, widths[0]))
        for j in range(widths[0]):
            value = b.fptrunc(b.load(b.gep(X, [b.add(base, ir.Constant(i32, j))])), f32)
            if j in logged:
                value = b.call(log, [b.fadd(relu(value), one)])
            b.store(value, b.gep(buffers[0], [ir.Constant(i32, j)]))

    def row(r: Any) -> None:
        load_row(r)
        for k, (w, bias) in enumerate(layers):
            n_in, last = widths[k], k == len(layers) - 1

            def unit(
                o: Any,
                k: int = k,
                w: Any = w,
                bias: Any = bias,
                n_in: int = n_in,
                last: bool = last,
            ) -> None:
                offset = b.mul(o, ir.Constant(i32, n_in))
                total = _dot(b, w, offset, buffers[k], n_in)
                z = b.fadd(total, b.load(b.gep(bias, [ir.Constant(i32, 0), o])), flags=_FAST)
                if last:
                    b.store(b.fpext(z, f64), b.gep(out, [r]))
                else:
                    b.store(relu(z), b.gep(buffers[k + 1], [o]))

            _loop(b, ir.Constant(i32, 0), ir.Constant(i32, widths[k + 1]), unit)

    _loop(b, start, end, row)
    b.ret_void()
    return str(module)


def _constant(module: Any, name: str, values: np.ndarray) -> Any:
    """A private float32 constant array in ``module``."""
    import llvmlite.ir as ir

    flat = np.asarray(values, np.float32).ravel()
    kind = ir.ArrayType(ir.FloatType(), flat.size)
    variable = ir.GlobalVariable(module, kind, name=name)
    variable.initializer = ir.Constant(kind, [float(v) for v in flat])
    variable.global_constant = True
    variable.linkage = "internal"
    return variable


def _loop(b: Any, first: Any, stop: Any, body: Callable[[Any], None]) -> None:
    """``for i in range(first, stop): body(i)`` at the builder's position."""
    import llvmlite.ir as ir

    before = b.block
    head, inside, done = (b.append_basic_block(n) for n in ("loop", "body", "done"))
    b.branch(head)
    b.position_at_end(head)
    i = b.phi(first.type)
    i.add_incoming(first, before)
    b.cbranch(b.icmp_signed("<", i, stop), inside, done)
    b.position_at_end(inside)
    body(i)
    i.add_incoming(b.add(i, ir.Constant(first.type, 1)), b.block)
    b.branch(head)
    b.position_at_end(done)


def _dot(b: Any, w: Any, offset: Any, h: Any, n: int) -> Any:
    """``sum(w[offset + i] * h[i] for i < n)`` as a loop LLVM may vectorize (fast-math)."""
    import llvmlite.ir as ir

    i32, f32 = ir.IntType(32), ir.FloatType()
    before = b.block
    head, inside, done = (b.append_basic_block(n_) for n_ in ("dot", "dot.body", "dot.done"))
    b.branch(head)
    b.position_at_end(head)
    i, acc = b.phi(i32), b.phi(f32)
    i.add_incoming(ir.Constant(i32, 0), before)
    acc.add_incoming(ir.Constant(f32, 0.0), before)
    b.cbranch(b.icmp_signed("<", i, ir.Constant(i32, n)), inside, done)
    b.position_at_end(inside)
    product = b.fmul(
        b.load(b.gep(w, [ir.Constant(i32, 0), b.add(offset, i)])),
        b.load(b.gep(h, [i])),
        flags=_FAST,
    )
    i.add_incoming(b.add(i, ir.Constant(i32, 1)), inside)
    acc.add_incoming(b.fadd(acc, product, flags=_FAST), inside)
    b.branch(head)
    b.position_at_end(done)
    return acc


def _load_entry(object_code: bytes, entry: str) -> tuple[Any, Any]:
    """Load object code into an LLVM execution engine; returns (engine, entry function)."""
    import llvmlite.binding as llvm

    machine = _target_machine()
    # An empty module whose "cached object" is our code: MCJIT links it instead of compiling
    # (the way lleaves reloads its cache), so no compiler runs at load.
    engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), machine)
    engine.set_object_cache(getbuffer_func=lambda _module: object_code)
    engine.finalize_object()
    address = engine.get_function_address(entry)
    if not address:
        raise RuntimeError(f"the compiled model has no {entry!r} function")
    return engine, _ROOT_FN(address)


def _logistic(z: float) -> float:
    """Sigmoid of one float without overflow for large |z|."""
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


class _BoundRow:
    """One thread's single-row input/output buffers and their pointers."""

    def __init__(self, n_features: int) -> None:
        self.x = np.zeros((1, n_features), dtype=np.float64)
        self.out = np.zeros(1, dtype=np.float64)
        self.x_ptr = self.x.ctypes.data_as(_DOUBLE_P)
        self.out_ptr = self.out.ctypes.data_as(_DOUBLE_P)


#: Rows per native call: the compiled code indexes rows x features with 32-bit integers.
_MAX_ROWS_PER_CALL = 1_000_000


def process_triple() -> str:
    """LLVM's target triple of this process (e.g. ``x86_64-unknown-linux-gnu``)."""
    import llvmlite.binding as llvm

    return str(llvm.get_process_triple())


def _platform_of(triple: str) -> tuple[str, str]:
    """(architecture, operating system) of a target triple; the vendor field varies."""
    parts = triple.split("-")
    arch = parts[0].replace("amd64", "x86_64")
    system = next((p for p in parts[1:] if p.startswith(("linux", "darwin", "macos", "win"))), "")
    return arch, system


class CompiledModel:
    """Scores of a compiled model: ``link(raw output)``, computed on the calling thread.

    Parameters
    ----------
    object_code : bytes
        From :func:`compile_forest` or :func:`compile_mlp`.
    n_features : int
        Columns the model reads.
    link : {"logistic", "identity"}
        Applied to the raw output: ``logistic`` for a binary classifier's or a regressor's
        logit, ``identity`` for a regressor on probabilities.
    entry : str
        Name of the compiled function (:data:`FOREST_ENTRY` or :data:`MLP_ENTRY`).
    triple : str, optional
        LLVM target triple the code was compiled for; defaults to this process's (build the
        model where it was compiled). Loading checks architecture and operating system.

    Notes
    -----
    Picklable: only the object code is stored; the native function is loaded again on first
    use in each process. Thread-safe: the model is a pure function and every thread has its
    own one-row buffers (MLflow's server runs requests on a thread pool).
    """

    def __init__(
        self,
        object_code: bytes,
        n_features: int,
        link: str = "logistic",
        entry: str = FOREST_ENTRY,
        triple: str = "",
    ) -> None:
        if link not in LINKS:
            raise ValueError(f"link must be one of {LINKS}, got {link!r}")
        self.object_code = object_code
        self.n_features = int(n_features)
        self.link = link
        self.entry = entry
        self.triple = triple or process_triple()
        self._entry: Any = None
        self._engine: Any = None
        self._local = threading.local()
        self._lock = threading.Lock()

    @property
    def size_bytes(self) -> int:
        """Size of the object code."""
        return len(self.object_code)

    def _function(self) -> Any:
        if self._entry is None:
            with self._lock:
                if self._entry is None:
                    here = process_triple()
                    target = _platform_of(self.triple)
                    if target != _platform_of(here) or target[0] != "x86_64":
                        raise RuntimeError(
                            f"this model is compiled for {self.triple}; this process runs on "
                            f"{here}. Deploy the ONNX form of the model here "
                            "(optimize.selection.formats: [onnx])."
                        )
                    self._engine, self._entry = _load_entry(self.object_code, self.entry)
        return self._entry

    def _one_row(self, X: np.ndarray) -> float:
        """Raw output of a ``(1, n_features)`` row through this thread's bound buffers."""
        entry = self._entry if self._entry is not None else self._function()
        bound = self._bound()
        bound.x[...] = X  # one copy, float32 -> float64
        entry(bound.x_ptr, bound.out_ptr, 0, 1)
        return float(bound.out[0])

    def raw_scores(self, X: np.ndarray) -> np.ndarray:
        """Raw output (a forest's sum of leaf values, an MLP's logit) of the rows of ``X``."""
        X = np.atleast_2d(X)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(
                f"expected rows of {self.n_features} features, got an array of shape {X.shape}"
            )
        if X.shape[0] == 1:
            return np.array([self._one_row(X)])
        entry = self._function()
        data = np.ascontiguousarray(X, dtype=np.float64)
        out = np.empty(len(data), dtype=np.float64)
        rows_per_call = max(1, min(_MAX_ROWS_PER_CALL, (2**31 - 1) // max(self.n_features, 1)))
        for first in range(0, len(data), rows_per_call):
            block = slice(first, first + rows_per_call)
            chunk, chunk_out = data[block], out[block]  # contiguous views
            entry(
                chunk.ctypes.data_as(_DOUBLE_P),
                chunk_out.ctypes.data_as(_DOUBLE_P),
                0,
                len(chunk),
            )
        return out

    def predict_scores(self, X: np.ndarray) -> np.ndarray:
        """Scores (``link`` of the raw output) of the rows of ``X``."""
        if X.ndim == 2 and X.shape[0] == 1 and X.shape[1] == self.n_features:
            # the hot path of a one-row request: every call here costs ~0.1-0.5 µs, as much
            # as the model itself, so it skips checks and uses a scalar exp
            raw = self._one_row(X)
            return np.array([_logistic(raw) if self.link == "logistic" else raw])
        raw_scores = self.raw_scores(X)
        if self.link == "identity":
            return raw_scores
        from scipy.special import expit  # no overflow warning for large |raw|

        return np.asarray(expit(raw_scores), dtype=np.float64)

    def _bound(self) -> _BoundRow:
        try:
            return self._local.bound
        except AttributeError:
            bound = self._local.bound = _BoundRow(self.n_features)
            return bound

    def __getstate__(self) -> dict[str, Any]:
        return {
            "object_code": self.object_code,
            "n_features": self.n_features,
            "link": self.link,
            "entry": self.entry,
            "triple": self.triple,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["object_code"],
            state["n_features"],
            state["link"],
            state["entry"],
            state["triple"],
        )
