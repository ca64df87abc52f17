"""Log lines reach the person even while a C library's output is diverted from descriptor 2."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import logging, os, threading
    from device.config import LoggingSection
    from device.log_setup import setup_logging
    from device.runtime.native_output import native_output_to_debug_log

    setup_logging(LoggingSection())
    with native_output_to_debug_log("a test library"):
        os.write(2, b"C library chatter\\n")
        # as the MQTT thread logs while BlazeFace sizes its input on the first frame
        worker = threading.Thread(target=lambda: logging.getLogger("edge-emotion.mqtt").info("connected"))
        worker.start()
        worker.join()
    logging.getLogger("edge-emotion").info("after")
""")


def test_log_lines_written_while_native_output_is_diverted_still_reach_stderr() -> None:
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert [line.split(": ", 1)[1] for line in lines] == ["connected", "after"], result.stderr
    assert "C library chatter" not in result.stderr  # the library's text stays diverted (debug log)
