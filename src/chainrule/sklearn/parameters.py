"""The estimators' constructor parameters, declared once: each name with the check its value must pass.

scikit-learn's MLP parameters keep its names, defaults and ranges; chainrule's extras follow them.
Every check raises a ValueError that names the estimator, the parameter and what it accepts.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from numbers import Integral, Real
from typing import Any

import numpy as np

from chainrule.backend.arrays import Device
from chainrule.training.callbacks import Callback

HIDDEN_ACTIVATIONS = ("identity", "logistic", "tanh", "relu", "leaky_relu")
SOLVERS = ("lbfgs", "sgd", "adam", "rmsprop", "adagrad")
STOCHASTIC_SOLVERS = ("sgd", "adam", "rmsprop", "adagrad")
LEARNING_RATES = ("constant", "invscaling", "adaptive")
REGRESSION_LOSSES = ("squared_error", "poisson", "absolute_error")

Check = Callable[[Any], bool]


def _options(*choices: Any) -> tuple[Check, str]:
    return (lambda value: isinstance(value, str) and value in choices), f"one of {list(choices)}"


def _number(low: float, high: float = np.inf, *, low_open: bool = False, high_open: bool = True) -> tuple[Check, str]:
    def check(value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, Real) or np.isnan(float(value)):
            return False
        number = float(value)
        above = number > low if low_open else number >= low
        below = number < high if high_open else number <= high
        return above and below

    left, right = "(" if low_open else "[", ")" if high_open else "]"
    return check, f"a number in {left}{low:g}, {high:g}{right}"


def _integer(low: int) -> tuple[Check, str]:
    return (lambda value: isinstance(value, Integral) and not isinstance(value, bool) and int(value) >= low), (
        f"an integer >= {low}"
    )


def _either(*alternatives: tuple[Check, str]) -> tuple[Check, str]:
    return (lambda value: any(check(value) for check, _ in alternatives)), " or ".join(
        wanted for _, wanted in alternatives
    )


def _hidden_layer_sizes(value: Any) -> bool:
    sizes = [value] if np.isscalar(value) else value
    return isinstance(sizes, Iterable) and all(_integer(1)[0](size) for size in sizes)


def _class_weight(value: Any) -> bool:
    return value is None or value == "balanced" or isinstance(value, dict)


def _callbacks(value: Any) -> bool:
    return isinstance(value, Iterable) and not isinstance(value, str) and all(isinstance(c, Callback) for c in value)


_BOOLEAN = ((lambda value: isinstance(value, (bool, np.bool_))), "True or False")
_UNIT = _number(0, 1)

PARAMETERS: dict[str, tuple[Check, str]] = {
    "hidden_layer_sizes": (_hidden_layer_sizes, "a positive integer or a sequence of them"),
    "activation": _options(*HIDDEN_ACTIVATIONS),
    "solver": _options(*SOLVERS),
    "alpha": _number(0),
    "batch_size": _either(_options("auto"), _integer(1)),
    "learning_rate": _options(*LEARNING_RATES),
    "learning_rate_init": _number(0, low_open=True),
    "power_t": _number(0),
    "max_iter": _integer(1),
    "shuffle": _BOOLEAN,
    "random_state": (
        (lambda value: value is None or isinstance(value, (Integral, np.random.RandomState))),
        "None, an integer or a numpy.random.RandomState",
    ),
    "tol": _number(0),
    "verbose": _either(_BOOLEAN, _integer(0)),
    "warm_start": _BOOLEAN,
    "momentum": _number(0, 1, high_open=False),
    "nesterovs_momentum": _BOOLEAN,
    "early_stopping": _BOOLEAN,
    "validation_fraction": _UNIT,
    "beta_1": _UNIT,
    "beta_2": _UNIT,
    "epsilon": _number(0, low_open=True),
    "n_iter_no_change": _either(_integer(1), ((lambda value: value == np.inf), "numpy.inf")),
    "max_fun": _integer(1),
    # chainrule's own
    "loss": _options(*REGRESSION_LOSSES),
    "l1": _number(0),
    "dropout": _UNIT,
    "decay": _number(0),
    "class_weight": (_class_weight, "None, 'balanced' or a dict {class: weight}"),
    "callbacks": (_callbacks, "a list of chainrule callbacks"),
    "dtype": (
        (lambda value: value is None or value in ("float32", "float64", np.float32, np.float64)),
        "None, 'float32' or 'float64'",
    ),
    "device": (
        (lambda value: isinstance(value, Device) or (isinstance(value, str) and value in ("cpu", "cuda"))),
        "'cpu', 'cuda' or a Device",
    ),
}


@functools.cache
def constructor_parameters(estimator_class: type) -> tuple[str, ...]:
    """The names `estimator_class.__init__` takes, read once per class (what `get_params` reads
    from its signature on every call, half of the checks' cost in a small `partial_fit`)."""
    return tuple(inspect.signature(estimator_class).parameters)


def check_parameters(estimator: Any) -> None:
    """Raise a ValueError naming the first parameter of `estimator` whose value is out of range."""
    for name in constructor_parameters(estimator.__class__):
        check, wanted = PARAMETERS[name]
        value = getattr(estimator, name)
        if not check(value):
            raise ValueError(f"{type(estimator).__name__}: {name} must be {wanted}, got {value!r}")
