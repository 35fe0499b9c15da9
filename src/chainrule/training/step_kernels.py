"""The compiled whole training step (extra `fast`, Numba): Dense layers with ReLU between them,
Softmax and cross-entropy on class labels, and Adam, in one call per step (`static_step`) or per
several epochs (`static_epochs`).

It computes what `chainrule.training.static_step.StaticStep.run` computes, through the
single-operation kernels of `chainrule.backend.kernels` where they apply.
"""

from __future__ import annotations

import numpy as np

from chainrule.backend.kernels import adam_constants, adam_pass, adam_scalars, compile_kernel

# Small products faster as loops than through BLAS (measured on 300-row batches): a weight
# gradient with up to FEW_PRODUCT_COLUMNS inputs or neurons; a layer's output with up to
# FEW_NEURONS neurons and MODEST_WIDTH inputs.
FEW_PRODUCT_COLUMNS, FEW_NEURONS, MODEST_WIDTH = 8, 4, 128


@compile_kernel()
def _transposed_product(left, right, out):
    """out = left.T @ right as a sum of each row's outer product, for `left` with few columns:
    the inner loop runs along `right`'s rows and vectorises, where a BLAS call spends its time
    packing the operands (300 rows, 2 x 64: 3.5 us against 14.7)."""
    out[:, :] = 0
    for row in range(left.shape[0]):
        for column in range(left.shape[1]):
            value = left[row, column]
            for neuron in range(right.shape[1]):
                out[column, neuron] += value * right[row, neuron]


@compile_kernel()
def _weight_gradient(below, gradient, out):
    """dweights = below.T @ gradient: as loops when either side has few columns, else BLAS."""
    if below.shape[1] <= FEW_PRODUCT_COLUMNS:
        _transposed_product(below, gradient, out)
    elif gradient.shape[1] <= FEW_PRODUCT_COLUMNS:
        transposed = np.empty((out.shape[1], out.shape[0]), out.dtype)
        _transposed_product(gradient, below, transposed)
        out[:, :] = transposed.T
    else:
        np.dot(below.T, gradient, out)


@compile_kernel(fastmath={"reassoc", "contract"})
def _row_dots(below, weights_transposed, out):
    """out = below @ weights_transposed.T, each value a dot product of two contiguous rows, summed
    in any order (`reassoc`, as BLAS does): it vectorises along the rows."""
    for row in range(below.shape[0]):
        for neuron in range(weights_transposed.shape[0]):
            total = below.dtype.type(0)
            for column in range(below.shape[1]):
                total += below[row, column] * weights_transposed[neuron, column]
            out[row, neuron] = total


@compile_kernel()
def _layer_product(below, weights, out):
    """out = below @ weights: as dot products for a few neurons of modest width, else BLAS
    (300 rows, 64 x 3: 4.1 us against 7.7)."""
    if weights.shape[1] <= FEW_NEURONS and weights.shape[0] <= MODEST_WIDTH:
        _row_dots(below, np.ascontiguousarray(weights.T), out)
    else:
        np.dot(below, weights, out)


@compile_kernel()
def add_biases(output, biases, relu):
    """A Dense layer's output in place: + biases, then ReLU where `relu` is True."""
    for row in range(output.shape[0]):
        for column in range(output.shape[1]):
            value = output[row, column] + biases[0, column]
            output[row, column] = value if not relu or value > 0 else 0


@compile_kernel()
def score_and_gradient(logits, labels, gradient, loss_total, correct_total, clip, upper):
    """Softmax of `logits` row by row; the batch's summed cross-entropy of `labels` (probabilities
    kept within [clip, upper]) added to `loss_total[0, 0]` and its correct predictions (the first
    largest logit, as argmax) to `correct_total[0, 0]`; the fused softmax + cross-entropy
    gradient of the mean loss, (p - onehot) / n, written into `gradient`."""
    scale = logits.dtype.type(1 / logits.shape[0])
    loss, correct = 0.0, 0.0
    for row in range(logits.shape[0]):
        best = 0
        for column in range(1, logits.shape[1]):
            if logits[row, column] > logits[row, best]:
                best = column
        largest = logits[row, best]
        total = logits.dtype.type(0)
        for column in range(logits.shape[1]):
            value = np.exp(logits[row, column] - largest)
            gradient[row, column] = value
            total += value
        label = labels[row]
        for column in range(logits.shape[1]):
            gradient[row, column] /= total
        loss -= np.log(min(max(gradient[row, label], clip), upper))
        correct += best == label
        for column in range(logits.shape[1]):
            gradient[row, column] *= scale
        gradient[row, label] -= scale
    loss_total[0, 0] += loss
    correct_total[0, 0] += correct


@compile_kernel()
def bias_gradient(gradient, out):
    """dbiases: the gradient's column sums into `out` (shape (1, n))."""
    for column in range(gradient.shape[1]):
        out[0, column] = 0
    for row in range(gradient.shape[0]):
        for column in range(gradient.shape[1]):
            out[0, column] += gradient[row, column]


@compile_kernel()
def relu_backward(dvalues, inputs):
    """ReLU's backward pass in place: dvalues where the ReLU's output was positive, else 0."""
    for row in range(dvalues.shape[0]):
        for column in range(dvalues.shape[1]):  # a select, not a conditional store: it vectorises
            dvalues[row, column] = dvalues[row, column] if inputs[row, column] > 0 else 0


@compile_kernel()
def adam_step(flat, adam):
    """One Adam update of the flat buffers `flat` = (values, gradients, momentum, cache), with
    `adam` = (iterations, learning rate, decay, beta_1, beta_2, epsilon, epsilon_hat): the
    learning-rate decay and bias corrections from the count in `iterations[0]`, counted up here."""
    values, gradients, momentum, cache = flat
    iterations, learning_rate, decay, beta_1, beta_2, epsilon, epsilon_hat = adam
    rate = learning_rate / (1.0 + decay * iterations[0])
    iterations[0] += 1.0
    step_size, shift = adam_scalars(rate, beta_1, beta_2, epsilon, epsilon_hat, iterations[0])
    adam_pass(values, gradients, momentum, cache, adam_constants(values, beta_1, beta_2, step_size, shift))


@compile_kernel()
def static_step(
    inputs,
    labels,
    weights,
    biases,
    dweights,
    dbiases,
    outputs,
    dvalues,
    loss_total,
    correct_total,
    clip,
    upper,
    flat,
    adam,
):
    """A whole training step of Dense layers with ReLU between them, Softmax and cross-entropy on
    class labels, and Adam: what `static_step.StaticStep.run` computes, in one call.

    `weights`, `biases`, ...: tuples with one array per Dense layer; `loss_total`,
    `correct_total`: the epoch's sums, added to; `clip`, `upper`: the probability's bounds in the
    loss; `flat`, `adam`: as `adam_step` takes them.
    """
    count = len(weights)
    below = inputs
    for layer in range(count):  # forward: Dense, then ReLU (but after the last)
        _layer_product(below, weights[layer], outputs[layer])
        add_biases(outputs[layer], biases[layer], layer < count - 1)
        below = outputs[layer]
    gradient = dvalues[count - 1]
    score_and_gradient(outputs[count - 1], labels, gradient, loss_total, correct_total, clip, upper)
    for layer in range(count - 1, -1, -1):  # backward
        below = inputs if layer == 0 else outputs[layer - 1]
        _weight_gradient(below, gradient, dweights[layer])
        bias_gradient(gradient, dbiases[layer])
        if layer:
            np.dot(gradient, weights[layer].T, dvalues[layer - 1])
            relu_backward(dvalues[layer - 1], below)
            gradient = dvalues[layer - 1]
    adam_step(flat, adam)


@compile_kernel()
def static_epochs(
    inputs,
    labels,
    orders,
    batch_rows,
    full,
    last,
    totals,
    clip,
    upper,
    flat,
    adam,
    epoch_totals,
    good,
    candidate,
):
    """Several epochs of `static_step`s in one call, for a fit nothing observes between epochs.

    `orders`: each epoch's row order (shape (epochs, rows)), or shape (0, rows) for the data's
    own order; `full`, `last`: (inputs, labels, weights, biases, dweights, dbiases, outputs,
    dvalues) of the steps for full batches and for the shorter last one (the same when the
    batches divide the data; a full step's inputs and labels may be `inputs` and `labels`
    themselves, used in place); `totals`: the (1, 1) loss and correct-prediction sums; each
    epoch's pair goes to a row of `epoch_totals`. As `loop.LastFiniteWeights`, `candidate` takes
    the values as an epoch begins and `good` keeps them once that epoch's loss is finite.
    Returns the number of epochs run; the last one run diverged if that is fewer than asked.
    """
    values = flat[0]
    count = inputs.shape[0]
    loss_total, correct_total = totals
    for epoch in range(epoch_totals.shape[0]):
        candidate[:] = values
        loss_total[0, 0] = 0.0
        correct_total[0, 0] = 0.0
        for start in range(0, count, batch_rows):
            rows = min(batch_rows, count - start)
            step = full if rows == batch_rows else last
            step_inputs, step_labels = step[0], step[1]
            if orders.shape[0]:
                for row in range(rows):
                    source = orders[epoch, start + row]
                    step_inputs[row, :] = inputs[source, :]
                    step_labels[row] = labels[source]
            elif rows < count:
                step_inputs[:, :] = inputs[start : start + rows, :]
                step_labels[:] = labels[start : start + rows]
            static_step(step_inputs, step_labels, *step[2:], loss_total, correct_total, clip, upper, flat, adam)
        epoch_totals[epoch, 0] = loss_total[0, 0]
        epoch_totals[epoch, 1] = correct_total[0, 0]
        if not np.isfinite(loss_total[0, 0]):
            return epoch + 1
        good[:] = candidate
    return epoch_totals.shape[0]
