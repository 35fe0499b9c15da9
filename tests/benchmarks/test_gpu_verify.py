"""The GPU verification script: its device-generic checks pass on the stand-in device and fail
where they should, and without a GPU it says so in one line."""

import contextlib
import itertools
import subprocess
import sys

import numpy as np
import pytest
from strict_device import STRICT, STRICT_MODULE

import chainrule as cr
from benchmarks import gpu_verify
from chainrule.backend import arrays
from chainrule.training import static_step

UNCAPTURED = arrays.Device("strict", STRICT_MODULE)  # the same steps, run without capture
STAND_IN = gpu_verify.Target(STRICT, UNCAPTURED, contextlib.nullcontext, lambda: 0)


@pytest.mark.parametrize("check", gpu_verify.SHARED_CHECKS, ids=lambda check: check.__name__)
def test_each_device_generic_check_passes_on_the_stand_in_device(check):
    result = check(STAND_IN)
    assert result.passed, result.detail


class AllocatingLinear(cr.Linear):
    def forward_into(self, inputs, buffers):
        np.copyto(buffers.output, inputs + 0.0)


def test_the_capture_check_fails_for_a_network_whose_step_allocates(monkeypatch):
    monkeypatch.setitem(
        gpu_verify.NETWORKS,
        "allocating",
        lambda device: gpu_verify.spiral_model(device, np.float32, None, AllocatingLinear()),
    )
    result = gpu_verify.capture_allocates_nothing(STAND_IN)
    assert not result.passed and "allocating: 3 allocations refused, 0/3 captured" in result.detail


def test_the_graph_check_fails_when_the_graph_computes_something_else():
    def slightly_off(training, allow_tf32):
        def matmul(a, b, out):
            np.matmul(a, b, out=out)
            np.multiply(out, 1.0 + 1e-6, out=out)

        training.matmul = matmul

    other = arrays.Device("strict", STRICT_MODULE, prepare_graph=slightly_off)
    result = gpu_verify.graph_matches_eager(gpu_verify.Target(STRICT, other, contextlib.nullcontext, lambda: 0))
    assert not result.passed and "DIFFERENT" in result.detail


def test_the_kept_graphs_check_fails_when_a_second_fit_captures_again(monkeypatch):
    monkeypatch.setattr(static_step.StaticTraining, "serves", lambda self, *arguments: False)
    result = gpu_verify.graphs_kept_for_the_next_fit(STAND_IN)
    assert not result.passed and "2 captures in the second fit; numbers identical" in result.detail


def test_the_memory_check_fails_when_memory_grows():
    growing = itertools.count(0, 2 << 20)
    result = gpu_verify.memory_over_short_fits(
        gpu_verify.Target(STRICT, UNCAPTURED, contextlib.nullcontext, lambda: next(growing)), fits=3
    )
    assert not result.passed and "2097152 bytes more after 3 fits" in result.detail


def test_a_crashing_check_is_a_failed_check_named_after_it():
    def broken_check(target):
        raise RuntimeError("cudaErrorIllegalAddress")

    result = gpu_verify.run_check(broken_check, STAND_IN)
    assert (result.name, result.passed, result.detail) == (
        "broken check",
        False,
        "RuntimeError: cudaErrorIllegalAddress",
    )


def test_without_a_gpu_it_says_so_in_one_line():
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu_verify"], capture_output=True, text=True, check=False, timeout=120
    )
    assert completed.returncode == gpu_verify.NO_DEVICE_STATUS
    assert completed.stdout.startswith("no CUDA device: ") and completed.stdout.count("\n") == 1
    assert completed.stderr == ""
