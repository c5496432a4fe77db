"""Training step: candidate models (LightGBM, logistic baseline, torch MLP), then evaluate and register.

Stage entry points (train, evaluate, register) are in :mod:`inferloop.training.stage`."""

__all__: list[str] = []
