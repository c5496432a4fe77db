"""The closed loop: retraining, the production simulation and the daily monitoring job."""

__all__: list[str] = []
