"""Foundations every step shares: the column schema, params loading, storage, MLflow tracking, lineage, the registry.

Imports nothing else from inferloop."""

__all__: list[str] = []
