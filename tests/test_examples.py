"""The example scripts run as a user runs them and print what their docstrings promise."""

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.slow
def test_the_digits_cnn_example_reaches_98_5_percent():
    pytest.importorskip("sklearn")
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "digits_cnn.py")], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr
    accuracy = float(result.stdout.splitlines()[-1].split("test accuracy: ")[1])
    assert accuracy >= 0.985
