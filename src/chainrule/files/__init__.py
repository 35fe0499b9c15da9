"""Files: the safe model file (atomic writes, bounded reads of a stranger's archive) and ONNX
export. This floor knows a model only through the small protocols it declares."""
