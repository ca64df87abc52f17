"""`python -m device`: the edge-emotion daemon.

    python -m device --config /etc/edge-emotion.toml            # the Pi camera, events over MQTT
    python -m device --source video.mp4 --events-out events.jsonl --no-mqtt   # analyse a recording

Start-up problems (configuration, model, source) print one line on stderr and exit with code 2;
the end of a file exits 0 after a summary; SIGTERM/SIGINT stop capture, flush queued events
within mqtt.flush_timeout_s, publish `offline` and exit 0.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import uuid

import cv2

from device import __version__
from device.config import Config, ConfigError, load_config
from device.emotion_events import MessageFactory
from device.event_sinks import EventSink, JsonLinesSink
from device.face_classifier import FaceClassifier
from device.face_tracker import FaceTracker
from device.frame_sources import SourceError, open_source
from device.haar_detector import DetectorError, HaarDetector
from device.labels import FACE_LABELS
from device.log_setup import setup_logging
from device.model_card_check import check_face_model
from device.mqtt_publisher import MqttPublisher
from device.pipeline import Pipeline
from device.pipeline_stats import peak_rss_mb
from device.tflite_model import ModelLoadError
from device.voice_provider import VoiceInput

log = logging.getLogger("edge-emotion")

# CLI flag → config key; every flag is also reachable as --set section.key=value.
FLAG_KEYS = {"source": "source.uri", "events_out": "events.out", "model": "face.model",
             "broker": "mqtt.url", "device_id": "device.id", "log_level": "logging.level"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m device", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="TOML configuration file (see device/example.toml)")
    parser.add_argument("--source",
                        help="picamera2, a camera index, a video file, a stream URL or an image folder")
    parser.add_argument("--events-out", metavar="FILE|-",
                        help="also write every event as a JSON line ('-': stdout)")
    parser.add_argument("--model", help="face model .tflite (its .json card must sit beside it)")
    parser.add_argument("--broker", metavar="URL", help="mqtt://host:port or mqtts://host:port")
    parser.add_argument("--no-mqtt", action="store_true", help="do not connect to a broker")
    parser.add_argument("--device-id", help="device id in topics and messages (default: host name)")
    parser.add_argument("--pace", action="store_true", help="replay files at their frame rate, not flat out")
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
    if args.no_mqtt:
        overrides.append(("mqtt.url", "", "--no-mqtt"))
    return overrides


def voice_input(config: Config) -> VoiceInput | None:
    """The voice provider and fuser for the pipeline; the audio side plugs in here."""
    if not config.audio.enabled:
        return None
    if config.audio.required:
        raise ConfigError("audio.required = true, but this build has no audio input wired into the daemon; "
                          "set audio.enabled = false or install a build with voice support")
    log.warning("audio.enabled = true, but this build has no audio input wired in; running on faces only")
    return None


def build_pipeline(config: Config) -> Pipeline:
    """Everything that can refuse to start does so here, before any broker connection."""
    cv2.setNumThreads(config.device.num_threads)
    # Our own messages say what failed; OpenCV's and FFmpeg's would add lines a person has to decode.
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    classifier = FaceClassifier(config.face.model, num_threads=config.device.num_threads,
                                flip_tta=config.face.flip_tta)
    identity = check_face_model(classifier.model, config.card_path)
    d, t = config.detector, config.tracker
    detector = HaarDetector(d.cascade, d.detect_width, d.scale_factor, d.min_neighbors, d.min_size)
    tracker = FaceTracker(t.iou_threshold, t.max_missed, t.follow, t.follow_min_score)
    voice = voice_input(config)
    messages = MessageFactory(config.device_id, uuid.uuid4().hex, identity, FACE_LABELS)
    source = open_source(config.source)
    sinks: list[EventSink] = []
    if config.events.out:
        try:
            sinks.append(JsonLinesSink(config.events.out))
        except OSError as exc:
            source.close()
            raise ConfigError(f"events.out: {exc}") from None
    publisher = None
    if config.mqtt.url:
        publisher = MqttPublisher(config, messages.status("online", __version__),
                                  messages.status("offline", __version__))
        sinks.append(publisher)
    log.info("face model %s (version %s, %s, input %s %s); source %s (%s, %.1f fps)", identity.name,
             identity.version, classifier.model.runtime, classifier.model.input.shape,
             classifier.model.input.dtype.name, source.description, "live" if source.live else "file",
             source.fps)
    return Pipeline(config, source, detector, tracker, classifier, messages, sinks, publisher, voice)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = load_config(args.config, overrides=cli_overrides(args))
        setup_logging(config.logging)
        pipeline = build_pipeline(config)
    except (ConfigError, ModelLoadError, SourceError, DetectorError) as exc:
        print(f"edge-emotion: {exc}", file=sys.stderr)
        return 2

    def stop(signum: int, _frame) -> None:
        log.info("%s received: stopping capture", signal.Signals(signum).name)
        pipeline.stop.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if pipeline.publisher is not None:
        pipeline.publisher.start()
    log.info("running as %s", config.device_id)
    code = 0
    try:
        summary = pipeline.run()
    except SourceError as exc:
        log.error("%s; exiting so the service manager can restart the daemon", exc)
        summary, code = pipeline.summary(), 1
    finally:
        pipeline.source.close()
        for sink in pipeline.sinks:
            sink.close(config.mqtt.flush_timeout_s)
    types = ", ".join(f"{k} {v}" for k, v in sorted(summary["event_types"].items())) or "none"
    undelivered = pipeline.publisher.queue_depth if pipeline.publisher else 0
    log.info("done: %d frames in %.1f s (%.1f fps), %d tracks, %d events (%s), %d undelivered, "
             "%d dropped frames, peak RSS %.0f MB", summary["frames"], summary["seconds"], summary["fps"],
             summary["tracks"], summary["events"], types, undelivered, summary["dropped_frames"],
             peak_rss_mb())
    return code


if __name__ == "__main__":
    sys.exit(main())
