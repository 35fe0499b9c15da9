"""The README's code runs as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks(section: str) -> list[str]:
    """The ```python blocks of one `## section` of the README, in order."""
    text = README.read_text()
    start = text.index(f"## {section}\n")
    end = text.find("\n## ", start + 1)
    return re.findall(r"```python\n(.*?)```", text[start : end if end != -1 else None], flags=re.DOTALL)


def test_writing_your_own_layer_runs(tmp_path, monkeypatch):
    blocks = python_blocks("Writing your own layer")
    assert len(blocks) == 2
    monkeypatch.chdir(tmp_path)  # the example saves a model file
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    assert (tmp_path / "scaled.npz").is_file()


def test_the_engine_and_gradient_check_examples_run():
    namespace: dict = {}
    for block in python_blocks("The engine") + python_blocks("Checking gradients"):
        exec(compile(block, str(README), "exec"), namespace)
    assert namespace["result"].passed
