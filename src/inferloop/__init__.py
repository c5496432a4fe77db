"""inferloop: a notebook-driven MLOps lifecycle for real-time fraud and anomaly detection.

Subpackages by lifecycle step, imported one way (checked by import-linter):
core <- data <- evaluation <- model <- {training, edge, scoring} <- monitoring <- loop <- cli.
"""

__all__: list[str] = []
