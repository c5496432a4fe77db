"""Run models compiled to native x86-64 code, called through ``ctypes`` without per-call overhead.

Why this exists: for one-row requests the cost of a small model is the *call*, not the math
(``Booster.predict`` and onnxruntime's Python ``run`` pay a fixed cost per call that dwarfs a
small forest or MLP; figures in ``docs/architecture.md`` and ``benchmarks/results/optimize.json``).
:class:`CompiledModel` calls a compiled ``root(double* X, double* out, int start, int end)``
function with input and output buffers bound once per thread, so a one-row score costs a copy
of the row, one foreign call and one ``exp``.

The object code is for generic **x86-64** (no host-specific CPU features, so it runs on any
x86-64 machine with the same OS); loading it needs only ``llvmlite``, not LightGBM, torch or a
C compiler. On another architecture loading fails with a message that says so: deploy the ONNX
form of the same model there (``optimize.selection.formats: [onnx]``). The compilers that
produce the objects are in :mod:`inferloop.edge.builders.compile`.

Only numpy and the standard library are imported at module level.
"""

from __future__ import annotations

import ctypes
import math
import threading
from typing import Any

import numpy as np

__all__ = [
    "FOREST_ENTRY",
    "LINKS",
    "MLP_ENTRY",
    "TARGET_CPU",
    "CompiledModel",
    "process_triple",
    "target_machine",
]


#: Entry point of a forest compiled by lleaves.
FOREST_ENTRY = "forest_root"
#: Entry point of an MLP compiled by :func:`compile_mlp`.
MLP_ENTRY = "mlp_root"
#: Generic x86-64: the object must not depend on the build machine's CPU extensions.
TARGET_CPU = "x86-64"
LINKS = ("identity", "logistic")
_DOUBLE_P = ctypes.POINTER(ctypes.c_double)
_ROOT_FN = ctypes.CFUNCTYPE(None, _DOUBLE_P, _DOUBLE_P, ctypes.c_int32, ctypes.c_int32)


def target_machine() -> Any:
    """The LLVM target machine for generic x86-64 code on this process's OS (build and load)."""
    import llvmlite.binding as llvm

    llvm.initialize()
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    target = llvm.Target.from_triple(llvm.get_process_triple())
    return target.create_target_machine(
        cpu=TARGET_CPU, features="", reloc="pic", codemodel="small", opt=3
    )


def _load_entry(object_code: bytes, entry: str) -> tuple[Any, Any]:
    """Load object code into an LLVM execution engine; returns (engine, entry function)."""
    import llvmlite.binding as llvm

    machine = target_machine()
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
            # the hot path of a one-row request: every call here costs as much
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
