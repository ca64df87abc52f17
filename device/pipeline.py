"""source → detector → tracker → classifier → smoother → events → sinks, one frame at a time.

Everything here runs on the capture thread in a fixed order, so one frame's work is finished
before the next is read and the stage clock adds up. The numeric work lives in the pure modules;
this one only sequences it, keeps per-track state and decides when to talk.

With audio on, each frame also picks up the listener's latest reading (never waiting for it):
when it is fresh, events carry it as `voice`, and the likely speaker's events carry the fusion
of that face with the voice as `fused`; a change of the fused emotion is a `change` event too.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import partial

import cv2
import numpy as np

from device.audio.voice_provider import VoiceInput, VoiceReading
from device.audio.voice_utterance import VoiceUtterance
from device.config import Config
from device.errors import PipeClosedError, SinkError
from device.events.affect_circumplex import circumplex_points, valence_arousal
from device.events.emotion_events import (
    MessageFactory,
    TrackSnapshot,
    audio_field,
    due_event,
    fused_field,
    speaker_field,
    voice_field,
)
from device.events.emotion_smoother import TrackEmotion, alpha_per_classification, classified_on
from device.fusion.speaker_fusion import SpeakerFusion, likely_speaker
from device.pipeline_stats import PipelineStats, cpu_temperature_c, rss_mb
from device.service_notify import ServiceNotifier
from device.sinks.annotated_video import AnnotatedVideo, VoiceOverlay
from device.sinks.event_sink import EventSink, SinkHealth
from device.vision.box_geometry import Box, crop, expand_and_clip
from device.vision.detector_factory import FaceDetector
from device.vision.face_classifier import FaceClassifier
from device.vision.face_gate import FaceGate
from device.vision.face_tracker import FaceTracker, Track
from device.vision.frame_sources import Frame, FrameSource

log = logging.getLogger("edge-emotion.pipeline")
MIN_CROP = 8


@dataclass
class ReportedTrack:
    """What the pipeline remembers of a track between frames: its smoothed emotion, whether
    subscribers have heard of it (`appear` sent) and when it last had an event."""

    emotion: TrackEmotion = field(default_factory=TrackEmotion)
    announced: bool = False
    last_event_s: float = 0.0


@dataclass(frozen=True)
class HeardVoice:
    """This frame's voice reading, fresh enough to report, with its age on the wall clock."""

    reading: VoiceReading
    age_s: float

    @property
    def voiced(self) -> bool:
        return self.reading.probabilities is not None


class Pipeline:
    def __init__(self, config: Config, source: FrameSource, detector: FaceDetector, tracker: FaceTracker,
                 classifier: FaceClassifier, messages: MessageFactory, sinks: list[EventSink],
                 voice: VoiceInput | None = None, notifier: ServiceNotifier | None = None,
                 annotator: AnnotatedVideo | None = None, gate: FaceGate | None = None) -> None:
        self.config = config
        self.source = source
        self.detector = detector
        self.tracker = tracker
        self.classifier = classifier
        self.messages = messages
        self.sinks = sinks
        self.voice = voice
        self.notifier = notifier or ServiceNotifier({})
        self.annotator = annotator
        self.gate = gate
        self.stop = threading.Event()
        self.stats = PipelineStats()
        self.reports: dict[int, ReportedTrack] = {}
        self.event_counts: Counter[str] = Counter()
        self.tracks_seen = 0
        self._points = circumplex_points(messages.labels)
        self._frame_meta: dict = {}
        self.speaker_fusion = (SpeakerFusion(voice.fuser, config.smoothing.margin,
                                             config.audio.utterance_alpha)
                               if voice is not None and voice.fuser is not None else None)
        self._heard: HeardVoice | None = None
        self._alpha = alpha_per_classification(config.smoothing.alpha, config.face.every_n_frames)
        self.utterance = VoiceUtterance(config.audio.utterance_alpha, config.smoothing.margin)
        self._stated_speaker: tuple[int, str] | None = None  # (track, fused emotion) in the last state
        self._audio_state = voice.provider.status.state if voice is not None else ""

    def run(self) -> dict:
        """Process frames until the source ends or `stop` is set; return the run's summary."""
        cfg = self.config
        pace = cfg.source.pace and not self.source.live
        wall_start = time.monotonic()
        next_stats = wall_start + cfg.mqtt.stats_every_s
        while not self.stop.is_set():
            t0 = time.perf_counter()
            frame = self.source.read()
            self.stats.add("capture", time.perf_counter() - t0)
            if frame is None:
                break
            if pace:
                time.sleep(max(0.0, wall_start + frame.media_time_s - time.monotonic()))
            self.process(frame)
            self.notifier.frame_done(self._status_line())
            if time.monotonic() >= next_stats:
                next_stats += cfg.mqtt.stats_every_s
                self._send_stats()
        self._deliver(self._end_events(self.tracker.end_all(), self._frame_meta.get("media_time_s", 0.0)))
        self._send_stats()
        return self.summary()

    def _status_line(self) -> str:
        """`systemctl status` shows this: is it seeing, how fast, how many faces."""
        elapsed = max(time.monotonic() - self.stats.started, 1e-9)
        return (f"{self.stats.frames / elapsed:.1f} fps, {len(self.tracker.tracks)} face(s), "
                f"{sum(self.event_counts.values())} events")

    def process(self, frame: Frame) -> None:
        cfg = self.config
        clock = time.perf_counter
        grey = frame.grey
        height, width = grey.shape
        self._frame_meta = {"index": frame.index, "media_time_s": round(frame.media_time_s, 3),
                            "width": width, "height": height}
        t0 = clock()
        small, factor = self.detector.downscale(grey)
        ended: list[Track] = []
        if frame.index % cfg.detector.every_n_frames == 0:
            boxes = self.detector.detect_small(small, factor)
            t1 = clock()
            admit = partial(self.gate.admits, grey) if self.gate is not None else None
            changes = self.tracker.update(boxes, small, factor, frame.media_time_s, admit)
            ended = changes.ended
            self.tracks_seen += len(changes.started)
        else:
            t1 = clock()
            ended = self.tracker.follow(small, factor)
        speaker = self._listen()
        t2 = clock()
        self.stats.add("detect", t1 - t0)
        self.stats.add("track", t2 - t1)
        events = self._end_events(ended, frame.media_time_s)
        for track in self.tracker.tracks:
            box = expand_and_clip(track.box, cfg.detector.crop_margin, width, height)
            if box.w < MIN_CROP or box.h < MIN_CROP:
                continue
            report = self.reports.get(track.track_id)
            previous = None
            if report is None or classified_on(frame.index, track.track_id, cfg.face.every_n_frames):
                report, previous = self._classify(track.track_id, grey, box)
            t0 = clock()
            fused_previous = self._fuse_speaker(track, report) if track is speaker else None
            kind = due_event(report.announced, previous is not None or fused_previous is not None,
                             report.last_event_s, frame.media_time_s, cfg.events.heartbeat_s)
            if kind is not None:
                extras = {}
                if kind == "change" and previous is not None:
                    extras["previous_emotion"] = self.messages.labels[previous]
                if kind == "appear" and cfg.events.snapshot:
                    extras["snapshot"] = _jpeg(crop(grey, box))
                events.append(self._event(kind, track, report, frame.media_time_s, extras,
                                          fused_previous if kind == "change" else None))
                report.announced, report.last_event_s = True, frame.media_time_s
            self.stats.add("smooth", clock() - t0)
        t0 = clock()
        self._deliver(events)
        if self.annotator is not None:
            self.annotator.write(grey, self._snapshots(), self._voice_overlay())
        self.stats.add("publish", clock() - t0)
        self.stats.frame_done(len(self.tracker.tracks))

    def _classify(self, track_id: int, grey: np.ndarray, box: Box) -> tuple[ReportedTrack, int | None]:
        """Classify the track's crop into its smoothed emotion; its report and the previous dominant
        class if this changed it. Between classifications (`face.every_n_frames`) the track keeps
        its smoothed emotion, and the voice still fuses with it on the frame a reading arrives."""
        clock = time.perf_counter
        t0 = clock()
        views = self.classifier.views(crop(grey, box))
        t1 = clock()
        probabilities = self.classifier.classify_views(views)
        t2 = clock()
        report = self.reports.setdefault(track_id, ReportedTrack())
        previous = report.emotion.update(probabilities, self._alpha, self.config.smoothing.margin)
        self.stats.add("preprocess", t1 - t0)
        self.stats.add("infer", t2 - t1)
        self.stats.add("smooth", clock() - t2)
        return report, previous

    def _end_events(self, ended: list[Track], time_s: float) -> list[dict]:
        events = []
        for track in ended:
            report = self.reports.pop(track.track_id, None)
            if report is not None and report.announced:
                events.append(self._event("end", track, report, time_s, {}))
        return events

    def _deliver(self, events: list[dict]) -> None:
        """Events, then the state they leave; the state also goes out alone when the speaker (or
        their fused emotion) changed without an event: someone stopped talking, or began."""
        speaker = self._speaker()
        heard = None if speaker is None else (speaker["track_id"], speaker["emotion"])
        if not events and heard == self._stated_speaker:
            return
        for event in events:
            self.event_counts[event["type"]] += 1
            log.debug("event %d: track %d %s, %s %.2f", event["seq"], event["track_id"], event["type"],
                      event["emotion"], event["confidence"])
            self._to_every_sink("publish_event", event)
        self._to_every_sink("publish_state", self.messages.state(self._snapshots(), speaker))
        self._stated_speaker = heard

    def _speaker(self) -> dict | None:
        """`state.speaker`: the track the voice is fused with now, while it is in view and announced."""
        fusion = self.speaker_fusion
        if fusion is None or fusion.track_id is None:
            return None
        report = self.reports.get(fusion.track_id)
        if report is None or not report.announced:
            return None
        return speaker_field(self.messages.labels, fusion.track_id, fusion.emotion, fusion.method)

    def _send_stats(self) -> None:
        stats = self.stats_message()
        self._log_audio_change()
        self._to_every_sink("publish_stats", stats)

    def _to_every_sink(self, method: str, message: dict) -> None:
        """Every sink gets the message even when one of them fails (a full disk must not keep an
        event from the broker); the first failure is raised afterwards and ends the run."""
        failure: Exception | None = None
        for sink in self.sinks:
            try:
                getattr(sink, method)(message)
            except (SinkError, PipeClosedError) as exc:
                failure = failure or exc
        if failure is not None:
            raise failure

    def health(self) -> SinkHealth:
        return sum((sink.health() for sink in self.sinks), SinkHealth())

    def _log_audio_change(self) -> None:
        """One log line when the audio side stops (file played out, microphone gone), not one per period."""
        if self.voice is None:
            return
        status = self.voice.provider.status
        if status.state == self._audio_state:
            return
        self._audio_state = status.state
        reason = f" ({status.reason})" if status.reason else ""
        if status.state == "running":
            log.info("audio from %s is running again", status.source)
        else:
            log.log(logging.WARNING if status.state == "unavailable" else logging.INFO,
                    "audio %s%s; events carry the face alone from here", status.state, reason)

    def _snapshot(self, track: Track, report: ReportedTrack, time_s: float) -> TrackSnapshot:
        emotion = report.emotion
        valence, arousal = valence_arousal(emotion.smoothed, self._points)
        return TrackSnapshot(track.track_id, track.box, max(0.0, time_s - track.started_s),
                             self.messages.labels[emotion.dominant], emotion.confidence, emotion.smoothed,
                             valence, arousal)

    def _snapshots(self) -> list[TrackSnapshot]:
        time_s = self._frame_meta.get("media_time_s", 0.0)
        return [self._snapshot(t, self.reports[t.track_id], time_s) for t in self.tracker.tracks
                if t.track_id in self.reports and self.reports[t.track_id].announced]

    def _event(self, kind: str, track: Track, report: ReportedTrack, time_s: float, extras: dict,
               fused_previous: int | None = None) -> dict:
        snapshot = self._snapshot(track, report, time_s)
        return self.messages.event(kind, snapshot, dict(self._frame_meta),
                                   {**extras, **self._voice_fields(track.track_id, fused_previous)})

    def _voice_overlay(self) -> VoiceOverlay | None:
        """What the annotated video shows of the voice: the reading, and the speaker's fused emotion."""
        heard = self._heard
        if heard is None:
            return None
        reading = heard.reading
        text = "voice: silent"
        if reading.probabilities is not None:
            best = int(np.argmax(reading.probabilities))
            text = f"voice: {self.voice.labels[best]} {float(reading.probabilities[best]):.2f}"
        fusion = self.speaker_fusion
        if fusion is None or fusion.track_id is None:
            return VoiceOverlay(text)
        label = self.messages.labels[fusion.emotion.dominant]
        return VoiceOverlay(text, fusion.track_id, f"fused: {label} {fusion.emotion.confidence:.2f}")

    def _listen(self) -> Track | None:
        """Pick up the latest voice reading for this frame; return the track to fuse it with.

        A reading older than fusion.stale_after_s is dropped (the face stands alone); without a
        voiced reading the utterance is over, there is no speaker and the fused state is forgotten.
        """
        self._heard = None
        if self.voice is None:
            return None
        reading = self.voice.provider.latest()
        if reading is not None:
            now = time.time()
            age = max(0.0, now - reading.timestamp)
            if age <= self.config.fusion.stale_after_s:
                self._heard = HeardVoice(reading, age)
        if self._heard is not None and self._heard.voiced:
            self.utterance.hear(self._heard.reading)
        else:
            self.utterance.clear()
        if self.speaker_fusion is None:
            return None
        speaker = likely_speaker(self.tracker.tracks) if self._heard and self._heard.voiced else None
        if speaker is None:
            self.speaker_fusion.clear()
        return speaker

    def _fuse_speaker(self, track: Track, report: ReportedTrack) -> int | None:
        """Fuse the speaker's smoothed face with the voice; the previous fused class if it changed."""
        heard = self._heard
        return self.speaker_fusion.update(track.track_id, report.emotion.smoothed, heard.reading)

    def _voice_fields(self, track_id: int, fused_previous: int | None) -> dict:
        """`voice` on every event while the reading is fresh; `fused` on the speaker's events."""
        heard = self._heard
        if heard is None:
            return {}
        fields = {"voice": voice_field(self.voice.labels, heard.reading, heard.age_s, self.utterance)}
        fusion = self.speaker_fusion
        if fusion is not None and fusion.track_id == track_id:
            fields["fused"] = fused_field(self.messages.labels, fusion.emotion, fusion.method, fused_previous)
        return fields

    def stats_message(self) -> dict:
        window = self.stats.window()
        health = self.health()
        return self.messages.stats({
            "uptime_s": round(time.monotonic() - self.stats.started, 1), "frames": self.stats.frames,
            **window, "faces": len(self.tracker.tracks), "dropped_frames": self.source.dropped,
            "queue_depth": health.queue_depth,
            "events": sum(self.event_counts.values()),
            "events_dropped": health.dropped, "events_denied": health.denied,
            "cpu_temp_c": cpu_temperature_c(), "rss_mb": round(rss_mb(), 1), **self._audio_stats()})

    def _audio_stats(self) -> dict:
        """`audio` in stats: listening, finished, or unavailable and why, with the listener's counters."""
        if self.voice is None:
            return {}
        provider = self.voice.provider
        return {"audio": audio_field(provider.status, provider.stats())}

    def summary(self) -> dict:
        return {**self.stats.totals(), "tracks": self.tracks_seen, "events": sum(self.event_counts.values()),
                "event_types": dict(self.event_counts), "dropped_frames": self.source.dropped}


def _jpeg(image: np.ndarray) -> dict:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return {"format": "jpeg", "data": base64.b64encode(data.tobytes()).decode("ascii") if ok else ""}
