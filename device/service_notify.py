"""Telling systemd how the daemon is doing (sd_notify), from the frame loop itself.

`Type=notify` with `WatchdogSec=` makes systemd wait for `READY=1` (sent once the first frame has
been processed, so "started" means "seeing"), expect `WATCHDOG=1` at least every WatchdogSec, and
kill and restart a daemon that stops sending it. The pings come from the frame loop, never from a
side thread: a loop stuck in a camera driver stops them, which is exactly what the watchdog is for.
`STATUS=` carries a one-line summary for `systemctl status`; `STOPPING=1` is sent on shutdown.

The protocol is one datagram per message on the AF_UNIX socket named by `$NOTIFY_SOCKET` (a path,
or an abstract name starting with `@`); `$WATCHDOG_USEC` gives the interval, and `$WATCHDOG_PID`,
when set, names the process it is meant for. Without `$NOTIFY_SOCKET` nothing is sent. Written here
in a few lines: the PyPI `sdnotify` package has not been maintained since 2017.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger("edge-emotion.systemd")
STATUS_EVERY_S = 5.0


class ServiceNotifier:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        self._address = "\0" + address[1:] if address.startswith("@") else address
        self._socket: socket.socket | None = None
        if self._address:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        watchdog_usec = env.get("WATCHDOG_USEC", "")
        meant_for_us = env.get("WATCHDOG_PID", str(os.getpid())) == str(os.getpid())
        # Ping at twice the rate systemd demands, as sd_watchdog_enabled(3) advises.
        self.watchdog_every_s = (int(watchdog_usec) / 2e6 if watchdog_usec.isdigit() and meant_for_us
                                 else None)
        self._ready = False
        self._next_ping = 0.0
        self._next_status = 0.0

    @property
    def enabled(self) -> bool:
        return self._socket is not None

    def send(self, message: str) -> None:
        if self._socket is None:
            return
        try:
            self._socket.sendto(message.encode(), self._address)
        except OSError as exc:  # systemd gone or socket replaced: the daemon carries on regardless
            log.debug("sd_notify %r failed: %s", message, exc)

    def frame_done(self, status: str) -> None:
        """Called by the frame loop after every frame; sends only what is due."""
        if self._socket is None:
            return
        now = time.monotonic()
        if not self._ready:
            self._ready = True
            self.send(f"READY=1\nSTATUS={status}")
            self._next_status = now + STATUS_EVERY_S
        elif now >= self._next_status:
            self.send(f"STATUS={status}")
            self._next_status = now + STATUS_EVERY_S
        if self.watchdog_every_s is not None and now >= self._next_ping:
            self.send("WATCHDOG=1")
            self._next_ping = now + self.watchdog_every_s

    def stopping(self) -> None:
        self.send("STOPPING=1\nSTATUS=stopping: flushing events, publishing offline")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
