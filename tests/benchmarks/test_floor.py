"""The floor benchmark runs against the step as it is built today, and says how far the step is
from its products alone."""

import re

import pytest

from benchmarks import floor
from chainrule.backend import kernels

pytestmark = pytest.mark.skipif(not kernels.ENABLED, reason="the floor times the compiled step (extra fast)")


def test_it_times_every_product_of_the_step_and_compares_the_step_with_them():
    timings = floor.measure("spiral-book", rounds=1, steps=2)
    table = floor.report("spiral-book", timings)
    assert "medians of 1 round" in table
    for row in ("forward 0", "forward 1", "dweights 1", "dinputs 1", "dweights 0", "dweights 0, 1 thread"):
        assert f"| {row} |" in table
    sentence = re.search(r"took ([\d.]+) \(([\d.]+)-([\d.]+)\) times .* step ([\d.]+) \(", table)
    assert sentence is not None, table
    products = timings[floor.PRODUCTS][0][0]
    step_ratio = timings[floor.GATHERED_STEP][0][0] / products
    assert [float(value) for value in sentence.groups()[:3]] == pytest.approx([step_ratio] * 3, abs=0.005)
    assert float(sentence[4]) == pytest.approx(timings[floor.FIT][0][0] / products, abs=0.005)
    adam = [timings[label][0][0] * 1e6 for label in (floor.ADAM_AFTER, floor.ADAM_AFTER_ONE_THREAD, floor.ADAM)]
    assert (
        "Adam right after the products took {:,.0f} us, right after the same products on one BLAS thread "
        "{:,.0f}, and alone {:,.0f}.".format(*adam)
        in table
    )
