"""Atomic writes: all or nothing, private as the umask says, faithful to the target, nothing left behind."""

import fcntl
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


def test_a_symlink_at_the_target_is_refused_not_followed(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "victim.bin").write_bytes(b"theirs")
    (tmp_path / "link.bin").symlink_to(tmp_path / "elsewhere" / "victim.bin")
    (tmp_path / "dangling.bin").symlink_to(tmp_path / "elsewhere" / "created.bin")
    for link in ("link.bin", "dangling.bin"):
        with pytest.raises(ValueError, match=rf"{link} is a symbolic link .*refusing to write through it"):
            atomic_write(tmp_path / link, lambda stream: stream.write(b"new"))
    assert (tmp_path / "elsewhere" / "victim.bin").read_bytes() == b"theirs"
    assert sorted(os.listdir(tmp_path / "elsewhere")) == ["victim.bin"]
    assert sorted(os.listdir(tmp_path)) == ["dangling.bin", "elsewhere", "link.bin"]


def test_any_legal_file_name_can_be_saved(tmp_path):
    longest = tmp_path / ("m" * 251 + ".npz")  # 255 characters: the most a name may have
    atomic_write(longest, lambda stream: stream.write(b"x"))
    assert longest.read_bytes() == b"x" and sorted(os.listdir(tmp_path)) == [longest.name]


def test_a_parent_that_is_a_file_is_named_as_such(tmp_path):
    (tmp_path / "notes.txt").write_text("")
    with pytest.raises(NotADirectoryError, match=r"notes.txt is a file, not a folder"):
        atomic_write(tmp_path / "notes.txt" / "model.npz", lambda stream: stream.write(b"x"))


def test_a_live_writers_temporary_file_is_never_cleaned_up(tmp_path):
    # Another saver (in this or any other process or container) holds its temporary file's lock.
    target = tmp_path / "model.bin"
    live = tmp_path / ".model.bin.0123456789abcdef.tmp"
    with open(live, "wb") as stream:
        fcntl.flock(stream.fileno(), fcntl.LOCK_EX)
        stream.write(b"half")
        stream.flush()
        atomic_write(target, lambda out: out.write(b"new"))
        assert live.exists()
    atomic_write(target, lambda out: out.write(b"newer"))  # its writer is gone: the lock is free
    assert sorted(os.listdir(tmp_path)) == ["model.bin"]


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_replacing_another_users_file_keeps_its_owner(tmp_path):
    target = tmp_path / "theirs.bin"
    target.write_bytes(b"old")
    os.chown(target, 1234, 5678)
    atomic_write(target, lambda stream: stream.write(b"new"))
    assert (target.stat().st_uid, target.stat().st_gid) == (1234, 5678) and target.read_bytes() == b"new"


def test_a_file_whose_owner_cannot_be_kept_is_not_replaced(tmp_path, monkeypatch):
    target = tmp_path / "theirs.bin"
    target.write_bytes(b"old")

    def not_permitted(descriptor, uid, gid):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "fchown", not_permitted)
    monkeypatch.setattr(os, "geteuid", lambda: target.stat().st_uid + 1)  # as if another user saved
    with pytest.raises(PermissionError, match=r"theirs.bin: it belongs to user .* refusing to replace it"):
        atomic_write(target, lambda stream: stream.write(b"new"))
    assert target.read_bytes() == b"old" and sorted(os.listdir(tmp_path)) == ["theirs.bin"]


def test_a_failed_write_keeps_the_old_file_and_leaves_nothing_behind(tmp_path):
    (tmp_path / "model.bin").write_bytes(b"old")

    def fail(stream):
        stream.write(b"partial")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match=rf"cannot write {tmp_path / 'model.bin'}: No space left on device"):
        atomic_write(tmp_path / "model.bin", fail)
    assert (tmp_path / "model.bin").read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == ["model.bin"]


@pytest.mark.parametrize("fails", [False, True])
def test_a_folder_renamed_mid_write_gets_the_file_or_nothing_and_no_temporary_file(tmp_path, fails):
    folder = tmp_path / "run"
    folder.mkdir()

    def write_while_moved(stream):
        stream.write(b"new")
        folder.rename(tmp_path / "moved")
        if fails:
            raise OSError(28, "No space left on device")

    if fails:
        with pytest.raises(OSError, match="No space left on device"):
            atomic_write(folder / "model.bin", write_while_moved)
        assert os.listdir(tmp_path / "moved") == []
    else:
        atomic_write(folder / "model.bin", write_while_moved)
        assert os.listdir(tmp_path / "moved") == ["model.bin"]
        assert (tmp_path / "moved" / "model.bin").read_bytes() == b"new"


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
