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


def momentum_update(nesterov, decay=0.0, momentum=0.9):
    def update(w, g, s, t):
        lr = decayed(0.5, decay, t)
        s["v"] = momentum * s.get("v", 0.0) - lr * g
        return w + (momentum * s["v"] - lr * g if nesterov else s["v"])

    return update


@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("decay", [0.0, 0.1])
@pytest.mark.parametrize("momentum", [0.9, 1.0])  # 1: the velocity never decays (scikit-learn allows it)
def test_sgd_momentum_and_nesterov(nesterov, decay, momentum):
    optimizer = cr.SGD(0.5, decay=decay, momentum=momentum, nesterov=nesterov)
    assert_allclose(run(optimizer), reference(momentum_update(nesterov, decay, momentum)), rtol=1e-14)


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
        (lambda: cr.SGD(momentum=1.5), "momentum must be .* <= 1, got 1.5"),
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
        slots = whole_optimizer._slots_for(whole, "w", whole.w)
        whole_optimizer.rule(whole.w, whole.dw, slots, *whole_optimizer.step_scalars())
        whole_optimizer.post_update_params()
    np.testing.assert_array_equal(blocked.w, whole.w)


EVERY_OPTIMIZER = {
    "sgd": lambda: cr.SGD(0.1, decay=0.01),
    "sgd-momentum": lambda: cr.SGD(0.1, decay=0.01, momentum=0.9),
    "sgd-nesterov": lambda: cr.SGD(0.1, decay=0.01, momentum=0.9, nesterov=True),
    "adagrad": lambda: cr.Adagrad(0.1, decay=0.01),
    "rmsprop": lambda: cr.RMSprop(0.01, decay=0.01),
    "adam": lambda: cr.Adam(0.01, decay=0.01),
    "adam-epsilon-hat": lambda: cr.Adam(0.01, decay=0.01, epsilon_hat=True),
    "adamw": lambda: cr.AdamW(0.01, decay=0.01, weight_decay=0.1),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", EVERY_OPTIMIZER)
def test_each_rule_gives_the_same_bits_with_the_eager_python_floats_or_a_static_steps_0d_arrays(name, dtype):
    """`Optimizer.rule` is the one form of each update: the eager step passes `step_scalars()` as
    Python floats, a static step the 0-d arrays `static_scalars` advances in place (what a CUDA
    graph captures). Same arithmetic, so the same bits, step after step with decay."""
    rng = np.random.default_rng(0)
    parameter = rng.standard_normal(1000).astype(dtype)
    gradients = rng.standard_normal((3, 1000)).astype(dtype)
    eager, static = EVERY_OPTIMIZER[name](), EVERY_OPTIMIZER[name]()
    scalars = static.static_scalars(np, np.dtype(dtype))
    scalars.epoch_begins()
    arrays = []
    for optimizer in (eager, static):
        slots = {slot: np.zeros_like(parameter) for slot in optimizer.slots}
        slots.update({scratch: np.empty_like(parameter) for scratch in optimizer.scratches})
        arrays.append((parameter.copy(), slots))
    for gradient in gradients:
        eager.pre_update_params()
        eager.rule(arrays[0][0], gradient, arrays[0][1], *eager.step_scalars())
        eager.post_update_params()
        scalars.advance()
        static.rule(arrays[1][0], gradient, arrays[1][1], *scalars.arguments())
    np.testing.assert_array_equal(arrays[1][0], arrays[0][0])
    for slot in eager.slots:
        np.testing.assert_array_equal(arrays[1][1][slot], arrays[0][1][slot])
    assert float(scalars.iterations) == eager.iterations == 3
    assert not np.array_equal(arrays[0][0], parameter)  # the updates moved the parameters


def test_the_rules_allocate_nothing():
    """Every operation of a rule writes into the arrays it is given (what a captured step needs)."""
    from strict_device import STRICT, capturing

    for make in EVERY_OPTIMIZER.values():
        optimizer = make()
        parameter = STRICT.to_device(np.ones(10))
        slots = {name: STRICT.to_device(np.zeros(10)) for name in (*optimizer.slots, *optimizer.scratches)}
        scalars = optimizer.static_scalars(STRICT.module, np.dtype(np.float64))
        scalars.epoch_begins()
        gradient = STRICT.to_device(np.full(10, 0.5))
        with capturing():
            scalars.advance()
            optimizer.rule(parameter, gradient, slots, *scalars.arguments())
        assert (parameter.view(np.ndarray) < 1).all()


@pytest.mark.parametrize(
    "learning_rate, weight_decay, betas, epsilon",
    [
        (1e-3, 0.01, (0.9, 0.999), 1e-8),
        (0.05, 0.1, (0.8, 0.99), 1e-6),
        (0.2, 0.0, (0.9, 0.999), 1e-7),
        (0.01, 1.0, (0.5, 0.9), 1e-3),
    ],
)
@pytest.mark.parametrize("size", [(4, 3), (3000,)], ids=["small", "compiled-or-blocked"])
def test_adamw_equals_pytorchs_adamw(learning_rate, weight_decay, betas, epsilon, size):
    assert_steps_equal_pytorchs(
        cr.AdamW(learning_rate, epsilon=epsilon, beta_1=betas[0], beta_2=betas[1], weight_decay=weight_decay),
        lambda torch, p: torch.optim.AdamW(p, lr=learning_rate, betas=betas, eps=epsilon, weight_decay=weight_decay),
        size,
        seed=int(weight_decay * 100) + len(size),
    )


def assert_steps_equal_pytorchs(optimizer, theirs, size, seed, steps=8):
    """`optimizer` and PyTorch's (`theirs(torch, parameters)`) take the same steps from the same
    start with the same gradients, in float64."""
    torch = pytest.importorskip("torch")  # the independent reference
    rng = np.random.default_rng(seed)
    start, gradients = rng.standard_normal(size), rng.standard_normal((steps, *size))
    layer = Parameter()
    layer.w = start.copy()
    reference = torch.nn.Parameter(torch.from_numpy(start.copy()))
    their_optimizer = theirs(torch, [reference])
    for gradient in gradients:
        layer.dw = gradient.copy()
        optimizer.step([layer])
        reference.grad = torch.from_numpy(gradient.copy())
        their_optimizer.step()
    np.testing.assert_allclose(layer.w, reference.detach().numpy(), rtol=1e-10, atol=1e-13)


# The book's optimizers against PyTorch's (`torch.optim`, float64). PyTorch's SGD keeps its
# momentum as a sum of gradients (w -= lr (mu b + g)) where the book keeps a velocity (v = mu v - lr
# g); with a constant learning rate the two are the same steps. Adagrad's `lr_decay` is the book's
# decay; the other optimizers have none in PyTorch, so they are compared without it.
TORCH_PAIRS = {
    "sgd": (lambda: cr.SGD(0.1), lambda torch, p: torch.optim.SGD(p, lr=0.1)),
    "momentum": (lambda: cr.SGD(0.1, momentum=0.9), lambda torch, p: torch.optim.SGD(p, lr=0.1, momentum=0.9)),
    "nesterov": (
        lambda: cr.SGD(0.1, momentum=0.8, nesterov=True),
        lambda torch, p: torch.optim.SGD(p, lr=0.1, momentum=0.8, nesterov=True),
    ),
    "adagrad": (
        lambda: cr.Adagrad(0.5, decay=0.1, epsilon=1e-7),
        lambda torch, p: torch.optim.Adagrad(p, lr=0.5, lr_decay=0.1, eps=1e-7),
    ),
    "rmsprop": (
        lambda: cr.RMSprop(0.01, epsilon=1e-7, rho=0.95),
        lambda torch, p: torch.optim.RMSprop(p, lr=0.01, alpha=0.95, eps=1e-7),
    ),
    "adam": (
        lambda: cr.Adam(0.02, epsilon=1e-7, beta_1=0.8, beta_2=0.99),
        lambda torch, p: torch.optim.Adam(p, lr=0.02, betas=(0.8, 0.99), eps=1e-7),
    ),
}


@pytest.mark.parametrize("name", TORCH_PAIRS)
@pytest.mark.parametrize("size", [(4, 3), (3000,)], ids=["small", "compiled-or-blocked"])
def test_each_optimizer_equals_pytorchs(name, size):
    ours, theirs = TORCH_PAIRS[name]
    assert_steps_equal_pytorchs(ours(), theirs, size, seed=len(name) + len(size))
