"""Starts the embedded dev server so that it never outlives the worker that started it.

    python -I -S engine/devguard.py WORKER_PID PID_FILE TEMPORAL_BINARY ARGS...

The SDK starts the dev server as a plain child process and stops it with SIGKILL in
`WorkflowEnvironment.shutdown()`; a worker that dies without running that (SIGKILL, a crash, a
closed terminal) used to leave the server running, holding the ports and the SQLite file.
`engine/servers.py` therefore gives the SDK a launcher script instead of the `temporal` binary; the
launcher runs this file, which in the same process (so the SDK's pid is still the server's):

1. starts a session of its own (`setsid`): a Ctrl-C at the terminal reaches the worker, which then
   stops the server after its own work, instead of both at once;
2. on Linux asks the kernel to send it SIGTERM when its parent dies
   (`prctl(PR_SET_PDEATHSIG)`), and gives up if the worker is already gone. Strictly the signal
   follows the *thread* that started the process: the SDK starts it from a worker thread of its
   Rust runtime, which lives as long as the process (not from a blocking-pool thread, which
   would end after 10 s idle: a worker killed 30 s after its start took its server with it);
3. writes PID_FILE (JSON: the server's pid, the worker's pid, when) for `engine.servers`, which
   checks it at the next start (where PR_SET_PDEATHSIG does not exist, that check stops an
   orphan left by a killed worker);
4. replaces itself with the `temporal` binary (`execv`; the signal setting survives the exec).

Standard library only, run isolated (-I -S): it starts in a few milliseconds.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
import time

PR_SET_PDEATHSIG = 1


def main(argv: list[str]) -> int:
    if len(argv) < 4:
        print("usage: devguard.py WORKER_PID PID_FILE TEMPORAL_BINARY [ARGS...]", file=sys.stderr)
        return 2
    worker_pid, pid_file, binary, args = int(argv[1]), argv[2], argv[3], argv[4:]
    os.setsid()
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
            print(f"devguard: prctl(PR_SET_PDEATHSIG) failed: errno {ctypes.get_errno()}", file=sys.stderr)
    if os.getppid() != worker_pid:
        return 1  # the worker died before the death signal was armed: start nothing
    record = {"server_pid": os.getpid(), "worker_pid": worker_pid, "binary": binary, "started_at": time.time()}
    tmp = f"{pid_file}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(record, fh)
    os.replace(tmp, pid_file)
    try:
        os.execv(binary, [binary, *args])
    except OSError as exc:
        print(f"devguard: cannot run {binary}: {exc}", file=sys.stderr)
    return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv))
