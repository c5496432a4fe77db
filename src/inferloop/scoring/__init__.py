"""Scoring step: the live scorer shared by batch files, the stream, Spark and MLflow's model server."""

__all__: list[str] = []
