"""`python -m device`: the edge-emotion daemon.

    python -m device --config /etc/edge-emotion.toml            # the Pi camera, events over MQTT
    python -m device --source video.mp4 --events-out events.jsonl --no-mqtt   # analyse a recording
    python -m device --source talk.mp4 --audio-file talk.wav --events-out -    # with its sound track

Start-up problems (configuration, model, source, audio with audio.required = true) print one
line on stderr and exit with code 2; the end of a file exits 0 after a summary; SIGTERM/SIGINT
stop capture, flush queued events within mqtt.flush_timeout_s, publish `offline` and exit 0.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from device import __version__
from device.app import App
from device.config import ConfigError, load_config
from device.errors import StartupError
from device.log_setup import setup_logging

log = logging.getLogger("edge-emotion")

# CLI flag → config key; every flag is also reachable as --set section.key=value.
FLAG_KEYS = {"source": "source.uri", "events_out": "events.out", "annotate": "annotate.out",
             "model": "face.model", "broker": "mqtt.url", "device_id": "device.id",
             "log_level": "logging.level"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m device", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="TOML configuration file (see device/example.toml)")
    parser.add_argument("--source",
                        help="picamera2, a camera index, a video file, a stream URL or an image folder")
    parser.add_argument("--events-out", metavar="FILE|-",
                        help="also write every event as a JSON line ('-': stdout)")
    parser.add_argument("--annotate", metavar="VIDEO",
                        help="also write the frames with boxes and emotions drawn on them (.mp4/.avi; "
                             "a live camera needs annotate.allow_live = true)")
    parser.add_argument("--model", help="face model .tflite (its .json card must sit beside it)")
    parser.add_argument("--broker", metavar="URL", help="mqtt://host:port or mqtts://host:port")
    parser.add_argument("--no-mqtt", action="store_true", help="do not connect to a broker")
    parser.add_argument("--device-id", help="device id in topics and messages (default: host name)")
    parser.add_argument("--pace", action="store_true", help="replay files at their frame rate, not flat out")
    parser.add_argument("--audio-file", metavar="PATH",
                        help="also listen to this WAV/FLAC (sets audio.enabled, audio.source = file, "
                             "audio.file); a video file is then paced to keep step with it")
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error"))
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override any configuration key (repeatable)")
    parser.add_argument("--version", action="version", version=f"edge-emotion {__version__}")
    return parser.parse_args(argv)


def cli_overrides(args: argparse.Namespace) -> list[tuple[str, str, str]]:
    """(key, text, flag) triples, in increasing precedence: --set first, then the named flags."""
    overrides = []
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r} must look like section.key=value")
        overrides.append((key.strip(), value.strip(), f"--set {key.strip()}"))
    for attr, key in FLAG_KEYS.items():
        value = getattr(args, attr)
        if value is not None:
            overrides.append((key, value, f"--{attr.replace('_', '-')}"))
    if args.pace:
        overrides.append(("source.pace", "true", "--pace"))
    if args.audio_file is not None:
        overrides += [("audio.enabled", "true", "--audio-file"), ("audio.source", "file", "--audio-file"),
                      ("audio.file", args.audio_file, "--audio-file")]
    if args.no_mqtt:
        overrides.append(("mqtt.url", "", "--no-mqtt"))
    return overrides


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = load_config(args.config, overrides=cli_overrides(args))
        setup_logging(config.logging)
        app = App.build(config)
    except StartupError as exc:
        print(f"edge-emotion: {exc}", file=sys.stderr)
        return 2

    def stop(signum: int, _frame) -> None:
        log.info("%s received: stopping capture", signal.Signals(signum).name)
        app.request_stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    app.start()
    result = app.run()
    closed = app.close()
    app.log_summary(result)
    return result.exit_code or (0 if closed else 1)


if __name__ == "__main__":
    sys.exit(main())
