"""Reusable MQTT test helpers: Debian's mosquitto on a free loopback port and a recording subscriber.

The broker itself is `demo.local_broker.MosquittoBroker` (the demo and the benchmark use it
too); this module adds what tests need around it. The voice tests reuse both.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt

from demo.local_broker import LOOPBACK, MosquittoBroker, free_port, mosquitto_binary

__all__ = ["LOOPBACK", "MosquittoBroker", "Subscriber", "free_port", "mosquitto_binary"]


class Subscriber:
    """Subscribes to `topic` and keeps every message (topic, JSON payload, retain flag) in order.

    With `client_id` and `persistent=True` the broker keeps the session (and queues QoS 1
    messages) while this subscriber is disconnected, so a broker restart loses nothing for it.
    """

    def __init__(self, port: int, topic: str, client_id: str = "", persistent: bool = False,
                 credentials: tuple[str, str] | None = None) -> None:
        self.messages: list[tuple[str, dict, bool]] = []
        self._lock = threading.Condition()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                  clean_session=not persistent)
        self.client.reconnect_delay_set(0.1, 0.5)
        if credentials:
            self.client.username_pw_set(*credentials)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(LOOPBACK, port, keepalive=10)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise RuntimeError(f"could not subscribe to {topic} on port {port}")

    def _on_message(self, client, userdata, message) -> None:
        with self._lock:
            self.messages.append((message.topic, json.loads(message.payload), bool(message.retain)))
            self._lock.notify_all()

    def on(self, suffix: str) -> list[dict]:
        with self._lock:
            return [payload for topic, payload, _ in self.messages if topic.endswith(suffix)]

    def wait_for(self, predicate: Callable[[Subscriber], bool], timeout: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._lock:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(min(remaining, 0.2))
        return True

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
