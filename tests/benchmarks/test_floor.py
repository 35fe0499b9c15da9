"""The floor benchmark runs against the step as it is built today, and says how far the step is
from its products alone."""

import re

import pytest

from benchmarks import floor
from chainrule.backend import kernels

pytestmark = pytest.mark.skipif(not kernels.ENABLED, reason="the floor times the compiled step (extra fast)")


def test_it_times_every_product_of_the_step_and_compares_the_step_with_them():
    timings = floor.measure("spiral-book", rounds=1, steps=2)
    table = floor.report("spiral-book", 1, timings)
    for row in ("forward 0", "forward 1", "dweights 1", "dinputs 1", "dweights 0", "dweights 0, 1 thread"):
        assert f"| {row} |" in table
    sentence = re.search(r"takes ([\d.]+) times its products alone, `Model.fit`'s step ([\d.]+) times", table)
    assert sentence is not None, table
    products = timings[floor.PRODUCTS][0][0]
    assert float(sentence[1]) == pytest.approx(timings[floor.GATHERED_STEP][0][0] / products, abs=0.005)
    assert float(sentence[2]) == pytest.approx(timings[floor.FIT][0][0] / products, abs=0.005)
