"""LightGBM forests compiled to native code (lleaves / LLVM) and called without overhead.

Why this exists: for one-row requests the cost of a small model is the *call*, not the trees.
``Booster.predict`` spends ~50 µs on one row, and onnxruntime's Python ``run`` at least ~9 µs
even for a one-node graph, while the 900 comparisons of a 60 x 15 forest take well under a
microsecond. :class:`CompiledForest` calls the compiled ``forest_root`` function through
``ctypes`` with input and output buffers bound once per thread, so a one-row score costs a
copy of the row, one foreign call and one ``exp``: ~2-3 µs.

The artifact is LLVM-compiled object code for generic **x86-64** (no host-specific CPU
features, so it runs on any x86-64 machine with the same OS); loading it needs only
``llvmlite`` (and the thin loader in lleaves), not LightGBM or a C compiler. On another
architecture loading fails with a message that says so: register the ONNX form of the same
model there (``optimize.selection.formats: [onnx]``).

Only numpy and the standard library are imported at module level.
"""

from __future__ import annotations

import ctypes
import math
import platform
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np

#: Entry point of the compiled forest: ``forest_root(double* X, double* out, int start, int end)``.
ENTRY = "forest_root"
#: Generic x86-64: the object must not depend on the build machine's CPU extensions.
TARGET_CPU = "x86-64"
LINKS = ("identity", "logistic")
_DOUBLE_P = ctypes.POINTER(ctypes.c_double)
_FOREST_FN = ctypes.CFUNCTYPE(None, _DOUBLE_P, _DOUBLE_P, ctypes.c_int32, ctypes.c_int32)


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
        The object code; :class:`CompiledForest` loads it.
    """
    import lleaves

    model = lleaves.Model(model_file=str(model_file))
    out = Path(object_file)
    out.unlink(missing_ok=True)  # lleaves would silently load a stale object at that path
    model.compile(cache=str(out), raw_score=True, target_cpu=TARGET_CPU, target_cpu_features="")
    return out.read_bytes()


def _load_entry(object_code: bytes) -> tuple[Any, Any]:
    """Load object code into an LLVM execution engine; returns (engine, entry function)."""
    import llvmlite.binding as llvm
    from lleaves.llvm_binding import compile_module_to_asm

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "forest.o"
        path.write_bytes(object_code)
        # an empty module plus an object cache that returns our code: how lleaves reloads
        engine = compile_module_to_asm(
            llvm.parse_assembly(""), str(path), target_cpu=TARGET_CPU, target_cpu_features=""
        )
    address = engine.get_function_address(ENTRY)
    if not address:
        raise RuntimeError(f"the compiled forest has no {ENTRY!r} function")
    return engine, _FOREST_FN(address)


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


class CompiledForest:
    """Scores of a compiled LightGBM forest: ``link(raw score)``, one thread.

    Parameters
    ----------
    object_code : bytes
        From :func:`compile_forest`.
    n_features : int
        Columns the forest reads.
    link : {"logistic", "identity"}
        Applied to the raw score: ``logistic`` for a binary classifier or a regressor trained
        on logits, ``identity`` for a regressor on probabilities.
    machine : str, optional
        Architecture the code was compiled on (``platform.machine()``); checked at load.

    Notes
    -----
    Picklable: only the object code is stored; the native function is loaded again on first
    use in each process. Thread-safe: the forest is a pure function and every thread has its
    own one-row buffers (MLflow's server runs requests on a thread pool).
    """

    def __init__(
        self, object_code: bytes, n_features: int, link: str = "logistic", machine: str = ""
    ) -> None:
        if link not in LINKS:
            raise ValueError(f"link must be one of {LINKS}, got {link!r}")
        self.object_code = object_code
        self.n_features = int(n_features)
        self.link = link
        self.machine = machine or platform.machine()
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
                    here = platform.machine()
                    if here.lower() not in ("x86_64", "amd64") or self.machine != here:
                        raise RuntimeError(
                            f"this forest is compiled for {self.machine}; this process runs "
                            f"on {here}. Deploy the ONNX form of the model here "
                            "(optimize.selection.formats: [onnx])."
                        )
                    self._engine, self._entry = _load_entry(self.object_code)
        return self._entry

    def raw_scores(self, X: np.ndarray) -> np.ndarray:
        """Raw forest output (sum of leaf values) of the rows of ``X``."""
        X = np.atleast_2d(X)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(
                f"expected rows of {self.n_features} features, got an array of shape {X.shape}"
            )
        entry = self._function()
        if X.shape[0] == 1:
            bound = self._bound()
            bound.x[0] = X[0]  # one copy, converting float32 -> float64 in place
            entry(bound.x_ptr, bound.out_ptr, 0, 1)
            return bound.out.copy()
        data = np.ascontiguousarray(X, dtype=np.float64)
        out = np.empty(len(data), dtype=np.float64)
        entry(data.ctypes.data_as(_DOUBLE_P), out.ctypes.data_as(_DOUBLE_P), 0, len(data))
        return out

    def predict_scores(self, X: np.ndarray) -> np.ndarray:
        """Scores (``link`` of the raw output) of the rows of ``X``."""
        if X.ndim == 2 and X.shape[0] == 1 and X.shape[1] == self.n_features:
            # the hot path of a one-row request: every call here costs ~0.1-0.5 µs, as much
            # as the trees, so it copies into bound buffers and uses a scalar exp
            entry = self._entry if self._entry is not None else self._function()
            bound = self._bound()
            bound.x[...] = X  # one copy, float32 -> float64
            entry(bound.x_ptr, bound.out_ptr, 0, 1)
            raw = bound.out[0]
            return np.array([_logistic(raw) if self.link == "logistic" else float(raw)])
        raw_scores = self.raw_scores(X)
        return 1.0 / (1.0 + np.exp(-raw_scores)) if self.link == "logistic" else raw_scores

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
            "machine": self.machine,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["object_code"], state["n_features"], state["link"], state["machine"]
        )
