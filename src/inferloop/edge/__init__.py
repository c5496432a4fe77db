"""Edge step: small, fast models for devices.

:mod:`inferloop.edge.runtime` holds what an edge process runs (compiled code through ctypes, ONNX
Runtime) and never imports torch or LightGBM; :mod:`inferloop.edge.builders` distils, prunes,
quantizes, exports and compiles; :mod:`inferloop.edge.stage` is the optimize stage."""

__all__: list[str] = []
