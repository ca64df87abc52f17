"""The application object: builds every part of the daemon from the config, and owns start and stop.

    app = App.build(config)      # everything that can refuse to start does so here (StartupError)
    app.start()                  # sinks start delivering (MQTT connects)
    result = app.run()           # the frame loop, until the source ends or `request_stop()`
    app.close()                  # capture, audio, each sink, MQTT last

The CLI, the benchmark and the tests all go through it, so the order in which things open and
close is written once. Closing goes on when one part fails to close, so `offline` is always
published: MQTT closes last, after the events file, and a full disk cannot skip it.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import cv2

from device import __version__
from device.audio.audio_sources import AudioSourceError
from device.audio.voice_classifier import VoiceClassifier
from device.audio.voice_listener import VoiceListener
from device.audio.voice_provider import VoiceInput
from device.config import Config
from device.errors import ConfigError, PipeClosedError, SinkError, SourceError
from device.events.emotion_events import MessageFactory, audio_field
from device.fusion.product_rule import Fusion
from device.pipeline import Pipeline
from device.pipeline_stats import peak_rss_mb
from device.runtime.labels import FACE_LABELS
from device.runtime.model_card_check import check_model_card
from device.runtime.voice_labels import VOICE_LABELS
from device.service_notify import ServiceNotifier
from device.sinks.annotated_video import AnnotatedVideo
from device.sinks.event_sink import EventSink
from device.sinks.home_assistant import announcement
from device.sinks.jsonl_sink import JsonLinesSink
from device.sinks.mqtt_publisher import MqttPublisher
from device.vision.detector_factory import build_detector
from device.vision.face_classifier import FaceClassifier
from device.vision.face_gate import GATE_LABELS, FaceGate
from device.vision.face_tracker import FaceTracker
from device.vision.frame_sources import FrameSource, open_source

log = logging.getLogger("edge-emotion")


@dataclass(frozen=True)
class RunResult:
    """How a run ended: the summary for the last log line and the process exit code."""

    summary: dict
    exit_code: int  # 0: the source ended or a stop was asked for; 1: a run-time failure


def open_voice(config: Config) -> VoiceInput | None:
    """Open the voice model (once), check it against its card, and start listening.

    Audio that cannot be used (no pyaudio, a busy or unplugged microphone, an unreadable file)
    stops the start only with audio.required = true. Otherwise the daemon says so once here, runs
    on video alone and reports the reason in `status` and `stats`. A wrong model or card is a
    configuration error, required or not.
    """
    if not config.audio.enabled:
        return None
    classifier = VoiceClassifier(config.audio.model, num_threads=config.device.num_threads)
    check_model_card(classifier.model, Path(config.audio.model).with_suffix(".json"), "voice", VOICE_LABELS)
    fuser = None if config.fusion.method == "none" else Fusion(config.fusion)
    listener = VoiceListener(config.audio, classifier)
    try:
        listener.start()
    except AudioSourceError as exc:
        raise AudioSourceError(f"audio is required (audio.required = true) but cannot be used: {exc}. "
                               "Fix that, or set audio.required = false to run on video alone") from None
    status = listener.status
    if status.state == "unavailable":
        log.warning("audio unavailable, running on video alone (audio.required = false): %s", status.reason)
    else:
        log.info("listening to %s (voice model %s, every %.2f s); fusion %s", status.source,
                 config.audio.model, config.audio.hop_s, config.fusion.method)
    return VoiceInput(listener, VOICE_LABELS, fuser)


def open_gate(config: Config) -> FaceGate | None:
    """The face gate, checked against its card like every model, when `gate.enabled`."""
    if not config.gate.enabled:
        return None
    gate = FaceGate(config.gate.model, config.gate.threshold, config.detector.crop_margin,
                    num_threads=config.device.num_threads)
    identity = check_model_card(gate.model, Path(config.gate.model).with_suffix(".json"), "face_gate",
                                GATE_LABELS)
    log.info("face gate %s (version %s): a new detection starts a track at P(face) >= %g", identity.name,
             identity.version, config.gate.threshold)
    return gate


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


def open_annotator(config: Config, source: FrameSource) -> AnnotatedVideo | None:
    """`--annotate`: refused for a live camera unless allowed, since it writes pictures of people."""
    if not config.annotate.out:
        return None
    if source.live and not config.annotate.allow_live:
        raise ConfigError(f"annotate.out: {source.description} is a live camera and --annotate would write "
                          "pictures of people to disk; set annotate.allow_live = true if that is intended")
    return AnnotatedVideo(config.annotate.out, source.fps)


class App:
    """The daemon's parts, built from one config, opened and closed in one fixed order."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.config = pipeline.config

    @classmethod
    def build(cls, config: Config) -> App:
        """Open everything; a StartupError (exit 2) leaves nothing open behind it."""
        cv2.setNumThreads(config.device.num_threads)
        # Our own messages say what failed; OpenCV's and FFmpeg's would add lines a person has to decode.
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
        classifier = FaceClassifier.for_section(config.face, config.device.num_threads)
        identity = check_model_card(classifier.model, config.card_path, "face", FACE_LABELS)
        gate = open_gate(config)
        detector = build_detector(config)
        tracker = FaceTracker(config.tracker)
        messages = MessageFactory(config.device_id, uuid.uuid4().hex, identity, FACE_LABELS)
        opened: list[tuple[str, Callable[[], None]]] = []
        try:
            source = open_source(config.source)
            opened.append(("capture", source.close))
            sinks: list[EventSink] = []
            if config.events.out:
                sinks.append(JsonLinesSink(config.events.out))
                opened.append((sinks[-1].name, partial(sinks[-1].close, 0.0)))
            annotator = open_annotator(config, source)
            # Last, so that a file's audio starts within milliseconds of the first frame.
            voice = open_voice(config)
        except BaseException:
            close_in_order(reversed(opened))
            raise
        config = paced_for_audio(config, source, voice)
        if config.mqtt.url:
            audio = audio_field(voice.provider.status) if voice is not None else None
            # Home Assistant's entities follow the configuration (audio enabled), not whether the
            # microphone opened this time: a device's entities should not come and go.
            discovery = announcement(config.home_assistant, config.device_id, config.topic_prefix,
                                     __version__, FACE_LABELS, VOICE_LABELS if config.audio.enabled else None,
                                     config.events.heartbeat_s,
                                     config.audio.enabled and config.fusion.method != "none")
            sinks.append(MqttPublisher(config.mqtt, config.topic_prefix, config.password,
                                       messages.status("online", __version__, audio),
                                       messages.status("offline", __version__), messages.state([]),
                                       discovery))
        log.info("face model %s (version %s, %s, input %s %s); source %s (%s, %.1f fps)", identity.name,
                 identity.version, classifier.model.runtime, classifier.model.input.shape,
                 classifier.model.input.dtype.name, source.description, "live" if source.live else "file",
                 source.fps)
        return cls(Pipeline(config, source, detector, tracker, classifier, messages, sinks, voice,
                            ServiceNotifier(), annotator, gate))

    def start(self) -> None:
        for sink in self.pipeline.sinks:
            sink.start()
        log.info("running as %s", self.config.device_id)

    def request_stop(self) -> None:
        """Safe from a signal handler: the frame loop ends after the frame in hand."""
        self.pipeline.stop.set()

    def run(self) -> RunResult:
        try:
            return RunResult(self.pipeline.run(), 0)
        except PipeClosedError as exc:
            log.info("%s; stopping", exc)
            return RunResult(self.pipeline.summary(), 0)
        except SinkError as exc:
            log.error("%s", exc)
        except SourceError as exc:
            log.error("%s; exiting so the service manager can restart the daemon", exc)
        return RunResult(self.pipeline.summary(), 1)

    def close(self) -> bool:
        """Capture, audio, then each sink with the flush timeout (MQTT last, so `offline` always goes
        out). Returns False when any part failed to close (logged); the rest still closed."""
        pipeline = self.pipeline
        pipeline.notifier.stopping()
        closers: list[tuple[str, Callable[[], None]]] = [("capture", pipeline.source.close)]
        if pipeline.annotator is not None:
            closers.append(("the annotated video", pipeline.annotator.close))
        if pipeline.voice is not None:
            closers.append(("audio", pipeline.voice.provider.stop))
        for sink in sorted(pipeline.sinks, key=lambda sink: isinstance(sink, MqttPublisher)):
            closers.append((sink.name, partial(sink.close, self.config.mqtt.flush_timeout_s)))
        closers.append(("the systemd notification socket", pipeline.notifier.close))
        return close_in_order(closers)

    def log_summary(self, result: RunResult) -> None:
        summary, health = result.summary, self.pipeline.health()
        types = ", ".join(f"{k} {v}" for k, v in sorted(summary["event_types"].items())) or "none"
        log.info("done: %d frames in %.1f s (%.1f fps), %d tracks, %d events (%s), %d undelivered, "
                 "%d dropped from the full queue, %d refused by the broker, %d dropped frames, "
                 "peak RSS %.0f MB", summary["frames"], summary["seconds"], summary["fps"], summary["tracks"],
                 summary["events"], types, health.queue_depth, health.dropped, health.denied,
                 summary["dropped_frames"], peak_rss_mb())
        gate = self.pipeline.gate
        if gate is not None:
            log.info("face gate: %d new detections scored, %d turned away", gate.checked, gate.rejected)
        voice = self.pipeline.voice
        if voice is not None:
            status, heard = voice.provider.status, voice.provider.stats()
            log.info("audio %s%s: %d windows, %d voiced, %.1f ms per classified window, %d skipped hops",
                     status.state, f" ({status.source})" if status.source else "", heard["windows"],
                     heard["voiced_windows"], heard["classify_ms_mean"], heard["skipped_hops"])


def close_in_order(closers: Iterable[tuple[str, Callable[[], None]]]) -> bool:
    """Run every closer; a failure is one log line, never a reason to skip the ones after it."""
    ok = True
    for name, close in closers:
        try:
            close()
        except Exception as exc:
            log.error("closing %s failed: %s", name, exc)
            ok = False
    return ok
