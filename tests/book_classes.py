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


class Layer_Dense_With_Randn(Layer_Dense):
    """Initialised as the book does, from NumPy's global generator: float32 after nnfs.init()."""

    def __init__(self, n_inputs, n_neurons):
        self.weights = 0.01 * np.random.randn(n_inputs, n_neurons)
        self.biases = np.zeros((1, n_neurons))


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
        if len(y_true.shape) == 1:
            correct_confidences = y_pred_clipped[range(samples), y_true]
        elif len(y_true.shape) == 2:
            correct_confidences = np.sum(y_pred_clipped * y_true, axis=1)
        return -np.log(correct_confidences)

    def backward(self, dvalues, y_true):
        samples = len(dvalues)
        labels = len(dvalues[0])
        if len(y_true.shape) == 1:
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


# -- more of the book's classes, as chapters 9 to 18 write them ------------------------------------


class Layer_Dense_Regularized(Layer_Dense):
    """Chapter 14's Dense: L1 and L2 penalties on weights and biases; biases start at zero."""

    def __init__(self, n_inputs, n_neurons, l1=0.0, l2=0.0, bias_l1=0.0, bias_l2=0.0, seed=0):
        self.weights = 0.01 * np.random.default_rng(seed).standard_normal((n_inputs, n_neurons))
        self.biases = np.zeros((1, n_neurons))
        self.weight_regularizer_l1, self.weight_regularizer_l2 = l1, l2
        self.bias_regularizer_l1, self.bias_regularizer_l2 = bias_l1, bias_l2

    def backward(self, dvalues):
        self.dweights = np.dot(self.inputs.T, dvalues)
        self.dbiases = np.sum(dvalues, axis=0, keepdims=True)
        if self.weight_regularizer_l1 > 0:
            dL1 = np.ones_like(self.weights)
            dL1[self.weights < 0] = -1
            self.dweights += self.weight_regularizer_l1 * dL1
        if self.weight_regularizer_l2 > 0:
            self.dweights += 2 * self.weight_regularizer_l2 * self.weights
        if self.bias_regularizer_l1 > 0:
            dL1 = np.ones_like(self.biases)
            dL1[self.biases < 0] = -1
            self.dbiases += self.bias_regularizer_l1 * dL1
        if self.bias_regularizer_l2 > 0:
            self.dbiases += 2 * self.bias_regularizer_l2 * self.biases
        self.dinputs = np.dot(dvalues, self.weights.T)


class Activation_Sigmoid:
    def forward(self, inputs):
        self.inputs = inputs
        self.output = 1 / (1 + np.exp(-inputs))

    def backward(self, dvalues):
        self.dinputs = dvalues * (1 - self.output) * self.output


class Activation_Tanh:
    def forward(self, inputs):
        self.inputs = inputs
        self.output = np.tanh(inputs)

    def backward(self, dvalues):
        self.dinputs = dvalues * (1 - self.output**2)


class Activation_Linear:
    def forward(self, inputs):
        self.inputs = inputs
        self.output = inputs

    def backward(self, dvalues):
        self.dinputs = dvalues.copy()


class Rectifier(Activation_ReLU):
    """ReLU under a name that does not say so."""


class Layer_Dropout:
    def __init__(self, rate):
        self.rate = 1 - rate

    def forward(self, inputs, training):
        self.inputs = inputs
        if not training:
            self.output = inputs.copy()
            return
        self.binary_mask = np.random.binomial(1, self.rate, size=inputs.shape) / self.rate
        self.output = inputs * self.binary_mask

    def backward(self, dvalues):
        self.dinputs = dvalues * self.binary_mask


class DropoutWithItsOwnGenerator(Layer_Dropout):
    def __init__(self, rate):
        super().__init__(rate)
        self.rng = np.random.default_rng(3)

    def forward(self, inputs, training):
        self.inputs = inputs
        self.binary_mask = self.rng.binomial(1, self.rate, size=inputs.shape) / self.rate
        self.output = inputs * self.binary_mask


class Loss_BinaryCrossentropy:
    def forward(self, y_pred, y_true):
        y_pred_clipped = np.clip(y_pred, 1e-7, 1 - 1e-7)
        sample_losses = -(y_true * np.log(y_pred_clipped) + (1 - y_true) * np.log(1 - y_pred_clipped))
        return np.mean(sample_losses, axis=-1)

    def backward(self, dvalues, y_true):
        samples = len(dvalues)
        outputs = len(dvalues[0])
        clipped_dvalues = np.clip(dvalues, 1e-7, 1 - 1e-7)
        self.dinputs = -(y_true / clipped_dvalues - (1 - y_true) / (1 - clipped_dvalues)) / outputs
        self.dinputs = self.dinputs / samples


class Loss_MeanSquaredError:
    def forward(self, y_pred, y_true):
        return np.mean((y_true - y_pred) ** 2, axis=-1)

    def backward(self, dvalues, y_true):
        samples = len(dvalues)
        outputs = len(dvalues[0])
        self.dinputs = -2 * (y_true - dvalues) / outputs
        self.dinputs = self.dinputs / samples


class Loss_MeanAbsoluteError:
    def forward(self, y_pred, y_true):
        return np.mean(np.abs(y_true - y_pred), axis=-1)

    def backward(self, dvalues, y_true):
        samples = len(dvalues)
        outputs = len(dvalues[0])
        self.dinputs = np.sign(y_true - dvalues) / outputs
        self.dinputs = -self.dinputs / samples


# -- slips on the classes above, one line each (SLIP) ----------------------------------------------


class DenseWithAMisspeltDweights(Layer_Dense):
    def backward(self, dvalues):
        self.dweight = np.dot(self.inputs.T, dvalues)  # SLIP: dweight
        self.dbiases = np.sum(dvalues, axis=0, keepdims=True)
        self.dinputs = np.dot(dvalues, self.weights.T)


class DenseForgettingDbiases(Layer_Dense):
    def backward(self, dvalues):
        self.dweights = np.dot(self.inputs.T, dvalues)
        self.dinputs = np.dot(dvalues, self.weights.T)  # SLIP: no dbiases


class DenseTransposingDvalues(Layer_Dense):
    def backward(self, dvalues):
        super().backward(dvalues)
        self.dweights = np.dot(dvalues.T, self.inputs)  # SLIP: the .T on dvalues


class DenseWithoutKeepdims(Layer_Dense):
    def backward(self, dvalues):
        super().backward(dvalues)
        self.dbiases = np.sum(dvalues, axis=0)  # SLIP: no keepdims


class DenseAveragingDbiases(Layer_Dense):
    def backward(self, dvalues):
        super().backward(dvalues)
        self.dbiases = np.mean(dvalues, axis=0, keepdims=True)  # SLIP: a mean


class DenseWithNaNDinputs(Layer_Dense):
    def backward(self, dvalues):
        super().backward(dvalues)
        self.dinputs = np.full_like(self.dinputs, np.nan)  # SLIP: NaN


class DenseWithNaNDweights(Layer_Dense):
    def backward(self, dvalues):
        super().backward(dvalues)
        self.dweights = self.dweights * np.nan  # SLIP: NaN


class DenseWithFlippedDinputs(Layer_Dense):
    def backward(self, dvalues):
        super().backward(dvalues)
        self.dinputs = -np.dot(dvalues, self.weights.T)  # SLIP: a minus


class DenseWithL2WithoutTheTwo(Layer_Dense_Regularized):
    def backward(self, dvalues):
        super().backward(dvalues)
        self.dweights -= self.weight_regularizer_l2 * self.weights  # SLIP: l2 * w, not 2 * l2 * w


class DenseWithL1SignsFlipped(Layer_Dense_Regularized):
    def backward(self, dvalues):
        super().backward(dvalues)
        self.dweights -= 2 * self.weight_regularizer_l1 * np.sign(self.weights)  # SLIP: -l1 * sign(w)


class ReLUWithoutCopy(Activation_ReLU):
    def backward(self, dvalues):
        self.dinputs = dvalues  # SLIP: no .copy()
        self.dinputs[self.inputs <= 0] = 0


class ReLUFromOutputs(Activation_ReLU):
    def backward(self, dvalues):
        self.dinputs = self.output.copy()  # SLIP: the outputs, not dvalues
        self.dinputs[self.inputs <= 0] = 0


class ReLUZeroingInputsInPlace(Activation_ReLU):
    def forward(self, inputs):
        self.inputs = inputs.copy()
        inputs[inputs < 0] = 0  # SLIP: writes into the inputs
        self.output = inputs


class ReLUWithTheMaskInverted(Activation_ReLU):
    def backward(self, dvalues):
        self.dinputs = dvalues.copy()
        self.dinputs[self.inputs > 0] = 0  # SLIP: > instead of <=


class SoftmaxWithoutTheMaximum(Activation_Softmax):
    def forward(self, inputs):
        self.inputs = inputs
        exp_values = np.exp(inputs)  # SLIP: no row maximum subtracted
        self.output = exp_values / np.sum(exp_values, axis=1, keepdims=True)


class SoftmaxWithTheJacobianReversed(Activation_Softmax):
    def backward(self, dvalues):
        self.dinputs = np.empty_like(dvalues)
        for index, (single_output, single_dvalues) in enumerate(zip(self.output, dvalues, strict=True)):
            single_output = single_output.reshape(-1, 1)
            jacobian_matrix = np.dot(single_output, single_output.T) - np.diagflat(single_output)  # SLIP: reversed
            self.dinputs[index] = np.dot(jacobian_matrix, single_dvalues)


class SoftmaxPassingDvaluesThrough(Activation_Softmax):
    def backward(self, dvalues):
        self.dinputs = dvalues.copy()  # SLIP: no Jacobian


class SigmoidWithoutOneMinus(Activation_Sigmoid):
    def backward(self, dvalues):
        self.dinputs = dvalues * self.output  # SLIP: no (1 - output)


class SigmoidWithoutTheOutput(Activation_Sigmoid):
    def backward(self, dvalues):
        self.dinputs = dvalues * (1 - self.output)  # SLIP: no * output


class TanhWithoutTheSquare(Activation_Tanh):
    def backward(self, dvalues):
        self.dinputs = dvalues * (1 - self.output)  # SLIP: 1 - output, not 1 - output ** 2


class CrossentropyDividedTwice(Loss_CategoricalCrossentropy):
    def backward(self, dvalues, y_true):
        super().backward(dvalues, y_true)
        self.dinputs = self.dinputs / len(dvalues)  # SLIP: a second division


class CrossentropyWithoutTheMinus(Loss_CategoricalCrossentropy):
    def backward(self, dvalues, y_true):
        super().backward(dvalues, y_true)
        self.dinputs = -self.dinputs  # SLIP: y_true / dvalues


class CrossentropyWithoutClipping(Loss_CategoricalCrossentropy):
    def forward(self, y_pred, y_true):
        return -np.log(y_pred[range(len(y_pred)), y_true])  # SLIP: no np.clip


class FusedNotDividedBySamples(Activation_Softmax_Loss_CategoricalCrossentropy):
    def backward(self, dvalues, y_true):
        super().backward(dvalues, y_true)
        self.dinputs = self.dinputs * len(dvalues)  # SLIP: no division


class FusedWithoutCopy(Activation_Softmax_Loss_CategoricalCrossentropy):
    def backward(self, dvalues, y_true):
        samples = len(dvalues)
        self.dinputs = dvalues  # SLIP: no .copy(): the probabilities change
        self.dinputs[range(samples), y_true] -= 1
        self.dinputs = self.dinputs / samples


class FusedSubtractingEverywhere(Activation_Softmax_Loss_CategoricalCrossentropy):
    def backward(self, dvalues, y_true):
        samples = len(dvalues)
        self.dinputs = dvalues.copy()
        self.dinputs -= 1  # SLIP: from every class, not the true one
        self.dinputs = self.dinputs / samples


class BinaryCrossentropyWithoutOutputs(Loss_BinaryCrossentropy):
    def backward(self, dvalues, y_true):
        super().backward(dvalues, y_true)
        self.dinputs = self.dinputs * len(dvalues[0])  # SLIP: no division by the outputs


class BinaryCrossentropyWithTheSignFlipped(Loss_BinaryCrossentropy):
    def backward(self, dvalues, y_true):
        super().backward(dvalues, y_true)
        self.dinputs = -self.dinputs  # SLIP: the leading minus dropped


class MeanSquaredErrorWithoutOutputs(Loss_MeanSquaredError):
    def backward(self, dvalues, y_true):
        super().backward(dvalues, y_true)
        self.dinputs = self.dinputs * len(dvalues[0])  # SLIP: no division by the outputs


class MeanSquaredErrorWithoutTheTwo(Loss_MeanSquaredError):
    def backward(self, dvalues, y_true):
        super().backward(dvalues, y_true)
        self.dinputs = self.dinputs / 2  # SLIP: -(y - y_hat), not -2 (y - y_hat)


class MeanSquaredErrorWithTheSignFlipped(Loss_MeanSquaredError):
    def backward(self, dvalues, y_true):
        super().backward(dvalues, y_true)
        self.dinputs = -self.dinputs  # SLIP: 2 (y - y_hat)


class MeanAbsoluteErrorWithTheSignFlipped(Loss_MeanAbsoluteError):
    def backward(self, dvalues, y_true):
        super().backward(dvalues, y_true)
        self.dinputs = -self.dinputs  # SLIP: sign(y - y_hat) without the minus


class DropoutRedrawingInBackward(Layer_Dropout):
    def backward(self, dvalues):
        mask = np.random.binomial(1, self.rate, size=dvalues.shape) / self.rate  # SLIP: a new mask
        self.dinputs = dvalues * mask


class DropoutNotScaled(Layer_Dropout):
    def forward(self, inputs, training):
        self.inputs = inputs
        self.binary_mask = np.random.binomial(1, self.rate, size=inputs.shape)  # SLIP: no / self.rate
        self.output = inputs * self.binary_mask


class DropoutWithoutTheMaskInBackward(Layer_Dropout):
    def backward(self, dvalues):
        self.dinputs = dvalues.copy()  # SLIP: no mask


class DropoutWithAFreshGenerator(Layer_Dropout):
    def forward(self, inputs, training):
        self.inputs = inputs
        rng = np.random.default_rng()  # SLIP: a new, unseeded generator on every call
        self.binary_mask = rng.binomial(1, self.rate, size=inputs.shape) / self.rate
        self.output = inputs * self.binary_mask


# -- the book's optimizers (chapter 10), and their slips ---------------------------------------------


class Optimizer_SGD:
    def __init__(self, learning_rate=1.0, decay=0.0, momentum=0.0):
        self.learning_rate = learning_rate
        self.current_learning_rate = learning_rate
        self.decay = decay
        self.iterations = 0
        self.momentum = momentum

    def pre_update_params(self):
        if self.decay:
            self.current_learning_rate = self.learning_rate * (1.0 / (1.0 + self.decay * self.iterations))

    def update_params(self, layer):
        if self.momentum:
            if not hasattr(layer, "weight_momentums"):
                layer.weight_momentums = np.zeros_like(layer.weights)
                layer.bias_momentums = np.zeros_like(layer.biases)
            weight_updates = self.momentum * layer.weight_momentums - self.current_learning_rate * layer.dweights
            layer.weight_momentums = weight_updates
            bias_updates = self.momentum * layer.bias_momentums - self.current_learning_rate * layer.dbiases
            layer.bias_momentums = bias_updates
        else:
            weight_updates = -self.current_learning_rate * layer.dweights
            bias_updates = -self.current_learning_rate * layer.dbiases
        layer.weights += weight_updates
        layer.biases += bias_updates

    def post_update_params(self):
        self.iterations += 1


class Optimizer_Adagrad(Optimizer_SGD):
    def __init__(self, learning_rate=1.0, decay=0.0, epsilon=1e-7):
        super().__init__(learning_rate, decay)
        self.epsilon = epsilon

    def update_params(self, layer):
        if not hasattr(layer, "weight_cache"):
            layer.weight_cache = np.zeros_like(layer.weights)
            layer.bias_cache = np.zeros_like(layer.biases)
        layer.weight_cache += layer.dweights**2
        layer.bias_cache += layer.dbiases**2
        layer.weights += -self.current_learning_rate * layer.dweights / (np.sqrt(layer.weight_cache) + self.epsilon)
        layer.biases += -self.current_learning_rate * layer.dbiases / (np.sqrt(layer.bias_cache) + self.epsilon)


class Optimizer_RMSprop(Optimizer_SGD):
    def __init__(self, learning_rate=0.001, decay=0.0, epsilon=1e-7, rho=0.9):
        super().__init__(learning_rate, decay)
        self.epsilon = epsilon
        self.rho = rho

    def update_params(self, layer):
        if not hasattr(layer, "weight_cache"):
            layer.weight_cache = np.zeros_like(layer.weights)
            layer.bias_cache = np.zeros_like(layer.biases)
        layer.weight_cache = self.rho * layer.weight_cache + (1 - self.rho) * layer.dweights**2
        layer.bias_cache = self.rho * layer.bias_cache + (1 - self.rho) * layer.dbiases**2
        layer.weights += -self.current_learning_rate * layer.dweights / (np.sqrt(layer.weight_cache) + self.epsilon)
        layer.biases += -self.current_learning_rate * layer.dbiases / (np.sqrt(layer.bias_cache) + self.epsilon)


class Optimizer_Adam(Optimizer_SGD):
    def __init__(self, learning_rate=0.001, decay=0.0, epsilon=1e-7, beta_1=0.9, beta_2=0.999):
        super().__init__(learning_rate, decay)
        self.epsilon = epsilon
        self.beta_1 = beta_1
        self.beta_2 = beta_2

    def corrections(self):
        return 1 - self.beta_1 ** (self.iterations + 1), 1 - self.beta_2 ** (self.iterations + 1)

    def update_params(self, layer):
        if not hasattr(layer, "weight_cache"):
            layer.weight_momentums = np.zeros_like(layer.weights)
            layer.weight_cache = np.zeros_like(layer.weights)
            layer.bias_momentums = np.zeros_like(layer.biases)
            layer.bias_cache = np.zeros_like(layer.biases)
        layer.weight_momentums = self.beta_1 * layer.weight_momentums + (1 - self.beta_1) * layer.dweights
        layer.bias_momentums = self.beta_1 * layer.bias_momentums + (1 - self.beta_1) * layer.dbiases
        first, second = self.corrections()
        weight_momentums_corrected = layer.weight_momentums / first
        bias_momentums_corrected = layer.bias_momentums / first
        layer.weight_cache = self.beta_2 * layer.weight_cache + (1 - self.beta_2) * layer.dweights**2
        layer.bias_cache = self.beta_2 * layer.bias_cache + (1 - self.beta_2) * layer.dbiases**2
        weight_cache_corrected = layer.weight_cache / second
        bias_cache_corrected = layer.bias_cache / second
        layer.weights += self.step(weight_momentums_corrected, weight_cache_corrected)
        layer.biases += self.step(bias_momentums_corrected, bias_cache_corrected)

    def step(self, momentums_corrected, cache_corrected):
        return -self.current_learning_rate * momentums_corrected / (np.sqrt(cache_corrected) + self.epsilon)


class AdamCorrectedOneStepAhead(Optimizer_Adam):
    def corrections(self):
        return 1 - self.beta_1 ** (self.iterations + 2), 1 - self.beta_2 ** (self.iterations + 2)  # SLIP: + 2


class AdamWithEpsilonInsideTheRoot(Optimizer_Adam):
    def step(self, momentums_corrected, cache_corrected):
        return -self.current_learning_rate * momentums_corrected / np.sqrt(cache_corrected + self.epsilon)  # SLIP


class SGDWithMomentumSignFlipped(Optimizer_SGD):
    def update_params(self, layer):
        if not hasattr(layer, "weight_momentums"):
            layer.weight_momentums = np.zeros_like(layer.weights)
            layer.bias_momentums = np.zeros_like(layer.biases)
        weight_updates = self.momentum * layer.weight_momentums + self.current_learning_rate * layer.dweights  # SLIP
        layer.weight_momentums = weight_updates
        bias_updates = self.momentum * layer.bias_momentums - self.current_learning_rate * layer.dbiases
        layer.bias_momentums = bias_updates
        layer.weights += weight_updates
        layer.biases += bias_updates


class SGDDecayingWithTheNextIteration(Optimizer_SGD):
    def pre_update_params(self):
        self.current_learning_rate = self.learning_rate * (1.0 / (1.0 + self.decay * (self.iterations + 1)))  # SLIP
