"""The book's engine: the layer contract, layers, activations, losses, optimizers, metrics, input
validation, and the parameter store that keeps every parameter in one flat buffer."""
