"""Simulated devices that publish what the daemon publishes, for the load bench and the tests.

A real fleet is many Pis, each with its own connection, will and retained topics; so is this one:
one paho client per device. The messages follow device/event_schema.json (schema version 2), so
the dashboard sees exactly what a daemon would send: a retained `online` status with an `offline`
will, retained `stats` and `state`, and QoS 1 `events` whose faces come and go and whose emotions
drift (a random walk of the 7 logits; valence and arousal follow from the emotion mix).
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
import uuid
from typing import Any

import paho.mqtt.client as mqtt

from dashboard.device_messages import FACE_LABELS, iso_time

DEFAULT_PREFIX = "edge-emotion/{device_id}/"
# Where each face class sits on the valence/arousal circle (roughly Russell's circumplex).
CIRCUMPLEX = {"angry": (-0.6, 0.7), "disgust": (-0.7, 0.3), "fear": (-0.6, 0.8), "happy": (0.8, 0.5),
              "sad": (-0.7, -0.4), "surprise": (0.3, 0.8), "neutral": (0.0, 0.0)}
VOICE_LABELS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
STAGE_MS = {"capture": 2.1, "detect": 17.5, "track": 0.2, "preprocess": 0.6, "infer": 1.6, "smooth": 0.1,
            "publish": 0.3}
MODEL = {"name": "face_mini_xception_int8", "version": "0123456789ab"}
TRACK_LIFE_EVENTS = 300  # a face stays for about this many events, then leaves and another comes


def header(kind: str, device_id: str, boot_id: str) -> dict[str, Any]:
    return {"schema_version": 2, "kind": kind, "device_id": device_id, "boot_id": boot_id,
            "time": iso_time(time.time())}


def status_message(device_id: str, boot_id: str, status: str) -> dict[str, Any]:
    return {**header("status", device_id, boot_id), "status": status, "version": "0.1.0", "model": MODEL}


def stats_message(device_id: str, boot_id: str, uptime_s: float, events: int, fps: float = 15.0,
                  faces: int = 1) -> dict[str, Any]:
    return {**header("stats", device_id, boot_id), "uptime_s": round(uptime_s, 1),
            "frames": int(uptime_s * fps), "fps": fps, "stage_ms": STAGE_MS, "faces": faces,
            "dropped_frames": 0, "queue_depth": 0, "events": events, "events_dropped": 0,
            "cpu_temp_c": 52.3, "rss_mb": 96.0}


def event_message(device_id: str, boot_id: str, seq: int, event_type: str, track_id: int,
                  probabilities: dict[str, float], voice: dict[str, Any] | None = None) -> dict[str, Any]:
    """An event as the daemon writes it; the emotion is the most probable class."""
    emotion = max(probabilities, key=probabilities.__getitem__)
    valence = sum(p * CIRCUMPLEX[label][0] for label, p in probabilities.items())
    arousal = sum(p * CIRCUMPLEX[label][1] for label, p in probabilities.items())
    message = {**header("event", device_id, boot_id), "type": event_type, "seq": seq,
               "frame": {"index": seq * 2, "media_time_s": round(seq / 15.0, 3), "width": 640, "height": 480},
               "track_id": track_id, "track_age_s": 1.0, "box": {"x": 200, "y": 120, "w": 160, "h": 160},
               "emotion": emotion, "confidence": round(probabilities[emotion], 4),
               "probabilities": {k: round(v, 4) for k, v in probabilities.items()},
               "valence": round(max(-1.0, min(1.0, valence)), 4),
               "arousal": round(max(-1.0, min(1.0, arousal)), 4),
               "model": MODEL}
    if voice is not None:
        message["voice"] = voice
    return message


def state_message(device_id: str, boot_id: str, seq: int, tracks: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("track_id", "emotion", "confidence", "valence", "arousal", "box")
    return {**header("state", device_id, boot_id), "faces": len(tracks), "seq": seq,
            "tracks": [{k: t[k] for k in keys} for t in tracks]}


def softmax(logits: list[float]) -> dict[str, float]:
    top = max(logits)
    weights = [math.exp(v - top) for v in logits]
    total = sum(weights)
    return {label: w / total for label, w in zip(FACE_LABELS, weights, strict=True)}


class SimulatedDevice:
    """One device: a connection, a boot id, and faces whose emotions drift from event to event."""

    def __init__(self, device_id: str, host: str, port: int, prefix: str = DEFAULT_PREFIX,
                 seed: int = 0, with_voice: bool = False) -> None:
        self.device_id = device_id
        self.boot_id = uuid.uuid4().hex
        self.prefix = prefix.format(device_id=device_id)
        self.host, self.port = host, port
        self.rng = random.Random(seed)
        self.with_voice = with_voice
        self.seq = 0
        self.started = time.time()
        self._sent: list[mqtt.MQTTMessageInfo] = []  # every event handed to paho, to count the acked ones
        self._tracks: dict[int, dict[str, Any]] = {}  # the last event of each face in view
        self._logits: dict[int, list[float]] = {}  # what each face's emotions drift from
        self._next_track = 1
        self._connected = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"sim-{device_id}-{self.boot_id[:8]}")
        will = status_message(device_id, self.boot_id, "offline")
        self.client.will_set(self.topic("status"), json.dumps(will), qos=1, retain=True)
        self.client.on_connect = lambda *args: self._connected.set()

    def topic(self, kind: str) -> str:
        return self.prefix + kind

    def connect(self, timeout: float = 10.0) -> SimulatedDevice:
        self.client.connect(self.host, self.port, keepalive=30)
        self.client.loop_start()
        if not self._connected.wait(timeout):
            raise RuntimeError(f"{self.device_id}: no connection to {self.host}:{self.port}")
        self.publish_status("online")
        return self

    @property
    def acked(self) -> int:
        """Events the broker has acknowledged (QoS 1 PUBACK received)."""
        return sum(info.is_published() for info in self._sent)

    def _publish(self, kind: str, message: dict[str, Any], qos: int, retain: bool) -> mqtt.MQTTMessageInfo:
        return self.client.publish(self.topic(kind), json.dumps(message, separators=(",", ":")), qos=qos,
                                   retain=retain)

    def publish_status(self, status: str) -> None:
        message = status_message(self.device_id, self.boot_id, status)
        self._publish("status", message, 1, True).wait_for_publish(10)

    def publish_stats(self) -> None:
        uptime_s = time.time() - self.started
        message = stats_message(self.device_id, self.boot_id, uptime_s, self.seq, faces=len(self._tracks))
        self._publish("stats", message, 0, True)

    def publish_state(self) -> None:
        message = state_message(self.device_id, self.boot_id, self.seq, list(self._tracks.values()))
        self._publish("state", message, 0, True)

    def publish_event(self, event: dict[str, Any]) -> None:
        """Publish an event (QoS 1); `acked` counts it once the broker acknowledges it."""
        self._sent.append(self._publish("events", event, 1, False))

    def make_event(self, track_id: int, event_type: str, probabilities: dict[str, float],
                   voice: dict[str, Any] | None = None) -> dict[str, Any]:
        """The next event of this boot (sequence numbers count up), e.g. a chosen one for a test."""
        self.seq += 1
        event = event_message(self.device_id, self.boot_id, self.seq, event_type, track_id, probabilities,
                              voice)
        if event_type == "change" and track_id in self._tracks:
            event["previous_emotion"] = self._tracks[track_id]["emotion"]
        if event_type == "end":
            self._tracks.pop(track_id, None)
        else:
            self._tracks[track_id] = event
        return event

    def next_event(self) -> dict[str, Any]:
        """A plausible next event: a face appears, drifts (change or heartbeat) and eventually ends."""
        if not self._logits or (len(self._logits) < 2 and self.rng.random() < 0.003):
            track_id, self._next_track = self._next_track, self._next_track + 1
            self._logits[track_id] = [self.rng.gauss(0.0, 1.0) for _ in FACE_LABELS]
            return self.make_event(track_id, "appear", softmax(self._logits[track_id]), self._voice())
        track_id = self.rng.choice(list(self._logits))
        if self.rng.random() < 1.0 / TRACK_LIFE_EVENTS and len(self._logits) > 1:
            del self._logits[track_id]
            return self.make_event(track_id, "end", self._tracks[track_id]["probabilities"])
        self._logits[track_id] = [v + self.rng.gauss(0.0, 0.15) for v in self._logits[track_id]]
        probabilities = softmax(self._logits[track_id])
        changed = max(probabilities, key=probabilities.__getitem__) != self._tracks[track_id]["emotion"]
        return self.make_event(track_id, "change" if changed else "heartbeat", probabilities, self._voice())

    def _voice(self) -> dict[str, Any] | None:
        if not self.with_voice:
            return None
        if self.rng.random() < 0.3:
            return {"vad": {"voiced": False, "active_fraction": 0.05, "level_db": -52.0}, "age_s": 0.4}
        label = self.rng.choice(VOICE_LABELS)
        confidence = round(self.rng.uniform(0.4, 0.9), 4)
        rest = (1.0 - confidence) / (len(VOICE_LABELS) - 1)
        return {"vad": {"voiced": True, "active_fraction": 0.7, "level_db": -23.5}, "age_s": 0.3,
                "emotion": label, "confidence": confidence,
                "probabilities": {v: confidence if v == label else round(rest, 4) for v in VOICE_LABELS},
                "utterance": {"emotion": label, "confidence": confidence, "readings": 1}}

    def publish_next(self) -> None:
        self.publish_event(self.next_event())

    def close(self, say_offline: bool = True) -> None:
        if say_offline:
            self.publish_status("offline")
        self.client.disconnect()
        self.client.loop_stop()


class SimulatedFleet:
    """`count` devices each publishing `rate_hz` events per second (plus stats and state each second)
    from one pacing thread, on an absolute schedule so the rate holds even when a tick runs late."""

    def __init__(self, host: str, port: int, count: int, rate_hz: float, prefix: str = DEFAULT_PREFIX,
                 name: str = "sim") -> None:
        self.devices = [SimulatedDevice(f"{name}-{i:03d}", host, port, prefix, seed=i, with_voice=i % 3 == 0)
                        for i in range(count)]
        self.rate_hz = rate_hz
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fleet", daemon=True)
        self.attempted = 0

    def start(self) -> SimulatedFleet:
        for device in self.devices:
            device.connect()
        self._thread.start()
        return self

    def _run(self) -> None:
        period = 1.0 / self.rate_hz
        ticks_per_s = max(1, round(self.rate_hz))
        next_tick, tick = time.monotonic(), 0
        while not self._stop.is_set():
            for device in self.devices:
                device.publish_next()
                self.attempted += 1
                if tick % ticks_per_s == 0:
                    device.publish_stats()
                    device.publish_state()
            tick += 1
            next_tick += period
            delay = next_tick - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)

    @property
    def acked(self) -> int:
        return sum(device.acked for device in self.devices)

    def stop(self, say_offline: bool = True, ack_timeout: float = 30.0) -> int:
        """Stop publishing, wait for the broker's acknowledgements; the events it acknowledged."""
        self._stop.set()
        self._thread.join()
        deadline = time.monotonic() + ack_timeout
        while self.acked < self.attempted and time.monotonic() < deadline:
            time.sleep(0.05)
        for device in self.devices:
            device.close(say_offline)
        return self.acked
