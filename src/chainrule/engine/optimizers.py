"""Optimizers: turn each layer's gradients into an in-place parameter update.

All share the book's learning-rate decay, `lr / (1 + decay * iterations)`, shown as
`current_learning_rate`. Per-parameter state (momenta, caches) lives in the optimizer, keyed by
layer and parameter name, and can be exported for saving (`get_state`/`set_state`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from chainrule.backend import kernels
from chainrule.backend.arrays import Device
from chainrule.display import html_table
from chainrule.engine.layers import Layer, trainable
from chainrule.engine.parameter_store import ParameterStore
from chainrule.engine.validation import finite_number

# Elements per block: a float32 block's five arrays (parameter, gradient, two moments, scratch)
# take 2.5 MiB and stay in cache; smaller blocks lose more to per-call overhead than they gain.
CACHE_BLOCK = 1 << 17
ADAM_SCALARS = kernels.python_form(kernels.adam_scalars)  # resolved once: it runs every step


class Optimizer:
    """Base class: decay, iteration count, state per parameter, and the update loop.

    State (momenta, caches) is kept per parameter, keyed by the layer object and the
    parameter's name. A `ParameterStore` gets one buffer per slot, and each of its parameters'
    state is a view of it, so a step makes one pass over every bound parameter.

    An update makes about a dozen elementwise passes. On a large array each pass streams from
    main memory, so long arrays are updated in cache-sized blocks: a block's passes reuse data
    already in cache, with the same arithmetic per element.
    """

    slots: tuple[str, ...] = ()  # the state kept from step to step (and saved)
    scratches: tuple[str, ...] = ("scratch",)  # working arrays the rule writes into (not saved)

    def __init__(self, learning_rate: float, decay: float) -> None:
        owner = type(self).__name__
        self.learning_rate = finite_number(learning_rate, "learning_rate", owner, minimum=0)
        self.decay = finite_number(decay, "decay", owner, minimum=0)
        self.current_learning_rate = self.learning_rate
        self.iterations = 0
        self._state: dict[tuple[Layer, str], dict[str, np.ndarray]] = {}
        self._store_slots: tuple[ParameterStore, dict[str, np.ndarray]] | None = None

    def __getstate__(self) -> dict[str, Any]:
        # The store's flat slot buffers are rebuilt with the store; each parameter's state pickles
        # on its own (with its layer, when the model is pickled whole), its working arrays
        # (`scratches`) left out: `_slots_for` makes them again.
        state = {key: {slot: slots[slot] for slot in self.slots if slot in slots} for key, slots in self._state.items()}
        return {**self.__dict__, "_store_slots": None, "_state": state}

    def to_device(self, device: Device) -> None:
        """Keep the state on `device` from now on (a Model's `to` calls this)."""
        self._state = {
            key: {slot: device.to_device(array) for slot, array in slots.items()} for key, slots in self._state.items()
        }
        self._store_slots = None  # rebuilt from the moved state with the next store

    def pre_update_params(self) -> None:
        """Apply learning-rate decay for this iteration."""
        self.current_learning_rate = self.learning_rate / (1.0 + self.decay * self.iterations)

    def update_params(self, layer: Any, scalars: tuple[Any, ...] | None = None) -> None:
        """Update every parameter of `layer` in place from its gradients (`scalars`: the rule's,
        by default this step's `step_scalars()`). `layer` is a chainrule Layer or one written
        as the book writes it (`weights`, `biases`, `dweights`, `dbiases`)."""
        scalars = self.step_scalars() if scalars is None else scalars
        parameters, gradients = trainable(layer)
        for name, parameter in parameters.items():
            self._update_blocked(parameter, gradients[name], self._slots_for(layer, name, parameter), scalars)

    def update_store(self, store: ParameterStore, scalars: tuple[Any, ...] | None = None) -> None:
        """Update every parameter of `store`: the bound ones in one pass over its flat buffers."""
        scalars = self.step_scalars() if scalars is None else scalars
        if store.values.size:
            self._update_blocked(store.values, store.gradients, self.slots_of_store(store), scalars)
        for layer in store.loose_layers:
            self.update_params(layer, scalars)

    def post_update_params(self) -> None:
        """Count the iteration (used by decay and Adam's bias correction)."""
        self.iterations += 1

    def step(self, layers: Iterable[Layer] | ParameterStore) -> None:
        """One full update: decay, the parameters of every layer (or of a store), iteration count."""
        self.pre_update_params()
        if isinstance(layers, ParameterStore):
            self.update_store(layers)
        else:
            for layer in layers:
                self.update_params(layer)
        self.post_update_params()

    def prepare(self, store: ParameterStore) -> dict[str, np.ndarray]:
        """Allocate the state of every parameter of `store` now (a captured step may allocate
        nothing); returns the flat buffers of its bound parameters' slots."""
        for layer in store.loose_layers:
            for name, parameter in layer.parameters().items():
                self._slots_for(layer, name, parameter)
        return self.slots_of_store(store)

    def _update_blocked(
        self, parameter: np.ndarray, gradient: np.ndarray, slots: dict[str, np.ndarray], scalars: tuple[Any, ...]
    ) -> None:
        if parameter.ndim != 1 or parameter.size <= 2 * CACHE_BLOCK:
            self.rule(parameter, gradient, slots, *scalars)
            return
        for start in range(0, parameter.size, CACHE_BLOCK):
            rows = slice(start, start + CACHE_BLOCK)
            self.rule(parameter[rows], gradient[rows], {slot: array[rows] for slot, array in slots.items()}, *scalars)

    def _slots_for(self, layer: Layer, name: str, parameter: np.ndarray) -> dict[str, np.ndarray]:
        slots = self._state.get((layer, name))
        if slots is None or any(array.shape != parameter.shape for array in slots.values()):
            slots = self._state[(layer, name)] = {slot: np.zeros_like(parameter) for slot in self.slots}
        if len(slots) < len(self.slots) + len(self.scratches):  # new, or unpickled without its working arrays
            slots.update({scratch: np.empty_like(parameter) for scratch in self.scratches if scratch not in slots})
        return slots

    def slots_of_store(self, store: ParameterStore) -> dict[str, np.ndarray]:
        """One buffer per slot for the store's flat values; each bound parameter's state becomes a
        view of it, carrying over what it held (from earlier training or a loaded file)."""
        if self._store_slots is not None and self._store_slots[0] is store:
            return self._store_slots[1]
        packed = {slot: np.zeros_like(store.values) for slot in self.slots}
        packed.update({scratch: np.empty_like(store.values) for scratch in self.scratches})
        for segment in store.segments:
            views = {slot: array[segment.rows].reshape(segment.shape) for slot, array in packed.items()}
            for slot, array in self._state.get((segment.layer, segment.name), {}).items():
                if slot in self.slots and array.shape == segment.shape:
                    views[slot][...] = array
            self._state[(segment.layer, segment.name)] = views
        self._store_slots = (store, packed)
        return packed

    def rule(self, parameter: np.ndarray, gradient: np.ndarray, slots: dict[str, np.ndarray], *scalars: Any) -> None:
        """The update rule, in place, every operation writing into the arrays it is given. The one
        form of the rule: the eager step passes `step_scalars()` as Python floats, a static step
        (`static_scalars`) passes 0-d arrays, which a CUDA graph captures. Every number the rule
        uses is one of `scalars`, none read from the optimizer: a captured step would keep it."""
        raise NotImplementedError

    def step_scalars(self) -> tuple[Any, ...]:
        """This step's scalars for `rule`: `iteration_scalars()`, then `settings()`."""
        return (*self.iteration_scalars(), *self.settings())

    def iteration_scalars(self) -> tuple[Any, ...]:
        """The rule's scalars that change from step to step: the decayed learning rate."""
        return (self.current_learning_rate,)

    def settings(self) -> tuple[float, ...]:
        """The rule's scalars that follow from the optimizer's settings alone (a momentum, an
        epsilon), as Python floats. A static step copies them to the device before each epoch, so
        a setting a callback changes between epochs takes effect there as in the eager step."""
        return ()

    def static_scalars(self, xp: Any, dtype: np.dtype) -> StaticScalars:
        """`step_scalars` as 0-d arrays that a static step advances in place."""
        return StaticScalars(self, xp, dtype)

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments that rebuild this optimizer."""
        return {"learning_rate": self.learning_rate, "decay": self.decay}

    def __repr__(self) -> str:
        arguments = ", ".join(f"{key}={value!r}" for key, value in self.get_config().items())
        return f"{type(self).__name__}({arguments})"

    def _repr_html_(self) -> str:
        rows = [*self.get_config().items(), ("iterations", self.iterations)]
        rows.append(("current_learning_rate", self.current_learning_rate))
        return html_table(["setting", "value"], rows, caption=type(self).__name__)

    def get_state(self, layers: list[Any]) -> dict[str, np.ndarray]:
        """The state arrays as `"{layer index}.{parameter}.{slot}"`, for saving."""
        index_of = {id(layer): index for index, layer in enumerate(layers)}
        state = {}
        for (layer, name), slots in self._state.items():  # only what has taken a step (no gradients needed)
            if id(layer) in index_of:
                state.update(
                    {f"{index_of[id(layer)]}.{name}.{slot}": slots[slot] for slot in self.slots if slot in slots}
                )
        return state

    def set_state(self, layers: list[Layer], state: dict[str, np.ndarray], iterations: int) -> None:
        """Restore what `get_state` returned, so training continues exactly where it stopped."""
        self.iterations = int(iterations)
        self.pre_update_params()
        for index, layer in enumerate(layers):
            for name, parameter in layer.parameters().items():
                keys = [f"{index}.{name}.{slot}" for slot in self.slots]
                if not all(key in state for key in keys):
                    continue
                slots = self._slots_for(layer, name, parameter)
                for slot, key in zip(self.slots, keys, strict=True):
                    if state[key].shape != parameter.shape:
                        raise ValueError(
                            f"{type(self).__name__}: state {key} has shape {state[key].shape}, "
                            f"expected {parameter.shape}"
                        )
                    slots[slot][...] = state[key]


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with (Nesterov) momentum.

    Momentum: `v = momentum * v - lr * g; w += v`. Nesterov looks ahead along the new velocity:
    `w += momentum * v - lr * g`.
    """

    def __init__(
        self, learning_rate: float = 1.0, decay: float = 0.0, momentum: float = 0.0, nesterov: bool = False
    ) -> None:
        super().__init__(learning_rate, decay)
        self.momentum = finite_number(momentum, "momentum", "SGD", minimum=0, maximum=1)  # 1: velocity never decays
        if nesterov and not self.momentum:
            raise ValueError("SGD: nesterov=True needs a momentum above 0")
        self.nesterov = bool(nesterov)
        self.slots = ("velocity",) if self.momentum else ()
        self.scratches = ("scratch", "lookahead") if self.nesterov else ("scratch",)

    def rule(self, parameter: np.ndarray, gradient: np.ndarray, slots: dict[str, np.ndarray], *scalars: Any) -> None:
        learning_rate, momentum = scalars
        step = slots["scratch"]
        np.multiply(gradient, learning_rate, out=step)  # lr g
        if not self.momentum:
            np.subtract(parameter, step, out=parameter)
            return
        velocity = slots["velocity"]
        np.multiply(velocity, momentum, out=velocity)
        np.subtract(velocity, step, out=velocity)  # v = momentum v - lr g
        if self.nesterov:
            lookahead = slots["lookahead"]
            np.multiply(velocity, momentum, out=lookahead)
            np.subtract(lookahead, step, out=step)  # momentum v - lr g
            np.add(parameter, step, out=parameter)
        else:
            np.add(parameter, velocity, out=parameter)

    def settings(self) -> tuple[float, ...]:
        return (self.momentum,)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class Adagrad(Optimizer):
    """Per-parameter learning rates from the sum of squared gradients: `w -= lr g / (sqrt(cache) + eps)`."""

    slots = ("cache",)

    def __init__(self, learning_rate: float = 1.0, decay: float = 0.0, epsilon: float = 1e-7) -> None:
        super().__init__(learning_rate, decay)
        self.epsilon = finite_number(epsilon, "epsilon", "Adagrad", minimum=0)

    def rule(self, parameter: np.ndarray, gradient: np.ndarray, slots: dict[str, np.ndarray], *scalars: Any) -> None:
        learning_rate, epsilon = scalars
        cache, scratch = slots["cache"], slots["scratch"]
        np.multiply(gradient, gradient, out=scratch)
        np.add(cache, scratch, out=cache)
        _divide_step(parameter, gradient, cache, scratch, learning_rate, epsilon)

    def settings(self) -> tuple[float, ...]:
        return (self.epsilon,)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "epsilon": self.epsilon}


class RMSprop(Optimizer):
    """Adagrad with a moving average of squared gradients: `cache = rho cache + (1 - rho) g^2`."""

    slots = ("cache",)

    def __init__(
        self, learning_rate: float = 0.001, decay: float = 0.0, epsilon: float = 1e-7, rho: float = 0.9
    ) -> None:
        super().__init__(learning_rate, decay)
        self.epsilon = finite_number(epsilon, "epsilon", "RMSprop", minimum=0)
        self.rho = finite_number(rho, "rho", "RMSprop", minimum=0, below=1)

    def rule(self, parameter: np.ndarray, gradient: np.ndarray, slots: dict[str, np.ndarray], *scalars: Any) -> None:
        learning_rate, rho, one_minus_rho, epsilon = scalars
        cache, scratch = slots["cache"], slots["scratch"]
        np.multiply(gradient, gradient, out=scratch)
        np.multiply(scratch, one_minus_rho, out=scratch)
        np.multiply(cache, rho, out=cache)
        np.add(cache, scratch, out=cache)
        _divide_step(parameter, gradient, cache, scratch, learning_rate, epsilon)

    def settings(self) -> tuple[float, ...]:
        return (self.rho, 1 - self.rho, self.epsilon)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "epsilon": self.epsilon, "rho": self.rho}


class Adam(Optimizer):
    """Momentum plus RMSprop with bias correction:

    m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
    w -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps),  t = iterations + 1

    With `epsilon_hat=True`, eps is added to sqrt(v) before the bias correction instead (Kingma
    and Ba's "epsilon hat", as TensorFlow and scikit-learn do); the two differ only while
    sqrt(v) is near eps.
    """

    slots = ("momentum", "cache")

    def __init__(
        self,
        learning_rate: float = 0.001,
        decay: float = 0.0,
        epsilon: float = 1e-7,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon_hat: bool = False,
    ) -> None:
        super().__init__(learning_rate, decay)
        self.epsilon_hat = bool(epsilon_hat)
        self.epsilon = finite_number(epsilon, "epsilon", "Adam", minimum=0)
        self.beta_1 = finite_number(beta_1, "beta_1", "Adam", minimum=0, below=1)
        self.beta_2 = finite_number(beta_2, "beta_2", "Adam", minimum=0, below=1)

    def _update_blocked(
        self, parameter: np.ndarray, gradient: np.ndarray, slots: dict[str, np.ndarray], scalars: tuple[Any, ...]
    ) -> None:
        arrays = (parameter, gradient, slots["momentum"], slots["cache"])
        if kernels.applies(*arrays):
            self._update_compiled(*arrays, scalars)
        else:
            super()._update_blocked(parameter, gradient, slots, scalars)

    def rule(self, parameter: np.ndarray, gradient: np.ndarray, slots: dict[str, np.ndarray], *scalars: Any) -> None:
        step_size, epsilon, beta_1, one_minus_beta_1, beta_2, one_minus_beta_2 = scalars
        adam_update(
            parameter, gradient, slots["momentum"], slots["cache"], slots["scratch"],
            beta_1, one_minus_beta_1, beta_2, one_minus_beta_2, step_size, epsilon,
        )  # fmt: skip

    def _update_compiled(
        self,
        parameter: np.ndarray,
        gradient: np.ndarray,
        momentum: np.ndarray,
        cache: np.ndarray,
        scalars: tuple[Any, ...],
    ) -> None:
        """`rule` in one compiled pass over memory (`kernels.adam`), the same numbers (host
        arrays only: a static step's 0-d scalars are read here)."""
        flat = (array.reshape(-1) for array in (parameter, gradient, momentum, cache))
        step_size, epsilon, beta_1, _, beta_2, _ = scalars
        kernels.adam(*flat, float(beta_1), float(beta_2), float(step_size), float(epsilon))  # type: ignore[call-arg, arg-type]  # compiled

    def iteration_scalars(self) -> tuple[float, ...]:
        """This step's (step size, epsilon) as Python floats: a NumPy float64 scalar would force
        float32 arrays through a float64 loop with casts (NumPy 2 promotion), about 5x slower."""
        return ADAM_SCALARS(
            self.current_learning_rate, self.beta_1, self.beta_2, self.epsilon, self.epsilon_hat, self.iterations + 1
        )

    def settings(self) -> tuple[float, ...]:
        """beta_1, 1 - beta_1, beta_2, 1 - beta_2 (`adam_update`'s order)."""
        return (self.beta_1, 1 - self.beta_1, self.beta_2, 1 - self.beta_2)

    def static_scalars(self, xp: Any, dtype: np.dtype) -> StaticScalars:
        return AdamStaticScalars(self, xp, dtype)

    def get_config(self) -> dict[str, Any]:
        hat = {"epsilon_hat": True} if self.epsilon_hat else {}  # absent: files from before the option load
        return {**super().get_config(), "epsilon": self.epsilon, "beta_1": self.beta_1, "beta_2": self.beta_2, **hat}


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter, 2019), as PyTorch's AdamW:

    w *= 1 - lr * weight_decay;  then Adam's update

    The decay shrinks the weights outside the gradient, so the moments never see it (an L2
    penalty inside the gradient would be divided by sqrt(v) like the rest of it).
    """

    def __init__(
        self,
        learning_rate: float = 0.001,
        decay: float = 0.0,
        epsilon: float = 1e-7,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        weight_decay: float = 0.01,
        epsilon_hat: bool = False,
    ) -> None:
        super().__init__(learning_rate, decay, epsilon, beta_1, beta_2, epsilon_hat)
        self.weight_decay = finite_number(weight_decay, "weight_decay", "AdamW", minimum=0)

    def _update_blocked(
        self, parameter: np.ndarray, gradient: np.ndarray, slots: dict[str, np.ndarray], scalars: tuple[Any, ...]
    ) -> None:
        arrays = (parameter, gradient, slots["momentum"], slots["cache"])
        if kernels.applies(*arrays):
            step_size, epsilon, keep, *settings = scalars
            np.multiply(parameter, keep, out=parameter)
            self._update_compiled(*arrays, (step_size, epsilon, *settings))
        else:
            Optimizer._update_blocked(self, parameter, gradient, slots, scalars)

    def rule(self, parameter: np.ndarray, gradient: np.ndarray, slots: dict[str, np.ndarray], *scalars: Any) -> None:
        step_size, epsilon, keep, *settings = scalars
        np.multiply(parameter, keep, out=parameter)
        super().rule(parameter, gradient, slots, step_size, epsilon, *settings)

    def iteration_scalars(self) -> tuple[float, ...]:
        """Adam's (step size, epsilon), and the share of each weight the decay keeps."""
        return (*super().iteration_scalars(), 1.0 - self.current_learning_rate * self.weight_decay)

    def static_scalars(self, xp: Any, dtype: np.dtype) -> StaticScalars:
        return AdamWStaticScalars(self, xp, dtype)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "weight_decay": self.weight_decay}


def adam_update(
    parameter: np.ndarray,
    gradient: np.ndarray,
    momentum: np.ndarray,
    cache: np.ndarray,
    scratch: np.ndarray,
    beta_1: Any,
    one_minus_beta_1: Any,
    beta_2: Any,
    one_minus_beta_2: Any,
    step_size: Any,
    epsilon: Any,
) -> None:
    """Adam's update in place, every operation writing into the arrays it is given:

    m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  w -= step_size * m / (sqrt(v) + epsilon)

    with `step_size` and `epsilon` from `kernels.adam_scalars` (Python floats in the eager step,
    0-d arrays in a static step, which a CUDA graph captures). The one NumPy form of the rule: the
    eager step and the static step both call it; `kernels.adam` is its one-pass compiled form.
    """
    np.multiply(gradient, one_minus_beta_1, out=scratch)
    np.multiply(momentum, beta_1, out=momentum)
    np.add(momentum, scratch, out=momentum)
    np.multiply(gradient, gradient, out=scratch)
    np.multiply(scratch, one_minus_beta_2, out=scratch)
    np.multiply(cache, beta_2, out=cache)
    np.add(cache, scratch, out=cache)
    _divide_step(parameter, momentum, cache, scratch, step_size, epsilon)


def _divide_step(
    parameter: np.ndarray,
    numerator: np.ndarray,
    cache: np.ndarray,
    scratch: np.ndarray,
    step_size: Any,
    epsilon: Any,
) -> None:
    """parameter -= step_size * numerator / (sqrt(cache) + epsilon), in place."""
    np.sqrt(cache, out=scratch)
    np.add(scratch, epsilon, out=scratch)
    np.divide(numerator, scratch, out=scratch)
    np.multiply(scratch, step_size, out=scratch)
    np.subtract(parameter, scratch, out=parameter)


class StaticScalars:
    """An optimizer's step scalars as 0-d arrays, advanced in place by `advance` at the start of
    each static step: the learning-rate decay and the iteration count with nothing computed on
    the host, so a captured step replays them. Computed in float64 as the eager step's Python
    floats are, and rounded once to the parameters' dtype, as a Python float is when it meets
    an array.

    Every setting the step reads (the learning rate, the decay, the rule's `settings()`) is
    copied in by `epoch_begins`, between steps: a captured step reads these arrays, so a
    callback's change to the optimizer reaches it as it reaches the eager step.
    """

    def __init__(self, optimizer: Optimizer, xp: Any, dtype: np.dtype) -> None:
        self.optimizer = optimizer
        self.iterations, self.learning_rate, self.decay, self.rate64 = (xp.zeros((), np.float64) for _ in range(4))
        self.iterations[...] = optimizer.iterations
        self.iterations_vector = self.iterations.reshape(1)  # the compiled steps count through this view
        self.rate = xp.zeros((), dtype)
        self.settings = tuple(xp.zeros((), dtype) for _ in optimizer.settings())

    def epoch_begins(self) -> None:
        """Read the optimizer's settings (a schedule or a callback may have changed them)."""
        self.learning_rate[...] = self.optimizer.learning_rate
        self.decay[...] = self.optimizer.decay
        for array, value in zip(self.settings, self.optimizer.settings(), strict=True):
            array[...] = value

    def advance(self) -> None:
        """lr / (1 + decay * iterations), then iterations += 1: `pre_update_params` and
        `post_update_params` on 0-d arrays."""
        np.multiply(self.iterations, self.decay, out=self.rate64)
        np.add(self.rate64, 1.0, out=self.rate64)
        np.divide(self.learning_rate, self.rate64, out=self.rate64)
        np.add(self.iterations, 1.0, out=self.iterations)
        np.copyto(self.rate, self.rate64, casting="same_kind")

    def iteration_arrays(self) -> tuple[Any, ...]:
        """`Optimizer.iteration_scalars` as this step's 0-d arrays."""
        return (self.rate,)

    def arguments(self) -> tuple[Any, ...]:
        """What `Optimizer.rule` takes after the arrays."""
        return (*self.iteration_arrays(), *self.settings)


class AdamStaticScalars(StaticScalars):
    """Adam's step size and epsilon (`kernels.adam_scalars`) as 0-d arrays, with `out=`."""

    def __init__(self, optimizer: Adam, xp: Any, dtype: np.dtype) -> None:
        super().__init__(optimizer, xp, dtype)
        self.adam = optimizer
        self.c1, self.c2, self.step64, self.epsilon64 = (xp.zeros((), np.float64) for _ in range(4))
        self.beta_1, self.beta_2, self.epsilon_setting = (xp.zeros((), np.float64) for _ in range(3))
        self.step_size, self.epsilon = xp.zeros((), dtype), xp.zeros((), dtype)

    def epoch_begins(self) -> None:
        super().epoch_begins()
        self.beta_1[...], self.beta_2[...] = self.adam.beta_1, self.adam.beta_2
        self.epsilon_setting[...] = self.adam.epsilon

    def advance(self) -> None:
        super().advance()
        np.power(self.beta_2, self.iterations, out=self.c2)
        np.subtract(1.0, self.c2, out=self.c2)
        np.sqrt(self.c2, out=self.c2)  # sqrt(1 - beta_2^t)
        np.power(self.beta_1, self.iterations, out=self.c1)
        np.subtract(1.0, self.c1, out=self.c1)  # 1 - beta_1^t
        np.multiply(self.rate64, self.c2, out=self.step64)
        np.divide(self.step64, self.c1, out=self.step64)
        if self.adam.epsilon_hat:  # how epsilon enters is the network's form, fixed for the fit
            np.copyto(self.epsilon64, self.epsilon_setting)
        else:
            np.multiply(self.c2, self.epsilon_setting, out=self.epsilon64)
        np.copyto(self.step_size, self.step64, casting="same_kind")  # rounded once, as the eager step's Python float
        np.copyto(self.epsilon, self.epsilon64, casting="same_kind")

    def iteration_arrays(self) -> tuple[Any, ...]:
        return (self.step_size, self.epsilon)


class AdamWStaticScalars(AdamStaticScalars):
    """AdamW's scalars: Adam's, and 1 - lr * weight_decay."""

    def __init__(self, optimizer: AdamW, xp: Any, dtype: np.dtype) -> None:
        super().__init__(optimizer, xp, dtype)
        self.adamw = optimizer
        self.weight_decay, self.keep64, self.keep = (
            xp.zeros((), np.float64),
            xp.zeros((), np.float64),
            xp.zeros((), dtype),
        )

    def epoch_begins(self) -> None:
        super().epoch_begins()
        self.weight_decay[...] = self.adamw.weight_decay

    def advance(self) -> None:
        super().advance()
        np.multiply(self.rate64, self.weight_decay, out=self.keep64)
        np.subtract(1.0, self.keep64, out=self.keep64)
        np.copyto(self.keep, self.keep64, casting="same_kind")

    def iteration_arrays(self) -> tuple[Any, ...]:
        return (*super().iteration_arrays(), self.keep)


OPTIMIZERS: dict[str, type[Optimizer]] = {
    "sgd": SGD,
    "adagrad": Adagrad,
    "rmsprop": RMSprop,
    "adam": Adam,
    "adamw": AdamW,
}
