"""`make demo`: the daemon on a built-in clip, an embedded broker, and what a subscriber receives.

No camera, broker or dataset is needed: the clip is synthesised from scikit-image's astronaut
portrait (a panning camera; a second face enters and leaves), the broker is mosquitto when
installed (else amqtt, in-process), both on 127.0.0.1 only, and the daemon runs exactly as on a
Pi (`python -m device`), paced in real time. When espeak-ng is installed the clip also gets a
spoken sound track (`--audio-file`), so events carry `voice` and the speaker's `fused`; without it
the demo runs on faces alone. Every message the subscriber gets is printed as one line; the first
event, and the first with `fused`, are also shown in full. The dashboard (`python -m dashboard`)
runs on the same broker and its URL is printed first; it stays up for `--linger` seconds (30)
after the clip so a newcomer can look at the page. Takes about 45 seconds.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt

from demo.clip import frames, write_speech, write_video
from demo.local_broker import LOOPBACK, start_local_broker
from demo.local_dashboard import DashboardProcess
from device.config import DEFAULT_FACE_MODEL

DEVICE_ID = "demo-pi"


def describe(topic: str, message: dict) -> str:
    """One readable line per message."""
    kind = topic.rsplit("/", 1)[1]
    if kind == "events":
        extra = f" (was {message['previous_emotion']})" if "previous_emotion" in message else ""
        return (f"event #{message['seq']:<3} {message['type']:<9} track {message['track_id']}: "
                f"{message['emotion']} {message['confidence']:.2f}{extra}, "
                f"valence {message['valence']:+.2f}, arousal {message['arousal']:+.2f}, "
                f"box {tuple(message['box'].values())}{describe_voice(message)}")
    if kind == "state":
        faces = ", ".join(f"track {t['track_id']} {t['emotion']}" for t in message["tracks"]) or "nobody"
        speaker = message.get("speaker")
        heard = f"; speaker track {speaker['track_id']} {speaker['emotion']}" if speaker else ""
        return f"state     {message['faces']} face(s): {faces}{heard}"
    if kind == "status":
        return f"status    {message['status']}"
    stages = ", ".join(f"{k} {v:.2f}" for k, v in message["stage_ms"].items())
    audio = message.get("audio")
    heard = f"; audio {audio['state']}, {audio['voiced_windows']} voiced windows" if audio else ""
    return (f"stats     {message['fps']:.1f} fps; ms per frame: {stages}; queue {message['queue_depth']}"
            f"{heard}")


def describe_voice(event: dict) -> str:
    """The voice and fused parts of an event, when it has them."""
    voice, fused = event.get("voice"), event.get("fused")
    if voice is None:
        return ""
    text = f"; voice {voice['emotion']} {voice['confidence']:.2f}" if "emotion" in voice else "; voice silent"
    if "utterance" in voice:
        text += f" (utterance {voice['utterance']['emotion']} {voice['utterance']['confidence']:.2f})"
    if fused is not None:
        was = f" (was {fused['previous_emotion']})" if "previous_emotion" in fused else ""
        text += f", fused {fused['emotion']} {fused['confidence']:.2f}{was}"
    return text


class Printer:
    """The subscriber: prints each message as it arrives, keeps count."""

    def __init__(self, port: int, prefix: str) -> None:
        self.counts: dict[str, int] = {}
        self.shown_full: set[str] = set()  # "event", "fused": which kinds were printed in full
        self.offline = threading.Event()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="demo-subscriber")
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(prefix + "#", qos=1)
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(LOOPBACK, port)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg) -> None:
        message = json.loads(msg.payload)
        kind = msg.topic.rsplit("/", 1)[1]
        self.counts[kind] = self.counts.get(kind, 0) + 1
        print(f"  {msg.topic:<28} {describe(msg.topic, message)}", flush=True)
        first_of_its_kind = "fused" if "fused" in message else "event"
        if kind == "events" and first_of_its_kind not in self.shown_full:
            self.shown_full.update({first_of_its_kind, "event"})
            print(json.dumps(message, indent=2), flush=True)
        if kind == "status" and message["status"] == "offline":
            self.offline.set()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def linger(url: str, seconds: float) -> None:
    """Keep the page up a little after the clip; Ctrl-C ends the wait (the handler is in place
    before the line that invites it, so no Ctrl-C can land between the two)."""
    done = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda _signum, _frame: done.set())
    try:
        print(f"demo: the clip is over; the dashboard stays up for {seconds:.0f} s more at {url} "
              "(Ctrl-C ends it now)", flush=True)
        done.wait(seconds)
    finally:
        signal.signal(signal.SIGINT, previous)


def start_dashboard(broker_url: str, workdir: Path, port: int) -> DashboardProcess | None:
    """The live page on the demo broker; the demo goes on without it (one line says why)."""
    if importlib.util.find_spec("aiohttp") is None:
        print("demo: no dashboard (aiohttp is missing: make install)", flush=True)
        return None
    try:
        dashboard = DashboardProcess(broker_url, workdir / "dashboard.sqlite3", workdir / "dashboard.log",
                                     port=port).start()
    except RuntimeError as exc:
        print(f"demo: no dashboard ({str(exc).splitlines()[-1]})", flush=True)
        return None
    print(f"demo: dashboard on {dashboard.url} (open it in a browser)", flush=True)
    return dashboard


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_FACE_MODEL, help="face model .tflite (card beside it)")
    parser.add_argument("--seconds", type=float, default=12.0, help="length of the demo clip")
    parser.add_argument("--linger", type=float, default=30.0,
                        help="keep the dashboard up this many seconds after the clip (0: stop at once)")
    parser.add_argument("--dashboard-port", type=int, default=8080, help="the dashboard's port on 127.0.0.1")
    args = parser.parse_args(argv)
    if not Path(args.model).is_file():
        print(f"demo: face model {args.model} is missing; build it with `make train quantize` or pass "
              "--model path/to/model.tflite", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="edge-emotion-demo-") as tmp:
        fps = 15.0
        clip = write_video(Path(tmp) / "demo.avi", frames(round(args.seconds * fps)), fps)
        speech = write_speech(Path(tmp) / "demo.wav", min_seconds=args.seconds)
        sound = ["--audio-file", str(speech)] if speech is not None else []
        broker = start_local_broker(Path(tmp) / "broker")
        print(f"demo: {type(broker).__name__} on {broker.url}; clip {clip.name} ({args.seconds:.0f} s at "
              f"{fps:.0f} fps, {'espeak-ng speech' if speech else 'silent: no espeak-ng'}); subscriber on "
              f"edge-emotion/{DEVICE_ID}/#", flush=True)
        printer = Printer(broker.port, f"edge-emotion/{DEVICE_ID}/")
        dashboard = start_dashboard(broker.url, Path(tmp), args.dashboard_port)
        try:
            printer.subscribed.wait(10)
            started = time.monotonic()
            daemon = subprocess.run(
                [sys.executable, "-m", "device", "--source", str(clip), "--pace", "--model", args.model,
                 "--broker", broker.url, "--device-id", DEVICE_ID, "--set", "mqtt.stats_every_s=4",
                 "--set", "events.heartbeat_s=5", *sound], check=False)
            printer.offline.wait(5)
            if dashboard is not None and args.linger > 0:
                linger(dashboard.url, args.linger)
        finally:
            if dashboard is not None:
                dashboard.stop()
            printer.close()
            broker.stop()
    counts = ", ".join(f"{n} {kind}" for kind, n in sorted(printer.counts.items()))
    print(f"demo: daemon exited with {daemon.returncode} after {time.monotonic() - started:.1f} s; "
          f"the subscriber received {counts}", flush=True)
    return daemon.returncode


if __name__ == "__main__":
    sys.exit(main())
