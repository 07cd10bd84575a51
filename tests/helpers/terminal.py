"""A terminal double for the live panel tests.

Moved from ``tests.cli.test_progress`` so that no test module imports another."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time

CHILD = """
import sys
from runner.cli.progress import make_observer
from runner.scheduler.snapshot import RunProgress, TakeProgress

def snap(done, pct):
    return RunProgress(total=4, done=done, failed=0, in_flight=4 - done, queued=0,
                       downloading=0, submitting=0, ambiguous=0, held=0,
                       credits_reserved=324.0, max_credits=500.0, started_at=0.0,
                       concurrency_limit=4,
                       takes=(TakeProgress("s09-pty/take-1", "processing", pct, "task-z"),),
                       durations=(60.0,))

import structlog
from runner.core import log
log.configure("warning")  # structlog on stderr, as ``shotrun`` sets it up

with make_observer(sys.stderr, quiet=False) as observer:
    observer(snap(1, 30))
    sys.stdin.readline()
    structlog.get_logger().warning("child_warning_event", take="s09-pty/take-1")
    observer(snap(3, 90))
    sys.stdin.readline()
print("CHILD-END")
"""


class Terminal:
    """A child process on a pseudo-terminal; ``expect`` reads until a pattern shows up."""

    def __init__(self, env: dict[str, str], script: str = CHILD) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))
        self.master = master
        self.proc = subprocess.Popen([sys.executable, "-c", script], stdin=slave, stdout=slave,
                                     stderr=slave, env=env, close_fds=True)
        os.close(slave)
        self.output = ""

    def expect(self, pattern: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.output):
            left = deadline - time.monotonic()
            assert left > 0, f"{pattern!r} never showed; screen so far: {self.output!r}"
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    chunk = b""
                assert chunk, f"child ended before {pattern!r}: {self.output!r}"
                self.output += chunk.decode("utf-8", "replace")

    def send(self, text: str) -> None:
        os.write(self.master, text.encode())

    def close(self) -> int:
        code = self.proc.wait(timeout=30)
        os.close(self.master)
        return code
