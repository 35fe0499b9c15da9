"""What a user waits for from a fresh process: import, one CLI command, a first fit, a short training.

    python -m benchmarks.cold_start [--rounds 11] [--checkout ../chainrule-before]

Every command runs in a fresh interpreter, the commands interleaved round by round (the order
reversed every other round), and the table reports each one's median wall time, from process
start to exit. The book's spiral network (Dense(2, 64) -> ReLU -> Dense(64, 3) -> Softmax,
Adam(0.05), 10,000 full-batch epochs) is trained to a printed accuracy by chainrule, PyTorch and
JAX (a jitted step in a Python loop, as its tutorials write it), each including its own import
and compilation; a first fit is chainrule's script with one epoch. With `--checkout`,
chainrule's commands also run from that other checkout. Python writes and reads its bytecode
caches, as in any installation (PYTHONDONTWRITEBYTECODE is dropped), and a first round that is
not counted writes them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
SPIRAL_DATA = """
import numpy as np
def spiral_data(samples, classes, seed=0):
    rng = np.random.default_rng(seed)
    X = np.zeros((samples * classes, 2), np.float32)
    y = np.zeros(samples * classes, np.int64)
    for c in range(classes):
        rows = slice(samples * c, samples * (c + 1))
        r = np.linspace(0.0, 1, samples)
        t = np.linspace(c * 4, (c + 1) * 4, samples) + rng.standard_normal(samples) * 0.2
        X[rows] = np.c_[r * np.sin(t * 2.5), r * np.cos(t * 2.5)]
        y[rows] = c
    return X, y
X, y = spiral_data(100, 3)
"""
SPIRAL = {
    "chainrule": """
import chainrule as cr
X, y = cr.datasets.spiral_data(100, 3, seed=0)
model = cr.Model(seed=0).add(cr.Dense(2, 64)).add(cr.ReLU()).add(cr.Dense(64, 3)).add(cr.Softmax())
model.compile(loss="categorical_crossentropy", optimizer=cr.Adam(0.05, decay=5e-7))
model.fit(X, y, epochs=10_000, verbose=0)
print("accuracy", model.evaluate(X, y)["accuracy"])
""",
    "torch": SPIRAL_DATA
    + """
import torch
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(2, 64), torch.nn.ReLU(), torch.nn.Linear(64, 3))
optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
inputs, targets = torch.from_numpy(X), torch.from_numpy(y)
for _ in range(10_000):
    optimizer.zero_grad()
    loss = torch.nn.functional.cross_entropy(model(inputs), targets)
    loss.backward()
    optimizer.step()
print("accuracy", (model(inputs).argmax(1) == targets).float().mean().item())
""",
    "jax": SPIRAL_DATA
    + """
import jax, jax.numpy as jnp
def loss(params, X, y):
    hidden = jax.nn.relu(X @ params[0] + params[1])
    logits = hidden @ params[2] + params[3]
    return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(len(y)), y])
@jax.jit
def step(params, moments, t, X, y):
    grads = jax.grad(loss)(params, X, y)
    m = [0.9 * a + 0.1 * g for a, g in zip(moments[0], grads)]
    v = [0.999 * a + 0.001 * g * g for a, g in zip(moments[1], grads)]
    lr = 0.05 * jnp.sqrt(1 - 0.999**t) / (1 - 0.9**t)
    return [p - lr * a / (jnp.sqrt(b) + 1e-7) for p, a, b in zip(params, m, v)], (m, v)
k1, k2 = jax.random.split(jax.random.PRNGKey(0))
params = [0.01 * jax.random.normal(k1, (2, 64)), jnp.zeros(64), 0.01 * jax.random.normal(k2, (64, 3)), jnp.zeros(3)]
moments = ([jnp.zeros_like(p) for p in params], [jnp.zeros_like(p) for p in params])
X, y = jnp.asarray(X), jnp.asarray(y)
for t in range(1, 10_001):
    params, moments = step(params, moments, t, X, y)
hidden = jax.nn.relu(X @ params[0] + params[1])
print("accuracy", float(jnp.mean(jnp.argmax(hidden @ params[2] + params[3], 1) == y)))
""",
}


FIRST_FIT = "spiral 1 epoch: chainrule"


def commands(checkout: Path) -> dict[str, list[str]]:
    """chainrule's commands, run from `checkout`'s sources."""
    return {
        "import chainrule": ["-c", "import chainrule"],
        "chainrule explain neuron": ["-m", "chainrule", "explain", "neuron"],
        "chainrule gradcheck --sizes 2,8,3": ["-m", "chainrule", "gradcheck", "--sizes", "2,8,3"],
        FIRST_FIT: ["-c", SPIRAL["chainrule"].replace("10_000", "1")],
        "spiral 10,000 epochs: chainrule": ["-c", SPIRAL["chainrule"]],
    }


def wall_seconds(arguments: list[str], checkout: Path) -> float:
    """One fresh interpreter running `arguments`, start to exit."""
    environment = {**os.environ, "PYTHONPATH": str(checkout / "src")}
    environment.pop("PYTHONDONTWRITEBYTECODE", None)  # an installation has its .pyc files
    started = time.perf_counter()
    subprocess.run([sys.executable, *arguments], check=True, capture_output=True, env=environment, cwd=checkout)
    return time.perf_counter() - started


def measure(rounds: int, other: Path | None = None) -> tuple[dict[str, list[float]], list[float]]:
    """Each command's wall seconds over `rounds` interleaved rounds, and the load average after each
    round; progress goes to stderr."""
    runs: dict[str, tuple[list[str], Path]] = {
        "import numpy": (["-c", "import numpy"], HERE),
        **{name: (arguments, HERE) for name, arguments in commands(HERE).items()},
        "spiral 10,000 epochs: PyTorch": (["-c", SPIRAL["torch"]], HERE),
        "spiral 10,000 epochs: JAX": (["-c", SPIRAL["jax"]], HERE),
    }
    if other:
        other = other.resolve()
        runs.update({f"{name} (other checkout)": (arguments, other) for name, arguments in commands(other).items()})
    for arguments, checkout in runs.values():  # writes the bytecode and kernel caches; not counted
        wall_seconds(arguments, checkout)
    times: dict[str, list[float]] = {name: [] for name in runs}
    loads = []
    for round_number in range(rounds):
        order = list(runs) if round_number % 2 == 0 else list(reversed(runs))
        for name in order:
            times[name].append(wall_seconds(*runs[name]))
        loads.append(os.getloadavg()[0])
        medians = "  ".join(f"{statistics.median(times[name]):.3f}" for name in runs)
        print(f"round {round_number + 1}: {medians}", file=sys.stderr, flush=True)
    return times, loads


def report(times: dict[str, list[float]], loads: list[float]) -> str:
    """A markdown table of each command's median, minimum and maximum seconds."""
    rounds = len(loads)
    lines = [
        f"{rounds} rounds; load average (1 min) {min(loads):.2f}-{max(loads):.2f} on {os.cpu_count()} CPUs",
        "",
        "| command | median s | min s | max s |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, values in times.items():
        lines.append(f"| {name} | {statistics.median(values):.3f} | {min(values):.3f} | {max(values):.3f} |")
    first_fit = statistics.median(times[FIRST_FIT]) - statistics.median(times["import chainrule"])
    lines += ["", f"A first fit of one epoch, with its evaluation, adds {first_fit:.2f} s to the import (medians)."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--checkout", type=Path, help="another checkout whose chainrule commands run too")
    args = parser.parse_args()
    print(report(*measure(args.rounds, args.checkout)))


if __name__ == "__main__":
    main()
