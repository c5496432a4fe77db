"""Evaluation step: metrics, fairness by group, promotion gates and the model card; plots of them."""

__all__: list[str] = []
