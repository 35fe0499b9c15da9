"""The chain rule of one element, with real numbers, through a convolution and a batch normalisation.

Like `chainrule.learn.explain`, each function runs the engine's own layer in float64 and then
writes one output element and one gradient element out as the sums they are, term by term, next
to the engine's value and a central difference of the loss `sum(output * dvalues)`: three
numbers that must agree.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from chainrule.engine.convolution import Conv2D
from chainrule.engine.normalization import BatchNormalization
from chainrule.engine.validation import float_array, whole_number
from chainrule.learn.explain import F64, Explanation, counted, fmt, scalar

EDGE_KERNEL = np.array([[1.0, 0.0, -1.0], [1.0, 0.0, -1.0], [1.0, 0.0, -1.0]])  # a vertical-edge detector
STEP = 1e-6  # of the central differences: exact for these linear and quadratic dependencies up to rounding


def central_difference(loss: Callable[[np.ndarray], float], values: np.ndarray, index: tuple[int, ...]) -> float:
    """(loss(v + h) - loss(v - h)) / 2h, moving the one element `values[index]` (restored after)."""
    kept = values[index]
    values[index] = kept + STEP
    above = loss(values)
    values[index] = kept - STEP
    below = loss(values)
    values[index] = kept
    return (above - below) / (2 * STEP)


def _matrix_of(values: Any, name: str, owner: str) -> np.ndarray:
    return float_array(values, F64, name, owner, ndim=2)


def _index(value: Any, name: str, shape: tuple[int, ...], owner: str) -> tuple[int, ...]:
    """A position inside `shape`, or a clear error."""
    position = tuple(whole_number(item, name, owner, minimum=0) for item in np.atleast_1d(value))
    if len(position) != len(shape) or any(i >= size for i, size in zip(position, shape, strict=True)):
        raise ValueError(f"{owner}: {name} {position} lies outside the shape {shape}")
    return position


def convolution(
    image: Any = None,
    kernel: Any = None,
    bias: float = 0.0,
    dvalues: Any = None,
    *,
    stride: int = 1,
    padding: str | int = 0,
    position: tuple[int, int] = (0, 0),
    tap: tuple[int, int] = (0, 0),
    pixel: tuple[int, int] | None = None,
    seed: int = 0,
) -> Explanation:
    """A Conv2D of one single-channel image with one filter: the output element at `position`
    as the sum over its window, the dweights element of kernel `tap` as a sum over the output
    positions, and the dinputs element of `pixel` (the centre by default) as the sum over every
    output whose window read it.

    By default a 5x5 image of small whole numbers drawn from `seed`, the vertical-edge kernel
    (columns 1, 0, -1), and dvalues of whole numbers from -2 to 2.
    """
    owner = "explain.convolution"
    rng = np.random.default_rng(whole_number(seed, "seed", owner, minimum=0))
    pixels = rng.integers(0, 10, (5, 5)).astype(F64) if image is None else _matrix_of(image, "image", owner)
    weights = EDGE_KERNEL if kernel is None else _matrix_of(kernel, "kernel", owner)
    layer = Conv2D(1, 1, weights.shape, stride=stride, padding=padding, dtype=F64)
    layer.weights = weights.reshape(*weights.shape, 1, 1)
    layer.biases = np.array([[scalar(bias, "bias", owner)]])
    inputs = pixels.reshape(1, *pixels.shape, 1)
    output = layer.forward(inputs)[0, :, :, 0]
    if dvalues is None:
        upstream = rng.integers(-2, 3, output.shape).astype(F64)
    else:
        upstream = _matrix_of(dvalues, "dvalues", owner)
        if upstream.shape != output.shape:
            raise ValueError(f"{owner}: dvalues must have the output's shape {output.shape}, got {upstream.shape}")
    layer.backward(upstream.reshape(1, *output.shape, 1))
    dweights, dinputs = layer.dweights[:, :, 0, 0], layer.dinputs[0, :, :, 0]
    row, column = _index(position, "position", output.shape, owner)
    r, c = _index(
        pixel if pixel is not None else (pixels.shape[0] // 2, pixels.shape[1] // 2), "pixel", pixels.shape, owner
    )
    (pad_top, _), (pad_left, _) = layer.windows.pads(*pixels.shape)
    padded = layer.windows.pad(inputs)[0, :, :, 0]
    s, (kh, kw) = layer.windows.stride, weights.shape

    def loss_of_inputs(values: np.ndarray) -> float:
        return float(np.sum(layer.forward(values.reshape(inputs.shape)) * upstream[None, :, :, None]))

    def loss_of_weights(values: np.ndarray) -> float:
        layer.weights = values.reshape(layer.weights.shape)
        return float(np.sum(layer.forward(inputs) * upstream[None, :, :, None]))

    ex = Explanation(
        f"Conv2D: a {pixels.shape[0]}x{pixels.shape[1]} image, a {kh}x{kw} kernel, stride {s[0]}, padding {padding}"
    )
    section = "Shapes (channels-last, as chainrule stores them)"
    ex.add(section, "inputs.shape", "(samples, height, width, channels)", str(inputs.shape))
    ex.add(section, "weights.shape", "(kernel_h, kernel_w, channels, filters)", str(layer.weights.shape))
    ex.add(section, "output.shape", "(samples, out_height, out_width, filters)", str(layer.output.shape))
    section = "Forward pass"
    ex.add(section, "image", "the one channel", pixels)
    ex.add(section, "kernel", "the one filter's weights", weights)
    ex.add(section, "output", "each window times the kernel, summed, + bias", output.copy())

    top, left = row * s[0], column * s[1]
    window = padded[top : top + kh, left : left + kw]
    section = (
        f"output[{row}, {column}]: the window at padded rows {top}..{top + kh - 1}, columns {left}..{left + kw - 1}"
    )
    ex.add(section, "window", "padded image under the kernel", window.copy())
    terms = window * weights
    ex.add(section, "partials", "window * kernel, element by element", terms)
    written = " + ".join(fmt(term) for term in terms.ravel() if term) or "0"
    ex.add(section, "sum", f"{written} + bias {fmt(layer.biases[0, 0])}", float(terms.sum() + layer.biases[0, 0]))
    ex.add(section, "engine", f"output[{row}, {column}]", float(output[row, column]))

    section = "Backward pass"
    ex.add(section, "dvalues", "dLoss/doutput, arriving from the next layer", upstream)
    ex.add(section, "dweights", "sum over positions of dvalues * the window there", dweights.copy())
    ex.add(section, "dbias", "sum(dvalues)", float(layer.dbiases[0, 0]))
    ex.add(section, "dinputs", "each dvalue * kernel, added back onto its window", dinputs.copy())

    p, q = _index(tap, "tap", weights.shape, owner)
    section = (
        f"dweights[{p}, {q}]: kernel tap ({p}, {q}) met pixel (i*{s[0]} + {p}, j*{s[1]} + {q}) at each position (i, j)"
    )
    seen = padded[p : p + s[0] * output.shape[0] : s[0], q : q + s[1] * output.shape[1] : s[1]]
    ex.add(section, "pixels_met", f"padded[i*{s[0]} + {p}, j*{s[1]} + {q}]", seen.copy())
    ex.add(section, "sum", "sum(dvalues * pixels_met)", float(np.sum(upstream * seen)))
    ex.add(section, "engine", f"dweights[{p}, {q}]", float(dweights[p, q]))
    ex.add(
        section,
        "numerical",
        "central difference of sum(output * dvalues)",
        central_difference(loss_of_weights, layer.weights.copy(), (p, q, 0, 0)),
    )
    layer.weights = weights.reshape(layer.weights.shape)

    section = f"dinputs[{r}, {c}]: every output whose window read pixel ({r}, {c})"
    readers = [
        (i, j, r + pad_top - i * s[0], c + pad_left - j * s[1])
        for i, j in np.ndindex(*output.shape)
        if 0 <= r + pad_top - i * s[0] < kh and 0 <= c + pad_left - j * s[1] < kw
    ]
    partial_terms = np.array([upstream[i, j] * weights[a, b] for i, j, a, b in readers])
    ex.add(
        section,
        "readers",
        "(output i, j) through kernel tap (a, b)",
        "; ".join(f"({i}, {j}) tap ({a}, {b})" for i, j, a, b in readers) or "none",
    )
    ex.add(section, "partials", "dvalues[i, j] * kernel[a, b]", partial_terms)
    ex.add(section, "sum", " + ".join(fmt(term) for term in partial_terms) or "0", float(partial_terms.sum()))
    ex.add(section, "engine", f"dinputs[{r}, {c}]", float(dinputs[r, c]))
    ex.add(
        section,
        "numerical",
        "central difference of sum(output * dvalues)",
        central_difference(loss_of_inputs, inputs.copy(), (0, r, c, 0)),
    )
    ex.values.update(padded=padded)
    return ex


def batch_normalization(
    inputs: Any = None,
    dvalues: Any = None,
    *,
    gamma: float = 1.0,
    beta: float = 0.0,
    epsilon: float = 1e-5,
    sample: int = 0,
    feature: int = 0,
    seed: int = 0,
) -> Explanation:
    """BatchNormalization in training on a small batch: each feature's mean and variance, x_hat,
    the output, and one dinputs element as its three paths (directly, through the mean, through
    the variance), which the compact formula adds up.

    By default 4 samples of 2 features, small whole numbers drawn from `seed`, with dvalues of
    whole numbers from -2 to 2; `gamma` and `beta` are the same for every feature.
    """
    owner = "explain.batch_normalization"
    rng = np.random.default_rng(whole_number(seed, "seed", owner, minimum=0))
    batch = rng.integers(0, 10, (4, 2)).astype(F64) if inputs is None else _matrix_of(inputs, "inputs", owner)
    m, n_features = batch.shape
    if m < 2:
        raise ValueError(f"{owner}: a batch needs at least 2 samples to have a variance, got {m}")
    layer = BatchNormalization(n_features, epsilon=epsilon, dtype=F64)
    layer.gamma = np.full((1, n_features), scalar(gamma, "gamma", owner))
    layer.beta = np.full((1, n_features), scalar(beta, "beta", owner))
    upstream = (
        rng.integers(-2, 3, batch.shape).astype(F64) if dvalues is None else _matrix_of(dvalues, "dvalues", owner)
    )
    if upstream.shape != batch.shape:
        raise ValueError(f"{owner}: dvalues must have the inputs' shape {batch.shape}, got {upstream.shape}")
    i, k = _index((sample, feature), "(sample, feature)", batch.shape, owner)
    output = layer.forward(batch, training=True)
    layer.backward(upstream)

    def loss_of_inputs(values: np.ndarray) -> float:
        return float(np.sum(layer.forward(values, training=True) * upstream))

    ex = Explanation(f"BatchNormalization in training: {counted(m, 'sample')}, {counted(n_features, 'feature')}")
    mean, variance = batch.mean(axis=0), batch.var(axis=0)
    inverse_std = 1 / np.sqrt(variance + layer.epsilon)
    x_hat, dx_hat = layer.x_hat.copy(), upstream * layer.gamma
    section = "Forward pass: each feature (column) over the batch"
    ex.add(section, "inputs", f"x, {m} rows", batch)
    ex.add(section, "mean", f"sum(x, axis=0) / {m}", mean)
    ex.add(section, "variance", f"sum((x - mean)^2, axis=0) / {m}", variance)
    ex.add(section, "inverse_std", f"1 / sqrt(variance + {fmt(layer.epsilon)})", inverse_std)
    ex.add(section, "x_hat", "(x - mean) * inverse_std", x_hat)
    ex.add(section, "output", f"{fmt(gamma)} * x_hat + {fmt(beta)}", output.copy())
    section = "Backward pass (compact form)"
    ex.add(section, "dvalues", "dLoss/doutput", upstream)
    ex.add(section, "dgamma", "sum(dvalues * x_hat, axis=0)", layer.dgamma.copy())
    ex.add(section, "dbeta", "sum(dvalues, axis=0)", layer.dbeta.copy())
    ex.add(section, "dx_hat", "dvalues * gamma", dx_hat)
    ex.add(
        section,
        "dinputs",
        f"({m} dx_hat - sum(dx_hat) - x_hat sum(dx_hat x_hat)) * inverse_std / {m}",
        layer.dinputs.copy(),
    )

    section = f"dinputs[{i}, {k}]: x moves x_hat directly, and through the mean and the variance"
    sum_dx_hat, sum_dx_hat_x_hat = dx_hat[:, k].sum(), (dx_hat[:, k] * x_hat[:, k]).sum()
    direct = dx_hat[i, k] * inverse_std[k]
    through_mean = -sum_dx_hat * inverse_std[k] / m
    through_variance = -x_hat[i, k] * sum_dx_hat_x_hat * inverse_std[k] / m
    ex.add(section, "direct", f"dx_hat[{i}, {k}] * inverse_std = {fmt(dx_hat[i, k])} * {fmt(inverse_std[k])}", direct)
    ex.add(
        section,
        "through_mean",
        f"-sum(dx_hat[:, {k}]) * inverse_std / {m} = -1 * {fmt(sum_dx_hat)} * ...",
        through_mean,
    )
    ex.add(
        section,
        "through_variance",
        f"-x_hat[{i}, {k}] * sum(dx_hat x_hat) * inverse_std / {m}"
        f" = -1 * {fmt(x_hat[i, k])} * {fmt(sum_dx_hat_x_hat)} * ...",
        through_variance,
    )
    ex.add(section, "sum", "direct + through_mean + through_variance", float(direct + through_mean + through_variance))
    ex.add(section, "engine", f"dinputs[{i}, {k}]", float(layer.dinputs[i, k]))
    ex.add(
        section,
        "numerical",
        "central difference of sum(output * dvalues)",
        central_difference(loss_of_inputs, batch.copy(), (i, k)),
    )
    return ex
