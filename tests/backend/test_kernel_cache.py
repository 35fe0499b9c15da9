"""The compiled kernels' cache: a private folder of the user's or none, never a failed import."""

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("numba", reason="the compiled kernels are the optional extra 'fast'")
SOURCES = Path(__file__).resolve().parents[2] / "src"
TRAIN = (
    "import chainrule as cr\n"
    "from chainrule.backend import kernels\n"
    "X, y = cr.datasets.spiral_data(20, 3, seed=0)\n"
    "model = cr.Model(seed=0).add(cr.Dense(2, 8)).add(cr.ReLU()).add(cr.Dense(8, 3)).add(cr.Softmax())\n"
    "model.compile(loss='categorical_crossentropy', optimizer='adam').fit(X, y, epochs=2, verbose=0)\n"
    "print('cached' if kernels.caching() else 'in memory')\n"
)


def run(environment, preexec_fn=None):
    """TRAIN in a fresh interpreter with `environment` (None values unset)."""
    env = {key: value for key, value in {**os.environ, "PYTHONPATH": str(SOURCES), **environment}.items() if value}
    return subprocess.run(
        [sys.executable, "-c", TRAIN], capture_output=True, text=True, env=env, timeout=300, preexec_fn=preexec_fn
    )


def test_kernels_are_cached_in_a_private_folder_of_the_user(tmp_path):
    result = run({"XDG_CACHE_HOME": str(tmp_path)})
    assert result.returncode == 0 and result.stdout == "cached\n", result.stderr
    (folder,) = (tmp_path / "chainrule").iterdir()
    for level in (tmp_path / "chainrule", folder):
        assert stat.S_IMODE(level.stat().st_mode) == 0o700
    assert list(folder.rglob("*.nbi")), "the kernels' indexes are written there"


def test_a_cache_folder_others_may_write_to_is_not_used(tmp_path):
    shared = tmp_path / "chainrule"
    shared.mkdir()
    shared.chmod(0o777)  # anyone could plant an index (a pickle) here
    result = run({"XDG_CACHE_HOME": str(tmp_path)})
    assert result.returncode == 0 and result.stdout == "in memory\n", result.stderr
    assert not list(tmp_path.rglob("*.nbi"))


def test_without_anywhere_to_cache_the_kernels_compile_in_memory(tmp_path):
    (tmp_path / "file").write_text("")
    result = run({"XDG_CACHE_HOME": str(tmp_path / "file" / "cache"), "HOME": None})
    assert result.returncode == 0 and result.stdout == "in memory\n", result.stderr


def reachable_by_others(path):
    """Whether a user other than the owner may read `path` (every folder above it searchable)."""
    path = Path(path).resolve()
    return bool(path.stat().st_mode & stat.S_IROTH) and all(
        folder.stat().st_mode & stat.S_IXOTH for folder in path.parents
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="running as another user needs root")
@pytest.mark.skipif(
    not (reachable_by_others(sys.executable) and reachable_by_others(SOURCES / "chainrule" / "__init__.py")),
    reason="this interpreter or these sources are private to their owner: another user cannot run them",
)
def test_an_unprivileged_user_with_no_home_and_a_read_only_installation_imports_and_trains():
    nobody = 65534  # its home, /nonexistent, cannot be made; it cannot write the installation
    result = run({"HOME": None, "XDG_CACHE_HOME": None}, preexec_fn=lambda: (os.setgid(nobody), os.setuid(nobody)))
    assert result.returncode == 0 and result.stdout == "in memory\n", result.stderr
