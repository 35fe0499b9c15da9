"""Training: Model, the loop and its bookkeeping, callbacks and History, progress output, the
static step and its compiled form, data parallelism, network building, and loading a model from
its file."""
