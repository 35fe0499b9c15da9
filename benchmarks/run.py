"""Run the benchmarks and write BENCHMARKS.md (or, with `--device cuda`, BENCHMARKS_GPU.md).

    python -m benchmarks.run [--device cpu|cuda] [--runs 3] [--workloads spiral-book ...] [--out FILE]

Each measurement runs in a fresh process (so peak memory is per run), the implementations are
interleaved within each round, and the table reports medians over the rounds. Ratios compare
with PyTorch measured in the same session: eager PyTorch on the CPU, PyTorch's whole step in a
CUDA graph on a GPU. A whole CPU run (no `--workloads`, no `--implementations`) then measures
the sections of `MEASURED_SECTIONS` (`benchmarks.cold_start`, `benchmarks.floor mlp-medium`) and
prints their tables after the main one.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmarks.workloads import CPU_WORKLOADS, WORKLOADS

IMPLEMENTATIONS = {
    "chainrule": ("benchmarks.impl_chainrule", "run_fit"),
    "chainrule-layers": ("benchmarks.impl_chainrule", "run_layers"),
    "chainrule-one-blas-thread": ("benchmarks.impl_chainrule", "run_fit_one_blas_thread"),
    "pytorch": ("benchmarks.impl_torch", "run"),
    "pytorch-fused-adam": ("benchmarks.impl_torch", "run_fused"),
    "jax-jit": ("benchmarks.impl_jax", "run_jit"),
    "jax-scan": ("benchmarks.impl_jax", "run_scan"),
    "seed-numpy": ("benchmarks.impl_seed_numpy", "run"),
    "chainrule-cuda": ("benchmarks.impl_chainrule", "run_cuda"),
    "chainrule-cuda-graph": ("benchmarks.impl_chainrule", "run_cuda_graph"),
    "chainrule-cuda-graph-tf32": ("benchmarks.impl_chainrule", "run_cuda_graph_tf32"),
    "pytorch-cuda": ("benchmarks.impl_torch", "run_cuda"),
    "pytorch-cuda-fused-adam": ("benchmarks.impl_torch", "run_cuda_fused"),
    "pytorch-cuda-graph": ("benchmarks.impl_torch", "run_cuda_graph"),
}
# The seed notebooks' classes have no convolution.
DENSE_ONLY = {"seed-numpy"}
# Measured by `benchmarks.under_load` only: on a quiet machine it is the default step on one core.
UNDER_LOAD_ONLY = {"chainrule-one-blas-thread"}
# Per device: the implementations and workloads run by default, the reference of the ratio
# column, and the table's file. JAX runs on the GPU whenever its CUDA build is installed.
GPU_IMPLEMENTATIONS = [name for name in IMPLEMENTATIONS if "cuda" in name]
DEVICES = {
    "cpu": (
        [name for name in IMPLEMENTATIONS if name not in {*GPU_IMPLEMENTATIONS, *UNDER_LOAD_ONLY}],
        CPU_WORKLOADS,
        "pytorch",
        "BENCHMARKS.md",
    ),
    "cuda": (
        [*GPU_IMPLEMENTATIONS, "jax-jit"],
        ["spiral-book", "mlp-medium", "mlp-large"],
        "pytorch-cuda-graph",
        "BENCHMARKS_GPU.md",
    ),
}
ROOT = Path(__file__).resolve().parent.parent
SECTIONS = [
    Path(__file__).with_name(name) for name in ("ANALYSIS.md", "UNDER_LOAD.md", "SKLEARN_PARITY.md", "MPI_SCALING.md")
]
# Run by a whole CPU benchmark after its table: a title, what it measures, the command.
MEASURED_SECTIONS = [
    (
        "Cold start",
        "What a user waits for from a fresh interpreter, process start to exit, commands interleaved "
        "(PyTorch's and JAX's spiral scripts include their import and compilation):",
        ["-m", "benchmarks.cold_start", "--rounds", "5"],
    ),
    (
        "mlp-medium against its floor",
        "The step's matrix products, Adam and the whole step timed in one process over the step's own "
        "buffers (the products on two BLAS threads, then on one):",
        ["-m", "benchmarks.floor", "mlp-medium", "--rounds", "5"],
    ),
]


def resident_mib() -> float:
    with open("/proc/self/statm") as stream:
        return int(stream.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def matmul_gflops(batch: int, n_inputs: int, n_neurons: int, repeats: int = 50) -> float:
    """The machine's float32 matmul rate at the workload's largest layer shape, measured now."""
    a = np.random.default_rng(0).standard_normal((batch, n_inputs), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((n_inputs, n_neurons), dtype=np.float32)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * batch * n_inputs * n_neurons / best / 1e9


def _timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def child(implementation: str, workload_name: str) -> None:
    """Run one measurement and print it as JSON."""
    import importlib

    module, function = IMPLEMENTATIONS[implementation]
    workload = WORKLOADS[workload_name]
    X, y = workload.data()
    middle: list[float] = []
    result = getattr(importlib.import_module(module), function)(workload, X, y, lambda: middle.append(resident_mib()))
    steps = result.pop("steps", workload.steps(len(X)))  # JAX's scan takes whole batches only
    result.update(
        us_per_step=result["seconds"] / steps * 1e6,
        peak_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        # Resident memory added between mid-training and the end of training (single-epoch runs have
        # no mid-training sample: NaN).
        growth_mib=middle[-1] - middle[0] if workload.epochs > 1 else float("nan"),
    )
    if implementation == "chainrule" and workload.batch_size and not workload.convolutions:
        batch = workload.batch_size
        widest = max(zip(workload.sizes, workload.sizes[1:], strict=False), key=lambda pair: pair[0] * pair[1])
        result["achieved_gflops"] = workload.matmul_flops_per_step(batch) / (result["us_per_step"] / 1e6) / 1e9
        result["matmul_gflops"] = matmul_gflops(batch, *widest)
    print(json.dumps(result))


def measure(implementation: str, workload: str, checkout: Path = ROOT) -> dict:
    """One run in a fresh process, with the chainrule and benchmarks of `checkout`."""
    output = run_module(["-m", "benchmarks.run", "--child", implementation, workload], checkout, progress=False)
    return json.loads(output.strip().splitlines()[-1])


def run_module(arguments: list[str], checkout: Path = ROOT, progress: bool = True) -> str:
    """`python ARGUMENTS` with the chainrule and benchmarks of `checkout`; its standard output
    (its standard error shown as it runs, where `progress`)."""
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(checkout / "src"), str(checkout)])}
    completed = subprocess.run(
        [sys.executable, *arguments],
        stdout=subprocess.PIPE,
        stderr=None if progress else subprocess.PIPE,
        text=True,
        cwd=checkout,
        env=environment,
        check=True,
    )
    return completed.stdout


def measured_sections() -> list[str]:
    """The sections of `MEASURED_SECTIONS`, each measured now."""
    sections = []
    for title, description, arguments in MEASURED_SECTIONS:
        print(f"{title}: python {' '.join(arguments)}", flush=True)
        command = f"`python {' '.join(arguments)}`"
        sections.append(f"## {title}\n\n{description} {command}.\n\n{run_module(arguments).strip()}")
    return sections


def versions() -> str:
    names = ["chainrule", "numpy", "numba", "torch", "jax"]
    found = []
    for name in names:
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return ", ".join(found)


def machine() -> str:
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    names = [line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")]
    model = names[0] if names else platform.processor()
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"


def report(
    results: dict[tuple[str, str], list[dict]],
    runs: int,
    implementations: list[str],
    device: str,
    sections: Sequence[str] = (),
) -> str:
    reference, title = DEVICES[device][2], "Benchmarks" if device == "cpu" else "GPU benchmarks"
    lines = [
        f"# {title}",
        "",
        f"Machine: {machine()}{gpu_name() if device == 'cuda' else ''}. Libraries: {versions()}.",
        f"Median of {runs} runs per cell, each run in a fresh process, implementations interleaved. "
        f"Regenerate with `make {'bench' if device == 'cpu' else 'bench-gpu'}`.",
        "",
        "Growth is the resident memory added from mid-training to the end of training.",
        "",
        f"| workload | implementation | us/step | ratio to {reference} | final loss | accuracy | peak MiB | growth MiB"
        " |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    notes = []
    for workload in WORKLOADS:
        if not any((implementation, workload) in results for implementation in implementations):
            continue
        torch_time = (
            statistics.median(r["us_per_step"] for r in results[(reference, workload)])
            if (reference, workload) in results
            else None
        )
        for implementation in implementations:
            runs_here = results.get((implementation, workload))
            if not runs_here:
                continue
            median = {key: statistics.median(r[key] for r in runs_here) for key in runs_here[0]}
            ratio = f"{median['us_per_step'] / torch_time:.2f}" if torch_time else "n/a"
            lines.append(
                f"| {workload} | {implementation} | {median['us_per_step']:.0f} | {ratio} | {median['loss']:.4f} | "
                f"{median['accuracy']:.3f} | {median['peak_mib']:.0f} | "
                + ("n/a |" if np.isnan(median["growth_mib"]) else f"{median['growth_mib']:.1f} |")
            )
            if "achieved_gflops" in median:
                notes.append(
                    f"- {workload}: chainrule's matrix products run at {median['achieved_gflops']:.0f} "
                    f"GFLOP/s over the whole step; a lone float32 matmul of the widest layer's shape "
                    f"reaches {median['matmul_gflops']:.0f} GFLOP/s in the same process."
                )
    lines += ["", "Matrix-product throughput:", "", *notes] if notes else []
    for measured in sections:
        lines += ["", measured]
    for section in SECTIONS if device == "cpu" else []:  # measured by their own commands, kept beside this table
        if section.exists():
            lines += ["", section.read_text().strip()]
    return "\n".join(lines) + "\n"


def gpu_name() -> str:
    try:
        import torch

        return f", GPU {torch.cuda.get_device_name()}"
    except (ImportError, RuntimeError, AssertionError):
        return ", GPU unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=list(DEVICES), default="cpu")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workloads", nargs="+", choices=list(WORKLOADS))
    parser.add_argument("--implementations", nargs="+", choices=list(IMPLEMENTATIONS))
    parser.add_argument("--out")
    parser.add_argument("--child", nargs=2, metavar=("IMPLEMENTATION", "WORKLOAD"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    implementations, workloads, _, out = DEVICES[args.device]
    whole = args.device == "cpu" and not (args.implementations or args.workloads)
    args.implementations = args.implementations or implementations
    args.workloads = args.workloads or workloads
    args.out = args.out or str(ROOT / out)
    results: dict[tuple[str, str], list[dict]] = {}
    for round_number in range(args.runs):
        for workload in args.workloads:
            for implementation in args.implementations:
                if implementation in DENSE_ONLY and WORKLOADS[workload].convolutions:
                    continue
                result = measure(implementation, workload)
                results.setdefault((implementation, workload), []).append(result)
                print(
                    f"round {round_number + 1}/{args.runs}  {workload:<17} {implementation:<17} "
                    f"{result['us_per_step']:9.0f} us/step  loss {result['loss']:.4f}",
                    flush=True,
                )
    sections = measured_sections() if whole else []
    Path(args.out).write_text(report(results, args.runs, args.implementations, args.device, sections))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
