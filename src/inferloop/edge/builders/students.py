"""Students of the teacher: distilled LightGBM forests and MLPs, and structured pruning.

* **Distillation** trains small students on the teacher's scores over a wide *unlabelled*
  window (every row before the validation window, labels ignored -- including the label-delay
  gap, whose labels are not known yet): a small LightGBM regressor on the teacher's logit
  (:func:`distil_lightgbm`) and a torch MLP on the teacher's soft probabilities
  (:func:`fit_mlp_student`). :func:`small_lightgbm_on_labels` is the same-size model trained
  on labels only, as the control.
* **Structured pruning** (:func:`prune_mlp_structured`) removes whole hidden neurons and
  rebuilds smaller ``nn.Linear`` layers, so the saving is real (masking weights is not).
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast

import lightgbm as lgb
import numpy as np
import torch
from torch import nn

from inferloop.edge.builders.params import DistilParams, PruneParams, StudentMLPParams

if TYPE_CHECKING:
    pass

__all__ = [
    "LightGBMPredictor",
    "Predictor",
    "ProbabilityHead",
    "PruneResult",
    "StudentMLP",
    "booster_of",
    "build_student_mlp",
    "distil_lightgbm",
    "expit",
    "fit_mlp_student",
    "mlp_predict",
    "n_tree_nodes",
    "neuron_importance",
    "prune_mlp_structured",
    "small_lightgbm_on_labels",
    "teacher_logits",
    "torch_threads",
    "train_soft_targets",
]


# --------------------------------------------------------------------------------------------
# parameters (the `optimize` section of params.yaml)
# --------------------------------------------------------------------------------------------


class Predictor(Protocol):
    """Anything that maps a float32 feature matrix to fraud probabilities."""

    def predict_scores(self, X: np.ndarray) -> np.ndarray:
        """Fraud probabilities, one per row."""
        ...


def booster_of(model: Any) -> lgb.Booster:
    return model if isinstance(model, lgb.Booster) else model.booster_


class LightGBMPredictor:
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
        self.booster_ = booster_of(model)

    def predict_scores(self, X: np.ndarray) -> np.ndarray:
        """Probabilities (or sigmoid of the regression output) of the rows of ``X``."""
        out = np.asarray(self.booster_.predict(np.atleast_2d(X), num_threads=1), np.float64)
        return expit(out) if self.sigmoid else out


def expit(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


# --------------------------------------------------------------------------------------------
# tree students
# --------------------------------------------------------------------------------------------


def teacher_logits(teacher: Any, X: np.ndarray) -> np.ndarray:
    """The teacher's raw score (log-odds) of each row, predicted with one thread."""
    return np.asarray(booster_of(teacher).predict(X, raw_score=True, num_threads=1), np.float64)


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
    probability = expit(logits)
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
    frame = booster_of(model).trees_to_dataframe()
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
    the ``log1p`` compression stays in front. Outputs equal ``expit(net(x))``.
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


def build_student_mlp(X: np.ndarray, params: StudentMLPParams) -> StudentMLP:
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
    spin against other processes (a many-fold slowdown on busy cores).
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


def fit_mlp_student(teacher: Any, X_unlabelled: np.ndarray, params: StudentMLPParams) -> StudentMLP:
    """Distil the teacher into an MLP trained on its soft scores (BCE on soft targets).

    Parameters
    ----------
    teacher : lightgbm.LGBMClassifier or lightgbm.Booster
    X_unlabelled : numpy.ndarray
        Raw feature rows; labels are not needed.
    params : StudentMLPParams

    Returns
    -------
    StudentMLP
        In eval mode; ``forward`` returns logits.
    """
    soft = expit(teacher_logits(teacher, X_unlabelled) / params.temperature)
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
