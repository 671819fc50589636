"""The processes `make run` keeps alive: the API, a Celery worker and beat, each its own.

The API is the service: when it exits, the run ends. A worker or beat that exits (killed,
out of memory) is started again after a pause that doubles up to a minute, while the API goes
on serving. Every child dies with this process, even when it is killed outright, so no beat
is ever left behind to run beside the next one.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from devstack.servers import stop_process

FIRST_PAUSE, LONGEST_PAUSE = 1.0, 60.0
# A child that stayed up this long is healthy again: its next restart waits FIRST_PAUSE.
STEADY_SECONDS = 300.0
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before exec: Linux sends SIGTERM when the parent dies, however it dies."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the parent's own stop() still applies
        pass


@dataclass
class Child:
    name: str
    command: list[str]
    env: dict[str, str]
    essential: bool = False
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    pause: float = FIRST_PAUSE
    restart_at: float | None = None
    restarts: int = 0

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.command, env=self.env, start_new_session=True, preexec_fn=_die_with_parent
        )
        self.started_at = time.monotonic()
        self.restart_at = None

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)


@dataclass
class Supervisor:
    children: list[Child]
    say: Callable[[str], None] = print
    _clock: Callable[[], float] = field(default=time.monotonic)

    def start(self) -> None:
        for child in self.children:
            child.start()

    def check(self) -> str | None:
        """Restart what exited and is due; the reason to stop when an essential child exited."""
        now = self._clock()
        for child in self.children:
            process = child.process
            if process is None or process.poll() is None:
                if child.restart_at is not None and now >= child.restart_at:
                    child.restarts += 1
                    self.say(f"starting the {child.name} again (restart {child.restarts})")
                    child.start()
                continue
            if child.essential:
                return f"the {child.name} exited with {process.returncode}"
            if now - child.started_at >= STEADY_SECONDS:
                child.pause = FIRST_PAUSE
            self.say(
                f"the {child.name} exited with {process.returncode}; "
                f"starting it again in {child.pause:.0f}s"
            )
            _kill_group(process)
            child.process = None
            child.restart_at = now + child.pause
            child.pause = min(child.pause * 2, LONGEST_PAUSE)
        return None

    def stop(self) -> None:
        for child in reversed(self.children):
            child.stop()


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """What the exited child left in its session (a worker's pool processes)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
