"""The learner's baseline: the seed notebooks' style in float64, softmax backward by per-sample
Jacobians, separate loss and softmax backward passes, and the book's Adam."""

from __future__ import annotations

import time

import numpy as np

from benchmarks.workloads import Workload


class LayerDense:
    def __init__(self, n_inputs, n_neurons, rng):
        self.weights = 0.01 * rng.standard_normal((n_inputs, n_neurons))
        self.biases = np.zeros((1, n_neurons))

    def forward(self, inputs):
        self.inputs = inputs
        self.output = np.dot(inputs, self.weights) + self.biases

    def backward(self, dvalues):
        self.dweights = np.dot(self.inputs.T, dvalues)
        self.dbiases = np.sum(dvalues, axis=0, keepdims=True)
        self.dinputs = np.dot(dvalues, self.weights.T)


class ActivationReLU:
    def forward(self, inputs):
        self.inputs = inputs
        self.output = np.maximum(0, inputs)

    def backward(self, dvalues):
        self.dinputs = dvalues.copy()
        self.dinputs[self.inputs <= 0] = 0


class ActivationSoftmax:
    def forward(self, inputs):
        exp_values = np.exp(inputs - np.max(inputs, axis=1, keepdims=True))
        self.output = exp_values / np.sum(exp_values, axis=1, keepdims=True)

    def backward(self, dvalues):
        self.dinputs = np.empty_like(dvalues)
        for index, (single_output, single_dvalues) in enumerate(zip(self.output, dvalues, strict=True)):
            single_output = single_output.reshape(-1, 1)
            jacobian = np.diagflat(single_output) - np.dot(single_output, single_output.T)
            self.dinputs[index] = np.dot(jacobian, single_dvalues)


class LossCategoricalCrossentropy:
    def calculate(self, y_pred, y_true):
        clipped = np.clip(y_pred, 1e-7, 1 - 1e-7)
        return np.mean(-np.log(clipped[range(len(y_pred)), y_true]))

    def backward(self, dvalues, y_true):
        samples, labels = len(dvalues), len(dvalues[0])
        y_true = np.eye(labels)[y_true]
        self.dinputs = -y_true / dvalues / samples


class OptimizerAdam:
    def __init__(self, learning_rate, decay, epsilon=1e-7, beta_1=0.9, beta_2=0.999):
        self.learning_rate = self.current_learning_rate = learning_rate
        self.decay, self.epsilon, self.beta_1, self.beta_2 = decay, epsilon, beta_1, beta_2
        self.iterations = 0

    def update_params(self, layer):
        if not hasattr(layer, "weight_cache"):
            layer.weight_momentums = np.zeros_like(layer.weights)
            layer.weight_cache = np.zeros_like(layer.weights)
            layer.bias_momentums = np.zeros_like(layer.biases)
            layer.bias_cache = np.zeros_like(layer.biases)
        self.current_learning_rate = self.learning_rate / (1.0 + self.decay * self.iterations)
        t = self.iterations + 1
        layer.weight_momentums = self.beta_1 * layer.weight_momentums + (1 - self.beta_1) * layer.dweights
        layer.bias_momentums = self.beta_1 * layer.bias_momentums + (1 - self.beta_1) * layer.dbiases
        weight_momentums_corrected = layer.weight_momentums / (1 - self.beta_1**t)
        bias_momentums_corrected = layer.bias_momentums / (1 - self.beta_1**t)
        layer.weight_cache = self.beta_2 * layer.weight_cache + (1 - self.beta_2) * layer.dweights**2
        layer.bias_cache = self.beta_2 * layer.bias_cache + (1 - self.beta_2) * layer.dbiases**2
        weight_cache_corrected = layer.weight_cache / (1 - self.beta_2**t)
        bias_cache_corrected = layer.bias_cache / (1 - self.beta_2**t)
        layer.weights += (
            -self.current_learning_rate * weight_momentums_corrected / (np.sqrt(weight_cache_corrected) + self.epsilon)
        )
        layer.biases += (
            -self.current_learning_rate * bias_momentums_corrected / (np.sqrt(bias_cache_corrected) + self.epsilon)
        )


def forward(dense, relus, softmax, inputs):
    """Dense -> ReLU for each hidden layer, then Dense -> softmax; the result is softmax.output."""
    output = inputs
    for layer, relu in zip(dense[:-1], relus, strict=True):
        layer.forward(output)
        relu.forward(layer.output)
        output = relu.output
    dense[-1].forward(output)
    softmax.forward(dense[-1].output)


def run(workload: Workload, X: np.ndarray, y: np.ndarray, checkpoint) -> dict:
    rng = np.random.default_rng(workload.seed)
    X = X.astype(np.float64)
    dense = [LayerDense(a, b, rng) for a, b in zip(workload.sizes, workload.sizes[1:], strict=False)]
    relus = [ActivationReLU() for _ in dense[:-1]]
    softmax, loss, optimizer = (
        ActivationSoftmax(),
        LossCategoricalCrossentropy(),
        OptimizerAdam(workload.learning_rate, workload.decay),
    )
    size = workload.batch_size or len(X)
    start = time.perf_counter()
    for epoch in range(workload.epochs):
        order = rng.permutation(len(X)) if workload.batch_size else np.arange(len(X))
        for begin in range(0, len(X), size):
            rows = order[begin : begin + size]
            forward(dense, relus, softmax, X[rows])
            loss.calculate(softmax.output, y[rows])
            loss.backward(softmax.output, y[rows])
            softmax.backward(loss.dinputs)
            dvalues = softmax.dinputs
            for index in range(len(dense) - 1, -1, -1):
                dense[index].backward(dvalues)
                dvalues = dense[index].dinputs
                if index:
                    relus[index - 1].backward(dvalues)
                    dvalues = relus[index - 1].dinputs
            for layer in dense:
                optimizer.update_params(layer)
            optimizer.iterations += 1
        if epoch == workload.epochs // 2:
            checkpoint()
    seconds = time.perf_counter() - start
    checkpoint()
    forward(dense, relus, softmax, X)
    return {
        "seconds": seconds,
        "loss": float(loss.calculate(softmax.output, y)),
        "accuracy": float(np.mean(softmax.output.argmax(axis=1) == y)),
    }
