"""chainrule: neural networks from scratch on NumPy, every gradient written out by hand."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from chainrule import callbacks, distributed, metrics
from chainrule.engine.activations import Exponential, LeakyReLU, Linear, ReLU, Sigmoid, Softmax, Tanh
from chainrule.engine.convolution import Conv2D
from chainrule.engine.embedding import Embedding
from chainrule.engine.layers import Dense, Dropout, Layer
from chainrule.engine.losses import (
    BinaryCrossentropy,
    CategoricalCrossentropy,
    Loss,
    MeanAbsoluteError,
    MeanSquaredError,
    PoissonDeviance,
    SigmoidBinaryCrossentropy,
    SoftmaxCategoricalCrossentropy,
)
from chainrule.engine.normalization import BatchNormalization, LayerNormalization
from chainrule.engine.optimizers import SGD, Adagrad, Adam, AdamW, Optimizer, RMSprop
from chainrule.engine.pooling import AveragePool2D, GlobalAveragePool2D, MaxPool2D
from chainrule.engine.reshaping import Flatten, Reshape
from chainrule.errors import DeviceUnavailableError, TrainingDivergedError
from chainrule.files.model_file import save_model
from chainrule.training.history import History
from chainrule.training.model import Model
from chainrule.training.saving import load_model

if TYPE_CHECKING:  # loaded on first use (see __getattr__); named here for type checkers and editors
    from chainrule import datasets, explain, onnx, sklearn
    from chainrule.check.compare import Comparison, compare
    from chainrule.check.gradcheck import gradcheck
    from chainrule.check.numeric import GradcheckResult
    from chainrule.check.optimizer import OptimizerCheck, check_optimizer

__version__ = "0.1.0"

__all__ = [
    "SGD",
    "Adagrad",
    "Adam",
    "AdamW",
    "History",
    "Model",
    "Optimizer",
    "RMSprop",
    "TrainingDivergedError",
    "DeviceUnavailableError",
    "callbacks",
    "metrics",
    "AveragePool2D",
    "BatchNormalization",
    "Conv2D",
    "Embedding",
    "Flatten",
    "GlobalAveragePool2D",
    "MaxPool2D",
    "Reshape",
    "BinaryCrossentropy",
    "CategoricalCrossentropy",
    "Dense",
    "Dropout",
    "Exponential",
    "Comparison",
    "GradcheckResult",
    "Layer",
    "LayerNormalization",
    "LeakyReLU",
    "Linear",
    "Loss",
    "MeanAbsoluteError",
    "MeanSquaredError",
    "PoissonDeviance",
    "ReLU",
    "Sigmoid",
    "Softmax",
    "SigmoidBinaryCrossentropy",
    "SoftmaxCategoricalCrossentropy",
    "Tanh",
    "datasets",
    "distributed",
    "explain",
    "onnx",
    "sklearn",
    "compare",
    "check_optimizer",
    "OptimizerCheck",
    "gradcheck",
    "load_model",
    "save_model",
]

# Loaded on first use (PEP 562): `import chainrule` stays quick, and the extras behind `onnx` and
# `sklearn` load only when they are used.
LAZY_SUBMODULES = ("datasets", "explain", "onnx", "sklearn")
LAZY_ATTRIBUTES = {
    "Comparison": "chainrule.check.compare",
    "compare": "chainrule.check.compare",
    "gradcheck": "chainrule.check.gradcheck",
    "GradcheckResult": "chainrule.check.numeric",
    "OptimizerCheck": "chainrule.check.optimizer",
    "check_optimizer": "chainrule.check.optimizer",
}


def __getattr__(name: str) -> Any:
    """A submodule or a checking function, imported the first time it is asked for."""
    if name in LAZY_SUBMODULES:
        return importlib.import_module(f"chainrule.{name}")
    if name in LAZY_ATTRIBUTES:
        return getattr(importlib.import_module(LAZY_ATTRIBUTES[name]), name)
    raise AttributeError(f"module 'chainrule' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
