"""Native code without a C compiler: LLVM IR helpers (llvmlite) shared by the compiled kernels.

:func:`ir_loop` writes a counted loop into a function being built with ``llvmlite.ir``;
:func:`jit_function` compiles a module's IR for this machine's CPU, in this process, and
returns a ``ctypes`` callable of one entry. Both the edge models' compiler
(:mod:`inferloop.edge.builders.compile`) and the TreeSHAP kernel
(:mod:`inferloop.evaluation.treeshap`) use them. llvmlite is imported when called, never at
import.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Any

__all__ = ["JitFunction", "ir_loop", "ir_while", "jit_function"]


def ir_loop(b: Any, first: Any, stop: Any, body: Callable[[Any], None]) -> None:
    """``for i in range(first, stop): body(i)`` at the builder ``b``'s position."""
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


def ir_while(b: Any, condition: Callable[[], Any], body: Callable[[], None]) -> None:
    """``while condition(): body()`` at the builder ``b``'s position (``condition`` gives i1)."""
    head, inside, done = (b.append_basic_block(n) for n in ("while", "while.body", "while.done"))
    b.branch(head)
    b.position_at_end(head)
    b.cbranch(condition(), inside, done)
    b.position_at_end(inside)
    body()
    b.branch(head)
    b.position_at_end(done)


class JitFunction:
    """A function compiled in this process; keeps its execution engine alive with it."""

    def __init__(self, engine: Any, function: Any) -> None:
        self.engine = engine
        self.function = function

    def __call__(self, *args: Any) -> Any:
        return self.function(*args)


def jit_function(ir_text: str, entry: str, prototype: Any) -> JitFunction:
    """Compile ``ir_text`` for the host CPU (all its vector extensions) and return ``entry``.

    Parameters
    ----------
    ir_text : str
        A module's LLVM IR, as ``str(llvmlite.ir.Module)`` gives it.
    entry : str
        The function to return.
    prototype : ctypes function type
        ``ctypes.CFUNCTYPE(...)`` of the entry, which the returned callable is cast to.
    """
    import llvmlite.binding as llvm

    llvm.initialize()
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    target = llvm.Target.from_triple(llvm.get_process_triple())
    machine = target.create_target_machine(
        cpu=llvm.get_host_cpu_name(),
        features=llvm.get_host_cpu_features().flatten(),
        reloc="default",
        codemodel="jitdefault",
        opt=3,
    )
    module = llvm.parse_assembly(ir_text)
    module.verify()
    tuning = llvm.create_pipeline_tuning_options(speed_level=3, size_level=0)
    tuning.loop_vectorization = True
    tuning.slp_vectorization = True
    builder = llvm.create_pass_builder(machine, tuning)
    builder.getModulePassManager().run(module, builder)
    engine = llvm.create_mcjit_compiler(module, machine)
    engine.finalize_object()
    address = engine.get_function_address(entry)
    if not address:
        raise RuntimeError(f"the compiled module has no {entry!r} function")
    return JitFunction(engine, ctypes.cast(address, prototype))
