"""Atomic writes: all or nothing, private as the umask says, faithful to the target, nothing left behind."""

import os
import signal
import stat
import subprocess
import sys
import threading

import pytest

from chainrule.files.atomic import atomic_write


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_file_gets_the_umask_and_an_existing_file_keeps_its_bits(tmp_path):
    umask = os.umask(0o022)
    os.umask(umask)
    atomic_write(tmp_path / "new.bin", lambda stream: stream.write(b"x"))
    assert mode(tmp_path / "new.bin") == 0o666 & ~umask
    (tmp_path / "private.bin").write_bytes(b"old")
    os.chmod(tmp_path / "private.bin", 0o600)
    atomic_write(tmp_path / "private.bin", lambda stream: stream.write(b"new"))
    assert mode(tmp_path / "private.bin") == 0o600 and (tmp_path / "private.bin").read_bytes() == b"new"


def test_targets_that_are_not_regular_files_are_refused(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    for target in (tmp_path / "fifo", tmp_path, "/dev/null"):
        with pytest.raises(ValueError, match="is not a regular file"):
            atomic_write(target, lambda stream: stream.write(b"x"))
    with pytest.raises(ValueError, match="no file name given"):
        atomic_write("", lambda stream: stream.write(b"x"))


def test_a_symlink_is_written_through_to_its_target(tmp_path):
    (tmp_path / "real.bin").write_bytes(b"old")
    (tmp_path / "link.bin").symlink_to(tmp_path / "real.bin")
    atomic_write(tmp_path / "link.bin", lambda stream: stream.write(b"new"))
    assert (tmp_path / "link.bin").is_symlink() and (tmp_path / "real.bin").read_bytes() == b"new"


def test_a_failed_write_keeps_the_old_file_and_leaves_nothing_behind(tmp_path):
    (tmp_path / "model.bin").write_bytes(b"old")

    def fail(stream):
        stream.write(b"partial")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match=rf"cannot write {tmp_path / 'model.bin'}: No space left on device"):
        atomic_write(tmp_path / "model.bin", fail)
    assert (tmp_path / "model.bin").read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == ["model.bin"]


KILLED_MID_WRITE = """
import os, sys, time
from chainrule.files.atomic import atomic_write
def slow(stream):
    stream.write(b"x" * 1000)
    stream.flush()
    print("writing", flush=True)
    time.sleep(60)
atomic_write(sys.argv[1], slow)
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
def test_a_killed_writer_leaves_nothing_behind_once_the_file_is_saved_again(tmp_path, signum):
    target = tmp_path / "model.bin"
    target.write_bytes(b"old")
    with subprocess.Popen(
        [sys.executable, "-c", KILLED_MID_WRITE, str(target)], stdout=subprocess.PIPE, text=True
    ) as writer:
        assert writer.stdout.readline() == "writing\n"
        writer.send_signal(signum)
        writer.wait(timeout=30)
    assert target.read_bytes() == b"old"
    if signum == signal.SIGTERM:  # the writer cleaned up itself
        assert sorted(os.listdir(tmp_path)) == ["model.bin"]
    atomic_write(target, lambda stream: stream.write(b"new"))  # SIGKILL: the next save cleans up
    assert sorted(os.listdir(tmp_path)) == ["model.bin"] and target.read_bytes() == b"new"


def test_saves_racing_in_two_threads_never_widen_the_permissions(tmp_path):
    umask = os.umask(0o077)
    try:
        modes = set()

        def save_many(name):
            for _ in range(200):
                atomic_write(tmp_path / name, lambda stream: stream.write(b"x"))
                modes.add(mode(tmp_path / name))

        threads = [threading.Thread(target=save_many, args=(f"{index}.bin",)) for index in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        os.umask(umask)
    assert modes == {0o600}
