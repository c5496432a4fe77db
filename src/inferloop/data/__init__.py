"""Data step: simulate or ingest events, apply the data contract, point-in-time features, time split.

Stage entry points (simulate, validate, featurize, split) are in :mod:`inferloop.data.stage`."""

__all__: list[str] = []
