"""A training step over buffers allocated once: the form a CUDA graph can capture.

`Model.fit(..., graph=True)` trains a network of Dense layers with ReLU between them, a Softmax
output, categorical cross-entropy on class labels and Adam through `StaticTraining`. Every
array the step touches is allocated when the step is built, for one batch size; each operation
writes into one of them (`out=`); sums are products with a ones vector; the learning-rate decay
and Adam's bias corrections are 0-d arrays updated inside the step; the loss and the number of
correct predictions add up in 0-d arrays that are read once per epoch. Nothing in a step
allocates or reads a value back to the host, so on a GPU the whole step can be captured once
and replayed (`chainrule.backend.cuda_graph`); on the CPU it runs as it is, or, with the compiled
kernels (extra `fast`), as one compiled call for small products (`run_compiled`) or as compiled
kernels between NumPy's products for large ones (`run_with_numpy_products`).

The values are the eager step's up to rounding: the fused gradient is computed as
`(p - onehot) / n` rather than `p / n - onehot / n`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable

import numpy as np

from chainrule.backend import kernels
from chainrule.backend.arrays import array_module, take_rows
from chainrule.backend.runtime import Interruption
from chainrule.engine.activations import ReLU, Softmax
from chainrule.engine.layers import Dense
from chainrule.engine.losses import CategoricalCrossentropy
from chainrule.engine.metrics import METRICS
from chainrule.engine.optimizers import Adam, adam_update
from chainrule.engine.parameter_store import ParameterStore
from chainrule.training import step_kernels
from chainrule.training.protocol import TrainingModel

# Multiply-adds of the largest layer product up to which the compiled whole step (one call, its
# products through Numba's BLAS binding) beats the compiled kernels between NumPy's own products:
# spiral-book (57k) and spiral-minibatch (131k) run twice as fast as one call; on mlp-medium (51M)
# Numba's BLAS binding made the whole step a sixth slower than the kernels between NumPy's products.
SMALL_WORK = 1 << 20

Matmul = Callable[[np.ndarray, np.ndarray, np.ndarray], object]


def numpy_matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """out = a @ b through the array module's own product (what a graph replaces with cuBLAS)."""
    np.matmul(a, b, out=out)


def unsupported(model: TrainingModel) -> str | None:
    """Why `model` cannot train through a static step, or None if it can."""
    layers = model.layers
    if not (len(layers) >= 2 and isinstance(layers[-1], Softmax) and type(layers[-2]) is Dense):
        return "the network must end in Dense then Softmax"
    for index, layer in enumerate(layers[:-1]):
        expected = Dense if index % 2 == 0 else ReLU
        if type(layer) is not expected:
            return f"layer {index} is {type(layer).__name__}; a static step takes Dense and ReLU layers alternating"
    if any(
        d.weight_regularizer_l1 or d.weight_regularizer_l2 or d.bias_regularizer_l1 or d.bias_regularizer_l2
        for d in layers[::2]
    ):
        return "the Dense layers have L1/L2 penalties"
    if type(model.loss) is not CategoricalCrossentropy:
        return f"the loss is {type(model.loss).__name__}, not categorical cross-entropy"
    if type(model.optimizer) is not Adam:
        return f"the optimizer is {type(model.optimizer).__name__}, not Adam"
    if set(model.metrics.items()) - {("accuracy", METRICS["categorical_accuracy"])}:
        return "only the accuracy metric is computed inside the step"
    return None


class StaticTraining:
    """The state the steps of every batch size share: Adam's scalars and the epoch's sums."""

    def __init__(
        self, model: TrainingModel, store: ParameterStore, batch_rows: int, matmul: Matmul = numpy_matmul
    ) -> None:
        self.model, self.store, self.matmul = model, store, matmul
        optimizer = model.optimizer
        self.optimizer = optimizer
        slots = optimizer.slots_of_store(store)
        self.momentum, self.cache, self.scratch = slots["momentum"], slots["cache"], slots["scratch"]
        xp, dtype = array_module(store.values), store.values.dtype
        scalar64 = [xp.zeros((), np.float64) for _ in range(7)]
        self.iterations, self.learning_rate, self.rate, self.c1, self.c2, self.step64, self.epsilon64 = scalar64
        self.iterations[...] = optimizer.iterations
        self.iterations_vector = self.iterations.reshape(1)  # the compiled step counts through this view
        self.step_size, self.epsilon = xp.zeros((), dtype), xp.zeros((), dtype)
        self.loss_total, self.correct = xp.zeros((1, 1), np.float64), xp.zeros((1, 1), np.float64)
        self.steps_run = 0
        # Where the compiled kernels take these arrays, one compiled call per step for small
        # products, compiled kernels between NumPy's products for large ones (`SMALL_WORK`); a
        # CUDA graph replaces this with its replays (`cuda_graph`).
        self.run: Callable[[StaticStep], None] = StaticStep.run
        if kernels.applies(store.values):
            small = model.largest_matmul_work(batch_rows) <= SMALL_WORK
            self.run = StaticStep.run_compiled if small else StaticStep.run_with_numpy_products
        self._steps: dict[int, StaticStep] = {}

    def step_for(self, rows: int, inputs: np.ndarray | None = None, labels: np.ndarray | None = None) -> StaticStep:
        """The step for batches of `rows` rows, built on first use (`inputs`/`labels`: use these
        arrays in place, for a full batch that needs no copy)."""
        if rows not in self._steps:
            self._steps[rows] = StaticStep(self, rows, inputs, labels)
        return self._steps[rows]

    def epoch(
        self,
        inputs: np.ndarray,
        targets: np.ndarray,
        order: np.ndarray | None,
        batches: Iterable[slice],
        interruption: Interruption,
    ) -> tuple[dict[str, float], int]:
        """One epoch: each batch gathered into its step's buffers (a full batch is used in
        place), then the step. Returns the epoch's totals (read back once) and the rows seen; a
        Ctrl-C ends it after the step it interrupted."""
        np.multiply(self.loss_total, 0, out=self.loss_total)
        np.multiply(self.correct, 0, out=self.correct)
        self.learning_rate[...] = self.optimizer.learning_rate  # a schedule may have changed it
        seen = 0
        for rows in batches:
            count = len(range(len(inputs))[rows])
            if order is None and count == len(inputs) and inputs.flags.c_contiguous:
                step = self.step_for(count, inputs, targets)
            else:
                step = self.step_for(count)
                if order is None:
                    step.inputs[...], step.labels[...] = inputs[rows], targets[rows]
                else:
                    take_rows(inputs, order[rows], step.inputs)
                    take_rows(targets, order[rows], step.labels)
            self.run(step)
            self.steps_run += 1
            seen += count
            if interruption.requested:
                break
        self.finish()
        totals = {"data_loss": float(self.loss_total[0, 0])}
        totals.update({"accuracy": float(self.correct[0, 0])} if self.model.metrics else {})
        return totals, seen

    def runs_epochs(self, inputs: np.ndarray, targets: np.ndarray) -> bool:
        """Whether `run_epochs` can take this data: the whole step is compiled, every parameter
        lies in the store's flat buffer (the divergence snapshots are copies of it), and the data
        are C-ordered NumPy arrays with int64 labels."""
        return (
            self.run is StaticStep.run_compiled
            and not self.store.loose_layers
            and kernels.applies(inputs, targets)
            and targets.dtype == np.int64
        )

    def run_epochs(
        self,
        inputs: np.ndarray,
        targets: np.ndarray,
        orders: np.ndarray,
        batch_rows: int,
        epoch_totals: np.ndarray,
        good: np.ndarray,
        candidate: np.ndarray,
    ) -> int:
        """`len(epoch_totals)` epochs in one compiled call (`step_kernels.static_epochs`, which says
        what the arguments hold); each epoch's summed loss and correct predictions go to a row of
        `epoch_totals`. Returns the number of epochs run: fewer when the last one run diverged."""
        count = len(inputs)
        in_place = len(orders) == 0 and batch_rows == count
        full = self.step_for(batch_rows, inputs if in_place else None, targets if in_place else None)
        last = self.step_for(count % batch_rows or batch_rows)
        epochs_run = step_kernels.static_epochs(
            inputs, targets, orders, batch_rows, full.kernel_buffers, last.kernel_buffers,
            (self.loss_total, self.correct), *self.loss_bounds, self.adam_buffers, self.adam_arguments(),
            epoch_totals, good, candidate,
        )  # fmt: skip
        self.steps_run += epochs_run * -(-count // batch_rows)
        return epochs_run

    @functools.cached_property
    def loss_bounds(self) -> tuple:
        """The compiled kernels' bounds of a probability in the loss, in the parameters' dtype."""
        scalar, clip = self.store.values.dtype.type, self.model.loss.clip
        return scalar(clip), scalar(1 - clip)

    @functools.cached_property
    def adam_buffers(self) -> tuple:
        """The flat buffers the compiled Adam updates: values, gradients, momentum, cache."""
        return self.store.values, self.store.gradients, self.momentum, self.cache

    def adam_arguments(self) -> tuple:
        """The compiled step's Adam arguments: the step counter, then the optimizer's settings
        (read at each call, so a schedule's learning rate takes effect)."""
        adam = self.optimizer
        settings = (adam.learning_rate, adam.decay, adam.beta_1, adam.beta_2, adam.epsilon, adam.epsilon_hat)
        return (self.iterations_vector, *settings)

    def finish(self) -> None:
        """Bring the optimizer's own count and learning rate up to the steps run (as after an
        eager step), so callbacks read them and eager training continues exactly."""
        if self.steps_run:
            self.optimizer.iterations += self.steps_run - 1
            self.optimizer.pre_update_params()  # the rate of the last step run
            self.optimizer.iterations += 1
            self.steps_run = 0

    def update_scalars(self) -> None:
        """lr / (1 + decay * it), then it += 1 and Adam's corrections, all on 0-d arrays (the formula of
        `kernels.adam_scalars`, written with `out=` so that a captured step allocates and reads nothing)."""
        adam = self.optimizer
        np.multiply(self.iterations, adam.decay, out=self.rate)
        np.add(self.rate, 1.0, out=self.rate)
        np.divide(self.learning_rate, self.rate, out=self.rate)
        np.add(self.iterations, 1.0, out=self.iterations)
        np.power(adam.beta_2, self.iterations, out=self.c2)
        np.subtract(1.0, self.c2, out=self.c2)
        np.sqrt(self.c2, out=self.c2)  # sqrt(1 - beta_2^t)
        np.power(adam.beta_1, self.iterations, out=self.c1)
        np.subtract(1.0, self.c1, out=self.c1)  # 1 - beta_1^t
        np.multiply(self.rate, self.c2, out=self.step64)
        np.divide(self.step64, self.c1, out=self.step64)
        if adam.epsilon_hat:
            self.epsilon64[...] = adam.epsilon
        else:
            np.multiply(self.c2, adam.epsilon, out=self.epsilon64)
        np.copyto(self.step_size, self.step64, casting="same_kind")  # rounded once, as the eager step's Python float
        np.copyto(self.epsilon, self.epsilon64, casting="same_kind")

    def adam(self) -> None:
        """Adam over the flat buffers: the eager step's rule (`adam_update`), with this step's scalars."""
        adam = self.optimizer
        adam_update(
            self.store.values, self.store.gradients, self.momentum, self.cache, self.scratch, adam.beta_1,
            adam.beta_2, self.step_size, self.epsilon,
        )  # fmt: skip


class StaticStep:
    """Forward, loss, fused gradient, backward and Adam for batches of one size, into fixed buffers."""

    def __init__(self, shared: StaticTraining, rows: int, inputs: np.ndarray | None, labels: np.ndarray | None) -> None:
        self.shared = shared
        store = shared.store
        xp, dtype = array_module(store.values), store.values.dtype
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
        self.labels = xp.empty(rows, np.int64) if labels is None else labels
        self.outputs = [xp.empty((rows, layer.n_neurons), dtype) for layer in dense]
        self.masks = [xp.empty((rows, layer.n_neurons), dtype) for layer in dense[:-1]]
        self.dvalues = [xp.empty((rows, layer.n_neurons), dtype) for layer in dense]
        classes = dense[-1].n_neurons
        self.class_row = xp.arange(classes).reshape(1, classes)
        self.ones_rows = xp.ones((1, rows), dtype)
        self.ones_classes = xp.ones((classes, 1), dtype)
        self.before = xp.asarray(np.triu(np.ones((classes, classes)), k=1), dtype)  # [i, j] = 1 where i < j
        self.maxima, self.maxima_before = xp.empty((rows, classes), dtype), xp.empty((rows, classes), dtype)
        self.probabilities = xp.empty((rows, classes), dtype)
        self.onehot = xp.empty((rows, classes), dtype)
        self.products = xp.empty((rows, classes), dtype)
        self.row_max, self.row_sum = xp.empty((rows, 1), dtype), xp.empty((rows, 1), dtype)
        self.picked, self.hits = xp.empty((rows, 1), dtype), xp.empty((rows, 1), dtype)
        self.batch_sum = xp.empty((1, 1), dtype)
        self.clip = shared.model.loss.clip

    def run(self) -> None:
        """One training step on the batch in `inputs` and `labels`."""
        matmul, shared = self.shared.matmul, self.shared
        shared.update_scalars()
        # forward: Dense, then ReLU as a multiplication by the 0/1 mask of positive values
        hidden = self.inputs
        for index, (weights, biases, output) in enumerate(zip(self.weights, self.biases, self.outputs, strict=True)):
            matmul(hidden, weights, output)
            np.add(output, biases, out=output)
            if index < len(self.masks):
                np.greater(output, 0, out=self.masks[index])
                np.multiply(output, self.masks[index], out=output)
            hidden = output
        self.loss_and_hits(hidden)
        # the fused softmax + cross-entropy gradient, then back through the layers
        gradient = self.dvalues[-1]
        np.subtract(self.probabilities, self.onehot, out=gradient)
        np.multiply(gradient, 1 / len(gradient), out=gradient)
        for index in range(len(self.weights) - 1, -1, -1):
            below = self.inputs if index == 0 else self.outputs[index - 1]
            matmul(below.T, gradient, self.dweights[index])
            matmul(self.ones_rows, gradient, self.dbiases[index])
            if index:
                matmul(gradient, self.weights[index].T, self.dvalues[index - 1])
                np.multiply(self.dvalues[index - 1], self.masks[index - 1], out=self.dvalues[index - 1])
                gradient = self.dvalues[index - 1]
        shared.adam()

    def run_compiled(self) -> None:
        """`run` in one compiled call (chainrule.backend.kernels, extra `fast`): the same step, with the
        elementwise work fused into loops, for NumPy arrays."""
        step_kernels.static_step(*self.compiled_arrays, self.shared.adam_arguments())

    def run_with_numpy_products(self) -> None:
        """`run` with NumPy's matrix products (its multithreaded BLAS, faster than Numba's binding
        on large products) and the elementwise work between them in compiled kernels."""
        shared, count = self.shared, len(self.weights)
        hidden = self.inputs
        for index, (weights, biases, output) in enumerate(zip(self.weights, self.biases, self.outputs, strict=True)):
            np.matmul(hidden, weights, out=output)
            step_kernels.add_biases(output, biases, index < count - 1)
            hidden = output
        gradient, sums = self.dvalues[-1], (shared.loss_total, shared.correct)
        step_kernels.score_and_gradient(hidden, self.labels, gradient, *sums, *shared.loss_bounds)
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
        return (self.inputs, self.labels, *layers, tuple(self.outputs), tuple(self.dvalues))

    @functools.cached_property
    def compiled_arrays(self) -> tuple:
        """`step_kernels.static_step`'s arguments but Adam's, which stay the same from step to step."""
        shared = self.shared
        return (*self.kernel_buffers, shared.loss_total, shared.correct, *shared.loss_bounds, shared.adam_buffers)

    def loss_and_hits(self, logits: np.ndarray) -> None:
        """Softmax into `probabilities`; add the batch's summed cross-entropy and its correct
        predictions to the shared sums."""
        matmul, shared = self.shared.matmul, self.shared
        # The row maximum as a chain of elementwise maxima over the columns: a reduction kernel
        # may take scratch memory, which a captured step must not.
        np.maximum(logits[:, :1], logits[:, -1:], out=self.row_max)
        for column in range(1, logits.shape[1] - 1):
            np.maximum(self.row_max, logits[:, column : column + 1], out=self.row_max)
        np.subtract(logits, self.row_max, out=self.probabilities)
        np.exp(self.probabilities, out=self.probabilities)
        matmul(self.probabilities, self.ones_classes, self.row_sum)
        np.divide(self.probabilities, self.row_sum, out=self.probabilities)
        np.equal(self.labels[:, None], self.class_row, out=self.onehot)
        np.multiply(self.probabilities, self.onehot, out=self.products)
        matmul(self.products, self.ones_classes, self.picked)
        np.clip(self.picked, self.clip, 1 - self.clip, out=self.picked)
        np.log(self.picked, out=self.picked)
        matmul(self.ones_rows, self.picked, self.batch_sum)
        np.subtract(shared.loss_total, self.batch_sum, out=shared.loss_total)
        # The prediction is the first column holding the row's maximum (as argmax): count the
        # maxima to the left of each column with a product by a strictly upper-triangular matrix.
        np.greater_equal(logits, self.row_max, out=self.maxima)
        matmul(self.maxima, self.before, self.maxima_before)
        np.equal(self.maxima_before, 0, out=self.products)
        np.multiply(self.products, self.maxima, out=self.products)
        np.multiply(self.products, self.onehot, out=self.products)
        matmul(self.products, self.ones_classes, self.hits)
        matmul(self.ones_rows, self.hits, self.batch_sum)
        np.add(shared.correct, self.batch_sum, out=shared.correct)
