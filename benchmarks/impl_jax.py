"""JAX on the CPU: the same network, initialisation scale, Adam (the book's form) and schedule.

`run_jit` calls one jitted training step per batch from Python; `run_scan` compiles the whole
run into one `lax.scan` over precomputed batch indices (compile time excluded, as the first
call compiles it).
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.workloads import Workload

BETA_1, BETA_2, EPSILON = 0.9, 0.999, 1e-7


def initial_state(workload: Workload) -> tuple:
    """Convolution weights (kernel, kernel, in, out) drawn as He's, Dense ones as 0.01 * randn."""
    rng = np.random.default_rng(workload.seed)
    params = [
        (
            jnp.asarray(rng.standard_normal((k, k, c, f)) * np.sqrt(2 / (k * k * c)), jnp.float32),
            jnp.zeros(f, jnp.float32),
        )
        for c, f, k in workload.convolutions
    ]
    params += [
        (jnp.asarray(0.01 * rng.standard_normal((a, b)), jnp.float32), jnp.zeros(b, jnp.float32))
        for a, b in zip(workload.sizes, workload.sizes[1:], strict=False)
    ]
    momentum = jax.tree_util.tree_map(jnp.zeros_like, params)
    cache = jax.tree_util.tree_map(jnp.zeros_like, params)
    return params, momentum, cache, jnp.zeros((), jnp.int32)


def logits_of(params: list, x: jax.Array) -> jax.Array:
    """4-D weights: a valid convolution of channels-last images, ReLU, 2x2 max pooling; 2-D
    weights: Dense (the images flattened first), ReLU after all but the last."""
    for weights, biases in params[:-1]:
        if weights.ndim == 4:
            x = jax.lax.conv_general_dilated(x, weights, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
            x = jax.nn.relu(x + biases)
            x = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
        else:
            x = jax.nn.relu(x.reshape(len(x), -1) @ weights + biases)
    weights, biases = params[-1]
    return x.reshape(len(x), -1) @ weights + biases


def loss_of(params: list, x: jax.Array, y: jax.Array) -> jax.Array:
    log_probabilities = jax.nn.log_softmax(logits_of(params, x))
    return -jnp.mean(jnp.take_along_axis(log_probabilities, y[:, None], axis=1))


def make_step(workload: Workload):
    def step(state: tuple, x: jax.Array, y: jax.Array) -> tuple:
        params, m, v, t = state
        gradients = jax.grad(loss_of)(params, x, y)
        rate = workload.learning_rate / (1.0 + workload.decay * t)
        t1 = t + 1
        m = jax.tree_util.tree_map(lambda a, g: BETA_1 * a + (1 - BETA_1) * g, m, gradients)
        v = jax.tree_util.tree_map(lambda a, g: BETA_2 * a + (1 - BETA_2) * g * g, v, gradients)
        c1, c2 = 1 - BETA_1**t1, 1 - BETA_2**t1
        params = jax.tree_util.tree_map(
            lambda p, a, b: p - rate * (a / c1) / (jnp.sqrt(b / c2) + EPSILON), params, m, v
        )
        return params, m, v, t1

    return step


def batch_indices(workload: Workload, n_samples: int) -> np.ndarray:
    """(steps, batch) row indices of the whole run; each epoch reshuffled (NumPy, outside the timing)."""
    rng = np.random.default_rng(workload.seed)
    if workload.batch_size is None:
        return np.tile(np.arange(n_samples), (workload.epochs, 1))
    epochs = [rng.permutation(n_samples) for _ in range(workload.epochs)]
    size = workload.batch_size
    return np.concatenate([order[: n_samples - n_samples % size].reshape(-1, size) for order in epochs])


def finish(state: tuple, X: np.ndarray, y: np.ndarray, seconds: float, steps: int, checkpoint) -> dict:
    checkpoint()
    params = state[0]
    logits = logits_of(params, jnp.asarray(X))
    loss = float(loss_of(params, jnp.asarray(X), jnp.asarray(y)))
    accuracy = float((np.asarray(logits).argmax(1) == y).mean())
    return {"seconds": seconds, "loss": loss, "accuracy": accuracy, "steps": steps}


def run_jit(workload: Workload, X: np.ndarray, y: np.ndarray, checkpoint) -> dict:
    """One jitted call per step: gather the batch, forward, backward, Adam."""
    train_step = make_step(workload)
    features, labels = jnp.asarray(X), jnp.asarray(y)
    step = jax.jit(lambda state, x, y, rows: train_step(state, x[rows], y[rows]), donate_argnums=0)
    indices = jnp.asarray(batch_indices(workload, len(X)))
    batches = list(indices)  # device arrays, sliced before the timing
    jax.block_until_ready(step(initial_state(workload), features, labels, batches[0]))  # compile
    state = initial_state(workload)
    start = time.perf_counter()
    for rows in batches:
        state = step(state, features, labels, rows)
    jax.block_until_ready(state)
    return finish(state, X, y, time.perf_counter() - start, len(indices), checkpoint)


def run_scan(workload: Workload, X: np.ndarray, y: np.ndarray, checkpoint) -> dict:
    """The whole run as one compiled `lax.scan` over the batches."""
    step = make_step(workload)
    features, labels = jnp.asarray(X), jnp.asarray(y)

    @jax.jit
    def whole_run(state: tuple, indices: jax.Array) -> tuple:
        def body(carry: tuple, rows: jax.Array) -> tuple:
            return step(carry, features[rows], labels[rows]), None

        return jax.lax.scan(body, state, indices)[0]

    indices = jnp.asarray(batch_indices(workload, len(X)))
    jax.block_until_ready(whole_run(initial_state(workload), indices))  # compile
    state = initial_state(workload)
    start = time.perf_counter()
    state = jax.block_until_ready(whole_run(state, indices))
    return finish(state, X, y, time.perf_counter() - start, len(indices), checkpoint)
