"""Log lines for a person reading them at 3 a.m.: time, level, which part, one sentence.

Under systemd, stderr goes to the journal (`journalctl -u edge-emotion`); `logging.file` writes
to a file instead. Third-party chatter (paho) stays at warning and above.
"""

from __future__ import annotations

import logging

from device.config import LoggingSection

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(section: LoggingSection) -> None:
    handler: logging.Handler = (logging.FileHandler(section.file, encoding="utf-8") if section.file
                                else logging.StreamHandler())
    handler.setFormatter(logging.Formatter(FORMAT, datefmt="%Y-%m-%d %H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("edge-emotion").setLevel(section.level.upper())
