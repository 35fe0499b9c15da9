"""The README's code runs as written, block after block, as a reader would paste it."""

import re
import textwrap
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    """Every ```python block of the README, in order."""
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


@pytest.mark.filterwarnings(  # a short grid search, and a local Dask cluster starting and stopping
    "ignore::sklearn.exceptions.ConvergenceWarning",
    "ignore::DeprecationWarning",
    "ignore::ResourceWarning",
    "ignore::UserWarning",
)
def test_every_python_block_runs_in_order(tmp_path, monkeypatch, capsys):
    blocks = python_blocks()
    assert len(blocks) == 12
    monkeypatch.chdir(tmp_path)  # an example saves a model file
    namespace: dict = {}
    for block in blocks:
        exec(compile(textwrap.dedent(block), str(README), "exec"), namespace)
    assert (tmp_path / "scaled.npz").is_file()
    assert "hint: dbiases sums over the samples" in capsys.readouterr().out
