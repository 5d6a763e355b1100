"""systemd notifications (READY=1, WATCHDOG=1, STATUS=...), without a dependency.

Does nothing when the process is not run by systemd with ``Type=notify`` (no $NOTIFY_SOCKET).
"""

from __future__ import annotations

import os
import socket
import time


def notify(*lines: str) -> bool:
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address[0] == "@":
        address = "\0" + address[1:]  # abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall("\n".join(lines).encode())
    except OSError:
        return False
    return True


class Watchdog:
    """Pings systemd's watchdog at half its interval, when ``ping()`` is called often enough."""

    def __init__(self):
        usec = os.environ.get("WATCHDOG_USEC")
        pid = os.environ.get("WATCHDOG_PID")
        enabled = bool(usec) and (not pid or pid == str(os.getpid()))
        self.interval = int(usec) / 2e6 if enabled else None
        self._last = 0.0

    def ping(self) -> None:
        if self.interval is None:
            return
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            notify("WATCHDOG=1")
