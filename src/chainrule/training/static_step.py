"""A training step over buffers allocated once: the form a CUDA graph can capture.

`Model.fit(..., graph=True)` trains through `StaticTraining`. Every array a step touches is
allocated when the step is built, for one batch size; each operation writes into one of them
(`out=`): each layer's static form (`Layer.forward_into`/`backward_into`, given its buffers as
`StepBuffers`), the loss's (`Loss.losses_into`/`backward_into`), the penalties' gradients
(`add_penalty_gradient`) and the optimizer's rule (`Optimizer.rule`) with its step scalars as
0-d arrays advanced inside the step (`StaticScalars`). Sums are products with a ones vector;
the loss and the metrics add up in 0-d arrays read once per epoch (or once per chunk of epochs,
`run_epochs`). Nothing in a step allocates
or reads a value back to the host, so on a GPU the whole step can be captured once and replayed
(`chainrule.backend.cuda_graph`).

A layer without a static form (a learner's own) runs in the same step through its `forward`
and `backward`, taking the arrays they return: on the CPU that is the same step, but it cannot
be captured, and neither can Dropout, whose masks are drawn on the host.

One pattern has a compiled form (extra `fast`): Dense layers with ReLU between them, Softmax and
cross-entropy on class labels, Adam and the accuracy (`CompiledStep`), as one compiled call for
small products or as compiled kernels between NumPy's products for large ones.

The values are the eager step's up to rounding: sums are products with ones, Dense adds its
biases after the product, and the fused softmax gradient is `(p - onehot) / n`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from chainrule.backend import kernels
from chainrule.backend.arrays import Device, array_module, take_rows, to_host
from chainrule.backend.runtime import Interruption
from chainrule.engine.activations import ReLU, Sigmoid, Softmax
from chainrule.engine.layers import Dense, Layer, add_penalty_gradient
from chainrule.engine.losses import CategoricalCrossentropy, SoftmaxCategoricalCrossentropy
from chainrule.engine.metrics import ELEMENTWISE_METRICS, METRICS
from chainrule.engine.optimizers import Adam, Optimizer
from chainrule.engine.parameter_store import ParameterStore
from chainrule.engine.validation import is_sparse
from chainrule.training import step_kernels
from chainrule.training.protocol import TrainingModel

# Multiply-adds of the largest layer product up to which the compiled whole step (one call, its
# products through Numba's BLAS binding) beats the compiled kernels between NumPy's own products:
# spiral-book (57k) and spiral-minibatch (131k) run twice as fast as one call; on mlp-medium (51M)
# Numba's BLAS binding made the whole step a sixth slower than the kernels between NumPy's products.
SMALL_WORK = 1 << 20
# Dense layers up to which the whole step is compiled as one call. Numba compiles it anew for each
# depth (the layers' arrays are tuples of that length), cached afterwards: a new depth cost 8 s of
# compiling here at 3 to 8 layers, 14 s at 12 and 90 s at 28, where the eager fit took a fraction
# of a second. Deeper networks take the kernels between NumPy's products, compiled once for all.
WHOLE_STEP_LAYERS = 4

# Replayed epochs recorded as one graph (`RecordedEpochs`): one launch, and none of the Python
# between epochs, for this many epochs (the book's spiral: 16 steps).
EPOCHS_PER_GRAPH = 16

Matmul = Callable[[Any, Any, Any], object]
LOG = logging.getLogger("chainrule")


def numpy_matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """out = a @ b through the array module's own product (what a graph replaces with cuBLAS)."""
    np.matmul(a, b, out=out)


def usable_in_place(inputs: np.ndarray, targets: np.ndarray) -> bool:
    """Whether a full batch can be the step's own input buffers: C-ordered and writable (a step's
    compiled kernels write their buffers; read-only data, memory-mapped or flagged, is copied)."""
    return all(array.flags.c_contiguous and array.flags.writeable for array in (inputs, targets))


def softmax_output(model: TrainingModel) -> bool:
    """Whether the network ends in Softmax with categorical cross-entropy (fused)."""
    return isinstance(model.fused_loss, SoftmaxCategoricalCrossentropy)


def unsupported(model: TrainingModel, targets: np.ndarray) -> str | None:
    """Why `model` cannot train on `targets` through a static step, or None if it can."""
    layers, fused = model.layers, model.fused_loss
    body = layers[:-1] if fused is not None else layers
    for index, layer in enumerate(body):
        if isinstance(layer, Softmax):
            return f"layer {index} is Softmax; a static step takes it only as the output of categorical cross-entropy"
    if softmax_output(model):
        if targets.ndim != 1:
            return "the targets are one-hot rows; pass class labels"
    elif fused is not None and getattr(fused, "backward_into", None) is None:
        return f"{type(fused).__name__} has no static form"
    if not softmax_output(model) and model.loss.losses_into is None:
        return f"the loss {type(model.loss).__name__} has no static form (losses_into, backward_into)"
    if type(model.optimizer).rule is Optimizer.rule:
        return f"the optimizer {type(model.optimizer).__name__} has no update rule (Optimizer.rule)"
    for name, metric in model.metrics.items():
        if softmax_output(model) and metric is METRICS["categorical_accuracy"]:
            continue
        output_layer = layers[-1]
        elementwise = type(output_layer).predictions in (Layer.predictions, Sigmoid.predictions)
        if metric not in ELEMENTWISE_METRICS or not elementwise:
            return f"the metric {name!r} has no static form for a {type(output_layer).__name__} output"
    return None


def not_capturable(model: TrainingModel) -> str | None:
    """Why a static step of `model` cannot be captured in a CUDA graph, or None if it can."""
    for index, layer in enumerate(model.layers):
        if layer.forward_into is None or layer.backward_into is None:
            if not (index == len(model.layers) - 1 and softmax_output(model)):
                return f"layer {index} ({type(layer).__name__}) has no static form (forward_into, backward_into)"
        elif not layer.capturable:
            return f"layer {index} ({type(layer).__name__}) works on the host"
    return None


def compiled_pattern(model: TrainingModel) -> bool:
    """Whether `model` is the pattern the compiled whole step computes: Dense and ReLU
    alternating, Softmax with cross-entropy, Adam, no penalties, at most the accuracy."""
    layers = model.layers
    if not (len(layers) >= 2 and softmax_output(model) and type(layers[-2]) is Dense):
        return False
    if any(type(layer) is not (Dense if index % 2 == 0 else ReLU) for index, layer in enumerate(layers[:-1])):
        return False
    if any(any(coefficients) for dense in layers[::2] for coefficients in dense.penalties().values()):  # type: ignore[attr-defined]
        return False
    accuracy_only = not set(model.metrics.items()) - {("accuracy", METRICS["categorical_accuracy"])}
    return type(model.loss) is CategoricalCrossentropy and type(model.optimizer) is Adam and accuracy_only


def static_training(
    model: TrainingModel,
    inputs: np.ndarray,
    targets: np.ndarray,
    batch_size: int | None,
    graph: bool | None,
    device: Device,
    allow_tf32: bool,
    distributed: bool,
    previous: StaticTraining | None = None,
) -> StaticTraining | None:
    """The static steps for `Model.fit(graph=...)`, or None for eager steps.

    `graph=True` takes them for every network `unsupported` accepts (the log says why not for
    the others), captured in a CUDA graph on a CUDA device where `not_capturable` allows. The
    default, `graph=None`, takes them where they pay: a capturable network on a CUDA device, and
    on the CPU the compiled pattern (`compiled_pattern`, extra `fast`). `previous`, the model's
    last replayed training, is taken again, graphs and all, where it `serves` this fit.
    """
    reason = unsupported(model, targets)
    if reason is None and distributed:
        reason = "the fit is distributed over several processes"
    if reason is None and is_sparse(inputs):
        reason = "X is sparse (each batch is made dense as it is taken)"
    if reason is not None:
        if graph:
            LOG.warning("Model.fit(graph=True) runs eager steps: %s", reason)
        return None
    store = model.parameter_store()
    uncapturable = not_capturable(model)
    if graph is None:
        pays = (device.captures and uncapturable is None) or (compiled_pattern(model) and kernels.applies(store.values))
        if not pays:
            return None
    batch_rows = batch_size or len(targets)
    if previous is not None and previous.serves(model, store, batch_rows, inputs, targets, allow_tf32):
        previous.begin_fit(inputs, targets)
        return previous
    training = StaticTraining(model, store, batch_rows, inputs, targets)
    if uncapturable is None:
        device.prepare_graph(training, allow_tf32)
        if training.replayed:  # kept for the model's next fit: what it was built from, to compare then
            training.signature = training_signature(model, store, batch_rows, inputs, targets, allow_tf32)
    elif device.captures:
        LOG.warning("Model.fit(graph=True): the static steps run uncaptured: %s", uncapturable)
    return training


def training_signature(
    model: TrainingModel, store: ParameterStore, batch_rows: int, inputs: Any, targets: Any, allow_tf32: bool
) -> tuple:
    """What a static training is built from: the very layers, loss, metrics, optimizer,
    parameter store and optimizer slots (by identity: a graph holds their buffers), the
    penalties, the batch size, the samples' shapes and dtypes, and TF32."""
    slots = model.optimizer.prepare(store)
    layers_penalties = [(segment.layer.penalties(), segment.name) for segment in store.segments]  # type: ignore[attr-defined]
    penalties = tuple(tuple(penalties.get(name, ())) for penalties, name in layers_penalties)
    return (
        tuple(map(id, model.layers)),
        id(model.loss),
        tuple((name, id(metric)) for name, metric in model.metrics.items()),
        id(model.optimizer),
        id(store),
        tuple((name, id(slot)) for name, slot in slots.items()),
        penalties,
        batch_rows,
        (inputs.shape[1:], inputs.dtype, targets.shape[1:], targets.dtype),
        allow_tf32,
    )


class StaticTraining:
    """What the steps of every batch size share: the optimizer's scalars and slots, the epoch's
    sums of the loss and metrics, and how a step runs."""

    def __init__(
        self,
        model: TrainingModel,
        store: ParameterStore,
        batch_rows: int,
        inputs: np.ndarray,
        targets: np.ndarray,
        matmul: Matmul = numpy_matmul,
    ) -> None:
        self.signature: tuple | None = None  # set where the training is kept (`static_training`)
        # The layers' products, and the sums computed as products with ones: on a GPU both go to
        # cuBLAS, and only the first may use TF32 (`cuda_graph`).
        self.model, self.store, self.matmul, self.sum_product = model, store, matmul, matmul
        self.optimizer = optimizer = model.optimizer
        self.input_shape, self.input_dtype = inputs.shape[1:], inputs.dtype
        self.target_shape, self.target_dtype = targets.shape[1:], targets.dtype
        self.xp, self.dtype = array_module(store.values), store.values.dtype
        self.scalars = optimizer.static_scalars(self.xp, self.dtype)
        self.slots = optimizer.prepare(store)
        self.penalties = self.penalised_parameters()
        self.totals = {name: self.xp.zeros((1, 1), np.float64) for name in ["data_loss", *model.metrics]}
        self.steps_run = 0
        self.replayed = False  # set by `cuda_graph.replay_steps`: the steps run from captured graphs
        # Set by `cuda_graph.replay_steps`: runs a `RecordedEpochs` through its own graphs.
        self.run_recorded: Callable[[RecordedEpochs], None] | None = None
        self.recordings: dict[tuple, RecordedEpochs] = {}
        self.compiled = compiled_pattern(model) and kernels.applies(store.values)
        # The compiled pattern: one compiled call per step for small products, compiled kernels
        # between NumPy's products for large ones (`SMALL_WORK`). A CUDA graph replaces `run`
        # with its replays (`cuda_graph`).
        self.run: Callable[[Any], None] = StaticStep.run
        if self.compiled:
            depth = sum(isinstance(layer, Dense) for layer in model.layers)
            small = model.largest_matmul_work(batch_rows) <= SMALL_WORK and depth <= WHOLE_STEP_LAYERS
            self.run = CompiledStep.run_compiled if small else CompiledStep.run_with_numpy_products
        self._steps: dict[int, StaticStep | CompiledStep] = {}
        self.run_uncaptured = self.run  # the step itself, however `run` is replaced

    def serves(
        self, model: TrainingModel, store: ParameterStore, batch_rows: int, inputs: Any, targets: Any, allow_tf32: bool
    ) -> bool:
        """Whether another fit can run on these steps and their graphs: they were replayed (on the
        CPU a training costs little to build and is not kept), and nothing they were built from
        has changed (`training_signature`)."""
        return self.signature is not None and self.signature == training_signature(
            model, store, batch_rows, inputs, targets, allow_tf32
        )

    def begin_fit(self, inputs: Any, targets: Any) -> None:
        """Take up another fit on `inputs` and `targets`: the step count from the optimizer (eager
        steps or a loaded state may have moved it), and only the steps and recordings that do
        not hold another fit's data (a full batch is used in place)."""
        self.steps_run = 0
        self.scalars.iterations[...] = self.optimizer.iterations
        self._steps = {
            rows: step
            for rows, step in self._steps.items()
            if isinstance(step, StaticStep) and step.holds_no_other(inputs, targets)  # replayed: no CompiledStep
        }
        self.recordings = {
            key: recording
            for key, recording in self.recordings.items()
            if recording.inputs is inputs and recording.targets is targets
        }

    def step_for(self, rows: int, inputs: np.ndarray | None = None, targets: np.ndarray | None = None) -> Any:
        """The step for batches of `rows` rows, built on first use (`inputs`/`targets`: use these
        arrays in place, for a full batch that needs no copy)."""
        if rows not in self._steps:
            build = CompiledStep if self.compiled else StaticStep
            self._steps[rows] = build(self, rows, inputs, targets)
        return self._steps[rows]

    def epoch(
        self,
        inputs: np.ndarray,
        targets: np.ndarray,
        order: np.ndarray | None,
        batches: Iterable[slice],
        interruption: Interruption,
    ) -> tuple[dict[str, float], int]:
        """One epoch (`epoch_steps`); returns the epoch's totals (read back once) and the rows seen."""
        self.scalars.epoch_begins()
        seen = self.epoch_steps(inputs, targets, order, batches, interruption)
        self.finish()
        return {name: float(total[0, 0]) for name, total in self.totals.items()}, seen

    def epoch_steps(
        self,
        inputs: np.ndarray,
        targets: np.ndarray,
        order: np.ndarray | None,
        batches: Iterable[slice],
        interruption: Interruption | None,
        run: Callable[[Any], None] | None = None,
    ) -> int:
        """One epoch's steps through `run` (by default `self.run`), each batch gathered into its
        step's buffers (a full batch is used in place), its totals summed in `totals` where the
        data lives. Returns the rows seen; a Ctrl-C ends it after the step it interrupted (no
        `interruption`: nothing does, as while a graph records). The optimizer's settings are
        read before (`StaticScalars.epoch_begins`)."""
        run = run or self.run
        for total in self.totals.values():
            np.multiply(total, 0, out=total)
        seen = 0
        for rows in batches:
            count = len(range(len(inputs))[rows])
            if order is None and count == len(inputs) and usable_in_place(inputs, targets):
                step = self.step_for(count, inputs, targets)
            else:
                step = self.step_for(count)
                if order is None:
                    step.inputs[...], step.targets[...] = inputs[rows], targets[rows]
                else:
                    take_rows(inputs, order[rows], step.inputs)
                    take_rows(targets, order[rows], step.targets)
            run(step)
            self.steps_run += 1
            seen += count
            if interruption is not None and interruption.requested:
                break
        return seen

    def finish(self) -> None:
        """Bring the optimizer's own count and learning rate up to the steps run (as after an
        eager step), so callbacks read them and eager training continues exactly."""
        if self.steps_run:
            self.optimizer.iterations += self.steps_run - 1
            self.optimizer.pre_update_params()  # the rate of the last step run
            self.optimizer.iterations += 1
            self.steps_run = 0

    def penalised_parameters(self) -> list[tuple[Any, Any, float, float, Any]]:
        """(gradient, values, l1, l2, scratch) of each penalised parameter in the store, its
        scratch a view of the optimizer's (free until the update)."""
        scratch = self.slots["scratch"]
        found = []
        for segment in self.store.segments:
            l1, l2 = segment.layer.penalties().get(segment.name, (0.0, 0.0))  # type: ignore[attr-defined]
            if l1 or l2:
                views = (self.store.gradients, self.store.values, scratch)
                gradient, values, work = (array[segment.rows].reshape(segment.shape) for array in views)
                found.append((gradient, values, l1, l2, work))
        return found

    def update(self) -> None:
        """The penalties' gradients, then the optimizer's rule with this step's scalars."""
        for gradient, values, l1, l2, scratch in self.penalties:
            add_penalty_gradient(gradient, values, l1, l2, scratch)
        self.optimizer.update_store(self.store, self.scalars.arguments())

    # -- the compiled pattern's state ------------------------------------------------------------

    def runs_epochs(self, inputs: np.ndarray, targets: np.ndarray) -> bool:
        """Whether `run_epochs` can take this data. Replayed graphs take any network without
        penalties (whose loss would be read each epoch) whose parameters all lie in the store's
        flat buffer (the divergence snapshots are copies of it). The compiled pattern needs its
        whole step compiled, and C-ordered NumPy data with int64 labels."""
        if self.replayed:
            return not self.penalties and not self.store.loose_layers
        return (
            self.run is CompiledStep.run_compiled
            and not self.store.loose_layers
            and kernels.applies(inputs, targets)
            and targets.dtype == np.int64
        )

    def total_columns(self) -> int:
        """The columns of `run_epochs`' totals, named as `totals` in order: the summed loss, then
        each metric's sum (the compiled pattern writes the loss and the correct predictions)."""
        return len(self.totals) if self.replayed else 2

    def run_epochs(
        self,
        inputs: np.ndarray,
        targets: np.ndarray,
        orders: np.ndarray,
        batch_rows: int,
        epoch_totals: np.ndarray,
        good: np.ndarray,
        candidate: np.ndarray,
        interruption: Interruption,
    ) -> int:
        """Up to `len(epoch_totals)` epochs with nothing read back until the last: each epoch's
        totals go to a row of `epoch_totals`, and the weights an epoch begins with are copied into
        `good` once its loss is finite (`candidate`: scratch of good's shape). Returns the epochs
        run: all of them, or fewer after a Ctrl-C. Replayed graphs (`replay_epochs`) or the
        compiled pattern's whole epochs (`step_kernels.static_epochs`, which says how)."""
        if self.replayed:
            return self.replay_epochs(inputs, targets, orders, batch_rows, epoch_totals, good, candidate, interruption)
        count = len(inputs)
        whole = len(orders) == 0 and batch_rows == count
        in_place = whole and usable_in_place(inputs, targets)
        full = self.step_for(batch_rows, inputs if in_place else None, targets if in_place else None)
        if whole and not in_place:  # read-only data: copied once into the step's own buffers
            full.inputs[...], full.targets[...] = inputs, targets
        last = self.step_for(count % batch_rows or batch_rows)
        epochs_run = step_kernels.static_epochs(
            inputs, targets, orders, batch_rows, full.kernel_buffers, last.kernel_buffers, self.sums,
            *self.loss_bounds, self.adam_buffers, self.adam_arguments(), epoch_totals, good, candidate,
        )  # fmt: skip
        self.steps_run += epochs_run * -(-count // batch_rows)
        return epochs_run

    def replay_epochs(
        self,
        inputs: Any,
        targets: Any,
        orders: np.ndarray,
        batch_rows: int,
        epoch_totals: np.ndarray,
        good: Any,
        candidate: Any,
        interruption: Interruption,
    ) -> int:
        """`run_epochs` for steps replayed from graphs: each epoch's totals are copied to a row on
        the device and `good` follows the epoch's first weights while every loss so far is
        finite, so a chunk of epochs reads back once (a full batch would otherwise wait for the
        device after every step). Whole groups of EPOCHS_PER_GRAPH epochs replay as one graph
        (`RecordedEpochs`), a Ctrl-C taking effect after the group; the rest epoch by epoch."""
        xp, epochs = self.xp, len(epoch_totals)
        rows = xp.empty((epochs, len(self.totals)), np.float64)
        batches = [slice(start, start + batch_rows) for start in range(0, len(inputs), batch_rows)]
        recording = self.recording_for(inputs, targets, batches, len(orders) > 0)
        np.copyto(recording.good, good)
        recording.all_finite[...] = True
        epochs_run = 0
        while epochs_run < epochs and not (epochs_run and interruption.requested):
            self.scalars.epoch_begins()
            if self.run_recorded is not None and epochs - epochs_run >= EPOCHS_PER_GRAPH:
                span = EPOCHS_PER_GRAPH
                if recording.orders is not None:
                    recording.orders[...] = xp.asarray(orders[epochs_run : epochs_run + span])
                steps_before = self.steps_run
                self.run_recorded(recording)
                self.steps_run = steps_before + span * len(batches)  # a replay runs no Python
                np.copyto(rows[epochs_run : epochs_run + span], recording.totals)
            else:
                span = 1
                order = xp.asarray(orders[epochs_run]) if len(orders) else None
                recording.epoch(order, rows[epochs_run], self.run, interruption)
            epochs_run += span
        np.copyto(good, recording.good)
        epoch_totals[:epochs_run] = to_host(rows[:epochs_run])
        return epochs_run

    def recording_for(self, inputs: Any, targets: Any, batches: list[slice], shuffled: bool) -> RecordedEpochs:
        """The `RecordedEpochs` over these arrays, made once: a graph recorded from it holds them."""
        key = (id(inputs), id(targets), len(batches), shuffled)
        if key not in self.recordings:
            self.recordings[key] = RecordedEpochs(self, inputs, targets, batches, shuffled)
        return self.recordings[key]

    @functools.cached_property
    def sums(self) -> tuple:
        """The summed loss and correct predictions the compiled step adds to (a spare array
        for the count when no accuracy is asked for)."""
        return self.totals["data_loss"], self.totals.get("accuracy", self.xp.zeros((1, 1), np.float64))

    @functools.cached_property
    def loss_bounds(self) -> tuple:
        """The compiled kernels' bounds of a probability in the loss, in the parameters' dtype."""
        scalar, clip = self.dtype.type, self.model.loss.clip  # type: ignore[attr-defined]
        return scalar(clip), scalar(1 - clip)

    @functools.cached_property
    def adam_buffers(self) -> tuple:
        """The flat buffers the compiled Adam updates: values, gradients, momentum, cache."""
        return self.store.values, self.store.gradients, self.slots["momentum"], self.slots["cache"]

    def adam_arguments(self) -> tuple:
        """The compiled step's Adam arguments: the step counter, then the optimizer's settings
        (read at each call, so a schedule's learning rate takes effect)."""
        adam = self.optimizer
        assert isinstance(adam, Adam)
        settings = (adam.learning_rate, adam.decay, adam.beta_1, adam.beta_2, adam.epsilon, adam.epsilon_hat)
        return (self.scalars.iterations_vector, *settings)


class RecordedEpochs:
    """EPOCHS_PER_GRAPH replayed epochs as one unit of work, for a graph to record and replay
    (`StaticTraining.run_recorded`): each epoch's steps run uncaptured inside it (a graph cannot
    launch graphs while it records), its shuffled order is read from `orders` (filled before each
    run), its totals are written to a row of `totals`, and `good` (its own, copied in and out
    around each chunk, so that a graph outlives the fit) takes its first weights while every loss
    so far is finite (`all_finite`, reset before each chunk of epochs)."""

    def __init__(
        self, training: StaticTraining, inputs: Any, targets: Any, batches: list[slice], shuffled: bool
    ) -> None:
        xp, count = training.xp, len(inputs)
        self.training, self.inputs, self.targets, self.batches = training, inputs, targets, batches
        values = training.store.values
        self.good, self.candidate = (xp.empty(values.shape, values.dtype) for _ in range(2))
        self.orders = xp.empty((EPOCHS_PER_GRAPH, count), np.int64) if shuffled else None
        self.totals = xp.empty((EPOCHS_PER_GRAPH, len(training.totals)), np.float64)
        self.finite, self.all_finite = xp.empty(1, bool), xp.ones(1, bool)

    def __call__(self) -> None:
        for epoch in range(EPOCHS_PER_GRAPH):
            order = None if self.orders is None else self.orders[epoch]
            self.epoch(order, self.totals[epoch], self.training.run_uncaptured, None)

    def epoch(self, order: Any, totals: Any, run: Callable[[Any], None], interruption: Interruption | None) -> None:
        """One epoch's steps through `run`, its totals into the row `totals`, `good` kept up."""
        training = self.training
        np.copyto(self.candidate, training.store.values)
        training.epoch_steps(self.inputs, self.targets, order, self.batches, interruption, run)
        for column, total in enumerate(training.totals.values()):
            np.copyto(totals[column : column + 1], total.reshape(1))
        np.isfinite(training.totals["data_loss"].reshape(1), out=self.finite)
        np.logical_and(self.all_finite, self.finite, out=self.all_finite)
        np.copyto(self.good, self.candidate, where=self.all_finite)


class LayerStage:
    """One layer in a static step, and the buffers its static form writes into (`StepBuffers`)."""

    def __init__(self, layer: Layer, step: StaticStep, input_shape: tuple[int, ...], first: bool) -> None:
        self.layer, self.step, self.first = layer, step, first
        shared, rows = step.shared, step.rows
        self.output_shape = layer.output_shape(input_shape)
        self.output = shared.xp.empty((rows, *self.output_shape), shared.dtype)
        self.dinputs = shared.xp.empty((rows, *input_shape), shared.dtype)
        self.training = True
        self.static = layer.forward_into is not None and layer.backward_into is not None
        self.scratches: dict[str, Any] = {}

    def matmul(self, a: Any, b: Any, out: Any) -> object:
        return self.step.shared.matmul(a, b, out)

    def column_sums(self, values: Any, out: Any) -> object:
        rows = len(values)
        ones = self.step.ones_rows if rows == self.step.rows else self.scratch(f"ones{rows}", (1, rows), fill=1.0)
        return self.step.shared.sum_product(ones, values, out)

    def scratch(
        self, name: str, shape: tuple[int, ...], *, dtype: Any = None, order: str = "C", fill: float | None = None
    ) -> Any:
        array = self.scratches.get(name)
        if array is None:
            shared = self.step.shared
            array = self.scratches[name] = shared.xp.empty(shape, dtype or shared.dtype, order=order)
            if fill is not None:
                array.fill(fill)
        return array

    def forward(self, inputs: Any) -> Any:
        if self.static:
            self.layer.forward_into(inputs, self)  # type: ignore[misc]
            return self.output
        self.layer.forward_trusted(inputs, True)
        return self.layer.output

    def backward(self, dvalues: Any) -> Any:
        if self.static:
            self.layer.backward_into(dvalues, self)  # type: ignore[misc]
            return self.dinputs
        if self.first:
            self.layer.backward_parameters(dvalues)
            return None
        self.layer.backward_trusted(dvalues)
        return self.layer.dinputs


class StaticStep:
    """Forward, loss, gradient, backward and update for batches of one size, into fixed buffers."""

    def __init__(self, shared: StaticTraining, rows: int, inputs: Any, targets: Any) -> None:
        self.shared, self.rows = shared, rows
        model, xp, dtype = shared.model, shared.xp, shared.dtype
        layers = model.layers[:-1] if model.fused_loss is not None else model.layers
        self.inputs = xp.empty((rows, *shared.input_shape), shared.input_dtype) if inputs is None else inputs
        self.targets = xp.empty((rows, *shared.target_shape), shared.target_dtype) if targets is None else targets
        self.in_place = inputs is not None  # the data set itself, used in place, or buffers of its own
        self.ones_rows = xp.ones((1, rows), dtype)
        self.stages = []
        shape = shared.input_shape
        for index, layer in enumerate(layers):
            self.stages.append(LayerStage(layer, self, shape, first=index == 0))
            shape = self.stages[-1].output_shape
        (width,) = shape  # the loss takes rows of outputs
        self.loss = SoftmaxCrossentropyStage(self, width) if softmax_output(model) else LossStage(self, width)

    def holds_no_other(self, inputs: Any, targets: Any) -> bool:
        """Whether this step's data buffers are its own or these arrays (not another fit's)."""
        return not self.in_place or (self.inputs is inputs and self.targets is targets)

    def run(self) -> None:
        """One training step on the batch in `inputs` and `targets`."""
        self.shared.scalars.advance()
        values = self.inputs
        for stage in self.stages:
            values = stage.forward(values)
        gradient = self.loss.run(values)
        for stage in reversed(self.stages):
            gradient = stage.backward(gradient)
        self.shared.update()


class Sums:
    """Sums of a step's (rows, columns) values into the epoch's 0-d totals, as products with ones."""

    def __init__(self, step: StaticStep, columns: int) -> None:
        xp, dtype = step.shared.xp, step.shared.dtype
        self.step = step
        self.ones_columns = xp.ones((columns, 1), dtype)
        self.row_sums = xp.empty((step.rows, 1), dtype)
        self.batch_sum = xp.empty((1, 1), dtype)

    def add(self, values: Any, total: Any, scale: float = 1.0) -> None:
        """total += scale * values.sum()."""
        sum_product = self.step.shared.sum_product
        sum_product(values, self.ones_columns, self.row_sums)
        sum_product(self.step.ones_rows, self.row_sums, self.batch_sum)
        if scale != 1.0:
            np.multiply(self.batch_sum, scale, out=self.batch_sum)
        np.add(total, self.batch_sum, out=total)


class LossStage:
    """The loss's static form: the per-sample losses and the metrics added to the epoch's sums,
    then the gradient of the batch's mean loss (through a fused output activation, if any)."""

    def __init__(self, step: StaticStep, width: int) -> None:
        model, xp, dtype = step.shared.model, step.shared.xp, step.shared.dtype
        self.step, self.model = step, model
        self.elementwise = xp.empty((step.rows, width), dtype)
        self.scratch = (xp.empty((step.rows, width), dtype), xp.empty((step.rows, width), dtype))
        self.gradient = xp.empty((step.rows, width), dtype)
        self.sums = Sums(step, width)
        self.scale = 1.0 / width  # per-sample losses and these metrics are means over the outputs
        # Predictions as the output layer makes them: thresholded at 0.5 for a Sigmoid, else the outputs.
        self.thresholds = type(model.layers[-1]).predictions is Sigmoid.predictions
        # The fused output activation's forward (its backward is the fused loss's).
        fused = model.fused_loss is not None
        self.fused_activation = LayerStage(model.layers[-1], step, (width,), False) if fused else None

    def run(self, predictions: Any) -> Any:
        model, targets, totals = self.model, self.step.targets, self.step.shared.totals
        fused = model.fused_loss
        if self.fused_activation is not None:
            predictions = self.fused_activation.forward(predictions)
        model.loss.losses_into(predictions, targets, self.elementwise, self.scratch)  # type: ignore[misc]
        self.sums.add(self.elementwise, totals["data_loss"], self.scale)
        for name, metric in model.metrics.items():
            if self.thresholds:
                np.greater(predictions, 0.5, out=self.scratch[0])
                predicted = self.scratch[0]
            else:
                predicted = predictions
            ELEMENTWISE_METRICS[metric](predicted, targets, self.elementwise)
            self.sums.add(self.elementwise, totals[name], self.scale)
        if fused is not None:
            fused.backward_into(predictions, targets, self.gradient, self.scratch)  # type: ignore[attr-defined]
        else:
            model.loss.backward_into(predictions, targets, self.gradient, self.scratch)  # type: ignore[misc]
        return self.gradient


class SoftmaxCrossentropyStage:
    """Softmax and categorical cross-entropy on class labels, fused: the summed loss and correct
    predictions added to the epoch's sums, then `(p - onehot) / n`."""

    def __init__(self, step: StaticStep, classes: int) -> None:
        xp, dtype, rows = step.shared.xp, step.shared.dtype, step.rows
        self.step = step
        self.class_row = xp.arange(classes).reshape(1, classes)
        self.ones_classes = xp.ones((classes, 1), dtype)
        self.before = xp.asarray(np.triu(np.ones((classes, classes)), k=1), dtype)  # [i, j] = 1 where i < j
        self.maxima, self.maxima_before = xp.empty((rows, classes), dtype), xp.empty((rows, classes), dtype)
        self.probabilities = xp.empty((rows, classes), dtype)
        self.onehot = xp.empty((rows, classes), dtype)
        self.products = xp.empty((rows, classes), dtype)
        self.gradient = xp.empty((rows, classes), dtype)
        self.row_max, self.row_sum = xp.empty((rows, 1), dtype), xp.empty((rows, 1), dtype)
        self.picked, self.hits = xp.empty((rows, 1), dtype), xp.empty((rows, 1), dtype)
        self.batch_sum = xp.empty((1, 1), dtype)
        self.clip = step.shared.model.loss.clip  # type: ignore[attr-defined]
        self.accuracy = next(
            (name for name, metric in step.shared.model.metrics.items() if metric is METRICS["categorical_accuracy"]),
            None,
        )

    def run(self, logits: Any) -> Any:
        """Softmax into `probabilities`; add the batch's summed cross-entropy and its correct
        predictions to the shared sums; return the fused gradient."""
        sum_product, totals, labels = self.step.shared.sum_product, self.step.shared.totals, self.step.targets
        ones_rows = self.step.ones_rows
        # The row maximum as a chain of elementwise maxima over the columns: a reduction kernel
        # may take scratch memory, which a captured step must not.
        np.maximum(logits[:, :1], logits[:, -1:], out=self.row_max)
        for column in range(1, logits.shape[1] - 1):
            np.maximum(self.row_max, logits[:, column : column + 1], out=self.row_max)
        np.subtract(logits, self.row_max, out=self.probabilities)
        np.exp(self.probabilities, out=self.probabilities)
        sum_product(self.probabilities, self.ones_classes, self.row_sum)
        np.divide(self.probabilities, self.row_sum, out=self.probabilities)
        np.equal(labels[:, None], self.class_row, out=self.onehot)
        np.multiply(self.probabilities, self.onehot, out=self.products)
        sum_product(self.products, self.ones_classes, self.picked)
        np.clip(self.picked, self.clip, 1 - self.clip, out=self.picked)
        np.log(self.picked, out=self.picked)
        sum_product(ones_rows, self.picked, self.batch_sum)
        np.subtract(totals["data_loss"], self.batch_sum, out=totals["data_loss"])
        if self.accuracy is not None:
            # The prediction is the first column holding the row's maximum (as argmax): count the
            # maxima to the left of each column with a product by a strictly upper-triangular matrix.
            np.greater_equal(logits, self.row_max, out=self.maxima)
            sum_product(self.maxima, self.before, self.maxima_before)
            np.equal(self.maxima_before, 0, out=self.products)
            np.multiply(self.products, self.maxima, out=self.products)
            np.multiply(self.products, self.onehot, out=self.products)
            sum_product(self.products, self.ones_classes, self.hits)
            sum_product(ones_rows, self.hits, self.batch_sum)
            np.add(totals[self.accuracy], self.batch_sum, out=totals[self.accuracy])
        np.subtract(self.probabilities, self.onehot, out=self.gradient)
        np.multiply(self.gradient, 1 / len(self.gradient), out=self.gradient)
        return self.gradient


class CompiledStep:
    """The compiled pattern's step (`compiled_pattern`): Dense layers with ReLU between them,
    Softmax and cross-entropy on labels, Adam, in compiled kernels (`step_kernels`)."""

    def __init__(self, shared: StaticTraining, rows: int, inputs: Any, targets: Any) -> None:
        self.shared = shared
        store, xp, dtype = shared.store, shared.xp, shared.dtype
        dense = [layer for layer in shared.model.layers if type(layer) is Dense]
        segments = {(segment.layer, segment.name): segment for segment in store.segments}

        def view(buffer: np.ndarray, layer: Dense, name: str) -> np.ndarray:
            segment = segments[(layer, name)]
            return buffer[segment.rows].reshape(segment.shape)

        self.weights = [view(store.values, layer, "weights") for layer in dense]
        self.biases = [view(store.values, layer, "biases") for layer in dense]
        self.dweights = [view(store.gradients, layer, "weights") for layer in dense]
        self.dbiases = [view(store.gradients, layer, "biases") for layer in dense]
        self.inputs = xp.empty((rows, dense[0].n_inputs), dtype) if inputs is None else inputs
        self.targets = xp.empty(rows, np.int64) if targets is None else targets
        self.outputs = [xp.empty((rows, layer.n_neurons), dtype) for layer in dense]
        self.dvalues = [xp.empty((rows, layer.n_neurons), dtype) for layer in dense]

    def run_compiled(self) -> None:
        """The step in one compiled call (`step_kernels.static_step`), for NumPy arrays."""
        step_kernels.static_step(*self.compiled_arrays, self.shared.adam_arguments())

    def run_with_numpy_products(self) -> None:
        """The step with NumPy's matrix products (its multithreaded BLAS, faster than Numba's
        binding on large products) and the elementwise work between them in compiled kernels."""
        shared, count = self.shared, len(self.weights)
        hidden = self.inputs
        for index, (weights, biases, output) in enumerate(zip(self.weights, self.biases, self.outputs, strict=True)):
            np.matmul(hidden, weights, out=output)
            step_kernels.add_biases(output, biases, index < count - 1)
            hidden = output
        gradient = self.dvalues[-1]
        step_kernels.score_and_gradient(hidden, self.targets, gradient, *shared.sums, *shared.loss_bounds)
        for index in range(count - 1, -1, -1):
            below = self.inputs if index == 0 else self.outputs[index - 1]
            np.matmul(below.T, gradient, out=self.dweights[index])
            step_kernels.bias_gradient(gradient, self.dbiases[index])
            if index:
                np.matmul(gradient, self.weights[index].T, out=self.dvalues[index - 1])
                step_kernels.relu_backward(self.dvalues[index - 1], below)
                gradient = self.dvalues[index - 1]
        step_kernels.adam_step(shared.adam_buffers, shared.adam_arguments())

    @functools.cached_property
    def kernel_buffers(self) -> tuple:
        """The step's batch, layer and gradient arrays, as the compiled kernels take them (built
        once: the tuples cost several microseconds a step to rebuild)."""
        layers = tuple(tuple(arrays) for arrays in (self.weights, self.biases, self.dweights, self.dbiases))
        return (self.inputs, self.targets, *layers, tuple(self.outputs), tuple(self.dvalues))

    @functools.cached_property
    def compiled_arrays(self) -> tuple:
        """`step_kernels.static_step`'s arguments but Adam's, which stay the same from step to step."""
        shared = self.shared
        return (*self.kernel_buffers, *shared.sums, *shared.loss_bounds, shared.adam_buffers)
