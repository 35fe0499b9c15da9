"""Model: a stack of layers trained with a loss and an optimizer, Keras-style.

`fit` validates the data once, then runs every step through the layers' trusted `_forward`
and `_backward`. A Softmax output with CategoricalCrossentropy trains through the fused
gradient `(probabilities - onehot) / n`. All randomness (unseeded layers' initial weights,
shuffling, dropout masks) comes from the model's own generator, so one `seed` gives
bit-identical runs without touching NumPy's global state.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from chainrule._checks import float_array, require_columns
from chainrule.activations import Softmax
from chainrule.callbacks import Callback
from chainrule.gradcheck import GradcheckResult, compare
from chainrule.layers import Dense, Layer
from chainrule.losses import (
    LOSSES,
    BinaryCrossentropy,
    CategoricalCrossentropy,
    Loss,
    SoftmaxCategoricalCrossentropy,
    regularization_loss,
)
from chainrule.metrics import METRICS, Metric
from chainrule.optimizers import OPTIMIZERS, Optimizer, ParameterPack

SMALL_MATMUL_WORK = 1 << 20  # multiply-adds of the largest product below which BLAS runs on one thread


class TrainingDivergedError(FloatingPointError):
    """The loss became NaN or infinite; the update that would have used it was not applied."""


class History:
    """Per-epoch values recorded by `fit`: `history["loss"][epoch]` and so on."""

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []
        self.interrupted = False

    def record(self, epoch: int, logs: dict[str, float]) -> None:
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)

    def __repr__(self) -> str:
        return f"History(epochs={len(self.epoch)}, keys={list(self.history)})"


def _named(value: Any, registry: dict[str, type], base: type, kind: str) -> Any:
    """An instance of `base`, given as one or by its registered name."""
    if isinstance(value, str):
        if value not in registry:
            raise ValueError(f"Model.compile: unknown {kind} {value!r}; choose from {sorted(registry)}")
        value = registry[value]()
    if not isinstance(value, base):
        raise TypeError(f"Model.compile: {kind} must be a {base.__name__} or a name, got {type(value).__name__}")
    return value


def _batch_size(value: Any, owner: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{owner}: batch_size must be a positive integer or None, got {value!r}")
    return int(value)


def _batches(n_samples: int, batch_size: int | None) -> Iterator[slice]:
    size = n_samples if batch_size is None else batch_size
    for start in range(0, n_samples, size):
        yield slice(start, start + size)


class Model:
    """A sequential network: `add` layers, `compile` with a loss and optimizer, then `fit`."""

    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.layers: list[Layer] = []
        self.loss: Loss | None = None
        self.optimizer: Optimizer | None = None
        self.metrics: dict[str, Metric] = {}
        self.stop_training = False
        self.history: History | None = None
        self._fused: SoftmaxCategoricalCrossentropy | None = None
        self._interrupted = False
        self._pack: ParameterPack | None = None

    def __getstate__(self) -> dict[str, Any]:
        # The parameter buffer is rebuilt by the next fit; optimizer state is keyed by layer
        # index here because the optimizer's own keys (layer identities) do not survive pickling.
        state = {**self.__dict__, "_pack": None}
        if self.optimizer is not None:
            state["_optimizer_state"] = self.optimizer.get_state(self.trainable_layers)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        optimizer_state = state.pop("_optimizer_state", None)
        self.__dict__.update(state)
        if optimizer_state:
            self.optimizer.set_state(self.trainable_layers, optimizer_state, self.optimizer.iterations)

    # -- building ---------------------------------------------------------------------------

    def add(self, layer: Layer) -> Model:
        """Append a layer; unseeded layers draw their randomness from the model's generator."""
        if not isinstance(layer, Layer):
            raise TypeError(f"Model.add: expected a Layer such as Dense or ReLU, got {type(layer).__name__}")
        layer.adopt_rng(self.rng)
        self.layers.append(layer)
        return self

    @property
    def dtype(self) -> np.dtype:
        """The dtype all layers compute in."""
        dtypes = {layer.dtype for layer in self.layers}
        if len(dtypes) != 1:
            raise ValueError(f"Model: all layers must share one dtype, got {sorted(d.name for d in dtypes)}")
        return dtypes.pop()

    @property
    def trainable_layers(self) -> list[Layer]:
        """Layers that have parameters, in order."""
        return [layer for layer in self.layers if layer.parameters()]

    def _widths(self) -> tuple[int, int]:
        """(input width, output width), checking that consecutive Dense layers connect."""
        input_width = output_width = None
        for index, layer in enumerate(self.layers):
            n_inputs = getattr(layer, "n_inputs", None)
            if n_inputs is None:
                continue
            if output_width is not None and n_inputs != output_width:
                raise ValueError(
                    f"Model: layer {index} ({type(layer).__name__}) takes {n_inputs} inputs but the layer "
                    f"before it gives {output_width}"
                )
            input_width = input_width or n_inputs
            output_width = layer.n_neurons
        if input_width is None:
            raise ValueError("Model: add at least one Dense layer before compiling")
        return input_width, output_width

    def compile(
        self, *, loss: Loss | str, optimizer: Optimizer | str, metrics: Sequence[str] | str | None = None
    ) -> Model:
        """Choose the loss, the optimizer and the metrics (defaults follow from the loss)."""
        if not self.layers:
            raise ValueError("Model.compile: the model has no layers")
        self._widths()
        dtype = self.dtype
        self.loss = _named(loss, LOSSES, Loss, "loss")
        self.loss = type(self.loss)(**{**self.loss.get_config(), "dtype": dtype.name})
        self.optimizer = _named(optimizer, OPTIMIZERS, Optimizer, "optimizer")
        fused = isinstance(self.layers[-1], Softmax) and isinstance(self.loss, CategoricalCrossentropy)
        self._fused = SoftmaxCategoricalCrossentropy(dtype) if fused else None
        self.metrics = self._resolve_metrics(metrics)
        return self

    def _resolve_metrics(self, metrics: Sequence[str] | str | None) -> dict[str, Metric]:
        accuracy = {CategoricalCrossentropy: "categorical_accuracy", BinaryCrossentropy: "binary_accuracy"}.get(
            type(self.loss)
        )
        if metrics is None:
            return {"accuracy": METRICS[accuracy]} if accuracy else {}
        resolved = {}
        for name in [metrics] if isinstance(metrics, str) else metrics:
            if name == "accuracy":
                if accuracy is None:
                    raise ValueError("Model.compile: 'accuracy' needs a classification loss; use 'mae' for regression")
                resolved["accuracy"] = METRICS[accuracy]
            elif name in METRICS:
                resolved[name] = METRICS[name]
            else:
                raise ValueError(f"Model.compile: unknown metric {name!r}; choose from {['accuracy', *METRICS]}")
        return resolved

    # -- data -------------------------------------------------------------------------------

    def _require_compiled(self, owner: str) -> None:
        if self.loss is None or self.optimizer is None:
            raise ValueError(f"{owner}: call compile(loss=..., optimizer=...) first")

    def _inputs(self, X: Any, owner: str) -> np.ndarray:
        if not self.layers:
            raise ValueError(f"{owner}: the model has no layers")
        inputs = float_array(X, self.dtype, "X", owner)
        require_columns(inputs, self._widths()[0], "X", owner)
        return inputs

    def _targets(self, y: Any, n_samples: int, owner: str) -> np.ndarray:
        output_width = self._widths()[1]
        if output_width == 1 and not isinstance(self.loss, CategoricalCrossentropy) and np.ndim(y) == 1:
            y = np.reshape(y, (-1, 1))
        return self.loss.prepare_targets(y, (n_samples, output_width), owner)

    def _dataset(self, X: Any, y: Any, owner: str) -> tuple[np.ndarray, np.ndarray]:
        self._require_compiled(owner)
        inputs = self._inputs(X, owner)
        return inputs, self._targets(y, len(inputs), owner)

    # -- training ---------------------------------------------------------------------------

    def _forward(self, inputs: np.ndarray, training: bool) -> np.ndarray:
        for layer in self.layers:
            inputs = layer._forward(inputs, training)
        return inputs

    def _backward(self, output: np.ndarray, y_true: np.ndarray) -> None:
        if self._fused is not None:
            dvalues = self._fused._backward(output, y_true)
            layers = self.layers[-2::-1]
        else:
            dvalues = self.loss._backward(output, y_true)
            layers = self.layers[::-1]
        for layer in layers[:-1]:
            dvalues = layer._backward(dvalues)
        first = layers[-1] if layers else None
        if isinstance(first, Dense):  # nothing consumes the network's dinputs: skip that product
            first._parameter_gradients(dvalues)
        elif first is not None:
            first._backward(dvalues)

    def _parameter_pack(self) -> ParameterPack:
        """The flat parameter buffer the optimizer updates, built once per architecture."""
        trainable = self.trainable_layers
        if self._pack is None or self._pack.layers != trainable:
            self._pack = ParameterPack(trainable)
        self.optimizer.share_state(self._pack)
        return self._pack

    def _score(self, output: np.ndarray, y_true: np.ndarray, totals: dict[str, float]) -> float:
        """Add a batch's summed loss and metrics to `totals`; return the batch's mean loss."""
        losses = self.loss._per_sample(output, y_true)
        batch_loss = float(losses.sum())
        totals["data_loss"] = totals.get("data_loss", 0.0) + batch_loss
        if self.metrics:
            predictions = self.layers[-1].predictions(output)
            for name, metric in self.metrics.items():
                totals[name] = totals.get(name, 0.0) + metric(predictions, y_true) * len(output)
        return batch_loss / len(output)

    def _summarise(self, totals: dict[str, float], n_samples: int, prefix: str = "") -> dict[str, float]:
        data_loss = totals["data_loss"] / n_samples
        penalty = regularization_loss(self.layers)
        logs = {
            f"{prefix}loss": data_loss + penalty,
            f"{prefix}data_loss": data_loss,
            f"{prefix}regularization_loss": penalty,
        }
        logs.update({f"{prefix}{name}": totals[name] / n_samples for name in self.metrics})
        return logs

    def fit(
        self,
        X: Any,
        y: Any,
        *,
        epochs: int = 1,
        batch_size: int | None = None,
        validation_data: tuple[Any, Any] | None = None,
        shuffle: bool = True,
        verbose: int = 1,
        callbacks: Iterable[Callback] = (),
    ) -> History:
        """Train for `epochs` passes over (X, y) and return the History of per-epoch values."""
        inputs, targets = self._dataset(X, y, "Model.fit")
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
            raise ValueError(f"Model.fit: epochs must be a positive integer, got {epochs!r}")
        batch_size = _batch_size(batch_size, "Model.fit")
        if verbose not in (0, 1, 2):
            raise ValueError(f"Model.fit: verbose must be 0, 1 or 2, got {verbose!r}")
        validation = None
        if validation_data is not None:
            if len(validation_data) != 2:
                raise ValueError("Model.fit: validation_data must be a pair (X_val, y_val)")
            validation = self._dataset(*validation_data, "Model.fit (validation_data)")
        callbacks = list(callbacks)
        for callback in callbacks:
            callback.set_model(self)

        self.history = history = History()
        self.stop_training = False
        n_samples = len(inputs)
        pack = [self._parameter_pack()]
        shuffle = shuffle and batch_size is not None and batch_size < n_samples  # a full batch has no order
        progress = tqdm(total=epochs, unit="epoch", disable=None if verbose == 1 else True, leave=True)
        for callback in callbacks:
            callback.on_train_begin()
        try:
            with (
                self._deferred_interrupt(),
                self._blas_threads(batch_size or n_samples),
                np.errstate(over="ignore", invalid="ignore", divide="ignore"),
            ):
                for epoch in range(epochs):
                    for callback in callbacks:
                        callback.on_epoch_begin(epoch)
                    order = self.rng.permutation(n_samples) if shuffle else None
                    totals: dict[str, float] = {}
                    seen = 0
                    for rows in _batches(n_samples, batch_size):
                        if order is not None:  # gather one batch at a time: no shuffled copy of the data set
                            rows = order[rows]
                        batch_inputs, batch_targets = inputs[rows], targets[rows]
                        output = self._forward(batch_inputs, True)
                        batch_loss = self._score(output, batch_targets, totals)
                        if not math.isfinite(batch_loss):
                            raise TrainingDivergedError(
                                f"Model.fit: the loss became {batch_loss} in epoch {epoch + 1}; training "
                                "stopped before applying that update. Try a lower learning rate."
                            )
                        self._backward(output, batch_targets)
                        self.optimizer.step(pack)
                        seen += len(batch_inputs)
                        if self._interrupted:
                            break
                    logs = self._summarise(totals, seen)
                    if validation is not None:
                        logs.update(self._evaluate(*validation, batch_size, prefix="val_"))
                    history.record(epoch, logs)
                    for callback in callbacks:
                        callback.on_epoch_end(epoch, logs)
                    self._report(progress, epoch, epochs, logs, verbose)
                    if self._interrupted or self.stop_training:
                        break
        finally:
            history.interrupted = self._interrupted
            self._interrupted = False
            progress.close()
            for callback in callbacks:
                callback.on_train_end()
        return history

    @staticmethod
    def _report(progress: tqdm, epoch: int, epochs: int, logs: dict[str, float], verbose: int) -> None:
        if verbose == 2:
            values = "  ".join(f"{key} {value:.4f}" for key, value in logs.items() if "regularization" not in key)
            print(f"epoch {epoch + 1}/{epochs}  {values}", flush=True)
        elif not progress.disable:
            progress.set_postfix(
                {key: f"{value:.4f}" for key, value in logs.items() if "_loss" not in key}, refresh=False
            )
            progress.update()

    def _blas_threads(self, batch_rows: int) -> contextlib.AbstractContextManager:
        """One BLAS thread when every matrix product is small: handing it to more threads costs
        more than they save (about 20% of a step on the book's spiral network)."""
        widest = max((layer.n_inputs * layer.n_neurons for layer in self.layers if isinstance(layer, Dense)), default=0)
        if batch_rows * widest >= SMALL_MATMUL_WORK:
            return contextlib.nullcontext()
        return threadpool_limits(limits=1, user_api="blas")

    @contextlib.contextmanager
    def _deferred_interrupt(self) -> Iterator[None]:
        """Turn Ctrl-C into 'stop after this step' (a second Ctrl-C interrupts at once)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def request_stop(signum: int, frame: Any) -> None:
            if self._interrupted:
                raise KeyboardInterrupt
            self._interrupted = True

        previous = signal.signal(signal.SIGINT, request_stop)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    # -- inference --------------------------------------------------------------------------

    def _evaluate(
        self, inputs: np.ndarray, targets: np.ndarray, batch_size: int | None, prefix: str = ""
    ) -> dict[str, float]:
        totals: dict[str, float] = {}
        for rows in _batches(len(inputs), batch_size):
            self._score(self._forward(inputs[rows], False), targets[rows], totals)
        return self._summarise(totals, len(inputs), prefix)

    def evaluate(self, X: Any, y: Any, *, batch_size: int | None = None) -> dict[str, float]:
        """Loss (data + regularisation) and metrics on (X, y), without training."""
        inputs, targets = self._dataset(X, y, "Model.evaluate")
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            logs = self._evaluate(inputs, targets, _batch_size(batch_size, "Model.evaluate"))
        return {key: value for key, value in logs.items() if key not in ("data_loss", "regularization_loss")}

    def predict(self, X: Any, *, batch_size: int | None = None) -> np.ndarray:
        """The output layer's values for X (probabilities for a Softmax output)."""
        inputs = self._inputs(X, "Model.predict")
        batch_size = _batch_size(batch_size, "Model.predict")
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            batches = [self._forward(inputs[rows], False).copy() for rows in _batches(len(inputs), batch_size)]
        return np.concatenate(batches)

    def predict_classes(self, X: Any, *, batch_size: int | None = None) -> np.ndarray:
        """The output layer's predictions: class indices for Softmax, 0/1 for Sigmoid."""
        return self.layers[-1].predictions(self.predict(X, batch_size=batch_size))

    # -- weights and checks -----------------------------------------------------------------

    def get_weights(self) -> list[np.ndarray]:
        """Copies of every parameter, layer by layer."""
        return [parameter.copy() for layer in self.layers for parameter in layer.parameters().values()]

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        """Copy `weights` (as from `get_weights`) into the parameters in place."""
        parameters = [parameter for layer in self.layers for parameter in layer.parameters().values()]
        if len(weights) != len(parameters):
            raise ValueError(f"Model.set_weights: expected {len(parameters)} arrays, got {len(weights)}")
        for index, (parameter, values) in enumerate(zip(parameters, weights, strict=True)):
            if np.shape(values) != parameter.shape:
                raise ValueError(
                    f"Model.set_weights: array {index} has shape {np.shape(values)}, expected {parameter.shape}"
                )
        for parameter, values in zip(parameters, weights, strict=True):
            parameter[...] = values

    def gradcheck(self, X: Any, y: Any, *, epsilon: float = 1e-6, tolerance: float = 1e-6) -> GradcheckResult:
        """Check the whole network's parameter gradients (data + regularisation loss) numerically."""
        inputs, targets = self._dataset(X, y, "Model.gradcheck")
        if self.dtype != np.float64:
            raise TypeError("Model.gradcheck: central differences need float64 layers (dtype=np.float64)")

        def total_loss() -> float:
            output = self._forward(inputs, False)
            return float(np.mean(self.loss._per_sample(output, targets))) + regularization_loss(self.layers)

        self._backward(self._forward(inputs, False), targets)
        arrays, analytic = {}, {}
        for index, layer in enumerate(self.layers):
            gradients = layer.gradients()
            for name, parameter in layer.parameters().items():
                key = f"layer{index}.{type(layer).__name__}.{name}"
                arrays[key], analytic[key] = parameter, gradients[name].copy()
        return compare(total_loss, analytic, arrays, epsilon, tolerance)

    def save(self, path: Any, *, include_optimizer: bool = False) -> None:
        """Write a safe model file (see `chainrule.io`); `include_optimizer` lets `fit` resume exactly."""
        from chainrule.io import save_model

        save_model(self, path, include_optimizer=include_optimizer)

    def summary(self) -> str:
        """A table of layers, their settings and parameter counts."""
        lines = [f"{'#':>2}  {'layer':<50} {'parameters':>10}"]
        for index, layer in enumerate(self.layers):
            count = sum(parameter.size for parameter in layer.parameters().values())
            lines.append(f"{index:>2}  {layer!r:<50.50} {count:>10}")
        total = sum(parameter.size for layer in self.layers for parameter in layer.parameters().values())
        lines.append(f"total parameters: {total}")
        return "\n".join(lines)
