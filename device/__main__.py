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
import os
import signal
import sys
import uuid
from dataclasses import asdict, replace
from pathlib import Path

import cv2

from device import __version__
from device.audio.audio_sources import AudioSourceError
from device.audio.voice_listener import VoiceListener
from device.audio.voice_provider import VoiceInput
from device.config import Config, ConfigError, load_config
from device.events.emotion_events import MessageFactory, audio_field
from device.fusion.product_rule import Fusion
from device.log_setup import setup_logging
from device.pipeline import Pipeline
from device.pipeline_stats import peak_rss_mb
from device.runtime.labels import FACE_LABELS
from device.runtime.model_card_check import check_face_model, check_model_card
from device.runtime.tflite_model import ModelLoadError, TFLiteModel
from device.runtime.voice_labels import VOICE_LABELS
from device.sinks.jsonl_sink import EventSink, JsonLinesSink
from device.sinks.mqtt_publisher import MqttPublisher
from device.vision.face_classifier import FaceClassifier
from device.vision.face_tracker import FaceTracker
from device.vision.frame_sources import FrameSource, SourceError, open_source
from device.vision.haar_detector import DetectorError, HaarDetector

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


def voice_input(config: Config) -> VoiceInput | None:
    """Start listening (with audio.enabled) and hand the pipeline the listener and the fuser.

    Audio that cannot be used (no pyaudio, a busy or unplugged microphone, an unreadable file or
    voice model) stops the start only with audio.required = true. Otherwise the daemon says so
    once here, runs on video alone and reports the reason in `status` and `stats`.
    """
    if not config.audio.enabled:
        return None
    voice_model = Path(config.audio.model)
    if voice_model.is_file():  # a wrong model or card is a configuration error, required or not
        check_model_card(TFLiteModel(voice_model), voice_model.with_suffix(".json"), "voice", VOICE_LABELS)
    try:
        listener = VoiceListener(**asdict(config.audio))
        fuser = None if config.fusion.method == "none" else Fusion(**asdict(config.fusion))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    try:
        listener.start()
    except (AudioSourceError, ModelLoadError) as exc:
        raise AudioSourceError(f"audio is required (audio.required = true) but cannot be used: {exc}. "
                               "Fix that, or set audio.required = false to run on video alone") from None
    status = listener.status
    if status.state == "unavailable":
        log.warning("audio unavailable, running on video alone (audio.required = false): %s", status.reason)
    else:
        log.info("listening to %s (voice model %s, every %.2f s); fusion %s", status.source,
                 config.audio.model, config.audio.hop_s, config.fusion.method)
    return VoiceInput(listener, VOICE_LABELS, fuser)


def paced_for_audio(config: Config, source: FrameSource, voice: VoiceInput | None) -> Config:
    """A video file keeps step with an audio file only when both run on the wall clock.

    The file audio source plays at real time (as a microphone would) and readings are judged
    fresh by their wall-clock age, so a video file with an audio file is paced at its own frame
    rate: both start together, and frame media time t is shown when about t seconds of audio
    have played (docs/device.md, "Audio and video from files").
    """
    if (voice is None or config.source.pace or source.live or config.audio.source != "file"
            or voice.provider.status.state != "running"):
        return config
    log.info("pacing %s at its frame rate to keep step with the audio file (offline analysis with "
             "audio takes as long as the recording)", source.description)
    return replace(config, source=replace(config.source, pace=True))


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
    messages = MessageFactory(config.device_id, uuid.uuid4().hex, identity, FACE_LABELS)
    source = open_source(config.source)
    sinks: list[EventSink] = []
    try:
        if config.events.out:
            try:
                sinks.append(JsonLinesSink(config.events.out))
            except OSError as exc:
                raise ConfigError(f"events.out: {exc}") from None
        # Last, so that a file's audio starts within milliseconds of the first frame.
        voice = voice_input(config)
    except BaseException:
        source.close()
        for sink in sinks:
            sink.close(0.0)
        raise
    config = paced_for_audio(config, source, voice)
    publisher = None
    if config.mqtt.url:
        audio = audio_field(voice.provider.status) if voice is not None else None
        publisher = MqttPublisher(config, messages.status("online", __version__, audio),
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
    except (ConfigError, ModelLoadError, SourceError, DetectorError, AudioSourceError) as exc:
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
        if pipeline.voice is not None:
            pipeline.voice.provider.stop()
        for sink in pipeline.sinks:
            sink.close(config.mqtt.flush_timeout_s)
    types = ", ".join(f"{k} {v}" for k, v in sorted(summary["event_types"].items())) or "none"
    undelivered = pipeline.publisher.queue_depth if pipeline.publisher else 0
    log.info("done: %d frames in %.1f s (%.1f fps), %d tracks, %d events (%s), %d undelivered, "
             "%d dropped frames, peak RSS %.0f MB", summary["frames"], summary["seconds"], summary["fps"],
             summary["tracks"], summary["events"], types, undelivered, summary["dropped_frames"],
             peak_rss_mb())
    if pipeline.voice is not None:
        status, heard = pipeline.voice.provider.status, pipeline.voice.provider.stats()
        log.info("audio %s%s: %d windows, %d voiced, %.1f ms per classified window, %d skipped hops",
                 status.state, f" ({status.source})" if status.source else "", heard["windows"],
                 heard["voiced_windows"], heard["classify_ms_mean"], heard["skipped_hops"])
    return code


if __name__ == "__main__":
    sys.exit(main())
