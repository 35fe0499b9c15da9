"""Layers written as a learner writes them, shared by the tests of the layer contract."""

import numpy as np
from book_classes import Layer_Dense

import chainrule as cr


class Scale(cr.Layer):
    """y = x * gamma + beta, feature by feature; backward assigns fresh gradient arrays, as the book's do."""

    def __init__(self, n_features, seed=0):
        super().__init__(dtype=np.float64)
        self.n_features = n_features
        rng = np.random.default_rng(seed)
        self.gamma = rng.uniform(0.5, 1.5, (1, n_features))
        self.beta = rng.uniform(-0.5, 0.5, (1, n_features))

    def forward(self, inputs, training=False):
        self.inputs = inputs
        self.output = inputs * self.gamma + self.beta

    def backward(self, dvalues):
        self.dgamma = np.sum(dvalues * self.inputs, axis=0, keepdims=True)
        self.dbeta = np.sum(dvalues, axis=0, keepdims=True)
        self.dinputs = dvalues * self.gamma

    def parameters(self):
        return {"gamma": self.gamma, "beta": self.beta}

    def gradients(self):
        return {"gamma": self.dgamma, "beta": self.dbeta}

    def get_config(self):
        return {"n_features": self.n_features}


class Swish(cr.Layer):
    """x * sigmoid(x), with no parameters: overrides forward/backward and nothing else."""

    def forward(self, inputs, training=False):
        self.inputs = inputs
        self.sigmoid = 1 / (1 + np.exp(-inputs))
        self.output = inputs * self.sigmoid
        return self.output

    def backward(self, dvalues):
        self.dinputs = dvalues * (self.sigmoid + self.output * (1 - self.sigmoid))
        return self.dinputs


class BookDense(Layer_Dense, cr.Layer):
    """The book's Layer_Dense, mixed into cr.Layer as a learner would: no widths declared, only
    the parameters named."""

    def __init__(self, n_inputs, n_neurons):
        Layer_Dense.__init__(self, n_inputs, n_neurons, seed=n_inputs)
        cr.Layer.__init__(self, dtype=np.float64)

    def parameters(self):
        return {"weights": self.weights, "biases": self.biases}

    def gradients(self):
        return {"weights": self.dweights, "biases": self.dbiases}
