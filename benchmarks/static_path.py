"""The static step on networks outside the compiled pattern, against the eager step and PyTorch.

    python -m benchmarks.static_path [--rounds 5]

Two of the book's networks: the sine regression of chapter 17 (1-64-64-1, ReLU, a Linear
output, mean squared error, Adam, 1,000 samples as one batch) and the spiral model of chapter
15 (2-512-3 with L2 penalties on weights and biases, Dropout 0.1, Softmax and cross-entropy,
Adam, 3,000 samples as one batch). Each round times every implementation once, in a rotating
order; the table reports the median time per epoch (one step each) and the ratio to PyTorch,
with the machine's load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import numpy as np

import chainrule as cr

Data = tuple[np.ndarray, np.ndarray]


def sine_model() -> cr.Model:
    model = cr.Model(seed=0)
    model.add(cr.Dense(1, 64)).add(cr.ReLU()).add(cr.Dense(64, 64)).add(cr.ReLU()).add(cr.Dense(64, 1))
    model.add(cr.Linear())
    return model.compile(loss="mse", optimizer=cr.Adam(learning_rate=0.005, decay=1e-3))


def chapter15_model() -> cr.Model:
    model = cr.Model(seed=0)
    model.add(cr.Dense(2, 512, weight_regularizer_l2=5e-4, bias_regularizer_l2=5e-4)).add(cr.ReLU())
    model.add(cr.Dropout(0.1)).add(cr.Dense(512, 3)).add(cr.Softmax())
    return model.compile(loss="categorical_crossentropy", optimizer=cr.Adam(learning_rate=0.05, decay=5e-5))


def sine_data() -> Data:
    X, y = cr.datasets.sine_data(1000)
    return X.astype(np.float32), y.astype(np.float32)


def spiral() -> Data:
    return cr.datasets.spiral_data(1000, 3, seed=0)


def torch_trainer(workload: str, data: Data) -> Callable[[int], None]:
    """PyTorch's float32 equivalent: the same layers, Adam with the book's decay as a schedule
    (L2 as Adam's weight_decay, which adds 2 * 5e-4 * w as the book's penalty gradient does)."""
    import torch

    X, y = torch.from_numpy(data[0]), torch.from_numpy(data[1])
    torch.manual_seed(0)
    if workload == "sine":
        net = torch.nn.Sequential(
            torch.nn.Linear(1, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1)
        )
        optimizer = torch.optim.Adam(net.parameters(), lr=0.005, eps=1e-7)
        decay, loss_function = 1e-3, torch.nn.MSELoss()
    else:
        net = torch.nn.Sequential(
            torch.nn.Linear(2, 512), torch.nn.ReLU(), torch.nn.Dropout(0.1), torch.nn.Linear(512, 3)
        )
        optimizer = torch.optim.Adam(net.parameters(), lr=0.05, eps=1e-7, weight_decay=2 * 5e-4)
        decay, loss_function = 5e-5, torch.nn.CrossEntropyLoss()
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 / (1 + decay * step))

    def train(epochs: int) -> None:
        for _ in range(epochs):
            optimizer.zero_grad()
            loss = loss_function(net(X), y)
            loss.backward()
            optimizer.step()
            schedule.step()

    return train


def chainrule_trainer(build: Callable[[], cr.Model], data: Data, graph: bool) -> Callable[[int], None]:
    model = build()
    return lambda epochs: model.fit(*data, epochs=epochs, verbose=0, graph=graph) and None


WORKLOADS: dict[str, tuple[Callable[[], cr.Model], Callable[[], Data]]] = {
    "sine": (sine_model, sine_data),
    "chapter15-dropout-l2": (chapter15_model, spiral),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=300)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    rows = []
    for workload, (build, load) in WORKLOADS.items():
        data = load()
        trainers = {
            "chainrule eager": chainrule_trainer(build, data, graph=False),
            "chainrule static": chainrule_trainer(build, data, graph=True),
            "pytorch": torch_trainer(workload, data),
        }
        for train in trainers.values():
            train(5)  # warm: compiled kernels, buffers, PyTorch's first calls
        times: dict[str, list[float]] = {name: [] for name in trainers}
        for round_number in range(args.rounds):
            names = list(trainers)
            names = names[round_number % len(names) :] + names[: round_number % len(names)]
            for name in names:
                started = time.perf_counter()
                trainers[name](args.epochs)
                times[name].append((time.perf_counter() - started) / args.epochs * 1e6)
        reference = statistics.median(times["pytorch"])
        for name, measured in times.items():
            median = statistics.median(measured)
            rows.append(f"| {workload} | {name} | {median:.1f} | {median / reference:.2f} |")
    print(f"load average after: {os.getloadavg()}")
    print("\n| workload | implementation | median µs/epoch | / PyTorch |\n| --- | --- | ---: | ---: |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
