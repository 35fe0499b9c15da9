"""Optimizers: the first three updates equal the textbook formulas, computed here element by element."""

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose

import chainrule as cr

GRADIENTS = [[0.5, -1.0], [0.25, 2.0], [-0.75, 0.1]]
START = [1.0, -2.0]


class Parameter(cr.Layer):
    """A layer holding one parameter vector whose gradient the test sets."""

    def __init__(self):
        super().__init__(np.float64)
        self.w = np.array([START])
        self.dw = np.zeros_like(self.w)

    def parameters(self):
        return {"w": self.w}

    def gradients(self):
        return {"w": self.dw}


def run(optimizer, steps=3):
    layer = Parameter()
    trajectory = []
    for gradient in GRADIENTS[:steps]:
        layer.dw[...] = [gradient]
        optimizer.step([layer])
        trajectory.append(layer.w[0].copy())
    return trajectory


def reference(update):
    """Apply `update(w, g, state, t, element)` per element in plain Python floats."""
    weights, states, trajectory = list(START), [{}, {}], []
    for t, gradient in enumerate(GRADIENTS):
        for i in range(2):
            weights[i] = update(weights[i], gradient[i], states[i], t)
        trajectory.append(list(weights))
    return trajectory


def decayed(learning_rate, decay, t):
    return learning_rate / (1 + decay * t)


@pytest.mark.parametrize("decay", [0.0, 0.1])
def test_sgd(decay):
    expected = reference(lambda w, g, s, t: w - decayed(0.5, decay, t) * g)
    assert_allclose(run(cr.SGD(0.5, decay=decay)), expected, rtol=1e-14)


def momentum_update(nesterov, decay=0.0):
    def update(w, g, s, t):
        lr = decayed(0.5, decay, t)
        s["v"] = 0.9 * s.get("v", 0.0) - lr * g
        return w + (0.9 * s["v"] - lr * g if nesterov else s["v"])

    return update


@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("decay", [0.0, 0.1])
def test_sgd_momentum_and_nesterov(nesterov, decay):
    optimizer = cr.SGD(0.5, decay=decay, momentum=0.9, nesterov=nesterov)
    assert_allclose(run(optimizer), reference(momentum_update(nesterov, decay)), rtol=1e-14)


@pytest.mark.parametrize("decay", [0.0, 0.1])
def test_adagrad(decay):
    def update(w, g, s, t):
        s["cache"] = s.get("cache", 0.0) + g * g
        return w - decayed(0.5, decay, t) * g / (math.sqrt(s["cache"]) + 1e-7)

    assert_allclose(run(cr.Adagrad(0.5, decay=decay)), reference(update), rtol=1e-14)


@pytest.mark.parametrize("decay", [0.0, 0.1])
def test_rmsprop(decay):
    def update(w, g, s, t):
        s["cache"] = 0.8 * s.get("cache", 0.0) + 0.2 * g * g
        return w - decayed(0.01, decay, t) * g / (math.sqrt(s["cache"]) + 1e-7)

    assert_allclose(run(cr.RMSprop(0.01, decay=decay, rho=0.8)), reference(update), rtol=1e-13)


@pytest.mark.parametrize("decay", [0.0, 0.1])
def test_adam_with_bias_correction(decay):
    def update(w, g, s, t):
        s["m"] = 0.9 * s.get("m", 0.0) + 0.1 * g
        s["v"] = 0.999 * s.get("v", 0.0) + 0.001 * g * g
        m_hat = s["m"] / (1 - 0.9 ** (t + 1))
        v_hat = s["v"] / (1 - 0.999 ** (t + 1))
        return w - decayed(0.01, decay, t) * m_hat / (math.sqrt(v_hat) + 1e-7)

    assert_allclose(run(cr.Adam(0.01, decay=decay)), reference(update), rtol=1e-13)


def test_adam_with_epsilon_hat_adds_epsilon_before_the_bias_correction():
    """Kingma and Ba's epsilon hat (TensorFlow's and scikit-learn's Adam); eps is large here so
    that the difference from the book's placement shows."""

    def update(w, g, s, t):
        s["m"] = 0.9 * s.get("m", 0.0) + 0.1 * g
        s["v"] = 0.999 * s.get("v", 0.0) + 0.001 * g * g
        step = 0.01 * math.sqrt(1 - 0.999 ** (t + 1)) / (1 - 0.9 ** (t + 1))
        return w - step * s["m"] / (math.sqrt(s["v"]) + 0.05)

    hat = run(cr.Adam(0.01, epsilon=0.05, epsilon_hat=True))
    assert_allclose(hat, reference(update), rtol=1e-13)
    assert not np.allclose(hat, run(cr.Adam(0.01, epsilon=0.05)), rtol=1e-3)
    assert cr.Adam(epsilon_hat=True).get_config()["epsilon_hat"] is True


def test_current_learning_rate_follows_the_book_decay():
    optimizer = cr.SGD(1.0, decay=0.5)
    run(optimizer)
    assert optimizer.iterations == 3
    assert optimizer.current_learning_rate == pytest.approx(1 / (1 + 0.5 * 2))


def test_state_round_trips_through_get_and_set_state():
    first, second = cr.Adam(0.01), cr.Adam(0.01)
    layer, copy = Parameter(), Parameter()
    layer.dw[...] = [GRADIENTS[0]]
    first.step([layer])
    copy.w[...] = layer.w
    second.set_state([copy], first.get_state([layer]), first.iterations)
    layer.dw[...] = copy.dw[...] = [GRADIENTS[1]]
    first.step([layer])
    second.step([copy])
    assert_allclose(copy.w, layer.w, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: cr.SGD(-1.0), "SGD: learning_rate must be a finite number >= 0"),
        (lambda: cr.SGD(momentum=1.0), "momentum must be .* below 1, got 1.0"),
        (lambda: cr.SGD(nesterov=True), "nesterov=True needs a momentum"),
        (lambda: cr.Adam(beta_1=1.5), "Adam: beta_1"),
        (lambda: cr.RMSprop(decay=float("nan")), "RMSprop: decay"),
    ],
)
def test_bad_settings(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("make", [lambda: cr.Adam(0.01), lambda: cr.SGD(0.1, momentum=0.9), cr.RMSprop, cr.Adagrad])
def test_a_large_parameter_updated_in_cache_blocks_equals_whole_array_arithmetic(make):
    from chainrule.engine.optimizers import CACHE_BLOCK

    size = 2 * CACHE_BLOCK + 12345
    rng = np.random.default_rng(0)
    start, gradients = rng.standard_normal(size, dtype=np.float32), rng.standard_normal((3, size), dtype=np.float32)

    class Vector(cr.Layer):
        def __init__(self):
            super().__init__(np.float32)
            self.w, self.dw = start.copy(), np.zeros(size, np.float32)

        def parameters(self):
            return {"w": self.w}

        def gradients(self):
            return {"w": self.dw}

    blocked, whole = Vector(), Vector()
    blocked_optimizer, whole_optimizer = make(), make()
    for gradient in gradients:
        blocked.dw[...] = whole.dw[...] = gradient
        blocked_optimizer.step([blocked])
        whole_optimizer.pre_update_params()
        whole_optimizer._update(whole.w, whole.dw, whole_optimizer._slots_for(whole, "w", whole.w))
        whole_optimizer.post_update_params()
    np.testing.assert_array_equal(blocked.w, whole.w)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_rule_gives_the_same_bits_with_python_floats_or_0d_arrays(dtype):
    """`adam_update` is the one NumPy form of Adam: the eager step passes its scalars as Python
    floats, a static step as 0-d arrays of the parameters' dtype (what a CUDA graph captures)."""
    from chainrule.backend.kernels import adam_scalars, python_form
    from chainrule.engine.optimizers import adam_update

    rng = np.random.default_rng(0)
    gradient, parameter, momentum = (rng.standard_normal(1000).astype(dtype) for _ in range(3))
    cache = np.abs(rng.standard_normal(1000)).astype(dtype)
    step_size, epsilon = python_form(adam_scalars)(0.01, 0.9, 0.999, 1e-7, False, 3)
    results = []
    for scalars in ((step_size, epsilon), (np.asarray(step_size, dtype), np.asarray(epsilon, dtype))):
        state = [parameter.copy(), momentum.copy(), cache.copy()]
        adam_update(state[0], gradient, state[1], state[2], np.empty_like(parameter), 0.9, 0.999, *scalars)
        results.append(state)
    for eager, static in zip(*results, strict=True):
        np.testing.assert_array_equal(eager, static)
    assert not np.array_equal(results[0][0], parameter)  # the update moved the parameters
