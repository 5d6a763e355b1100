"""MQTT publisher (paho-mqtt 2.x).

Topics under ``<prefix>/<device-id>/``:

- ``pose``: one message per processed frame (QoS ``mqtt.qos_pose``, not retained).
- ``status``: ``online`` at start and on every reconnect, ``degraded: <reason>`` while the camera
  is lost, ``offline`` on a clean exit; the broker publishes the same ``offline`` as the last
  will when the daemon dies. Retained, QoS ``mqtt.qos_status``.
- ``stats``: a JSON summary every ``mqtt.stats_interval`` seconds (QoS ``mqtt.qos_stats``).

The client connects in the background and reconnects with backoff (1 s doubling up to
``mqtt.reconnect_max_delay``, 10 s).

Pose messages, by default (QoS 0, no spool): a message published while the broker is away is
dropped and counted (``dropped_offline``).

With the spool (on by default for QoS >= 1; see ``spool.py``): every pose message is appended to
the on-disk spool first, and a sender thread publishes the spool in order while connected, at
most ``SEND_WINDOW`` unacknowledged at a time, marking messages delivered as the broker
acknowledges them. An outage, or a restart of the daemon, only delays delivery; the spool's size
and age limits drop the oldest messages, counted. QoS 1 is at least once (a message in flight when
the connection breaks is sent again); QoS 2 with a broker that persists sessions (Mosquitto:
``persistence true``) is exactly once across broker restarts. After a crash of the daemon itself,
messages acknowledged in its last 50 ms may be sent twice.

Without the spool but with QoS >= 1: messages are held in memory, up to ``mqtt.queue_limit``, and
delivered after a reconnect; past the limit new ones are dropped and counted
(``dropped_queue_full``); a crash loses them.

A broker that refuses the credentials stops the daemon with a clear error instead of retrying
forever. The password is never logged.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import threading
import time
from collections import deque

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from ..config import MqttConfig, read_password
from .spool import Spool

log = logging.getLogger(__name__)
AUTH_FAILURES = ("Bad user name or password", "Not authorized", "Client identifier not valid")


class PublishError(RuntimeError):
    """The broker cannot be used with this configuration (refused credentials, bad TLS files)."""


SEND_WINDOW = (
    20  # Mosquitto's default max_inflight_messages; a burst beyond it loses QoS 2 messages
)


class MqttPublisher:
    def __init__(self, cfg: MqttConfig, device_id: str, spool: Spool | None = None):
        self.cfg = cfg
        self.spool = spool
        self._acks: deque[int] = deque()  # mids acknowledged by the broker (network thread)
        self._wake = threading.Event()
        self._sender: threading.Thread | None = None
        self._stop_sender = threading.Event()
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
        # With the spool, keep the MQTT session across reconnects: QoS 2 handshakes in flight
        # then complete after a broker restart (if the broker persists sessions), so nothing is
        # delivered twice.
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=spool is None
        )
        paho_log = logging.getLogger(f"paho.{client_id}")
        # paho 2.2 logs an ERROR from its loop thread when a clean disconnect wins the race
        # against its last loop pass; that is not an error for us
        paho_log.addFilter(
            lambda r: not (self._stopping and r.getMessage().startswith("Client is not connected"))
        )
        client.enable_logger(paho_log)
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
        client.max_queued_messages_set(max(cfg.queue_limit, SEND_WINDOW if spool else 0))
        client.max_inflight_messages_set(SEND_WINDOW)
        client.reconnect_delay_set(min_delay=1, max_delay=max(1, round(cfg.reconnect_max_delay)))
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
        if self.spool is not None:
            self._acks.append(mid)
            self._wake.set()

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
        if self.spool is not None:
            self._sender = threading.Thread(
                target=self._send_spool, name="spool-sender", daemon=True
            )
            self._sender.start()
        self._first_answer.wait(self.cfg.connect_timeout)
        refusal = self.credentials_refused
        if refusal:
            self.client.loop_stop()
            raise PublishError(refusal)
        if not self.connected.is_set():
            log.warning(
                "MQTT broker %s:%d not reachable yet; running on and retrying",
                self.cfg.host, self.cfg.port,
            )  # fmt: skip

    @property
    def credentials_refused(self) -> str | None:
        """Why the broker's last answer refused our credentials (at start or on any reconnect,
        e.g. after the broker's password file changed), with what to check; else None."""
        refused = self.refused
        if not refused or not any(text in refused for text in AUTH_FAILURES):
            return None
        return (
            f"MQTT broker {self.cfg.host}:{self.cfg.port} refused the connection: {refused}; "
            f"check mqtt.username and the password (mqtt.password_file or ${self.cfg.password_env})"
        )

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

    def publish_pose(self, payload: bytes, ts: float | None = None) -> None:
        if self.spool is None:
            self._publish(self.topic_pose, payload, self.cfg.qos_pose)
            return
        self.spool.append(payload, ts)
        self._wake.set()

    def _send_spool(self) -> None:
        """Sender thread: ``_send_spool_loop``, started again from the spool's acknowledged
        point if it ever fails (a disk error while reading, say): delivery must not stop."""
        while True:
            try:
                self._send_spool_loop()
                return
            except Exception:
                log.exception("spool sender failed; starting it again in 1 s")
                if self._stop_sender.wait(1.0):
                    return

    def _send_spool_loop(self) -> None:
        """Publish the spool in order while connected; record acknowledgements."""
        spool = self.spool
        next_seq = spool.first_pending()
        sent: dict[int, int] = {}  # mid -> seq, for messages awaiting the broker's ack
        done: set[int] = set()  # acknowledged seqs above the contiguous ack point
        acked_to = next_seq - 1
        while True:
            while self._acks:
                seq = sent.pop(self._acks.popleft(), None)
                if seq is not None:
                    done.add(seq)
            advanced = acked_to
            while advanced + 1 in done:
                advanced += 1
                done.discard(advanced)
            if advanced != acked_to:
                acked_to = advanced
                spool.ack_through(acked_to)
            if self._stop_sender.is_set() and not sent:
                return
            # messages dropped by the spool's limits are skipped
            first = spool.first_pending()
            if first > next_seq:
                next_seq = first
                acked_to = max(acked_to, first - 1)
                done = {d for d in done if d > acked_to}
            room = SEND_WINDOW - len(sent)
            records = []
            if self.connected.is_set() and room > 0 and not self._stop_sender.is_set():
                records = spool.read_from(next_seq, room)
            for record in records:
                if record.seq > next_seq:  # numbers lost between segments: nothing to wait for
                    done.update(range(max(next_seq, acked_to + 1), record.seq))
                info = self.client.publish(self.topic_pose, record.payload, qos=self.cfg.qos_pose)
                if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                    break  # try again shortly
                with self._lock:
                    self.published += 1
                sent[info.mid] = record.seq
                next_seq = record.seq + 1
            if not records:
                self._wake.wait(0.1)
                self._wake.clear()

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
        if self.spool is not None:
            return self.spool.pending
        with self._lock:
            return max(0, self.published - self.acked)

    def stop(self, timeout: float = 3.0) -> None:
        """Deliver what is queued (up to ``timeout``), publish ``offline``, disconnect. Spooled
        messages not delivered by then stay on disk for the next start."""
        deadline = time.monotonic() + timeout
        while self.pending and self.connected.is_set() and time.monotonic() < deadline:
            time.sleep(0.02)
        if self._sender is not None:
            self._stop_sender.set()
            self._wake.set()
            self._sender.join(max(0.1, deadline - time.monotonic()))
        self.status = "offline"
        if self.connected.is_set():
            info = self.client.publish(
                self.topic_status, "offline", qos=self.cfg.qos_status, retain=True
            )
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(max(0.1, deadline - time.monotonic()))
        if self.pending:
            where = "kept in the spool for the next start" if self.spool else "lost"
            log.warning("%d pose messages not delivered before exit: %s", self.pending, where)
        self._stopping = True
        self.client.disconnect()
        self.client.loop_stop()
        if self.spool is not None:
            self.spool.close()

    def stats(self) -> dict:
        return {
            "connected": self.connected.is_set(),
            "sent": self.acked,
            "pending": self.pending,
            "dropped_offline": self.dropped_offline,
            "dropped_queue_full": self.dropped_queue_full,
            "disconnects": self.disconnects,
            "spool": self.spool.stats() if self.spool is not None else None,
        }
