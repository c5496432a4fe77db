"""The edge model: the chosen optimized variant as ONE deployable MLflow model.

It is a :class:`~inferloop.model.FraudModel` whose classifier is either an ONNX graph scored
by onnxruntime alone (:class:`OnnxClassifier`) or x86-64 code -- a LightGBM forest compiled by
lleaves or an MLP compiled by LLVM -- called through ctypes (:class:`CompiledClassifier`, needs
llvmlite only): the same raw transaction signature, the same featurizer (numpy, pandas) and the
same ``score_frame`` path as ``fraud-detector``, with no torch and no LightGBM in the process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from inferloop.edge.runtime.compiled import CompiledModel

__all__ = [
    "CompiledClassifier",
    "OnnxClassifier",
]


class _ScoreClassifier:
    """``predict_proba`` from ``predict_scores`` (scikit-learn's two-column convention)."""

    def predict_scores(self, X: Any) -> np.ndarray:
        """Fraud scores of feature rows."""
        raise NotImplementedError

    def predict_proba(self, X: Any) -> np.ndarray:
        """``(n, 2)`` class probabilities (scikit-learn convention)."""
        scores = self.predict_scores(X)
        return np.column_stack([1.0 - scores, scores])


class OnnxClassifier(_ScoreClassifier):
    """``predict_proba`` over a serialized ONNX graph (input: raw feature rows, output: score).

    Picklable: only the graph bytes are stored; the onnxruntime session is rebuilt on first use
    in each process (sessions themselves cannot be pickled).
    """

    #: pip packages the logged model needs beyond the featurizer's (MLflow requirements)
    runtime_packages = ("onnxruntime",)

    def __init__(self, model: bytes, variant: str = "") -> None:
        self.model = model
        self.variant = variant
        self._scorer: Any = None

    def _session(self) -> Any:
        if self._scorer is None:
            from inferloop.edge.runtime.onnx_predictor import OnnxPredictor

            self._scorer = OnnxPredictor(self.model)
        return self._scorer

    def predict_scores(self, X: Any) -> np.ndarray:
        """Fraud scores of feature rows."""
        return np.asarray(
            self._session().predict_scores(np.asarray(X, dtype=np.float32)), dtype=np.float64
        )

    def __getstate__(self) -> dict[str, Any]:
        return {"model": self.model, "variant": self.variant}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.model, self.variant, self._scorer = state["model"], state.get("variant", ""), None


class CompiledClassifier(_ScoreClassifier):
    """``predict_proba`` over a compiled model (:class:`~inferloop.edge.runtime.compiled.CompiledModel`).

    Picklable: the model stores its object code and loads it again in each process.
    """

    #: pip packages the logged model needs beyond the featurizer's (MLflow requirements)
    runtime_packages = ("llvmlite",)

    def __init__(self, model: CompiledModel, variant: str = "") -> None:
        self.model = model
        self.variant = variant

    def predict_scores(self, X: Any) -> np.ndarray:
        """Fraud scores of feature rows."""
        return self.model.predict_scores(np.asarray(X))
