"""Make the teacher model small and fast for the edge: distil, prune, quantize, compile, pick.

The teacher is the trained LightGBM classifier. Candidate *variants* of it are built here,
each exposed as a scorer (``predict_scores(X) -> probabilities``), measured on the same data
(size on disk, 1-thread single-row latency and batch throughput, ranking quality, agreement
with the teacher), and one is chosen by :func:`select_variant` under a quality-loss policy.

* **Distillation** trains small students on the teacher's scores over a wide *unlabelled*
  window (every row before the validation window, labels ignored — including the label-delay
  gap, whose labels are not known yet): a small LightGBM regressor on the teacher's logit
  (:func:`distil_lightgbm`) and a torch MLP on the teacher's soft probabilities
  (:func:`fit_mlp_student`). :func:`small_lightgbm_on_labels` is the same-size model trained
  on labels only, as the control.
* **Structured pruning** (:func:`prune_mlp_structured`) removes whole hidden neurons and
  rebuilds smaller ``nn.Linear`` layers, so the saving is real (masking weights is not).
* **Export / compile / quantize**: ONNX for everything deployable (:mod:`inferloop.onnx_export`),
  dynamic int8 through onnxruntime, native tree compilers for the teacher (lleaves; tl2cgen
  when installed) and for the distilled forest (lleaves), and the MLPs compiled by LLVM
  (:mod:`inferloop.compiled`): one-row calls into x86-64 code skip onnxruntime's ~9 µs per call.

Only the model graph is measured; the deployed edge scorer also runs the featurizer
(:mod:`inferloop.features`) before the graph, which costs the same for every variant.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

import lightgbm as lgb
import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr
from sklearn.metrics import average_precision_score, roc_auc_score
from torch import nn

from inferloop import schema as s
from inferloop.compiled import MLP_ENTRY, CompiledModel, compile_forest, compile_mlp
from inferloop.edge import CompiledClassifier, OnnxClassifier
from inferloop.metrics import card_precision_at_k
from inferloop.onnx_export import (
    OnnxScorer,
    lightgbm_to_onnx,
    mlp_to_onnx,
    onnx_op_types,
    quantize_onnx_int8,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

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
class MlpParams:
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
    mlp: MlpParams = field(default_factory=MlpParams)
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


class Scorer(Protocol):
    """Anything that maps a float32 feature matrix to fraud probabilities."""

    def predict_scores(self, X: np.ndarray) -> np.ndarray:
        """Fraud probabilities, one per row."""
        ...


def _booster(model: Any) -> lgb.Booster:
    return model if isinstance(model, lgb.Booster) else model.booster_


class LightGBMScorer:
    """Native LightGBM prediction with one thread.

    Parameters
    ----------
    model : lightgbm.Booster or fitted LGBM estimator
    sigmoid : bool, default False
        Apply a logistic function to the prediction (regressors trained on logits).
    """

    def __init__(self, model: Any, sigmoid: bool = False) -> None:
        self.model = model
        self.sigmoid = sigmoid
        self.booster_ = _booster(model)

    def predict_scores(self, X: np.ndarray) -> np.ndarray:
        """Probabilities (or sigmoid of the regression output) of the rows of ``X``."""
        out = np.asarray(self.booster_.predict(np.atleast_2d(X), num_threads=1), np.float64)
        return _sigmoid(out) if self.sigmoid else out


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


# --------------------------------------------------------------------------------------------
# tree students
# --------------------------------------------------------------------------------------------


def teacher_logits(teacher: Any, X: np.ndarray) -> np.ndarray:
    """The teacher's raw score (log-odds) of each row, predicted with one thread."""
    return np.asarray(_booster(teacher).predict(X, raw_score=True, num_threads=1), np.float64)


def _tree_kwargs(params: DistilParams) -> dict[str, Any]:
    return {
        "n_estimators": params.n_estimators,
        "num_leaves": params.num_leaves,
        "learning_rate": params.learning_rate,
        "min_child_samples": params.min_child_samples,
        "random_state": params.seed,
        "n_jobs": params.n_jobs,
        "verbose": -1,
    }


def distil_lightgbm(
    teacher: Any, X_unlabelled: np.ndarray, params: DistilParams
) -> lgb.LGBMRegressor:
    """Train a small LightGBM regressor to reproduce the teacher's scores.

    Parameters
    ----------
    teacher : lightgbm.LGBMClassifier or lightgbm.Booster
        The binary teacher.
    X_unlabelled : numpy.ndarray
        Feature rows to imitate the teacher on; labels are not needed.
    params : DistilParams
        Student size and target.

    Returns
    -------
    lightgbm.LGBMRegressor
        Predicts the teacher's logit (``target="logit"``; apply a sigmoid for probabilities)
        or its probability (``target="probability"``).

    Notes
    -----
    Regressing the logit keeps the teacher's whole ranking (ROC-AUC needs the order of the
    many low scores) and matches the additive structure of boosted trees; regressing the
    probability spends the squared error on the top scores only and lost ROC-AUC in our runs.
    Weighting rows by ``p ** weight_power`` (0.5 by default) moves capacity toward the
    high-score region that decides average precision without ignoring the rest.
    """
    if params.target not in ("logit", "probability"):
        raise ValueError(f"target must be 'logit' or 'probability', got {params.target!r}")
    logits = teacher_logits(teacher, X_unlabelled)
    probability = _sigmoid(logits)
    y = logits if params.target == "logit" else probability
    weight = probability**params.weight_power if params.weight_power else None
    student = lgb.LGBMRegressor(objective="regression", **_tree_kwargs(params))
    return student.fit(X_unlabelled, y, sample_weight=weight)


def small_lightgbm_on_labels(
    X: np.ndarray, y: np.ndarray, params: DistilParams
) -> lgb.LGBMClassifier:
    """The control: a classifier of the student's size trained on labels only."""
    return lgb.LGBMClassifier(**_tree_kwargs(params)).fit(X, y)


def n_tree_nodes(model: Any) -> int:
    """Number of nodes (splits + leaves) of a LightGBM model."""
    frame = _booster(model).trees_to_dataframe()
    return len(frame)


# --------------------------------------------------------------------------------------------
# MLP student
# --------------------------------------------------------------------------------------------


class StudentMLP(nn.Module):
    """MLP on raw features with its preprocessing inside the network.

    ``forward(x)`` = ``body(standardize(compress(x)))`` returns the fraud logit ``[N]``,
    where ``compress`` applies ``log1p`` to the columns in ``log_mask`` and ``standardize``
    is a fixed affine map learnt from the training rows. The hidden layers are plain
    ``nn.Linear`` + ReLU; they are applied as ``x @ W.T + b`` so the exported graph holds
    MatMul nodes that onnxruntime can quantize.

    Parameters
    ----------
    mean, scale, log_mask : torch.Tensor
        Standardizer offset and scale (after compression) and the compressed columns.
    hidden : sequence of int
        Hidden layer widths.
    temperature : float, default 1.0
        The body outputs ``logit / temperature``; :meth:`forward` multiplies it back.
    """

    mean: torch.Tensor
    scale: torch.Tensor
    log_mask: torch.Tensor

    def __init__(
        self,
        mean: torch.Tensor,
        scale: torch.Tensor,
        log_mask: torch.Tensor,
        hidden: Sequence[int],
        temperature: float = 1.0,
    ) -> None:
        super().__init__()
        self.register_buffer("mean", mean.float())
        self.register_buffer("scale", scale.float())
        self.register_buffer("log_mask", log_mask.bool())
        self.temperature = float(temperature)
        widths = [int(mean.numel()), *hidden, 1]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(widths))

    @property
    def linears(self) -> list[nn.Linear]:
        """The ``nn.Linear`` layers, hidden ones first and the output layer last."""
        return [cast(nn.Linear, layer) for layer in self.layers]

    @property
    def hidden_sizes(self) -> tuple[int, ...]:
        """Widths of the hidden layers."""
        return tuple(layer.out_features for layer in self.linears[:-1])

    def n_parameters(self) -> int:
        """Number of trainable parameters (weights and biases)."""
        return sum(p.numel() for p in self.parameters())

    def standardize(self, x: torch.Tensor) -> torch.Tensor:
        """The fixed preprocessing: log-compress the masked columns, then standardize."""
        compressed = torch.where(self.log_mask, torch.log1p(torch.clamp(x, min=0.0)), x)
        return (compressed - self.mean) / self.scale

    def hidden_activations(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Post-ReLU activations of every hidden layer."""
        out, h = [], self.standardize(x)
        for layer in self.linears[:-1]:
            h = torch.relu(h @ layer.weight.T + layer.bias)
            out.append(h)
        return out

    def tempered_logit(self, x: torch.Tensor) -> torch.Tensor:
        """``logit / temperature``: what the soft-target loss sees."""
        h = self.hidden_activations(x)[-1] if len(self.layers) > 1 else self.standardize(x)
        last = self.linears[-1]
        return (h @ last.weight.T + last.bias).squeeze(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Fraud logit of each row of raw features ``x``."""
        return self.tempered_logit(x) * self.temperature


class ProbabilityHead(nn.Module):
    """The exported scoring graph of a :class:`StudentMLP`: raw features → probability.

    The standardizer is folded into the first layer (``W / scale``, ``b - W @ (mean /
    scale)``) and the temperature into the last, which removes three operators per call;
    the ``log1p`` compression stays in front. Outputs equal ``sigmoid(net(x))``.
    """

    log_mask: torch.Tensor

    def __init__(self, net: StudentMLP) -> None:
        super().__init__()
        self.register_buffer("log_mask", net.log_mask.clone())
        linears = net.linears
        with torch.no_grad():
            first_w = linears[0].weight / net.scale
            first_b = linears[0].bias - first_w @ net.mean
            weights = [first_w, *(layer.weight for layer in linears[1:])]
            biases = [first_b, *(layer.bias for layer in linears[1:])]
            weights[-1] = weights[-1] * net.temperature
            biases[-1] = biases[-1] * net.temperature
        self.weights = nn.ParameterList(nn.Parameter(w.T.contiguous().clone()) for w in weights)
        self.biases = nn.ParameterList(nn.Parameter(b.clone()) for b in biases)
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Fraud probability ``[N]`` of each row of raw features."""
        h = torch.where(self.log_mask, torch.log1p(torch.clamp(x, min=0.0)), x)
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = h @ w + b
            if i < last:
                h = torch.relu(h)
        return torch.sigmoid(h.squeeze(-1))


def _tensor(values: np.ndarray) -> torch.Tensor:
    """A float32 torch tensor owning a copy of ``values`` (inputs may be read-only views)."""
    return torch.from_numpy(np.array(values, dtype=np.float32))


def build_student_mlp(X: np.ndarray, params: MlpParams) -> StudentMLP:
    """An untrained :class:`StudentMLP` (weights seeded by ``params.seed``), preprocessing fitted on ``X``."""
    x = _tensor(X)
    log_mask = (x.min(0).values >= 0) & (x.max(0).values > params.log_above)
    compressed = torch.where(log_mask, torch.log1p(torch.clamp(x, min=0.0)), x)
    scale = compressed.std(0).clamp_min(1e-6)
    with torch.random.fork_rng(devices=[]):  # seeded initial weights, global RNG untouched
        torch.manual_seed(params.seed)
        return StudentMLP(compressed.mean(0), scale, log_mask, params.hidden, params.temperature)


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads, restoring the previous setting.

    Tiny MLPs train no faster on more threads, and on a shared machine the extra threads
    spin against other processes (a 20x slowdown was seen on 2 busy cores).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(max(n, 1))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def train_soft_targets(
    model: StudentMLP,
    X: np.ndarray,
    soft_targets: np.ndarray,
    *,
    epochs: int,
    learning_rate: float,
    batch_size: int = 2048,
    weight_decay: float = 0.0,
    seed: int = 0,
    num_threads: int = 1,
) -> StudentMLP:
    """Minimise binary cross-entropy between the model and soft (probability) targets.

    ``soft_targets`` are already at the model's temperature. Adam with a cosine schedule;
    the global torch RNG and thread setting are left untouched.
    """
    x = _tensor(X)
    y = _tensor(soft_targets)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(epochs, 1))
    loss_fn = nn.BCEWithLogitsLoss()
    model.train()
    with torch_threads(num_threads):
        for _ in range(epochs):
            for idx in torch.randperm(len(x), generator=generator).split(batch_size):
                optimizer.zero_grad()
                loss_fn(model.tempered_logit(x[idx]), y[idx]).backward()
                optimizer.step()
            schedule.step()
    return model.eval()


def fit_mlp_student(teacher: Any, X_unlabelled: np.ndarray, params: MlpParams) -> StudentMLP:
    """Distil the teacher into an MLP trained on its soft scores (BCE on soft targets).

    Parameters
    ----------
    teacher : lightgbm.LGBMClassifier or lightgbm.Booster
    X_unlabelled : numpy.ndarray
        Raw feature rows; labels are not needed.
    params : MlpParams

    Returns
    -------
    StudentMLP
        In eval mode; ``forward`` returns logits.
    """
    soft = _sigmoid(teacher_logits(teacher, X_unlabelled) / params.temperature)
    return train_soft_targets(
        build_student_mlp(X_unlabelled, params),
        X_unlabelled,
        soft,
        epochs=params.epochs,
        learning_rate=params.learning_rate,
        batch_size=params.batch_size,
        weight_decay=params.weight_decay,
        seed=params.seed,
        num_threads=params.num_threads,
    )


def mlp_predict(model: StudentMLP, X: np.ndarray) -> np.ndarray:
    """Probabilities from a :class:`StudentMLP` in torch (the reference for its ONNX graph)."""
    with torch.no_grad():
        logits = model(_tensor(X))
    return torch.sigmoid(logits).numpy().astype(np.float64)


# --------------------------------------------------------------------------------------------
# structured pruning
# --------------------------------------------------------------------------------------------


@dataclass
class PruneResult:
    """A physically smaller MLP and what pruning removed."""

    model: StudentMLP
    n_parameters_before: int
    n_parameters_after: int
    hidden_before: tuple[int, ...]
    hidden_after: tuple[int, ...]
    kept: list[list[int]]


def neuron_importance(model: StudentMLP, X: np.ndarray) -> list[torch.Tensor]:
    """Importance of each hidden neuron: mean |activation| × L1 norm of its outgoing weights.

    This estimates how much each neuron contributes to the next layer's input on real data,
    which catches neurons that are large in weight but (almost) never active.
    """
    with torch.no_grad():
        acts = model.hidden_activations(_tensor(X))
        return [
            a.abs().mean(0) * nxt.weight.abs().sum(0)
            for a, nxt in zip(acts, model.linears[1:], strict=True)
        ]


def _rebuild(model: StudentMLP, kept: list[torch.Tensor]) -> StudentMLP:
    """A new :class:`StudentMLP` holding only the ``kept`` neurons of each hidden layer."""
    small = StudentMLP(
        model.mean, model.scale, model.log_mask, [len(k) for k in kept], model.temperature
    )
    inputs = torch.arange(model.linears[0].in_features)
    with torch.no_grad():
        for i, (old, new) in enumerate(zip(model.linears, small.linears, strict=True)):
            rows = kept[i] if i < len(kept) else torch.arange(old.out_features)
            cols = inputs if i == 0 else kept[i - 1]
            new.weight.copy_(old.weight[rows][:, cols])
            new.bias.copy_(old.bias[rows])
    return small.eval()


def prune_mlp_structured(
    model: StudentMLP,
    X: np.ndarray,
    amount: float,
    *,
    soft_targets: np.ndarray | None = None,
    params: PruneParams | None = None,
) -> PruneResult:
    """Remove the least important hidden neurons and rebuild smaller ``nn.Linear`` layers.

    Parameters
    ----------
    model : StudentMLP
        Left unchanged.
    X : numpy.ndarray
        Rows used to measure activations (at most ``params.max_rows_for_importance``) and,
        with ``soft_targets``, to fine-tune.
    amount : float
        Share of each hidden layer's neurons to remove, in ``[0, 1)``; at least one neuron
        per layer is kept.
    soft_targets : numpy.ndarray, optional
        Teacher probabilities at the model's temperature; when given, the pruned model is
        fine-tuned on them for ``params.finetune_epochs`` epochs.
    params : PruneParams, optional

    Returns
    -------
    PruneResult
    """
    if not 0.0 <= amount < 1.0:
        raise ValueError(f"amount must be in [0, 1), got {amount}")
    params = params or PruneParams()
    rows = np.asarray(X, dtype=np.float32)[: params.max_rows_for_importance]
    kept = []
    for score in neuron_importance(model, rows):
        n_keep = max(1, math.ceil(len(score) * (1.0 - amount)))
        kept.append(torch.sort(torch.topk(score, n_keep).indices).values)
    small = _rebuild(model, kept)
    if soft_targets is not None and params.finetune_epochs > 0:
        small = train_soft_targets(
            small,
            X,
            soft_targets,
            epochs=params.finetune_epochs,
            learning_rate=params.learning_rate,
        )
    return PruneResult(
        small,
        model.n_parameters(),
        small.n_parameters(),
        model.hidden_sizes,
        small.hidden_sizes,
        [k.tolist() for k in kept],
    )


# --------------------------------------------------------------------------------------------
# native tree compilers (optional)
# --------------------------------------------------------------------------------------------


class Tl2cgenScorer:
    """A LightGBM model compiled to a shared library by tl2cgen (treelite), one thread."""

    def __init__(self, model: Any, libpath: Path, compile_threads: int = 2) -> None:
        import tl2cgen
        import treelite

        tree_model = treelite.frontend.from_lightgbm(_booster(model))
        params = {"parallel_comp": max(compile_threads, 1)}
        tl2cgen.export_lib(tree_model, toolchain="gcc", libpath=libpath, params=params)
        self.libpath = Path(libpath)
        self._tl2cgen = tl2cgen
        self.predictor_ = tl2cgen.Predictor(libpath, nthread=1)

    def predict_scores(self, X: np.ndarray) -> np.ndarray:
        """Probabilities of the rows of ``X``."""
        dmat = self._tl2cgen.DMatrix(np.atleast_2d(X), dtype="float32")
        return np.asarray(self.predictor_.predict(dmat), np.float64).reshape(-1)


def compiled_path(workdir: Path, name: str) -> Path:
    """Where the compiled artifact of variant ``name`` is written (shared library for tl2cgen)."""
    return workdir / f"{name}.{'so' if name.endswith('_tl2cgen') else 'o'}"


def compile_lleaves(model: Any, name: str, workdir: Path, link: str = "logistic") -> CompiledModel:
    """Compile a LightGBM model with lleaves into a :class:`CompiledModel` (x86-64 code).

    The code returns the raw score and ``link`` is applied after it; the object file is
    written to :func:`compiled_path`.
    """
    model_file = workdir / f"{name}_for_lleaves.txt"
    booster = _booster(model)
    booster.save_model(model_file)
    object_code = compile_forest(model_file, compiled_path(workdir, name))
    return CompiledModel(object_code, booster.num_feature(), link)


def _check_binary_logistic(model: Any) -> None:
    """The teacher's raw score must be a logit: a binary objective with sigmoid 1."""
    lines = _booster(model).model_to_string().splitlines()
    objective = next((line for line in lines if line.startswith("objective=")), "objective=?")
    if objective.split("=", 1)[1].split() != ["binary", "sigmoid:1"]:
        raise ValueError(f"the teacher must be binary with sigmoid 1, got {objective!r}")


def compile_teacher(model: Any, compiler: str, workdir: Path) -> tuple[Scorer, int] | str:
    """Compile the teacher with ``compiler`` ("tl2cgen" or "lleaves").

    Returns
    -------
    (scorer, size_bytes) or str
        The compiled scorer and its artifact size, or the reason it is unavailable (the
        compilers are optional dependencies).
    """
    try:
        if compiler == "tl2cgen":
            scorer = Tl2cgenScorer(model, compiled_path(workdir, "teacher_tl2cgen"))
            return scorer, scorer.libpath.stat().st_size
        if compiler == "lleaves":
            _check_binary_logistic(model)
            forest = compile_lleaves(model, "teacher_lleaves", workdir)
            return forest, forest.size_bytes
    except Exception as exc:  # optional, version-fragile dependencies: report, never fail
        return f"{compiler} unavailable: {type(exc).__name__}: {exc}"
    raise ValueError(f"unknown compiler {compiler!r}; expected 'tl2cgen' or 'lleaves'")


# --------------------------------------------------------------------------------------------
# measurement
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalSet:
    """Feature rows plus what the metrics need: labels, customers, timestamps."""

    X: np.ndarray
    y: np.ndarray
    customer_ids: np.ndarray
    timestamps: np.ndarray

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, features: Sequence[str]) -> EvalSet:
        """Build from a processed frame (contract columns + feature columns)."""
        return cls(
            frame[list(features)].to_numpy(np.float32),
            frame[s.TARGET].to_numpy(np.int64),
            frame[s.CUSTOMER_ID].to_numpy(),
            frame[s.TIMESTAMP].to_numpy(),
        )


def measure_speed(
    scorers: dict[str, Scorer], X: np.ndarray, params: BenchParams, rounds: int = 10
) -> dict[str, dict[str, float]]:
    """Single-row p50/p99 (µs) and batch rows/s of several scorers, measured interleaved.

    Each round times every scorer in turn (``latency_calls / rounds`` single-row calls, then
    one repeat of the batch), so a noisy neighbour slows all variants alike and the speed-up
    ratios stay fair on a shared machine; measuring one variant after another let a burst of
    load land on one of them (ratios moved by 2x between runs).

    Returns
    -------
    dict
        Per scorer name: ``p50_us``, ``p99_us`` and ``rows_per_s`` (median over repeats).
    """
    rows = [np.ascontiguousarray(X[i : i + 1], dtype=np.float32) for i in range(min(len(X), 512))]
    reps = math.ceil(params.throughput_rows / len(X))
    batch = np.ascontiguousarray(np.tile(X, (reps, 1))[: params.throughput_rows], np.float32)
    per_round = max(params.latency_calls // rounds, 1)
    times: dict[str, list[np.ndarray]] = {name: [] for name in scorers}
    batch_s: dict[str, list[float]] = {name: [] for name in scorers}
    for scorer in scorers.values():  # warm-up: sessions, caches, bound buffers
        for i in range(params.warmup_calls):
            scorer.predict_scores(rows[i % len(rows)])
        scorer.predict_scores(batch[:1000])
    n_batches = max(params.throughput_repeats, 1)
    for r in range(rounds):
        for name, scorer in scorers.items():
            times[name].append(_time_rows(scorer, rows, start=r * per_round, calls=per_round))
            if r % max(rounds // n_batches, 1) == 0 and len(batch_s[name]) < n_batches:
                start = time.perf_counter()
                scorer.predict_scores(batch)
                batch_s[name].append(time.perf_counter() - start)
    out = {}
    for name in scorers:
        p50, p99 = np.percentile(np.concatenate(times[name]), [50, 99]) / 1e3
        out[name] = {
            "p50_us": float(p50),
            "p99_us": float(p99),
            "rows_per_s": len(batch) / float(np.median(batch_s[name])),
        }
    return out


def _time_rows(scorer: Scorer, rows: list[np.ndarray], start: int, calls: int) -> np.ndarray:
    times = np.empty(calls, dtype=np.float64)
    for i in range(calls):
        row = rows[(start + i) % len(rows)]
        t0 = time.perf_counter_ns()
        scorer.predict_scores(row)
        times[i] = time.perf_counter_ns() - t0
    return times


def quality_metrics(
    scores: np.ndarray,
    y: np.ndarray,
    customer_ids: np.ndarray,
    timestamps: np.ndarray,
    teacher_scores: np.ndarray,
    *,
    k: int = 100,
    alert_rate: float = 0.01,
) -> dict[str, float]:
    """Ranking quality of ``scores`` and their agreement with the teacher's.

    Returns
    -------
    dict
        ``roc_auc``, ``ap``, ``card_precision_at_k``, ``max_abs_diff`` (vs teacher),
        ``rank_corr`` (Spearman vs teacher) and ``decision_flips``: rows whose alert decision
        differs from the teacher's at the teacher's top-``alert_rate`` threshold.
    """
    scores = np.asarray(scores, np.float64)
    teacher_scores = np.asarray(teacher_scores, np.float64)
    threshold = np.quantile(teacher_scores, 1.0 - alert_rate)
    flips = (scores >= threshold) != (teacher_scores >= threshold)
    return {
        "roc_auc": float(roc_auc_score(y, scores)),
        "ap": float(average_precision_score(y, scores)),
        "card_precision_at_k": card_precision_at_k(scores, y, customer_ids, timestamps, k=k),
        "max_abs_diff": float(np.max(np.abs(scores - teacher_scores))),
        "rank_corr": float(spearmanr(scores, teacher_scores)[0]),
        "decision_flips": int(flips.sum()),
    }


def measure_variant(
    name: str,
    scorer: Scorer,
    X_test: np.ndarray,
    y_test: np.ndarray,
    teacher_scores: np.ndarray,
    customer_ids: np.ndarray,
    timestamps: np.ndarray,
    *,
    size_bytes: int,
    params: BenchParams | None = None,
) -> dict[str, Any]:
    """Size, 1-thread latency and throughput, quality and teacher agreement of one variant.

    Parameters
    ----------
    name : str
        Variant name (a row label of the table).
    scorer : Scorer
        Called with float32 feature rows.
    X_test, y_test, customer_ids, timestamps : numpy.ndarray
        The evaluation rows.
    teacher_scores : numpy.ndarray
        The native teacher's probabilities on ``X_test``.
    size_bytes : int
        Size of the variant's artifact on disk.
    params : BenchParams, optional

    Returns
    -------
    dict
        ``name``, ``size_bytes``, ``p50_us``, ``p99_us``, ``rows_per_s`` and the entries of
        :func:`quality_metrics`.
    """
    params = params or BenchParams()
    scores = scorer.predict_scores(X_test)
    speed = measure_speed({name: scorer}, X_test, params)[name]
    quality = quality_metrics(
        scores,
        y_test,
        customer_ids,
        timestamps,
        teacher_scores,
        k=params.k,
        alert_rate=params.alert_rate,
    )
    return {
        "name": name,
        "size_bytes": int(size_bytes),
        **speed,
        **quality,
    }


# --------------------------------------------------------------------------------------------
# selection
# --------------------------------------------------------------------------------------------


def add_relative_columns(table: pd.DataFrame, reference: str = "teacher") -> pd.DataFrame:
    """Losses, size ratio and speed-ups of every variant against ``reference`` (a copy)."""
    out = table.copy()
    ref = out.set_index("name").loc[reference]
    for prefix in ("", "val_"):
        if f"{prefix}ap" in out:
            out[f"{prefix}ap_loss"] = ref[f"{prefix}ap"] - out[f"{prefix}ap"]
            out[f"{prefix}auc_loss"] = ref[f"{prefix}roc_auc"] - out[f"{prefix}roc_auc"]
    out["size_ratio"] = ref["size_bytes"] / out["size_bytes"]
    out["p50_speedup"] = ref["p50_us"] / out["p50_us"]
    out["throughput_speedup"] = out["rows_per_s"] / ref["rows_per_s"]
    return out


def select_variant(table: pd.DataFrame, policy: SelectionPolicy) -> str:
    """The fastest deployable variant within the quality-loss budget.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per variant with columns ``name``, ``format``, ``p50_us``, ``size_bytes``
        and ``ap`` / ``roc_auc`` (``val_ap`` / ``val_roc_auc`` when ``policy.losses_on`` is
        ``"validation"``); must contain ``policy.reference``.
    policy : SelectionPolicy

    Returns
    -------
    str
        Among variants of an allowed format, at least ``min_size_ratio`` times smaller than
        the reference, whose AP and ROC-AUC losses against it are within budget: those with p50 within ``latency_tolerance`` of the
        fastest, then the smallest. ``policy.fallback`` (or the reference) if none qualifies.
    """
    if policy.losses_on not in ("validation", "test"):
        raise ValueError(
            f"policy.losses_on must be 'validation' or 'test', got {policy.losses_on!r}"
        )
    prefix = "val_" if policy.losses_on == "validation" else ""
    names = set(table["name"])
    if policy.reference not in names:
        raise ValueError(f"reference variant {policy.reference!r} is not in the table")
    ref = table.set_index("name").loc[policy.reference]
    ap_loss = ref[f"{prefix}ap"] - table[f"{prefix}ap"]
    auc_loss = ref[f"{prefix}roc_auc"] - table[f"{prefix}roc_auc"]
    ok = (
        table["format"].isin(policy.formats)
        & (ap_loss <= policy.max_ap_loss + 1e-12)
        & (auc_loss <= policy.max_auc_loss + 1e-12)
        & (table["size_bytes"] * policy.min_size_ratio <= ref["size_bytes"])
    )
    candidates = table[ok]
    if candidates.empty:
        return policy.fallback if policy.fallback in names else policy.reference
    fastest = candidates["p50_us"].min()
    tied = candidates[candidates["p50_us"] <= fastest * (1.0 + policy.latency_tolerance)]
    return str(tied.sort_values(["size_bytes", "p50_us"], kind="stable")["name"].iloc[0])


# --------------------------------------------------------------------------------------------
# plot
# --------------------------------------------------------------------------------------------


def plot_frontier(table: pd.DataFrame, chosen: str | None = None) -> Figure:
    """Average precision against single-row p50 latency (log x), one labelled point per variant.

    Parameters
    ----------
    table : pandas.DataFrame
        Columns ``name``, ``p50_us``, ``ap`` (and optionally ``size_bytes`` for marker size).
    chosen : str, optional
        Variant to highlight.

    Returns
    -------
    matplotlib.figure.Figure
        Built without pyplot, so no global state is touched.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 4.8), layout="constrained")
    ax = fig.subplots()
    sizes = 20 + 60 * np.log10(table["size_bytes"].clip(lower=10)) if "size_bytes" in table else 40
    ax.scatter(table["p50_us"], table["ap"], s=sizes, alpha=0.7)
    for row in table.itertuples():
        bold = "bold" if row.name == chosen else "normal"
        ax.annotate(
            str(row.name),
            (row.p50_us, row.ap),
            textcoords="offset points",
            xytext=(4, 4),
            fontsize="small",
            fontweight=bold,
        )
    ax.set_xscale("log")
    ax.set(
        xlabel="Single-row p50 latency, 1 thread (µs, log)",
        ylabel="Average precision (test)",
        title="Optimization frontier (marker area ~ log size)",
    )
    ax.grid(alpha=0.3, which="both")
    return fig


# --------------------------------------------------------------------------------------------
# orchestration
# --------------------------------------------------------------------------------------------


@dataclass
class Variant:
    """A candidate model: how to score with it and what it is."""

    name: str
    family: str
    format: str
    scorer: Scorer
    size_bytes: int
    path: Path | None = None
    n_params: int = 0
    note: str = ""


@dataclass
class OptimizeResult:
    """What :func:`optimize_teacher` produced.

    ``artifacts`` maps each deployable variant to its file: an ONNX graph, or x86-64 object
    code for the compiled forests and MLPs (whose loaded scorers are in ``compiled``).
    """

    table: pd.DataFrame
    chosen: str
    artifacts: dict[str, Path]
    compiled: dict[str, CompiledModel]
    prune: PruneResult | None
    skipped: dict[str, str]
    figure: Figure

    @property
    def onnx_paths(self) -> dict[str, Path]:
        """ONNX file of every variant exported to ONNX."""
        return {name: p for name, p in self.artifacts.items() if p.suffix == ".onnx"}

    @property
    def chosen_path(self) -> Path:
        """File of the chosen variant (ONNX graph or compiled object code)."""
        return self.artifacts[self.chosen]

    def edge_classifier(self) -> OnnxClassifier | CompiledClassifier:
        """The chosen variant as a picklable classifier for :class:`~inferloop.model.FraudModel`."""
        if self.chosen in self.compiled:
            return CompiledClassifier(self.compiled[self.chosen], self.chosen)
        if self.chosen in self.onnx_paths:
            return OnnxClassifier(self.onnx_paths[self.chosen].read_bytes(), self.chosen)
        raise ValueError(
            f"the chosen variant {self.chosen!r} is neither ONNX nor compiled; "
            f"optimize.selection.formats may list only {list(EDGE_FORMATS)} for the edge"
        )


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _onnx_variant(name: str, family: str, model: bytes, workdir: Path, **kw: Any) -> Variant:
    path = _write(workdir / f"{name}.onnx", model)
    return Variant(name, family, "onnx", OnnxScorer(path), len(model), path, **kw)


def _native_variant(name: str, family: str, model: Any, workdir: Path, sigmoid: bool) -> Variant:
    path = workdir / f"{name}.txt"
    _booster(model).save_model(path)
    scorer = LightGBMScorer(model, sigmoid)
    return Variant(name, family, "lightgbm", scorer, path.stat().st_size, path, n_tree_nodes(model))


def _teacher_variants(
    teacher: Any, n_features: int, params: OptimizeParams, workdir: Path
) -> Iterator[Variant | tuple[str, str]]:
    """The teacher natively, in ONNX (float and int8) and compiled; skips as (name, reason)."""
    native = _native_variant("teacher", "teacher", teacher, workdir, sigmoid=False)
    yield native
    graph = lightgbm_to_onnx(teacher, n_features)
    yield _onnx_variant("teacher_onnx", "teacher", graph, workdir, n_params=native.n_params)
    if params.quantize_int8:
        note = "no quantizable ops in a tree graph"
        int8 = quantize_onnx_int8(graph)
        yield _onnx_variant(
            "teacher_onnx_int8", "teacher", int8, workdir, n_params=native.n_params, note=note
        )
    for compiler in (c for c in params.compilers if c in TREE_COMPILERS):
        compiled = compile_teacher(teacher, compiler, workdir)
        if isinstance(compiled, str):
            yield (f"teacher_{compiler}", compiled)
            continue
        scorer, size = compiled
        path = compiled_path(workdir, f"teacher_{compiler}")
        yield Variant(
            f"teacher_{compiler}", "teacher", compiler, scorer, size, path, native.n_params
        )


def _tree_student_variants(
    teacher: Any,
    X_unlabelled: np.ndarray,
    labelled: tuple[np.ndarray, np.ndarray] | None,
    params: OptimizeParams,
    workdir: Path,
) -> Iterator[Variant | tuple[str, str]]:
    """The distilled LightGBM (native and ONNX) and the same-size labels-only control."""
    n = X_unlabelled.shape[1]
    student = distil_lightgbm(teacher, X_unlabelled, params.distil)
    sigmoid = params.distil.target == "logit"
    native = _native_variant("gbm_distilled", "gbm_distilled", student, workdir, sigmoid)
    yield native
    graph = lightgbm_to_onnx(student, n, sigmoid=sigmoid)
    yield _onnx_variant(
        "gbm_distilled_onnx", "gbm_distilled", graph, workdir, n_params=native.n_params
    )
    if "lleaves" in params.compilers:
        yield _compiled_student(student, "logistic" if sigmoid else "identity", workdir, native)
    if labelled is not None and params.label_control:
        control = small_lightgbm_on_labels(labelled[0], labelled[1], params.distil)
        yield _onnx_variant(
            "gbm_labels_onnx",
            "gbm_labels",
            lightgbm_to_onnx(control, n),
            workdir,
            n_params=n_tree_nodes(control),
        )


def _compiled_student(
    student: Any, link: str, workdir: Path, native: Variant
) -> Variant | tuple[str, str]:
    """The distilled forest compiled by lleaves (same model as its ONNX form, native code)."""
    name = "gbm_distilled_lleaves"
    try:
        forest = compile_lleaves(student, name, workdir, link)
    except Exception as exc:  # optional, version-fragile dependency: report, never fail
        return name, f"lleaves unavailable: {type(exc).__name__}: {exc}"
    note = "x86-64 object code called through ctypes (llvmlite only)"
    return Variant(
        name,
        "gbm_distilled",
        "lleaves",
        forest,
        forest.size_bytes,
        compiled_path(workdir, name),
        native.n_params,
        note,
    )


def compile_mlp_student(net: StudentMLP) -> CompiledModel:
    """The MLP's scoring function (:class:`ProbabilityHead`) compiled to x86-64 code by LLVM."""
    head = ProbabilityHead(net)
    weights = [w.detach().numpy() for w in head.weights]
    biases = [b.detach().numpy() for b in head.biases]
    log_columns = np.flatnonzero(head.log_mask.numpy()).tolist()
    code = compile_mlp(weights, biases, log_columns)
    return CompiledModel(code, weights[0].shape[0], "logistic", MLP_ENTRY)


def _compiled_mlp(
    net: StudentMLP, name: str, workdir: Path, note: str
) -> Variant | tuple[str, str]:
    """An MLP student compiled by LLVM (same network as its ONNX form, native code)."""
    try:
        model = compile_mlp_student(net)
    except Exception as exc:  # llvmlite / LLVM trouble: report the variant as skipped
        return name, f"llvm unavailable: {type(exc).__name__}: {exc}"
    path = _write(compiled_path(workdir, name), model.object_code)
    note = f"{note}; x86-64 object code called through ctypes (llvmlite only)"
    return Variant(name, "mlp", "llvm", model, model.size_bytes, path, net.n_parameters(), note)


def _mlp_variants(
    teacher: Any,
    X_unlabelled: np.ndarray,
    params: OptimizeParams,
    workdir: Path,
    on_prune: Callable[[PruneResult], None],
) -> Iterator[Variant | tuple[str, str]]:
    n = X_unlabelled.shape[1]
    mlp = fit_mlp_student(teacher, X_unlabelled, params.mlp)

    def export(net: StudentMLP) -> bytes:
        return mlp_to_onnx(ProbabilityHead(net), n, exporter=params.onnx_exporter)

    graphs = {"mlp_onnx": (mlp, export(mlp))}
    soft = _sigmoid(teacher_logits(teacher, X_unlabelled) / params.mlp.temperature)
    pruned = prune_mlp_structured(
        mlp, X_unlabelled, params.prune.amount, soft_targets=soft, params=params.prune
    )
    on_prune(pruned)
    graphs["mlp_pruned_onnx"] = (pruned.model, export(pruned.model))
    for name, (net, graph) in graphs.items():
        note = f"hidden={list(net.hidden_sizes)}"
        yield _onnx_variant(name, "mlp", graph, workdir, n_params=net.n_parameters(), note=note)
        if "llvm" in params.compilers:
            yield _compiled_mlp(net, name.replace("_onnx", "_llvm"), workdir, note)
        if params.quantize_int8:
            q = quantize_onnx_int8(graph)
            yield _onnx_variant(
                f"{name}_int8",
                "mlp",
                q,
                workdir,
                n_params=net.n_parameters(),
                note=f"{note}; ops={sorted(set(onnx_op_types(q)))}",
            )


def optimize_teacher(
    teacher: Any,
    X_unlabelled: np.ndarray,
    validation: EvalSet,
    test: EvalSet,
    params: OptimizeParams,
    workdir: str | Path,
    *,
    labelled: tuple[np.ndarray, np.ndarray] | None = None,
    progress: bool = True,
) -> OptimizeResult:
    """Build, export and measure every variant of the teacher and choose the edge model.

    Parameters
    ----------
    teacher : lightgbm.LGBMClassifier or lightgbm.Booster
        The trained teacher.
    X_unlabelled : numpy.ndarray
        Raw feature rows for distillation (labels not needed), e.g. all rows before the
        validation window.
    validation : EvalSet
        Data the selection policy's losses are computed on (``val_*`` columns).
    test : EvalSet
        Data every reported metric and timing uses.
    params : OptimizeParams
    workdir : str or Path
        Folder for the artifacts (ONNX graphs, model files, compiled libraries); created.
    labelled : (X, y), optional
        Training rows with labels for the same-size labels-only control model.
    progress : bool, default True
        Show a tqdm progress bar.

    Returns
    -------
    OptimizeResult
    """
    from tqdm.auto import tqdm

    unknown = sorted(set(params.compilers) - set(COMPILERS))
    if unknown:
        raise ValueError(f"unknown optimize.compilers {unknown}; expected some of {COMPILERS}")
    not_edge = sorted(set(params.selection.formats) - set(EDGE_FORMATS))
    if not_edge:
        raise ValueError(
            f"optimize.selection.formats {not_edge} cannot be deployed at the edge; "
            f"expected some of {EDGE_FORMATS}"
        )
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    teacher_test = LightGBMScorer(teacher).predict_scores(test.X)
    teacher_val = LightGBMScorer(teacher).predict_scores(validation.X)
    rows: list[dict[str, Any]] = []
    paths: dict[str, Path] = {}
    compiled: dict[str, CompiledModel] = {}
    skipped: dict[str, str] = {}
    holder: list[PruneResult] = []
    scorers: dict[str, Scorer] = {}
    sources: list[Iterator[Variant | tuple[str, str]]] = [
        _teacher_variants(teacher, X_unlabelled.shape[1], params, workdir),
        _tree_student_variants(teacher, X_unlabelled, labelled, params, workdir),
        _mlp_variants(teacher, X_unlabelled, params, workdir, holder.append),
    ]
    bar = tqdm(desc="optimize", unit="variant", disable=not progress)
    for source in sources:
        for item in source:
            if isinstance(item, tuple):
                skipped[item[0]] = item[1]
                continue
            bar.set_postfix_str(item.name)
            rows.append(
                _quality_row(item, test, validation, teacher_test, teacher_val, params.bench)
            )
            scorers[item.name] = item.scorer
            if item.format in EDGE_FORMATS and item.path is not None:
                paths[item.name] = item.path
            if isinstance(item.scorer, CompiledModel):
                compiled[item.name] = item.scorer
            bar.update()
    bar.set_postfix_str("timing all variants, interleaved")
    speed = measure_speed(scorers, test.X, params.bench)
    bar.close()
    for row in rows:
        row.update(speed[row["name"]])
    table = add_relative_columns(pd.DataFrame(rows), params.selection.reference)
    chosen = select_variant(table, params.selection)
    prune = holder[0] if holder else None
    figure = plot_frontier(table, chosen)
    return OptimizeResult(table, chosen, paths, compiled, prune, skipped, figure)


def _quality_row(
    variant: Variant,
    test: EvalSet,
    validation: EvalSet,
    teacher_test: np.ndarray,
    teacher_val: np.ndarray,
    bench: BenchParams,
) -> dict[str, Any]:
    """Size and quality of one variant on test and validation; timing comes later, for all."""
    row = quality_metrics(
        variant.scorer.predict_scores(test.X),
        test.y,
        test.customer_ids,
        test.timestamps,
        teacher_test,
        k=bench.k,
        alert_rate=bench.alert_rate,
    )
    val = quality_metrics(
        variant.scorer.predict_scores(validation.X),
        validation.y,
        validation.customer_ids,
        validation.timestamps,
        teacher_val,
        k=bench.k,
        alert_rate=bench.alert_rate,
    )
    row.update({f"val_{key}": val[key] for key in ("roc_auc", "ap", "card_precision_at_k")})
    meta = {"family": variant.family, "format": variant.format, "n_params": variant.n_params}
    return {
        "name": variant.name,
        **meta,
        "size_bytes": int(variant.size_bytes),
        **row,
        "note": variant.note,
    }
