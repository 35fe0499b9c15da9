"""Loss functions: per-sample values forward, dLoss/dPredictions backward.

`forward(y_pred, y_true)` returns one loss per sample, `calculate` their mean, and
`backward(dvalues, y_true)` the gradient of that mean with respect to the predictions
(`dvalues` is the output of the previous layer, as in the book). `regularization_loss(layers)`
adds the layers' L1/L2 penalties.

As with layers, the public methods validate; `forward_trusted` and `backward_trusted` trust.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from chainrule.backend import kernels
from chainrule.backend.arrays import cached_arange
from chainrule.engine.activations import Sigmoid, Softmax
from chainrule.engine.contract import install_check
from chainrule.engine.layers import Layer
from chainrule.engine.validation import categorical_targets, finite_number, float_array, float_dtype, require_same_shape

CLIP = 1e-7


def regularization_loss(layers: Iterable[Layer]) -> float:
    """Sum of the L1/L2 penalties of `layers` (layers without regularisers add zero)."""
    return float(sum(layer.regularization_penalty() for layer in layers))


class Loss:
    """Base class of every loss, built-in or your own.

    Write `forward(self, y_pred, y_true)`, returning one loss per sample, and
    `backward(self, dvalues, y_true)`, setting `self.dinputs` to the gradient of the mean loss,
    as the book does. Called directly they first validate and convert their arguments
    (`prepare_targets` says what targets look like); a Model calls the unchecked
    `forward_trusted`/`backward_trusted` on data it has validated once. A loss computes in the
    float dtype of the predictions it receives, unless given a `dtype`.
    """

    output: Any = None
    dinputs: Any = None
    forward_trusted: Callable[..., Any]  # the unchecked passes a Model calls (see above)
    backward_trusted: Callable[..., Any]
    # The static form (optional), for a static training step (`chainrule.training.static_step`):
    # `losses_into(y_pred, y_true, out, scratch)` writes the elementwise losses whose mean over
    # the outputs is `forward`'s per-sample loss, `backward_into(y_pred, y_true, out, scratch)`
    # writes `backward`; both with `out=` only, `scratch` two working arrays shaped like y_pred.
    losses_into: Callable[[Any, Any, Any, Any], None] | None = None
    backward_into: Callable[[Any, Any, Any, Any], None] | None = None

    def __init__(self, dtype: Any = None) -> None:
        self.dtype = None if dtype is None else float_dtype(dtype, type(self).__name__)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        wrote_forward = install_check(cls, "forward", _check_loss_arguments("forward"), "output", Loss)
        wrote_backward = install_check(cls, "backward", _check_loss_arguments("backward"), "dinputs", Loss)
        if wrote_forward or wrote_backward:  # a parent's static form no longer computes what this class does
            for name in ("losses_into", "backward_into"):
                if name not in cls.__dict__:
                    setattr(cls, name, None)

    def forward(self, y_pred: Any, y_true: Any) -> np.ndarray:
        """Per-sample losses, shape (n_samples,)."""
        raise NotImplementedError(f"{type(self).__name__} must define forward(self, y_pred, y_true)")

    def backward(self, dvalues: Any, y_true: Any) -> np.ndarray:
        """Gradient of the mean loss with respect to the predictions `dvalues`."""
        raise NotImplementedError(f"{type(self).__name__} must define backward(self, dvalues, y_true)")

    def calculate(self, y_pred: Any, y_true: Any) -> float:
        """Mean loss over the batch (without regularisation)."""
        return float(np.mean(self.forward(y_pred, y_true)))

    regularization_loss = staticmethod(regularization_loss)

    def prepare_targets(self, y_true: Any, shape: tuple, owner: str, dtype: Any = None) -> np.ndarray:
        """Validate targets for predictions of `shape` and return them in canonical form, as
        floats of the loss's dtype, or else of `dtype` (the predictions')."""
        if np.ndim(y_true) == 1 and len(shape) == 2 and shape[1] == 1 and len(y_true) == shape[0]:
            raise ValueError(
                f"{owner}: y_true has shape ({shape[0]},) and the predictions {shape}: make the targets a "
                "column, y_true.reshape(-1, 1), as the book does for binary cross-entropy"
            )
        targets = float_array(y_true, self.dtype or dtype, "y_true", owner)
        require_same_shape(targets, shape, "y_true", owner)
        return targets

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments that rebuild this loss."""
        return {} if self.dtype is None else {"dtype": self.dtype.name}


Loss.forward_trusted = Loss.forward
Loss.backward_trusted = Loss.backward


def _check_loss_arguments(method: str) -> Callable[[Loss, Any, Any], tuple[tuple, dict]]:
    def check(loss: Loss, y_pred: Any, y_true: Any) -> tuple[tuple, dict]:
        owner = f"{type(loss).__name__}.{method}"
        predictions = float_array(y_pred, loss.dtype, "y_pred" if method == "forward" else "dvalues", owner)
        return (predictions, loss.prepare_targets(y_true, predictions.shape, owner, predictions.dtype)), {}

    return check


class ProbabilityLoss(Loss):
    """A loss on probabilities, clipped to [clip, 1 - clip] (the book's 1e-7) so that log(0)
    never occurs."""

    def __init__(self, dtype: Any = None, clip: float = CLIP) -> None:
        super().__init__(dtype)
        self.clip = finite_number(clip, "clip", type(self).__name__, minimum=0, below=0.5)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), **({"clip": self.clip} if self.clip != CLIP else {})}


class CategoricalCrossentropy(ProbabilityLoss):
    """-log of the probability given to the true class; labels are indices or one-hot rows."""

    def prepare_targets(self, y_true: Any, shape: tuple, owner: str, dtype: Any = None) -> np.ndarray:
        return categorical_targets(y_true, shape[0], shape[1], self.dtype or dtype, owner)

    def forward(self, y_pred: np.ndarray, y_true: np.ndarray) -> np.ndarray:
        if y_true.ndim == 1:
            confidences = y_pred[cached_arange(len(y_pred), like=y_pred), y_true]  # a new array: safe to work in place
            np.maximum(confidences, self.clip, out=confidences)
            np.minimum(confidences, 1 - self.clip, out=confidences)
        else:
            confidences = (np.clip(y_pred, self.clip, 1 - self.clip) * y_true).sum(axis=1)
        np.log(confidences, out=confidences)
        return np.negative(confidences, out=confidences)

    def forward_trusted(self, y_pred: np.ndarray, y_true: np.ndarray) -> np.ndarray:
        """`forward`, in one compiled pass for class indices when Numba is there."""
        if kernels.applies(y_pred, y_true) and y_true.ndim == 1:
            scalar = y_pred.dtype.type
            return kernels.crossentropy_of_indices(y_pred, y_true, scalar(self.clip), scalar(1 - self.clip))
        return self.forward(y_pred, y_true)

    def backward(self, dvalues: np.ndarray, y_true: np.ndarray) -> np.ndarray:
        n_samples = len(dvalues)
        clipped = np.clip(dvalues, self.clip, 1 - self.clip)
        if y_true.ndim == 1:
            rows = cached_arange(n_samples, like=dvalues)
            self.dinputs = np.zeros_like(dvalues)
            self.dinputs[rows, y_true] = -1 / (clipped[rows, y_true] * n_samples)
        else:
            self.dinputs = -y_true / clipped / n_samples
        return self.dinputs


class BinaryCrossentropy(ProbabilityLoss):
    """Mean over outputs of -(y log p + (1 - y) log(1 - p)), for independent yes/no outputs."""

    def forward(self, y_pred: np.ndarray, y_true: np.ndarray) -> np.ndarray:
        clipped = np.clip(y_pred, self.clip, 1 - self.clip)
        losses = -(y_true * np.log(clipped) + (1 - y_true) * np.log(1 - clipped))
        return losses.mean(axis=1)

    def backward(self, dvalues: np.ndarray, y_true: np.ndarray) -> np.ndarray:
        n_samples, n_outputs = dvalues.shape
        clipped = np.clip(dvalues, self.clip, 1 - self.clip)
        self.dinputs = -(y_true / clipped - (1 - y_true) / (1 - clipped)) / (n_outputs * n_samples)
        return self.dinputs

    def losses_into(self, y_pred: np.ndarray, y_true: np.ndarray, out: np.ndarray, scratch: Any) -> None:
        clipped, other = scratch
        np.clip(y_pred, self.clip, 1 - self.clip, out=clipped)
        np.log(clipped, out=out)
        np.multiply(y_true, out, out=out)  # y log(p)
        np.subtract(1, clipped, out=clipped)
        np.log(clipped, out=clipped)
        np.subtract(1, y_true, out=other)
        np.multiply(other, clipped, out=other)  # (1 - y) log(1 - p)
        np.add(out, other, out=out)
        np.negative(out, out=out)

    def backward_into(self, y_pred: np.ndarray, y_true: np.ndarray, out: np.ndarray, scratch: Any) -> None:
        clipped, other = scratch
        np.clip(y_pred, self.clip, 1 - self.clip, out=clipped)
        np.divide(y_true, clipped, out=out)  # y / p
        np.subtract(1, y_true, out=other)
        np.subtract(1, clipped, out=clipped)
        np.divide(other, clipped, out=other)  # (1 - y) / (1 - p)
        np.subtract(out, other, out=out)
        np.negative(out, out=out)
        np.divide(out, out.size, out=out)


class MeanSquaredError(Loss):
    """Mean over outputs of (y - p)^2, for regression."""

    def forward(self, y_pred: np.ndarray, y_true: np.ndarray) -> np.ndarray:
        return ((y_true - y_pred) ** 2).mean(axis=1)

    def backward(self, dvalues: np.ndarray, y_true: np.ndarray) -> np.ndarray:
        n_samples, n_outputs = dvalues.shape
        self.dinputs = (2 / (n_outputs * n_samples)) * (dvalues - y_true)
        return self.dinputs

    def losses_into(self, y_pred: np.ndarray, y_true: np.ndarray, out: np.ndarray, scratch: Any) -> None:
        np.subtract(y_true, y_pred, out=out)
        np.square(out, out=out)

    def backward_into(self, y_pred: np.ndarray, y_true: np.ndarray, out: np.ndarray, scratch: Any) -> None:
        np.subtract(y_pred, y_true, out=out)
        np.multiply(2 / out.size, out, out=out)


class PoissonDeviance(Loss):
    """Half the Poisson deviance, mean over outputs: y log(y / p) - y + p, for counts or rates
    y >= 0 predicted by a positive output (an Exponential layer; together their gradient is p - y)."""

    def prepare_targets(self, y_true: Any, shape: tuple, owner: str, dtype: Any = None) -> np.ndarray:
        targets = super().prepare_targets(y_true, shape, owner, dtype)
        if (targets < 0).any():
            raise ValueError(f"{owner}: the Poisson deviance needs targets >= 0 (counts or rates)")
        return targets

    def forward(self, y_pred: np.ndarray, y_true: np.ndarray) -> np.ndarray:
        predicted = np.maximum(y_pred, np.finfo(y_pred.dtype).tiny)  # log(0) never occurs
        ratio = np.where(y_true > 0, y_true / predicted, 1)  # y log(y / p) is 0 where y is 0
        return (y_true * np.log(ratio) - y_true + y_pred).mean(axis=1)

    def backward(self, dvalues: np.ndarray, y_true: np.ndarray) -> np.ndarray:
        n_samples, n_outputs = dvalues.shape
        predicted = np.maximum(dvalues, np.finfo(dvalues.dtype).tiny)
        self.dinputs = (1 - y_true / predicted) / (n_outputs * n_samples)
        return self.dinputs


class MeanAbsoluteError(Loss):
    """Mean over outputs of |y - p|, for regression robust to outliers."""

    def forward(self, y_pred: np.ndarray, y_true: np.ndarray) -> np.ndarray:
        return np.abs(y_true - y_pred).mean(axis=1)

    def backward(self, dvalues: np.ndarray, y_true: np.ndarray) -> np.ndarray:
        n_samples, n_outputs = dvalues.shape
        self.dinputs = np.sign(dvalues - y_true) / (n_outputs * n_samples)
        return self.dinputs

    def losses_into(self, y_pred: np.ndarray, y_true: np.ndarray, out: np.ndarray, scratch: Any) -> None:
        np.subtract(y_true, y_pred, out=out)
        np.absolute(out, out=out)

    def backward_into(self, y_pred: np.ndarray, y_true: np.ndarray, out: np.ndarray, scratch: Any) -> None:
        np.subtract(y_pred, y_true, out=out)
        np.sign(out, out=out)
        np.divide(out, out.size, out=out)


class FusedLoss:
    """An output activation followed by its loss, differentiated as one step.

    `forward` runs the activation (its output kept as `output`) and returns the mean loss;
    `backward` takes the activation's output as `dvalues` and returns the gradient with
    respect to the activation's inputs. Subclasses name the pair and write `backward_trusted`.
    """

    activation_class: type[Layer]
    loss_class: type[Loss]

    def __init__(self, dtype: Any = None) -> None:
        self.activation = self.activation_class(dtype)
        self.loss = self.loss_class(dtype)
        self.dtype = self.activation.dtype  # None: the dtype of the inputs
        self.output: Any = None
        self.dinputs: Any = None

    regularization_loss = staticmethod(regularization_loss)

    def forward(self, inputs: Any, y_true: Any) -> float:
        """The activation of `inputs` (kept as `output`), then the mean loss against `y_true`."""
        self.output = self.activation.forward(inputs)
        return self.loss.calculate(self.output, y_true)

    def backward(self, dvalues: Any, y_true: Any) -> np.ndarray:
        """The fused gradient with respect to the activation's inputs; `dvalues` are its outputs."""
        owner = f"{type(self).__name__}.backward"
        probabilities = float_array(dvalues, self.dtype, "dvalues (the probabilities)", owner)
        targets = self.prepare_targets(y_true, probabilities.shape, owner, probabilities.dtype)
        return self.backward_trusted(probabilities, targets)

    def prepare_targets(self, y_true: Any, shape: tuple, owner: str, dtype: Any = None) -> np.ndarray:
        """The loss's targets, validated."""
        return self.loss.prepare_targets(y_true, shape, owner, dtype)

    def backward_trusted(self, probabilities: np.ndarray, y_true: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class SoftmaxCategoricalCrossentropy(FusedLoss):
    """Softmax followed by categorical cross-entropy, differentiated as one step.

    Chaining the two backward passes simplifies to `(probabilities - onehot) / n_samples`: no
    division by a probability, no Jacobian, and far fewer operations.
    """

    activation_class = Softmax
    loss_class = CategoricalCrossentropy

    def prepare_targets(self, y_true: Any, shape: tuple, owner: str, dtype: Any = None) -> np.ndarray:
        """Class indices, or one-hot/probability rows that must each sum to 1."""
        targets = self.loss.prepare_targets(y_true, shape, owner, dtype)
        if targets.ndim == 2 and not np.allclose(targets.sum(axis=1), 1, atol=1e-4):
            raise ValueError(f"{owner}: each one-hot row of y_true must sum to 1 for the fused gradient")
        return targets

    def backward_trusted(self, probabilities: np.ndarray, y_true: np.ndarray) -> np.ndarray:
        """(probabilities - onehot) / n_samples, on arguments already validated."""
        scale = 1 / len(probabilities)
        if kernels.applies(probabilities, y_true) and y_true.ndim == 1:
            self.dinputs = kernels.softmax_crossentropy_gradient(probabilities, y_true, probabilities.dtype.type(scale))
        elif y_true.ndim == 1:
            self.dinputs = np.multiply(probabilities, scale)
            self.dinputs[cached_arange(len(probabilities), like=probabilities), y_true] -= scale
        else:
            self.dinputs = probabilities - y_true
            self.dinputs *= scale
        return self.dinputs


class SigmoidBinaryCrossentropy(FusedLoss):
    """Sigmoid followed by binary cross-entropy, differentiated as one step.

    Chaining the two backward passes simplifies to `(s - y) / (n_outputs * n_samples)`: exact
    even where the sigmoid saturates and the separate gradients would divide by a clipped
    probability.
    """

    activation_class = Sigmoid
    loss_class = BinaryCrossentropy

    def backward_trusted(self, probabilities: np.ndarray, y_true: np.ndarray) -> np.ndarray:
        """(probabilities - y) / (n_outputs * n_samples), on arguments already validated."""
        self.dinputs = probabilities - y_true
        self.dinputs *= 1 / probabilities.size
        return self.dinputs

    def backward_into(self, probabilities: np.ndarray, y_true: np.ndarray, out: np.ndarray, scratch: Any) -> None:
        """`backward_trusted` into `out`, for a static training step."""
        np.subtract(probabilities, y_true, out=out)
        np.multiply(out, 1 / probabilities.size, out=out)


def fused_loss(output_layer: Layer, loss: Loss, *, fuse_sigmoid: bool = False) -> FusedLoss | None:
    """The one-step gradient for an output activation and a loss that pair up, or None
    (a Sigmoid output pairs only when `fuse_sigmoid`)."""
    if isinstance(output_layer, Softmax) and isinstance(loss, CategoricalCrossentropy):
        return SoftmaxCategoricalCrossentropy()
    if fuse_sigmoid and isinstance(output_layer, Sigmoid) and isinstance(loss, BinaryCrossentropy):
        return SigmoidBinaryCrossentropy()
    return None


LOSSES: dict[str, type[Loss]] = {
    "categorical_crossentropy": CategoricalCrossentropy,
    "binary_crossentropy": BinaryCrossentropy,
    "mse": MeanSquaredError,
    "mae": MeanAbsoluteError,
    "poisson": PoissonDeviance,
}
