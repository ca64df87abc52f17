"""The devices' topics in, one parsed message at a time out (paho-mqtt 2, MQTT 5).

Subscriptions, with `{device_id}` of the topic prefix replaced by the `+` wildcard:
- `.../events` (QoS 1): through `$share/<group>/` when a share group is set. The broker then hands
  each event to one member of the group, so several dashboard or ingest instances split a large
  fleet's stream between them.
- `.../status`, `.../state`, `.../stats`: always plain subscriptions. They are retained and slow,
  and MQTT 5 never delivers retained messages on a shared subscription, so every instance gets
  every device's status (and sees it go offline) whatever the group.

The session is persistent (clean start off, a session expiry): while the dashboard restarts, the
broker keeps its subscriptions and queues the QoS 1 events for it (up to the broker's
max_queued_messages), so a short restart loses nothing. The default client id is derived from the
host and the database path: the same history file resumes the same session, and two dashboards
with different files never take over each other's.

mosquitto keeps at most `max_queued_messages` (default 1000) for a subscriber beyond the 20 in
flight and drops the rest: a fleet flushing its queues after an outage can exceed that in a
burst (four devices sending 1,700 stored events each at once did in a test). A broker serving a
large fleet should raise it for the dashboard's user.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from dashboard.config import DashboardConfig
from dashboard.device_messages import KINDS, DeviceMessage

log = logging.getLogger("edge-emotion.dashboard.mqtt")

SESSION_EXPIRY_S = 3600
KEEPALIVE_S = 30


class TopicLayout:
    """Subscription filters for a topic prefix such as `edge-emotion/{device_id}/`, and the reverse:
    which device and which kind a received topic is."""

    def __init__(self, prefix: str) -> None:
        before, after = prefix.split("{device_id}")
        self._wildcard = f"{before}+{after}"
        self._pattern = re.compile(f"^{re.escape(before)}([^/]+){re.escape(after)}({'|'.join(KINDS)})$")

    def filter(self, kind: str) -> str:
        return self._wildcard + kind

    def parse(self, topic: str) -> tuple[str, str] | None:
        """(device id, kind) or None for a topic that is not one of ours."""
        match = self._pattern.match(topic)
        return (match.group(1), match.group(2)) if match else None


def default_client_id(config: DashboardConfig) -> str:
    digest = hashlib.sha256(str(config.db_path.resolve()).encode()).hexdigest()[:8]
    return f"edge-emotion-dashboard-{os.uname().nodename}-{digest}"


class MqttIngest:
    """One paho client on its own network thread; `deliver` is called on that thread, so it must not
    block (the history store and the live push only queue the message)."""

    def __init__(self, config: DashboardConfig, deliver: Callable[[DeviceMessage], None]) -> None:
        self.host, self.port, tls = config.broker
        self.where = f"{self.host}:{self.port}"
        self.layout = TopicLayout(config.topic_prefix)
        events = self.layout.filter("events")
        self.subscriptions = [f"$share/{config.share_group}/{events}" if config.share_group else events,
                              *(self.layout.filter(kind) for kind in KINDS if kind != "events")]
        self._deliver = deliver
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=config.client_id or default_client_id(config),
                                  protocol=mqtt.MQTTv5)
        if config.mqtt_username:
            self.client.username_pw_set(config.mqtt_username, config.mqtt_password)
        if tls or config.tls_ca:
            self.client.tls_set(ca_certs=config.tls_ca or None)
        self.client.reconnect_delay_set(1, 30)
        self.client.on_connect = self._on_connect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.connected = False
        self.received = 0
        self.malformed = 0
        self._warned_down = False

    def start(self) -> None:
        """Connect in the background; an unreachable broker is retried with backoff, never fatal."""
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = SESSION_EXPIRY_S
        log.info("connecting to broker %s: %s", self.where, ", ".join(self.subscriptions))
        self.client.connect_async(self.host, self.port, keepalive=KEEPALIVE_S, clean_start=False,
                                  properties=properties)
        self.client.loop_start()

    def stop(self) -> None:
        self.connected = False  # our own disconnect is not an outage to report
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags,
                    reason_code: ReasonCode, properties: Properties | None) -> None:
        if reason_code.is_failure:
            self._log_down(f"broker {self.where} refused the connection ({reason_code}); check "
                           "--mqtt-username, the password and the broker's ACL")
            return
        self.connected, self._warned_down = True, False
        log.info("connected to broker %s%s", self.where,
                 " (session resumed)" if flags.session_present else "")
        client.subscribe([(topic, SubscribeOptions(qos=1)) for topic in self.subscriptions])

    def _on_connect_fail(self, client: mqtt.Client, userdata: object) -> None:
        self._log_down(f"broker {self.where} unreachable")

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: mqtt.DisconnectFlags,
                       reason_code: ReasonCode, properties: Properties | None) -> None:
        if self.connected:
            self.connected = False
            self._log_down(f"lost the broker {self.where} ({reason_code})")

    def _log_down(self, what: str) -> None:
        """One line per outage, not one per retry."""
        if not self._warned_down:
            log.warning("%s; retrying with backoff", what)
            self._warned_down = True

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        where = self.layout.parse(message.topic)
        if where is None:
            return
        self.received += 1
        try:
            payload = json.loads(message.payload)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            self.malformed += 1
            if self.malformed in (1, 10, 100, 1000) or self.malformed % 10000 == 0:
                log.warning("ignored a message on %s that is not a JSON object (%d so far)",
                            message.topic, self.malformed)
            return
        self._deliver(DeviceMessage(where[0], where[1], payload, time.time()))
