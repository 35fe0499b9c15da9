"""Layers: the Layer contract, the fully connected Dense layer and inverted Dropout.

Every layer follows one contract, the book's. `forward(inputs, training=False)` computes and
keeps `output` (and whatever the backward pass needs). `backward(dvalues)` receives the gradient
of the loss with respect to `output` and applies the chain rule to set `dinputs`. A layer with
trainable arrays returns them from `parameters()` and their gradients from `gradients()`.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from chainrule.backend.arrays import Device, array_module, assign
from chainrule.backend.reductions import column_sums
from chainrule.engine.contract import StepBuffers, install_check
from chainrule.engine.validation import (
    finite_number,
    float_array,
    float_dtype,
    is_sparse,
    require_same_shape,
    sparse_rows,
    whole_number,
)


class Layer:
    """Base class of every layer, built-in or your own.

    Write `forward(self, inputs, training=False)` and `backward(self, dvalues)` exactly as the
    book does: they set (and may return) `self.output` and `self.dinputs`. A layer with trainable
    arrays also returns them from `parameters()` and their gradients, set by `backward`, from
    `gradients()`: two dicts keyed by the same names. The optimizer updates the arrays of
    `parameters()` in place, so the layer sees every update; `backward` may assign fresh
    gradient arrays each call.

    Called directly, `forward` and `backward` first check their arguments (a 2-D finite float
    array; the gradient shaped like `output`). `Model.fit` validates its data once and then calls
    the unchecked versions, `forward_trusted` and `backward_trusted`, which every subclass gets
    without doing anything. A layer may override those with a faster path that computes the
    same values (Dense does).

    dtype: a layer with parameters computes in its `dtype` (float32 unless given). A layer
    without parameters has `dtype=None` and computes in the float dtype of the inputs it receives
    (integers become float32), unless it is given a `dtype`.
    """

    dtype: np.dtype | None = None
    # Set by the passes, arrays of the model's array module (NumPy's, or CuPy's on a GPU).
    inputs: Any = None
    output: Any = None
    dinputs: Any = None
    # The unchecked passes a Model calls (see above), installed for every subclass.
    forward_trusted: Callable[..., Any]
    backward_trusted: Callable[..., Any]
    bindable = False  # True for layers that can keep their parameters in storage a Model gives them (`bind`)
    # The static form (optional): `forward_into(inputs, buffers)` and `backward_into(dvalues,
    # buffers)` compute `forward` and `backward` into the buffers a static training step gives
    # (`StepBuffers` says how). Without them a static step calls `forward`/`backward` and takes
    # the arrays they return, which runs on a CPU but cannot be captured in a CUDA graph.
    forward_into: Callable[[Any, StepBuffers], None] | None = None
    backward_into: Callable[[Any, StepBuffers], None] | None = None
    capturable = True  # False: the static form works on the host (Dropout draws its masks there)
    # The axes of a batch this layer takes, named for error messages: the book's 2-D batch of
    # feature rows, (n_samples, height, width, channels) for images, None for any batch of two
    # or more dimensions (elementwise layers).
    input_axes: tuple[str, ...] | None = ("n_samples", "n_features")
    # The attributes that hold the last forward and backward pass's values: the next pass
    # recomputes them, so a pickled layer leaves them out (a fitted estimator's pickle would
    # otherwise carry its last batch several times over).
    last_pass: tuple[str, ...] = ("inputs", "output", "dinputs")

    def __init__(self, dtype: Any = None) -> None:
        self.dtype = None if dtype is None else float_dtype(dtype, type(self).__name__)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        wrote_forward = install_check(cls, "forward", _check_forward, "output", Layer)
        wrote_backward = install_check(cls, "backward", _check_backward, "dinputs", Layer)
        if wrote_forward or wrote_backward:
            # Speed paths come in pairs: a layer that writes its own forward or backward runs its
            # textbook pair, whose backward may assign fresh gradient arrays (as the book's do), so
            # a parent's shortcuts (bound storage, a cached mask) no longer apply.
            for name, default in (
                ("forward_trusted", inspect.unwrap(cls.forward)),
                ("backward_trusted", inspect.unwrap(cls.backward)),
                ("backward_parameters", Layer.backward_parameters),
                ("bindable", False),
                ("forward_into", None),
                ("backward_into", None),
            ):
                if name not in cls.__dict__:
                    setattr(cls, name, default)
            if not _takes_training(cls.forward_trusted):
                cls.forward_trusted = _ignoring_training(cls.forward_trusted)

    def __getstate__(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items() if key not in self.last_pass}

    def forget_last_pass(self) -> None:
        """Let go of the arrays the last pass kept (`last_pass`), so that their memory is free
        before the next pass makes its own (inference over many batches holds one at a time)."""
        for name in self.last_pass:
            self.__dict__.pop(name, None)

    def forward(self, inputs: Any, training: bool = False) -> np.ndarray:
        """Compute and keep `output` for a batch `inputs` of shape (n_samples, n_features)."""
        raise NotImplementedError(f"{type(self).__name__} must define forward(self, inputs, training=False)")

    def backward(self, dvalues: Any) -> np.ndarray:
        """Apply the chain rule to `dvalues` (dLoss/dOutput) and set `dinputs`."""
        raise NotImplementedError(f"{type(self).__name__} must define backward(self, dvalues)")

    def backward_parameters(self, dvalues: np.ndarray) -> None:
        """Set the parameter gradients where nothing reads `dinputs` (a network's first layer).

        Trusts its argument. The default runs the whole `backward_trusted`; Dense skips the
        product that would compute `dinputs`.
        """
        self.backward_trusted(dvalues)

    @property
    def input_width(self) -> int | None:
        """The number of input columns this layer requires, None for any.

        By default the rows of a 2-D `weights` parameter, the book's (n_inputs, n_neurons)
        layout; a layer that fixes its width some other way says so here.
        """
        weights = self.parameters().get("weights")
        return weights.shape[0] if weights is not None and weights.ndim == 2 else None

    @property
    def output_width(self) -> int | None:
        """The number of output columns, None for as many as the inputs have (by default the
        columns of a 2-D `weights` parameter)."""
        weights = self.parameters().get("weights")
        return weights.shape[1] if weights is not None and weights.ndim == 2 else None

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The shape of one sample's output given one sample's input shape; raises ValueError,
        completing "inputs ...", when such inputs do not fit this layer.

        By default the last axis must have `input_width` entries (if fixed) and becomes
        `output_width` (if fixed); layers that change the shape otherwise say so here.
        """
        if self.input_width is not None and input_shape[-1:] != (self.input_width,):
            raise ValueError(f"must have {self.input_width} columns")
        return input_shape if self.output_width is None else (*input_shape[:-1], self.output_width)

    def working_values(self, input_shape: tuple[int, ...]) -> int:
        """How many values one sample of `input_shape` occupies in this layer's forward pass:
        its output (Conv2D adds its im2col rows). Inference sizes its batches by it."""
        return math.prod(self.output_shape(input_shape))

    def checked_inputs(self, values: Any, dtype: Any, name: str, owner: str) -> Any:
        """`values` as this layer computes on them (`dtype`: the float dtype wanted, None for the
        values' own), or a ValueError naming what does not fit: by default a finite float array
        with the dimensions of `input_axes` and a shape `output_shape` accepts."""
        axes = self.input_axes
        ndim, layout = (None, "") if axes is None else (len(axes), f"({', '.join(axes)})")
        if is_sparse(values) and ndim == 2:  # rows of features: kept sparse, densified a batch at a time
            checked = sparse_rows(values, dtype, name, owner)
        else:
            checked = float_array(values, dtype, name, owner, ndim=ndim, axes=layout)
        try:
            self.output_shape(checked.shape[1:])
        except ValueError as error:
            raise ValueError(f"{owner}: {name} {error}, got shape {checked.shape}") from None
        return checked

    @classmethod
    def declared_parameters(cls, config: dict[str, Any]) -> int:
        """How many parameter values `cls(**config)` would allocate, known before building it (a
        model file's layers are bounded before any is built); a ValueError for a bad config."""
        return 0

    def parameters(self) -> dict[str, np.ndarray]:
        """Trainable arrays by name; optimizers update them in place."""
        return {}

    def gradients(self) -> dict[str, np.ndarray]:
        """Gradients keyed like `parameters()`, set by the last `backward`."""
        return {}

    def non_trainable(self) -> dict[str, np.ndarray]:
        """Arrays the layer keeps that no optimizer trains but that are part of the model (the
        running statistics of BatchNormalization): saved and loaded with the parameters, and
        converted or moved with them."""
        return {}

    def regularization_penalty(self) -> float:
        """The L1/L2 penalty this layer adds to the loss."""
        return 0.0

    def adopt_rng(self, rng: np.random.Generator) -> None:
        """Draw randomness from a Model's seeded generator unless this layer has its own seed."""

    def bind(self, values: np.ndarray, gradients: np.ndarray) -> None:
        """Keep the parameters (and gradients) in these flat segments from now on, in `parameters()`
        order. Only layers with `bindable = True` are asked (see `ParameterStore`)."""
        raise NotImplementedError(f"{type(self).__name__} does not keep its parameters in given storage")

    def set_dtype(self, dtype: Any) -> None:
        """Compute in `dtype` from now on, converting the parameters (a Model's `dtype` calls this).

        Parameters are found as attributes of the same name (`self.gamma` for `"gamma"`); a layer
        that keeps them elsewhere overrides this.
        """
        dtype = float_dtype(dtype, type(self).__name__)
        self._replace_parameters(lambda array: array.astype(dtype, copy=False), f"convert to {dtype}", "set_dtype")
        self.dtype = dtype

    def to_device(self, device: Device) -> None:
        """Keep the parameters on `device` from now on (a Model's `device` calls this); found as
        `set_dtype` finds them."""
        self._replace_parameters(device.to_device, f"move to {device.name}", "to_device")

    def _replace_parameters(self, convert: Callable[[Any], Any], action: str, method: str) -> None:
        """Set each parameter (and non-trainable) attribute to `convert(array)` where that gives a new array."""
        for name, array in {**self.parameters(), **self.non_trainable()}.items():
            converted = convert(array)
            if converted is array:
                continue
            if getattr(self, name, None) is not array:
                raise TypeError(
                    f"{type(self).__name__}: cannot {action} parameter {name!r}; keep it as self.{name} or "
                    f"override {method}"
                )
            setattr(self, name, converted)

    def predictions(self, outputs: np.ndarray) -> np.ndarray:
        """Turn this layer's outputs into predictions (classes for classifiers)."""
        return outputs

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments that rebuild this layer (weights excluded); saved in model files."""
        return {} if self.dtype is None else {"dtype": self.dtype.name}

    def __repr__(self) -> str:
        arguments = ", ".join(f"{key}={value!r}" for key, value in self.get_config().items())
        return f"{type(self).__name__}({arguments})"


Layer.forward_trusted = Layer.forward
Layer.backward_trusted = Layer.backward


def _check_forward(layer: Layer, inputs: Any, *rest: Any, **settings: Any) -> tuple[tuple, dict]:
    """The inputs checked and converted; `training`, if given, passed on as it came."""
    checked = layer.checked_inputs(inputs, layer.dtype, "inputs", f"{type(layer).__name__}.forward")
    return (checked, *rest), settings


def _check_backward(layer: Layer, dvalues: Any) -> tuple[tuple, dict]:
    owner = f"{type(layer).__name__}.backward"
    output = layer.output
    if output is None:
        raise ValueError(f"{owner} called before forward: there is no output to differentiate")
    checked = float_array(dvalues, output.dtype, "dvalues", owner, ndim=output.ndim, axes="shaped like the output")
    require_same_shape(checked, output.shape, "dvalues (the gradient of the output)", owner)
    return (checked,), {}


def _takes_training(function: Callable[..., Any]) -> bool:
    try:
        return "training" in inspect.signature(function).parameters
    except (TypeError, ValueError):
        return True


def _ignoring_training(forward: Callable[..., Any]) -> Callable[..., Any]:
    """The trusted entry for a book-style `forward(self, inputs)`, which has no `training`."""

    def forward_trusted(self: Layer, inputs: np.ndarray, training: bool = False) -> Any:
        return forward(self, inputs)

    return forward_trusted


INIT_BLOCK = 1 << 16  # weights drawn per block by Dense.initialize


def book_initializer(rng: np.random.Generator, shape: tuple[int, ...], n_inputs: int, n_neurons: int) -> np.ndarray:
    """The book's 0.01 * standard normal."""
    return 0.01 * rng.standard_normal(shape)


def he_initializer(rng: np.random.Generator, shape: tuple[int, ...], n_inputs: int, n_neurons: int) -> np.ndarray:
    """He et al. (2015): normal with variance 2 / n_inputs, which keeps a ReLU network's
    activations at one scale from layer to layer."""
    return np.sqrt(2.0 / n_inputs) * rng.standard_normal(shape)


def glorot_initializer(rng: np.random.Generator, shape: tuple[int, ...], n_inputs: int, n_neurons: int) -> np.ndarray:
    """Glorot and Bengio (2010), "Xavier": uniform in +-sqrt(6 / (n_inputs + n_neurons)), variance
    2 / (n_inputs + n_neurons), for tanh and sigmoid networks (Keras' default)."""
    limit = np.sqrt(6.0 / (n_inputs + n_neurons))
    return rng.uniform(-limit, limit, shape)


INITIALIZERS: dict[str, Callable[[np.random.Generator, tuple[int, ...], int, int], np.ndarray]] = {
    "book": book_initializer,
    "he": he_initializer,
    "glorot": glorot_initializer,
    "xavier": glorot_initializer,
}


class DrawnWeights(Layer):
    """A layer whose `weights` are drawn when it is built: from its own `seed`, or, without one,
    again from a Model's seeded generator when it joins the Model (so `cr.Model(seed=...)`
    fixes every layer), unless they were assigned (`layer.weights = ...`, checked against the
    shape) in between. A subclass draws them in `draw_weights` (Dense, which keeps its weights
    in storage a Model may bind, draws them in place in its own `initialize`)."""

    seed: int | None = None
    _weights: np.ndarray
    _assigned = False

    def draw_weights(self, rng: np.random.Generator) -> np.ndarray:
        """Fresh weights in the layer's dtype."""
        raise NotImplementedError

    def initialize(self, rng: np.random.Generator) -> None:
        """Draw the weights (`draw_weights`) from `rng`."""
        self._weights = self.draw_weights(rng)

    def adopt_rng(self, rng: np.random.Generator) -> None:
        if self.seed is None and not self._assigned:
            self.initialize(rng)

    @property
    def weights(self) -> np.ndarray:
        return self._weights

    @weights.setter
    def weights(self, values: Any) -> None:
        owner = f"{type(self).__name__}.weights"
        shape = self._weights.shape
        checked = float_array(values, self.dtype, "weights", owner, ndim=len(shape), axes=str(shape))
        require_same_shape(checked, self._weights.shape, "weights", owner)
        self._weights = checked
        self._assigned = True

    def set_dtype(self, dtype: Any) -> None:
        assigned = self._assigned  # a conversion is not an assignment
        super().set_dtype(dtype)
        self._assigned = assigned

    def to_device(self, device: Device) -> None:
        assigned = self._assigned
        super().to_device(device)
        self._assigned = assigned


class Penalized(Layer):
    """A layer with the book's L1 and L2 penalties on its `weights` and `biases`: four
    coefficients (0 by default), the penalty added to the loss (`regularization_penalty`) and
    its gradient to `dweights` and `dbiases` (`add_penalty_gradients`)."""

    weight_regularizer_l1 = weight_regularizer_l2 = bias_regularizer_l1 = bias_regularizer_l2 = 0.0

    def set_penalties(self, **coefficients: float) -> None:
        """Check and keep the coefficients given (`weight_regularizer_l1=...`), each at least 0."""
        owner = type(self).__name__
        for name, value in coefficients.items():
            setattr(self, name, finite_number(value, name, owner, minimum=0))

    def penalties(self) -> dict[str, tuple[float, float]]:
        """The (L1, L2) coefficients of each parameter's penalty."""
        return {
            "weights": (self.weight_regularizer_l1, self.weight_regularizer_l2),
            "biases": (self.bias_regularizer_l1, self.bias_regularizer_l2),
        }

    def regularization_penalty(self) -> float:
        parameters = self.parameters()
        return sum(penalty(parameters[name], l1, l2) for name, (l1, l2) in self.penalties().items())

    def add_penalty_gradients(
        self, scratch: Callable[[str, np.ndarray], np.ndarray] = lambda name, gradient: np.empty_like(gradient)
    ) -> None:
        """The penalties' gradients, added to dweights and dbiases in place, each worked out in
        `scratch(name, gradient)` (a new array unless the caller keeps one)."""
        l1_l2 = (
            self.weight_regularizer_l1,
            self.weight_regularizer_l2,
            self.bias_regularizer_l1,
            self.bias_regularizer_l2,
        )
        if not any(l1_l2):
            return  # the common case, on every backward pass: no penalty, no bookkeeping
        parameters, gradients = self.parameters(), self.gradients()
        for name, (l1, l2) in self.penalties().items():
            if l1 or l2:
                add_penalty_gradient(gradients[name], parameters[name], l1, l2, scratch(name, gradients[name]))

    def get_config(self) -> dict[str, Any]:
        return {
            "weight_regularizer_l1": self.weight_regularizer_l1,
            "weight_regularizer_l2": self.weight_regularizer_l2,
            "bias_regularizer_l1": self.bias_regularizer_l1,
            "bias_regularizer_l2": self.bias_regularizer_l2,
            **super().get_config(),
        }


class Dense(Penalized, DrawnWeights):
    """A fully connected layer: `output = inputs @ weights + biases`.

    Weights are stored (n_inputs, n_neurons), so the forward pass needs no transpose, and the
    backward pass is the textbook's three lines. `forward_trusted`, `backward_trusted` and
    `backward_parameters` below are the speed path `Model.fit` takes: the same values, with
    fewer allocations (see their docstrings); a reader can skip them.
    """

    bindable = True

    def __init__(
        self,
        n_inputs: int,
        n_neurons: int,
        *,
        weight_regularizer_l1: float = 0.0,
        weight_regularizer_l2: float = 0.0,
        bias_regularizer_l1: float = 0.0,
        bias_regularizer_l2: float = 0.0,
        dtype: Any = np.float32,
        seed: int | None = None,
        initializer: str = "book",
    ) -> None:
        super().__init__(dtype)
        if initializer not in INITIALIZERS:
            raise ValueError(f"Dense: unknown initializer {initializer!r}; choose from {sorted(INITIALIZERS)}")
        self.initializer = initializer
        self.n_inputs = whole_number(n_inputs, "n_inputs", "Dense")
        self.n_neurons = whole_number(n_neurons, "n_neurons", "Dense")
        self.set_penalties(
            weight_regularizer_l1=weight_regularizer_l1,
            weight_regularizer_l2=weight_regularizer_l2,
            bias_regularizer_l1=bias_regularizer_l1,
            bias_regularizer_l2=bias_regularizer_l2,
        )
        self.seed = None if seed is None else whole_number(seed, "seed", "Dense", minimum=0)
        shape = (self.n_inputs + 1, self.n_neurons)
        self._use_storage(np.empty(shape, self.dtype), np.zeros(shape, self.dtype))
        self.initialize(np.random.default_rng(seed))

    # -- the textbook ---------------------------------------------------------------------------

    def forward(self, inputs: np.ndarray, training: bool = False) -> np.ndarray:
        self.inputs = inputs
        self.output = inputs @ self.weights + self.biases
        return self.output

    def backward(self, dvalues: np.ndarray) -> np.ndarray:
        self.dweights = self.inputs.T @ dvalues
        self.dbiases = np.sum(dvalues, axis=0, keepdims=True)
        self.add_penalty_gradients()
        self.dinputs = dvalues @ self.weights.T
        return self.dinputs

    def parameters(self) -> dict[str, np.ndarray]:
        return {"weights": self.weights, "biases": self.biases}

    def gradients(self) -> dict[str, np.ndarray]:
        return {"weights": self.dweights, "biases": self.dbiases}

    # -- the static form (a static training step's buffers; see Layer) -------------------------

    def forward_into(self, inputs: np.ndarray, buffers: StepBuffers) -> None:
        """`forward`: the product, then the biases added in place."""
        self.inputs = inputs
        buffers.matmul(inputs, self._weights, buffers.output)
        np.add(buffers.output, self._biases, out=buffers.output)

    def backward_into(self, dvalues: np.ndarray, buffers: StepBuffers) -> None:
        """`backward` into the gradient storage (the penalties' gradients are added by the step,
        over every parameter at once: `add_penalty_gradient`) and `dinputs`."""
        self.dweights, self.dbiases = self._dweights_storage, self._dbiases_storage
        buffers.matmul(self.inputs.T, dvalues, self.dweights)
        buffers.column_sums(dvalues, self.dbiases)
        if not buffers.first:
            buffers.matmul(dvalues, self._weights.T, buffers.dinputs)

    # -- weights ------------------------------------------------------------------------------

    def initialize(self, rng: np.random.Generator) -> None:
        """Draw weights with the `initializer` (the book's 0.01 * standard normal by default) and
        set biases to zero (in place: a Model may hold this storage as part of its parameter
        buffer). Drawn a block of rows at a time, the same numbers as one draw, so a large layer
        needs no full-size temporary."""
        draw = INITIALIZERS[self.initializer]
        rows_per_block = max(1, INIT_BLOCK // self.n_neurons)
        for start in range(0, self.n_inputs, rows_per_block):
            rows = min(rows_per_block, self.n_inputs - start)
            assign(
                self._weights[start : start + rows], draw(rng, (rows, self.n_neurons), self.n_inputs, self.n_neurons)
            )
        self._biases[...] = 0

    @property
    def weights(self) -> np.ndarray:
        """Weights, shape (n_inputs, n_neurons)."""
        return self._weights

    @weights.setter
    def weights(self, values: Any) -> None:
        checked = float_array(values, self.dtype, "weights", "Dense.weights", ndim=max(np.ndim(values), 1))
        require_same_shape(checked, (self.n_inputs, self.n_neurons), "weights (n_inputs, n_neurons)", "Dense.weights")
        assign(self._weights, checked)  # in place: a Model may hold this array as a view of its parameter buffer
        self._assigned = True

    @property
    def biases(self) -> np.ndarray:
        """Biases, shape (1, n_neurons)."""
        return self._biases

    @biases.setter
    def biases(self, values: Any) -> None:
        checked = float_array(values, self.dtype, "biases", "Dense.biases", ndim=max(np.ndim(values), 1))
        require_same_shape(checked, (1, self.n_neurons), "biases (1, n_neurons)", "Dense.biases")
        assign(self._biases, checked)
        self._assigned = True

    @property
    def input_width(self) -> int:
        return self.n_inputs

    @property
    def output_width(self) -> int:
        return self.n_neurons

    def set_dtype(self, dtype: Any) -> None:
        self.dtype = float_dtype(dtype, "Dense")
        self._use_storage(self._stacked.astype(self.dtype), self._dstacked.astype(self.dtype))

    def to_device(self, device: Device) -> None:
        self._use_storage(device.to_device(self._stacked), device.to_device(self._dstacked))

    @classmethod
    def declared_parameters(cls, config: dict[str, Any]) -> int:
        n_inputs, n_neurons = (whole_number(config.get(key), key, "Dense") for key in ("n_inputs", "n_neurons"))
        return (n_inputs + 1) * n_neurons

    def get_config(self) -> dict[str, Any]:
        return {
            "n_inputs": self.n_inputs,
            "n_neurons": self.n_neurons,
            **({} if self.initializer == "book" else {"initializer": self.initializer}),  # absent: older files load
            **super().get_config(),
        }

    # -- storage and the speed path -----------------------------------------------------------

    def _use_storage(self, stacked: np.ndarray, dstacked: np.ndarray) -> None:
        """Keep weights and biases as one (n_inputs + 1, n_neurons) array, biases in the last row,
        and their gradients likewise. Stacked this way, `[inputs, 1] @ stacked` is
        `inputs @ weights + biases` in one product (see `_folds_bias`), and one flat segment of a
        Model's buffer holds the whole layer."""
        self._stacked, self._dstacked = stacked, dstacked
        self._weights, self._biases = stacked[:-1], stacked[-1:]
        self._dweights_storage, self._dbiases_storage = dstacked[:-1], dstacked[-1:]
        self.dweights, self.dbiases = self._dweights_storage, self._dbiases_storage
        self._with_ones: np.ndarray | None = None

    def bind(self, values: np.ndarray, gradients: np.ndarray) -> None:
        """Keep weights and biases (and their gradients) in the given flat segments of a Model's
        buffers, in `parameters()` order: weights row by row, then biases."""
        shape = self._stacked.shape
        self._use_storage(values.reshape(shape), gradients.reshape(shape))

    @property
    def _folds_bias(self) -> bool:
        """Whether to add the biases inside the product, with inputs extended by a column of ones.

        Adding a (1, n_neurons) row to every output row is a slow broadcast. With few inputs per
        neuron, copying the inputs next to a ones column costs far less (the book's 2-64 spiral
        layer: 17 us instead of 22), with the same values up to rounding.
        """
        return 4 * (self.n_inputs + 1) <= self.n_neurons

    def forward_trusted(self, inputs: np.ndarray, training: bool = False) -> np.ndarray:
        """`forward`, with the biases added in place or inside the product (`_folds_bias`)."""
        self.inputs = inputs
        if self._folds_bias:
            with_ones = self._with_ones
            if with_ones is None or with_ones.shape[0] != len(inputs):
                shape = (len(inputs), self.n_inputs + 1)
                with_ones = self._with_ones = array_module(inputs).ones(shape, self.dtype)
            with_ones[:, :-1] = inputs
            self.output = with_ones @ self._stacked
        else:
            self.output = inputs @ self._weights
            self.output += self._biases
        return self.output

    def backward_trusted(self, dvalues: np.ndarray) -> np.ndarray:
        """`backward`, with the parameter gradients written into this layer's gradient storage."""
        self.backward_parameters(dvalues)
        self.dinputs = dvalues @ self._weights.T
        return self.dinputs

    def backward_parameters(self, dvalues: np.ndarray) -> None:
        """dweights and dbiases (with the penalties' gradients) written in place into the gradient
        storage, which a Model's optimizer reads as one flat buffer; `dinputs` is skipped."""
        self.dweights, self.dbiases = self._dweights_storage, self._dbiases_storage
        np.matmul(self.inputs.T, dvalues, out=self.dweights)
        column_sums(dvalues, out=self.dbiases)  # sum over samples, as a product with ones (faster)
        self.add_penalty_gradients()

    def __getstate__(self) -> dict[str, Any]:
        # Pickle stores each array on its own, so views would come back as copies: keep only the
        # stacked parameters and rebuild the views from them. The gradients are the last pass's:
        # their storage comes back as zeros.
        state = super().__getstate__()
        for view in ("_weights", "_biases", "_dweights_storage", "_dbiases_storage", "_with_ones", "_dstacked"):
            del state[view]
        if state["dweights"] is self._dweights_storage:
            del state["dweights"], state["dbiases"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        gradients: dict[str, Any] = {key: state.pop(key) for key in ("dweights", "dbiases") if key in state}
        self.__dict__.update(state)
        self._use_storage(self._stacked, np.zeros_like(self._stacked))
        self.__dict__.update(gradients)


BOOK_PARAMETERS = ("weights", "biases")


def trainable(layer: Any) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(parameters, gradients) of a chainrule Layer, or of a layer written as the book writes
    it: `weights`/`biases` with `dweights`/`dbiases` set by its backward."""
    if isinstance(layer, Layer):
        return layer.parameters(), layer.gradients()
    names = [name for name in BOOK_PARAMETERS if isinstance(getattr(layer, name, None), np.ndarray)]
    missing = [f"d{name}" for name in names if getattr(layer, f"d{name}", None) is None]
    if missing:
        raise ValueError(f"{type(layer).__name__} has no {', '.join(missing)}: run its backward before an update")
    return {name: getattr(layer, name) for name in names}, {name: getattr(layer, f"d{name}") for name in names}


def penalty(values: np.ndarray, l1: float, l2: float) -> float:
    """l1 * sum|v| + l2 * sum v^2."""
    total = 0.0
    if l1:
        total += l1 * float(np.abs(values).sum())
    if l2:
        total += l2 * float((values * values).sum())
    return total


def add_penalty_gradient(gradient: np.ndarray, values: np.ndarray, l1: float, l2: float, scratch: np.ndarray) -> None:
    """Add d(penalty)/d(values) = l1 * sign(v) + 2 * l2 * v to `gradient` in place, working in
    `scratch` (shaped like `values`): the one form of the rule, for the eager and static steps."""
    if l1:
        np.sign(values, out=scratch)
        np.multiply(scratch, l1, out=scratch)
        np.add(gradient, scratch, out=gradient)
    if l2:
        np.multiply(values, 2 * l2, out=scratch)
        np.add(gradient, scratch, out=gradient)


class Dropout(Layer):
    """Inverted dropout: in training, zero a `rate` fraction of values and scale the rest.

    Scaling the kept values by 1 / (1 - rate) keeps each activation's expected value, so the
    layer is the identity at inference and nothing needs rescaling after training.
    """

    input_axes = None  # elementwise: any batch shape

    def __init__(self, rate: float, *, dtype: Any = None, seed: int | None = None) -> None:
        super().__init__(dtype)
        self.rate = finite_number(rate, "rate (the fraction dropped)", "Dropout", minimum=0, below=1)
        self.seed = None if seed is None else whole_number(seed, "seed", "Dropout", minimum=0)
        self.rng = np.random.default_rng(seed)
        self.mask: np.ndarray | None = None

    def adopt_rng(self, rng: np.random.Generator) -> None:
        if self.seed is None:
            self.rng = rng

    def forward(self, inputs: np.ndarray, training: bool = False) -> np.ndarray:
        self.inputs = inputs
        if not training or self.rate == 0.0:
            self.mask = None
            self.output = inputs
            return self.output
        keep = 1.0 - self.rate
        mask = (self.rng.random(inputs.shape, dtype=inputs.dtype) < keep) * inputs.dtype.type(1.0 / keep)
        self.mask = array_module(inputs).asarray(mask)  # drawn on the CPU: one seed, one mask anywhere
        self.output = inputs * self.mask
        return self.output

    def backward(self, dvalues: np.ndarray) -> np.ndarray:
        self.dinputs = dvalues if self.mask is None else dvalues * self.mask
        return self.dinputs

    capturable = False  # the masks are drawn on the host: one seed, one mask anywhere

    def forward_into(self, inputs: np.ndarray, buffers: StepBuffers) -> None:
        """`forward` with the mask drawn into a buffer kept for the batch size (the same draws)."""
        self.inputs = inputs
        if not buffers.training or self.rate == 0.0:
            self.mask = None
            np.copyto(buffers.output, inputs)
            return
        mask = self._static_masks.get(inputs.shape)
        if mask is None:
            mask = self._static_masks[inputs.shape] = np.empty(inputs.shape, inputs.dtype)
        keep = 1.0 - self.rate
        self.rng.random(out=mask, dtype=mask.dtype)
        np.less(mask, keep, out=mask)
        np.multiply(mask, mask.dtype.type(1.0 / keep), out=mask)
        self.mask = mask
        assign(buffers.output, mask)  # to the device, if the step runs on one
        np.multiply(buffers.output, inputs, out=buffers.output)

    def backward_into(self, dvalues: np.ndarray, buffers: StepBuffers) -> None:
        if self.mask is None:
            np.copyto(buffers.dinputs, dvalues)
            return
        assign(buffers.dinputs, self.mask)
        np.multiply(buffers.dinputs, dvalues, out=buffers.dinputs)

    @functools.cached_property
    def _static_masks(self) -> dict[tuple[int, ...], np.ndarray]:
        """The host buffer the static form draws each batch size's mask into."""
        return {}

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_static_masks", None)  # working buffers
        return state

    def get_config(self) -> dict[str, Any]:
        seed = {} if self.seed is None else {"seed": self.seed}
        return {"rate": self.rate, **seed, **super().get_config()}
