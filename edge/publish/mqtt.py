"""MQTT publisher (paho-mqtt 2.x).

Topics under ``<prefix>/<device-id>/``:

- ``pose``: one message per processed frame (QoS ``mqtt.qos_pose``, not retained).
- ``status``: ``online`` at start and on every reconnect, ``degraded: <reason>`` while the camera
  is lost, ``offline`` on a clean exit; the broker publishes the same ``offline`` as the last
  will when the daemon dies. Retained, QoS ``mqtt.qos_status``.
- ``stats``: a JSON summary every ``mqtt.stats_interval`` seconds (QoS ``mqtt.qos_stats``).

The client connects in the background and reconnects with backoff (1 s doubling to 30 s). The
outgoing queue is bounded: a QoS 0 message published while the broker is away is dropped and
counted (``dropped_offline``); QoS 1/2 messages are held in memory, up to ``mqtt.queue_limit``,
and delivered after the reconnect; past that limit new messages are dropped and counted
(``dropped_queue_full``). A broker that refuses the credentials stops the daemon with a clear
error instead of retrying forever. The password is never logged.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from ..config import MqttConfig, read_password

log = logging.getLogger(__name__)
AUTH_FAILURES = ("Bad user name or password", "Not authorized", "Client identifier not valid")


class PublishError(RuntimeError):
    """The broker cannot be used with this configuration (refused credentials, bad TLS files)."""


class MqttPublisher:
    def __init__(self, cfg: MqttConfig, device_id: str):
        self.cfg = cfg
        self.device_id = device_id
        base = f"{cfg.topic_prefix.strip('/')}/{device_id}"
        self.topic_pose = f"{base}/pose"
        self.topic_status = f"{base}/status"
        self.topic_stats = f"{base}/stats"
        self.status = "online"
        self.connected = threading.Event()
        self.refused: str | None = None
        self._first_answer = threading.Event()
        self._lock = threading.Lock()
        self.published = 0  # handed to the client (will be delivered unless the process dies)
        self.acked = 0  # written (QoS 0) or acknowledged (QoS 1/2)
        self.dropped_offline = 0
        self.dropped_queue_full = 0
        self.disconnects = 0
        self._stopping = False

        client_id = cfg.client_id or f"blazepose-edge-{device_id}"
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        client.enable_logger(logging.getLogger("paho"))
        client.will_set(self.topic_status, "offline", qos=cfg.qos_status, retain=True)
        if cfg.username:
            client.username_pw_set(cfg.username, read_password(cfg))
        if cfg.tls.enabled:
            try:
                client.tls_set(
                    ca_certs=cfg.tls.ca_file or None,
                    certfile=cfg.tls.cert_file or None,
                    keyfile=cfg.tls.key_file or None,
                    cert_reqs=ssl.CERT_REQUIRED,
                )
            except (ssl.SSLError, OSError) as exc:
                raise PublishError(f"mqtt.tls: cannot load the TLS files: {exc}") from exc
            client.tls_insecure_set(cfg.tls.insecure)
        client.max_queued_messages_set(cfg.queue_limit)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        self.client = client

    # --- paho callbacks (network thread) ------------------------------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.refused = str(reason_code)
            log.error(
                "MQTT broker %s:%d refused the connection: %s",
                self.cfg.host, self.cfg.port, reason_code,
            )  # fmt: skip
            self._first_answer.set()
            return
        self.refused = None
        self.connected.set()
        self._first_answer.set()
        log.info("connected to MQTT broker %s:%d", self.cfg.host, self.cfg.port)
        self._publish(self.topic_status, self.status, self.cfg.qos_status, retain=True)

    def _on_connect_fail(self, client, userdata) -> None:
        log.warning("MQTT broker %s:%d unreachable; retrying", self.cfg.host, self.cfg.port)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self.connected.is_set() and not self._stopping:
            self.disconnects += 1
            log.warning("disconnected from MQTT broker: %s; reconnecting", reason_code)
        self.connected.clear()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._lock:
            self.acked += 1

    # --- API (pipeline thread) ------------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background; wait up to ``connect_timeout`` for the broker's answer.

        Raises PublishError if the broker refuses the credentials. An unreachable broker is not
        an error: the client keeps retrying and messages follow the queue rules above.
        """
        try:
            self.client.connect_async(self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive)
        except ValueError as exc:
            raise PublishError(f"mqtt.host/mqtt.port: {exc}") from exc
        self.client.loop_start()
        self._first_answer.wait(self.cfg.connect_timeout)
        if self.refused and any(text in self.refused for text in AUTH_FAILURES):
            self.client.loop_stop()
            hint = (
                "check mqtt.username and the password (mqtt.password_file or $"
                f"{self.cfg.password_env})"
            )
            raise PublishError(
                f"MQTT broker {self.cfg.host}:{self.cfg.port} refused the connection: "
                f"{self.refused}; {hint}"
            )
        if not self.connected.is_set():
            log.warning(
                "MQTT broker %s:%d not reachable yet; running on and retrying",
                self.cfg.host, self.cfg.port,
            )  # fmt: skip

    def _publish(self, topic: str, payload, qos: int, retain: bool = False) -> bool:
        if qos == 0 and not self.connected.is_set():
            self.dropped_offline += 1
            return False
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
            self.dropped_queue_full += 1
            return False
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN) or (
            info.rc == mqtt.MQTT_ERR_NO_CONN and qos == 0
        ):
            self.dropped_offline += 1
            return False
        with self._lock:
            self.published += 1
        return True

    def publish_pose(self, payload: bytes) -> None:
        self._publish(self.topic_pose, payload, self.cfg.qos_pose)

    def publish_stats(self, payload: bytes) -> None:
        self._publish(self.topic_stats, payload, self.cfg.qos_stats)

    def set_status(self, status: str) -> None:
        """Publish a retained status (``online``, ``degraded: ...``); re-sent on reconnect."""
        if status != self.status:
            log.info("status %s", status)
        self.status = status
        self._publish(self.topic_status, status, self.cfg.qos_status, retain=True)

    @property
    def pending(self) -> int:
        with self._lock:
            return max(0, self.published - self.acked)

    def stop(self, timeout: float = 3.0) -> None:
        """Deliver what is queued (up to ``timeout``), publish ``offline``, disconnect."""
        deadline = time.monotonic() + timeout
        while self.pending and self.connected.is_set() and time.monotonic() < deadline:
            time.sleep(0.02)
        self.status = "offline"
        if self.connected.is_set():
            info = self.client.publish(
                self.topic_status, "offline", qos=self.cfg.qos_status, retain=True
            )
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(max(0.1, deadline - time.monotonic()))
        if self.pending:
            log.warning("%d MQTT messages were not delivered before exit", self.pending)
        self._stopping = True
        self.client.disconnect()
        self.client.loop_stop()

    def stats(self) -> dict:
        return {
            "connected": self.connected.is_set(),
            "sent": self.acked,
            "pending": self.pending,
            "dropped_offline": self.dropped_offline,
            "dropped_queue_full": self.dropped_queue_full,
            "disconnects": self.disconnects,
        }
