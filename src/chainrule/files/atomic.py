"""Writing files so that a crash never leaves a half-written one behind, nor a stray temporary file.

The new contents go to a hidden temporary file in the target's folder, are flushed to disk, and
are then renamed over the target in one step. On any failure the temporary file is removed; a
SIGTERM during the write is turned into an exception so that it is removed too. A process killed
outright (SIGKILL) cannot clean up: the next save of the same file removes what it left, knowing
it for a dead writer's because nobody holds its lock (a writer holds an flock on its temporary
file until it is renamed; unlike a process id, that holds across containers). The temporary
name keeps at most 64 characters of the target's, so any legal file name can be saved.

The file gets the target's permission bits if it exists, or the usual ones (0666 less the umask,
applied by the system: the process umask is never changed), and keeps the owner of the file it
replaces (or the write is refused, before anything is written). A symbolic link at the target is
refused rather than followed (a planted link must not redirect a save into another folder), as
is anything that is not a regular file (a folder, a device, a FIFO).
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import os
import secrets
import signal
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

NAME_KEPT = 64  # characters of the target's name in its temporary file's name
ABANDONED_SECONDS = 60  # an empty, unlocked temporary file this old was left by a dead writer


def _target(path: str | os.PathLike) -> Path:
    """The regular file to (re)place: never a symbolic link, folder, device or FIFO."""
    if str(path) == "":
        raise ValueError("no file name given")
    target = Path(path)
    if target.is_symlink():
        raise ValueError(
            f"{path} is a symbolic link (to {os.readlink(target)}); refusing to write through it: "
            "save to the file it names, or remove the link"
        )
    if target.exists() and not target.is_file():
        raise ValueError(f"{path} is not a regular file (a folder, device or FIFO); refusing to replace it")
    if target.parent.exists() and not target.parent.is_dir():
        raise NotADirectoryError(f"cannot write {path}: {target.parent} is a file, not a folder")
    if not target.parent.is_dir():
        raise FileNotFoundError(f"cannot write {path}: the folder {target.parent} does not exist")
    return target


def _remove_leftovers(target: Path) -> None:
    """Delete temporary files of earlier saves of `target` that no live writer holds: unlocked,
    and written to (a writer writes only once it holds the lock) or long abandoned."""
    for leftover in target.parent.glob(f".{glob.escape(target.name[:NAME_KEPT])}.*.tmp"):
        try:
            descriptor = os.open(leftover, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue  # gone already, or not ours to open
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            status = os.fstat(descriptor)
            if stat.S_ISREG(status.st_mode) and (status.st_size or time.time() - status.st_mtime > ABANDONED_SECONDS):
                leftover.unlink(missing_ok=True)
        except OSError:
            pass  # locked: a live writer's
        finally:
            os.close(descriptor)


def _keep_owner(descriptor: int, existing: os.stat_result | None, path: str | os.PathLike) -> None:
    """Give the new file the owner and group of the one it replaces, or refuse."""
    if existing is None or (existing.st_uid, existing.st_gid) == (os.geteuid(), os.getegid()):
        return
    try:
        os.fchown(descriptor, existing.st_uid, existing.st_gid)
    except PermissionError as error:
        raise PermissionError(
            f"cannot write {path}: it belongs to user {existing.st_uid} (group {existing.st_gid}), and the new file "
            "could not keep that owner; refusing to replace it"
        ) from error


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
    """Call `write(stream)` on a temporary file beside `path`, then put it in place in one rename.

    Every step names the folder through one descriptor opened at the start, so a folder renamed
    or replaced by a link during the write still gets the file (under its new name), and the
    temporary file is always found again to be removed."""
    target = _target(path)
    _remove_leftovers(target)
    existing = target.stat() if target.exists() else None
    temporary = f".{target.name[:NAME_KEPT]}.{secrets.token_hex(8)}.tmp"
    folder = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with _sigterm_raises():
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
            descriptor = os.open(temporary, flags, 0o666, dir_fd=folder)
            with os.fdopen(descriptor, "wb") as stream:
                fcntl.flock(descriptor, fcntl.LOCK_EX)  # held until closed: this file is being written
                _keep_owner(descriptor, existing, path)
                write(stream)
                stream.flush()
                if existing is not None:
                    os.fchmod(stream.fileno(), stat.S_IMODE(existing.st_mode))
                os.fsync(stream.fileno())
                # still locked: a cleanup never sees it unlocked
                os.replace(temporary, target.name, src_dir_fd=folder, dst_dir_fd=folder)
        os.fsync(folder)
    except BaseException as error:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary, dir_fd=folder)
        if isinstance(error, OSError) and error.errno is not None:  # the user's path, not the temporary one
            raise OSError(error.errno, f"cannot write {path}: {error.strerror or error}") from error
        raise
    finally:
        os.close(folder)
