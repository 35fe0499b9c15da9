"""Optional compiled kernels (extra `fast`, Numba): a speed path's NumPy calls fused into one loop.

Each kernel computes exactly what the NumPy speed path beside it computes, in one pass over
memory and one call instead of several: Adam's whole update, the
softmax of a batch, ReLU's output and mask, the cross-entropy of class indices, the predicted
classes and the fused softmax + cross-entropy gradient. Without Numba (or with the environment
variable CHAINRULE_COMPILED=0) `ENABLED` is False and the NumPy code runs: it stays the
reference, and tests/backend/test_kernels.py checks that both give the same numbers.

Numba is imported when a kernel first runs, not with chainrule; each kernel compiles on its first
call for each dtype (a second or two), cached afterwards in a private folder of the user's
(`kernel_cache`), or only in memory where there is none.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib.util
import math
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from chainrule.backend import kernel_cache
from chainrule.backend.arrays import on_host

ENABLED = importlib.util.find_spec("numba") is not None and os.environ.get("CHAINRULE_COMPILED", "1") != "0"
ROW_KERNEL_COLUMNS = 64  # row kernels pay for rows up to this wide; NumPy's vector loops win beyond
TEXTBOOK = contextvars.ContextVar("TEXTBOOK", default=False)  # set by `numpy_only`


@contextlib.contextmanager
def numpy_only() -> Iterator[None]:
    """Run the NumPy code instead of the kernels inside: the checks and the explanations show
    the textbook arithmetic, and a one-off calculation is not worth loading a compiler for."""
    token = TEXTBOOK.set(True)
    try:
        yield
    finally:
        TEXTBOOK.reset(token)


@functools.cache
def numba_compiler() -> Any:
    """Numba, imported the first time a kernel runs (importing it takes longer than all of
    chainrule), with the kernels' cache routed to a private folder (`kernel_cache`)."""
    import numba

    return numba


@functools.cache
def caching() -> bool:
    """Whether kernels are cached on disk (False: compiled in memory, nothing written)."""
    return kernel_cache.install(numba_compiler())


def applies(*arrays: np.ndarray) -> bool:
    """Whether the kernels can take these arrays: Numba is on and they are C-ordered NumPy arrays
    (not a GPU's, for one). A plain loop: this runs several times per training step."""
    if not ENABLED or TEXTBOOK.get():
        return False
    for array in arrays:  # noqa: SIM110 - all() over a generator costs 0.5 us more per call
        if not (on_host(array) and array.flags.c_contiguous):
            return False
    return True


class Kernel:
    """A function that Numba compiles the first time it is called, from Python or from another
    kernel, so that `import chainrule` never imports Numba.

    Numba reads it as it reads its own dispatchers: `py_func` and `targetoptions` let a kernel
    that calls it inline it, and `_numba_type_` types a call to it as a call to the compiled
    function."""

    def __init__(self, function: Any, options: dict[str, Any]) -> None:
        functools.update_wrapper(self, function)
        self.py_func = function
        self.targetoptions = options
        self.compiled: Any = None

    def dispatcher(self) -> Any:
        """Numba's dispatcher for the function, made on first use."""
        if self.compiled is None:
            options = (
                {**self.targetoptions, "cache": caching()} if "cache" in self.targetoptions else self.targetoptions
            )
            self.compiled = numba_compiler().njit(**options)(self.py_func)
        return self.compiled

    @property
    def _numba_type_(self) -> Any:
        return numba_compiler().types.Dispatcher(self.dispatcher())

    def __call__(self, *args: Any) -> Any:
        compiled = self.compiled
        if compiled is None:
            compiled = self.dispatcher()
        return compiled(*args)


def compile_kernel(fastmath: bool | set[str] = False) -> Any:
    """Numba's compiler with NumPy's error model: a division by zero gives inf or NaN as in
    NumPy, instead of a check in every loop that raises, which keeps the loops from vectorising
    (Adam's update of 670k parameters: 2.6 ms -> 0.3). `fastmath`: Numba's flags, off unless a
    kernel names the ones it may use. Without Numba the function runs as written."""
    if not ENABLED:
        return lambda function: function
    options = {"cache": True, "fastmath": fastmath, "nogil": True, "error_model": "numpy"}
    return lambda function: Kernel(function, options)


def inline_kernel() -> Any:
    """A function that compiled kernels inline where they call it; Python code calls its
    `python_form`, the function as written."""
    return (lambda function: function) if not ENABLED else (lambda function: Kernel(function, {"inline": "always"}))


def python_form(function: Any) -> Any:
    """The Python function a kernel was compiled from (itself without Numba): one definition of a
    formula for Python callers and compiled ones alike."""
    return getattr(function, "py_func", function)


@inline_kernel()
def adam_scalars(learning_rate, beta_1, beta_2, epsilon, epsilon_hat, t):
    """Adam's bias corrections at step t (from 1) folded into two scalars, (step size, epsilon):

    lr * m_hat / (sqrt(v_hat) + eps) == (lr * c2 / c1) * m / (sqrt(v) + eps * c2)

    with c1 = 1 - beta_1^t and c2 = sqrt(1 - beta_2^t); with `epsilon_hat` eps is added to
    sqrt(v) before the correction instead, as given. Floats in, floats out."""
    correction = math.sqrt(1.0 - beta_2**t)
    step_size = learning_rate * correction / (1.0 - beta_1**t)
    return step_size, (epsilon if epsilon_hat else epsilon * correction)


@inline_kernel()
def adam_constants(values, beta_1, beta_2, step_size, epsilon):
    """What `adam_pass` takes, in the dtype of `values` (float32 stays float32): the betas, one
    minus each, the step size, epsilon, and the smallest normal float."""
    scalar = values.dtype.type
    return (
        scalar(beta_1), scalar(beta_2), scalar(1 - beta_1), scalar(1 - beta_2), scalar(step_size), scalar(epsilon),
        scalar(np.finfo(values.dtype).tiny),
    )  # fmt: skip


@inline_kernel()
def _adam_element(index, parameter, gradient, momentum, cache, constants):
    """One parameter's Adam update. A parameter whose gradient stays zero (a dead ReLU unit's)
    has moments decaying by beta_1 and beta_2 per step into subnormal floats, where each operation
    costs up to a hundred times more (a spiral-minibatch step: 50 us -> 550 us after 800 steps):
    they are stored as zero once below `smallest`, the smallest normal float. The update itself
    uses them unchanged; their share of later updates, step * m / epsilon, would be below 1e-30."""
    beta_1, beta_2, one_minus_beta_1, one_minus_beta_2, step, epsilon, smallest = constants
    g = gradient[index]
    m = beta_1 * momentum[index] + one_minus_beta_1 * g
    v = beta_2 * cache[index] + one_minus_beta_2 * (g * g)
    momentum[index] = m if abs(m) >= smallest else 0
    cache[index] = v if v >= smallest else 0
    parameter[index] -= step * (m / (np.sqrt(v) + epsilon))


ADAM_CONSTANTS = python_form(adam_constants)  # what Python's callers run, resolved once


@compile_kernel()
def adam_pass(parameter, gradient, momentum, cache, constants):
    for index in range(parameter.size):
        _adam_element(index, parameter, gradient, momentum, cache, constants)


def adam(
    parameter: np.ndarray,
    gradient: np.ndarray,
    momentum: np.ndarray,
    cache: np.ndarray,
    beta_1: float,
    beta_2: float,
    step: float,
    epsilon: float,
) -> None:
    """Adam's update of flat arrays in one pass: m, v, then p -= step * m / (sqrt(v) + epsilon),
    NumPy's numbers bit for bit but that moments below the smallest normal float are stored as 0.

    It runs on one thread: Numba's threads and BLAS's, spinning between the matrix products,
    would fight over the cores (measured: a whole training step twice as slow on 2 cores).
    """
    constants = ADAM_CONSTANTS(parameter, beta_1, beta_2, step, epsilon)
    adam_pass(parameter, gradient, momentum, cache, constants)


@compile_kernel()
def softmax(inputs):
    """exp(x - row max) / row sum, row by row."""
    output = np.empty_like(inputs)
    for row in range(inputs.shape[0]):
        largest = inputs[row, 0]
        for column in range(1, inputs.shape[1]):
            largest = max(largest, inputs[row, column])
        total = inputs.dtype.type(0)
        for column in range(inputs.shape[1]):
            value = np.exp(inputs[row, column] - largest)
            output[row, column] = value
            total += value
        for column in range(inputs.shape[1]):
            output[row, column] /= total
    return output


@compile_kernel()
def relu(inputs):
    """(output, mask): x where x > 0 else 0, and the 0/1 mask of positive inputs, in one pass."""
    output = np.empty_like(inputs)
    mask = np.empty_like(inputs)
    flat_inputs, flat_output, flat_mask = inputs.reshape(-1), output.reshape(-1), mask.reshape(-1)
    for index in range(flat_inputs.size):
        positive = flat_inputs[index] > 0
        flat_mask[index] = positive
        flat_output[index] = flat_inputs[index] if positive else 0
    return output, mask


@compile_kernel()
def crossentropy_of_indices(probabilities, labels, clip, upper):
    """-log(p[i, label_i]), the probability clipped to [clip, upper = 1 - clip]."""
    losses = np.empty(probabilities.shape[0], dtype=probabilities.dtype)
    for row in range(probabilities.shape[0]):
        confidence = min(max(probabilities[row, labels[row]], clip), upper)
        losses[row] = -np.log(confidence)
    return losses


@compile_kernel()
def row_argmax(values):
    """The column of each row's largest value (the first, on ties), as np.argmax(axis=1)."""
    result = np.empty(values.shape[0], dtype=np.int64)
    for row in range(values.shape[0]):
        best = 0
        for column in range(1, values.shape[1]):
            if values[row, column] > values[row, best]:
                best = column
        result[row] = best
    return result


@compile_kernel()
def softmax_crossentropy_gradient(probabilities, labels, scale):
    """(probabilities - onehot(labels)) * scale."""
    gradient = probabilities * scale
    for row in range(probabilities.shape[0]):
        gradient[row, labels[row]] -= scale
    return gradient
