"""Train a small network on spiral data with the engine alone: forward, backward, update.

This is the loop the Model runs for you, written out so each step of backpropagation is visible.
Run it with `python examples/spiral_by_hand.py`.
"""

import chainrule as cr

X, y = cr.datasets.spiral_data(samples=100, classes=3, seed=0)

dense1 = cr.Dense(2, 64, seed=1)
activation1 = cr.ReLU()
dense2 = cr.Dense(64, 3, seed=2)
loss_activation = cr.SoftmaxCategoricalCrossentropy()
learning_rate = 1.0

for epoch in range(2001):
    # Forward: each output feeds the next layer.
    activation1.forward(dense1.forward(X))
    loss = loss_activation.forward(dense2.forward(activation1.output), y)

    # Backward: each layer turns dLoss/dOutput into dLoss/dInputs (the chain rule).
    loss_activation.backward(loss_activation.output, y)
    dense2.backward(loss_activation.dinputs)
    activation1.backward(dense2.dinputs)
    dense1.backward(activation1.dinputs)

    # Update: a plain gradient-descent step on every parameter.
    for layer in (dense1, dense2):
        layer.weights -= learning_rate * layer.dweights
        layer.biases -= learning_rate * layer.dbiases

    if epoch % 200 == 0:
        accuracy = (loss_activation.output.argmax(axis=1) == y).mean()
        print(f"epoch {epoch:5d}  loss {loss:.4f}  accuracy {accuracy:.3f}")
