"""The edge model: the chosen optimized variant as ONE deployable MLflow model.

It is a :class:`~inferloop.model.FraudModel` whose classifier is an ONNX graph: the same raw
transaction signature, the same featurizer (numpy, pandas) and the same ``score_frame`` path
as ``fraud-detector``, but scored by onnxruntime alone — no torch, no LightGBM in the process.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class OnnxClassifier:
    """``predict_proba`` over a serialized ONNX graph (input: raw feature rows, output: score).

    Picklable: only the graph bytes are stored; the onnxruntime session is rebuilt on first use
    in each process (sessions themselves cannot be pickled).
    """

    def __init__(self, model: bytes, variant: str = "") -> None:
        self.model = model
        self.variant = variant
        self._scorer: Any = None

    def _session(self) -> Any:
        if self._scorer is None:
            from inferloop.onnx_export import OnnxScorer  # onnxruntime only

            self._scorer = OnnxScorer(self.model)
        return self._scorer

    def predict_scores(self, X: Any) -> np.ndarray:
        """Fraud scores of feature rows."""
        return np.asarray(
            self._session().predict_scores(np.asarray(X, dtype=np.float32)), dtype=np.float64
        )

    def predict_proba(self, X: Any) -> np.ndarray:
        """``(n, 2)`` class probabilities (scikit-learn convention)."""
        scores = self.predict_scores(X)
        return np.column_stack([1.0 - scores, scores])

    def __getstate__(self) -> dict[str, Any]:
        return {"model": self.model, "variant": self.variant}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.model, self.variant, self._scorer = state["model"], state.get("variant", ""), None
