"""A dependency-light scorer of ONNX graphs: onnxruntime and numpy only.

Every graph that :mod:`inferloop.edge.builders.onnx_export` writes takes one float32 input
``input`` of shape ``[N, n_features]`` (the featurizer's output) and has one float32 output
``score`` of shape ``[N]`` holding the fraud probability. That single contract is what
:class:`OnnxPredictor` and the edge deployment rely on. An edge process that imports it never
loads torch, LightGBM or the converters.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnxruntime as ort

if TYPE_CHECKING:
    pass

__all__ = [
    "INPUT_NAME",
    "OUTPUT_NAME",
    "TORCH_EXPORTERS",
    "OnnxPredictor",
]


INPUT_NAME = "input"
OUTPUT_NAME = "score"
#: Exporters accepted by :func:`mlp_to_onnx`.
TORCH_EXPORTERS = ("auto", "dynamo", "torchscript")


# --------------------------------------------------------------------------------------------
# scoring with onnxruntime only
# --------------------------------------------------------------------------------------------


class OnnxPredictor:
    """Score feature rows with an ONNX graph through onnxruntime, one thread, sequentially.

    Parameters
    ----------
    model : str, path-like or bytes
        An ONNX file or its serialized bytes.
    intra_op_num_threads : int, default 1
        Threads onnxruntime may use inside one operator.

    Notes
    -----
    The graph's ``score`` output is returned when present; otherwise the first output, and
    for a two-column probability output its last column (the positive class).
    """

    def __init__(self, model: str | os.PathLike[str] | bytes, intra_op_num_threads: int = 1):
        self.model = model
        self.intra_op_num_threads = intra_op_num_threads
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_num_threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # onnxmltools graphs declare over-tight output shapes
        source = model if isinstance(model, bytes) else os.fspath(model)
        self.session_ = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        self.input_name_ = self.session_.get_inputs()[0].name
        outputs = [o.name for o in self.session_.get_outputs()]
        self.output_name_ = OUTPUT_NAME if OUTPUT_NAME in outputs else outputs[0]
        self.size_bytes_ = len(model) if isinstance(model, bytes) else Path(model).stat().st_size
        self._local = threading.local()

    def predict_scores(self, X: np.ndarray) -> np.ndarray:
        """Fraud probabilities of the rows of ``X``.

        Parameters
        ----------
        X : numpy.ndarray of shape (n_rows, n_features) or (n_features,)
            Raw feature values; converted to contiguous float32 when needed.

        Returns
        -------
        numpy.ndarray of shape (n_rows,)
        """
        x = np.ascontiguousarray(X, dtype=np.float32)
        if x.ndim == 1:
            x = x[None, :]
        if x.shape[0] == 1:
            return self._predict_one(x)
        return _positive_column(self._run(x))

    def _run(self, x: np.ndarray) -> np.ndarray:
        """The graph's score output for ``x`` through a plain ``InferenceSession.run``."""
        return np.asarray(self.session_.run([self.output_name_], {self.input_name_: x})[0])

    def _predict_one(self, x: np.ndarray) -> np.ndarray:
        """One row through buffers bound once (``IOBinding``): half the cost of ``run``.

        ``InferenceSession.run`` validates its feed and allocates its output on every call,
        which costs as much as a small graph itself. A bound session copies the row into
        a preallocated input and reads a preallocated output. Buffers are per thread: the
        model server runs requests on a thread pool.
        """
        one: _BoundRow | None = getattr(self._local, "row", None)
        if one is None or one.x.shape != x.shape:
            first = self._run(x)
            one = self._local.row = _BoundRow(self, x.shape, first)
            return _positive_column(first)
        np.copyto(one.x, x)
        self.session_.run_with_iobinding(one.binding)
        return _positive_column(one.y).copy()


class _BoundRow:
    """Input and output buffers of one row, bound to a session's ``IOBinding``."""

    def __init__(self, scorer: OnnxPredictor, shape: tuple[int, ...], output: np.ndarray) -> None:
        self.x = np.zeros(shape, dtype=np.float32)
        self.y = np.zeros_like(output)
        self.binding = scorer.session_.io_binding()
        # The OrtValues wrap the numpy buffers' memory; both stay referenced here.
        self.x_value = ort.OrtValue.ortvalue_from_numpy(self.x)
        self.y_value = ort.OrtValue.ortvalue_from_numpy(self.y)
        self.binding.bind_ortvalue_input(scorer.input_name_, self.x_value)
        self.binding.bind_ortvalue_output(scorer.output_name_, self.y_value)


def _positive_column(out: np.ndarray) -> np.ndarray:
    """Scores ``[N]``: the output itself, or the positive-class column of ``[N, 2]``."""
    if out.ndim == 2:
        out = out[:, -1]
    return np.asarray(out).reshape(-1)


# --------------------------------------------------------------------------------------------
# graph surgery
# --------------------------------------------------------------------------------------------
