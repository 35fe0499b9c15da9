"""PyTorch: the same network, initialisation scale, optimizer and schedule.

`run` is eager PyTorch on the CPU (or on a GPU, `run_cuda`); `run_cuda_graph` captures the whole
training step in one CUDA graph and replays it, the fastest way PyTorch has to train a small
network on a GPU.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.workloads import Workload


def build(workload: Workload) -> torch.nn.Sequential:
    torch.manual_seed(workload.seed)
    layers: list[torch.nn.Module] = []
    for in_channels, filters, kernel in workload.convolutions:  # PyTorch's default initialisation
        layers += [torch.nn.Conv2d(in_channels, filters, kernel), torch.nn.ReLU(), torch.nn.MaxPool2d(2)]
    if workload.convolutions:
        layers.append(torch.nn.Flatten())
    for index, (n_inputs, n_neurons) in enumerate(zip(workload.sizes, workload.sizes[1:], strict=False)):
        linear = torch.nn.Linear(n_inputs, n_neurons)
        with torch.no_grad():
            linear.weight.normal_(0.0, 0.01)
            linear.bias.zero_()
        layers.append(linear)
        if index < len(workload.sizes) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def run(
    workload: Workload, X: np.ndarray, y: np.ndarray, checkpoint, *, fused: bool = False, device: str = "cpu"
) -> dict:
    """Eager PyTorch; `fused` uses Adam's fused implementation (one kernel for all parameters)."""
    torch.set_num_threads(2)
    model = build(workload).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=workload.learning_rate, eps=1e-7, fused=fused or None)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 / (1.0 + workload.decay * step))
    if X.ndim == 4:  # PyTorch's convolutions take channels-first images
        X = np.ascontiguousarray(X.transpose(0, 3, 1, 2))
    features, labels = torch.from_numpy(X).to(device), torch.from_numpy(y).to(device)
    generator = torch.Generator().manual_seed(workload.seed)
    size = workload.batch_size or len(X)
    start = time.perf_counter()
    for epoch in range(workload.epochs):
        order = torch.randperm(len(X), generator=generator).to(device) if workload.batch_size else None
        for begin in range(0, len(X), size):
            if order is None:
                batch_x, batch_y = features, labels
            else:
                rows = order[begin : begin + size]
                batch_x, batch_y = features[rows], labels[rows]
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(batch_x), batch_y)
            loss.backward()
            optimizer.step()
            schedule.step()
        if epoch == workload.epochs // 2:
            checkpoint()
    return finished(model, features, labels, start, device, checkpoint)


def finished(
    model: torch.nn.Module, features: torch.Tensor, labels: torch.Tensor, start: float, device: str, checkpoint
) -> dict:
    """The time since `start` (once the GPU is done), then the loss and accuracy on all the data."""
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    checkpoint()
    return evaluated(model, features, labels, seconds)


def evaluated(model: torch.nn.Module, features: torch.Tensor, labels: torch.Tensor, seconds: float) -> dict:
    with torch.no_grad():
        logits = model(features)
        return {
            "seconds": seconds,
            "loss": float(F.cross_entropy(logits, labels)),
            "accuracy": float((logits.argmax(dim=1) == labels).float().mean()),
        }


def run_fused(workload: Workload, X: np.ndarray, y: np.ndarray, checkpoint) -> dict:
    return run(workload, X, y, checkpoint, fused=True)


def run_cuda(workload: Workload, X: np.ndarray, y: np.ndarray, checkpoint) -> dict:
    return run(workload, X, y, checkpoint, device="cuda")


def run_cuda_fused(workload: Workload, X: np.ndarray, y: np.ndarray, checkpoint) -> dict:
    return run(workload, X, y, checkpoint, fused=True, device="cuda")


def run_cuda_graph(workload: Workload, X: np.ndarray, y: np.ndarray, checkpoint) -> dict:
    """The whole step (forward, backward, Adam with the learning rate as a device tensor) captured
    once and replayed per full-size batch; a shorter last batch runs eagerly. The capture follows
    PyTorch's recipe: three warm-up steps on a side stream first (they train too)."""
    device = "cuda"
    model = build(workload).to(device)
    learning_rate = torch.tensor(workload.learning_rate, device=device)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate, eps=1e-7, capturable=True)
    features, labels = torch.from_numpy(X).to(device), torch.from_numpy(y).to(device)
    size = workload.batch_size or len(X)
    static_x, static_y = features[:size].clone(), labels[:size].clone()

    def step(batch_x: torch.Tensor, batch_y: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=False)
        F.cross_entropy(model(batch_x), batch_y).backward()
        optimizer.step()

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            step(static_x, static_y)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step(static_x, static_y)
    generator = torch.Generator().manual_seed(workload.seed)
    iteration = 0
    start = time.perf_counter()
    for epoch in range(workload.epochs):
        order = torch.randperm(len(X), generator=generator).to(device) if workload.batch_size else None
        for begin in range(0, len(X), size):
            learning_rate.fill_(workload.learning_rate / (1.0 + workload.decay * iteration))
            iteration += 1
            rows = None if order is None else order[begin : begin + size]
            if rows is not None and len(rows) < size:
                step(features[rows], labels[rows])
                continue
            if rows is not None:
                torch.index_select(features, 0, rows, out=static_x)
                torch.index_select(labels, 0, rows, out=static_y)
            graph.replay()
        if epoch == workload.epochs // 2:
            checkpoint()
    return finished(model, features, labels, start, device, checkpoint)
