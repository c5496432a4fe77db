"""A small PyTorch multilayer perceptron behind scikit-learn's classifier contract.

:class:`TorchMLPClassifier` standardizes its inputs, trains a ReLU MLP with a weighted
``BCEWithLogitsLoss`` and AdamW on mini-batches, early-stops on validation average precision
and keeps the best epoch's weights.

Its fitted state is plain numpy (the standardizer's ``mean_``/``scale_`` and one
``(weight, bias)`` pair per linear layer), so the pickled estimator is small, carries no
torch tensors and loads in a fresh process; the torch module is rebuilt lazily from those
arrays the first time it is needed (:attr:`TorchMLPClassifier.module_`).

Training is deterministic on CPU for a given ``seed`` and ``threads``: weights are initialised
and dropout masks drawn under a forked, seeded torch RNG (the caller's global RNG state is
left untouched), batches are shuffled by a seeded generator, and the torch thread count is set
for the duration of :meth:`~TorchMLPClassifier.fit` only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from numpy.typing import ArrayLike, NDArray
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.metrics import average_precision_score
from sklearn.utils.validation import check_is_fitted

__all__ = [
    "FloatArray",
    "Layer",
    "TorchMLPClassifier",
    "build_mlp",
]


FloatArray = NDArray[np.float32]
Layer = tuple[NDArray[np.float32], NDArray[np.float32]]

_MODULE_CACHE = "_module_cache"


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """Use ``n`` intra-op threads inside the block and restore the previous count after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, int(n)))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _as_float32(X: ArrayLike | pd.DataFrame) -> FloatArray:
    """A C-contiguous float32 2-d array from a DataFrame or array-like."""
    values = X.to_numpy(dtype=np.float32) if isinstance(X, pd.DataFrame) else np.asarray(X)
    array = np.ascontiguousarray(values, dtype=np.float32)
    if array.ndim != 2:
        raise ValueError(f"expected a 2-d feature matrix, got shape {array.shape}")
    return array


def _as_labels(y: ArrayLike | pd.Series) -> NDArray[np.float32]:
    """0/1 labels as a float32 vector; anything else is an error."""
    labels = np.asarray(y).ravel()
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("TorchMLPClassifier expects binary 0/1 labels")
    return labels.astype(np.float32)


def build_mlp(n_features: int, hidden: Sequence[int], dropout: float = 0.0) -> torch.nn.Sequential:
    """``Linear → ReLU → Dropout`` blocks ending in one ``Linear`` that outputs a logit.

    Parameters
    ----------
    n_features:
        Width of the input.
    hidden:
        Widths of the hidden layers, e.g. ``(64, 32)``; empty gives logistic regression.
    dropout:
        Dropout probability after each hidden ReLU (no dropout layer when ``0``).

    Returns
    -------
    torch.nn.Sequential
        The module; its ``torch.nn.Linear`` layers appear in input-to-output order.
    """
    layers: list[torch.nn.Module] = []
    width = n_features
    for size in hidden:
        layers += [torch.nn.Linear(width, int(size)), torch.nn.ReLU()]
        if dropout > 0:
            layers.append(torch.nn.Dropout(dropout))
        width = int(size)
    layers.append(torch.nn.Linear(width, 1))
    return torch.nn.Sequential(*layers)


def _linear_layers(module: torch.nn.Sequential) -> list[torch.nn.Linear]:
    return [m for m in module if isinstance(m, torch.nn.Linear)]


def _layers_of(module: torch.nn.Sequential) -> list[Layer]:
    """Copies of the module's ``(weight, bias)`` pairs as float32 numpy arrays."""
    return [
        (
            layer.weight.detach().cpu().numpy().astype(np.float32, copy=True),
            layer.bias.detach().cpu().numpy().astype(np.float32, copy=True),
        )
        for layer in _linear_layers(module)
    ]


def _load_layers(module: torch.nn.Sequential, layers: Sequence[Layer]) -> None:
    with torch.no_grad():
        for linear, (weight, bias) in zip(_linear_layers(module), layers, strict=True):
            linear.weight.copy_(torch.from_numpy(np.asarray(weight, dtype=np.float32)))
            linear.bias.copy_(torch.from_numpy(np.asarray(bias, dtype=np.float32)))


class TorchMLPClassifier(ClassifierMixin, BaseEstimator):
    """Binary MLP classifier (PyTorch, CPU) with standardization and early stopping.

    Parameters
    ----------
    hidden:
        Hidden layer widths.
    dropout:
        Dropout probability after each hidden layer.
    epochs:
        Maximum number of passes over the training data.
    batch_size:
        Mini-batch size for training (prediction uses ``predict_batch_size``).
    lr, weight_decay:
        AdamW learning rate and decoupled weight decay.
    patience:
        Stop after this many epochs without a better validation average precision
        (only when ``fit`` gets an ``eval_set``).
    class_weight:
        ``"balanced"`` weighs the positive class by ``n_negative / n_positive`` through
        ``BCEWithLogitsLoss(pos_weight=...)``; ``None`` leaves the loss unweighted.
        Weighted training ranks as well but its probabilities are not calibrated.
    threads:
        ``torch.set_num_threads`` during ``fit`` (restored afterwards). One thread is the
        default: a network this small gains little from a second one, and on a busy 2-core
        machine two OpenMP threads ran several times slower than one.
    seed:
        Seed of weight initialisation, dropout and batch shuffling.
    predict_batch_size:
        Rows per forward pass in :meth:`predict_proba`.

    Attributes
    ----------
    classes_ : ndarray
        ``[0, 1]``.
    n_features_in_ : int
        Number of input columns.
    feature_names_in_ : ndarray
        Column names when fitted on a DataFrame.
    mean_, scale_ : ndarray
        The standardizer: the network sees ``(X - mean_) / scale_``.
    layers_ : list of (ndarray, ndarray)
        Best-epoch ``(weight, bias)`` per linear layer, torch layout ``(out, in)``.
    best_epoch_ : int
        1-based epoch whose weights were kept.
    history_ : list of dict
        Per epoch: ``epoch``, ``train_loss`` and ``val_average_precision`` (NaN without
        an ``eval_set``).
    pos_weight_ : float
        The positive-class loss weight used (``1.0`` when unweighted).
    """

    def __init__(
        self,
        hidden: Sequence[int] = (64, 32),
        dropout: float = 0.1,
        epochs: int = 30,
        batch_size: int = 1024,
        lr: float = 2e-3,
        weight_decay: float = 1e-4,
        patience: int = 4,
        class_weight: str | None = None,
        threads: int = 1,
        seed: int = 0,
        predict_batch_size: int = 65536,
    ) -> None:
        self.hidden = hidden
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.patience = patience
        self.class_weight = class_weight
        self.threads = threads
        self.seed = seed
        self.predict_batch_size = predict_batch_size

    # ------------------------------------------------------------------ fitting
    def fit(
        self,
        X: ArrayLike | pd.DataFrame,
        y: ArrayLike | pd.Series,
        *,
        eval_set: tuple[Any, Any] | None = None,
    ) -> TorchMLPClassifier:
        """Train on ``(X, y)``, early-stopping on ``eval_set = (X_val, y_val)`` if given.

        Parameters
        ----------
        X:
            Numeric feature matrix (DataFrame or array), one row per transaction.
        y:
            0/1 labels.
        eval_set:
            Validation ``(X_val, y_val)``; its average precision after each epoch selects
            the weights that are kept. Without it the last epoch's weights are kept.

        Returns
        -------
        TorchMLPClassifier
            ``self``, fitted.
        """
        features, labels = _as_float32(X), _as_labels(y)
        if labels.min() == labels.max():
            raise ValueError("TorchMLPClassifier needs both classes in y")
        self._remember_inputs(X, features)
        self.mean_ = features.mean(axis=0, dtype=np.float64).astype(np.float32)
        scale = features.std(axis=0, dtype=np.float64).astype(np.float32)
        self.scale_ = np.where(scale > 0, scale, np.float32(1.0)).astype(np.float32)
        n_pos = float(labels.sum())
        balanced = self.class_weight == "balanced"
        self.pos_weight_ = (len(labels) - n_pos) / n_pos if balanced else 1.0
        validation = None
        if eval_set is not None:
            validation = (self._standardize(_as_float32(eval_set[0])), _as_labels(eval_set[1]))
        with _torch_threads(self.threads), torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self._train(self._standardize(features), labels, validation)
        return self

    def _remember_inputs(self, X: Any, features: FloatArray) -> None:
        self.classes_ = np.array([0, 1])
        self.n_features_in_ = features.shape[1]
        if isinstance(X, pd.DataFrame):
            self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_

    def _train(
        self,
        features: FloatArray,
        labels: NDArray[np.float32],
        validation: tuple[FloatArray, NDArray[np.float32]] | None,
    ) -> None:
        module = build_mlp(self.n_features_in_, self.hidden, self.dropout)
        optimizer = torch.optim.AdamW(
            module.parameters(), lr=self.lr, weight_decay=self.weight_decay
        )
        loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor([self.pos_weight_]))
        generator = torch.Generator().manual_seed(self.seed)
        X_t, y_t = torch.from_numpy(features), torch.from_numpy(labels)
        best_score, best_layers, best_epoch, waited = -np.inf, _layers_of(module), 0, 0
        self.history_: list[dict[str, float]] = []
        for epoch in range(1, self.epochs + 1):
            loss = self._run_epoch(module, optimizer, loss_fn, X_t, y_t, generator)
            score = self._score(module, validation)
            self.history_.append(
                {"epoch": epoch, "train_loss": loss, "val_average_precision": score}
            )
            if validation is None or not np.isfinite(score) or score > best_score:
                best_score, best_layers, best_epoch, waited = score, _layers_of(module), epoch, 0
            else:
                waited += 1
                if waited >= self.patience:
                    break
        self.layers_ = best_layers
        self.best_epoch_ = best_epoch
        self.__dict__.pop(_MODULE_CACHE, None)

    def _run_epoch(
        self,
        module: torch.nn.Sequential,
        optimizer: torch.optim.Optimizer,
        loss_fn: torch.nn.Module,
        X: torch.Tensor,
        y: torch.Tensor,
        generator: torch.Generator,
    ) -> float:
        """One shuffled pass over the data; returns the mean training loss."""
        module.train()
        order = torch.randperm(len(X), generator=generator)
        total = 0.0
        for start in range(0, len(X), self.batch_size):
            idx = order[start : start + self.batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(module(X[idx]).squeeze(1), y[idx])
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(idx)
        return total / len(X)

    def _score(
        self,
        module: torch.nn.Sequential,
        validation: tuple[FloatArray, NDArray[np.float32]] | None,
    ) -> float:
        if validation is None:
            return float("nan")
        logits = self._forward(module, validation[0])
        return float(average_precision_score(validation[1], logits))

    # ------------------------------------------------------------------ prediction
    def _standardize(self, features: FloatArray) -> FloatArray:
        if features.shape[1] != len(self.mean_):
            raise ValueError(f"expected {len(self.mean_)} features, got {features.shape[1]}")
        return (features - self.mean_) / self.scale_

    def _forward(
        self, module: torch.nn.Sequential, standardized: FloatArray
    ) -> NDArray[np.float64]:
        """Logits for standardized rows, in eval mode and batches."""
        module.eval()
        out = np.empty(len(standardized), dtype=np.float64)
        step = max(1, int(self.predict_batch_size))
        with torch.inference_mode():
            for start in range(0, len(standardized), step):
                batch = torch.from_numpy(standardized[start : start + step])
                out[start : start + step] = module(batch).squeeze(1).double().numpy()
        return out

    def decision_function(self, X: ArrayLike | pd.DataFrame) -> NDArray[np.float64]:
        """Logits (log-odds of fraud) for each row of ``X``."""
        check_is_fitted(self, "layers_")
        return self._forward(self.module_, self._standardize(_as_float32(X)))

    def predict_proba(self, X: ArrayLike | pd.DataFrame) -> NDArray[np.float64]:
        """Class probabilities, shape ``(n, 2)``: column 1 is the fraud probability."""
        p = expit(self.decision_function(X))
        return np.column_stack([1.0 - p, p])

    def predict(self, X: ArrayLike | pd.DataFrame) -> NDArray[np.int64]:
        """0/1 predictions at probability 0.5."""
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(np.int64)

    # ------------------------------------------------------------------ export / state
    @property
    def module_(self) -> torch.nn.Sequential:
        """The trained network (eval mode), rebuilt from ``layers_`` on first access.

        It maps *standardized* features to one logit; see :meth:`export_layers` for
        weights that take raw features.
        """
        check_is_fitted(self, "layers_")
        module = self.__dict__.get(_MODULE_CACHE)
        if module is None:
            module = build_mlp(self.n_features_in_, self.hidden, self.dropout)
            _load_layers(module, self.layers_)
            module.eval()
            self.__dict__[_MODULE_CACHE] = module
        return module

    def export_layers(self, fold_standardizer: bool = True) -> list[Layer]:
        """The network as numpy ``(weight, bias)`` pairs, input layer first.

        The network computes ``h = relu(h @ W.T + b)`` for every layer but the last, which
        returns the fraud logit (``sigmoid`` gives the probability); dropout is inactive at
        inference. ``W`` has torch's shape ``(out_features, in_features)``.

        Parameters
        ----------
        fold_standardizer:
            If true (default) the first layer absorbs the standardizer
            (``W1' = W1 / scale_``, ``b1' = b1 - W1' @ mean_``) so the layers take raw
            features. If false the layers expect ``(X - mean_) / scale_``; use ``mean_``
            and ``scale_`` yourself.

        Returns
        -------
        list of (ndarray, ndarray)
            Float32 copies, safe to modify.
        """
        check_is_fitted(self, "layers_")
        layers = [(w.copy(), b.copy()) for w, b in self.layers_]
        if fold_standardizer:
            w1, b1 = layers[0]
            folded = (w1 / self.scale_[None, :]).astype(np.float32)
            layers[0] = (folded, (b1 - folded @ self.mean_).astype(np.float32))
        return layers

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())
        state.pop(_MODULE_CACHE, None)  # rebuilt lazily; keeps the pickle torch-free
        return state
