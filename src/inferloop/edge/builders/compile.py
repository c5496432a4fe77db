"""Compile models to x86-64 object code for :class:`~inferloop.edge.runtime.compiled.CompiledModel`.

* :func:`compile_forest` -- a LightGBM model through lleaves (entry ``forest_root``);
* :func:`compile_mlp` -- an MLP (ReLU layers, ``log1p`` on chosen inputs) written here as LLVM
  IR with llvmlite and optimized by LLVM (entry ``mlp_root``); weights are float32 constants.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from inferloop.core.native import ir_loop
from inferloop.edge.runtime.compiled import (
    MLP_ENTRY,
    TARGET_CPU,
    target_machine,
)

__all__ = [
    "compile_forest",
    "compile_mlp",
]


#: Fast-math flags of the dot products: reassociation lets LLVM vectorize the sums; not
#: ``fast`` as a whole, whose no-NaN assumption would turn NaN inputs into finite scores.
_FAST = ("reassoc", "nsz", "contract")


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
    machine = target_machine()
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

            ir_loop(b, ir.Constant(i32, 0), ir.Constant(i32, widths[k + 1]), unit)

    ir_loop(b, start, end, row)
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
