"""`chainrule mpiexec ...`: Open MPI's mpiexec, with Ctrl-C as a clean stop of a distributed fit.

Open MPI 5's mpiexec answers Ctrl-C (SIGINT), like SIGTERM, by killing the job: SIGCONT and
SIGTERM to every rank, then SIGKILL about half a second later, too soon to finish a step or
write a checkpoint. It forwards SIGUSR1 untouched, and a distributed fit takes SIGUSR1 as it
takes Ctrl-C: every rank stops after the same step, the epoch's callbacks run (rank 0's
ModelCheckpoint writes its file) and `fit` returns with `history.interrupted`.

This launcher runs mpiexec with the arguments it is given, in a session of its own, so that the
terminal's Ctrl-C reaches the launcher alone; the first Ctrl-C becomes SIGUSR1 for the job, a
second one (or a SIGTERM) ends the job as mpiexec would. Outside a fit, SIGUSR1 ends a rank as
the kill would. The job reads no terminal input (mpiexec would forward it to rank 0, and a
process outside the terminal's foreground may not read it); input from a pipe or a file is
passed on.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

FIRST_PRESS = "chainrule mpiexec: Ctrl-C: every rank stops after its current step (press it again to kill the job)"
EXIT_INTERRUPTED = 130  # a job stopped by Ctrl-C exits as an interrupted command does


def find_mpiexec() -> str:
    """The mpiexec beside this Python (Open MPI's wheel puts it there), or the one on PATH."""
    found = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
    if found is None:
        raise FileNotFoundError("mpiexec not found: pip install 'chainrule[mpi]' (mpi4py and Open MPI's wheel)")
    return found


def run_mpiexec(arguments: Sequence[str]) -> int:
    """Run `mpiexec *arguments` until it ends; returns its exit status (EXIT_INTERRUPTED where a
    Ctrl-C stopped a job that then ended cleanly). A first Ctrl-C prints FIRST_PRESS on stderr."""
    command = [find_mpiexec(), *arguments]
    terminal_input = sys.stdin is not None and sys.stdin.isatty()
    job = subprocess.Popen(command, stdin=subprocess.DEVNULL if terminal_input else None, start_new_session=True)
    presses = 0

    def interrupt(signum: int, frame: Any) -> None:
        nonlocal presses
        presses += 1
        if presses == 1:
            print(FIRST_PRESS, file=sys.stderr, flush=True)
            job.send_signal(signal.SIGUSR1)
        else:
            job.send_signal(signal.SIGTERM)

    def terminate(signum: int, frame: Any) -> None:
        job.send_signal(signal.SIGTERM)

    previous = {signal.SIGINT: signal.signal(signal.SIGINT, interrupt)}
    previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, terminate)
    try:
        status = job.wait()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    return EXIT_INTERRUPTED if presses and status == 0 else status
