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

With Home Assistant discovery on, every connect also publishes the retained discovery config and
subscribes to Home Assistant's birth topic, answering its `online` with the config again; with
discovery off the first connect publishes the empty retained config, which removes the device
(`device/sinks/home_assistant.py`).

MQTT 5 first (a broker then answers a publish its ACL refuses with a reason code, which is logged
once per topic and counted as `denied`), 3.1.1 when the broker does not speak 5. When the broker
cannot be reached, the first warning of the outage says why: the name does not resolve, nothing
listens, the TLS handshake failed and how, or the port accepts TCP but never answers MQTT.
"""

from __future__ import annotations

import json
import logging
import queue
import socket
import ssl
import threading
import time
from collections import deque
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from device.config import MqttSection
from device.sinks.event_sink import SinkHealth
from device.sinks.home_assistant import Announcement

log = logging.getLogger("edge-emotion.mqtt")

MAX_WINDOW = 20
PROBE_TIMEOUT_S = 3.0
PROTOCOL_ANSWER_S = 2.0  # an MQTT 5 CONNECT unanswered this long is retried as 3.1.1
UNSUPPORTED_PROTOCOL = 0x84  # CONNACK reason "Unsupported Protocol Version": the broker wants 3.1.1


def _dumps(message: dict) -> str:
    return json.dumps(message, separators=(",", ":"))


def broker_address(url: str) -> tuple[str, int, bool]:
    """(host, port, tls) from mqtt://host[:port] or mqtts://host[:port]."""
    parts = urlsplit(url)
    tls = parts.scheme == "mqtts"
    return parts.hostname or "", parts.port or (8883 if tls else 1883), tls


def tls_context(section: MqttSection) -> ssl.SSLContext | None:
    """The TLS settings of mqtts:// (or of a CA given with mqtt://), shared by paho and the probe."""
    if not (urlsplit(section.url).scheme == "mqtts" or section.tls_ca):
        return None
    context = ssl.create_default_context(cafile=section.tls_ca or None)
    if section.tls_cert:
        context.load_cert_chain(section.tls_cert, section.tls_key)
    return context


def probe(host: str, port: int, context: ssl.SSLContext | None) -> str:
    """Why a connection fails, in words: DNS, TCP, then the TLS handshake (paho's own exception
    is swallowed by its network loop, so this repeats the first steps once per outage)."""
    try:
        sock = socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S)
    except socket.gaierror as exc:
        return f"the host name {host} does not resolve ({exc.strerror})"
    except OSError as exc:
        return f"nothing accepts connections on {host}:{port} ({exc.strerror or exc})"
    with sock:
        if context is None:
            return ""
        try:
            with context.wrap_socket(sock, server_hostname=host) as tls:
                tls.settimeout(PROBE_TIMEOUT_S)
        except ssl.SSLCertVerificationError as exc:
            return (f"the TLS handshake failed: {exc.verify_message}; check mqtt.tls_ca (the CA that "
                    "signed the broker's certificate) and that the URL's host name is in that certificate")
        except (ssl.SSLError, OSError) as exc:
            return (f"the TLS handshake failed ({getattr(exc, 'reason', None) or exc}); is {port} the "
                    "broker's TLS port (mqtts://), not its plain one?")
    return ""


class MqttPublisher:
    """Keyword `prefix` is the topic prefix with the device id filled in; `online`, `offline` and
    `empty_state` are the messages it publishes itself (status, and the state that replaces a
    crashed run's retained faces); `discovery` is the Home Assistant config (None: none at all)."""

    def __init__(self, section: MqttSection, prefix: str, password: str | None, online: dict,
                 offline: dict, empty_state: dict, discovery: Announcement | None = None) -> None:
        self.section = section
        self.name = "MQTT"
        self.prefix = prefix
        self.password = password
        self.host, self.port, _ = broker_address(section.url)
        self.where = f"{self.host}:{self.port}"
        self._online, self._offline = online, offline
        self._queue_size = section.queue_size
        self._window = min(MAX_WINDOW, max(1, section.queue_size // 2))
        self._tls = tls_context(section)
        self.protocol = mqtt.MQTTv5
        self.client = self._new_client()
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        # Owned by the sender thread; others only read the counters.
        self._pending: deque[str] = deque()
        self._in_flight: dict[int, str] = {}  # mid -> topic
        self._latest: dict[str, str] = {"state": _dumps(empty_state)}
        self._dirty: set[str] = {"state"}  # a crash leaves its last faces retained: replace them
        self._connected = False
        self._draining_old = False
        self._down_since: float | None = time.monotonic()
        self._connect_asked = time.monotonic()
        self._stopping_at: float | None = None
        self._warned_down = False
        self._denied_topics: set[str] = set()
        self._discovery = discovery
        self._own_mids: dict[int, str] = {}  # status and discovery publishes not yet acknowledged
        self._removal_sent = False  # discovery off: the empty config goes out once per run
        self.queue_depth = 0
        self.dropped = 0
        self.denied = 0
        self.ever_connected = False
        self._answered = False  # any CONNACK, even a refusal: the broker speaks MQTT 5
        self._sender = threading.Thread(target=self._run, name="mqtt-sender", daemon=True)

    def _new_client(self) -> mqtt.Client:
        m = self.section
        client_id = m.client_id or f"edge-emotion-{self._online['device_id']}-{self._online['boot_id'][:8]}"
        if self.protocol == mqtt.MQTTv5:
            client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        else:
            client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                 protocol=mqtt.MQTTv311, clean_session=True)
        client.will_set(self.topic("status"), _dumps(self._offline), qos=1, retain=True)
        if m.username:
            client.username_pw_set(m.username, self.password)
        if self._tls is not None:
            client.tls_set_context(self._tls)
        client.reconnect_delay_set(m.reconnect_min_s, m.reconnect_max_s)
        client.max_inflight_messages_set(self._window + 4)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    def topic(self, name: str) -> str:
        return self.prefix + name

    def start(self) -> None:
        log.info("connecting to broker %s (MQTT 5%s), topics under %s", self.where,
                 ", TLS" if self._tls is not None else "", self.prefix)
        self._connect()
        self._sender.start()

    def _connect(self) -> None:
        self._connect_asked = time.monotonic()
        keepalive = self.section.keepalive_s
        if self.protocol == mqtt.MQTTv5:
            self.client.connect_async(self.host, self.port, keepalive=keepalive, clean_start=True)
        else:
            self.client.connect_async(self.host, self.port, keepalive=keepalive)
        self.client.loop_start()

    def health(self) -> SinkHealth:
        return SinkHealth(self.queue_depth, self.dropped, self.denied)

    # The pipeline's side: never blocks.
    def publish_event(self, event: dict) -> None:
        self._inbox.put(("event", _dumps(event)))

    def publish_state(self, state: dict) -> None:
        self._inbox.put(("latest", "state", _dumps(state)))

    def publish_stats(self, stats: dict) -> None:
        self._inbox.put(("latest", "stats", _dumps(stats)))

    def close(self, timeout: float) -> None:
        """Deliver what can be delivered within `timeout`, publish `offline`, disconnect."""
        if self._sender.ident is None:  # never started: nothing was sent, nothing to say goodbye to
            return
        self._inbox.put(("stop", time.monotonic() + timeout))
        self._sender.join(timeout + 5.0)
        self.client.loop_stop()
        if self.queue_depth:
            log.warning("stopped with %d events not delivered to the broker", self.queue_depth)

    # paho's network thread: hand everything to the sender.
    def _on_connect(self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags,
                    reason_code: ReasonCode, properties: Properties | None) -> None:
        if reason_code.is_failure:
            self._inbox.put(("refused", str(reason_code), reason_code.value))
        else:
            self._inbox.put(("connected",))

    def _on_connect_fail(self, client: mqtt.Client, userdata: object) -> None:
        self._inbox.put(("unreachable",))

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: mqtt.DisconnectFlags,
                       reason_code: ReasonCode, properties: Properties | None) -> None:
        self._inbox.put(("disconnected", str(reason_code)))

    def _on_publish(self, client: mqtt.Client, userdata: object, mid: int, reason_code: ReasonCode,
                    properties: Properties | None) -> None:
        refused = f"{reason_code}, reason code 0x{reason_code.value:02x}" if reason_code.is_failure else ""
        self._inbox.put(("ack", mid, refused))

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        if message.retain:  # the retained value every subscriber gets first: we just announced ourselves
            return
        if self._discovery is not None and message.topic == self._discovery.birth_topic:
            self._inbox.put(("birth", message.payload))
        else:  # a live will on our status topic
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
            self._check_silent_broker()
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
            topic = self._in_flight.pop(item[1], None)
            if topic is not None:
                if item[2]:
                    self._refused_publish(topic, item[2])
                self._draining_old = self._draining_old and bool(self._in_flight)
            elif item[1] in self._own_mids:
                topic = self._own_mids.pop(item[1])
                if item[2]:
                    self._refused_own(topic, item[2])
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
            if not self._warned_down:
                why = probe(self.host, self.port, self._tls)
                self._log_down(f"broker {self.where} unreachable" + (f": {why}" if why else ""))
        elif kind == "refused":
            if item[2] == UNSUPPORTED_PROTOCOL and self.protocol == mqtt.MQTTv5:
                self._fall_back_to_311()
                return
            self._answered = True  # it speaks MQTT 5: it answered, with a refusal
            self._log_down(f"broker {self.where} refused the connection ({item[1]}); check mqtt.username "
                           "and the password (mqtt.password_file or EDGE_EMOTION_MQTT_PASSWORD)")
        elif kind == "status_seen":
            self._status_seen(item[1])
        elif kind == "birth":
            if item[1] == b"online" and self._connected and self._stopping_at is None:
                log.info("Home Assistant came online; publishing the discovery config again")
                self._publish_discovery()
        elif kind == "stop":
            self._stopping_at = item[1]

    def _fall_back_to_311(self) -> None:
        log.warning("broker %s does not answer MQTT 5; using MQTT 3.1.1 (a publish its ACL refuses then "
                    "goes unnoticed)", self.where)
        self.client.loop_stop()
        self.client.disconnect()
        self.protocol = mqtt.MQTTv311
        self.client = self._new_client()
        self._connect()

    def _refused_publish(self, topic: str, reason: str) -> None:
        """An MQTT 5 broker refused an event (its ACL): counted, and said once per topic."""
        self.denied += 1
        self._say_refused(topic, reason, "such events are counted as refused (stats.events_denied), not "
                          "delivered")

    def _refused_own(self, topic: str, reason: str) -> None:
        """A refused status or discovery message: said once per topic, with what to change."""
        discovery = self._discovery is not None and topic == self._discovery.config_topic
        todo = ("Home Assistant will not find it (allow the topic, or set home_assistant.discovery = false)"
                if discovery else "subscribers will not see its status")
        self._say_refused(topic, reason, todo)

    def _say_refused(self, topic: str, reason: str, consequence: str) -> None:
        if topic in self._denied_topics:
            return
        self._denied_topics.add(topic)
        who = f"user {self.section.username!r}" if self.section.username else "anonymous clients"
        log.error("broker %s refused a message on %s (%s): the broker's ACL does not let %s publish there "
                  "(topics follow device.id, the ACL usually mqtt.username); %s", self.where, topic, reason,
                  who, consequence)

    def _check_silent_broker(self) -> None:
        """A port that accepts TCP but never answers CONNECT (not an MQTT broker, or a TLS port
        given as mqtt://) leaves paho waiting without a callback: say so once."""
        if self.ever_connected or self._answered:
            return
        waited = time.monotonic() - self._connect_asked
        if self.protocol == mqtt.MQTTv5 and waited >= PROTOCOL_ANSWER_S:
            # Some brokers (amqtt, old ones) neither answer nor refuse an MQTT 5 CONNECT.
            self._fall_back_to_311()
            return
        if self._warned_down or waited < self.section.connect_timeout_s or self._stopping_at is not None:
            return
        why = probe(self.host, self.port, self._tls) or (
            f"it accepts TCP connections but has not answered the MQTT CONNECT in "
            f"{self.section.connect_timeout_s:g} s (mqtt.connect_timeout_s): "
            "is it an MQTT broker, and is it a TLS port given as mqtt:// (use mqtts://)?")
        self._log_down(f"broker {self.where} not answering: {why}")

    def _connected_now(self) -> None:
        outage = time.monotonic() - self._down_since if self._down_since is not None else 0.0
        log.info("connected to broker %s%s; %d events to deliver", self.where,
                 f" after {outage:.1f} s" if self.ever_connected else "",
                 len(self._pending) + len(self._in_flight))
        self._connected, self.ever_connected, self._down_since, self._warned_down = True, True, None, False
        self.client.subscribe(self.topic("status"), qos=1)
        self._announce()
        if self._discovery is not None:
            if self._discovery.birth_topic is not None:
                self.client.subscribe(self._discovery.birth_topic, qos=1)
                self._publish_discovery()
            elif not self._removal_sent:
                self._removal_sent = True
                self._publish_discovery()

    def _publish_discovery(self) -> None:
        """The retained Home Assistant config (or, with discovery off, the empty one that removes it)."""
        info = self.client.publish(self._discovery.config_topic, self._discovery.payload, qos=1, retain=True)
        self._own_mids[info.mid] = self._discovery.config_topic

    def _announce(self) -> None:
        """Retained `online`; the latest state and stats follow (a restarted broker may have none)."""
        info = self.client.publish(self.topic("status"), _dumps(self._online), qos=1, retain=True)
        self._own_mids[info.mid] = self.topic("status")
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
            self._in_flight[info.mid] = self.topic("events")
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
