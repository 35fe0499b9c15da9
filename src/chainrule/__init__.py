"""chainrule: neural networks from scratch on NumPy, every gradient written out by hand."""

from chainrule import callbacks, datasets, explain, metrics, onnx
from chainrule.activations import LeakyReLU, Linear, ReLU, Sigmoid, Softmax, Tanh
from chainrule.gradcheck import GradcheckResult, gradcheck
from chainrule.io import load_model, save_model
from chainrule.layers import Dense, Dropout, Layer
from chainrule.losses import (
    BinaryCrossentropy,
    CategoricalCrossentropy,
    Loss,
    MeanAbsoluteError,
    MeanSquaredError,
    SoftmaxCategoricalCrossentropy,
)
from chainrule.model import History, Model, TrainingDivergedError
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
    "callbacks",
    "metrics",
    "BinaryCrossentropy",
    "CategoricalCrossentropy",
    "Dense",
    "Dropout",
    "GradcheckResult",
    "Layer",
    "LeakyReLU",
    "Linear",
    "Loss",
    "MeanAbsoluteError",
    "MeanSquaredError",
    "ReLU",
    "Sigmoid",
    "Softmax",
    "SoftmaxCategoricalCrossentropy",
    "Tanh",
    "datasets",
    "explain",
    "onnx",
    "gradcheck",
    "load_model",
    "save_model",
]
