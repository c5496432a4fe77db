"""The online feature state: recent events per entity and the labels known so far.

Every live scoring path (``mlflow models serve``, the stream, batch scoring, the production
simulation) reads the events of a batch's entities from one store, featurizes, scores, and
writes the scored events back in one transaction (:meth:`FeatureState.transact`). Backends:
:class:`~inferloop.state.sqlite.SqliteState` (one WAL-mode file, the embedded default) and
:class:`~inferloop.state.redis_store.RedisState` (a ``redis-server`` shared by several hosts).
:func:`~inferloop.state.config.open_state` picks one from a location string.
"""
