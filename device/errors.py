"""Every failure the daemon reports in words, in one place.

`StartupError` and its kinds stop the daemon before it touches a broker: `python -m device`
prints the one line and exits 2 (systemd's `RestartPreventExitStatus=2` then stops retrying a
configuration that cannot work). At run time a `SourceError` (the camera stopped) or a
`SinkError` (the events file cannot be written) ends the run with exit 1, so the service manager
restarts the daemon; the other sinks still close in order.
"""

from __future__ import annotations


class StartupError(Exception):
    """A problem that stops the start; the message names what and where, and what to do."""


class ConfigError(StartupError, ValueError):
    """A configuration problem; the message names the key, where it came from and what to do."""


class ModelLoadError(StartupError):
    """A model file that cannot be used; the message says which file and what to do."""


class ModelCardError(ModelLoadError):
    """The card is missing, unreadable, or contradicts the model file."""


class DetectorError(StartupError):
    """The Haar cascade cannot be loaded."""


class SourceError(StartupError):
    """The frame source cannot be opened or has stopped delivering; the message says which and why."""


class AudioSourceError(StartupError):
    """An audio input that cannot be used; the message names it and says what to do."""


class SinkError(StartupError):
    """Events cannot be written where they were asked to go (a full disk, a removed folder)."""


class PipeClosedError(Exception):
    """The reader went away (`--events-out - | head -1`): not a fault, the run just ends."""
