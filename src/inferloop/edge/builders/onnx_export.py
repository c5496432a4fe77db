"""ONNX export of tree and MLP scorers, and int8 quantization.

Every graph written here follows the contract of :mod:`inferloop.edge.runtime.onnx_predictor`
(input ``input`` ``[N, n_features]`` float32, output ``score`` ``[N]``). The exporters import
their libraries inside the function that needs them.
"""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from inferloop.edge.runtime.onnx_predictor import INPUT_NAME, OUTPUT_NAME, TORCH_EXPORTERS

if TYPE_CHECKING:
    import onnx
    import torch

__all__ = [
    "lightgbm_to_onnx",
    "mlp_to_onnx",
    "onnx_op_types",
    "quantize_onnx_int8",
    "with_score_output",
]


def _prune_dead_nodes(graph: onnx.GraphProto) -> None:
    """Drop nodes and initializers that no graph output depends on."""
    needed = {o.name for o in graph.output}
    kept = []
    for node in reversed(graph.node):
        if any(name in needed for name in node.output):
            kept.append(node)
            needed.update(node.input)
    del graph.node[:]
    graph.node.extend(reversed(kept))
    initializers = [t for t in graph.initializer if t.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(initializers)


def with_score_output(
    model: onnx.ModelProto, source: str, column: int, *, sigmoid: bool = False
) -> onnx.ModelProto:
    """Make ``source[:, column]`` (optionally through a sigmoid) the graph's only output.

    Parameters
    ----------
    model : onnx.ModelProto
        Modified in place and returned.
    source : str
        Name of a 2-d graph value, e.g. ``probabilities`` of a tree classifier.
    column : int
        Column of ``source`` to output.
    sigmoid : bool, default False
        Apply a logistic function (for a regressor trained on logits).

    Returns
    -------
    onnx.ModelProto
        The model with a single ``score`` output of shape ``[N]``.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    index = numpy_helper.from_array(np.array(column, dtype=np.int64), "score_column")
    graph.initializer.append(index)
    picked = OUTPUT_NAME + "_logit" if sigmoid else OUTPUT_NAME
    graph.node.append(helper.make_node("Gather", [source, index.name], [picked], axis=1))
    if sigmoid:
        graph.node.append(helper.make_node("Sigmoid", [picked], [OUTPUT_NAME]))
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N"]))
    _prune_dead_nodes(graph)
    onnx.checker.check_model(model)
    return model


# --------------------------------------------------------------------------------------------
# exporters (heavy libraries imported lazily)
# --------------------------------------------------------------------------------------------


def lightgbm_to_onnx(model: Any, n_features: int, *, sigmoid: bool = False) -> bytes:
    """Convert a LightGBM model to an ONNX graph with a single probability output.

    Parameters
    ----------
    model : lightgbm.LGBMClassifier, lightgbm.LGBMRegressor or lightgbm.Booster
        A binary classifier (its positive-class probability is output) or a regressor (its
        prediction is output, through a sigmoid when ``sigmoid`` is true).
    n_features : int
        Number of input columns.
    sigmoid : bool, default False
        For regressors trained on logits: output ``sigmoid(prediction)``.

    Returns
    -------
    bytes
        The serialized ONNX model (``input`` float32 ``[N, n_features]`` → ``score`` ``[N]``).

    Notes
    -----
    onnxmltools is called with ``zipmap=False`` so a classifier yields a plain
    ``probabilities`` tensor ``[N, 2]`` instead of a list of dicts; its ``label`` output is
    removed from the graph.
    """
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    converted = onnxmltools.convert_lightgbm(
        model,
        initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
        zipmap=False,
    )
    outputs = [o.name for o in converted.graph.output]
    if "probabilities" in outputs:
        if sigmoid:
            raise ValueError("sigmoid=True applies to regressors; classifiers output probabilities")
        return with_score_output(converted, "probabilities", 1).SerializeToString()
    return with_score_output(converted, outputs[0], 0, sigmoid=sigmoid).SerializeToString()


def _use_dynamo(exporter: str) -> bool:
    if exporter not in TORCH_EXPORTERS:
        raise ValueError(f"exporter must be one of {TORCH_EXPORTERS}, got {exporter!r}")
    if exporter == "auto":
        return importlib.util.find_spec("onnxscript") is not None
    return exporter == "dynamo"


def mlp_to_onnx(
    module: torch.nn.Module, n_features: int, *, opset: int = 18, exporter: str = "auto"
) -> bytes:
    """Export a torch scoring module (raw features → probability ``[N]``) to ONNX.

    Parameters
    ----------
    module : torch.nn.Module
        Maps a float32 ``[N, n_features]`` tensor to probabilities ``[N]``; exported in eval
        mode.
    n_features : int
        Number of input columns.
    opset : int, default 18
        ONNX opset of the exported graph.
    exporter : {"auto", "dynamo", "torchscript"}, default "auto"
        ``dynamo`` is torch's default ``torch.export``-based exporter and needs the
        ``onnxscript`` package; ``torchscript`` is the legacy exporter (``dynamo=False``),
        deprecated but dependency-free. ``auto`` takes ``dynamo`` when onnxscript is installed.

    Returns
    -------
    bytes
        The serialized ONNX model with a dynamic batch axis.
    """
    import onnx
    import torch

    module = module.eval()
    example = (torch.zeros(2, n_features, dtype=torch.float32),)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        if _use_dynamo(exporter):
            batch = torch.export.Dim("N")
            torch.onnx.export(
                module,
                example,
                path,
                opset_version=opset,
                dynamo=True,
                external_data=False,
                dynamic_shapes={"x": {0: batch}},
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
            )
        else:
            torch.onnx.export(
                module,
                example,
                path,
                opset_version=opset,
                dynamo=False,
                dynamic_axes={INPUT_NAME: {0: "N"}, OUTPUT_NAME: {0: "N"}},
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
            )
        model = onnx.load(path)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def quantize_onnx_int8(model: bytes) -> bytes:
    """Dynamic int8 quantization of the MatMul weights of an ONNX graph.

    Parameters
    ----------
    model : bytes
        A serialized ONNX model.

    Returns
    -------
    bytes
        The quantized model. Graphs without quantizable operators (e.g. tree ensembles) come
        back functionally unchanged.

    Notes
    -----
    Uses ``onnxruntime.quantization.quantize_dynamic`` with int8 weights: activations are
    quantized on the fly per call, which costs a few extra operators per layer.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        source, target = Path(tmp) / "model.onnx", Path(tmp) / "model.int8.onnx"
        source.write_bytes(model)
        quantize_dynamic(source, target, weight_type=QuantType.QInt8)
        return target.read_bytes()


def onnx_op_types(model: bytes) -> list[str]:
    """Operator types of a serialized ONNX graph, in node order (for reports and tests)."""
    import onnx

    return [node.op_type for node in onnx.load_from_string(model).graph.node]
