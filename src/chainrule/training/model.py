"""Model: a stack of layers trained with a loss and an optimizer, Keras-style.

`fit` validates the data once, then runs every step through the layers' unchecked
`forward_trusted`/`backward_trusted` (the loop itself is `chainrule.training.loop`). A Softmax output
with CategoricalCrossentropy trains through the fused gradient `(probabilities - onehot) / n`.
All randomness (unseeded layers' initial weights, shuffling, dropout masks) comes from the
model's own generator, so one `seed` gives bit-identical runs without touching NumPy's global
state.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from chainrule.backend import kernels
from chainrule.backend.arrays import CPU, Device, assign, find_device, to_host
from chainrule.backend.runtime import quiet_float_errors
from chainrule.check.diagnosis import Context
from chainrule.check.numeric import EPSILON, TOLERANCE, GradcheckResult, check_arrays
from chainrule.display import html_table
from chainrule.engine.layers import Dense, Layer
from chainrule.engine.losses import (
    LOSSES,
    BinaryCrossentropy,
    CategoricalCrossentropy,
    FusedLoss,
    Loss,
    SoftmaxCategoricalCrossentropy,
    fused_loss,
    regularization_loss,
)
from chainrule.engine.metrics import METRICS, Metric
from chainrule.engine.optimizers import OPTIMIZERS, Optimizer
from chainrule.engine.parameter_store import ParameterStore
from chainrule.engine.validation import all_finite, dense, float_dtype, is_sparse, named_instance, whole_number
from chainrule.files.model_file import save_model
from chainrule.training import loop, static_step
from chainrule.training.callbacks import Callback
from chainrule.training.distributed import SINGLE_PROCESS, SingleProcess, data_parallel
from chainrule.training.history import History
from chainrule.training.progress import progress_callbacks
from chainrule.training.scoring import evaluate, inference_passes

LOG = logging.getLogger("chainrule")


def _batch_size(value: Any, owner: str) -> int | None:
    return None if value is None else whole_number(value, "batch_size", owner)


class Model:
    """A sequential network: `add` layers, `compile` with a loss and optimizer, then `fit`.

    `dtype` sets every layer (`Model(dtype=np.float64)` computes everything in float64);
    without it the model computes in the dtype its layers with parameters share (float32 by
    default). `device="cuda"` keeps the parameters, the optimizer's state and the training data
    on a CUDA GPU through CuPy (see `chainrule.backend`); `to(device)` moves a model later.
    """

    def __init__(self, seed: int | None = None, *, dtype: Any = None, device: str | Device = "cpu") -> None:
        self.device = find_device(device, "Model")
        self.seed = None if seed is None else whole_number(seed, "seed", "Model", minimum=0)
        self.rng = np.random.default_rng(self.seed)
        self.requested_dtype = None if dtype is None else float_dtype(dtype, "Model")
        self.layers: list[Layer] = []
        self._loss: Loss | None = None  # chosen by compile
        self._optimizer: Optimizer | None = None
        self.metrics: dict[str, Metric] = {}
        self.stop_training = False
        self.history: History | None = None
        self.expected_logs: list[str] | None = None  # the keys fit will log, set as it starts
        # Softmax with CategoricalCrossentropy, or Sigmoid with BinaryCrossentropy, trains through
        # this fused loss (set by compile).
        self.fused_loss: FusedLoss | None = None
        self._store: ParameterStore | None = None
        self._replayed: static_step.StaticTraining | None = None  # the last fit's captured steps, for the next

    processes: SingleProcess = SINGLE_PROCESS  # the processes its last fit ran on: rank 0 alone saves
    fitting = False  # True while fit runs: the layers and the loss are fixed until it returns

    def __getstate__(self) -> dict[str, Any]:
        # The next fit rebuilds the flat buffers; an MPI communicator does not travel.
        state = {**self.__dict__, "_store": None, "_replayed": None}
        state.pop("processes", None)
        state.pop("fitting", None)  # a copy taken mid-fit (by a callback) is not training
        return state

    # -- building ---------------------------------------------------------------------------

    def add(self, layer: Layer) -> Model:
        """Append a layer; unseeded layers draw their randomness from the model's generator."""
        self._refuse_while_fitting("Model.add")
        if not isinstance(layer, Layer):
            raise TypeError(
                f"Model.add: expected a Layer (Dense, ReLU, or a subclass of cr.Layer), got {type(layer).__name__}"
            )
        if self.requested_dtype is not None:
            layer.set_dtype(self.requested_dtype)
        elif layer.dtype is not None:
            # Every layer with a dtype has the first one's (checked as each was added): one comparison.
            first = next(((index, other) for index, other in enumerate(self.layers) if other.dtype is not None), None)
            if first is not None and first[1].dtype != layer.dtype:
                index, other = first
                raise TypeError(
                    f"Model.add: layer {len(self.layers)} ({type(layer).__name__}) computes in {layer.dtype}, "
                    f"but layer {index} ({type(other).__name__}) computes in {other.dtype}. Give both the "
                    f"same dtype=, or build the model as cr.Model(dtype=np.{other.dtype}) to set every layer."
                )
        layer.adopt_rng(self.rng)
        layer.to_device(self.device)
        self.layers.append(layer)
        return self

    def to(self, device: str | Device) -> Model:
        """Move the parameters and the optimizer's state to `device` ('cpu' or 'cuda'); returns
        the model. Training then runs there; `predict` still returns NumPy arrays."""
        self._refuse_while_fitting("Model.to")
        target = find_device(device, "Model.to")
        for layer in self.layers:
            layer.to_device(target)
        if self._optimizer is not None:
            self._optimizer.to_device(target)
        self.device = target
        self._store, self._replayed = None, None
        return self

    @property
    def dtype(self) -> np.dtype:
        """The dtype the model computes in: the one it was given, or its layers' (float32 if none says)."""
        if self.requested_dtype is not None:
            return self.requested_dtype
        return next((layer.dtype for layer in self.layers if layer.dtype is not None), np.dtype(np.float32))

    @property
    def trainable_layers(self) -> list[Layer]:
        """Layers that have parameters, in order."""
        return [layer for layer in self.layers if layer.parameters()]

    @property
    def input_width(self) -> int:
        """The number of features the first layer with a fixed width takes (a network of 2-D batches)."""
        return self._widths()[0]

    def sample_shapes(self, input_shape: tuple[int, ...], name: str, owner: str) -> list[tuple[int, ...]]:
        """The shape of one sample after each layer, for samples of `input_shape` given as
        `name`; a ValueError names the first layer they do not fit."""
        shapes, shape = [], input_shape
        for index, layer in enumerate(self.layers):
            try:
                shape = layer.output_shape(shape)
            except ValueError as error:
                if index == 0:
                    raise ValueError(f"{owner}: {name} {error}, got samples of shape {input_shape}") from None
                raise ValueError(
                    f"{owner}: samples of {name} of shape {input_shape} reach layer {index} ({type(layer).__name__}) "
                    f"with shape {shape}, but its inputs {error}"
                ) from None
            shapes.append(shape)
        return shapes

    @property
    def output_width(self) -> int:
        """The number of outputs of the last layer with a fixed width."""
        return self._widths()[1]

    def _widths(self) -> tuple[int, int]:
        """(input width, output width), checking that consecutive fixed-width layers connect (the
        last axis: the features of 2-D batches, the channels of images)."""
        input_width = output_width = None
        for index, layer in enumerate(self.layers):
            if layer.input_width is not None:
                if output_width is not None and layer.input_width != output_width:
                    raise ValueError(
                        f"Model: layer {index} ({type(layer).__name__}) takes {layer.input_width} inputs but the "
                        f"layer before it gives {output_width}"
                    )
                input_width = input_width or layer.input_width
            if layer.output_width is not None:
                output_width = layer.output_width
            elif type(layer).output_shape is not Layer.output_shape:
                output_width = None  # a layer that reshapes (Flatten): its last axis depends on the data
        if input_width is None or output_width is None:
            raise ValueError("Model: add at least one layer with a fixed width (such as Dense) before compiling")
        return input_width, output_width

    def compile(
        self,
        *,
        loss: Loss | str,
        optimizer: Optimizer | str,
        metrics: Sequence[str] | str | None = None,
        fuse_sigmoid: bool = False,
    ) -> Model:
        """Choose the loss, the optimizer and the metrics (defaults follow from the loss).

        A Softmax output with categorical cross-entropy always trains through their fused
        gradient, as the book does. `fuse_sigmoid=True` does the same for a Sigmoid output with
        binary cross-entropy, `(s - y) / n`: exact where the sigmoid saturates, but not the
        book's separate steps, so it is off unless asked for.
        """
        self._refuse_while_fitting("Model.compile")
        if not self.layers:
            raise ValueError("Model.compile: the model has no layers")
        self._widths()
        if isinstance(loss, SoftmaxCategoricalCrossentropy):
            raise TypeError(
                "Model.compile: end the model with a cr.Softmax() layer and use loss='categorical_crossentropy'; "
                "the model then trains through the fused softmax + cross-entropy gradient by itself"
            )
        self.loss = named_instance(loss, LOSSES, Loss, "loss", "Model.compile")
        self._require_output_layer()
        self.optimizer = named_instance(optimizer, OPTIMIZERS, Optimizer, "optimizer", "Model.compile")
        self.fused_loss = fused_loss(self.layers[-1], self.loss, fuse_sigmoid=fuse_sigmoid)
        self.metrics = self._resolve_metrics(metrics)
        return self

    def _require_output_layer(self) -> None:
        """A cross-entropy needs probabilities: name the missing output activation, not a NumPy error later."""
        needs_output: dict[type, str] = {CategoricalCrossentropy: "Softmax", BinaryCrossentropy: "Sigmoid"}
        needs = needs_output.get(type(self.loss))
        last = self.layers[-1]
        if needs and isinstance(last, Dense):
            raise ValueError(
                f"Model.compile: {type(self.loss).__name__} needs probabilities, but the model ends in "
                f"{type(last).__name__}: add cr.{needs}() as the last layer"
            )

    @property
    def compiled(self) -> bool:
        """Whether `compile` has chosen a loss and an optimizer."""
        return self._loss is not None and self._optimizer is not None

    @property
    def loss(self) -> Loss:
        """The loss `compile` chose."""
        if self._loss is None:
            raise ValueError("Model has no loss yet: call compile(loss=..., optimizer=...) first")
        return self._loss

    @loss.setter
    def loss(self, loss: Loss) -> None:
        self._loss = loss

    @property
    def optimizer(self) -> Optimizer:
        """The optimizer `compile` chose (replace it between fits to change it)."""
        if self._optimizer is None:
            raise ValueError("Model has no optimizer yet: call compile(loss=..., optimizer=...) first")
        return self._optimizer

    @optimizer.setter
    def optimizer(self, optimizer: Optimizer) -> None:
        self._optimizer = optimizer

    def _resolve_metrics(self, metrics: Sequence[str] | str | None) -> dict[str, Metric]:
        accuracies: dict[type, str] = {
            CategoricalCrossentropy: "categorical_accuracy",
            BinaryCrossentropy: "binary_accuracy",
        }
        accuracy = accuracies.get(type(self.loss))
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
        if not self.compiled:
            raise ValueError(f"{owner}: call compile(loss=..., optimizer=...) first")

    def _inputs(self, X: Any, owner: str, *, allow_empty: bool = False) -> np.ndarray:
        if not self.layers:
            raise ValueError(f"{owner}: the model has no layers")
        inputs = self.layers[0].checked_inputs(X, self.dtype, "X", owner)
        self.sample_shapes(inputs.shape[1:], "X", owner)
        if not inputs.shape[0] and not allow_empty:
            raise ValueError(f"{owner}: X has no samples (shape {inputs.shape})")
        return self.placed(inputs, owner)

    def placed(self, inputs: Any, owner: str) -> Any:
        """Validated inputs where the model computes on them: on its device; sparse rows stay
        sparse on the CPU (each batch is made dense as it is taken)."""
        if is_sparse(inputs):
            if self.device != CPU:
                raise ValueError(f"{owner}: sparse X trains on the CPU; pass a dense array to use {self.device.name}")
            return inputs
        return self.device.to_device(inputs)

    def _targets(self, y: Any, inputs: np.ndarray, owner: str) -> np.ndarray:
        output_shape = (inputs.shape[0], *self.sample_shapes(inputs.shape[1:], "X", owner)[-1])
        if output_shape[1:] == (1,) and not isinstance(self.loss, CategoricalCrossentropy) and np.ndim(y) == 1:
            y = np.reshape(y, (-1, 1))
        return self.device.to_device(self.loss.prepare_targets(y, output_shape, owner, self.dtype))

    def validated(self, X: Any, y: Any, owner: str) -> tuple[np.ndarray, np.ndarray]:
        """(inputs, targets) checked and converted once, for the trusted passes below."""
        self._require_compiled(owner)
        inputs = self._inputs(X, owner)
        return inputs, self._targets(y, inputs, owner)

    # -- the trusted passes (validated data only) -------------------------------------------

    def forward_trusted(self, inputs: np.ndarray, training: bool) -> np.ndarray:
        """Every layer's forward pass on validated inputs (sparse rows made dense here, one batch
        at a time); returns the last output."""
        inputs = dense(inputs)
        for layer in self.layers:
            layer.forward_trusted(inputs, training)
            inputs = layer.output
        return inputs

    def backward_trusted(
        self, output: np.ndarray, y_true: np.ndarray, row_weights: np.ndarray | float | None = None
    ) -> None:
        """The loss's gradient, then every layer's backward pass, last layer first.

        `row_weights` (one per sample, or a scalar) multiply each sample's loss gradient: weights
        times n over their sum give the gradient of the weighted mean loss.
        """
        if self.fused_loss is not None:
            dvalues = self.fused_loss.backward_trusted(output, y_true)
            layers = self.layers[-2::-1]
        else:
            self.loss.backward_trusted(output, y_true)
            dvalues = self.loss.dinputs
            layers = self.layers[::-1]
        if row_weights is not None:
            dvalues = dvalues * (row_weights if isinstance(row_weights, float) else row_weights[:, None])
        for layer in layers[:-1]:
            layer.backward_trusted(dvalues)
            dvalues = layer.dinputs
        if layers:
            layers[-1].backward_parameters(dvalues)  # nothing reads the network's dinputs

    def parameter_store(self) -> ParameterStore:
        """The trainable layers' parameters as the optimizer updates them, built once per architecture."""
        trainable = self.trainable_layers
        if self._store is None or not self._store.holds(trainable):
            self._store = ParameterStore(trainable)
        return self._store

    def largest_matmul_work(self, batch_rows: int) -> int:
        """Multiply-adds of the largest layer product for a batch of `batch_rows` rows."""
        widths = [(layer.input_width or 0) * (layer.output_width or 0) for layer in self.layers]
        return batch_rows * max(widths, default=0)

    # -- training ---------------------------------------------------------------------------

    def _refuse_while_fitting(self, owner: str) -> None:
        """A callback that changes the network mid-fit would train layers the step has no buffers,
        gradients or optimizer state for: refused, before anything changes."""
        if self.fitting:
            raise RuntimeError(
                f"{owner}: the model is training (called from a callback during fit); "
                "change the layers, the loss or the device before fit or after it returns"
            )

    def check_parameters_finite(self, owner: str) -> None:
        """Refuse NaN or inf in any parameter: ReLU can hide a NaN weight from the loss (its
        output is 0 where the weight's product is NaN), so training would go on and save a file
        that cannot be loaded."""
        for index, layer in enumerate(self.layers):
            for name, values in layer.parameters().items():
                if not all_finite(values):
                    raise ValueError(
                        f"{owner}: layer {index} ({type(layer).__name__}) {name} contain NaN or inf; "
                        "training cannot recover from them (initialise the layer again or load good weights)"
                    )

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
        distributed: str | None = None,
        sharded: bool = False,
        graph: bool | None = None,
        allow_tf32: bool = False,
    ) -> History:
        """Train for `epochs` passes over (X, y) and return the History of per-epoch values.

        `distributed="mpi"` trains one model across the processes of `mpiexec -n N`, each taking
        a share of every batch; with `sharded=True` each process passes its own rows
        (`chainrule.distributed` says how batches are formed). Rank 0 alone prints and writes.

        `graph=True` runs each step over buffers allocated once (`chainrule.training.static_step`), and on
        a CUDA device captures it in a CUDA graph that is replayed; the loss is then checked
        once per epoch. Every built-in layer, loss, optimizer and metric has such a form, and a
        learner's own layer runs in it through its `forward`/`backward`. A network trains eagerly
        instead, and the log says why, when it uses a loss or optimizer of its own without a
        static form, a Softmax that is not the output of categorical cross-entropy, one-hot
        targets for that pair (pass class labels), or a distributed fit. A step is not captured
        where a layer has no static form or draws on the host (Dropout); it then runs uncaptured.
        The default, `graph=None`, takes that path where it pays: a capturable network on a CUDA
        device, and on the CPU the pattern the compiled kernels (extra `fast`) run as one call
        (Dense and ReLU layers, Softmax with cross-entropy, Adam). `graph=False` always takes the
        eager steps.
        `allow_tf32=True` lets the layers' matrix products in the captured steps on a CUDA device
        use TF32 tensor cores (the sums stay in full float32 precision); everywhere else, in eager
        steps and in `predict` and `evaluate`, products run in full precision, and the log says
        so when a fit asked for TF32 and cannot use it.
        """
        if distributed is not None and self.device.name != "cpu":
            raise ValueError(
                f"Model.fit: distributed={distributed!r} trains on the CPU only (the Open MPI wheel has no CUDA "
                f"support to reduce device arrays); this model is on {self.device.name!r}: call model.to('cpu') first"
            )
        parallel = data_parallel(distributed, sharded, "Model.fit")
        with parallel.agreement():  # bad data on one rank stops every rank here, before training
            inputs, targets = self.validated(X, y, "Model.fit")
            self.check_parameters_finite("Model.fit")
            epochs = whole_number(epochs, "epochs", "Model.fit")
            batch_size = _batch_size(batch_size, "Model.fit")
            if verbose not in (0, 1, 2):
                raise ValueError(f"Model.fit: verbose must be 0, 1 or 2, got {verbose!r}")
            validation = None
            if validation_data is not None:
                if len(validation_data) != 2:
                    raise ValueError("Model.fit: validation_data must be a pair (X_val, y_val)")
                validation = self.validated(*validation_data, "Model.fit (validation_data)")
        self.processes = parallel
        distributed_fit = parallel is not SINGLE_PROCESS
        static = None
        if graph is not False:
            static = static_step.static_training(
                self, inputs, targets, batch_size, graph, self.device, allow_tf32, distributed_fit, self._replayed
            )
        self._replayed = static if static is not None and static.replayed else None
        if allow_tf32 and not (static is not None and static.replayed and self.device.captures):
            LOG.warning(
                "Model.fit(allow_tf32=True): TF32 applies only to the layer products of captured steps on a CUDA "
                "device; this fit runs in full precision"
            )
        self.fitting = True
        try:
            return loop.train(
                self,
                inputs,
                targets,
                epochs=epochs,
                batch_size=batch_size,
                shuffle=shuffle,
                validation=validation,
                callbacks=[*callbacks, *progress_callbacks(verbose, epochs, distributed_fit)],
                parallel=parallel,
                static=static,
            )
        finally:
            self.fitting = False

    # -- inference --------------------------------------------------------------------------

    def evaluate(self, X: Any, y: Any, *, batch_size: int | None = None) -> dict[str, float]:
        """Loss (data + regularisation) and metrics on (X, y), without training, `batch_size` rows
        at a time (by default as many as fit `scoring.INFERENCE_VALUES` in the largest layer)."""
        inputs, targets = self.validated(X, y, "Model.evaluate")
        with quiet_float_errors():
            logs = evaluate(self, inputs, targets, _batch_size(batch_size, "Model.evaluate"))
        return {key: value for key, value in logs.items() if key not in ("data_loss", "regularization_loss")}

    def predict(self, X: Any, *, batch_size: int | None = None, as_numpy: bool = True) -> np.ndarray:
        """The output layer's values for X (probabilities for a Softmax output), computed
        `batch_size` rows at a time (by default as many as fit `scoring.INFERENCE_VALUES` in the
        largest layer, which bounds the memory). On a GPU
        they come back as a NumPy array unless `as_numpy=False`."""
        inputs = self._inputs(X, "Model.predict", allow_empty=True)
        batch_size = _batch_size(batch_size, "Model.predict")
        if not inputs.shape[0]:
            return np.empty((0, *self.sample_shapes(inputs.shape[1:], "X", "Model.predict")[-1]), dtype=self.dtype)
        predictions = self.predict_trusted(inputs, batch_size)
        return to_host(predictions) if as_numpy else predictions

    def predict_trusted(self, inputs: Any, batch_size: int | None = None) -> Any:
        """The output layer's values for validated inputs (in the model's dtype, on its device, at
        least one row), `batch_size` rows at a time: `predict` without its checks, for callers
        that made them already (the scikit-learn estimators)."""
        with quiet_float_errors():
            outputs = [output.copy() for _, output in inference_passes(self, inputs, batch_size)]
        return outputs[0] if len(outputs) == 1 else np.concatenate(outputs)

    def predict_classes(self, X: Any, *, batch_size: int | None = None) -> np.ndarray:
        """The output layer's predictions: class indices for Softmax, 0/1 for Sigmoid."""
        return self.layers[-1].predictions(self.predict(X, batch_size=batch_size))

    # -- weights and checks -----------------------------------------------------------------

    def get_weights(self) -> list[np.ndarray]:
        """Copies of every parameter, layer by layer, as NumPy arrays."""
        return [to_host(parameter).copy() for layer in self.layers for parameter in layer.parameters().values()]

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
            assign(parameter, values)

    def gradcheck(self, X: Any, y: Any, *, epsilon: float = EPSILON, tolerance: float = TOLERANCE) -> GradcheckResult:
        """Check the network layer by layer from the loss backwards (see `chainrule.check.network`):
        every layer's dinputs and parameter gradients, with the dvalues the backward pass hands it,
        and the loss's; then every parameter's gradient as the model trains (`model.layer0...`:
        its own backward, through a fused loss where it has one) against central differences of
        the whole loss. Elements whose nudges cross a kink (ReLU at 0) are left out and listed.
        """
        inputs, targets = self.validated(X, y, "Model.gradcheck")
        if self.dtype != np.float64:
            raise TypeError("Model.gradcheck: central differences need float64: build it as cr.Model(dtype=np.float64)")
        if self.device != CPU:
            raise ValueError("Model.gradcheck: the numerical check runs on the CPU: call model.to('cpu') first")
        with kernels.numpy_only():  # the textbook's arithmetic, as every check runs it
            return self._gradcheck(inputs, targets, epsilon, tolerance)

    def _gradcheck(self, inputs: np.ndarray, targets: np.ndarray, epsilon: float, tolerance: float) -> GradcheckResult:
        from chainrule.check.network import gradcheck_network  # the checker loads when it is first used

        result = gradcheck_network([*self.layers, self.loss], inputs, targets, epsilon=epsilon, tolerance=tolerance)

        def total_loss() -> float:
            output = self.forward_trusted(inputs, False)
            return float(np.mean(self.loss.forward_trusted(output, targets))) + regularization_loss(self.layers)

        self.backward_trusted(self.forward_trusted(inputs, False), targets)
        arrays, analytic = {}, {}
        for index, layer in enumerate(self.layers):
            gradients = layer.gradients()
            for name, parameter in layer.parameters().items():
                key = f"model.layer{index}.{type(layer).__name__}.{name}"
                arrays[key], analytic[key] = parameter, np.array(gradients[name], copy=True)
        trained = check_arrays(total_loss, analytic, arrays, Context(len(inputs)), epsilon=epsilon, tolerance=tolerance)
        result.verdicts.update(trained.verdicts)
        result.analytic.update(trained.analytic)
        result.numeric.update(trained.numeric)
        return result

    def save(self, path: Any, *, include_optimizer: bool = False) -> None:
        """Write a safe model file (see `chainrule.files.model_file`); `include_optimizer` lets `fit` resume exactly.
        After a distributed fit, only rank 0 writes (every rank holds the same model), and every rank
        returns once the file is complete, so any rank may load it next; a failure is raised on every rank."""
        # From a callback mid-fit, rank 0 may be writing alone (ModelCheckpoint runs there only): no rank waits.
        writing = contextlib.nullcontext(self.processes.is_root) if self.fitting else self.processes.root_writes()
        with writing as writes:
            if writes:
                self.check_parameters_finite("Model.save")  # load_model would refuse the file
                save_model(self, path, include_optimizer=include_optimizer)

    def summary(self) -> str:
        """A table of layers, their settings and parameter counts."""
        rows = [(str(index), repr(layer), str(self._count(layer))) for index, layer in enumerate(self.layers)]
        width = max([len("layer"), *(len(text) for _, text, _ in rows)])  # whole names, never cut
        lines = [f"{'#':>2}  {'layer':<{width}}  {'parameters':>10}"]
        lines += [f"{index:>2}  {text:<{width}}  {count:>10}" for index, text, count in rows]
        lines.append(f"total parameters: {sum(self._count(layer) for layer in self.layers)}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = [(index, repr(layer), self._count(layer)) for index, layer in enumerate(self.layers)]
        total = sum(self._count(layer) for layer in self.layers)
        return html_table(["#", "layer", "parameters"], rows, caption=f"Model: {total} parameters")

    def __repr__(self) -> str:
        compiled = f", {type(self.loss).__name__}, {self.optimizer!r}" if self.compiled else ""
        return f"Model({len(self.layers)} layers, {sum(map(self._count, self.layers))} parameters{compiled})"

    @staticmethod
    def _count(layer: Layer) -> int:
        return sum(parameter.size for parameter in layer.parameters().values())
