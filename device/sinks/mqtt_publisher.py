"""Events, state, status and stats to an MQTT broker, surviving broker outages.

Topics (under the prefix, default `edge-emotion/<device_id>/`): `events` (QoS 1, not retained),
`state` and `stats` (retained, latest value wins), `status` (retained `online`; the broker
publishes the retained `offline` will when the daemon dies without saying goodbye).

One sender thread owns every publish and all queue state; paho's network thread (and the
pipeline) only drop messages into its inbox. That keeps the ordering rules in one place and
avoids lock-order deadlocks with paho's own mutexes:
- events wait in a bounded queue; when it is full the oldest is dropped and counted;
- at most `window` events are in flight (handed to paho, PUBACK not yet seen);
- after a reconnect paho re-sends the unacknowledged ones itself, so newer events are held back
  until those are acknowledged: delivery stays in sequence order across outages;
- paho's network loop reconnects with exponential backoff (reconnect_min_s .. reconnect_max_s).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections import deque
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from device.config import Config

log = logging.getLogger("edge-emotion.mqtt")

MAX_WINDOW = 20


def _dumps(message: dict) -> str:
    return json.dumps(message, separators=(",", ":"))


def broker_address(url: str) -> tuple[str, int, bool]:
    """(host, port, tls) from mqtt://host[:port] or mqtts://host[:port]."""
    parts = urlsplit(url)
    tls = parts.scheme == "mqtts"
    return parts.hostname or "", parts.port or (8883 if tls else 1883), tls


class MqttPublisher:
    def __init__(self, config: Config, online: dict, offline: dict) -> None:
        m = config.mqtt
        self.prefix = config.topic_prefix
        self.host, self.port, tls = broker_address(m.url)
        self.where = f"{self.host}:{self.port}"
        self._online, self._offline = online, offline
        self._queue_size = m.queue_size
        self._window = min(MAX_WINDOW, max(1, m.queue_size // 2))
        self._keepalive = m.keepalive_s
        client_id = m.client_id or f"edge-emotion-{config.device_id}-{online['boot_id'][:8]}"
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
        self.client.will_set(self.topic("status"), _dumps(offline), qos=1, retain=True)
        if m.username:
            self.client.username_pw_set(m.username, config.password)
        if tls or m.tls_ca:
            self.client.tls_set(ca_certs=m.tls_ca or None, certfile=m.tls_cert or None,
                                keyfile=m.tls_key or None)
        self.client.reconnect_delay_set(m.reconnect_min_s, m.reconnect_max_s)
        self.client.max_inflight_messages_set(self._window + 4)
        self.client.on_connect = self._on_connect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        # Owned by the sender thread; others only read the counters.
        self._pending: deque[str] = deque()
        self._in_flight: set[int] = set()
        self._latest: dict[str, str] = {}
        self._dirty: set[str] = set()
        self._connected = False
        self._draining_old = False
        self._down_since: float | None = time.monotonic()
        self._stopping_at: float | None = None
        self._warned_down = False
        self.queue_depth = 0
        self.dropped = 0
        self.delivered = 0
        self.ever_connected = False
        self._sender = threading.Thread(target=self._run, name="mqtt-sender", daemon=True)

    def topic(self, name: str) -> str:
        return self.prefix + name

    def start(self) -> None:
        log.info("connecting to broker %s, topics under %s", self.where, self.prefix)
        self.client.connect_async(self.host, self.port, keepalive=self._keepalive)
        self.client.loop_start()
        self._sender.start()

    # The pipeline's side: never blocks.
    def publish_event(self, event: dict) -> None:
        self._inbox.put(("event", _dumps(event)))

    def publish_state(self, state: dict) -> None:
        self._inbox.put(("latest", "state", _dumps(state)))

    def publish_stats(self, stats: dict) -> None:
        self._inbox.put(("latest", "stats", _dumps(stats)))

    def close(self, timeout: float) -> None:
        """Deliver what can be delivered within `timeout`, publish `offline`, disconnect."""
        self._inbox.put(("stop", time.monotonic() + timeout))
        self._sender.join(timeout + 5.0)
        self.client.loop_stop()
        if self.queue_depth:
            log.warning("stopped with %d events not delivered to the broker", self.queue_depth)

    # paho's network thread: hand everything to the sender.
    def _on_connect(self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags,
                    reason_code: ReasonCode, properties: Properties | None) -> None:
        if reason_code.is_failure:
            self._inbox.put(("refused", str(reason_code)))
        else:
            self._inbox.put(("connected",))

    def _on_connect_fail(self, client: mqtt.Client, userdata: object) -> None:
        self._inbox.put(("unreachable",))

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: mqtt.DisconnectFlags,
                       reason_code: ReasonCode, properties: Properties | None) -> None:
        self._inbox.put(("disconnected", str(reason_code)))

    def _on_publish(self, client: mqtt.Client, userdata: object, mid: int, reason_code: ReasonCode,
                    properties: Properties | None) -> None:
        self._inbox.put(("ack", mid))

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        if not message.retain:  # a live will, not the retained value every subscriber gets first
            self._inbox.put(("status_seen", message.payload))

    # The sender thread.
    def _run(self) -> None:
        while True:
            try:
                self._handle(self._inbox.get(timeout=0.2))
                while True:
                    self._handle(self._inbox.get_nowait())
            except queue.Empty:
                pass
            self._trim()
            self._send()
            self.queue_depth = len(self._pending) + len(self._in_flight)
            stop = self._stopping_at
            if stop is not None and (self.queue_depth == 0 or time.monotonic() >= stop):
                self._say_goodbye()
                return

    def _handle(self, item: tuple) -> None:
        kind = item[0]
        if kind == "event":
            self._pending.append(item[1])
        elif kind == "latest":
            self._latest[item[1]] = item[2]
            self._dirty.add(item[1])
        elif kind == "ack":
            if item[1] in self._in_flight:
                self._in_flight.discard(item[1])
                self.delivered += 1
                self._draining_old = self._draining_old and bool(self._in_flight)
        elif kind == "connected":
            self._connected_now()
        elif kind == "disconnected":
            if self._connected:
                self._connected = False
                self._down_since = time.monotonic()
                self._draining_old = bool(self._in_flight)
                self._warned_down = True
                log.warning("lost the broker %s (%s); %d events waiting, reconnecting with backoff",
                            self.where, item[1], len(self._pending) + len(self._in_flight))
        elif kind == "unreachable":
            self._log_down(f"broker {self.where} unreachable")
        elif kind == "refused":
            self._log_down(f"broker {self.where} refused the connection ({item[1]}); check mqtt.username, "
                           "the password and the broker's ACL")
        elif kind == "status_seen":
            self._status_seen(item[1])
        elif kind == "stop":
            self._stopping_at = item[1]

    def _connected_now(self) -> None:
        outage = time.monotonic() - self._down_since if self._down_since is not None else 0.0
        log.info("connected to broker %s%s; %d events to deliver", self.where,
                 f" after {outage:.1f} s" if self.ever_connected else "",
                 len(self._pending) + len(self._in_flight))
        self._connected, self.ever_connected, self._down_since, self._warned_down = True, True, None, False
        self.client.subscribe(self.topic("status"), qos=1)
        self._announce()

    def _announce(self) -> None:
        """Retained `online`; the latest state and stats follow (a restarted broker may have none)."""
        self.client.publish(self.topic("status"), _dumps(self._online), qos=1, retain=True)
        self._dirty.update(self._latest)

    def _status_seen(self, payload: bytes) -> None:
        """The will of an earlier boot can land after we connected (after a power cut the broker
        waits out the old connection's keepalive); answer it so `status` ends up `online`. Our own
        will (same boot id) only appears when the broker drops us, e.g. as it shuts down."""
        try:
            message = json.loads(payload)
            status, boot_id = message.get("status"), message.get("boot_id")
        except (ValueError, AttributeError):
            return
        if (status == "offline" and boot_id != self._online["boot_id"] and self._connected
                and self._stopping_at is None):
            log.warning("broker published the 'offline' will of an earlier run (boot %s); publishing "
                        "'online' again", boot_id)
            self.client.publish(self.topic("status"), _dumps(self._online), qos=1, retain=True)

    def _log_down(self, what: str) -> None:
        """One line per outage, not one per retry."""
        if not self._warned_down:
            log.warning("%s; events are queued (up to %d), retrying with backoff", what, self._queue_size)
            self._warned_down = True

    def _trim(self) -> None:
        while self._pending and len(self._pending) + len(self._in_flight) > self._queue_size:
            self._pending.popleft()
            self.dropped += 1
            if self.dropped in (1, 10, 100, 1000, 10000) or self.dropped % 100000 == 0:
                log.warning("event queue full (%d): dropped the oldest events, %d so far",
                            self._queue_size, self.dropped)

    def _send(self) -> None:
        while (self._connected and not self._draining_old and self._pending
               and len(self._in_flight) < self._window):
            info = self.client.publish(self.topic("events"), self._pending[0], qos=1)
            if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
                return
            # Any other outcome leaves the message with paho, which sends it (again) on reconnect.
            self._pending.popleft()
            self._in_flight.add(info.mid)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                self._draining_old = True
                return
        # Latest-value topics after the events they summarise; QoS 0 because a newer one replaces them.
        while self._connected and self._dirty:
            name = self._dirty.pop()
            self.client.publish(self.topic(name), self._latest[name], qos=0, retain=True)

    def _say_goodbye(self) -> None:
        if self._connected:
            info = self.client.publish(self.topic("status"), _dumps(self._offline), qos=1, retain=True)
            if info.rc == mqtt.MQTT_ERR_SUCCESS:
                info.wait_for_publish(timeout=2.0)
            self.client.disconnect()
