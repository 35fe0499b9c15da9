"""Classes written the way the book writes them, without subclassing chainrule, and the slips learners make.

Each slipped class differs from its correct parent by one line, marked SLIP.
"""

import numpy as np


class Layer_Dense:
    def __init__(self, n_inputs, n_neurons, seed=0):
        self.weights = 0.1 * np.random.default_rng(seed).standard_normal((n_inputs, n_neurons))
        self.biases = 0.1 * np.random.default_rng(seed + 1).standard_normal((1, n_neurons))

    def forward(self, inputs):
        self.inputs = inputs
        self.output = np.dot(inputs, self.weights) + self.biases

    def backward(self, dvalues):
        self.dweights = np.dot(self.inputs.T, dvalues)
        self.dbiases = np.sum(dvalues, axis=0, keepdims=True)
        self.dinputs = np.dot(dvalues, self.weights.T)


class DenseSummingOverNeurons(Layer_Dense):
    def backward(self, dvalues):
        super().backward(dvalues)
        self.dbiases = np.sum(dvalues, axis=1, keepdims=True)  # SLIP: axis=1 (the seed notebook 001)


class DenseWithoutTranspose(Layer_Dense):
    def backward(self, dvalues):
        super().backward(dvalues)
        self.dinputs = np.dot(dvalues, self.weights)  # SLIP: no .T


class DenseWithTypo(Layer_Dense):
    def backward(self, dvalues):
        self.dweighhts = np.dot(self.inputs.T, dvalues)  # SLIP: a misspelt name (the seed notebook 001)
        self.dbiases = np.sum(dvalues, axis=0, keepdims=True)
        self.dinputs = np.dot(dvalues, self.weights.T)


class Activation_ReLU:
    def forward(self, inputs):
        self.inputs = inputs
        self.output = np.maximum(0, inputs)

    def backward(self, dvalues):
        self.dinputs = dvalues.copy()
        self.dinputs[self.inputs <= 0] = 0


class ReLUMaskFromDvalues(Activation_ReLU):
    def backward(self, dvalues):
        self.dinputs = dvalues.copy()
        self.dinputs[dvalues <= 0] = 0  # SLIP: the mask from dvalues


class Activation_Softmax:
    def forward(self, inputs):
        self.inputs = inputs
        exp_values = np.exp(inputs - np.max(inputs, axis=1, keepdims=True))
        self.output = exp_values / np.sum(exp_values, axis=1, keepdims=True)

    def backward(self, dvalues):
        self.dinputs = np.empty_like(dvalues)
        for index, (single_output, single_dvalues) in enumerate(zip(self.output, dvalues, strict=True)):
            single_output = single_output.reshape(-1, 1)
            jacobian_matrix = np.diagflat(single_output) - np.dot(single_output, single_output.T)
            self.dinputs[index] = np.dot(jacobian_matrix, single_dvalues)


class SoftmaxWithDiagonalDerivative(Activation_Softmax):
    def backward(self, dvalues):
        self.dinputs = dvalues * self.output * (1 - self.output)  # SLIP: "softmax * (1 - softmax)" (notebook 001)


class Loss_CategoricalCrossentropy:
    def forward(self, y_pred, y_true):
        samples = len(y_pred)
        y_pred_clipped = np.clip(y_pred, 1e-7, 1 - 1e-7)
        correct_confidences = y_pred_clipped[range(samples), y_true]
        return -np.log(correct_confidences)

    def backward(self, dvalues, y_true):
        samples = len(dvalues)
        labels = len(dvalues[0])
        y_true = np.eye(labels)[y_true]
        self.dinputs = -y_true / dvalues
        self.dinputs = self.dinputs / samples


class CrossentropyNotDividedBySamples(Loss_CategoricalCrossentropy):
    def backward(self, dvalues, y_true):
        super().backward(dvalues, y_true)
        self.dinputs = self.dinputs * len(dvalues)  # SLIP: as if the division were left out


class Activation_Softmax_Loss_CategoricalCrossentropy:
    def __init__(self):
        self.activation = Activation_Softmax()
        self.loss = Loss_CategoricalCrossentropy()

    def forward(self, inputs, y_true):
        self.activation.forward(inputs)
        self.output = self.activation.output
        return np.mean(self.loss.forward(self.output, y_true))

    def backward(self, dvalues, y_true):
        samples = len(dvalues)
        self.dinputs = dvalues.copy()
        self.dinputs[range(samples), y_true] -= 1
        self.dinputs = self.dinputs / samples
