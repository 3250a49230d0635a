"""Ctrl-C and SIGTERM during ``fedsim run``: the run KILLED, every process it started ended, exit 130, one line.

Both signals raise KeyboardInterrupt in the main thread; the tracker marks the open run KILLED as the
exception passes (:meth:`fedsim.tracking.Tracker.start_run`) and the code it passes through cleans up as usual
(a local deployment stops its SuperLink and SuperNodes). Then, here:

* the warm Ray pool and Ray are shut down (:func:`fedsim.federation.engine.shutdown_ray`);
* every process that descended from this one when the signal came and is still alive gets SIGTERM, then
  SIGKILL. The snapshot is taken in the signal handler because clean-up orphans grandchildren: Flower's
  SuperExec starts ``flwr-serverapp`` in a session of its own, which outlives the SuperExec's process group;
* one line goes to stderr and the process leaves with ``os._exit(130)``: a Flower simulation leaves a
  non-daemon ServerApp thread blocked on messages that will never come, which a normal exit would wait for
  forever (tech notes, "Flower simulation and Ctrl-C").

A watchdog started by the signal exits 130 after :data:`CLEANUP_S` seconds whatever the clean-up is doing.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C
CLEANUP_S = 8.0  # the process exits by then even if clean-up hangs (a blocked store, a stuck Ray)

logger = logging.getLogger("fedsim")


@contextmanager
def interrupts_end_the_run(experiment: Path | str) -> Iterator[None]:
    """Run the body; on SIGINT or SIGTERM end it as the module notes say (never returns in that case)."""
    started: dict[int, str] = {}

    def interrupted(signum: int, frame: Any) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        watchdog = threading.Timer(CLEANUP_S, os._exit, args=(INTERRUPTED,))
        watchdog.daemon = True
        watchdog.start()
        started.update(descendants(os.getpid()))
        # Flower's worker threads report every message that Ray can no longer answer, with a traceback: the
        # run is being ended on purpose, so the one line below is all the user should read.
        logging.getLogger("flwr").disabled = True
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupted) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    except KeyboardInterrupt:
        _end_ray()
        end_processes(started)
        sys.stderr.write(
            f"interrupted: the open run is marked KILLED; `fedsim run {experiment}` again resumes the grid\n"
        )
        sys.stderr.flush()
        sys.stdout.flush()
        os._exit(INTERRUPTED)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _end_ray() -> None:
    """Stop the warm Ray pool and Ray itself if this process started them (nothing to do otherwise)."""
    if "ray" not in sys.modules:
        return
    try:
        from fedsim.federation.engine import shutdown_ray

        shutdown_ray()
    except Exception:  # noqa: BLE001 - exiting anyway; what Ray leaves behind is ended by end_processes
        logger.debug("could not stop Ray cleanly", exc_info=True)


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state, ppid, ..., start time at [19]); None if gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def descendants(root: int) -> dict[int, str]:
    """pid → start time of every live process below ``root`` (Linux /proc; empty elsewhere)."""
    children: dict[int, list[int]] = {}
    starts: dict[int, str] = {}
    proc = Path("/proc")
    for entry in proc.iterdir() if proc.is_dir() else ():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) and fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(entry.name))
            starts[int(entry.name)] = fields[19]
    out: dict[int, str] = {}
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in out:
                out[child] = starts[child]
                todo.append(child)
    return out


def _same_process(pid: int, start: str) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z" and fields[19] == start  # not a reused pid


def end_processes(processes: dict[int, str], *, grace_s: float = 2.0) -> None:
    """SIGTERM every process of ``processes`` (pid → start time) still alive, SIGKILL what is left after
    ``grace_s``; a pid now used by another process is left alone."""
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 0.5)):
        alive = [pid for pid, start in processes.items() if _same_process(pid, start)]
        for pid in alive:
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                continue
        deadline = time.monotonic() + wait
        while alive and time.monotonic() < deadline:
            _reap()
            alive = [pid for pid in alive if _same_process(pid, processes[pid])]
            time.sleep(0.05)


def _reap() -> None:
    """Collect exited children of this process so they do not linger as zombies."""
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass
