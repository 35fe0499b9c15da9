"""`chainrule.onnx`, the documented path of `chainrule.files.onnx`."""

from chainrule.files.onnx import (
    export,
    to_onnx,
)

__all__ = [
    "export",
    "to_onnx",
]
