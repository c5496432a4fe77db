"""Parameters of the optimize stage (the ``optimize`` section of params.yaml) and the selection policy."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass

__all__ = [
    "COMPILERS",
    "EDGE_FORMATS",
    "TREE_COMPILERS",
    "BenchParams",
    "DistilParams",
    "OptimizeParams",
    "PruneParams",
    "SelectionPolicy",
    "StudentMLPParams",
]


# --------------------------------------------------------------------------------------------
# parameters (the `optimize` section of params.yaml)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DistilParams:
    """Size and training of the LightGBM student (and of the labels-only control).

    ``target="logit"`` regresses the teacher's raw score; ``"probability"`` its probability.
    Each row is weighted by ``teacher_probability ** weight_power`` (0 = unweighted).
    """

    n_estimators: int = 60
    num_leaves: int = 15
    learning_rate: float = 0.15
    min_child_samples: int = 20
    target: str = "logit"
    weight_power: float = 0.5
    seed: int = 0
    n_jobs: int = 1


@dataclass(frozen=True)
class StudentMLPParams:
    """Architecture and training of the MLP student.

    Non-negative columns whose maximum exceeds ``log_above`` pass through ``log1p`` before
    the standardizer (heavy-tailed amounts and counts). Soft targets are the teacher's
    probabilities at ``temperature`` (``sigmoid(logit / T)``).
    """

    hidden: tuple[int, ...] = (64, 32)
    epochs: int = 8
    batch_size: int = 2048
    learning_rate: float = 0.01
    weight_decay: float = 0.0
    temperature: float = 2.0
    log_above: float = 30.0
    seed: int = 0
    num_threads: int = 1


@dataclass(frozen=True)
class PruneParams:
    """Structured pruning: share of hidden neurons removed per layer, then fine-tuning."""

    amount: float = 0.5
    finetune_epochs: int = 3
    learning_rate: float = 0.003
    max_rows_for_importance: int = 20_000


@dataclass(frozen=True)
class BenchParams:
    """How variants are measured (all timings with one thread)."""

    latency_calls: int = 2000
    warmup_calls: int = 200
    throughput_rows: int = 100_000
    throughput_repeats: int = 3
    k: int = 100
    alert_rate: float = 0.01


#: Compilers of LightGBM models (the teacher; lleaves also compiles the distilled forest).
TREE_COMPILERS = ("tl2cgen", "lleaves")
#: Every value ``optimize.compilers`` accepts ("llvm" compiles the MLP students).
COMPILERS = (*TREE_COMPILERS, "llvm")
#: Formats that can be registered as the edge model: ONNX graphs, and x86-64 code (a forest
#: compiled by lleaves, an MLP compiled by LLVM) loaded with llvmlite.
EDGE_FORMATS = ("onnx", "lleaves", "llvm")


@dataclass(frozen=True)
class SelectionPolicy:
    """Which variant becomes the edge model.

    Attributes
    ----------
    max_ap_loss, max_auc_loss : float
        Largest allowed drop of average precision / ROC-AUC against ``reference``.
    reference : str
        Variant the losses are measured against (the native teacher).
    fallback : str
        Returned when no variant qualifies (the teacher in ONNX form, deployable at the edge),
        whatever its format and size: the edge then serves the teacher's own decisions;
        ``reference`` is returned when ``fallback`` is not in the table.
    formats : tuple of str
        Only variants in these formats are candidates; :data:`EDGE_FORMATS` (``onnx`` for
        onnxruntime, ``lleaves`` and ``llvm`` for x86-64 code) can be registered at the edge.
    min_size_ratio : float
        A candidate must be at least this many times smaller on disk than the reference
        (1 = no size budget).
    losses_on : {"validation", "test"}
        Data the losses are computed on; selecting on validation keeps the test numbers
        an unbiased report.
    latency_tolerance : float
        Variants whose p50 is within this relative margin of the fastest count as tied;
        the smallest of them wins.
    """

    max_ap_loss: float = 0.01
    max_auc_loss: float = 0.005
    reference: str = "teacher"
    fallback: str = "teacher_onnx"
    formats: tuple[str, ...] = ("onnx",)
    min_size_ratio: float = 1.0
    losses_on: str = "validation"
    latency_tolerance: float = 0.15


@dataclass(frozen=True)
class OptimizeParams:
    """The ``optimize`` section of params.yaml."""

    distil: DistilParams = field(default_factory=DistilParams)
    mlp: StudentMLPParams = field(default_factory=StudentMLPParams)
    prune: PruneParams = field(default_factory=PruneParams)
    bench: BenchParams = field(default_factory=BenchParams)
    selection: SelectionPolicy = field(default_factory=SelectionPolicy)
    quantize_int8: bool = True
    compilers: tuple[str, ...] = ("tl2cgen", "lleaves", "llvm")
    label_control: bool = True
    onnx_exporter: str = "torchscript"


# --------------------------------------------------------------------------------------------
# scorers
# --------------------------------------------------------------------------------------------
