"""Keep what C libraries print on the process's stderr out of the person's way.

LiteRT prints `INFO: Created TensorFlow Lite XNNPACK delegate for CPU.` when a model is loaded,
and ALSA and JACK print a screen of probing noise when PortAudio starts. They write to file
descriptor 2 directly, past Python's logging, so a start-up failure's one clear line would come
after lines a person has to decode. Around those calls, descriptor 2 goes to a temporary file
whose text is logged at debug level instead.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger("edge-emotion.native")
_lock = threading.Lock()  # descriptors are process-wide: one redirection at a time


@contextmanager
def native_output_to_debug_log(what: str, fd: int = 2) -> Iterator[None]:
    """Descriptor `fd` (2: stderr, 1: stdout) goes to the debug log for the duration."""
    with _lock, tempfile.TemporaryFile() as capture:
        (sys.stdout if fd == 1 else sys.stderr).flush()
        saved = os.dup(fd)
        os.dup2(capture.fileno(), fd)
        try:
            yield
        finally:
            os.dup2(saved, fd)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode("utf-8", "replace").strip()
            if text:
                log.debug("%s printed: %s", what, text)
