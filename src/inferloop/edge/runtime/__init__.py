"""What an edge process runs: compiled scorers and ONNX Runtime sessions. No torch, no LightGBM."""

__all__: list[str] = []
