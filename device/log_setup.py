"""Log lines for a person reading them at 3 a.m.: time, level, which part, one sentence.

Under systemd, stderr goes to the journal (`journalctl -u edge-emotion`); `logging.file` writes
to a file instead. Third-party chatter (paho) stays at warning and above.
"""

from __future__ import annotations

import io
import logging
import os
import sys

from device.config import LoggingSection

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _own_stderr() -> io.TextIOBase:
    """A stream on a copy of descriptor 2. While a C library's chatter is diverted from descriptor 2
    (`device/runtime/native_output.py`, e.g. BlazeFace sizing its input on the first frame), the
    other threads' log lines still reach the person: through descriptor 2 itself they went into the
    diversion (the MQTT thread's "connected" and its ACL refusals were lost that way)."""
    try:
        return open(os.dup(sys.stderr.fileno()), "w", buffering=1, encoding="utf-8", errors="replace")
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):  # stderr is not a file here
        return sys.stderr


def setup_logging(section: LoggingSection) -> None:
    handler: logging.Handler = (logging.FileHandler(section.file, encoding="utf-8") if section.file
                                else logging.StreamHandler(_own_stderr()))
    handler.setFormatter(logging.Formatter(FORMAT, datefmt="%Y-%m-%d %H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("edge-emotion").setLevel(section.level.upper())
