"""The cold-start table: each command's median, minimum and maximum, and what a first fit adds to
the import."""

from benchmarks import cold_start


def test_the_table_gives_each_commands_spread_and_the_first_fits_cost_beyond_the_import():
    times = {
        "import numpy": [0.10, 0.12, 0.11],
        "import chainrule": [0.20, 0.15, 0.16],
        cold_start.FIRST_FIT: [0.70, 0.66, 0.90],
    }
    table = cold_start.report(times, loads=[0.5, 1.25, 0.75])
    assert "3 rounds; load average (1 min) 0.50-1.25" in table
    assert "| import numpy | 0.110 | 0.100 | 0.120 |" in table
    assert f"| {cold_start.FIRST_FIT} | 0.700 | 0.660 | 0.900 |" in table
    assert "adds 0.54 s to the import" in table  # 0.70 - 0.16
