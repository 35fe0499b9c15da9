"""chainrule: neural networks from scratch on NumPy, every gradient written out by hand."""

from __future__ import annotations

import importlib
from types import ModuleType

from chainrule import callbacks, datasets, explain, metrics
from chainrule.activations import Exponential, LeakyReLU, Linear, ReLU, Sigmoid, Softmax, Tanh
from chainrule.backend import DeviceUnavailableError
from chainrule.compare import Comparison, compare
from chainrule.gradcheck import GradcheckResult, gradcheck
from chainrule.history import History
from chainrule.io import load_model, save_model
from chainrule.layers import Dense, Dropout, Layer
from chainrule.loop import TrainingDivergedError
from chainrule.losses import (
    BinaryCrossentropy,
    CategoricalCrossentropy,
    Loss,
    MeanAbsoluteError,
    MeanSquaredError,
    PoissonDeviance,
    SigmoidBinaryCrossentropy,
    SoftmaxCategoricalCrossentropy,
)
from chainrule.model import Model
from chainrule.optimizers import SGD, Adagrad, Adam, Optimizer, RMSprop

__version__ = "0.1.0"

__all__ = [
    "SGD",
    "Adagrad",
    "Adam",
    "History",
    "Model",
    "Optimizer",
    "RMSprop",
    "TrainingDivergedError",
    "DeviceUnavailableError",
    "callbacks",
    "metrics",
    "BinaryCrossentropy",
    "CategoricalCrossentropy",
    "Dense",
    "Dropout",
    "Exponential",
    "Comparison",
    "GradcheckResult",
    "Layer",
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
    "explain",
    "onnx",
    "sklearn",
    "compare",
    "gradcheck",
    "load_model",
    "save_model",
]

LAZY_SUBMODULES = ("onnx", "sklearn")  # they import optional extras, so they load on first use


def __getattr__(name: str) -> ModuleType:
    """`cr.onnx` and `cr.sklearn` import their module (and its extra) on first use (PEP 562)."""
    if name in LAZY_SUBMODULES:
        return importlib.import_module(f"chainrule.{name}")
    raise AttributeError(f"module 'chainrule' has no attribute {name!r}")
