"""PyTorch eager on the CPU: the same network, initialisation scale, optimizer and schedule."""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.workloads import Workload


def run(workload: Workload, X: np.ndarray, y: np.ndarray, checkpoint, *, fused: bool = False) -> dict:
    """Eager PyTorch; `fused` uses Adam's fused implementation (one kernel for all parameters)."""
    torch.set_num_threads(2)
    torch.manual_seed(workload.seed)
    layers = []
    for index, (n_inputs, n_neurons) in enumerate(zip(workload.sizes, workload.sizes[1:], strict=False)):
        linear = torch.nn.Linear(n_inputs, n_neurons)
        with torch.no_grad():
            linear.weight.normal_(0.0, 0.01)
            linear.bias.zero_()
        layers.append(linear)
        if index < len(workload.sizes) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    optimizer = torch.optim.Adam(model.parameters(), lr=workload.learning_rate, eps=1e-7, fused=fused or None)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 / (1.0 + workload.decay * step))
    features, labels = torch.from_numpy(X), torch.from_numpy(y)
    generator = torch.Generator().manual_seed(workload.seed)
    size = workload.batch_size or len(X)
    start = time.perf_counter()
    for epoch in range(workload.epochs):
        order = torch.randperm(len(X), generator=generator) if workload.batch_size else None
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
    seconds = time.perf_counter() - start
    checkpoint()
    with torch.no_grad():
        logits = model(features)
        return {
            "seconds": seconds,
            "loss": float(F.cross_entropy(logits, labels)),
            "accuracy": float((logits.argmax(dim=1) == labels).float().mean()),
        }


def run_fused(workload: Workload, X: np.ndarray, y: np.ndarray, checkpoint) -> dict:
    return run(workload, X, y, checkpoint, fused=True)
