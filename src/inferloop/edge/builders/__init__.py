"""Builders of edge models: distillation, structured pruning, int8 quantization, ONNX export,
LLVM compilation, measurement and selection. Needs torch and LightGBM; devices never import it."""

__all__: list[str] = []
