"""Writing files so that a crash never leaves a half-written one behind, nor a stray temporary file.

The new contents go to a hidden temporary file in the target's folder, are flushed to disk, and
are then renamed over the target in one step. On any failure the temporary file is removed; a
SIGTERM during the write is turned into an exception so that it is removed too. A process killed
outright (SIGKILL) cannot clean up: the next save of the same file removes what it left. The
file gets the target's permission bits if it exists, or the usual ones (0666 less the umask,
applied by the system: the process umask is never changed). A symlink is written through to its
target; anything that is not a regular file (a folder, a device, a FIFO) is refused.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import signal
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO


def _target(path: str | os.PathLike) -> Path:
    """The regular file to (re)place: the target of a symlink, never a folder, device or FIFO."""
    if str(path) == "":
        raise ValueError("no file name given")
    target = Path(path)
    if target.is_symlink():
        target = target.resolve()
    if target.exists() and not target.is_file():
        raise ValueError(f"{path} is not a regular file (a folder, device or FIFO); refusing to replace it")
    if not target.parent.is_dir():
        raise FileNotFoundError(f"cannot write {path}: the folder {target.parent} does not exist")
    return target


def _sync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _remove_leftovers(target: Path) -> None:
    """Delete temporary files of earlier saves of `target` whose process no longer runs."""
    for leftover in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
        pid = leftover.name[len(target.name) + 2 :].split("-", 1)[0]
        if pid.isdigit() and not _running(int(pid)):
            leftover.unlink(missing_ok=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Terminated(Exception):
    """SIGTERM arrived while a file was being written."""


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """Turn SIGTERM into an exception (main thread only), so a failed write still cleans up."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum: int, frame: Any) -> None:
        raise Terminated("terminated by SIGTERM while writing")

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
    """Call `write(stream)` on a temporary file beside `path`, then put it in place in one rename."""
    target = _target(path)
    _remove_leftovers(target)
    existing_mode = stat.S_IMODE(target.stat().st_mode) if target.exists() else None
    temporary = target.parent / f".{target.name}.{os.getpid()}-{secrets.token_hex(6)}.tmp"
    try:
        with _sigterm_raises():
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            with os.fdopen(descriptor, "wb") as stream:
                write(stream)
                stream.flush()
                if existing_mode is not None:
                    os.fchmod(stream.fileno(), existing_mode)
                os.fsync(stream.fileno())
            os.replace(temporary, target)
        _sync_folder(target.parent)
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        if isinstance(error, OSError):  # name the user's path, not the hidden temporary one
            raise OSError(error.errno, f"cannot write {path}: {error.strerror or error}") from error
        raise
