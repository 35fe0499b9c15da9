"""Where the compiled kernels are cached: a private folder of the user's, or nowhere.

Numba caches a compiled function as an index (a pickle, loaded on the next import) and its
machine code. By default it writes them beside the package's sources, or in a folder anyone may
share, so whoever can write there can plant code that every later user loads; where it cannot
write at all (a read-only installation with no home folder), `cache=True` fails at import. Here
chainrule's own kernels are cached in `$XDG_CACHE_HOME/chainrule` (else `~/.cache/chainrule`),
created private (0700) and used only while it is a real folder owned by this user and writable by
no one else. Without such a folder the kernels compile in memory each time a process first runs
them (a second or two) and nothing is written. Other Numba functions in the process are left to
Numba's own rules.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import Any

PACKAGE = Path(__file__).resolve().parent.parent  # the chainrule package: the kernels' sources


def cache_root() -> Path | None:
    """The folder the user's caches go in, or None when there is no home to find it by."""
    configured = os.environ.get("XDG_CACHE_HOME")
    if configured and os.path.isabs(configured):
        return Path(configured)
    home = os.path.expanduser("~")
    return Path(home) / ".cache" if os.path.isabs(home) else None


def is_private(folder: Path) -> bool:
    """A real folder (not a link), owned by this user, that no one else may write to."""
    try:
        status = folder.lstat()
    except OSError:
        return False
    return (
        stat.S_ISDIR(status.st_mode)
        and status.st_uid == os.geteuid()
        and not status.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    )


def private_folder(numba_version: str) -> Path | None:
    """`<cache root>/chainrule/numba-<version>-py<X.Y>`, made private if it is missing; None
    when it cannot be made, or exists but is not private (every level from `chainrule` down)."""
    root = cache_root()
    if root is None:
        return None
    python = f"py{sys.version_info[0]}.{sys.version_info[1]}"
    levels = [root / "chainrule", root / "chainrule" / f"numba-{numba_version}-{python}"]
    try:
        root.mkdir(parents=True, exist_ok=True)
        for folder in levels:
            folder.mkdir(mode=0o700, exist_ok=True)
    except OSError:
        return None
    return levels[-1] if all(is_private(folder) for folder in levels) else None


def install(numba: Any) -> bool:
    """Route the caching of chainrule's kernels to the private folder. Returns whether kernels
    may be cached (`cache=True`); False: compile them in memory."""
    folder = private_folder(numba.__version__)
    if folder is None:
        return False
    try:
        from numba.core import caching
    except ImportError:
        return False
    locators: Any = getattr(caching, "CacheImpl", None)
    base: Any = getattr(caching, "_CacheLocator", None)
    mixin: Any = getattr(caching, "_SourceFileBackedLocatorMixin", None)
    if locators is None or base is None or mixin is None:
        return False  # a Numba whose caching is arranged otherwise: compile in memory

    class PrivateLocator(mixin, base):  # type: ignore[misc, valid-type]
        """Numba's locator for chainrule's sources: the private folder, one subfolder per source folder."""

        def __init__(self, py_func: Any, py_file: str) -> None:
            self._py_file = py_file
            self._lineno = py_func.__code__.co_firstlineno
            self._cache_path = str(folder / base.get_suitable_cache_subpath(py_file))

        def get_cache_path(self) -> str:
            return self._cache_path

        def ensure_cache_path(self) -> None:
            os.makedirs(self._cache_path, mode=0o700, exist_ok=True)
            if not is_private(Path(self._cache_path)):
                raise OSError(f"{self._cache_path} is not private")

        @classmethod
        def from_function(cls, py_func: Any, py_file: str) -> Any:
            if not Path(py_file).resolve().is_relative_to(PACKAGE):
                return None  # not chainrule's: Numba's own locators decide
            return super().from_function(py_func, py_file)

    locators._locator_classes.insert(0, PrivateLocator)  # tried first: for chainrule's sources only
    return True
